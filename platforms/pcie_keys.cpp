#include "platforms/pcie_keys.h"

namespace iommusim::platforms {

namespace {
Section<pcie::LinkConfig> link_keys() {
  using L = pcie::LinkConfig;
  using pcie::CompletionSplit;
  const std::vector<uint64_t> sizes{128, 256, 512, 1024, 2048, 4096};
  // PCIe Base Spec 5.0: §4.2.2 rates and encoding, §7.5.3.4 MPS and MRRS, §2.3.1.1 RCB,
  // §2.6.1 flow-control credits (docs/pcie.md).
  return Section<L>("")
      .one_of("generation", &L::generation, 3, {3, 4, 5}, "", "PCIe generation: 8, 16 or 32 GT/s per lane, 128b/130b")
      .one_of("width", &L::width, 8, {1, 2, 4, 8, 16}, "lanes", "link width")
      .one_of("max_payload_bytes", &L::max_payload_bytes, 256, sizes, "bytes", "Max_Payload_Size: the largest write or completion")
      .one_of("max_read_request_bytes", &L::max_read_request_bytes, 512, sizes, "bytes",
              "Max_Read_Request_Size: the largest read request")
      .one_of("rcb_bytes", &L::rcb_bytes, 64, {64, 128}, "bytes", "the root port's Read Completion Boundary")
      .choice("completion_split", &L::completion_split, CompletionSplit::Rcb,
              {{"rcb", CompletionSplit::Rcb}, {"mps", CompletionSplit::Mps}},
              "read completions: one per RCB-aligned block, or as large as max_payload_bytes allows")
      .boolean("ecrc", &L::ecrc, false, "every TLP carries a 4-byte digest (ECRC)")
      .integer("ack_every_tlps", &L::ack_every_tlps, 4, 0, 4096, "TLPs",
               "the receiver sends one Ack DLLP per this many TLPs, on the other direction; 0: none")
      .integer("fc_update_every_tlps", &L::fc_update_every_tlps, 4, 0, 4096, "TLPs",
               "the receiver sends one UpdateFC DLLP per this many TLPs, on the other direction; 0: none")
      .number("link_latency_ns", &L::link_latency_ns, 50, 0, 1e6, "ns", "one-way latency of the link (PHY pipelines and flight)")
      .number("rc_latency_ns", &L::rc_latency_ns, 125, 0, 1e6, "ns",
              "each pass through the root complex: a request on its way to the IOMMU, a completion on its way back")
      .integer("posted_header_credits", &L::posted_header_credits, 0, 0, 4096, "credits",
               "posted header credits the root port advertises; 0: infinite")
      .integer("posted_data_credits", &L::posted_data_credits, 0, 0, 65536, "credits",
               "posted data credits (16 bytes each) the root port advertises; 0: infinite")
      .integer("non_posted_header_credits", &L::non_posted_header_credits, 0, 0, 4096, "credits",
               "non-posted header credits the root port advertises; 0: infinite")
      .check("", [](const L& l) { return pcie::validate(l); });
}
}  // namespace

Section<PcieSettings> pcie_keys() {
  return Section<PcieSettings>(
             "The PCIe link and root complex between each lane's endpoints and its IOMMU (models/pcie, docs/pcie.md).")
      .boolean("enabled", &PcieSettings::enabled, false,
               "DMAs cross a PCIe link and root complex (off: endpoints reach the IOMMU directly)")
      .embed(&PcieSettings::link, link_keys());
}

}  // namespace iommusim::platforms

// The configuration of one PCIe link and its root port: what models/pcie/tlp.h,
// credits.h, link.h and root_complex.h read. Plain values, checked by validate().
//
// Models: generations 3, 4 and 5 (8, 16 and 32 GT/s per lane, 128b/130b encoding: PCIe
// Base Spec 5.0 §4.2.2), widths x1, x2, x4, x8 and x16 (§4.2.4; x12 and x32
// are rarely built and not offered), Max_Payload_Size and Max_Read_Request_Size
// (§7.5.3.4, Device Control: 128..4096 B in powers of two), the Read Completion Boundary
// (§2.3.1.1: 64 or 128 B at the root port), the optional TLP digest (ECRC, §2.7.1), how
// often the receiver sends Ack and UpdateFC DLLPs, the link's one-way latency and the root
// complex's pipeline latency, and the upstream receive credits of the root port (§2.6.1).
// Does not model: Gen1/2 (8b/10b), flit mode (Gen6), lane-to-lane skew, SKP ordered sets
// (about 0.3% of the wire), replays, power states.
#pragma once
#include <cstdint>
#include <string>

namespace iommusim::pcie {

enum class CompletionSplit : uint8_t {
  Rcb,   // one completion per RCB-aligned block (many root complexes return cache lines)
  Mps,   // completions as large as Max_Payload_Size allows, split only at RCB boundaries
};

struct LinkConfig {
  unsigned generation = 3;                // 3, 4 or 5
  unsigned width = 8;                     // lanes: 1, 2, 4, 8 or 16
  unsigned max_payload_bytes = 256;       // MPS
  unsigned max_read_request_bytes = 512;  // MRRS
  unsigned rcb_bytes = 64;                // the root port's Read Completion Boundary
  CompletionSplit completion_split = CompletionSplit::Rcb;
  bool ecrc = false;                      // every TLP carries a 4-byte digest
  unsigned ack_every_tlps = 4;            // one Ack DLLP per this many TLPs received; 0: none
  unsigned fc_update_every_tlps = 4;      // one UpdateFC DLLP per this many TLPs received; 0: none
  double link_latency_ns = 50;            // one way: PHY pipelines and flight, either direction
  double rc_latency_ns = 125;             // each pass through the root complex, either way
  // Upstream receive credits of the root port (§2.6.1); 0: infinite. Data credits are
  // 16-byte units. Endpoints advertise infinite completion credits (§2.6.1), so the
  // downstream completions need none.
  unsigned posted_header_credits = 0;
  unsigned posted_data_credits = 0;
  unsigned non_posted_header_credits = 0;
};

// "" when usable, else a message naming the offending field.
std::string validate(const LinkConfig& c);

// Transfer rate of one lane in GT/s: 8, 16 or 32.
unsigned gigatransfers(unsigned generation);

}  // namespace iommusim::pcie

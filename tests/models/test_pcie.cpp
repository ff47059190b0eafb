// models/pcie: TLP arithmetic, link bandwidth and credits as known answers worked out by
// hand from the PCIe Base Spec 5.0 layouts (tlp.h), and the root complex against a
// test-local IOMMU with fixed translation and memory times. Each TEST runs in its own
// process.
#include <cstdint>
#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/dma_attributes.h"
#include "models/pcie/credits.h"
#include "models/pcie/link.h"
#include "models/pcie/root_complex.h"
#include "models/pcie/tlp.h"

namespace {

using iommusim::common::DmaAttributes;
using iommusim::common::IommuResponse;
using iommusim::common::Ps;
using namespace iommusim::pcie;

constexpr uint64_t kLow = 0x40000000;   // 1 GiB: 3-DW request headers

// Gen3 x8, MPS 256, MRRS 512, RCB 64, no latencies, infinite credits.
LinkConfig gen3x8() {
  LinkConfig c;
  c.generation = 3;
  c.width = 8;
  c.max_payload_bytes = 256;
  c.max_read_request_bytes = 512;
  c.rcb_bytes = 64;
  c.link_latency_ns = 0;
  c.rc_latency_ns = 0;
  return c;
}

// ---------------------------------------------------------------------------------------
// TLP arithmetic

TEST(PcieTlp, WriteSplitsAtMpsAndAtFourKilobytes) {
  const LinkConfig c = gen3x8();
  // 1000 B from a page start: 256 + 256 + 256 + 232 B. Wire: 4 x (8 framing + 12 header)
  // + 1000 = 1080 B. Data credits (16 B): 16 + 16 + 16 + ceil(232/16) = 15, so 63.
  Train t = posted_writes(c, kLow, 1000);
  EXPECT_EQ(t.tlps, 4u);
  EXPECT_EQ(t.payload_bytes, 1000u);
  EXPECT_EQ(t.wire_bytes, 1080u);
  EXPECT_EQ(t.data_credits, 63u);
  // 256 B at 0x...F80 crosses 4 KB at 0x...1000: two TLPs of 128 B (§2.2.7), though one
  // MPS TLP would hold it. Wire: 2 x 20 + 256 = 296 B.
  t = posted_writes(c, kLow + 0xF80, 256);
  EXPECT_EQ(t.tlps, 2u);
  EXPECT_EQ(t.wire_bytes, 296u);
  EXPECT_EQ(t.data_credits, 16u);
  // Above 4 GB the header is 4 DW: 8 + 16 + 64 = 88 B; with ECRC 92.
  LinkConfig e = c;
  EXPECT_EQ(posted_writes(c, 0x100000000ull, 64).wire_bytes, 88u);
  e.ecrc = true;
  EXPECT_EQ(posted_writes(e, 0x100000000ull, 64).wire_bytes, 92u);
}

TEST(PcieTlp, ReadRequestsSplitAtMrrsAndCarryNoData) {
  const LinkConfig c = gen3x8();
  // 4096 B at a page start, MRRS 512: 8 requests of 20 B.
  Train t = read_requests(c, kLow, 4096);
  EXPECT_EQ(t.tlps, 8u);
  EXPECT_EQ(t.payload_bytes, 0u);
  EXPECT_EQ(t.wire_bytes, 160u);
  // 600 B from 0x...E00: 512 B up to the page end (0xE00 + 512 = 0x1000), then 88 B in the
  // next page: 2 requests.
  EXPECT_EQ(read_requests(c, kLow + 0xE00, 600).tlps, 2u);
  // 4-DW headers above 4 GB: 24 B each.
  EXPECT_EQ(read_requests(c, 0x100000000ull, 64).wire_bytes, 24u);
}

TEST(PcieTlp, CompletionsSplitAtTheReadCompletionBoundary) {
  LinkConfig c = gen3x8();
  // 256 B from offset 0x20, RCB 64, one completion per RCB block: 32 (to 0x40), 64, 64,
  // 64 and 32 B: 5 completions of 8 + 12 header bytes each, 5 x 20 + 256 = 356 B.
  Train t = completions(c, kLow + 0x20, 256);
  EXPECT_EQ(t.tlps, 5u);
  EXPECT_EQ(t.payload_bytes, 256u);
  EXPECT_EQ(t.wire_bytes, 356u);
  // As large as MPS allows, split only at RCB boundaries (§2.3.1.1). 256 B fit in one
  // completion of MPS 256, which finishes the request and so need not end on an RCB
  // boundary: 1 completion, 20 + 256 = 276 B. 320 B from 0x20 (to 0x160) do not: the first
  // ends at the RCB boundary 0x100 (224 B), the second finishes with 96 B: 2 x 20 + 320 = 360 B.
  c.completion_split = CompletionSplit::Mps;
  t = completions(c, kLow + 0x20, 256);
  EXPECT_EQ(t.tlps, 1u);
  EXPECT_EQ(t.wire_bytes, 276u);
  t = completions(c, kLow + 0x20, 320);
  EXPECT_EQ(t.tlps, 2u);
  EXPECT_EQ(t.payload_bytes, 320u);
  EXPECT_EQ(t.wire_bytes, 360u);
  // An aligned 1024 B read: two 512 B requests (MRRS), each answered by two 256 B
  // completions (MPS): 4 x 20 + 1024 = 1104 B.
  t = completions(c, kLow, 1024);
  EXPECT_EQ(t.tlps, 4u);
  EXPECT_EQ(t.wire_bytes, 1104u);
  // RCB 128 with completions of one RCB: 1024 / 128 = 8.
  c.rcb_bytes = 128;
  c.completion_split = CompletionSplit::Rcb;
  EXPECT_EQ(completions(c, kLow, 1024).tlps, 8u);
}

TEST(PcieTlp, SerialisationTime) {
  LinkConfig c = gen3x8();
  // Gen3: 8 GT/s per lane, 128b/130b: a byte takes 8 x 130/128 / 8 ns = 1.015625 ns on one
  // lane, 126.953125 ps striped over 8. 276 B: 35039.0625 ps, rounded up to 35040.
  EXPECT_EQ(serialise_ps(c, 276), 35040u);
  // Gen5 x16: 4096 B x 8 x 130/128 / (32 x 16) ns = 65 ns exactly.
  c.generation = 5;
  c.width = 16;
  EXPECT_EQ(serialise_ps(c, 4096), 65000u);
  // Gen4 x1: one byte is 8 x 130/128 / 16 ns = 507.8125 ps, rounded up to 508.
  c.generation = 4;
  c.width = 1;
  EXPECT_EQ(serialise_ps(c, 1), 508u);
}

// ---------------------------------------------------------------------------------------
// Effective payload bandwidth of a saturated link, Gen3 x8, MPS 256, addresses below 4 GB.
//
// The raw rate: 8 GT/s x 8 lanes x 128/130 = 63.0154 Gb/s of bytes on the wire. A TLP
// costs 8 B of framing (STP token with sequence number, LCRC) and a 12 B header; an Ack
// and an UpdateFC DLLP (8 B each) go back per 4 TLPs received, on the other direction.
//
//   write 256 B: upstream 8 + 12 + 256 = 276 B         -> 256/276 x 63.0154 = 58.449 Gb/s
//   write  64 B: upstream 8 + 12 + 64 = 84 B           ->  64/84  x 63.0154 = 48.012 Gb/s
//   read   64 B: downstream one completion 84 B, plus the DLLPs answering the 20 B read
//                requests upstream, 2 x 8 B per 4 = 4 B per read: 88 B
//                                                      ->  64/88  x 63.0154 = 45.829 Gb/s
//   read  256 B: downstream 4 completions at RCB 64: 4 x 84 = 336 B, + 4 B of DLLPs: 340 B
//                                                      -> 256/340 x 63.0154 = 47.447 Gb/s
//   read  256 B, completions up to MPS: 276 + 4 = 280 B -> 256/280 x 63.0154 = 57.614 Gb/s
// Each run of TLPs is rounded up to a whole picosecond on the wire, hence the tolerance.

constexpr double kRawGbps = 8.0 * 8 * 128 / 130;   // 63.0154

double write_gbps(const LinkConfig& c, uint64_t bytes, unsigned n) {
  Link link("link", c);
  Ps end = 0;
  for (unsigned i = 0; i < n; ++i) end = link.send(Direction::Up, TlpType::Posted, posted_writes(c, kLow + i * 4096, bytes), 0).arrived;
  return double(n) * double(bytes) * 8 / double(end) * 1000;   // bits per ps -> Gb/s
}

double read_gbps(const LinkConfig& c, uint64_t bytes, unsigned n) {
  Link link("link", c);
  Ps end = 0;
  for (unsigned i = 0; i < n; ++i) {
    const uint64_t a = kLow + i * 4096;
    link.send(Direction::Up, TlpType::NonPosted, read_requests(c, a, bytes), 0);
    end = link.send(Direction::Down, TlpType::Completion, completions(c, a, bytes), 0).arrived;
  }
  return double(n) * double(bytes) * 8 / double(end) * 1000;
}

TEST(PcieLink, WriteBandwidthKnownAnswers) {
  const LinkConfig c = gen3x8();
  EXPECT_NEAR(write_gbps(c, 256, 1024), kRawGbps * 256 / 276, 0.005);
  EXPECT_NEAR(kRawGbps * 256 / 276, 58.449, 0.001);
  EXPECT_NEAR(write_gbps(c, 64, 1024), kRawGbps * 64 / 84, 0.005);
  EXPECT_NEAR(kRawGbps * 64 / 84, 48.012, 0.001);
}

TEST(PcieLink, ReadBandwidthKnownAnswers) {
  LinkConfig c = gen3x8();
  EXPECT_NEAR(read_gbps(c, 64, 1024), kRawGbps * 64 / 88, 0.005);
  EXPECT_NEAR(kRawGbps * 64 / 88, 45.829, 0.001);
  EXPECT_NEAR(read_gbps(c, 256, 1024), kRawGbps * 256 / 340, 0.005);
  EXPECT_NEAR(kRawGbps * 256 / 340, 47.447, 0.001);
  c.completion_split = CompletionSplit::Mps;
  EXPECT_NEAR(read_gbps(c, 256, 1024), kRawGbps * 256 / 280, 0.005);
  EXPECT_NEAR(kRawGbps * 256 / 280, 57.614, 0.001);
}

TEST(PcieLink, DllpsTravelTheOtherWay) {
  LinkConfig c = gen3x8();
  c.ack_every_tlps = 2;
  c.fc_update_every_tlps = 4;
  Link link("link", c);
  // 8 write TLPs upstream: 4 Acks and 2 UpdateFCs downstream, none upstream.
  link.send(Direction::Up, TlpType::Posted, posted_writes(c, kLow, 2048), 0);
  iommusim::common::StatRegistry reg;
  link.register_stats(reg, "pcie");
  EXPECT_EQ(reg.counter("pcie.up.tlps"), 8u);
  EXPECT_EQ(reg.counter("pcie.down.dllps"), 6u);
  EXPECT_EQ(reg.counter("pcie.up.dllps"), 0u);
  EXPECT_EQ(reg.counter("pcie.down.wire_bytes"), 48u);
  EXPECT_EQ(reg.counter("pcie.up.wire_bytes"), 8 * 20 + 2048u);
}

// ---------------------------------------------------------------------------------------
// Credits

TEST(PcieLink, NonPostedCreditExhaustionWaitsForTheFirstCreditBack) {
  LinkConfig c = gen3x8();
  c.link_latency_ns = 100;
  c.rc_latency_ns = 200;
  c.non_posted_header_credits = 2;
  Link link("link", c);
  const Train rd = read_requests(c, kLow, 64);   // one 20 B request: 2540 ps (2539.0625 up)
  ASSERT_EQ(serialise_ps(c, rd.wire_bytes), 2540u);
  const Link::Delivery a = link.send(Direction::Up, TlpType::NonPosted, rd, 0);
  const Link::Delivery b = link.send(Direction::Up, TlpType::NonPosted, rd, 0);
  EXPECT_EQ(a.sent, 2540u);
  EXPECT_EQ(a.arrived, 102540u);
  EXPECT_EQ(b.sent, 5080u);
  // The third has no credit until the first's returns: it arrived at 102540, the root
  // complex took it in 200 ns later, the UpdateFC took 100 ns back: 402540. Then 2540 on
  // the wire. Without the limit it would have been sent at 7620.
  const Link::Delivery third = link.send(Direction::Up, TlpType::NonPosted, rd, 0);
  EXPECT_EQ(third.sent, 2540u + 100000 + 200000 + 100000 + 2540);
  EXPECT_EQ(third.arrived, third.sent + 100000);
  iommusim::common::StatRegistry reg;
  link.register_stats(reg, "pcie");
  EXPECT_EQ(reg.counter("pcie.credits.non_posted_header.waited"), 1u);
  EXPECT_EQ(reg.counter("pcie.credits.posted_header.waited"), 0u);
}

TEST(PcieLink, PostedDataCreditsSplitARunIntoBursts) {
  LinkConfig c = gen3x8();
  c.link_latency_ns = 100;
  c.rc_latency_ns = 200;
  c.posted_data_credits = 16;   // one 256 B TLP
  Link link("link", c);
  // 512 B: two 276 B TLPs (35040 ps each). The first is sent at 35040 and arrives at
  // 135040; its 16 credits return at 135040 + 200000 + 100000 = 435040, when the second
  // may start: sent at 470080.
  const Link::Delivery d = link.send(Direction::Up, TlpType::Posted, posted_writes(c, kLow, 512), 0);
  EXPECT_EQ(d.sent, 435040u + 35040);
  EXPECT_EQ(d.arrived, 435040u + 35040 + 100000);
}

TEST(PcieLink, CreditPoolReturnsInOrder) {
  CreditPool pool(4);
  EXPECT_EQ(pool.take(3, 0, 1000), 0u);
  EXPECT_EQ(pool.take(1, 10, 500), 10u);
  // Two more: the oldest run (3 units, back at 1000) must return first.
  EXPECT_EQ(pool.free_at(2, 20), 1000u);
  EXPECT_EQ(pool.take(2, 20, 3000), 1000u);
  CreditPool infinite(0);
  EXPECT_EQ(infinite.take(1000, 7, 9), 7u);
}

TEST(PcieLink, BadConfigNamesTheField) {
  LinkConfig c = gen3x8();
  EXPECT_EQ(validate(c), "");
  auto msg = [](std::function<void(LinkConfig&)> f) {
    LinkConfig c = gen3x8();
    f(c);
    return validate(c);
  };
  EXPECT_NE(msg([](LinkConfig& c) { c.generation = 2; }).find("generation"), std::string::npos);
  EXPECT_NE(msg([](LinkConfig& c) { c.width = 3; }).find("width"), std::string::npos);
  EXPECT_NE(msg([](LinkConfig& c) { c.max_payload_bytes = 192; }).find("max_payload_bytes"), std::string::npos);
  EXPECT_NE(msg([](LinkConfig& c) { c.max_read_request_bytes = 8192; }).find("max_read_request_bytes"), std::string::npos);
  EXPECT_NE(msg([](LinkConfig& c) { c.rcb_bytes = 32; }).find("rcb_bytes"), std::string::npos);
  EXPECT_NE(msg([](LinkConfig& c) { c.posted_data_credits = 8; }).find("posted_data_credits"), std::string::npos);
  EXPECT_THROW(Link("link", LinkConfig{0}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Root complex, in front of a stand-in IOMMU that translates in 30 ns and accesses memory
// in 70 ns, and reports both in the DmaAttributes extension as the real front end does.

struct FakeIommu : sc_core::sc_module {
  tlm_utils::simple_target_socket<FakeIommu> socket;
  std::vector<uint64_t> addrs, lengths;
  std::vector<Ps> times;
  uint64_t fault_from = ~0ull;
  explicit FakeIommu(sc_core::sc_module_name n) : sc_module(n), socket("socket") {
    socket.register_b_transport(this, &FakeIommu::b_transport);
  }
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
    addrs.push_back(p.get_address());
    lengths.push_back(p.get_data_length());
    times.push_back(iommusim::common::now_ps() + iommusim::common::to_ps(delay));
    auto* ext = p.get_extension<DmaAttributes>();
    if (p.get_address() >= fault_from) {
      ext->response = IommuResponse::Fault;
      ext->translation_ps = 30000;
      ext->memory_ps = 0;
      delay += sc_core::sc_time(30, sc_core::SC_NS);
      p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
      return;
    }
    ext->response = IommuResponse::Ok;
    ext->translation_ps = 30000;
    ext->memory_ps = 70000;
    delay += sc_core::sc_time(100, sc_core::SC_NS);
    p.set_response_status(tlm::TLM_OK_RESPONSE);
  }
};

struct Device : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<Device> socket;
  std::function<void(Device&)> script;
  SC_HAS_PROCESS(Device);
  Device(sc_core::sc_module_name n, std::function<void(Device&)> f) : sc_module(n), socket("socket"), script(std::move(f)) {
    SC_THREAD(run);
  }
  void run() { script(*this); }
  // One DMA at the current time (0 in these tests); returns its annotated completion time
  // (the root complex may have waited between pages) and the extension.
  Ps dma(bool write, uint64_t addr, std::vector<unsigned char>& buf, DmaAttributes*& ext) {
    tlm::tlm_generic_payload p;
    ext = new DmaAttributes;
    p.set_extension(ext);
    p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_address(addr);
    p.set_data_ptr(buf.data());
    p.set_data_length(unsigned(buf.size()));
    p.set_streaming_width(unsigned(buf.size()));
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    socket->b_transport(p, d);
    last_status = p.get_response_status();
    last_addr = p.get_address();
    last_len = p.get_data_length();
    p.clear_extension(ext);
    return iommusim::common::now_ps() + iommusim::common::to_ps(d);
  }
  tlm::tlm_response_status last_status = tlm::TLM_INCOMPLETE_RESPONSE;
  uint64_t last_addr = 0, last_len = 0;
};

LinkConfig rc_config() {
  LinkConfig c = gen3x8();
  c.link_latency_ns = 50;
  c.rc_latency_ns = 100;
  c.ack_every_tlps = 0;   // no DLLPs: the arithmetic below stays short
  c.fc_update_every_tlps = 0;
  return c;
}

TEST(PcieRootComplex, SmallReadLatencyAndItsParts) {
  Ps latency = 0, translation = 0, memory = 0;
  FakeIommu iommu("iommu");
  RootComplex rc("rc", rc_config());
  Device dev("dev", [&](Device& d) {
    std::vector<unsigned char> buf(64);
    DmaAttributes* ext = nullptr;
    latency = d.dma(false, kLow, buf, ext);
    translation = ext->translation_ps;
    memory = ext->memory_ps;
    delete ext;
  });
  dev.socket.bind(rc.from_devices);
  rc.to_iommu.bind(iommu.socket);
  sc_core::sc_start();
  // Request 20 B: 2540 ps; + 50 ns link; + 100 ns root complex: the IOMMU sees it at
  // 152540. + 30 ns translation + 70 ns memory = 252540; + 100 ns root complex = 352540;
  // the 84 B completion takes 10665 ps (10664.0625 up) and 50 ns of link: 413205.
  ASSERT_EQ(iommu.times.size(), 1u);
  EXPECT_EQ(iommu.times[0], 152540u);
  EXPECT_EQ(latency, 413205u);
  EXPECT_EQ(translation, 30000u);
  EXPECT_EQ(memory, 70000u);
}

TEST(PcieRootComplex, MultiPageReadIsPipelinedPageByPage) {
  Ps latency = 0;
  FakeIommu iommu("iommu");
  RootComplex rc("rc", rc_config());
  Device dev("dev", [&](Device& d) {
    std::vector<unsigned char> buf(8192);
    DmaAttributes* ext = nullptr;
    latency = d.dma(false, kLow, buf, ext);
    delete ext;
    EXPECT_EQ(d.last_addr, kLow);   // the device gets its own payload back
    EXPECT_EQ(d.last_len, 8192u);
  });
  dev.socket.bind(rc.from_devices);
  rc.to_iommu.bind(iommu.socket);
  sc_core::sc_start();
  // Page 1: 8 requests (MRRS 512) of 20 B = 160 B: 20313 ps (20312.5 up); at the IOMMU at
  // 20313 + 50000 + 100000 = 170313; done 270313; completions from 370313: 64 of 84 B
  // (RCB 64) = 5376 B = 682500 ps; arrive 370313 + 682500 + 50000 = 1102813.
  // Page 2: its requests follow on the wire (sent 40626), at the IOMMU at 190626, done
  // 290626, completions ready at 390626 but the wire is busy until 1052813: they arrive
  // at 1052813 + 682500 + 50000 = 1785313.
  ASSERT_EQ(iommu.addrs.size(), 2u);
  EXPECT_EQ(iommu.addrs[1], kLow + 4096);
  EXPECT_EQ(iommu.lengths[0], 4096u);
  EXPECT_EQ(iommu.times[0], 170313u);
  EXPECT_EQ(iommu.times[1], 190626u);
  EXPECT_EQ(latency, 1785313u);
}

TEST(PcieRootComplex, WriteAcrossFourKilobytesGoesAsTwoPages) {
  Ps latency = 0;
  FakeIommu iommu("iommu");
  RootComplex rc("rc", rc_config());
  Device dev("dev", [&](Device& d) {
    std::vector<unsigned char> buf(256);
    DmaAttributes* ext = nullptr;
    latency = d.dma(true, kLow + 0xF80, buf, ext);
    delete ext;
  });
  dev.socket.bind(rc.from_devices);
  rc.to_iommu.bind(iommu.socket);
  sc_core::sc_start();
  // Two TLPs of 128 B, 8 + 12 + 128 = 148 B each: 148 x 126.953125 = 18789.0625 ps, up to
  // 18790. The first page reaches the IOMMU at 18790 + 50000 + 100000 = 168790, the second
  // at 37580 + 150000 = 187580 and is in memory 100 ns later.
  ASSERT_EQ(iommu.addrs.size(), 2u);
  EXPECT_EQ(iommu.addrs[0], kLow + 0xF80);
  EXPECT_EQ(iommu.lengths[0], 128u);
  EXPECT_EQ(iommu.addrs[1], kLow + 0x1000);
  EXPECT_EQ(iommu.lengths[1], 128u);
  EXPECT_EQ(iommu.times[0], 168790u);
  EXPECT_EQ(iommu.times[1], 187580u);
  EXPECT_EQ(latency, 287580u);
}

TEST(PcieRootComplex, RefusedPageEndsTheReadWithACompletionWithoutData) {
  Ps latency = 0;
  tlm::tlm_response_status status = tlm::TLM_OK_RESPONSE;
  FakeIommu iommu("iommu");
  iommu.fault_from = kLow + 4096;
  RootComplex rc("rc", rc_config());
  Device dev("dev", [&](Device& d) {
    std::vector<unsigned char> buf(3 * 4096);
    DmaAttributes* ext = nullptr;
    latency = d.dma(false, kLow, buf, ext);
    status = d.last_status;
    delete ext;
  });
  dev.socket.bind(rc.from_devices);
  rc.to_iommu.bind(iommu.socket);
  sc_core::sc_start();
  EXPECT_EQ(status, tlm::TLM_GENERIC_ERROR_RESPONSE);
  ASSERT_EQ(iommu.addrs.size(), 2u);   // the third page is never asked for
  // Page 2 reaches the IOMMU at 190626 (as above), is refused at 220626; its 20 B
  // completion is ready at 320626 and fits on the wire before page 1's data (from 370313;
  // completions of different requests may pass each other), arriving at 373166. The DMA
  // ends with page 1's data, at 1102813 (as above).
  EXPECT_EQ(latency, 1102813u);
}

}  // namespace

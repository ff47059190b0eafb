// traffic::Endpoint against a test-local target with a fixed access time, and the
// SystemC-free AddressGenerator. Each TEST runs in its own process (one sc_start each).
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/dma_attributes.h"
#include "models/common/stats.h"
#include "traffic/endpoint.h"
#include "traffic/job_queue.h"

namespace {

using iommusim::common::AtsType;
using iommusim::common::DmaAttributes;
using iommusim::common::IommuResponse;
using iommusim::traffic::AddressGenerator;
using iommusim::traffic::Endpoint;
using iommusim::traffic::EndpointConfig;
using iommusim::traffic::Pattern;
using sc_core::SC_NS;
using sc_core::sc_time;

// Records every access, checks the sideband, takes `latency` per access and answers
// Fault / Aborted / address error for configured address ranges ([lo, hi)).
struct TestTarget : sc_core::sc_module {
  struct Range { uint64_t lo = 1, hi = 0; bool has(uint64_t a) const { return a >= lo && a < hi; } };

  tlm_utils::simple_target_socket<TestTarget> socket;
  sc_time latency = sc_time(100, SC_NS);
  uint32_t rid = 0;
  bool pasid_valid = false;
  uint32_t pasid = 0;
  Range fault, aborted, error;

  std::vector<uint64_t> addrs;
  std::vector<sc_time> times;
  std::vector<bool> is_read;
  std::vector<unsigned> lengths;
  unsigned bad_sideband = 0;

  TestTarget(sc_core::sc_module_name n, uint32_t rid_, bool pv, uint32_t pasid_)
      : sc_module(n), socket("socket"), rid(rid_), pasid_valid(pv), pasid(pasid_) {
    socket.register_b_transport(this, &TestTarget::b_transport);
  }

  void b_transport(tlm::tlm_generic_payload& p, sc_time& delay) {
    addrs.push_back(p.get_address());
    times.push_back(sc_core::sc_time_stamp() + delay);
    is_read.push_back(p.is_read());
    lengths.push_back(p.get_data_length());
    auto* ext = p.get_extension<DmaAttributes>();
    if (!ext || ext->requester_id != rid || ext->pasid_valid != pasid_valid || ext->pasid != pasid ||
        ext->ats != AtsType::Untranslated || ext->response != IommuResponse::None ||
        p.get_response_status() != tlm::TLM_INCOMPLETE_RESPONSE)
      ++bad_sideband;
    sc_core::wait(delay + latency);
    delay = sc_core::SC_ZERO_TIME;
    const uint64_t a = p.get_address();
    if (fault.has(a) || aborted.has(a)) {
      if (ext) ext->response = fault.has(a) ? IommuResponse::Fault : IommuResponse::Aborted;
      p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
    } else if (error.has(a)) {
      p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    } else {
      if (ext) ext->response = IommuResponse::Ok;
      p.set_response_status(tlm::TLM_OK_RESPONSE);
    }
  }
};

// Runs a test-supplied function as an SC_THREAD.
struct Script : sc_core::sc_module {
  std::function<void()> fn;
  SC_HAS_PROCESS(Script);
  Script(sc_core::sc_module_name n, std::function<void()> f) : sc_module(n), fn(std::move(f)) { SC_THREAD(run); }
  void run() { fn(); }
};

// Records when the endpoint's done event fires.
struct DoneWatcher : sc_core::sc_module {
  Endpoint& ep;
  sc_time at = sc_core::SC_ZERO_TIME;
  unsigned fired = 0;
  SC_HAS_PROCESS(DoneWatcher);
  DoneWatcher(sc_core::sc_module_name n, Endpoint& e) : sc_module(n), ep(e) { SC_THREAD(run); }
  void run() {
    for (;;) {
      sc_core::wait(ep.done_event());
      at = sc_core::sc_time_stamp();
      ++fired;
    }
  }
};

EndpointConfig base_config() {
  EndpointConfig c;
  c.requester_id = 0x2a;
  c.pasid_valid = true;
  c.pasid = 7;
  c.clock_mhz = 250;  // 4 ns per issue cycle
  c.issue_cycles = 1;
  return c;
}

bool crosses_page(uint64_t addr, uint64_t len) { return addr / 4096 != (addr + len - 1) / 4096; }

// ---------------------------------------------------------------------------------------
// Pure parts

TEST(Endpoint, ParsePattern) {
  EXPECT_EQ(iommusim::traffic::parse_pattern("sequential"), Pattern::Sequential);
  EXPECT_EQ(iommusim::traffic::parse_pattern("random"), Pattern::Random);
  EXPECT_EQ(iommusim::traffic::parse_pattern("strided"), Pattern::Strided);
  EXPECT_FALSE(iommusim::traffic::parse_pattern("Random").has_value());
  EXPECT_FALSE(iommusim::traffic::parse_pattern("").has_value());
  EXPECT_STREQ(iommusim::traffic::to_string(Pattern::Strided), "strided");
}

TEST(Endpoint, ValidateRejectsBadFields) {
  EXPECT_EQ(iommusim::traffic::validate(EndpointConfig{}), "");

  auto msg = [](auto mutate) {
    EndpointConfig c;
    mutate(c);
    return iommusim::traffic::validate(c);
  };
  EXPECT_NE(msg([](EndpointConfig& c) { c.outstanding = 0; }).find("outstanding"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.transfer_bytes = 0; }).find("transfer_bytes"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.transfer_bytes = iommusim::traffic::kMaxTransferBytes + 1; }).find("transfer_bytes"),
            std::string::npos);
  // 64 slots of 8 MiB: 512 MiB of buffers, beyond the 256 MiB an endpoint may hold.
  EXPECT_NE(msg([](EndpointConfig& c) { c.outstanding = 64; c.transfer_bytes = 8u << 20; }).find("outstanding * transfer_bytes"),
            std::string::npos);
  EXPECT_EQ(msg([](EndpointConfig& c) { c.transfer_bytes = 1u << 20; }), "");
  EXPECT_NE(msg([](EndpointConfig& c) { c.window_bytes = 0; }).find("window_bytes"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.window_bytes = 32; }).find("window_bytes"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.read_fraction = 1.5; }).find("read_fraction"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.read_fraction = -0.1; }).find("read_fraction"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.issue_gap_ns = -1; }).find("issue_gap_ns"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.clock_mhz = 0; }).find("clock_mhz"), std::string::npos);
  EXPECT_NE(msg([](EndpointConfig& c) { c.pattern = Pattern::Strided; c.stride_bytes = 0; }).find("stride_bytes"),
            std::string::npos);
  // A 128-byte window straddling a page boundary holds no 100-byte access within one page.
  EXPECT_NE(msg([](EndpointConfig& c) { c.window_base = 4096 - 64; c.window_bytes = 128; c.transfer_bytes = 100; })
                .find("window"),
            std::string::npos);
  EXPECT_EQ(msg([](EndpointConfig& c) { c.window_base = 4096 - 64; c.window_bytes = 128; c.transfer_bytes = 64; }), "");
  EXPECT_EQ(msg([](EndpointConfig& c) { c.transfer_bytes = 4096; c.window_bytes = 4096; }), "");
}

TEST(AddressGenerator, SameSeedSameRandomSequence) {
  EndpointConfig c = base_config();
  c.pattern = Pattern::Random;
  c.outstanding = 4;
  c.seed = 42;
  c.read_fraction = 0.5;
  AddressGenerator a(c), b(c);
  c.seed = 43;
  AddressGenerator other(c);
  unsigned differ = 0;
  for (unsigned i = 0; i < 4000; ++i) {
    const unsigned slot = (i * 7) % 4;
    const auto x = a.next(slot), y = b.next(slot), z = other.next(slot);
    ASSERT_EQ(x.addr, y.addr) << "draw " << i;
    ASSERT_EQ(x.is_read, y.is_read) << "draw " << i;
    if (x.addr != z.addr) ++differ;
  }
  EXPECT_GT(differ, 3900u);
  // One stream in issue order, whichever slot asks: the k-th access is the same however
  // the slots interleave (so vendors with different latencies see identical traffic).
  AddressGenerator s0(c), s1(c);
  std::vector<uint64_t> v0, v1;
  for (unsigned i = 0; i < 16; ++i) { v0.push_back(s0.next(0).addr); v1.push_back(s1.next(i % 4).addr); }
  EXPECT_EQ(v0, v1);
}

// The random pattern's k-th access: the engine's draw modulo the transfer-aligned offsets
// that fit, times the transfer size; then a second draw for read or write. Worked out
// from that rule with the standard engine (std::mt19937_64 is defined exactly by the C++
// standard), for offset counts that are a power of two, not one, and one.
TEST(AddressGenerator, RandomOffsetIsTheDrawModuloTheOffsetsThatFit) {
  for (const auto& [window, len, choices] :
       {std::tuple<uint64_t, unsigned, uint64_t>{1024, 64, 16}, {1000, 64, 15}, {3 * 4096, 4096, 3}, {4096, 4096, 1}}) {
    EndpointConfig c = base_config();
    c.pattern = Pattern::Random;
    c.window_base = 0x10000;
    c.window_bytes = window;
    c.transfer_bytes = len;
    c.read_fraction = 0.5;
    c.seed = 5;
    ASSERT_EQ(iommusim::traffic::validate(c), "");
    AddressGenerator g(c);
    std::mt19937_64 rng(5 * 1000003ull);
    for (unsigned i = 0; i < 2000; ++i) {
      const uint64_t offset = (rng() % choices) * len;
      const bool read = double(rng() >> 11) * 0x1.0p-53 < 0.5;
      const auto acc = g.next(0);
      ASSERT_EQ(acc.addr, c.window_base + offset) << window << "/" << len << " draw " << i;
      ASSERT_EQ(acc.is_read, read) << window << "/" << len << " draw " << i;
    }
  }
}

TEST(AddressGenerator, RandomInWindowAlignedWithinPage) {
  EndpointConfig c = base_config();
  c.pattern = Pattern::Random;
  c.outstanding = 3;
  c.window_base = 0x4000'0000;
  c.window_bytes = 1 << 20;
  c.transfer_bytes = 256;
  c.read_fraction = 0.3;
  AddressGenerator g(c);
  std::set<uint64_t> distinct;
  unsigned reads = 0;
  const unsigned n = 30000;
  for (unsigned i = 0; i < n; ++i) {
    const auto acc = g.next(i % 3);
    ASSERT_GE(acc.addr, c.window_base);
    ASSERT_LE(acc.addr + c.transfer_bytes, c.window_base + c.window_bytes);
    ASSERT_EQ(acc.addr % c.transfer_bytes, 0u);
    ASSERT_FALSE(crosses_page(acc.addr, c.transfer_bytes));
    distinct.insert(acc.addr);
    reads += acc.is_read;
  }
  EXPECT_GT(distinct.size(), 3500u);  // 4096 possible offsets
  EXPECT_NEAR(double(reads) / n, 0.3, 0.02);

  // A transfer size that does not divide 4 KB and an unaligned window: still in-window,
  // never crossing a page.
  c.window_base = 0x1234'5010;
  c.window_bytes = 3 * 4096 + 700;
  c.transfer_bytes = 96;
  AddressGenerator odd(c);
  for (unsigned i = 0; i < 20000; ++i) {
    const auto acc = odd.next(i % 3);
    ASSERT_GE(acc.addr, c.window_base);
    ASSERT_LE(acc.addr + c.transfer_bytes, c.window_base + c.window_bytes);
    ASSERT_FALSE(crosses_page(acc.addr, c.transfer_bytes)) << std::hex << acc.addr;
  }
}

TEST(AddressGenerator, SequentialSharedCursorSkipsPagesAndWraps) {
  EndpointConfig c = base_config();
  c.pattern = Pattern::Sequential;
  c.outstanding = 2;
  c.window_base = 0x10000;
  c.window_bytes = 256;
  c.transfer_bytes = 64;
  AddressGenerator g(c);
  // The cursor is shared: alternating slots continue one another's stream.
  const uint64_t want[] = {0x10000, 0x10040, 0x10080, 0x100c0, 0x10000, 0x10040};
  for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(g.next(i % 2).addr, want[i]) << i;

  // 96-byte transfers: 42 fit in a page (4032 bytes), the 43rd would cross, so it skips.
  c.outstanding = 1;
  c.window_base = 0;
  c.window_bytes = 2 * 4096;
  c.transfer_bytes = 96;
  AddressGenerator h(c);
  for (unsigned i = 0; i < 42; ++i) ASSERT_EQ(h.next(0).addr, i * 96u);
  EXPECT_EQ(h.next(0).addr, 4096u);
  for (unsigned i = 1; i < 42; ++i) ASSERT_EQ(h.next(0).addr, 4096u + i * 96u);
  EXPECT_EQ(h.next(0).addr, 0u);  // wrapped
}

// Transfers longer than a page span pages where they fall (the IOMMU or root complex
// splits them): sequential ones follow each other without skipping, random ones stay
// transfer-aligned inside the window.
TEST(AddressGenerator, TransfersLongerThanAPageSpanPages) {
  EndpointConfig c = base_config();
  c.pattern = Pattern::Sequential;
  c.window_base = 0x100000;
  c.window_bytes = 64 * 4096;
  c.transfer_bytes = 10000;
  AddressGenerator g(c);
  // 26 transfers fit (260000 <= 262144); the 27th would leave the window: wrap.
  for (unsigned i = 0; i < 26; ++i) ASSERT_EQ(g.next(0).addr, 0x100000u + i * 10000u);
  EXPECT_EQ(g.next(0).addr, 0x100000u);
  c.pattern = Pattern::Random;
  c.transfer_bytes = 1u << 16;
  AddressGenerator r(c);
  for (int i = 0; i < 200; ++i) {
    const uint64_t a = r.next(0).addr;
    ASSERT_EQ((a - c.window_base) % c.transfer_bytes, 0u);
    ASSERT_LE(a + c.transfer_bytes, c.window_base + c.window_bytes);
  }
}

TEST(AddressGenerator, StridedWrapsAtWindowEnd) {
  EndpointConfig c = base_config();
  c.pattern = Pattern::Strided;
  c.outstanding = 1;
  c.window_base = 0x80000;
  c.window_bytes = 4 * 4096;
  c.stride_bytes = 4096;
  c.transfer_bytes = 128;
  AddressGenerator g(c);
  const uint64_t want[] = {0x80000, 0x81000, 0x82000, 0x83000, 0x80000, 0x81000};
  for (uint64_t w : want) EXPECT_EQ(g.next(0).addr, w);

  // A stride that lands near the end of a page gets clamped back into the page.
  c.window_base = 0;
  c.window_bytes = 3 * 4096;
  c.stride_bytes = 4096 - 32;
  c.transfer_bytes = 64;
  AddressGenerator h(c);
  EXPECT_EQ(h.next(0).addr, 0u);
  EXPECT_EQ(h.next(0).addr, 4096u - 64);  // 4064 would cross into page 1
  EXPECT_EQ(h.next(0).addr, 8192u - 64);  // 8128 ends exactly at the page end
  EXPECT_EQ(h.next(0).addr, 3u * 4096 - 96);
  EXPECT_EQ(h.next(0).addr, 0u);          // 16256 + 64 > window: wrap
}

// ---------------------------------------------------------------------------------------
// Timed

TEST(Endpoint, CompletesTotalWithExactTiming) {
  EndpointConfig c = base_config();
  c.outstanding = 4;
  c.total_transactions = 100;
  c.pattern = Pattern::Random;
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  ep.socket.bind(tgt.socket);
  DoneWatcher watch("watch", ep);
  sc_core::sc_start();

  EXPECT_EQ(ep.completed(), 100u);
  EXPECT_EQ(tgt.addrs.size(), 100u);
  EXPECT_EQ(ep.reads(), 100u);
  EXPECT_EQ(ep.writes(), 0u);
  EXPECT_EQ(ep.faulted(), 0u);
  EXPECT_EQ(ep.errors(), 0u);
  EXPECT_EQ(ep.bytes(), 100u * 64);
  EXPECT_EQ(tgt.bad_sideband, 0u);
  for (unsigned len : tgt.lengths) EXPECT_EQ(len, 64u);
  // 4 slots in lockstep, 25 rounds of (1 issue cycle = 4 ns) + 100 ns.
  const sc_time round = sc_time(4, SC_NS) + sc_time(100, SC_NS);
  EXPECT_EQ(sc_core::sc_time_stamp(), 25.0 * round);
  EXPECT_EQ(sc_core::sc_time_stamp(), sc_time(2600, SC_NS));
  EXPECT_TRUE(ep.done());
  EXPECT_EQ(watch.fired, 1u);
  EXPECT_EQ(watch.at, sc_time(2600, SC_NS));
  EXPECT_EQ(ep.latency_ps().count(), 100u);
  EXPECT_EQ(ep.latency_ps().min(), 100'000u);
  EXPECT_EQ(ep.latency_ps().max(), 100'000u);
  // The first round issues at 4 ns from all four slots.
  for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(tgt.times[i], sc_time(4, SC_NS));
  EXPECT_EQ(tgt.times[4], sc_time(108, SC_NS));
}

TEST(Endpoint, SequentialSingleSlotInOrderAndWraps) {
  EndpointConfig c = base_config();
  c.outstanding = 1;
  c.pattern = Pattern::Sequential;
  c.window_base = 0x7000'0000;
  c.window_bytes = 256;
  c.total_transactions = 10;
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  ep.socket.bind(tgt.socket);
  sc_core::sc_start();

  ASSERT_EQ(tgt.addrs.size(), 10u);
  for (unsigned i = 0; i < 10; ++i) {
    EXPECT_EQ(tgt.addrs[i], c.window_base + (i % 4) * 64) << i;
    EXPECT_EQ(tgt.times[i], double(i) * sc_time(104, SC_NS) + sc_time(4, SC_NS)) << i;
  }
  EXPECT_EQ(tgt.bad_sideband, 0u);
  EXPECT_EQ(ep.completed(), 10u);
  EXPECT_EQ(sc_core::sc_time_stamp(), sc_time(1040, SC_NS));
}

// Twelve 64-byte writes, one at a time, at 0, 64, ..., 704.
EndpointConfig twelve_sequential_writes() {
  EndpointConfig c = base_config();
  c.outstanding = 1;
  c.pattern = Pattern::Sequential;
  c.window_base = 0;
  c.window_bytes = 12 * 64;
  c.total_transactions = 12;
  c.read_fraction = 0.0;  // all writes
  return c;
}

// DMAs 3 and 4 (addresses 128, 192) fault, DMA 6 (320) is aborted, DMA 9 (512) errs.
void answer_some_with_faults_and_an_error(TestTarget& tgt) {
  tgt.fault = {2 * 64, 4 * 64};
  tgt.aborted = {5 * 64, 6 * 64};
  tgt.error = {8 * 64, 9 * 64};
}

TEST(Endpoint, CountsFaultsAndErrors) {
  const EndpointConfig c = twelve_sequential_writes();
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  answer_some_with_faults_and_an_error(tgt);
  ep.socket.bind(tgt.socket);
  iommusim::common::StatRegistry reg;
  ep.register_stats(reg, "endpoint");
  sc_core::sc_start();

  EXPECT_EQ(ep.completed(), 12u);
  EXPECT_EQ(ep.faulted(), 3u);
  EXPECT_EQ(ep.errors(), 1u);
  EXPECT_EQ(ep.bytes(), 8u * 64);
  EXPECT_EQ(ep.writes(), 12u);
  for (bool r : tgt.is_read) EXPECT_FALSE(r);
  // The reused payload and extension come back clean for every transaction.
  EXPECT_EQ(tgt.bad_sideband, 0u);

  ASSERT_NE(reg.find_counter("endpoint.transactions"), nullptr);
  EXPECT_EQ(reg.find_counter("endpoint.transactions")->value(), 12u);
  EXPECT_EQ(reg.find_counter("endpoint.reads")->value(), 0u);
  EXPECT_EQ(reg.find_counter("endpoint.writes")->value(), 12u);
  EXPECT_EQ(reg.find_counter("endpoint.faults")->value(), 3u);
  EXPECT_EQ(reg.find_counter("endpoint.errors")->value(), 1u);
  EXPECT_EQ(reg.find_counter("endpoint.bytes")->value(), 8u * 64);
  ASSERT_NE(reg.find_histogram("endpoint.latency"), nullptr);
  EXPECT_EQ(reg.find_histogram("endpoint.latency")->count(), 12u);
}

// A warm-up boundary after 5 of 12 sequential DMAs: the callback runs once, right after the
// 5th is counted; a registry reset there leaves the 7 later DMAs: of the faulting
// addresses (DMAs 3, 4 and 6) only the 6th, and the error (DMA 9); 5 of them move 64 bytes.
TEST(Endpoint, OnCompletedRunsBetweenTwoDmas) {
  const EndpointConfig c = twelve_sequential_writes();
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  answer_some_with_faults_and_an_error(tgt);
  ep.socket.bind(tgt.socket);
  iommusim::common::StatRegistry reg;
  ep.register_stats(reg, "endpoint");
  unsigned calls = 0;
  ep.on_completed(5, [&] {
    ++calls;
    EXPECT_EQ(ep.completed(), 5u);
    EXPECT_EQ(ep.faulted(), 2u);
    reg.reset("endpoint.");
  });
  sc_core::sc_start();

  EXPECT_EQ(calls, 1u);
  EXPECT_EQ(ep.completed(), 12u);   // the endpoint itself still counts every DMA
  EXPECT_EQ(reg.counter("endpoint.transactions"), 7u);
  EXPECT_EQ(reg.counter("endpoint.faults"), 1u);
  EXPECT_EQ(reg.counter("endpoint.errors"), 1u);
  EXPECT_EQ(reg.counter("endpoint.bytes"), 5u * 64);
  EXPECT_EQ(reg.histogram("endpoint.latency").count(), 7u);
}

TEST(Endpoint, StartWaitsForGoAndStopEndsSlots) {
  EndpointConfig c = base_config();
  c.outstanding = 2;
  c.pattern = Pattern::Strided;
  c.total_transactions = 0;  // until stop()
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  ep.socket.bind(tgt.socket);
  sc_core::sc_event go;
  ep.start(go);
  DoneWatcher watch("watch", ep);
  Script driver("driver", [&] {
    sc_core::wait(500, SC_NS);
    go.notify(sc_core::SC_ZERO_TIME);
    sc_core::wait(500, SC_NS);
    ep.stop();
  });
  sc_core::sc_start();

  ASSERT_FALSE(tgt.times.empty());
  EXPECT_EQ(tgt.times.front(), sc_time(504, SC_NS));
  // Rounds issue at 504, 608, 712, 816, 920; the round in flight at 1000 ns completes at
  // 1020 ns and no slot issues again.
  EXPECT_EQ(ep.completed(), 10u);
  EXPECT_EQ(sc_core::sc_time_stamp(), sc_time(1020, SC_NS));
  EXPECT_EQ(watch.fired, 1u);
  EXPECT_EQ(watch.at, sc_time(1020, SC_NS));
  EXPECT_EQ(tgt.addrs[0], 0u);
  EXPECT_EQ(tgt.addrs[1], 4096u);  // strided, shared cursor
}

TEST(Endpoint, IssueGapRateLimitsEachSlot) {
  EndpointConfig c = base_config();
  c.outstanding = 1;
  c.pattern = Pattern::Sequential;
  c.issue_gap_ns = 500;
  c.total_transactions = 4;
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, c.pasid_valid, c.pasid);
  ep.socket.bind(tgt.socket);
  sc_core::sc_start();

  ASSERT_EQ(tgt.times.size(), 4u);
  for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(tgt.times[i], sc_time(500.0 * i + 4, SC_NS)) << i;
  // No gap wait after the final completion: the total is checked first.
  EXPECT_EQ(sc_core::sc_time_stamp(), sc_time(1604, SC_NS));
  EXPECT_EQ(ep.completed(), 4u);
  EXPECT_EQ(ep.latency_ps().max(), 100'000u);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Job source

// A JobQueue that records each completion's tag and outcome.
struct RecordingQueue : iommusim::traffic::JobQueue {
  using JobQueue::JobQueue;
  std::vector<std::pair<uint64_t, iommusim::traffic::DmaStats::Outcome>> done;
  void job_done(unsigned, const iommusim::traffic::DmaJob& j, iommusim::traffic::DmaStats::Outcome o) override {
    done.push_back({j.tag, o});
  }
};

// Jobs go earliest due first (ties in push order), each at its due time plus the issue
// cycle (4 ns), with its own address, size, direction and PASID; one larger than a slot's
// buffer completes as an Error without reaching the target; closing the empty queue ends
// the slots.
TEST(Endpoint, JobSourceIssuesEachJobAtItsTime) {
  using iommusim::traffic::DmaJob;
  using Outcome = iommusim::traffic::DmaStats::Outcome;
  EndpointConfig c = base_config();
  c.outstanding = 2;
  c.transfer_bytes = 4096;   // each slot's buffer: the largest job
  Endpoint ep("ep", c);
  TestTarget tgt("tgt", c.requester_id, true, 7);
  ep.socket.bind(tgt.socket);
  RecordingQueue q(8);
  ep.set_job_source(q);
  DoneWatcher watch("watch", ep);
  auto job = [](uint64_t tag, uint64_t iova, uint32_t bytes, bool read, uint64_t due_ns) {
    DmaJob j;
    j.tag = tag;
    j.iova = iova;
    j.bytes = bytes;
    j.read = read;
    j.pasid_valid = true;
    j.pasid = 7;
    j.not_before = due_ns * 1000;
    return j;
  };
  Script feed("feed", [&] {
    EXPECT_TRUE(q.push(job(1, 0x1000, 100, false, 500)));
    EXPECT_TRUE(q.push(job(2, 0x2000, 64, true, 200)));
    EXPECT_TRUE(q.push(job(3, 0x3000, 4096, true, 200)));
    EXPECT_TRUE(q.push(job(4, 0x4000, 8192, true, 0)));   // larger than a slot's buffer
    q.close();
  });
  sc_core::sc_start();

  ASSERT_EQ(tgt.addrs.size(), 3u);
  EXPECT_EQ(std::set<uint64_t>(tgt.addrs.begin(), tgt.addrs.begin() + 2), (std::set<uint64_t>{0x2000, 0x3000}));
  EXPECT_EQ(tgt.times[0], sc_time(204, SC_NS));
  EXPECT_EQ(tgt.times[1], sc_time(204, SC_NS));
  EXPECT_EQ(tgt.addrs[2], 0x1000u);
  EXPECT_EQ(tgt.times[2], sc_time(504, SC_NS));
  EXPECT_FALSE(tgt.is_read[2]);
  EXPECT_EQ(tgt.lengths[2], 100u);
  EXPECT_EQ(tgt.bad_sideband, 0u);
  ASSERT_EQ(q.done.size(), 4u);
  EXPECT_EQ(q.done[0], std::make_pair(uint64_t(4), Outcome::Error));
  EXPECT_EQ(q.done[3], std::make_pair(uint64_t(1), Outcome::Ok));
  EXPECT_EQ(ep.completed(), 4u);
  EXPECT_EQ(ep.errors(), 1u);
  EXPECT_EQ(ep.bytes(), 100u + 64 + 4096);
  EXPECT_EQ(watch.fired, 1u);
  EXPECT_EQ(watch.at, sc_time(604, SC_NS));   // the last DMA's 100 ns, then the slots leave
}

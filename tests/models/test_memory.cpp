#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
// SparseMemory: sparse storage, timed access cost and address errors.
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/clock.h"
#include "models/memory/sparse_memory.h"

namespace iommusim::memory {
namespace {

struct MemHarness : sc_core::sc_module {
  SC_HAS_PROCESS(MemHarness);
  SparseMemory mem;
  tlm_utils::simple_initiator_socket<MemHarness> init;
  std::function<void(MemHarness&)> body;
  bool finished = false;

  explicit MemHarness(const MemoryConfig& cfg, sc_core::sc_module_name name = "h") : sc_module(name), mem("mem", cfg), init("init") {
    init.bind(mem.socket);
    SC_THREAD(thread);
  }
  void thread() {
    if (body) body(*this);
    finished = !::testing::Test::HasFatalFailure();
  }
  void run(std::function<void(MemHarness&)> b) {
    body = std::move(b);
    sc_core::sc_start();
    EXPECT_TRUE(finished);
  }
  tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len) {
    tlm::tlm_generic_payload p;
    p.set_command(cmd);
    p.set_address(addr);
    p.set_data_ptr(static_cast<unsigned char*>(data));
    p.set_data_length(len);
    p.set_streaming_width(len);
    p.set_byte_enable_ptr(nullptr);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    init->b_transport(p, d);
    if (d != sc_core::SC_ZERO_TIME) sc_core::wait(d);
    return p.get_response_status();
  }
};

uint64_t now_ps() { return common::to_ps(sc_core::sc_time_stamp()); }

TEST(Memory, UnwrittenBytesReadZeroAndOnlyWrittenFramesExist) {
  MemoryConfig cfg;
  MemHarness h(cfg);
  h.run([](MemHarness& h) {
    EXPECT_EQ(h.mem.frames_allocated(), 0u);
    EXPECT_EQ(h.mem.read64(0x123456780), 0u);
    EXPECT_EQ(h.mem.frames_allocated(), 0u) << "reads must not allocate";
    // A write across the frame boundary at 0x5000 allocates exactly two frames.
    std::vector<uint8_t> in(32);
    for (unsigned i = 0; i < in.size(); ++i) in[i] = uint8_t(0xA0 + i);
    h.mem.write(0x5000 - 16, in.data(), in.size());
    EXPECT_EQ(h.mem.frames_allocated(), 2u);
    std::vector<uint8_t> out(48, 0xFF);
    h.mem.read(0x5000 - 24, out.data(), out.size());
    for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(out[i], 0u) << i;
    for (unsigned i = 0; i < 32; ++i) EXPECT_EQ(out[8 + i], in[i]) << i;
    for (unsigned i = 40; i < 48; ++i) EXPECT_EQ(out[i], 0u) << i;
    // Timed accesses see the same bytes, across the boundary too.
    uint8_t buf[32] = {};
    ASSERT_EQ(h.access(tlm::TLM_READ_COMMAND, 0x5000 - 16, buf, 32), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(std::memcmp(buf, in.data(), 32), 0);
    const uint64_t v = 0x0102030405060708ull;
    uint64_t w = v;
    ASSERT_EQ(h.access(tlm::TLM_WRITE_COMMAND, 0x9FFC, &w, 8), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(h.mem.read64(0x9FFC), v);
    EXPECT_EQ(h.mem.read32(0xA000), 0x01020304u);
    EXPECT_EQ(h.mem.frames_allocated(), 4u);
  });
}

TEST(Memory, TimedAccessTakesLatencyPlusTransferCycles) {
  MemoryConfig cfg;
  cfg.clock_mhz = 500;   // 2 ns cycles
  cfg.latency_cycles = 40;
  cfg.bytes_per_cycle = 16;
  MemHarness h(cfg);
  h.run([](MemHarness& h) {
    uint8_t buf[100] = {};
    struct Case { unsigned len; uint64_t cycles; };
    for (const Case c : {Case{8, 40 + 1}, Case{16, 40 + 1}, Case{17, 40 + 2}, Case{64, 40 + 4}, Case{100, 40 + 7}}) {
      const uint64_t t0 = now_ps();
      ASSERT_EQ(h.access(tlm::TLM_READ_COMMAND, 0x1000, buf, c.len), tlm::TLM_OK_RESPONSE);
      EXPECT_EQ(now_ps() - t0, c.cycles * 2000) << "len " << c.len;
      const uint64_t t1 = now_ps();
      ASSERT_EQ(h.access(tlm::TLM_WRITE_COMMAND, 0x2000, buf, c.len), tlm::TLM_OK_RESPONSE);
      EXPECT_EQ(now_ps() - t1, c.cycles * 2000) << "write len " << c.len;
    }
  });
}

TEST(Memory, OutOfRangeAccessIsAnAddressError) {
  MemoryConfig cfg;
  cfg.size_bytes = 1 << 20;
  MemHarness h(cfg);
  h.run([](MemHarness& h) {
    uint64_t v = 0x55;
    const uint64_t t0 = now_ps();
    EXPECT_EQ(h.access(tlm::TLM_WRITE_COMMAND, 1 << 20, &v, 8), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(h.access(tlm::TLM_READ_COMMAND, (1 << 20) - 4, &v, 8), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(now_ps(), t0) << "an address error takes no memory time";
    EXPECT_EQ(h.mem.frames_allocated(), 0u);
    EXPECT_EQ(h.access(tlm::TLM_READ_COMMAND, (1 << 20) - 8, &v, 8), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(v, 0u);
  });
}

TEST(Memory, ChannelsLimitConcurrency) {
  MemoryConfig cfg;   // 4 channels, 80 + 1 cycles for 8 bytes at 1 GHz
  MemHarness h(cfg);
  h.run([](MemHarness& h) {
    std::vector<uint64_t> done;
    std::vector<uint64_t> bufs(5);
    sc_core::sc_event all;
    for (unsigned i = 0; i < 5; ++i) {
      sc_core::sc_spawn([&, i] {
        EXPECT_EQ(h.access(tlm::TLM_READ_COMMAND, 0x1000 * i, &bufs[i], 8), tlm::TLM_OK_RESPONSE);
        done.push_back(now_ps());
        if (done.size() == 5) all.notify();
      });
    }
    sc_core::wait(all);
    ASSERT_EQ(done.size(), 5u);
    // A channel is busy only for the 1-cycle transfer; the 80-cycle latency overlaps. The
    // fifth read takes channel 0 once the first transfer ends at 1 ns: 1 + 80 + 1 ns.
    for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(done[i], 81'000u);
    EXPECT_EQ(done[4], 82'000u);
  });
}

// Defect: a channel was held for the whole latency, so 4 channels gave about 50 M
// accesses/s. N outstanding reads now reach the configured bandwidth:
// channels x bytes_per_cycle = 4 x 32 = 128 bytes per 1 ns cycle, i.e. a 64-byte read
// occupies a channel for 2 cycles, and 4 channels finish 4 reads every 2 ns.
TEST(Memory, OutstandingReadsReachTheConfiguredBandwidth) {
  MemoryConfig cfg;   // 1 GHz, 80 cycles latency, 4 channels, 32 bytes per cycle
  MemHarness h(cfg);
  h.run([](MemHarness& h) {
    constexpr unsigned kReads = 400;
    std::vector<uint64_t> done;
    std::vector<std::array<uint8_t, 64>> bufs(kReads);
    sc_core::sc_event all;
    for (unsigned i = 0; i < kReads; ++i) {
      sc_core::sc_spawn([&, i] {
        EXPECT_EQ(h.access(tlm::TLM_READ_COMMAND, 0x40ull * i, bufs[i].data(), 64), tlm::TLM_OK_RESPONSE);
        done.push_back(now_ps());
        if (done.size() == kReads) all.notify();
      });
    }
    sc_core::wait(all);
    ASSERT_EQ(done.size(), size_t(kReads));
    // The i-th read to be served transfers in [2 (i / 4), 2 (i / 4) + 2) ns and returns
    // 80 ns later.
    for (unsigned i = 0; i < kReads; ++i) EXPECT_EQ(done[i], (2ull * (i / 4) + 2 + 80) * 1000) << "read " << i;
    // 400 x 64 bytes = 25600 bytes moved in the 200 ns the channels were busy: 128 bytes/ns.
    EXPECT_EQ(done.back() - 80'000u, 200'000u);
  });
}

}  // namespace
}  // namespace iommusim::memory

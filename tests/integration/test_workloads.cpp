// The job workloads (docs/workloads.md, docs/trace_replay.md) run as a user runs them.
// Known answers are worked out from the config: packets per flow from the rate, Linux's
// flush-queue arithmetic for lazy unmaps.
#include <cmath>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::fresh_dir;
using iommusim::test::read_file;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;
using iommusim::test::write_file;

const char* const kVendors[] = {"smmuv3", "vtd", "amdvi"};

// A completed run of the NIC workload on every vendor; its stats.
nlohmann::json run_nic(const std::string& name, const std::string& params) {
  const std::string dir = fresh_dir(name);
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.translation=s1 -p workload.mode=nic " + params);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return read_json(dir + "/stats.json");
}
}  // namespace

// 1.2 Gb/s of 1500-byte packets per flow, half RX: each direction gets a packet every
// 1500 * 8 / 0.6 = 20000 ns, so 10000 us of traffic start 500 RX and 500 TX packets per flow
// (at 0, 20, .., 9980 us). All of them complete and are reaped: 2.4 Gb/s for 2 flows. (At
// rates where a strict CPU's unmaps take longer than the packet interval, TX falls behind.)
TEST(NicWorkload, PacketsPerMillisecondFollowTheRate) {
  const nlohmann::json s = run_nic("nic_rate", "-p nic.flows=2 -p nic.rate_gbps=1.2 -p nic.rx_fraction=0.5 "
                                              "-p nic.duration_us=10000 -p dma_api.mode=strict -p dma_api.cpus=2");
  for (const char* v : kVendors) {
    const std::string nic = std::string(v) + ".nic.";
    for (int f = 0; f < 2; ++f) {
      EXPECT_EQ(stat(s, nic + "flow" + std::to_string(f) + ".rx_packets"), 500) << v;
      EXPECT_EQ(stat(s, nic + "flow" + std::to_string(f) + ".tx_packets"), 500) << v;
      EXPECT_EQ(stat(s, nic + "flow" + std::to_string(f) + ".rx_waited_for_descriptor"), 0) << v;
    }
    EXPECT_NEAR(stat(s, nic + "gbps"), 2.4, 1e-9) << v;
    // Three DMAs a packet: descriptor read, data, descriptor write-back.
    EXPECT_EQ(stat(s, std::string(v) + ".endpoint.transactions"), 3 * 2000) << v;
    EXPECT_EQ(stat(s, std::string(v) + ".oracle.violations"), 0) << v;
  }
}

// Strict: every unmap invalidates, one per packet. Lazy on one CPU, with the flush timer
// set beyond the run: 1 Gb/s of 1500-byte packets half RX is a packet each way every 24 us,
// so 12000 us start 500 + 500 packets whose buffers are unmapped; a 256-slot flush queue
// flushes at the 256th, 511th, .. queued unmap (it holds 255): 1000 unmaps give
// (1000 - 1) / 255 = 3 flushes.
TEST(NicWorkload, StrictInvalidatesPerPacketLazyPerFullFlushQueue) {
  const std::string common = "-p nic.flows=1 -p nic.rate_gbps=1 -p nic.duration_us=12000 -p dma_api.cpus=1 -p dma_api.fq_timeout_us=100000 ";
  const nlohmann::json strict = run_nic("nic_strict", common + "-p dma_api.mode=strict");
  const nlohmann::json lazy = run_nic("nic_lazy", common + "-p dma_api.mode=lazy");
  for (const char* v : kVendors) {
    const std::string vs(v);
    EXPECT_EQ(stat(strict, vs + ".nic.flow0.unmaps"), 1000) << v;
    EXPECT_EQ(stat(strict, vs + ".dma_api.invalidations"), 1000) << v;
    EXPECT_DOUBLE_EQ(stat(strict, vs + ".nic.invalidations_per_packet"), 1.0) << v;
    EXPECT_EQ(stat(lazy, vs + ".nic.flow0.unmaps"), 1000) << v;
    EXPECT_EQ(stat(lazy, vs + ".dma_api.flushes_full"), 3) << v;
    EXPECT_EQ(stat(lazy, vs + ".dma_api.flushes_timer"), 0) << v;
    EXPECT_DOUBLE_EQ(stat(lazy, vs + ".nic.invalidations_per_packet"), 3.0 / 1000) << v;
    EXPECT_EQ(stat(lazy, vs + ".oracle.violations"), 0) << v;
  }
}

// The shipped example runs 12 ms: the flush-queue timer, armed by the first lazy unmap
// (within the first packet's few microseconds), fires once, 10 ms later; the next arming
// would fire after the run.
TEST(NicWorkload, ExampleRunsPastTheLazyFlushTimer) {
  const std::string dir = fresh_dir("nic_example");
  const CliRun r = run_cli("run --force -o " + dir + " " + IOMMUSIM_SOURCE_DIR + "/configs/examples/nic.json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json s = read_json(dir + "/stats.json");
  for (const char* v : kVendors) {
    EXPECT_EQ(stat(s, std::string(v) + ".dma_api.flushes_timer"), 1) << v;
    EXPECT_GT(stat(s, std::string(v) + ".dma_api.flushes_full"), 0) << v;
    EXPECT_DOUBLE_EQ(stat(s, std::string(v) + ".nic.gbps"), 12.0) << v;   // 4 flows x 3 Gb/s
  }
}

TEST(NicWorkload, SameConfigGivesIdenticalStats) {
  const std::string a = fresh_dir("nic_det_a"), b = fresh_dir("nic_det_b");
  const std::string args = " -p iommu.translation=s1 -p workload.mode=nic -p nic.rate_gbps=0 -p nic.duration_us=200 "
                           "-p dma_api.cpus=3 -p nic.flows=5";
  ASSERT_EQ(run_cli("run --force -o " + a + args).exit_code, 0);
  ASSERT_EQ(run_cli("run --force -o " + b + args).exit_code, 0);
  EXPECT_EQ(read_file(a + "/stats.json"), read_file(b + "/stats.json"));
}

// Randomized shapes (flows, CPUs, rings, packet sizes, rates, strict or lazy) on every
// vendor: no oracle violation, no fault.
TEST(NicWorkload, RandomizedMultiCpuRunsHaveNoOracleViolation) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 3; ++round) {
    std::ostringstream p;
    p << "-p nic.flows=" << 1 + rng() % 6 << " -p dma_api.cpus=" << 1 + rng() % 4 << " -p nic.ring_size="
      << (8u << (rng() % 5)) << " -p nic.packet_bytes=" << 64 + rng() % 9000 << " -p nic.rate_gbps=" << rng() % 40
      << " -p nic.rx_fraction=" << double(rng() % 11) / 10 << " -p dma_api.mode=" << (rng() % 2 ? "strict" : "lazy")
      << " -p dma_api.fq_size=" << (16u << (rng() % 4)) << " -p nic.duration_us=300 -p traffic.outstanding="
      << 1 + rng() % 16;
    SCOPED_TRACE(p.str());
    const nlohmann::json s = run_nic("nic_random", p.str());
    for (const char* v : kVendors) {
      EXPECT_EQ(stat(s, std::string(v) + ".oracle.violations"), 0) << v;
      EXPECT_EQ(stat(s, std::string(v) + ".nic.faults"), 0) << v;
      EXPECT_GT(stat(s, std::string(v) + ".nic.rx_packets") + stat(s, std::string(v) + ".nic.tx_packets"), 0) << v;
    }
  }
}

TEST(NicWorkload, ConfigErrorsNameTheKeyAndExitTwo) {
  const std::string o = " -o " + fresh_dir("nic_bad");
  struct Case { std::string params, expect; };
  for (const Case& c : std::vector<Case>{
           {"-p workload.mode=nic", "workload.mode: nic needs translation s1"},
           {"-p iommu.translation=s1 -p workload.mode=nic -p nic.flows=0", "nic.flows"},
           {"-p iommu.translation=s1 -p workload.mode=nic -p nic.rx_fraction=2", "nic.rx_fraction"},
           {"-p iommu.translation=s1 -p workload.mode=nic -p sim.warmup_transactions=10", "sim.warmup_transactions"},
       }) {
    const CliRun r = run_cli("run" + o + " " + c.params);
    EXPECT_EQ(r.exit_code, 2) << c.params << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.params << "\n" << r.out;
  }
}

// ---------------------------------------------------------------------------------------
// Trace replay

namespace {
CliRun run_trace(const std::string& name, const std::string& trace, const std::string& extra = "") {
  const std::string dir = fresh_dir(name);
  write_file(dir + "/t.trace", trace);
  return run_cli("run --force -o " + dir + "/run -p iommu.translation=s1 -p workload.mode=trace -p trace.file=" + dir +
                 "/t.trace " + extra);
}
}  // namespace

TEST(TraceReplay, BadLinesNameTheLineAndExitTwo) {
  struct Case { std::string trace, expect; };
  for (const Case& c : std::vector<Case>{
           {"0 16 map - 0x1000 0x1000 0\n# ok\n5 16 rd - 0x1000 64\n", "t.trace:3: unknown event 'rd'"},
           {"10 16 read - 0x1000 64\n5 16 read - 0x1000 64\n", "t.trace:2: time_ns 5 is before"},
           {"0 16 map - 0x1800 0x1000 0\n", "t.trace:1: map: address, size and buffer offset must be multiples"},
           {"0 16 map - 0x1000 0x1000\n", "t.trace:1: map needs a buffer offset"},
           {"0 16 read x 0x1000 64\n", "t.trace:1: pasid 'x'"},
           {"0 17 read - 0x1000 64\n", "t.trace:1: device 17 is no endpoint's requester ID"},
           {"0 16 read - 0x1000 0\n", "t.trace:1: size '0'"},
           {"# nothing\n", "t.trace: no events"},
           {"18446744073709552 16 read - 0x1000 64\n", "t.trace:1: time_ns 18446744073709552 is beyond 1e16 ns"},
           {"0 16 read 0 0x1000 64\n", "t.trace:1: pasid '0' is neither - nor 1 .. 1048575"},
           {"0 16 map - 0x1000 0x2000 0\n1 16 unmap - 0x2000 0x2000\n", "t.trace:2: unmap of a range this device and PASID never mapped"},
           {"0 16 map 5 0x1000 0x1000 0\n1 16 unmap - 0x1000 0x1000\n", "t.trace:2: unmap of a range"},
           {"0 16 map - 0x1000 0x2000 0\n1 16 map - 0x2000 0x1000 0\n", "t.trace:2: map over a range"},
       }) {
    const CliRun r = run_trace("trace_bad", c.trace);
    EXPECT_EQ(r.exit_code, 2) << c.trace << "\n" << r.out;
    EXPECT_NE(r.out.find("trace.file: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.trace << "\n" << r.out;
  }
  // 17 slots of 16 MiB exceed the 256 MiB an endpoint may buffer.
  const CliRun big = run_trace("trace_big", "0 16 read - 0x1000 16777216\n", "-p traffic.outstanding=17");
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_NE(big.out.find("traffic.outstanding: times the workload's largest DMA"), std::string::npos) << big.out;
  const CliRun none = run_cli("run -o " + fresh_dir("trace_none") + " -p iommu.translation=s1 -p workload.mode=trace");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.out.find("trace.file: needed with workload.mode = trace"), std::string::npos) << none.out;
}

// Counted by hand from the trace: 2 maps, 3 DMAs (one 8 KB spanning both pages), 2 unmaps,
// each unmap one invalidation.
TEST(TraceReplay, ReplaysEveryEventOnEveryVendor) {
  const CliRun r = run_trace("trace_small",
                             "0 16 map - 0x10000 0x2000 0\n"
                             "0 16 map - 0x20000 0x1000 0x2000\n"
                             "100 16 write - 0x10000 8192\n"
                             "100 16 read - 0x20000 64\n"
                             "200 16 unmap - 0x10000 0x2000\n"
                             "300 16 read - 0x20040 64\n"
                             "300 16 unmap - 0x20000 0x1000\n");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json s = read_json(::testing::TempDir() + "trace_small/run/stats.json");
  for (const char* v : kVendors) {
    const std::string vs(v);
    EXPECT_EQ(stat(s, vs + ".trace.maps"), 2) << v;
    EXPECT_EQ(stat(s, vs + ".trace.unmaps"), 2) << v;
    EXPECT_EQ(stat(s, vs + ".trace.dmas"), 3) << v;
    EXPECT_EQ(stat(s, vs + ".trace.faults"), 0) << v;
    EXPECT_EQ(stat(s, vs + ".endpoint.transactions"), 3) << v;
    EXPECT_EQ(stat(s, vs + ".endpoint.bytes"), 8192 + 64 + 64) << v;
    EXPECT_EQ(stat(s, vs + ".driver.invalidation.latency", "count"), 2) << v;
    EXPECT_EQ(stat(s, vs + ".oracle.violations"), 0) << v;
  }
}

// Random traces on several devices and PASIDs: buffers mapped, DMAed at random offsets and
// unmapped, on every vendor, with the oracle on.
TEST(TraceReplay, RandomizedTracesHaveNoOracleViolation) {
  std::mt19937_64 rng(5);
  std::ostringstream t;
  uint64_t time = 0, offset = 0;
  const unsigned devices[] = {16, 24};
  for (int buffer = 0; buffer < 40; ++buffer) {
    const unsigned dev = devices[rng() % 2];
    const std::string pasid = rng() % 2 ? "-" : std::to_string(1 + rng() % 3);
    const uint64_t pages = 1 + rng() % 8, iova = 0x40000000ull + uint64_t(buffer) * 0x100000;
    t << time << " " << dev << " map " << pasid << " " << iova << " " << pages * 4096 << " " << offset << "\n";
    offset += pages * 4096;
    for (int d = 0, n = 1 + int(rng() % 6); d < n; ++d) {
      time += rng() % 300;
      const uint64_t bytes = 1 + rng() % (pages * 4096);
      const uint64_t at = rng() % (pages * 4096 - bytes + 1);
      t << time << " " << dev << (rng() % 2 ? " read " : " write ") << pasid << " " << iova + at << " " << bytes << "\n";
    }
    time += rng() % 200;
    t << time << " " << dev << " unmap " << pasid << " " << iova << " " << pages * 4096 << "\n";
  }
  const CliRun r = run_trace("trace_random", t.str(),
                             "-p traffic.endpoints='[{\"requester_id\":16},{\"requester_id\":24,\"outstanding\":3}]'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json s = read_json(::testing::TempDir() + "trace_random/run/stats.json");
  for (const char* v : kVendors) {
    EXPECT_EQ(stat(s, std::string(v) + ".trace.maps"), 40) << v;
    EXPECT_EQ(stat(s, std::string(v) + ".trace.unmaps"), 40) << v;
    EXPECT_EQ(stat(s, std::string(v) + ".trace.faults"), 0) << v;
    EXPECT_EQ(stat(s, std::string(v) + ".oracle.violations"), 0) << v;
  }
}

// ---------------------------------------------------------------------------------------
// Storage

namespace {
nlohmann::json run_storage(const std::string& name, const std::string& params) {
  const std::string dir = fresh_dir(name);
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.translation=s1 -p workload.mode=storage " + params);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return read_json(dir + "/stats.json");
}
}  // namespace

// Per I/O the device reads its 64-byte submission entry, moves the data in 4 KB DMAs and
// writes a 16-byte completion entry: 1 MB I/Os take 1 + 256 + 1 DMAs. Strict: one
// invalidation per I/O (its unmap); the setup's queue mappings are never unmapped.
TEST(StorageWorkload, DmasAndInvalidationsPerIo) {
  const nlohmann::json s = run_storage("storage_1m", "-p storage.queues=2 -p storage.depth=4 -p storage.io_sizes=1048576:1 "
                                                     "-p storage.duration_us=500 -p dma_api.mode=strict -p dma_api.cpus=2");
  for (const char* v : kVendors) {
    const std::string vs(v);
    const double ios = stat(s, vs + ".storage.ios");
    EXPECT_GT(ios, 8) << v;
    EXPECT_EQ(stat(s, vs + ".endpoint.transactions"), 258 * ios) << v;
    EXPECT_EQ(stat(s, vs + ".storage.bytes"), 1048576 * ios) << v;
    EXPECT_EQ(stat(s, vs + ".dma_api.unmaps"), ios) << v;
    EXPECT_EQ(stat(s, vs + ".dma_api.maps"), ios + 2 * 2) << v;   // + each queue's SQ and CQ
    EXPECT_DOUBLE_EQ(stat(s, vs + ".storage.invalidations_per_io"), 1.0) << v;
    EXPECT_EQ(stat(s, vs + ".storage.reads") + stat(s, vs + ".storage.writes"), ios) << v;
    EXPECT_EQ(stat(s, vs + ".oracle.violations"), 0) << v;
  }
}

// Lazy on one CPU, short of the 10 ms timer: a flush at the 256th, 511th, .. unmap. A size
// mix with 4 KB DMAs: 2 entries per I/O plus one DMA per 4 KB of data.
TEST(StorageWorkload, LazyFlushesPerFullQueueWithASizeMix) {
  const nlohmann::json s = run_storage("storage_mix", "-p storage.queues=3 -p storage.depth=8 -p dma_api.cpus=1 "
                                                      "-p storage.io_sizes=4096:5,16384:3,65536:1 -p storage.duration_us=3000 "
                                                      "-p dma_api.mode=lazy");
  for (const char* v : kVendors) {
    const std::string vs(v);
    const double ios = stat(s, vs + ".storage.ios");
    ASSERT_GT(ios, 600) << v;
    EXPECT_EQ(stat(s, vs + ".dma_api.flushes_full"), std::floor((ios - 1) / 255)) << v;
    EXPECT_EQ(stat(s, vs + ".dma_api.flushes_timer"), 0) << v;
    EXPECT_EQ(stat(s, vs + ".endpoint.transactions"), 2 * ios + stat(s, vs + ".storage.bytes") / 4096) << v;
    EXPECT_EQ(stat(s, vs + ".oracle.violations"), 0) << v;
  }
}

TEST(StorageWorkload, SameSeedIdenticalOtherSeedDiffers) {
  const std::string a = fresh_dir("storage_det_a"), b = fresh_dir("storage_det_b"), c = fresh_dir("storage_det_c");
  const std::string args = " -p iommu.translation=s1 -p workload.mode=storage -p storage.io_sizes=4096,8192,65536 "
                           "-p storage.duration_us=300";
  ASSERT_EQ(run_cli("run --force -o " + a + args).exit_code, 0);
  ASSERT_EQ(run_cli("run --force -o " + b + args).exit_code, 0);
  ASSERT_EQ(run_cli("run --force -o " + c + args + " -p sim.seed=2").exit_code, 0);
  EXPECT_EQ(read_file(a + "/stats.json"), read_file(b + "/stats.json"));
  EXPECT_NE(read_file(a + "/stats.json"), read_file(c + "/stats.json"));
}

TEST(StorageWorkload, RandomizedMultiCpuRunsHaveNoOracleViolation) {
  std::mt19937_64 rng(23);
  for (int round = 0; round < 3; ++round) {
    std::ostringstream p;
    p << "-p storage.queues=" << 1 + rng() % 5 << " -p dma_api.cpus=" << 1 + rng() % 4 << " -p storage.depth="
      << 1 + rng() % 12 << " -p storage.io_sizes=" << 4096 * (1 + rng() % 4) << ":3," << 4096 * (1 + rng() % 256)
      << " -p storage.segment_bytes=" << 4096 * (1 + rng() % 16) << " -p storage.dma_bytes=" << 64 * (1 + rng() % 128)
      << " -p storage.read_fraction=" << double(rng() % 11) / 10 << " -p dma_api.mode=" << (rng() % 2 ? "strict" : "lazy")
      << " -p dma_api.fq_size=" << (16u << (rng() % 4)) << " -p storage.duration_us=200 -p traffic.outstanding="
      << 1 + rng() % 16 << " -p sim.seed=" << rng() % 1000;
    SCOPED_TRACE(p.str());
    const nlohmann::json s = run_storage("storage_random", p.str());
    for (const char* v : kVendors) {
      EXPECT_EQ(stat(s, std::string(v) + ".oracle.violations"), 0) << v;
      EXPECT_EQ(stat(s, std::string(v) + ".storage.faults"), 0) << v;
      EXPECT_GT(stat(s, std::string(v) + ".storage.ios"), 0) << v;
    }
  }
}

TEST(StorageWorkload, ConfigErrorsNameTheKeyAndExitTwo) {
  const std::string o = " -o " + fresh_dir("storage_bad");
  struct Case { std::string params, expect; };
  for (const Case& c : std::vector<Case>{
           {"-p storage.io_sizes=4096:2,3000", "storage.io_sizes: '3000': a size is a multiple of 4096"},
           {"-p storage.io_sizes=4096:0", "storage.io_sizes: '4096:0': a weight"},
           {"-p storage.io_sizes=", "storage.io_sizes: expected bytes[:weight]"},
           {"-p storage.segment_bytes=5000", "storage.segment_bytes"},
           {"-p storage.queues=64 -p storage.depth=64 -p storage.io_sizes=1048576:1", "platform.guest_ram_bytes"},
           // 64 x 4096 x (1 MiB / 64 B) = 2^32 DMAs in flight: a clear error, not an allocation failure.
           {"-p storage.queues=64 -p storage.depth=4096 -p storage.io_sizes=1048576:1 -p storage.dma_bytes=64 "
            "-p platform.guest_ram_bytes=549755813888",
            "storage.dma_bytes: queues x depth x (largest I/O / dma_bytes) = 4294967296 DMAs in flight"},
           {"-p traffic.endpoints='[{\"requester_id\":1},{\"requester_id\":2}]'", "traffic.endpoints: workload.mode = storage drives one endpoint"},
       }) {
    const CliRun r = run_cli("run" + o + " -p iommu.translation=s1 -p workload.mode=storage " + c.params);
    EXPECT_EQ(r.exit_code, 2) << c.params << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.params << "\n" << r.out;
  }
}

// Runs the iommusim binary as a user would.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platforms/config.h"
#include "tests/support/run_cli.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::run_cli;
using iommusim::test::run_cli_stopped_midway;
using iommusim::test::read_json;
using iommusim::test::stat;
}  // namespace

TEST(Cli, DefaultRunPrintsSummaryAndWritesOutputs) {
  const std::string dir = ::testing::TempDir() + "cli_default";
  CliRun r = run_cli("run --force -o " + dir + " -p traffic.transactions=20000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* line : {"IOTLB hit rate", "cache hit rates", "iotlb", "table reads/walk", "walk latency",
                           "latency p99", "mean software", "mean sync"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  auto cfg = read_json(dir + "/config.resolved.json");
  EXPECT_EQ(cfg["traffic"]["transactions"], 20000);
  auto stats = read_json(dir + "/stats.json");
  EXPECT_TRUE(stats["ok"].get<bool>());
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.transactions"), 20000);
  EXPECT_GT(stat(stats, "smmuv3.iommu.iotlb.misses"), 0);
  EXPECT_GT(stat(stats, "smmuv3.driver.invalidation.latency", "count"), 0);
  EXPECT_GT(stat(stats, "smmuv3.driver.invalidation.latency", "p99"), 0);
  for (auto& s : stats["stats"]) {
    EXPECT_TRUE(s.contains("unit")) << s.dump();
    EXPECT_FALSE(s["description"].get<std::string>().empty()) << s.dump();
  }
  auto inv = read_json(dir + "/invalidations.json")["smmuv3"];
  ASSERT_GT(inv.size(), 0u);
  const auto& rec = inv[0];
  const double parts = rec["software_ns"].get<double>() + rec["queueing_ns"].get<double>() + rec["fetch_ns"].get<double>() +
                       rec["execution_ns"].get<double>() + rec["sync_ns"].get<double>();
  EXPECT_NEAR(parts, rec["total_ns"].get<double>(), 1e-6);
}

TEST(Cli, SameSeedGivesIdenticalStats) {
  const std::string a = ::testing::TempDir() + "cli_seed_a", b = ::testing::TempDir() + "cli_seed_b";
  ASSERT_EQ(run_cli("run --force -o " + a + " -p traffic.transactions=5000").exit_code, 0);
  ASSERT_EQ(run_cli("run --force -o " + b + " -p traffic.transactions=5000").exit_code, 0);
  // stats.json holds only simulated figures, so it must match byte for byte.
  std::ifstream fa(a + "/stats.json"), fb(b + "/stats.json");
  std::stringstream sa, sb;
  sa << fa.rdbuf();
  sb << fb.rdbuf();
  EXPECT_EQ(sa.str(), sb.str());
}

TEST(Cli, ConfigErrorNamesTheKeyAndExitsTwo) {
  CliRun r = run_cli("run -o " + ::testing::TempDir() + "cli_bad -p iommu.smmuv3.iotlb.bogus=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("iommu.smmuv3.iotlb.bogus: unknown key"), std::string::npos) << r.out;
}

// --print-config prints the resolved config: the declared defaults with the overrides.
TEST(Cli, PrintConfigShowsTheDeclaredDefaultsWithOverrides) {
  CliRun r = run_cli("run --print-config -p iommu.vtd.iotlb.entries=4096 -p traffic.pattern=sequential");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json expected = iommusim::platforms::default_config();
  expected["iommu"]["vtd"]["iotlb"]["entries"] = 4096;
  expected["traffic"]["pattern"] = "sequential";
  EXPECT_EQ(nlohmann::json::parse(r.out), expected);
  r = run_cli("run --print-config -p iommu.vtd.iotlb.entires=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("iommu.vtd.iotlb.entires: unknown key"), std::string::npos) << r.out;
}

TEST(Cli, ConfigDocsPrintsDocsConfigMd) {
  CliRun r = run_cli("config-docs");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(std::string(IOMMUSIM_SOURCE_DIR) + "/docs/config.md");
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_TRUE(r.out == file.str()) << "docs/config.md differs from `iommusim config-docs`";
}

TEST(Cli, MissingConfigFileIsAClearError) {
  CliRun r = run_cli("run /nonexistent/x.json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("x.json"), std::string::npos) << r.out;
}

// Every shipped example config must stay valid and run without faults.
TEST(Cli, ExampleConfigsRun) {
  namespace fs = std::filesystem;
  unsigned n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(IOMMUSIM_SOURCE_DIR) / "configs" / "examples")) {
    if (e.path().extension() != ".json") continue;
    ++n;
    const std::string dir = ::testing::TempDir() + "cli_example_" + e.path().stem().string();
    CliRun r = run_cli("run --force " + e.path().string() + " -o " + dir + " -p traffic.transactions=5000");
    EXPECT_EQ(r.exit_code, 0) << e.path() << "\n" << r.out;
    // Every vendor lane the example runs: no faults, all traffic done (5000 DMAs per
    // endpoint; a lane with several has endpoint.ep<k>.* each and their totals). The
    // workloads that hand the endpoints their DMAs (docs/workloads.md) set their own amount.
    const std::string mode = read_json(dir + "/config.resolved.json")["workload"]["mode"].get<std::string>();
    const bool own_amount = mode == "nic" || mode == "storage" || mode == "trace";
    auto stats = read_json(dir + "/stats.json");
    std::map<std::string, double> totals, endpoints;
    for (auto& s : stats["stats"]) {
      const std::string name = s["name"].get<std::string>();
      const auto dot = name.find('.');
      if (dot == std::string::npos) continue;
      const std::string lane = name.substr(0, dot), rest = name.substr(dot + 1);
      if (rest == "endpoint.faults") { EXPECT_EQ(s["value"].get<double>(), 0) << e.path() << " " << name; }
      if (rest == "endpoint.transactions") totals[lane] = s["value"].get<double>();
      if (own_amount) continue;
      if (rest.rfind("endpoint.ep", 0) == 0 && rest.size() > 13 && rest.substr(rest.size() - 13) == ".transactions") {
        EXPECT_EQ(s["value"].get<double>(), 5000) << e.path() << " " << name;
        ++endpoints[lane];
      }
    }
    EXPECT_GE(totals.size(), 1u) << e.path();
    for (auto& [lane, n] : totals) {
      if (!own_amount) { EXPECT_EQ(n, 5000 * std::max(1.0, endpoints[lane])) << e.path() << " " << lane; }
    }
  }
  EXPECT_GE(n, 4u);
}

// The cold example really is the full 2D walk.
TEST(Cli, ColdNestedExampleWalksTwentyFourReads) {
  const std::string dir = ::testing::TempDir() + "cli_cold";
  CliRun r = run_cli("run --force " + std::string(IOMMUSIM_SOURCE_DIR) + "/configs/examples/smmuv3_nested_cold.json -o " + dir +
                     " -p traffic.transactions=3000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto stats = read_json(dir + "/stats.json");
  EXPECT_EQ(stat(stats, "smmuv3.iommu.walk_reads", "p50"), 24);
  EXPECT_EQ(stat(stats, "smmuv3.iommu.walk_reads", "max"), 24);
}

// The default run puts every vendor side by side on identical traffic, and each lane
// reports the same figures.
TEST(Cli, DefaultRunComparesEveryVendorOnIdenticalTraffic) {
  const std::string dir = ::testing::TempDir() + "cli_side_by_side";
  CliRun r = run_cli("run --force -o " + dir + " -p traffic.transactions=5000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto cfg = read_json(dir + "/config.resolved.json");
  const std::string vendors = cfg["iommu"]["vendor"].get<std::string>();
  auto stats = read_json(dir + "/stats.json");
  auto inv = read_json(dir + "/invalidations.json");
  unsigned lanes = 0;
  for (const char* v : {"smmuv3", "vtd", "amdvi"}) {
    if (vendors.find(v) == std::string::npos) continue;
    ++lanes;
    const std::string p = v;
    EXPECT_NE(r.out.find(v), std::string::npos) << r.out;
    EXPECT_EQ(stat(stats, p + ".endpoint.transactions"), 5000) << v;
    EXPECT_EQ(stat(stats, p + ".endpoint.faults"), 0) << v;
    // Identical traffic: the same reads and writes reach every IOMMU.
    EXPECT_EQ(stat(stats, p + ".endpoint.reads"), stat(stats, "smmuv3.endpoint.reads")) << v;
    for (const char* s : {".iommu.iotlb.hits", ".iommu.table_reads", ".iommu.walk_reads", ".iommu.walk_latency",
                          ".driver.invalidation.latency", ".driver.invalidation.sync"})
      EXPECT_GT(stat(stats, p + s, s == std::string(".iommu.iotlb.hits") || s == std::string(".iommu.table_reads")
                                        ? "value" : "count"), 0) << v << s;
    EXPECT_GT(inv[p].size(), 0u) << v;
  }
  EXPECT_GE(lanes, 2u) << "the default compares vendors: " << vendors;
}

// Issue 9, section 2: bad input exits 2 with a message naming the key or file.
TEST(Cli, BadInputExitsTwoNamingKeyOrFile) {
  const std::string out = " -o " + ::testing::TempDir() + "cli_bad_input";
  CliRun r = run_cli("run -p sim.seed=1e400" + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("sim.seed"), std::string::npos) << r.out;
  r = run_cli("run -p traffic.pasid=18446744073709551615" + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("traffic.pasid"), std::string::npos) << r.out;
  r = run_cli("run /dev/zero" + out);   // read without a limit, this grew until killed
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("/dev/zero"), std::string::npos) << r.out;
  r = run_cli("run -p iommu.smmuv3.iotlb.entries=16777216" + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("iommu.smmuv3.iotlb.entries"), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_cli("run --no-such-option").exit_code, 2);   // CLI11: 109
  EXPECT_EQ(run_cli("run /nonexistent/x.json").exit_code, 2);   // CLI11: 105
  EXPECT_EQ(run_cli("").exit_code, 2);                        // no subcommand: 106
  EXPECT_EQ(run_cli("run --help").exit_code, 0);
}

TEST(Cli, MaxSimTimeStopsTheRunKeepsResultsAndExitsOne) {
  const std::string dir = ::testing::TempDir() + "cli_max_time";
  // The default run's set-up (mapping 128 MiB of guest RAM) takes about 340 us of
  // simulated time and its traffic about 5300 us more; stop it at 1500 us, in the traffic.
  CliRun r = run_cli_stopped_midway("run --force -o " + dir + " -p sim.max_sim_time_us=1500");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("sim.max_sim_time_us"), std::string::npos) << r.out;
  auto stats = read_json(dir + "/stats.json");
  EXPECT_FALSE(stats["ok"].get<bool>());
  for (const char* v : {"smmuv3", "vtd", "amdvi"}) {
    EXPECT_NE(stats["error"].get<std::string>().find(std::string(v) + ": did not finish"), std::string::npos) << stats["error"];
    const double done = stat(stats, std::string(v) + ".endpoint.transactions");
    EXPECT_GT(done, 0) << v;
    EXPECT_LT(done, 100000) << v;
  }
}

TEST(Cli, BarrierTimeoutNamesTheKey) {
  // 1 ns reads (48 x 1 ns passes the config check), but a barrier that waits for queue
  // reads and the driver's 50 ns polls cannot complete within 50 ns.
  CliRun r = run_cli_stopped_midway("run --force -o " + ::testing::TempDir() + "cli_timeout -p memory.latency_cycles=1 -p driver.sync_timeout_us=0.05");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("not complete after"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("driver.sync_timeout_us"), std::string::npos) << r.out;
  // Slower memory than the timeout allows is refused up front, naming both keys.
  r = run_cli("run --force -o " + ::testing::TempDir() + "cli_timeout -p memory.latency_cycles=10000");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("memory.latency_cycles"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("driver.sync_timeout_us"), std::string::npos) << r.out;
}

// Defect: with translation s2 and 160 GiB of guest RAM in 4 KB pages the stage-2 tables
// outgrew the table pool, and the run went on with tables written at address 0 (0 faults).
// 160 GiB / 4 KiB x 8 bytes = 320 MiB of leaf tables, more than the 256 MiB pool.
TEST(Cli, TablePoolTooSmallForGuestRamNamesItsKey) {
  CliRun r = run_cli("run --force -o " + ::testing::TempDir() + "cli_pool -p iommu.translation=s2 -p iommu.vendor=smmuv3"
                     " -p platform.guest_ram_bytes=171798691840 -p traffic.window_iova=268435456");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("platform.table_pool_bytes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("335544320 bytes of leaf tables"), std::string::npos) << r.out;
}

// Run time: a driver whose pool runs out mid-run says which key sizes it.
TEST(Cli, TablePoolExhaustedAtRunTimeNamesItsKey) {
  // 1 MiB of host pool: the queues and stream table fit, the stage-1 tables of a 1 GiB
  // window in 4 KB pages do not (512 leaf tables of 4 KB = 2 MiB).
  CliRun r = run_cli_stopped_midway("run --force -o " + ::testing::TempDir() + "cli_pool2 -p iommu.translation=s1 -p iommu.vendor=smmuv3"
                     " -p platform.table_pool_bytes=1048576 -p traffic.transactions=100"
                     " -p traffic.window_bytes=1073741824 -p platform.guest_ram_bytes=2147483648");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("host table pool exhausted (raise platform.table_pool_bytes)"), std::string::npos) << r.out;
}

// sim.warmup_transactions = 500 of 2000 DMAs: the lane's stats count the last 1500 DMAs,
// the oracle every one of the 2000, and the model runs exactly as without a warm-up (its
// invalidations after the warm-up are the tail of the plain run's, to the picosecond).
TEST(Cli, WarmupCountsAfreshButNotTheOracle) {
  const std::string warm = ::testing::TempDir() + "cli_warm", plain = ::testing::TempDir() + "cli_warm_plain";
  const std::string common = " -p iommu.vendor=smmuv3 -p traffic.transactions=2000";
  CliRun r = run_cli("run --force -o " + warm + common + " -p sim.warmup_transactions=500");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("warm-up: the first 500 DMAs"), std::string::npos) << r.out;
  ASSERT_EQ(run_cli("run --force -o " + plain + common).exit_code, 0);
  auto stats = read_json(warm + "/stats.json");
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.transactions"), 1500);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.reads") + stat(stats, "smmuv3.endpoint.writes"), 1500);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.latency", "count"), 1500);
  EXPECT_EQ(stat(stats, "smmuv3.oracle.checked"), 2000);
  EXPECT_GT(stat(stats, "smmuv3.run.warmup_end"), 0);
  double bucketed = 0;
  for (auto& s : stats["stats"])
    if (s["name"] == "smmuv3.endpoint.latency")
      for (auto& b : s["buckets"]) bucketed += b[2].get<double>();
  EXPECT_EQ(bucketed, 1500);

  auto inv = read_json(warm + "/invalidations.json")["smmuv3"];
  auto all = read_json(plain + "/invalidations.json")["smmuv3"];
  EXPECT_EQ(double(inv.size()), stat(stats, "smmuv3.driver.invalidation.latency", "count"));
  ASSERT_GT(inv.size(), 0u);
  ASSERT_LT(inv.size(), all.size());
  for (size_t i = 0; i < inv.size(); ++i) ASSERT_EQ(inv[i], all[all.size() - inv.size() + i]) << i;
  // The plain run counts the same model from its start.
  EXPECT_EQ(stat(read_json(plain + "/stats.json"), "smmuv3.endpoint.transactions"), 2000);
}

TEST(Cli, WarmupAsLongAsTheTrafficNamesTheKey) {
  CliRun r = run_cli("run --force -o " + ::testing::TempDir() + "cli_warm_bad -p traffic.transactions=100 "
                     "-p sim.warmup_transactions=100");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("sim.warmup_transactions"), std::string::npos) << r.out;
}

// workload.mode = dma_api (docs/dma_api.md): four CPUs exchanging buffers through the DMA
// API on every vendor. Strict invalidates once per unmap; lazy flushes only when a CPU's
// ring holds 255 entries (none of them freed before), so at least 255 unmaps per ring-full
// flush. The oracle stays at zero violations, and every record's parts (lock included)
// add up.
TEST(Cli, DmaApiWorkloadStrictAndLazy) {
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* mode : {"strict", "lazy"}) {
      const std::string dir = ::testing::TempDir() + "cli_dma_api_" + vendor + mode;
      CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor + " -p iommu.translation=s1" +
                         " -p workload.mode=dma_api -p dma_api.mode=" + mode +
                         " -p workload.unmap_interval_ns=1000 -p traffic.window_bytes=262144 -p traffic.transactions=50000");
      ASSERT_EQ(r.exit_code, 0) << vendor << " " << mode << "\n" << r.out;
      auto stats = read_json(dir + "/stats.json");
      const std::string v = vendor;
      const double unmaps = stat(stats, v + ".dma_api.unmaps"), inv = stat(stats, v + ".dma_api.invalidations");
      EXPECT_GT(unmaps, 0) << vendor;
      EXPECT_EQ(stat(stats, v + ".oracle.violations"), 0) << vendor << " " << mode;
      EXPECT_EQ(stat(stats, v + ".dma_api.iova.refused_queued"), 0) << vendor << " " << mode;
      if (std::string(mode) == "strict") {
        EXPECT_EQ(inv, unmaps) << vendor;
      } else {
        const double full = stat(stats, v + ".dma_api.flushes_full");
        EXPECT_GT(full, 0) << vendor;
        EXPECT_EQ(inv, full + stat(stats, v + ".dma_api.flushes_timer")) << vendor;
        EXPECT_GE(unmaps, 255 * full) << vendor;
      }
      const auto invalidations = read_json(dir + "/invalidations.json");   // kept: the loop reads into it
      for (const auto& rec : invalidations[vendor]) {
        const double parts = rec["software_ns"].get<double>() + rec["lock_ns"].get<double>() +
                             rec["queueing_ns"].get<double>() + rec["fetch_ns"].get<double>() +
                             rec["execution_ns"].get<double>() + rec["sync_ns"].get<double>();
        EXPECT_NEAR(parts, rec["total_ns"].get<double>(), 1e-6) << vendor << " " << mode << " " << rec.dump();
      }
    }
}

// A strict dma_api run on SMMUv3 with stage 1 and `extra` parameters, in its own folder;
// its stats.json (the run must succeed).
static nlohmann::json smmu_strict_dma_api_run(const std::string& folder, const std::string& extra) {
  const std::string dir = ::testing::TempDir() + folder;
  CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=smmuv3 -p iommu.translation=s1"
                     " -p workload.mode=dma_api -p dma_api.mode=strict " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return r.exit_code == 0 ? read_json(dir + "/stats.json") : nlohmann::json();
}

// dma_api.buffer_bytes: the default 32 MiB window splits into 64 KB buffers, 128 per CPU,
// all mapped from the IOVA tree at setup (512). 64 KB is 16 pages, within the rcache's
// largest class (32 pages): a CPU's first exchange maps before any free (tree), and from
// then on each strict unmap frees into the CPU's magazine what its next map takes back.
// 8 MiB buffers (2048 pages) never use the rcache.
TEST(Cli, DmaApiBufferSizeDecidesTheIovaCachePath) {
  const auto small = smmu_strict_dma_api_run("cli_dma_api_64k", "-p traffic.transactions=20000");
  ASSERT_FALSE(small.is_null());
  const double maps = stat(small, "smmuv3.dma_api.maps");
  EXPECT_GT(maps, 512 + 4);
  EXPECT_EQ(stat(small, "smmuv3.dma_api.iova.tree_allocs"), 512 + 4);
  EXPECT_EQ(stat(small, "smmuv3.dma_api.iova.rcache_hits"), maps - 516);
  const auto big = smmu_strict_dma_api_run("cli_dma_api_8m", "-p dma_api.buffer_bytes=8388608 -p traffic.transactions=20000");
  ASSERT_FALSE(big.is_null());
  EXPECT_EQ(stat(big, "smmuv3.dma_api.iova.rcache_hits"), 0);
  EXPECT_EQ(stat(big, "smmuv3.dma_api.iova.tree_allocs"), stat(big, "smmuv3.dma_api.maps"));
}

TEST(Cli, DmaApiBufferSizeErrorsNameTheKey) {
  for (const char* bad : {"-p dma_api.buffer_bytes=6144", "-p dma_api.buffer_bytes=33554432",
                          "-p traffic.transfer_bytes=1048576 -p dma_api.buffer_bytes=65536"}) {
    CliRun r = run_cli("run --force -o " + ::testing::TempDir() + "cli_dma_api_bad_buf -p iommu.translation=s1"
                       " -p workload.mode=dma_api " + std::string(bad));
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.out;
    EXPECT_NE(r.out.find("buffer_bytes"), std::string::npos) << bad << "\n" << r.out;
  }
}

// SMMUv3's shared queue with more CPUs than slots: a CPU polls its CMD_SYNC's own slot
// (the MSI target), so no slot may be reused before its owner saw the sync complete
// (Linux's cmdq->lock held shared). Without that rule, a sync's completion write landed
// on another CPU's command in a reused slot and the oracle saw stale translations.
TEST(Cli, DmaApiSmmuSharedQueueNeverReusesAPolledSyncSlot) {
  const auto stats = smmu_strict_dma_api_run("cli_dma_api_tiny_cmdq", "-p dma_api.cpus=32 -p driver.smmuv3.cmdq_log2=2 -p driver.sync_timeout_us=100000");
  ASSERT_FALSE(stats.is_null());
  EXPECT_GT(stat(stats, "smmuv3.dma_api.unmaps"), 1000);
  EXPECT_EQ(stat(stats, "smmuv3.oracle.violations"), 0);
  EXPECT_EQ(stat(stats, "smmuv3.iommu.illegal_commands"), 0);   // no command overwritten by a completion write
}

// A DMA longer than the exchange interval (1 MiB at the default 5 us): its buffer is
// unmapped only once the DMA completed, so no DMA faults on a buffer pulled from under it.
TEST(Cli, DmaApiUnmapsABufferOnlyAfterItsDmasCompleted) {
  const auto stats = smmu_strict_dma_api_run("cli_dma_api_long_dmas", "-p traffic.transfer_bytes=1048576 -p dma_api.buffer_bytes=4194304 -p traffic.transactions=500");
  ASSERT_FALSE(stats.is_null());
  EXPECT_GT(stat(stats, "smmuv3.dma_api.unmaps"), 100);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.faults"), 0);
  EXPECT_EQ(stat(stats, "smmuv3.oracle.violations"), 0);
}

// Without range invalidation, unmapping one 32 MiB buffer is 8192 TLBIs through a 256-slot
// queue: it takes far longer than driver.sync_timeout_us (100 us) but the queue drains all
// the while, and Linux's timeout is per wait for space, so the unmap completes.
TEST(Cli, DmaApiLongUnmapOnADrainingQueueDoesNotTimeOut) {
  const auto stats = smmu_strict_dma_api_run("cli_dma_api_no_ril", "-p dma_api.cpus=1 -p dma_api.buffer_bytes=33554432 -p iommu.smmuv3.range_invalidation=false -p traffic.transactions=30000");
  ASSERT_FALSE(stats.is_null());
  EXPECT_GE(stat(stats, "smmuv3.dma_api.unmaps"), 1);
  EXPECT_GE(stat(stats, "smmuv3.iommu.cmdq.executed.cmd_tlbi_nh_va"), 8192);
}

TEST(Cli, DmaApiWorkloadIsDeterministic) {
  const std::string a = ::testing::TempDir() + "cli_dma_api_a", b = ::testing::TempDir() + "cli_dma_api_b";
  const std::string args = " -p iommu.translation=s1 -p workload.mode=dma_api -p workload.unmap_interval_ns=1000"
                           " -p traffic.window_bytes=262144 -p traffic.transactions=20000";
  ASSERT_EQ(run_cli("run --force -o " + a + args).exit_code, 0);
  ASSERT_EQ(run_cli("run --force -o " + b + args).exit_code, 0);
  std::ifstream fa(a + "/stats.json"), fb(b + "/stats.json");
  std::stringstream sa, sb;
  sa << fa.rdbuf();
  sb << fb.rdbuf();
  EXPECT_EQ(sa.str(), sb.str());
}

TEST(Cli, DmaApiWorkloadNeedsStageOne) {
  CliRun r = run_cli("run --force -o " + ::testing::TempDir() + "cli_dma_api_bad -p iommu.translation=nested"
                     " -p workload.mode=dma_api");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("workload.mode: dma_api needs translation s1"), std::string::npos) << r.out;
}

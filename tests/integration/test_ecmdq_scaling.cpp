// ECMDQ against the shared CMDQ (issue 13 item 2; docs/smmuv3.md "ECMDQ"): the shipped sweep
// configs/presets/ecmdq.sweep.json, run small through the binary, point by point. It checks
// what the model predicts from its configured costs, not the figures themselves:
// - 1 CPU: the ECMDQ path does what the CMDQ path does (write the batch and its CMD_SYNC
//   into a ring in host memory, one 32-bit PROD write, poll the CMD_SYNC's MSI word), at the
//   same costs (driver.command_write_cycles, mmio_write_ns, poll_interval_ns; the SMMU's
//   fetch, decode, execution and MSI write). Nobody else submits, so the shared CMDQ has no
//   lock or queueing to remove: the latency distribution and the throughput are the same.
// - 4 and 8 CPUs on 8 ECMDQs: each CPU has a queue of its own, so nobody waits for another
//   CPU's reservation, doorbell or entries (lock = 0) and its queue's consumer is idle when
//   its doorbell rings (queueing = 0). What the CPUs still share (the SMMU's cache ports,
//   memory channels) only adds time to fetch and execution, which the CMDQ runs pay too;
//   so ECMDQ is not slower: throughput at least, p99 latency at most the CMDQ's.
// - 8 CPUs on the CMDQ do wait for each other (lock + queueing > 0): the comparison is not
//   empty.
// Every run keeps the correctness oracle on: no violation.
#include <fstream>
#include <map>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using json = nlohmann::json;
using iommusim::test::run_cli;

struct Point {
  double throughput = 0, p50 = 0, p99 = 0, mean = 0, lock = 0, queueing = 0, violations = -1, checked = 0;
};

// One point of the preset: its "set" keys, fewer DMAs, ecmdqs and cpus as given.
Point run_point(const json& spec, unsigned ecmdqs, unsigned cpus) {
  std::string args;
  for (const auto& [k, v] : spec["set"].items()) args += " -p " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  args += " -p traffic.transactions=5000 -p sim.progress=false";
  args += " -p iommu.smmuv3.ecmdqs=" + std::to_string(ecmdqs) + " -p dma_api.cpus=" + std::to_string(cpus);
  const std::string dir = iommusim::test::fresh_dir("ecmdq_" + std::to_string(ecmdqs) + "_" + std::to_string(cpus));
  const auto r = run_cli("run --force -o " + dir + args);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(dir + "/stats.json");
  std::map<std::string, json> by_name;
  const json stats = json::parse(in);
  for (const auto& s : stats["stats"]) by_name[s["name"].get<std::string>()] = s;
  auto get = [&](const std::string& name, const char* field) {
    const auto it = by_name.find("smmuv3." + name);
    if (it == by_name.end() || !it->second.contains(field)) {
      ADD_FAILURE() << "no " << field << " of smmuv3." << name;
      return -1.0;
    }
    return it->second[field].get<double>();
  };
  Point p;
  p.throughput = get("run.map_unmap_throughput", "value");
  p.p50 = get("driver.invalidation.latency", "p50");
  p.p99 = get("driver.invalidation.latency", "p99");
  p.mean = get("driver.invalidation.latency", "mean");
  p.lock = get("driver.invalidation.lock", "mean");
  p.queueing = get("driver.invalidation.queueing", "mean");
  p.violations = get("oracle.violations", "value");
  p.checked = get("oracle.checked", "value");
  return p;
}

TEST(EcmdqScaling, SameOnOneCpuNotSlowerOnMany) {
  std::ifstream in(std::string(IOMMUSIM_SOURCE_DIR) + "/configs/presets/ecmdq.sweep.json");
  const json spec = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  ASSERT_EQ(spec["sweep"]["iommu.smmuv3.ecmdqs"], json({0, 8})) << "the preset compares the CMDQ with 8 ECMDQs";
  std::map<std::pair<unsigned, unsigned>, Point> pt;
  for (unsigned ecmdqs : {0u, 8u})
    for (unsigned cpus : {1u, 4u, 8u}) {
      SCOPED_TRACE("ecmdqs " + std::to_string(ecmdqs) + ", cpus " + std::to_string(cpus));
      const Point p = run_point(spec, ecmdqs, cpus);
      EXPECT_EQ(p.violations, 0);
      EXPECT_GT(p.checked, 0);
      pt[std::make_pair(ecmdqs, cpus)] = p;
    }
  const Point& c1 = pt[std::make_pair(0u, 1u)];
  const Point& e1 = pt[std::make_pair(8u, 1u)];
  EXPECT_DOUBLE_EQ(e1.p50, c1.p50);
  EXPECT_DOUBLE_EQ(e1.p99, c1.p99);
  EXPECT_DOUBLE_EQ(e1.mean, c1.mean);
  EXPECT_DOUBLE_EQ(e1.throughput, c1.throughput);
  EXPECT_EQ(c1.lock + c1.queueing, 0) << "one CPU has nobody to wait for, on either";
  for (unsigned cpus : {4u, 8u}) {
    SCOPED_TRACE("cpus " + std::to_string(cpus));
    const Point& c = pt[std::make_pair(0u, cpus)];
    const Point& e = pt[std::make_pair(8u, cpus)];
    EXPECT_EQ(e.lock, 0);
    EXPECT_EQ(e.queueing, 0);
    EXPECT_GE(e.throughput, c.throughput);
    EXPECT_LE(e.p99, c.p99);
  }
  const Point& c8 = pt[std::make_pair(0u, 8u)];
  EXPECT_GT(c8.lock + c8.queueing, 0) << "eight CPUs on the CMDQ wait for each other";
}

TEST(EcmdqScaling, BadEcmdqsExitsTwoNamingTheKey) {
  for (const char* bad : {"3", "512"}) {
    SCOPED_TRACE(bad);
    const auto r = run_cli("run --force -o " + iommusim::test::fresh_dir("ecmdq_bad") + " -p iommu.smmuv3.ecmdqs=" + bad);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("iommu.smmuv3.ecmdqs"), std::string::npos) << r.out;
  }
}

// Rings that cannot fit: 256 ECMDQs and the CMDQ of 16 << 19 = 8 MiB each (257 x 8 MiB, over 2 GiB)
// against the default 256 MiB platform.table_pool_bytes: a config error, not an init failure.
TEST(EcmdqScaling, RingsBeyondTheTablePoolAreAConfigError) {
  const auto r = run_cli("run --force -o " + iommusim::test::fresh_dir("ecmdq_pool") +
                         " -p iommu.vendor=smmuv3 -p iommu.smmuv3.ecmdqs=256 -p driver.smmuv3.cmdq_log2=19");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("iommu.smmuv3.ecmdqs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("platform.table_pool_bytes"), std::string::npos) << r.out;
  // 8 ECMDQs of 16 << 8 = 4 KiB (driver.smmuv3.cmdq_log2 default 8) fit.
  const auto ok = run_cli("run --force -o " + iommusim::test::fresh_dir("ecmdq_pool_ok") +
                          " -p iommu.vendor=smmuv3 -p iommu.smmuv3.ecmdqs=8 -p traffic.transactions=100 -p sim.progress=false");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
}

}  // namespace

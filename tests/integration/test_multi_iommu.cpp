// Several physical IOMMUs per lane (platform.iommus, docs/architecture.md and docs/vmm.md),
// run as a user runs them: two units, an endpoint behind each, on every vendor's native
// and trapped lane, guest faults on a trapped lane's second unit; and the config errors.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::fresh_dir;
using iommusim::test::has_stat;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;

// Endpoint 0 (RID 16, 1500 DMAs) behind unit 0, endpoint 1 (RID 24, 1000 DMAs) behind unit 1.
const char* kTwoUnits =
    " -p platform.iommus=2 -p 'traffic.endpoints=[{\"requester_id\":16,\"transactions\":1500},"
    "{\"requester_id\":24,\"transactions\":1000,\"iommu\":1}]'";

// Each lane: every 64-byte DMA is one translation on its endpoint's unit (1500 on unit 0,
// 1000 on unit 1), the lane's one oracle checked all 2500 with no violation, the stats are
// per unit (iommu0/1, driver0/1, and on the trapped lane host.driver0/1 and vmm0/1 with
// forwarded guest commands on each), and the lane's all-unit totals under the one-unit names
// (hit rates, walks, faults, config reads, the drivers' invalidation latency) add them up.
void expect_two_unit_lanes(const std::string& vendor) {
  const std::string dir = fresh_dir("multi_" + vendor);
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor +
                           " -p iommu.translation=nested -p vmm.paths=native,trapped" + kTwoUnits);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  for (const std::string& lane : {vendor, vendor + "@trapped"}) {
    SCOPED_TRACE(lane);
    const std::string l = lane + ".";
    EXPECT_EQ(stat(stats, l + "iommu0.translations"), 1500);
    EXPECT_EQ(stat(stats, l + "iommu1.translations"), 1000);
    EXPECT_EQ(stat(stats, l + "oracle.checked"), 2500);
    EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
    EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
    EXPECT_GT(stat(stats, l + "driver0.invalidation.latency", "count"), 0);
    EXPECT_GT(stat(stats, l + "driver1.invalidation.latency", "count"), 0);
    EXPECT_FALSE(has_stat(stats, l + "iommu.translations"));
    // The all-unit figures sweeps and reports read under the one-unit names: sums and merges.
    EXPECT_EQ(stat(stats, l + "iommu.walk_reads", "count"),
              stat(stats, l + "iommu0.walk_reads", "count") + stat(stats, l + "iommu1.walk_reads", "count"));
    EXPECT_EQ(stat(stats, l + "iommu.faults"), stat(stats, l + "iommu0.faults") + stat(stats, l + "iommu1.faults"));
    EXPECT_EQ(stat(stats, l + "driver.invalidation.latency", "count"),
              stat(stats, l + "driver0.invalidation.latency", "count") +
                  stat(stats, l + "driver1.invalidation.latency", "count"));
    const double hits = stat(stats, l + "iommu0.iotlb.hits") + stat(stats, l + "iommu1.iotlb.hits");
    const double lookups = hits + stat(stats, l + "iommu0.iotlb.misses") + stat(stats, l + "iommu1.iotlb.misses");
    ASSERT_GT(lookups, 0);
    EXPECT_DOUBLE_EQ(stat(stats, l + "iommu.iotlb.hit_rate"), hits / lookups);
  }
  const std::string t = vendor + "@trapped.";
  for (const char* k : {"0", "1"}) {
    EXPECT_GT(stat(stats, t + "vmm" + k + ".commands.forwarded"), 0) << k;
    EXPECT_GT(stat(stats, t + "host.driver" + k + ".invalidation.latency", "count"), 0) << k;
  }
}

// Guest faults per unit (docs/vmm.md, "Several IOMMUs"): the device sits behind unit 1 of
// 2, the stress workload's DMAs that meet a page the guest just unmapped fault in its
// stage 1; unit 1's host driver reports them to unit 1's vEVENTQ, vIOMMU 1 writes each into
// its guest's log or counts it lost, and guest driver 1 drains every one written. Unit 0
// has no device, so no vIOMMU or guest driver and no event stats.
void expect_guest_faults_on_unit1(const std::string& vendor) {
  const std::string dir = fresh_dir("multi_faults_" + vendor);
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor +
                           " -p vmm.paths=trapped -p workload.mode=stress -p traffic.pattern=random"
                           " -p workload.unmap_interval_ns=700 -p platform.iommus=2"
                           " -p 'traffic.endpoints=[{\"requester_id\":16,\"transactions\":20000,\"iommu\":1}]'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  const std::string t = vendor + "@trapped.";
  const double reported = stat(stats, t + "vmm1.events.reported");
  const double forwarded = stat(stats, t + "vmm1.events.forwarded");
  EXPECT_GT(reported, 0);
  EXPECT_GT(forwarded, 0);
  EXPECT_EQ(forwarded + stat(stats, t + "vmm1.events.lost"), reported);
  EXPECT_EQ(stat(stats, t + "driver1.events_consumed"), forwarded);
  EXPECT_EQ(stat(stats, t + "vmm1.event_latency", "count"), forwarded);
  EXPECT_EQ(stat(stats, t + "oracle.violations"), 0);
  EXPECT_FALSE(has_stat(stats, t + "vmm0.events.reported"));
}

}  // namespace

TEST(MultiIommu, SmmuLanesRouteEachEndpointToItsUnit) { expect_two_unit_lanes("smmuv3"); }
TEST(MultiIommu, VtdLanesRouteEachEndpointToItsUnit) { expect_two_unit_lanes("vtd"); }
TEST(MultiIommu, AmdLanesRouteEachEndpointToItsUnit) { expect_two_unit_lanes("amdvi"); }

// One unit (the default) keeps the single-IOMMU names.
TEST(MultiIommu, OneUnitKeepsItsNames) {
  const std::string dir = fresh_dir("multi_one");
  const CliRun r = run_cli("run --force -o " + dir +
                           " -p iommu.vendor=smmuv3 -p iommu.translation=nested -p vmm.paths=native,trapped"
                           " -p traffic.transactions=500");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  for (const char* name : {"smmuv3.iommu.translations", "smmuv3.driver.invalidation.latency",
                           "smmuv3@trapped.host.driver.invalidation.latency", "smmuv3@trapped.vmm.commands.forwarded"})
    EXPECT_TRUE(has_stat(stats, name)) << name;
  EXPECT_FALSE(has_stat(stats, "smmuv3.iommu0.translations"));
}

TEST(MultiIommu, SmmuGuestFaultsOnUnit1ReachItsGuestDriver) { expect_guest_faults_on_unit1("smmuv3"); }
TEST(MultiIommu, VtdGuestFaultsOnUnit1ReachItsGuestDriver) { expect_guest_faults_on_unit1("vtd"); }
TEST(MultiIommu, AmdGuestFaultsOnUnit1ReachItsGuestDriver) { expect_guest_faults_on_unit1("amdvi"); }

// What several IOMMUs cannot be given is a config error naming the key (exit 2).
TEST(MultiIommu, ConfigErrorsNameTheKey) {
  iommusim::test::expect_config_errors(fresh_dir("multi_bad"), "-p iommu.vendor=smmuv3", {
      {"-p platform.iommus=0", "platform.iommus"},
      {"-p platform.iommus=9", "platform.iommus"},
      {"-p 'traffic.endpoints=[{\"requester_id\":16,\"iommu\":1}]'", "traffic.endpoints[0].iommu"},
      {"-p platform.iommus=2 -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":24,\"iommu\":2}]'",
       "traffic.endpoints[1].iommu"},
      {"-p platform.iommus=2 -p 'traffic.endpoints=[{\"requester_id\":16,\"iommu\":8}]'", "traffic.endpoints[0].iommu"},
      {"-p platform.iommus=2 -p pcie.enabled=true", "platform.iommus"},
  });
}

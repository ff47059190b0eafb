// ATS on a RID shared by work queues (docs/ats.md, "The shared ATC"; docs/vmm.md, "The
// topology as a run"), run as a user runs it: the device's work queues share one ATC, each
// invalidation reaches it once, natively and in the issue-12 attach topology, with the host
// queue entries per invalidation worked out by hand from each driver's rules.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::bucket_count;
using iommusim::test::CliRun;
using iommusim::test::fresh_dir;
using iommusim::test::has_stat;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;

// Two work queues of device RID 32 (PASIDs 1 and 2), ATS on over the link, natively; the
// default workload attaches both to the lane's DMA domain and unmaps one 4 KB churn page at
// a time (no whole-domain flushes).
const char* kNativeWorkQueues =
    " -p iommu.translation=nested -p traffic.transactions=4000 -p traffic.ats.enabled=true -p pcie.enabled=true"
    " -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":2}]'"
    " -p workload.unmap_interval_ns=2000 -p workload.domain_invalidate_every=0";

// Native: one ATC for the device, its stats once (under the first queue's name), and every
// Invalidate Request the IOMMU sends received once by it. The requests, by hand: each
// churn unmap of the domain attached through (32, PASID 1) and (32, PASID 2) sends one per
// attachment, 2 (SMMUv3 arm_smmu_atc_inv_domain: CMD_ATC_INV per master and SSID; VT-d
// qi_flush_dev_iotlb_pasid per (RID, PASID) of the domain; AMD device_flush_iotlb with GN
// and the PASID); and each attach: SMMUv3 arm_smmu_atc_inv_master for the SSID attached (2
// attaches: 2), AMD device_flush_dte's whole-device INVALIDATE_IOTLB_PAGES (no GN: every PASID's
// entries; 2), VT-d none (a first PASID entry has
// no old one to tear down). So 2 x unmaps + {2, 0, 2}.
TEST(SharedAts, NativeWorkQueuesShareOneAtcOnEveryVendor) {
  const std::string dir = fresh_dir("shared_ats_native");
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=smmuv3,vtd,amdvi" + kNativeWorkQueues);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  struct Case { const char* vendor; double at_attach; };
  for (const Case& c : {Case{"smmuv3", 2}, Case{"vtd", 0}, Case{"amdvi", 2}}) {
    SCOPED_TRACE(c.vendor);
    const std::string l = std::string(c.vendor) + ".";
    EXPECT_EQ(stat(stats, l + "oracle.checked"), 8000);
    EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
    EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
    EXPECT_FALSE(has_stat(stats, l + "endpoint.ep1.atc.hits"));   // one ATC, registered once
    const double unmaps = stat(stats, l + "workload.unmaps");
    EXPECT_GT(unmaps, 100);
    const double sent = stat(stats, l + "iommu.ats.invalidations_sent");
    EXPECT_EQ(sent, 2 * unmaps + c.at_attach);
    EXPECT_EQ(stat(stats, l + "endpoint.ep0.atc.invalidations"), sent);   // each reached the device once
    // Both queues' translations went through it: twice one queue's Translation Requests.
    EXPECT_GT(stat(stats, l + "endpoint.ep0.atc.translation_requests"), 4000);
    EXPECT_EQ(stat(stats, l + "iommu.ats.translated_requests"), 8000);
  }
}

// The attach topology with ATS (configs/examples/topology_pasid_vms_ats.json): host queue
// entries per run of the guest's queue for one churn unmap of VM A's DMA domain (which
// covers D1 on SMMUv3 and AMD, D0/PASID 1 and D1 on VT-d), by hand:
// - SMMUv3: the guest (Linux arm_smmu_tlb_inv_range_domain, then arm_smmu_atc_inv_domain)
//   submits two batches, TLBI_NH_VA + CMD_SYNC and ATC_INV(vSID 1, D1) + CMD_SYNC; each is
//   one IOMMU_HWPT_INVALIDATE (arm_vsmmu_cache_invalidate: the converted command and one
//   CMD_SYNC, 2 per guest invalidation): 4 per queue run. Without ATS: 2.
// - AMD: the guest's INVALIDATE_IOMMU_PAGES (gDomID -> hDomID) and INVALIDATE_IOTLB_PAGES
//   (gDevID 1 -> D1's DeviceID), each forwarded with one COMPLETION_WAIT: 2 per guest
//   invalidation, 4 per queue run. Without ATS: 2.
// - VT-d: the guest's P_IOTLB reaches both nested HWPTs with A's DID (D0/PASID 1, D1); per
//   HWPT the host writes its P_IOTLB, the device-TLB invalidation of that attachment (Linux
//   cache_tag_flush_range, CACHE_TAG_NESTING_DEVTLB: D0's with PASID 1, D1's RID's) and an
//   inv_wait: 6 per queue run (without ATS: 4); VM B's one HWPT (D0/PASID 2): 3 (without: 2).
// Each device's ATC hears only of its own attachments: D0's shared ATC (ep0's stats) gets
// every request sent to RID 32 once.
TEST(SharedAts, TopologyGuestInvalidationsFanOutToTheDeviceTlbs) {
  struct Case { const char* vendor; double vm0_per_run, vm1_per_run; };
  for (const Case& c : {Case{"smmuv3", 4, 0}, Case{"vtd", 6, 3}, Case{"amdvi", 4, 0}}) {
    SCOPED_TRACE(c.vendor);
    const std::string dir = fresh_dir(std::string("shared_ats_topology_") + c.vendor);
    const CliRun r = run_cli("run --force -o " + dir + " " + std::string(IOMMUSIM_SOURCE_DIR) +
                             "/configs/examples/topology_pasid_vms_ats.json -p iommu.vendor=" + c.vendor +
                             " -p traffic.transactions=4000 -p workload.domain_invalidate_every=0");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const nlohmann::json stats = read_json(dir + "/stats.json");
    const std::string l = std::string(c.vendor) + "@trapped.";
    EXPECT_EQ(stat(stats, l + "oracle.checked"), 12000);
    EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
    EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
    EXPECT_EQ(stat(stats, l + "iommu.ats.translated_requests"), 12000);
    EXPECT_FALSE(has_stat(stats, l + "endpoint.ep1.atc.hits"));   // D0's queues: one ATC
    EXPECT_EQ(stat(stats, l + "endpoint.ep0.atc.invalidations") + stat(stats, l + "endpoint.ep2.atc.invalidations"),
              stat(stats, l + "iommu.ats.invalidations_sent"));
    const double unmaps = stat(stats, l + "vm0.driver.invalidation.latency", "count");
    EXPECT_GT(unmaps, 0);
    EXPECT_GE(bucket_count(stats, l + "vm0.vmm.host_commands_per_queue_run", c.vm0_per_run), unmaps);
    if (c.vm1_per_run) {
      const double b_unmaps = stat(stats, l + "vm1.driver.invalidation.latency", "count");
      EXPECT_GT(b_unmaps, 0);
      EXPECT_GE(bucket_count(stats, l + "vm1.vmm.host_commands_per_queue_run", c.vm1_per_run), b_unmaps);
    } else {
      EXPECT_EQ(stat(stats, l + "vm0.vmm.host_commands_per_guest_invalidation", "max"), 2);
    }
  }
}

// ATS on the work queues of a device needs the same ATC settings on each (one ATC).
TEST(SharedAts, ConfigErrorsNameTheKey) {
  const std::string two = "{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":2";
  iommusim::test::expect_config_errors(
      fresh_dir("shared_ats_bad"), "-p iommu.vendor=smmuv3 -p iommu.translation=nested",
      {
          {"-p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1,\"ats\":{\"enabled\":true}},"
           "{\"requester_id\":32,\"pasid\":2}]'",
           "traffic.endpoints[1].ats: must equal traffic.endpoints[0].ats"},
          {"-p traffic.ats.enabled=true -p 'traffic.endpoints=[" + two + ",\"ats\":{\"ways\":8}}]'",
           "traffic.endpoints[1].ats: must equal traffic.endpoints[0].ats"},
          {"-p traffic.ats.enabled=true -p 'traffic.endpoints=[" + two + ",\"clock_mhz\":500}]'",
           "traffic.endpoints[1].clock_mhz: must equal traffic.endpoints[0].clock_mhz"},
          // Stress beside work queues of endpoint 0's device: natively, and nested on VT-d only.
          {"-p workload.mode=stress -p 'traffic.endpoints=[" + two + "}]'",
           "traffic.endpoints: workload.mode = stress with work queues of endpoint 0's device and translation nested: "
           "smmuv3 holds one stage 2 per device"},
          {"-p workload.mode=stress -p vmm.paths=trapped -p 'traffic.endpoints=[" + two + "}]'",
           "vmm.assign[1].endpoint: RID 32 is already assigned by assign[0]"},   // a guest gets a RID whole, or PASIDs
          {"-p workload.mode=stress -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":33}]'",
           "traffic.endpoints: workload.mode = stress drives one endpoint"},
      });
}

}  // namespace

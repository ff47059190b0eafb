// The trapped invalidation path (docs/vmm.md) run as a user runs it: a guest's SMMUv3
// driver behind the VMM's vSMMU, or a guest's VT-d driver behind its vVT-d, its stage 1
// nested over the host's stage 2 through iommufd. Known answers come from the cost keys'
// defaults at driver.cpu_mhz = 2000 (0.5 ns a cycle).
#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::fresh_dir;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;

constexpr double kNsPerCycle = 0.5;
// vmm.arm64 defaults, in cycles.
constexpr double kExit = 3826, kEntry = 3826, kRegAccess = 600, kFetch = 200, kDecode = 200, kSyscall = 1000,
                 kIommufdCall = 1000, kIommufdEntry = 50, kComplete = 200;
// driver.op_overhead_cycles: the host driver's conversion of a block of guest commands,
// before its own queue operation (arm_vsmmu_cache_invalidate).
constexpr double kHostConvert = 400;

struct LaneRun {
  nlohmann::json stats, records;
  std::string out;
};

LaneRun run_lane(const std::string& vendor, const std::string& name, const std::string& params) {
  const std::string dir = fresh_dir(name);
  const CliRun r =
      run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor + " -p iommu.translation=nested " + params);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return LaneRun{read_json(dir + "/stats.json"), read_json(dir + "/invalidations.json"), r.out};
}
LaneRun run_smmu(const std::string& name, const std::string& params) { return run_lane("smmuv3", name, params); }
LaneRun run_vtd(const std::string& name, const std::string& params) { return run_lane("vtd", name, params); }

const nlohmann::json& records_of(const LaneRun& r, const std::string& lane) { return r.records.at(lane); }

// Two devices behind `vendor`'s trapped lane (`eps`), with extra guest PASIDs, on seeds 1 and
// 7: every DMA checked, none faulted or violating, something forwarded, no ioctl failed;
// `more` checks the vendor's own stats. Then the same seed twice gives identical bytes.
template <class More>
void expect_clean_multi_device_runs(const std::string& vendor, const std::string& eps, More&& more) {
  const std::string lane = vendor + "@trapped.";
  for (const char* seed : {"1", "7"}) {
    const LaneRun r = run_lane(vendor, "trapped_multi_" + vendor + seed,
                               eps + "-p vmm.paths=trapped -p workload.extra_pasids=2 -p sim.seed=" + seed);
    EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0) << seed;
    EXPECT_EQ(stat(r.stats, lane + "oracle.checked"), 6000) << seed;
    EXPECT_EQ(stat(r.stats, lane + "endpoint.faults"), 0) << seed;
    EXPECT_GT(stat(r.stats, lane + "vmm.commands.forwarded"), 0) << seed;
    EXPECT_EQ(stat(r.stats, lane + "vmm.ioctl_errors"), 0) << seed;
    more(r.stats, lane);
  }
  const LaneRun a = run_lane(vendor, "trapped_det_a_" + vendor, eps + "-p vmm.paths=trapped -p sim.seed=3");
  const LaneRun b = run_lane(vendor, "trapped_det_b_" + vendor, eps + "-p vmm.paths=trapped -p sim.seed=3");
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_EQ(a.records, b.records);
}

// How many samples histogram `name` holds at exactly `value` (its buckets are exact below 64).
double bucket_count(const nlohmann::json& stats, const std::string& name, double value) {
  for (const auto& s : stats["stats"])
    if (s["name"] == name)
      for (const auto& b : s["buckets"])
        if (b[0].get<double>() == value && b[1].get<double>() == value + 1) return b[2].get<double>();
  return 0;
}

double ns(const nlohmann::json& rec, const char* part) { return rec.at(std::string(part) + "_ns").get<double>(); }

// The software part of the first unmap among a native lane's records (-1: none).
double first_unmap_software(const nlohmann::json& records) {
  for (const auto& rec : records)
    if (rec["op"] == "unmap") return ns(rec, "software");
  return -1;
}

// A trapped record: the hardware queue's parts are zero (the emulated queue ran inside the
// doorbell write) and every part together is the total.
void expect_trapped_parts(const nlohmann::json& rec) {
  for (const char* hw : {"queueing", "fetch", "execution", "atc", "lock"}) EXPECT_EQ(ns(rec, hw), 0) << hw;
  double parts = 0;
  for (const char* p : {"software", "lock", "trap", "vmm", "host_kernel", "host_queue", "return", "queueing", "fetch",
                        "execution", "atc", "sync"})
    parts += ns(rec, p);
  EXPECT_NEAR(parts, ns(rec, "total"), 1e-6);
}
}  // namespace

// One uncontended guest unmap of a 4 KB page: TLBI_NH_VA + CMD_SYNC in the guest's queue.
// - trap: the doorbell's VM exit and the VMM's dispatch; return: the VM entry.
// - vmm: per guest command a fetch and a decode, plus completing the guest's CMD_SYNC.
// - host_kernel: one IOMMU_HWPT_INVALIDATE (syscall, iommufd, one entry), the host driver's
//   conversion of the block and its software for its own TLBI_NH_VA + CMD_SYNC; host_queue:
//   the rest of that host operation (its queue, execution and sync), as the host driver's
//   own records say: together they are the host records' queue time, less that of the
//   two set-up forwards (the guest's boot-time TLBI_NSNH_ALL and the CFGI_CD of its attach).
// - sync: one poll interval (50 ns), then a trapped CMDQ_CONS read (exit, dispatch, entry)
//   that sees the guest's CMD_SYNC consumed (the vSMMU has no MSIs).
// - software: the same driver's work as on the native lane, less the native doorbell's MMIO
//   write (driver.mmio_write_ns = 150) and the SMMU's one-cycle register access (1 ns).
TEST(Trapped, GuestUnmapLatencyIsTheSumOfItsSteps) {
  const LaneRun r = run_smmu("trapped_kat", "-p vmm.paths=native,trapped -p traffic.transactions=5000 "
                                         "-p workload.domain_invalidate_every=0");
  const nlohmann::json& guest = records_of(r, "smmuv3@trapped");
  const nlohmann::json& native = records_of(r, "smmuv3");
  ASSERT_FALSE(guest.empty());
  const double native_unmap_software = first_unmap_software(native);
  ASSERT_GT(native_unmap_software, 0);
  const std::string host = "smmuv3@trapped.host.driver.invalidation.";
  const double host_software = stat(r.stats, host + "software", "mean");
  const double host_records = stat(r.stats, host + "latency", "count");
  const double host_queue_sum = host_records * (stat(r.stats, host + "latency", "mean") - host_software);
  double guest_host_queue_sum = 0;
  EXPECT_EQ(stat(r.stats, host + "software", "min"), stat(r.stats, host + "software", "max"));   // one kind of host op
  unsigned unmaps = 0;
  for (const auto& rec : guest) {
    ASSERT_EQ(rec["op"], "unmap");
    ++unmaps;
    EXPECT_EQ(rec["commands"], 2);
    EXPECT_DOUBLE_EQ(ns(rec, "trap"), (kExit + kRegAccess) * kNsPerCycle);                 // 2213
    EXPECT_DOUBLE_EQ(ns(rec, "return"), kEntry * kNsPerCycle);                              // 1913
    EXPECT_DOUBLE_EQ(ns(rec, "vmm"), (2 * (kFetch + kDecode) + kComplete) * kNsPerCycle);   // 500
    EXPECT_DOUBLE_EQ(ns(rec, "host_kernel"),
                     (kSyscall + kIommufdCall + kIommufdEntry + kHostConvert) * kNsPerCycle + host_software);
    EXPECT_GT(ns(rec, "host_queue"), 0);
    guest_host_queue_sum += ns(rec, "host_queue");
    EXPECT_DOUBLE_EQ(ns(rec, "sync"), 50 + (kExit + kRegAccess + kEntry) * kNsPerCycle);   // 4176
    EXPECT_DOUBLE_EQ(ns(rec, "software"), native_unmap_software - 150 - 1);
    expect_trapped_parts(rec);
  }
  EXPECT_EQ(host_records, unmaps + 2);
  EXPECT_GT(host_queue_sum - guest_host_queue_sum, 0);
  EXPECT_LE(host_queue_sum - guest_host_queue_sum, 2 * stat(r.stats, host + "latency", "max"));
  // One forwarded TLBI and one host CMD_SYNC per guest unmap (QEMU forwards one command
  // per ioctl); the guest's CMD_SYNC itself is completed by the VMM, never forwarded.
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.workload.unmaps"), unmaps);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.commands.forwarded"), unmaps + 2);   // + TLBI_NSNH_ALL, CFGI_CD
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.exits.doorbell"), stat(r.stats, "smmuv3@trapped.vmm.iommufd.hwpt_invalidate.calls") + 1);
  // Host queue entries per doorbell: every host entry after the host driver's own init
  // (CFGI_ALL, TLBI_NSNH_ALL, CMD_SYNC: arm_smmu_device_reset) came from a guest doorbell,
  // and each unmap's costs two (its TLBI_NH_VA with the VMID, the host's CMD_SYNC).
  const std::string per_doorbell = "smmuv3@trapped.vmm.host_commands_per_doorbell";
  EXPECT_EQ(stat(r.stats, per_doorbell, "count"), stat(r.stats, "smmuv3@trapped.vmm.exits.doorbell"));
  EXPECT_DOUBLE_EQ(stat(r.stats, per_doorbell, "count") * stat(r.stats, per_doorbell, "mean"),
                   stat(r.stats, "smmuv3@trapped.host.driver.commands_issued") - 3);
  EXPECT_GE(bucket_count(r.stats, per_doorbell, 2), unmaps);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.checked"), 5000);
}

// A trapped lane beside the native one changes nothing of the native lane's figures.
TEST(Trapped, NativeLaneIsTheSameWithOrWithoutATrappedLane) {
  for (const std::string vendor : {"smmuv3", "vtd"}) {
    const LaneRun alone = run_lane(vendor, "trapped_native_alone", "-p traffic.transactions=3000");
    const LaneRun both = run_lane(vendor, "trapped_native_both", "-p traffic.transactions=3000 -p vmm.paths=native,trapped");
    unsigned compared = 0;
    for (const auto& s : alone.stats["stats"]) {
      const std::string name = s["name"];
      if (name.rfind(vendor + ".", 0) != 0) continue;
      bool found = false;
      for (const auto& t : both.stats["stats"])
        if (t["name"] == name) { EXPECT_EQ(s, t) << name; found = true; ++compared; break; }
      EXPECT_TRUE(found) << name;
    }
    EXPECT_GT(compared, 100u) << vendor;
    EXPECT_EQ(alone.records.at(vendor), both.records.at(vendor)) << vendor;
  }
}

// The guest programs its devices by vSID (its index among the endpoints); the host STE,
// IOTLB and oracle see the physical StreamIDs. Several endpoints, extra PASIDs (CDs that
// the guest adds with CFGI_CD, forwarded with the vSID rewritten) and seeds: no fault, no
// violation, identical bytes for the same seed.
TEST(Trapped, SeveralDevicesAndPasidsTranslateWithoutViolations) {
  expect_clean_multi_device_runs(
      "smmuv3",
      R"(-p 'traffic.endpoints=[{"requester_id":16,"transactions":3000},{"requester_id":33,"transactions":3000,"pasid":3}]' )",
      [](const nlohmann::json& s, const std::string& lane) {
        EXPECT_EQ(stat(s, lane + "vmm.commands.dropped_unattached"), 0);
      });
}

// What the trapped path cannot serve yet is a config error naming vmm.paths (exit 2).
TEST(Trapped, UnsupportedSettingsAreConfigErrors) {
  struct Case { const char* params; const char* says; };
  const Case cases[] = {
      {"-p iommu.translation=s1 -p vmm.paths=trapped", "trapped needs iommu.translation = nested"},
      {"-p vmm.paths=trapped -p iommu.vendor=amdvi", "not modelled for amdvi"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd -p traffic.pasid=3", "RID_PASID entry only"},
      {"-p vmm.paths=trapped -p workload.mode=storage", "workload.mode = churn or stress"},
      {"-p vmm.paths=trapped -p workload.mode=stress -p workload.mixed_leaves=true", "mixed_leaves"},
      {"-p vmm.paths=trapped -p traffic.ats.enabled=true", "ATS"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd -p vmm.inject=drop_tlbi", "smmuv3@trapped only"},
      {"-p vmm.paths=guest", "vmm.paths"},
  };
  for (const Case& c : cases) {
    const std::string dir = fresh_dir("trapped_bad");
    // The vendor named last wins: smmuv3 unless the case names another.
    const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=smmuv3 -p iommu.translation=nested " + c.params);
    EXPECT_EQ(r.exit_code, 2) << c.params << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.params << "\n" << r.out;
  }
}

// A VMM that completes the guest's CMD_SYNCs without forwarding its TLBIs leaves stale
// translations in the host's IOTLB: under the stress workload (the guest remaps pages the
// device uses; a 1 MiB window, so the IOTLB holds them), the oracle must report them (exit 3).
TEST(Trapped, OracleCatchesAVmmThatDropsTheGuestsTlbis) {
  const std::string dir = fresh_dir("trapped_inject");
  const CliRun r = run_cli("run --force -o " + dir +
                           " -p iommu.vendor=smmuv3 -p iommu.translation=nested -p vmm.paths=trapped -p vmm.inject=drop_tlbi "
                           "-p workload.mode=stress -p traffic.transactions=100000 -p traffic.pattern=random "
                           "-p traffic.window_bytes=1048576 -p workload.unmap_interval_ns=500");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  const nlohmann::json s = read_json(dir + "/stats.json");
  EXPECT_GT(stat(s, "smmuv3@trapped.vmm.commands.dropped_injected"), 0);
  EXPECT_GT(stat(s, "smmuv3@trapped.oracle.violations"), 0);
}

// vmm.x86_intel defaults, in cycles.
constexpr double kVtdExit = 1226, kVtdEntry = 1226;
// driver.poll_read_cycles: the guest's read of its inv_wait status word in memory.
constexpr double kPollRead = 10;

// One uncontended guest unmap of a 4 KB page on VT-d: P_IOTLB (page-selective, IH) and
// inv_wait (SW) in the guest's queue, 256-bit descriptors.
// - trap: the IQT write's VM exit and the VMM's dispatch, (1226 + 600) cycles = 913 ns;
//   return: the VM entry, 1226 cycles = 613 ns.
// - vmm: per descriptor one 32-byte fetch and a decode, (200 + 200) x 2, plus completing
//   the inv_wait (its status store), 200: 1000 cycles = 500 ns.
// - host_kernel: one IOMMU_HWPT_INVALIDATE with one entry to the device's nested HWPT,
//   syscall 1000 + iommufd 1000 + entry 50 = 2050 cycles, plus the host driver's
//   conversion of the entry (driver.op_overhead_cycles, 400: intel_nested_cache_invalidate_user
//   per entry) and its software for its own P_IOTLB + inv_wait; host_queue: the rest of
//   that host operation, as the host driver's own records say.
// - sync: the synchronous vVT-d has run the inv_wait before the IQT write returned, so the
//   guest's first poll of its status word sees QI_DONE: one poll interval (50 ns) and one
//   cached read (10 cycles = 5 ns), and no FSTS read (qi_check_fault runs only while the
//   wait is not done).
// - software: the native lane's, less the native doorbell's MMIO write (driver.mmio_write_ns
//   = 150) and the unit's one-cycle register access at 1 GHz (1 ns).
TEST(Trapped, VtdGuestUnmapLatencyIsTheSumOfItsSteps) {
  const LaneRun r = run_vtd("trapped_vtd_kat", "-p vmm.paths=native,trapped -p traffic.transactions=5000 "
                                              "-p workload.domain_invalidate_every=0");
  const nlohmann::json& guest = records_of(r, "vtd@trapped");
  const nlohmann::json& native = records_of(r, "vtd");
  ASSERT_FALSE(guest.empty());
  const double native_unmap_software = first_unmap_software(native);
  ASSERT_GT(native_unmap_software, 0);
  const std::string host = "vtd@trapped.host.driver.invalidation.";
  const double host_software = stat(r.stats, host + "software", "mean");
  EXPECT_EQ(stat(r.stats, host + "software", "min"), stat(r.stats, host + "software", "max"));   // one kind of host op
  unsigned unmaps = 0;
  for (const auto& rec : guest) {
    ASSERT_EQ(rec["op"], "unmap");
    ++unmaps;
    EXPECT_EQ(rec["commands"], 2);
    EXPECT_DOUBLE_EQ(ns(rec, "trap"), (kVtdExit + kRegAccess) * kNsPerCycle);                 // 913
    EXPECT_DOUBLE_EQ(ns(rec, "return"), kVtdEntry * kNsPerCycle);                              // 613
    EXPECT_DOUBLE_EQ(ns(rec, "vmm"), (2 * (kFetch + kDecode) + kComplete) * kNsPerCycle);      // 500
    EXPECT_DOUBLE_EQ(ns(rec, "host_kernel"),
                     (kSyscall + kIommufdCall + kIommufdEntry + kHostConvert) * kNsPerCycle + host_software);
    EXPECT_GT(ns(rec, "host_queue"), 0);
    EXPECT_DOUBLE_EQ(ns(rec, "sync"), 50 + kPollRead * kNsPerCycle);                           // 55
    EXPECT_DOUBLE_EQ(ns(rec, "software"), native_unmap_software - 150 - 1);
    expect_trapped_parts(rec);
  }
  // One forwarded entry per guest unmap, plus the P_IOTLB of the attach's caching-mode
  // flush (pasid_flush_caches) once the nested HWPT is installed; the guest's inv_wait is
  // completed by the VMM, never forwarded. No FSTS read while waiting.
  EXPECT_EQ(stat(r.stats, "vtd@trapped.workload.unmaps"), unmaps);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.commands.forwarded"), unmaps + 1);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.iommufd.hwpt_invalidate.calls"), unmaps + 1);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.pasid_installs"), 1);
  // Each unmap's ioctl costs the host two entries: the P_IOTLB with the nested domain's own
  // DID and the inv_wait of that entry (intel_nested_cache_invalidate_user).
  EXPECT_GE(bucket_count(r.stats, "vtd@trapped.vmm.host_commands_per_doorbell", 2), unmaps);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.ioctl_errors"), 0);
  // One poll per queue operation (the run may end between a doorbell and its poll).
  const double polls = stat(r.stats, "vtd@trapped.driver.polls");
  EXPECT_LE(polls, stat(r.stats, "vtd@trapped.vmm.exits.doorbell"));
  EXPECT_GE(polls + 1, stat(r.stats, "vtd@trapped.vmm.exits.doorbell"));
  EXPECT_EQ(stat(r.stats, "vtd@trapped.oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.oracle.checked"), 5000);
}

// Several devices (vRID = endpoint index) and extra guest PASIDs: the guest's RID_PASID
// entries become nested HWPTs, its P_IOTLBs of the extra PASIDs (which QEMU does not
// propagate) are dropped and counted; no fault, no violation, identical bytes per seed.
TEST(Trapped, VtdSeveralDevicesTranslateWithoutViolations) {
  expect_clean_multi_device_runs(
      "vtd", R"(-p 'traffic.endpoints=[{"requester_id":16,"transactions":3000},{"requester_id":33,"transactions":3000}]' )",
      [](const nlohmann::json& s, const std::string& lane) {
        EXPECT_EQ(stat(s, lane + "vmm.pasid_installs"), 2);
        EXPECT_GT(stat(s, lane + "vmm.commands.dropped_unattached"), 0);
        EXPECT_EQ(stat(s, lane + "vmm.illegal_commands"), 0);
      });
}

// Under stress the guest moves its device between domains A and B many times; the VMM
// replaces the nested HWPT each time. No DMA may meet an aborting STE because of it (the
// SMMU guest re-sends CFGI_STE when only its CD changed), and on VT-d a host stage-2 change
// invalidates only the nest parent's DID and the one nested DID in use, plus inv_wait: 3
// descriptors at most, however many HWPTs were destroyed before.
TEST(Trapped, ReattachesNeitherAbortDmasNorMultiplyHostInvalidations) {
  const std::string stress = "-p vmm.paths=trapped -p workload.mode=stress -p traffic.pattern=random "
                             "-p traffic.transactions=100000 -p workload.unmap_interval_ns=700 ";
  const LaneRun smmu = run_lane("smmuv3", "trapped_reattach_smmu", stress);
  EXPECT_GT(stat(smmu.stats, "smmuv3@trapped.workload.stress_reattaches"), 10);
  EXPECT_EQ(stat(smmu.stats, "smmuv3@trapped.iommu.aborted"), 0);
  EXPECT_EQ(stat(smmu.stats, "smmuv3@trapped.oracle.violations"), 0);
  const LaneRun vtd = run_lane("vtd", "trapped_reattach_vtd", stress);
  EXPECT_GT(stat(vtd.stats, "vtd@trapped.workload.stress_reattaches"), 10);
  EXPECT_GT(stat(vtd.stats, "vtd@trapped.workload.stress_s2_remaps"), 10);
  EXPECT_LE(stat(vtd.stats, "vtd@trapped.host.driver.invalidation.commands", "max"), 3);
  EXPECT_EQ(stat(vtd.stats, "vtd@trapped.oracle.violations"), 0);
}

// Guest faults on a trapped lane (docs/vmm.md, "Guest faults"): the stress workload's DMAs
// that meet a page the guest just unmapped fault in the guest's stage 1; each record goes
// through the vEVENTQ into the guest's EVTQ and is consumed by the guest's own driver, none
// lost, and the host keeps none of them.
TEST(Trapped, GuestFaultsReachTheGuestDriverThroughTheVeventq) {
  const LaneRun r = run_smmu("trapped_guest_faults", "-p vmm.paths=trapped -p workload.mode=stress "
                                                     "-p traffic.pattern=random -p traffic.transactions=20000 "
                                                     "-p workload.unmap_interval_ns=700");
  const double faults = stat(r.stats, "smmuv3@trapped.iommu.events");
  EXPECT_GT(faults, 0);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.events.reported"), faults);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.events.forwarded"), faults);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.events.lost"), 0);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.driver.events_consumed"), faults);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.vmm.event_latency", "count"), faults);
  // At least the chain's fixed costs: irq 2000 + report 250 + wake-up 5000 + read 1000 +
  // store 100 ns (the host driver's drain and the wait for the handler come on top).
  EXPECT_GE(stat(r.stats, "smmuv3@trapped.vmm.event_latency", "min"), 8350);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.violations"), 0);
}

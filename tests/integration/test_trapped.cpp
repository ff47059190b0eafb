// The trapped invalidation path (docs/vmm.md) run as a user runs it: a guest's SMMUv3
// driver behind the VMM's vSMMU, a guest's VT-d driver behind its vVT-d, or a guest's AMD
// driver behind its vAMD, its stage 1 nested over the host's stage 2 through iommufd. Known answers come from the cost keys'
// defaults at driver.cpu_mhz = 2000 (0.5 ns a cycle).
#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::bucket_count;
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

// configs/examples/trace_replay.json as overrides: its trace and its two endpoints (0x10,
// and 0x18 with PASID 1).
std::string trace_example() {
  return "-p workload.mode=trace -p trace.file=" + std::string(IOMMUSIM_SOURCE_DIR) +
         "/configs/examples/trace_sample.trace -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":24}]'";
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
  const std::string per_run = "smmuv3@trapped.vmm.host_commands_per_queue_run";
  EXPECT_LE(stat(r.stats, per_run, "count"), stat(r.stats, "smmuv3@trapped.vmm.exits.doorbell"));   // runs that consumed
  EXPECT_DOUBLE_EQ(stat(r.stats, per_run, "count") * stat(r.stats, per_run, "mean"),
                   stat(r.stats, "smmuv3@trapped.host.driver.commands_issued") - 3);
  EXPECT_GE(bucket_count(r.stats, per_run, 2), unmaps);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.checked"), 5000);
}

// A trapped lane beside the native one changes nothing of the native lane's figures.
TEST(Trapped, NativeLaneIsTheSameWithOrWithoutATrappedLane) {
  for (const std::string vendor : {"smmuv3", "vtd", "amdvi"}) {
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
  // The vendor named last wins: smmuv3 unless the case names another.
  iommusim::test::expect_config_errors(fresh_dir("trapped_bad"), "-p iommu.vendor=smmuv3 -p iommu.translation=nested", {
      {"-p iommu.translation=s1 -p vmm.paths=trapped", "trapped needs iommu.translation = nested"},
      {"-p vmm.paths=trapped -p iommu.vendor=amdvi -p vmm.inject=drop_tlbi", "smmuv3@trapped only"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd -p traffic.pasid=3", "RID_PASID entry only"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd " + trace_example(), "the trace uses PASID 1"},
      {"-p vmm.paths=native,trapped -p workload.mode=nic", "nested with vmm.paths = trapped"},
      {"-p vmm.paths=native,trapped -p workload.mode=dma_api", "nested with vmm.paths = trapped"},
      {"-p vmm.paths=trapped -p workload.mode=stress -p workload.mixed_leaves=true", "mixed_leaves"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd -p vmm.inject=drop_tlbi", "smmuv3@trapped only"},
      {"-p vmm.paths=guest", "vmm.paths"},
      {"-p vmm.paths=trapped -p vmm.inject=drop_atc_inv", "needs an endpoint with ATS"},
      {"-p vmm.paths=native -p vmm.completion=deferred", "vmm.completion: needs a trapped lane"},
      {"-p vmm.paths=native -p vmm.inject=drop_tlbi", "vmm.inject: needs a trapped lane"},
  });
}

// vmm.paths: each known path once, in the order native, trapped, accelerated, virtio; VT-d has
// no accelerated path (no architected guest-direct queue).
TEST(Trapped, PathsAreAnOrderedListOfKnownPaths) {
  iommusim::test::expect_config_errors(fresh_dir("trapped_bad_paths"), "-p iommu.vendor=smmuv3 -p iommu.translation=nested", {
      {"-p vmm.paths=trapped,native", "vmm.paths: list the paths in the order native, trapped, accelerated, virtio"},
      {"-p vmm.paths=native,native", "vmm.paths: 'native' is listed twice"},
      {"-p vmm.paths=native,", "vmm.paths: unknown path ''"},
      {"-p vmm.paths=hardware", "vmm.paths: unknown path 'hardware'"},
      {"-p iommu.translation=s1 -p vmm.paths=accelerated", "accelerated needs iommu.translation = nested"},
      {"-p iommu.vendor=vtd -p vmm.paths=native,accelerated", "VT-d has no architected guest-direct invalidation queue"},
  });
}

// A cache-tag policy: a value it does not know, or a lane it does not act on, is a config
// error naming the key (exit 2).
TEST(Trapped, CacheTagPolicyErrorsNameTheKey) {
  iommusim::test::expect_config_errors(fresh_dir("trapped_bad_policy"), "-p iommu.vendor=smmuv3 -p iommu.translation=nested", {
      {"-p vmm.paths=trapped -p iommu.vendor=amdvi -p vmm.amd_domid=per_vm", "vmm.amd_domid"},
      {"-p vmm.paths=trapped -p vmm.arm_vmid=per_cd", "vmm.arm_vmid"},
      {"-p vmm.paths=trapped -p iommu.vendor=amdvi -p guest.amd_gcr3=dedup", "guest.amd_gcr3"},
      {"-p iommu.vendor=amdvi -p vmm.amd_domid=per_device", "vmm.amd_domid: applies to amdvi@trapped only"},
      {"-p vmm.paths=trapped -p vmm.amd_domid=per_group", "vmm.amd_domid: applies to amdvi@trapped only"},
      {"-p vmm.paths=trapped -p iommu.vendor=vtd -p vmm.arm_vmid=per_nested_hwpt", "vmm.arm_vmid: applies"},
      {"-p vmm.paths=native -p iommu.vendor=amdvi -p guest.amd_gcr3=shared", "guest.amd_gcr3: applies"},
  });
}

// Two devices in one guest domain on amdvi@trapped, under each host DomainID policy and
// GCR3 layout: no violation, and the tags and fan-out each policy implies. Linux's guest
// (a GCR3 table and gDomID per device) names two gDomIDs per invalidation; a de-duplicating
// guest names one, which per_device splits again over two hDomIDs.
TEST(Trapped, AmdCacheTagPoliciesOnTwoDevices) {
  struct Case { const char* params; double host_ids, gcr3_tables, per_guest_inv; };
  const Case cases[] = {
      {"-p vmm.amd_domid=per_gdomid", 2, 2, 2},
      {"-p vmm.amd_domid=per_gdomid -p guest.amd_gcr3=shared", 1, 1, 2},
      {"-p vmm.amd_domid=per_device -p guest.amd_gcr3=shared", 2, 1, 3},
      {"-p vmm.amd_domid=per_group", 1, 2, 2},
  };
  const std::string eps = R"(-p 'traffic.endpoints=[{"requester_id":16,"transactions":3000},{"requester_id":33,"transactions":3000}]' )";
  const std::string lane = "amdvi@trapped.";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.params);
    const LaneRun r = run_lane("amdvi", "trapped_amd_tags", eps + "-p vmm.paths=trapped -p workload.domain_invalidate_every=0 " + c.params);
    EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0);
    EXPECT_EQ(stat(r.stats, lane + "oracle.checked"), 6000);
    EXPECT_EQ(stat(r.stats, lane + "vmm.tags.host_ids"), c.host_ids);
    EXPECT_EQ(stat(r.stats, lane + "driver.gcr3_tables"), c.gcr3_tables);
    EXPECT_GT(stat(r.stats, lane + "iommu.iotlb.valid_entries"), 0);
    // A churn unmap: per guest INVALIDATE_IOMMU_PAGES, its host commands and the host's
    // COMPLETION_WAIT (the guest's boot-time INVALIDATE_IOMMU_ALL and attach flushes differ).
    EXPECT_EQ(stat(r.stats, lane + "vmm.host_commands_per_guest_invalidation", "p50"), c.per_guest_inv);
  }
}

// SMMUv3 with a VMID per nested HWPT: still no violation, and a guest TLBI costs one host
// command per nested HWPT of the vIOMMU (here one: one guest STE installed).
TEST(Trapped, ArmVmidPerNestedHwptRunsClean) {
  const LaneRun r = run_smmu("trapped_arm_vmid", "-p vmm.paths=trapped -p vmm.arm_vmid=per_nested_hwpt "
                                                 "-p traffic.transactions=3000");
  EXPECT_EQ(stat(r.stats, "smmuv3@trapped.oracle.violations"), 0);
  EXPECT_GE(stat(r.stats, "smmuv3@trapped.vmm.tags.host_ids"), 1);
}

// The guest's DMA API (4 CPUs) over its vIOMMU, strict and lazy, on every vendor: every DMA
// checked against the guest's mappings with no violation; strict forwards one invalidation
// per unmap (plus the boot and attach forwards), lazy one per flush-queue flush.
TEST(Trapped, GuestDmaApiRunsStrictAndLazy) {
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* mode : {"strict", "lazy"}) {
      SCOPED_TRACE(std::string(vendor) + " " + mode);
      const LaneRun r = run_lane(vendor, std::string("trapped_dma_api_") + vendor + mode,
                                 std::string("-p vmm.paths=trapped -p workload.mode=dma_api -p dma_api.mode=") + mode +
                                     " -p dma_api.fq_size=16 -p dma_api.fq_timeout_us=50 -p traffic.transactions=20000");
      const std::string lane = std::string(vendor) + "@trapped.";
      EXPECT_EQ(stat(r.stats, lane + "oracle.checked"), 20000);
      EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0);
      EXPECT_EQ(stat(r.stats, lane + "endpoint.faults"), 0);
      EXPECT_EQ(stat(r.stats, lane + "dma_api.failures"), 0);
      const double invalidations = stat(r.stats, lane + "dma_api.invalidations");
      if (std::string(mode) == "strict") {
        EXPECT_GT(invalidations, 0);
        EXPECT_EQ(invalidations, stat(r.stats, lane + "dma_api.unmaps"));
      } else {
        EXPECT_GT(invalidations, 0);
        EXPECT_EQ(invalidations, stat(r.stats, lane + "dma_api.flushes_full") + stat(r.stats, lane + "dma_api.flushes_timer"));
        EXPECT_LT(invalidations, stat(r.stats, lane + "dma_api.unmaps"));
      }
      // SMMUv3: the boot's TLBI_NSNH_ALL and the attach's CFGI_CD; VT-d: the attach's
      // P_IOTLB; AMD: the boot's INVALIDATE_IOMMU_ALL and the attach's GN=1 all-pages
      // INVALIDATE_IOMMU_PAGES of PASID 0 (its GCR3 entry's flush).
      EXPECT_EQ(stat(r.stats, lane + "vmm.commands.forwarded"), invalidations + (std::string(vendor) == "vtd" ? 1 : 2));
    }
}

// The NIC, storage and trace-replay workloads with the guest's driver over its vIOMMU
// (guest-physical buffers and rings, virtual device IDs): every DMA checked, none faulted
// or violating, the guest's flushes forwarded, and each record's parts add up to its total.
// The example trace's second device uses PASID 1, which the vVT-d does not propagate (an
// AMD guest's PASIDs live in its own GCR3 table).
TEST(Trapped, GuestJobWorkloadsRun) {
  const std::string trace = trace_example();
  const std::pair<const char*, std::string> runs[] = {
      {"smmuv3", "-p workload.mode=nic"}, {"smmuv3", "-p workload.mode=storage"}, {"smmuv3", trace},
      {"vtd", "-p workload.mode=nic"},    {"vtd", "-p workload.mode=storage"},
      {"amdvi", "-p workload.mode=nic"},  {"amdvi", "-p workload.mode=storage"}, {"amdvi", trace}};
  for (const auto& [vendor, params] : runs) {
    SCOPED_TRACE(std::string(vendor) + " " + params);
    const LaneRun r = run_lane(vendor, std::string("trapped_jobs_") + vendor + std::to_string(params.size()),
                               "-p vmm.paths=trapped " + params);
    const std::string lane = std::string(vendor) + "@trapped";
    EXPECT_GT(stat(r.stats, lane + ".oracle.checked"), 0);
    EXPECT_EQ(stat(r.stats, lane + ".oracle.violations"), 0);
    EXPECT_EQ(stat(r.stats, lane + ".endpoint.faults"), 0);
    EXPECT_GT(stat(r.stats, lane + ".vmm.commands.forwarded"), 2);
    EXPECT_EQ(stat(r.stats, lane + ".vmm.ioctl_errors"), 0);
    ASSERT_FALSE(records_of(r, lane).empty());
    for (const auto& rec : records_of(r, lane)) {
      double parts = 0;
      for (const char* part : {"software", "lock", "trap", "vmm", "host_kernel", "host_queue", "return", "queueing",
                               "fetch", "execution", "atc", "sync"})
        parts += ns(rec, part);
      EXPECT_NEAR(parts, ns(rec, "total"), 1e-6);
    }
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

// A host that skips the flush of the VMM's IOAS unmaps (its stage-2 page moves): the IOCTL
// returns with the unmap complete, so a nested device translating through the old page
// afterwards is a violation. A 64 KiB window keeps the moved pages in the IOTLB.
TEST(Trapped, OracleCatchesAHostThatSkipsItsStage2Flush) {
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"}) {
    SCOPED_TRACE(vendor);
    const std::string dir = fresh_dir(std::string("trapped_inject_s2_") + vendor);
    const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor +
                             " -p iommu.translation=nested -p vmm.paths=trapped -p vmm.inject=drop_host_flush "
                             "-p workload.mode=stress -p traffic.transactions=100000 -p traffic.window_bytes=65536");
    EXPECT_EQ(r.exit_code, 3) << r.out;
    const nlohmann::json s = read_json(dir + "/stats.json");
    EXPECT_GT(stat(s, std::string(vendor) + "@trapped.oracle.violations"), 0);
    EXPECT_EQ(stat(s, std::string(vendor) + "@trapped.vmm.host_commands_per_ioas_unmap", "mean"), 0) << "no flush";
  }
}

// With ATS, a VMM that forwards the guest's TLBIs but not its ATC_INVs leaves the device's
// ATC stale after the guest's CMD_SYNC: the oracle sees translated DMAs through entries the
// guest removed. The same run without the injected bug is the stress cell
// smmuv3_nested_4k_ats_trapped (zero violations).
TEST(Trapped, OracleCatchesAVmmThatDropsTheGuestsAtcInvalidations) {
  const std::string dir = fresh_dir("trapped_inject_atc");
  const CliRun r = run_cli("run --force -o " + dir +
                           " -p iommu.vendor=smmuv3 -p iommu.translation=nested -p vmm.paths=trapped "
                           "-p vmm.inject=drop_atc_inv -p traffic.ats.enabled=true -p pcie.enabled=true "
                           "-p workload.mode=stress -p workload.unmap_interval_ns=1000 -p traffic.transactions=100000 "
                           "-p traffic.window_bytes=262144 -p platform.guest_ram_bytes=134217728");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  const nlohmann::json s = read_json(dir + "/stats.json");
  EXPECT_GT(stat(s, "smmuv3@trapped.vmm.commands.dropped_injected"), 0);
  EXPECT_GT(stat(s, "smmuv3@trapped.oracle.violations"), 0);
}

namespace {
// driver.poll_read_cycles: an x86 guest's read of its completion word in memory.
constexpr double kPollRead = 10;

// The records of a trapped x86 lane (VT-d, AMD) whose vIOMMU runs the guest's queue inside
// the doorbell write and whose guest polls a completion word in memory: every guest
// operation is an unmap of two queue entries (the invalidation and the wait), with trap =
// (exit + reg_access), return = entry, vmm = 2 x (fetch + decode) + complete (500 ns),
// host_kernel = one IOMMU_HWPT_INVALIDATE of one entry (syscall + iommufd + entry) plus the
// host driver's conversion (driver.op_overhead_cycles) and its own software, sync = one poll
// interval (50 ns) and one cached read (5 ns), software = the native lane's less the native
// doorbell's MMIO write (150 ns) and the unit's one-cycle register access at 1 GHz (1 ns).
// Returns the number of guest unmaps (0 on a failed precondition).
unsigned expect_synchronous_guest_unmaps(const LaneRun& r, const std::string& vendor, double exit, double entry) {
  const nlohmann::json& guest = records_of(r, vendor + "@trapped");
  const double native_unmap_software = first_unmap_software(records_of(r, vendor));
  EXPECT_FALSE(guest.empty());
  EXPECT_GT(native_unmap_software, 0);
  if (guest.empty() || native_unmap_software <= 0) return 0;
  const std::string host = vendor + "@trapped.host.driver.invalidation.";
  const double host_software = stat(r.stats, host + "software", "mean");
  EXPECT_EQ(stat(r.stats, host + "software", "min"), stat(r.stats, host + "software", "max"));   // one kind of host op
  unsigned unmaps = 0;
  for (const auto& rec : guest) {
    EXPECT_EQ(rec["op"], "unmap");
    ++unmaps;
    EXPECT_EQ(rec["commands"], 2);
    EXPECT_DOUBLE_EQ(ns(rec, "trap"), (exit + kRegAccess) * kNsPerCycle);
    EXPECT_DOUBLE_EQ(ns(rec, "return"), entry * kNsPerCycle);
    EXPECT_DOUBLE_EQ(ns(rec, "vmm"), (2 * (kFetch + kDecode) + kComplete) * kNsPerCycle);
    EXPECT_DOUBLE_EQ(ns(rec, "host_kernel"),
                     (kSyscall + kIommufdCall + kIommufdEntry + kHostConvert) * kNsPerCycle + host_software);
    EXPECT_GT(ns(rec, "host_queue"), 0);
    EXPECT_DOUBLE_EQ(ns(rec, "sync"), 50 + kPollRead * kNsPerCycle);
    EXPECT_DOUBLE_EQ(ns(rec, "software"), native_unmap_software - 150 - 1);
    expect_trapped_parts(rec);
  }
  return unmaps;
}
}  // namespace

// vmm.x86_intel defaults, in cycles.
constexpr double kVtdExit = 1226, kVtdEntry = 1226;

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
  const unsigned unmaps = expect_synchronous_guest_unmaps(r, "vtd", kVtdExit, kVtdEntry);   // trap 913, return 613
  ASSERT_GT(unmaps, 0u);
  // One forwarded entry per guest unmap, plus the P_IOTLB of the attach's caching-mode
  // flush (pasid_flush_caches) once the nested HWPT is installed; the guest's inv_wait is
  // completed by the VMM, never forwarded. No FSTS read while waiting.
  EXPECT_EQ(stat(r.stats, "vtd@trapped.workload.unmaps"), unmaps);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.commands.forwarded"), unmaps + 1);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.iommufd.hwpt_invalidate.calls"), unmaps + 1);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.pasid_installs"), 1);
  // Each unmap's ioctl costs the host two entries: the P_IOTLB with the nested domain's own
  // DID and the inv_wait of that entry (intel_nested_cache_invalidate_user).
  EXPECT_GE(bucket_count(r.stats, "vtd@trapped.vmm.host_commands_per_queue_run", 2), unmaps);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.vmm.ioctl_errors"), 0);
  // One poll per queue operation (the run may end between a doorbell and its poll).
  const double polls = stat(r.stats, "vtd@trapped.driver.polls");
  EXPECT_LE(polls, stat(r.stats, "vtd@trapped.vmm.exits.doorbell"));
  EXPECT_GE(polls + 1, stat(r.stats, "vtd@trapped.vmm.exits.doorbell"));
  EXPECT_EQ(stat(r.stats, "vtd@trapped.oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, "vtd@trapped.oracle.checked"), 5000);
}

// vmm.completion = deferred: the IQT write returns before the queue ran, and the guest's
// qi_submit_sync reads FSTS (a trapped read) on every poll that finds its status word not
// yet QI_DONE. One uncontended 4 KB guest unmap, t0 = its IQT write's exit (ns):
// - vCPU: exit + dispatch 913 (trap), the iothread is kicked; VM entry 613 (return): t0+1526.
// - iothread: wakes in 10000 cycles (5000), takes the free big lock at t0+5913, fetches and
//   decodes the P_IOTLB (200), forwards it (host_kernel + host_queue, H), fetches and decodes
//   the inv_wait (200), completes it (100) and releases the lock at t0+6413+H. Its first
//   613 ns overlapped the vCPU's entry (counted there), so vmm = 5500 - 613 = 4887.
// - guest: every 50 ns poll reads its status word (5 ns) and, not done, FSTS: exit, dispatch
//   and entry (1526) at t0+1581, +3162, +4743; the fourth, at t0+6324, exits (613) and waits
//   for the lock the iothread holds, then dispatches (300) and enters (613); the next poll
//   sees QI_DONE: sync = 300 + 613 + 50 + 5 = 968 after the iothread's release.
TEST(Trapped, VtdDeferredCompletionTrapsEveryPoll) {
  constexpr double kWakeup = 10000;
  const std::string params = "-p vmm.paths=trapped -p traffic.transactions=5000 -p workload.domain_invalidate_every=0";
  const LaneRun sync = run_vtd("trapped_vtd_sync", params);
  const LaneRun r = run_vtd("trapped_vtd_deferred", params + " -p vmm.completion=deferred");
  const std::string host = "vtd@trapped.host.driver.invalidation.";
  const double host_software = stat(r.stats, host + "software", "mean");
  unsigned unmaps = 0;
  for (const auto& rec : records_of(r, "vtd@trapped")) {
    ASSERT_EQ(rec["op"], "unmap");
    ++unmaps;
    EXPECT_DOUBLE_EQ(ns(rec, "trap"), (kVtdExit + kRegAccess) * kNsPerCycle);                             // 913
    EXPECT_DOUBLE_EQ(ns(rec, "return"), kVtdEntry * kNsPerCycle);                                          // 613
    EXPECT_DOUBLE_EQ(ns(rec, "vmm"), (kWakeup + 2 * (kFetch + kDecode) + kComplete - kVtdEntry) * kNsPerCycle);   // 4887
    EXPECT_DOUBLE_EQ(ns(rec, "host_kernel"),
                     (kSyscall + kIommufdCall + kIommufdEntry + kHostConvert) * kNsPerCycle + host_software);
    EXPECT_DOUBLE_EQ(ns(rec, "sync"), (kRegAccess + kVtdEntry) * kNsPerCycle + 50 + kPollRead * kNsPerCycle);   // 968
    expect_trapped_parts(rec);
  }
  EXPECT_GT(unmaps, 0u);
  // Every poll that did not see its sync done read FSTS once; the synchronous run's guest
  // reads are its init's alone (each poll there sees its sync done).
  const auto reads = [](const LaneRun& x) { return stat(x.stats, "vtd@trapped.vmm.exits.mmio_read"); };
  const auto unfinished_polls = [](const LaneRun& x) {
    return stat(x.stats, "vtd@trapped.driver.polls") - stat(x.stats, "vtd@trapped.vmm.exits.doorbell");
  };
  EXPECT_LE(unfinished_polls(sync), 0);
  EXPECT_NEAR(reads(r) - reads(sync), unfinished_polls(r), 1);   // the run may end inside a wait
  EXPECT_GE(reads(r) - reads(sync), 4.0 * unmaps);                // four per unmap, as above
  EXPECT_GE(stat(r.stats, "vtd@trapped.vmm.iothread_runs"), stat(r.stats, "vtd@trapped.vmm.exits.doorbell"));
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
// descriptors at most, however many HWPTs were destroyed before; likewise on AMD.
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
  // AMD: a reattach rewrites an identical guest DTE (the GCR3 entry changed, not the DTE),
  // so the DTE is installed once; a stage-2 change flushes the parent's DomainID and the
  // one hDomID of the vIOMMU (nested_domain_free drops the destroyed ones), plus
  // COMPLETION_WAIT: 3 commands at most.
  const LaneRun amd = run_lane("amdvi", "trapped_reattach_amd", stress);
  EXPECT_GT(stat(amd.stats, "amdvi@trapped.workload.stress_reattaches"), 10);
  EXPECT_GT(stat(amd.stats, "amdvi@trapped.workload.stress_s2_remaps"), 10);
  EXPECT_EQ(stat(amd.stats, "amdvi@trapped.vmm.dte_installs"), 1);
  EXPECT_LE(stat(amd.stats, "amdvi@trapped.host.driver.invalidation.commands", "max"), 3);
  EXPECT_EQ(stat(amd.stats, "amdvi@trapped.oracle.violations"), 0);
}

// vmm.x86_amd defaults, in cycles.
constexpr double kAmdExit = 1264, kAmdEntry = 1264;

// One uncontended guest unmap of a 4 KB page on AMD: INVALIDATE_IOMMU_PAGES (GN = 1, the
// device's gDomID and PASID 0) and COMPLETION_WAIT (S = 1) in the guest's command buffer.
// - trap: the CmdBufTail write's VM exit and the VMM's dispatch, (1264 + 600) cycles =
//   932 ns; return: the VM entry, 1264 cycles = 632 ns.
// - vmm: per command one 16-byte fetch and a decode, (200 + 200) x 2, plus completing the
//   COMPLETION_WAIT (its 8-byte store), 200: 1000 cycles = 500 ns.
// - host_kernel: one IOMMU_HWPT_INVALIDATE with one entry to the vIOMMU (the MODEL
//   EXTENSION AmdViommuExt), syscall 1000 + iommufd 1000 + entry 50 = 2050 cycles, plus the
//   host driver's conversion of the call (driver.op_overhead_cycles, 400) and its software
//   for its own INVALIDATE_IOMMU_PAGES (hDomID) + COMPLETION_WAIT; host_queue: the rest of
//   that host operation, as the host driver's own records say.
// - sync: the synchronous vAMD stored the guest's semaphore before the tail write returned,
//   and the AMD driver polls memory, not a register: one poll interval (50 ns) and one
//   cached read (10 cycles = 5 ns), no trapped read.
// - software: the native lane's, less the native doorbell's MMIO write (driver.mmio_write_ns
//   = 150) and the IOMMU's one-cycle register access at 1 GHz (1 ns).
TEST(Trapped, AmdGuestUnmapLatencyIsTheSumOfItsSteps) {
  const LaneRun r = run_lane("amdvi", "trapped_amd_kat", "-p vmm.paths=native,trapped -p traffic.transactions=5000 "
                                                         "-p workload.domain_invalidate_every=0");
  const unsigned unmaps = expect_synchronous_guest_unmaps(r, "amdvi", kAmdExit, kAmdEntry);   // trap 932, return 632
  ASSERT_GT(unmaps, 0u);
  // One forwarded command per guest unmap, plus two set-up ones: the guest's boot-time
  // INVALIDATE_IOMMU_ALL and the INVALIDATE_IOMMU_PAGES (all, GN) after its attach. The
  // attach's INVALIDATE_DEVTAB_ENTRY installs the DTE; COMPLETION_WAITs are the VMM's.
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.workload.unmaps"), unmaps);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.vmm.commands.forwarded"), unmaps + 2);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.vmm.iommufd.hwpt_invalidate.calls"), unmaps + 2);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.vmm.dte_installs"), 1);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.vmm.ioctl_errors"), 0);
  // The guest's only trapped reads are EFR and EFR2 at its init: it polls memory.
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.vmm.exits.mmio_read"), 2);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, "amdvi@trapped.oracle.checked"), 5000);
}

// amdvi@accelerated (docs/vmm.md, "AMD hardware vIOMMU"): the same guest and workload, its
// command buffer read by the hardware (the HW-vIOMMU RFC). Each guest unmap is
// INVALIDATE_IOMMU_PAGES (gDomID -> hDomID through the map table, fetched once) +
// COMPLETION_WAIT on the guest's buffer: no exit for the doorbell, no trapped part (trap,
// vmm, host_kernel, host_queue, return absent or 0), the hardware queue's fetch and
// execution filled, the parts adding up. Two guest commands go to the hypervisor: the
// boot-time INVALIDATE_IOMMU_ALL and the attach's INVALIDATE_DEVTAB_ENTRY. Latency p50:
// native < accelerated < trapped.
TEST(Trapped, AmdAcceleratedGuestUnmapHasNoTrapComponent) {
  const LaneRun r = run_lane("amdvi", "accelerated_amd", "-p vmm.paths=native,trapped,accelerated "
                                                         "-p traffic.transactions=5000 -p workload.domain_invalidate_every=0");
  const std::string a = "amdvi@accelerated.";
  const nlohmann::json& recs = records_of(r, "amdvi@accelerated");
  ASSERT_FALSE(recs.empty());
  for (const auto& rec : recs) {
    EXPECT_EQ(rec["op"], "unmap");
    EXPECT_EQ(rec["commands"], 2);
    for (const char* part : {"trap", "vmm", "host_kernel", "host_queue", "return"})
      EXPECT_TRUE(!rec.contains(std::string(part) + "_ns") || ns(rec, part) == 0) << part;
    EXPECT_GT(ns(rec, "fetch"), 0);
    EXPECT_GT(ns(rec, "execution"), 0);
    double parts = 0;
    for (const char* p : {"software", "lock", "queueing", "fetch", "execution", "atc", "sync"}) parts += ns(rec, p);
    EXPECT_NEAR(parts, ns(rec, "total"), 1e-6);
  }
  const double unmaps = stat(r.stats, a + "workload.unmaps");
  EXPECT_EQ(double(recs.size()), unmaps);
  EXPECT_EQ(stat(r.stats, a + "vmm.exits.doorbell"), 0);
  EXPECT_EQ(stat(r.stats, a + "iommu.viommu.guest0.cmdbuf.executed.invalidate_iommu_pages"), unmaps + 1);   // + the attach's
  EXPECT_EQ(stat(r.stats, a + "iommu.viommu.guest0.handed_to_hypervisor"), 2);
  EXPECT_EQ(stat(r.stats, a + "vmm.commands.handed_over"), 2);
  EXPECT_EQ(stat(r.stats, a + "iommu.viommu.map_fetches"), 1);
  EXPECT_EQ(stat(r.stats, a + "iommu.viommu.guest0.unmapped_ids"), 0);
  EXPECT_EQ(stat(r.stats, a + "oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, a + "oracle.checked"), 5000);
  const double native = stat(r.stats, "amdvi.driver.invalidation.latency", "p50");
  const double accel = stat(r.stats, a + "driver.invalidation.latency", "p50");
  const double trapped = stat(r.stats, "amdvi@trapped.driver.invalidation.latency", "p50");
  EXPECT_LT(native, accel);
  EXPECT_LT(accel, trapped);
}

// amdvi@accelerated's config checks (exit 2, naming the key).
TEST(Trapped, AmdAcceleratedConfigErrors) {
  iommusim::test::expect_config_errors(fresh_dir("accelerated_bad"), "-p iommu.vendor=amdvi -p iommu.translation=nested", {
      {"-p vmm.paths=accelerated -p vmm.amd_domid=per_device", "vmm.amd_domid: per_device"},
      {"-p vmm.paths=accelerated -p 'traffic.endpoints=[{\"requester_id\":2}]'", "is the IOMMU's own DeviceID"},
      {"-p vmm.paths=accelerated -p 'traffic.endpoints=[{\"requester_id\":255}]'", "translation DeviceID"},
  });
}

// Several devices (guest DeviceID = endpoint index) with extra guest PASIDs in each device's
// guest GCR3 table: one DTE install per device, nothing dropped, no illegal command; no
// fault, no violation, identical bytes per seed.
TEST(Trapped, AmdSeveralDevicesTranslateWithoutViolations) {
  expect_clean_multi_device_runs(
      "amdvi", R"(-p 'traffic.endpoints=[{"requester_id":16,"transactions":3000},{"requester_id":33,"transactions":3000}]' )",
      [](const nlohmann::json& s, const std::string& lane) {
        EXPECT_EQ(stat(s, lane + "vmm.dte_installs"), 2);
        EXPECT_EQ(stat(s, lane + "vmm.commands.dropped_unattached"), 0);
        EXPECT_EQ(stat(s, lane + "vmm.illegal_commands"), 0);
      });
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

// The same on VT-d and AMD, where the vEVENTQ is a MODEL EXTENSION (VT-d: on the nest
// parent, into the guest's fault-recording registers; AMD: on the vIOMMU, into the guest's
// event log). The stress workload's guest-stage faults go to the vEVENTQ; the host keeps
// its own (on VT-d the PASID entry a reattach tears down meanwhile: reason 0x59, the host's
// table). Every record reported either reaches the guest's log or is lost there (counted,
// shown as FSTS.PFO / Status.EvtOverflow); every one the VMM writes is drained by the
// guest's own driver through trapped registers and timed. The fixed part of the chain at
// the x86 defaults: irq 2000 + wake-up 5000 + read 1000 + store 100 ns (the AMD host may
// have drained and reported a record while polling its own command buffer, untimed, so
// neither its drain nor its report is counted here).
TEST(Trapped, VtdAndAmdGuestFaultsReachTheGuestDriverThroughTheVeventq) {
  for (const std::string vendor : {"vtd", "amdvi"}) {
    const std::string lane = vendor + "@trapped.";
    const LaneRun r = run_lane(vendor, "trapped_guest_faults_" + vendor,
                               "-p vmm.paths=trapped -p workload.mode=stress -p traffic.pattern=random "
                               "-p traffic.transactions=20000 -p workload.unmap_interval_ns=700");
    const double reported = stat(r.stats, lane + "vmm.events.reported");
    const double forwarded = stat(r.stats, lane + "vmm.events.forwarded");
    EXPECT_GT(reported, 0) << vendor;
    EXPECT_GT(forwarded, 0) << vendor;
    EXPECT_LE(reported, stat(r.stats, lane + "host.driver.events_consumed")) << vendor;
    EXPECT_EQ(forwarded + stat(r.stats, lane + "vmm.events.lost"), reported) << vendor;
    EXPECT_EQ(stat(r.stats, lane + "driver.events_consumed"), forwarded) << vendor;
    EXPECT_EQ(stat(r.stats, lane + "vmm.event_latency", "count"), forwarded) << vendor;
    EXPECT_GE(stat(r.stats, lane + "vmm.event_latency", "min"), 8100) << vendor;
    EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0) << vendor;
  }
}

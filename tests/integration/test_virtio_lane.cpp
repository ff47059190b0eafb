// The virtio-iommu path (vmm.paths = virtio, docs/vmm.md "virtio-iommu") run as a user runs
// it: a guest's virtio-iommu driver under Linux's DMA API sends MAP and UNMAP requests to the
// VMM's device, which maps them into a single-stage host domain of each vendor. Known answers
// come from the cost keys' defaults at driver.cpu_mhz = 2000 (0.5 ns a cycle).
#include <string>
#include <vector>

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

struct VirtioRun {
  nlohmann::json stats, records;
  std::string out;
  int exit_code = 0;
};

VirtioRun run_virtio(const std::string& name, const std::string& params) {
  const std::string dir = fresh_dir(name);
  const CliRun r = run_cli("run --force -o " + dir +
                           " -p iommu.translation=s1 -p workload.mode=dma_api -p vmm.paths=virtio -p sim.progress=false " +
                           params);
  VirtioRun out{{}, {}, r.out, r.exit_code};
  if (r.exit_code == 0 || r.exit_code == 3) {   // 3: the oracle found violations; the run's files are written
    out.stats = read_json(dir + "/stats.json");
    out.records = read_json(dir + "/invalidations.json");
  }
  return out;
}

// Test 8: map and unmap round trips, strict and lazy, on every vendor's host: every DMA
// checked against the guest's mappings, none violating or faulting; the requests reached
// the device and none failed.
void expect_clean_round_trips(const std::string& vendor, const std::string& mode) {
  const std::string lane = vendor + "@virtio.";
  const VirtioRun r = run_virtio("virtio_rt_" + vendor + "_" + mode,
                           "-p iommu.vendor=" + vendor + " -p dma_api.mode=" + mode +
                               " -p traffic.transactions=4000 -p workload.unmap_interval_ns=2000" +
                               // Flush queues of one entry, so flushes come within the run.
                               (mode == "lazy" ? " -p dma_api.fq_size=2 -p dma_api.cpus=2" : ""));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0);
  EXPECT_EQ(stat(r.stats, lane + "oracle.checked"), 4000);
  EXPECT_EQ(stat(r.stats, lane + "endpoint.faults"), 0);
  EXPECT_GT(stat(r.stats, lane + "vmm.virtio.requests.map"), 0);
  EXPECT_GT(stat(r.stats, lane + "vmm.virtio.requests.unmap"), 0);
  EXPECT_EQ(stat(r.stats, lane + "vmm.virtio.requests.attach"), 1);
  for (const char* status : {"ioerr", "unsupp", "deverr", "inval", "range", "noent", "fault", "nomem"})
    EXPECT_EQ(stat(r.stats, lane + "vmm.virtio.status." + status), 0) << status;
  // Lazy: the UNMAPs queued since the last sync are still in the queue at the end.
  EXPECT_LE(stat(r.stats, lane + "vmm.virtio.status.ok"), stat(r.stats, lane + "driver.virtio.requests"));
  EXPECT_EQ(stat(r.stats, lane + "vmm.ioctl_errors"), 0);
  // Every record's parts add up to its total; the guest's unmaps and flushes trap.
  const auto& records = r.records.at(vendor + "@virtio");
  ASSERT_FALSE(records.empty());
  for (const auto& rec : records) {
    double parts = 0;
    for (const char* k : {"software_ns", "lock_ns", "trap_ns", "vmm_ns", "host_kernel_ns", "host_queue_ns",
                          "return_ns", "queueing_ns", "fetch_ns", "execution_ns", "atc_ns", "sync_ns"})
      parts += rec.at(k).get<double>();
    EXPECT_NEAR(parts, rec.at("total_ns").get<double>(), 0.01) << rec.dump();
    EXPECT_GT(rec.at("trap_ns").get<double>(), 0) << rec.dump();
    EXPECT_EQ(rec.at("op"), mode == "strict" ? "unmap" : "invalidate_domain") << rec.dump();
  }
}

TEST(Virtio, StrictRoundTripsSmmuv3) { expect_clean_round_trips("smmuv3", "strict"); }
TEST(Virtio, LazyRoundTripsSmmuv3) { expect_clean_round_trips("smmuv3", "lazy"); }
TEST(Virtio, StrictRoundTripsVtd) { expect_clean_round_trips("vtd", "strict"); }
TEST(Virtio, LazyRoundTripsVtd) { expect_clean_round_trips("vtd", "lazy"); }
TEST(Virtio, StrictRoundTripsAmdVi) { expect_clean_round_trips("amdvi", "strict"); }
TEST(Virtio, LazyRoundTripsAmdVi) { expect_clean_round_trips("amdvi", "lazy"); }

// One uncontended strict unmap of a 64 KiB buffer (dma_api.buffer_bytes, one CPU) on
// smmuv3@virtio with a trapping doorbell (vmm.virtio.notify = trap), part by part from the cost keys' defaults (cycles at 0.5 ns):
// - software: driver.op_overhead_cycles 400 + guest.virtio_request_cycles 200 + two
//   descriptors and the 28-byte UNMAP body (4 words) at descriptor_write_cycles 20 = 720 -> 360 ns;
// - trap: vmm.arm64.exit_cycles 3826 + reg_access_cycles 600 -> 2213 ns; return: entry 3826 -> 1913 ns;
// - vmm: 2 descriptor fetches (200 each) + decode 200 + the domain lookup and the one
//   mapping's tree operation (vmm.virtio.tree_cycles 300 each) + complete 200 = 1400 -> 700 ns;
// - host_kernel: one IOMMU_IOAS_UNMAP (the buffer is one aligned 64 KiB chunk): syscall 1000 +
//   iommufd_call 1000 + 16 pages unpinned at vmm.virtio.pin_page_cycles 200 = 5200 -> 2600 ns,
//   plus the host driver's software for the same unmap: the native lane's software part;
// - host_queue: the host queue's part of that unmap: one of the native lane's totals less its software;
// - sync: one look at the used ring, driver.poll_read_cycles 10 -> 5 ns; lock 0.
TEST(Virtio, KnownAnswerUncontendedUnmap) {
  const VirtioRun r = run_virtio("virtio_known_answer",
                                 "-p iommu.vendor=smmuv3 -p vmm.paths=native,virtio -p dma_api.mode=strict "
                                 "-p dma_api.cpus=1 -p workload.unmap_interval_ns=2000 -p traffic.transactions=4000 "
                                 "-p vmm.virtio.notify=trap");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto& native = r.records.at("smmuv3");
  const auto& virtio = r.records.at("smmuv3@virtio");
  ASSERT_FALSE(native.empty());
  ASSERT_FALSE(virtio.empty());
  const double host_software = native[0].at("software_ns").get<double>();
  for (const auto& n : native) ASSERT_EQ(n.at("software_ns").get<double>(), host_software) << n.dump();
  for (const auto& v : virtio) {
    EXPECT_EQ(v.at("op"), "unmap");
    EXPECT_EQ(v.at("software_ns").get<double>(), 360) << v.dump();
    EXPECT_EQ(v.at("lock_ns").get<double>(), 0) << v.dump();
    EXPECT_EQ(v.at("trap_ns").get<double>(), 2213) << v.dump();
    EXPECT_EQ(v.at("vmm_ns").get<double>(), 700) << v.dump();
    EXPECT_EQ(v.at("host_kernel_ns").get<double>(), 2600 + host_software) << v.dump();
    EXPECT_EQ(v.at("return_ns").get<double>(), 1913) << v.dump();
    EXPECT_EQ(v.at("sync_ns").get<double>(), 5) << v.dump();
    bool host_queue_seen = false;
    for (const auto& n : native)
      host_queue_seen |= v.at("host_queue_ns").get<double>() ==
                         n.at("total_ns").get<double>() - n.at("software_ns").get<double>();
    EXPECT_TRUE(host_queue_seen) << v.dump();
    EXPECT_EQ(v.at("total_ns").get<double>(), 360 + 2213 + 700 + 2600 + host_software +
                                                   v.at("host_queue_ns").get<double>() + 1913 + 5);
  }
}

// The same with the default ioeventfd doorbell: the exit and resume are the host kernel's
// (vmm.arm64.ioeventfd_exit_cycles 6500 -> 3250 ns of trap, no return), and the device runs
// in the VMM's main loop while the guest polls; the parts still add up.
TEST(Virtio, IoeventfdDoorbellIsAKernelExit) {
  const VirtioRun r = run_virtio("virtio_ioeventfd", "-p iommu.vendor=smmuv3 -p dma_api.mode=strict -p dma_api.cpus=1 "
                                                     "-p workload.unmap_interval_ns=2000 -p traffic.transactions=4000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto& virtio = r.records.at("smmuv3@virtio");
  ASSERT_FALSE(virtio.empty());
  for (const auto& v : virtio) {
    EXPECT_EQ(v.at("trap_ns").get<double>(), 3250) << v.dump();
    EXPECT_EQ(v.at("return_ns").get<double>(), 0) << v.dump();
    EXPECT_GT(v.at("vmm_ns").get<double>(), 0) << v.dump();
    double parts = 0;
    for (const char* k : {"software_ns", "lock_ns", "trap_ns", "vmm_ns", "host_kernel_ns", "host_queue_ns",
                          "return_ns", "queueing_ns", "fetch_ns", "execution_ns", "atc_ns", "sync_ns"})
      parts += v.at(k).get<double>();
    EXPECT_NEAR(parts, v.at("total_ns").get<double>(), 0.01) << v.dump();
  }
  EXPECT_GT(stat(r.stats, "smmuv3@virtio.vmm.iothread_runs"), 0);
}

// Test 10: the DMA side of each path. virtio-iommu's host domain is single-stage: a cold
// walk reads the 4 levels of a 48-bit, 4 KiB-granule table (4 reads), where a nested walk
// reads up to 24 (docs/vmm.md, "virtio-iommu").
TEST(Virtio, ColdWalkReadsTheHostsOneStage) {
  const VirtioRun r = run_virtio("virtio_walks", "-p iommu.vendor=smmuv3,vtd,amdvi -p dma_api.mode=strict "
                                                 "-p traffic.transactions=2000");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* v : {"smmuv3", "vtd", "amdvi"}) {
    EXPECT_EQ(stat(r.stats, std::string(v) + "@virtio.iommu.walk_reads", "max"), 4) << v;
  }
}

// What virtio-iommu lacks is a config error naming the key (exit 2).
TEST(Virtio, AtsPasidAndSeveralIommusAreConfigErrors) {
  VirtioRun r = run_virtio("virtio_ats", "-p iommu.vendor=smmuv3 -p traffic.ats.enabled=true");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("traffic.ats.enabled"), std::string::npos) << r.out;
  r = run_virtio("virtio_pasid", "-p iommu.vendor=smmuv3 -p traffic.pasid=3");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("traffic.pasid"), std::string::npos) << r.out;
  r = run_virtio("virtio_iommus", "-p iommu.vendor=smmuv3 -p platform.iommus=2");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("platform.iommus"), std::string::npos) << r.out;
  // churn unmaps single leaves of one mapping: virtio-iommu unmaps whole mappings only.
  r = run_virtio("virtio_churn", "-p iommu.vendor=smmuv3 -p workload.mode=churn");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("workload.mode"), std::string::npos) << r.out;
}

// The stress race on a virtio lane (workload.mode = stress: every change a guest UNMAP then a
// MAP of a window leaf while the endpoint DMAs across the window). With the device correct,
// DMAs do race the UNMAPs (permitted stale: they used the old translation before the UNMAP's
// used entry was written) and none is a violation. With vmm.inject = drop_host_flush the
// device answers UNMAP OK with the host PTEs cleared but the host IOTLB not invalidated: the
// old translation survives the barrier (and the leaf's new MAP), and the oracle reports it
// (exit 3).
TEST(Virtio, OracleCatchesADeviceThatSkipsTheHostFlushUnderStress) {
  const std::string stress = "-p iommu.vendor=smmuv3 -p workload.mode=stress -p workload.unmap_interval_ns=1000 "
                             "-p traffic.transactions=20000 -p traffic.window_bytes=262144 "
                             "-p platform.guest_ram_bytes=134217728 -p platform.stage1_page_bytes=4096";
  const VirtioRun clean = run_virtio("virtio_stress_clean", stress);
  ASSERT_EQ(clean.exit_code, 0) << clean.out;
  EXPECT_EQ(stat(clean.stats, "smmuv3@virtio.oracle.violations"), 0);
  EXPECT_GT(stat(clean.stats, "smmuv3@virtio.oracle.permitted_stale"), 0) << "no DMA raced an UNMAP";
  EXPECT_GT(stat(clean.stats, "smmuv3@virtio.workload.stress_unmaps"), 0);
  const VirtioRun bad = run_virtio("virtio_stress_drop_flush", stress + " -p vmm.inject=drop_host_flush");
  ASSERT_EQ(bad.exit_code, 3) << bad.out;
  EXPECT_GT(stat(bad.stats, "smmuv3@virtio.oracle.violations"), 0);
  EXPECT_GT(stat(bad.stats, "smmuv3@virtio.oracle.permitted_stale"), 0);
  EXPECT_NE(bad.out.find("stale translation used after the covering barrier completed"), std::string::npos) << bad.out;
  // drop_host_flush is the VMM's bug: without a VMM lane, or beside a trapped one whose VMM
  // moves no guest pages (no stress, no vmm.teardown_vm), it is a config error.
  VirtioRun r = run_virtio("virtio_inject_native", "-p vmm.paths=native -p vmm.inject=drop_host_flush");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vmm.inject"), std::string::npos) << r.out;
  r = run_virtio("virtio_inject_trapped", "-p vmm.paths=trapped,virtio -p iommu.translation=nested "
                                          "-p vmm.inject=drop_host_flush");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vmm.inject"), std::string::npos) << r.out;
}

// A virtio lane runs one VM: beside a trapped lane, vmm.vms, vmm.assign and vmm.teardown_vm
// would shape the trapped lane alone, so each is a config error naming its key (exit 2).
TEST(Virtio, SeveralVmsAssignmentsAndTeardownAreConfigErrors) {
  const std::string both = "-p iommu.vendor=smmuv3 -p vmm.paths=trapped,virtio -p iommu.translation=nested ";
  VirtioRun r = run_virtio("virtio_vms", both + "-p vmm.vms=2 "
                           "-p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":24}]' "
                           "-p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},{\"endpoint\":1,\"vm\":1,\"virt_id\":0}]'");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vmm.vms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("virtio runs one VM"), std::string::npos) << r.out;
  r = run_virtio("virtio_assign", both + "-p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":5}]'");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vmm.assign"), std::string::npos) << r.out;
  r = run_virtio("virtio_teardown", both + "-p vmm.teardown_vm=0");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vmm.teardown_vm"), std::string::npos) << r.out;
}

// The DMA-API-based job workloads run on a virtio lane too: every DMA checked, none violating.
TEST(Virtio, NicAndStorageRun) {
  for (const char* mode : {"nic", "storage"}) {
    const VirtioRun r = run_virtio(std::string("virtio_") + mode, std::string("-p iommu.vendor=amdvi -p workload.mode=") + mode);
    ASSERT_EQ(r.exit_code, 0) << mode << r.out;
    EXPECT_GT(stat(r.stats, "amdvi@virtio.oracle.checked"), 0) << mode;
    EXPECT_EQ(stat(r.stats, "amdvi@virtio.oracle.violations"), 0) << mode;
    EXPECT_EQ(stat(r.stats, "amdvi@virtio.endpoint.faults"), 0) << mode;
  }
}

// Stress cells (label long): every vendor, strict and lazy, synchronous and ioeventfd-like
// (vmm.completion = deferred) completion, four CPUs mapping and unmapping at once, several
// seeds: the oracle judges every DMA against the guest's mappings and finds no violation.
struct StressCell {
  std::string vendor, mode;
  bool deferred = false;
};
std::string cell_name(const testing::TestParamInfo<StressCell>& i) {
  return i.param.vendor + "_virtio_" + i.param.mode + (i.param.deferred ? "_deferred" : "");
}
std::vector<StressCell> stress_cells() {
  std::vector<StressCell> v;
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* mode : {"strict", "lazy"})
      for (bool deferred : {false, true}) v.push_back({vendor, mode, deferred});
  return v;
}
class VirtioStress : public testing::TestWithParam<StressCell> {};

TEST_P(VirtioStress, NoViolation) {
  const StressCell& c = GetParam();
  const std::string lane = c.vendor + "@virtio.";
  for (const char* seed : {"1", "2", "3", "4"}) {
    SCOPED_TRACE(std::string("seed ") + seed);
    const VirtioRun r = run_virtio(
        "virtio_stress_" + cell_name({c, 0}) + "_" + seed,
        "-p iommu.vendor=" + c.vendor + " -p dma_api.mode=" + c.mode + " -p sim.seed=" + seed +
            " -p dma_api.cpus=4 -p dma_api.fq_size=4 -p workload.unmap_interval_ns=500 -p traffic.transactions=30000" +
            (c.deferred ? " -p vmm.completion=deferred" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(stat(r.stats, lane + "oracle.violations"), 0);
    EXPECT_EQ(stat(r.stats, lane + "oracle.checked"), 30000);
    EXPECT_EQ(stat(r.stats, lane + "endpoint.faults"), 0);
    EXPECT_GT(stat(r.stats, lane + "dma_api.unmaps"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Long, VirtioStress, testing::ValuesIn(stress_cells()), cell_name);

}  // namespace

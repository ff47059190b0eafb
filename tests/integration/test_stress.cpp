// The correctness oracle's randomized stress matrix: for each vendor x {s1, s2, nested} x
// {4 KB, 2 MB, 1 GB, mixed leaves} (and SMMUv3 with range invalidation off, and every vendor
// with the endpoint's ATS on: its ATC is a translation cache the oracle judges too), DMAs run over
// a window while the driver remaps, re-protects, unmaps and maps anew, re-attaches and
// flushes that same window (workload.mode = stress). A cell passes when the oracle saw no
// violation and did see permitted-stale DMAs (so the race windows were exercised), and every
// kind of change happened.
//
// test_stress runs one seed per cell in the default ctest run; test_stress_long (label
// `long`) runs STRESS_SEEDS more.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#ifndef STRESS_FIRST_SEED
#define STRESS_FIRST_SEED 1
#endif
#ifndef STRESS_SEEDS
#define STRESS_SEEDS 1
#endif
#ifndef STRESS_SUITE
#define STRESS_SUITE Matrix
#endif

namespace {

struct Cell {
  std::string vendor, translation, leaves;
  bool ril = true;
  bool ats = false;
  bool pasid = false;   // the device's DMAs carry PASID 5 (its ATC entries are PASID-tagged)
  bool trapped = false;  // a guest owns stage 1 behind the VMM's vIOMMU (vmm.paths = trapped)
  bool deferred = false;  // the VMM runs the guest's queue in its iothread (vmm.completion = deferred)
  std::string policy = "";  // a cache-tag policy (docs/vmm.md): "<key>=<value>", named by its value
  bool unit1 = false;     // two IOMMUs (platform.iommus = 2), the device behind the second
  bool two_vms = false;   // two VMs (vmm.vms = 2): the stressed device is VM 0's, a second one VM 1's
  bool accelerated = false;   // the trapped cell's guest on the hardware's queue (vmm.paths = accelerated)
  // two VMs, each with a work queue of one device (vmm.assign pasid) that its guest sees
  // untranslated (SMMUv3, AMD); VM 0's beside the stressed device, so its VMM's page moves
  // reach the queue's paging HWPT
  bool pasid_vms = false;
  bool virtio = false;    // a virtio-iommu guest (vmm.paths = virtio): every change an UNMAP then a MAP
  // natively, a second work queue of the stressed device (its RID, PASID 6) that stays on
  // domain A while PASID 5 moves; with ATS the two share the device's ATC
  bool work_queue = false;
  unsigned ecmdqs = 0;    // SMMUv3.3 ECMDQs (iommu.smmuv3.ecmdqs): the host driver's commands on its CPU's ECMDQ
  std::string lane() const {
    return accelerated ? vendor + "@accelerated" : trapped ? vendor + "@trapped" : virtio ? vendor + "@virtio" : vendor;
  }
};

void PrintTo(const Cell& c, std::ostream* os) {
  *os << c.vendor << " " << c.translation << " " << c.leaves << (c.ril ? "" : " RIL off") << (c.ats ? " ATS" : "") << (c.pasid ? " PASID" : "") << (c.trapped ? " trapped" : "") << (c.deferred ? " deferred" : "") << (c.policy.empty() ? "" : " " + c.policy) << (c.unit1 ? " unit1" : "") << (c.two_vms ? " two VMs" : "") << (c.accelerated ? " accelerated" : "") << (c.pasid_vms ? " work queues in two VMs" : "") << (c.virtio ? " virtio" : "") << (c.work_queue ? " work queue" : "") << (c.ecmdqs ? " ECMDQ" : "");
}

std::string cell_name(const testing::TestParamInfo<Cell>& i) {
  if (i.param.virtio) return i.param.vendor + "_virtio_" + i.param.translation + "_" + i.param.leaves;
  return i.param.vendor + "_" + i.param.translation + "_" + i.param.leaves + (i.param.ril ? "" : "_noRIL") +
         (i.param.ats ? "_ats" : "") + (i.param.pasid ? "_pasid" : "") + (i.param.trapped ? "_trapped" : "") + (i.param.accelerated ? "_accelerated" : "") + (i.param.deferred ? "_deferred" : "") +
         (i.param.policy.empty() ? "" : "_" + i.param.policy.substr(i.param.policy.find('=') + 1)) +
         (i.param.unit1 ? "_unit1" : "") + (i.param.two_vms ? "_2vms" : "") + (i.param.pasid_vms ? "_pasid_vms" : "") + (i.param.work_queue ? "_wq" : "") +
         (i.param.ecmdqs ? "_ecmdq" : "");
}

std::vector<Cell> cells() {
  std::vector<Cell> v;
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* t : {"s1", "s2", "nested"})
      for (const char* leaves : {"4k", "2m", "1g", "mixed"}) v.push_back({vendor, t, leaves, true});
  for (const char* t : {"s1", "s2", "nested"})
    for (const char* leaves : {"2m", "mixed"}) v.push_back({"smmuv3", t, leaves, false});
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* t : {"s1", "s2", "nested"}) v.push_back({vendor, t, "mixed", true, true});
  // PASID-tagged ATC entries: an invalidation without a PASID must drop them too.
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* t : {"s1", "nested"}) v.push_back({vendor, t, "4k", true, true, true});
  // The trapped path: the guest's changes reach the host through the VMM, and the VMM
  // moves guest pages behind the host's stage 2.
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* leaves : {"4k", "2m", "1g"}) v.push_back({vendor, "nested", leaves, true, false, false, true});
  // VT-d's guest PASIDs are not propagated; an AMD guest's live in its own GCR3 table.
  for (const char* vendor : {"smmuv3", "amdvi"}) v.push_back({vendor, "nested", "4k", true, false, true, true});
  // ATS under a guest: its ATC invalidations forwarded (SMMUv3, AMD) or added by the host (VT-d).
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"}) v.push_back({vendor, "nested", "4k", true, true, false, true});
  // The guest's sync completed from the VMM's iothread while the guest polls.
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    v.push_back({vendor, "nested", "4k", true, false, false, true, true});
  // Cache-tag policies other than upstream's (upstream's are the cells above); per_group
  // is left out: with one device it cannot alias, and with two it must (docs/vmm.md).
  for (const char* policy : {"vmm.amd_domid=per_device", "guest.amd_gcr3=shared"})
    v.push_back({"amdvi", "nested", "4k", true, false, false, true, false, policy});
  v.push_back({"smmuv3", "nested", "4k", true, false, false, true, false, "vmm.arm_vmid=per_nested_hwpt"});
  // Two IOMMUs, the device behind the second: its DMAs, the guest's changes and the VMM's
  // page moves all reach unit 1.
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    v.push_back({vendor, "nested", "4k", true, false, false, true, false, "", true});
  // Two VMs on one trapped lane: VM 0's guest churns and its VMM moves its pages while VM
  // 1's device runs through its own guest's static domain; neither disturbs the other.
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    v.push_back({vendor, "nested", "4k", true, false, false, true, false, "", false, true});
  // AMD's hardware vIOMMU: the guest's invalidations on the hardware-read guest buffer
  // (gDomID / gDevID rewritten through the map tables), one VM, with ATS, and two VMs.
  v.push_back({"amdvi", "nested", "4k", true, false, false, false, false, "", false, false, true});
  v.push_back({"amdvi", "nested", "4k", true, true, false, false, false, "", false, false, true});
  v.push_back({"amdvi", "nested", "4k", true, false, false, false, false, "", false, true, true});
  // Work queues of one device in two VMs, untranslated on the VMM's paging HWPTs: VM 0's
  // queue sees its VMM's page moves (each a host invalidation of that HWPT too).
  for (const char* vendor : {"smmuv3", "amdvi"})
    v.push_back({vendor, "nested", "4k", true, false, false, true, false, "", false, false, false, true});
  // ATS on a RID shared by work queues: natively, a second work queue of the stressed
  // device stays on domain A (every change of A must drop its PASID's entries of the shared
  // ATC, a reattach of the other PASID must not); on a trapped lane, the work queues in two
  // VMs with ATS, whose paging HWPTs the host invalidates with D0's ATC on VM 0's page moves.
  // Nested on VT-d alone: each PASID entry has its own stage-2 pointer, while an SMMUv3 STE
  // or AMD DTE holds one stage 2 for every PASID (a config error under stress).
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"})
    for (const char* t : {"s1", "nested"}) {
      if (std::string(t) == "nested" && std::string(vendor) != "vtd") continue;
      Cell c{vendor, t, "4k", true, true, true};
      c.work_queue = true;
      v.push_back(c);
    }
  for (const char* vendor : {"smmuv3", "amdvi"})
    v.push_back({vendor, "nested", "4k", true, true, false, true, false, "", false, false, false, true});
  // virtio-iommu: the guest's UNMAP and MAP requests race the DMAs; the device's host
  // unmaps invalidate the host IOTLB (a guest domain is single-stage under s1 or nested).
  for (const char* vendor : {"smmuv3", "vtd", "amdvi"}) {
    for (const char* leaves : {"4k", "2m"}) {
      Cell c{vendor, "s1", leaves};
      c.virtio = true;
      v.push_back(c);
    }
    Cell c{vendor, "nested", "4k"};
    c.virtio = true;
    v.push_back(c);
  }
  // SMMUv3's CMDQV: the guest's TLBIs on its VCMDQ, read by the SMMU with the VINTF's VMID
  // inserted (its STE changes still through the VMM), one VM and two (a VINTF each).
  v.push_back({"smmuv3", "nested", "4k", true, false, false, false, false, "", false, false, true});
  v.push_back({"smmuv3", "nested", "4k", true, false, false, false, false, "", false, true, true});
  // SMMUv3.3 ECMDQs: the host driver's invalidations on an ECMDQ instead of the CMDQ, each
  // CMD_SYNC ordering only its own queue; natively (s1, mixed leaves; nested) and under a
  // trapped guest. The stress workload initialises and changes the tables from one thread
  // (the driver's CPU 0), so every command lands on ecmdq0: these cells check one ECMDQ in
  // place of the CMDQ; several CPUs on several ECMDQs are the EcmdqDmaApi cells below.
  for (const char* t : {"s1", "nested"}) {
    Cell c{"smmuv3", t, std::string(t) == "s1" ? "mixed" : "4k"};
    c.ecmdqs = 4;
    v.push_back(c);
  }
  {
    Cell c{"smmuv3", "nested", "4k", true, false, false, true};
    c.ecmdqs = 4;
    v.push_back(c);
  }
  return v;
}

// The overrides that give a cell its leaves, window and guest RAM.
std::string overrides(const Cell& c) {
  const uint64_t k4 = 4096, m2 = 2ull << 20, g1 = 1ull << 30;
  uint64_t leaf = k4, window = 64 * k4, guest_ram = 128ull << 20, s2_window_iova = 16ull << 20;
  if (c.leaves == "2m") { leaf = m2; window = 16 * m2; s2_window_iova = 32ull << 20; }
  if (c.leaves == "1g") { leaf = g1; window = 4 * g1; guest_ram = 16 * g1; s2_window_iova = 4 * g1; }
  if (c.leaves == "mixed") { window = 8 * m2; s2_window_iova = 32ull << 20; }
  const bool s2 = c.translation == "s2", nested = c.translation == "nested";
  std::string p = " -p iommu.vendor=" + c.vendor + " -p iommu.translation=" + c.translation +
                  " -p workload.mode=stress -p workload.unmap_interval_ns=1000 -p traffic.transactions=20000" +
                  " -p sim.progress=false -p traffic.window_bytes=" + std::to_string(window) +
                  " -p platform.guest_ram_bytes=" + std::to_string(guest_ram);
  if (c.leaves == "mixed") p += " -p workload.mixed_leaves=true";
  if (!s2) p += " -p platform.stage1_page_bytes=" + std::to_string(leaf);
  if (s2 || nested) p += " -p platform.stage2_page_bytes=" + std::to_string(leaf);
  if (s2) p += " -p traffic.window_iova=" + std::to_string(s2_window_iova);
  if (!c.ril) p += " -p iommu.smmuv3.range_invalidation=false";
  if (c.ats) p += " -p traffic.ats.enabled=true -p pcie.enabled=true";   // ATC messages on the link
  if (c.pasid) p += " -p traffic.pasid=5";
  // A trapped change takes about ten times a native one: more DMAs, so every kind happens.
  if (c.trapped) p += " -p vmm.paths=trapped -p traffic.transactions=100000";
  if (c.accelerated) p += " -p vmm.paths=accelerated -p traffic.transactions=100000";
  if (c.deferred) p += " -p vmm.completion=deferred";
  if (!c.policy.empty()) p += " -p " + c.policy;
  if (c.unit1) p += " -p platform.iommus=2 -p 'traffic.endpoints=[{\"requester_id\":16,\"iommu\":1}]'";
  // A virtio change takes tens of microseconds (two requests, the host's ioctls): more DMAs.
  if (c.virtio) p += " -p vmm.paths=virtio -p traffic.transactions=100000";
  if (c.ecmdqs) p += " -p iommu.smmuv3.ecmdqs=" + std::to_string(c.ecmdqs);
  if (c.two_vms)
    p += " -p vmm.vms=2 -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":24}]'"
         " -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},{\"endpoint\":1,\"vm\":1,\"virt_id\":0}]'";
  if (c.pasid_vms)
    p += " -p vmm.vms=2 -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":32,\"pasid\":1},"
         "{\"requester_id\":32,\"pasid\":2}]' -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},"
         "{\"endpoint\":1,\"vm\":0,\"virt_id\":1,\"pasid\":1},{\"endpoint\":2,\"vm\":1,\"virt_id\":0,\"pasid\":2}]'";
  if (c.work_queue) p += " -p 'traffic.endpoints=[{\"pasid\":5},{\"pasid\":6}]'";
  return p;
}

int run(const std::string& args, std::string& out) {
  const std::string cmd = std::string(IOMMUSIM_BINARY) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = pclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double stat(const nlohmann::json& stats, const std::string& name, const char* field = "value") {
  for (auto& s : stats["stats"])
    if (s["name"] == name) return s[field].get<double>();
  ADD_FAILURE() << "no stat " << name;
  return -1;
}

class Stress : public testing::TestWithParam<Cell> {};

TEST_P(Stress, NoViolationAndTheRacesHappen) {
  const Cell& c = GetParam();
  for (unsigned seed = STRESS_FIRST_SEED; seed < STRESS_FIRST_SEED + STRESS_SEEDS; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string dir = testing::TempDir() + "stress_" + cell_name({c, 0}) + "_" + std::to_string(seed);
    std::string out;
    const int rc = run("run --force -o " + dir + " -p sim.seed=" + std::to_string(seed) + overrides(c), out);
    ASSERT_EQ(rc, 0) << out;
    std::ifstream in(dir + "/stats.json");
    const nlohmann::json stats = nlohmann::json::parse(in);
    const std::string v = c.lane();
    EXPECT_GT(stat(stats, v + ".oracle.checked"), 19999);
    EXPECT_EQ(stat(stats, v + ".oracle.violations"), 0);
    EXPECT_GT(stat(stats, v + ".oracle.permitted_stale"), 0) << "no DMA raced a change: the cell proves little";
    // virtio: unmap + map only (no in-place change, no page moves: stress_workload.h).
    for (const char* op : {"remaps", "protects", "unmaps", "reattaches", "flushes"}) {
      if (!c.virtio || std::string(op) == "unmaps") {
        EXPECT_GT(stat(stats, v + ".workload.stress_" + op), 0) << op;
      } else {
        EXPECT_EQ(stat(stats, v + ".workload.stress_" + op), 0) << op;
      }
    }
    if (c.virtio) {   // the device served them: every request answered OK, no host call failed
      EXPECT_GT(stat(stats, v + ".vmm.virtio.requests.unmap"), 0);
      EXPECT_EQ(stat(stats, v + ".vmm.virtio.status.ok"), stat(stats, v + ".driver.virtio.requests"));
      EXPECT_EQ(stat(stats, v + ".vmm.ioctl_errors"), 0);
    }
    if (c.translation == "nested" && !c.virtio) {
      EXPECT_GT(stat(stats, v + ".workload.stress_s2_remaps"), 0);
    }
    if (c.unit1) {   // every DMA on unit 1, none on unit 0
      EXPECT_GT(stat(stats, v + ".iommu1.translations"), 19999);
      EXPECT_EQ(stat(stats, v + ".iommu0.translations"), 0);
    }
    if (c.two_vms) {   // VM 1's device: every DMA through its own VM's domain, none faulting
      EXPECT_EQ(stat(stats, v + ".endpoint.ep1.transactions"), 100000);
      EXPECT_EQ(stat(stats, v + ".endpoint.ep1.faults"), 0);
      EXPECT_EQ(stat(stats, v + ".vm1.vmm.ioctl_errors"), 0);
    }
    if (c.pasid_vms) {   // each queue on its paging HWPT; VM 0's moves invalidated it too
      for (const char* ep : {"ep1", "ep2"}) EXPECT_EQ(stat(stats, v + ".endpoint." + ep + ".transactions"), 100000);
      EXPECT_EQ(stat(stats, v + ".endpoint.ep2.faults"), 0);   // VM 1's memory never moves
      EXPECT_EQ(stat(stats, v + ".vm0.vmm.pasid_fallbacks"), 1);
      EXPECT_EQ(stat(stats, v + ".vm1.vmm.pasid_fallbacks"), 1);
      // Each move's IOMMU_IOAS_UNMAP of one 4 KiB page reaches the parent and the queue's
      // paging HWPT: SMMUv3 TLBI_S2_IPA, TLBI_NH_ALL, CMD_SYNC + TLBI_NH_VA, CMD_SYNC = 5; AMD
      // INVALIDATE_IOMMU_PAGES of the parent and of each hDomID of the vIOMMU, COMPLETION_WAIT
      // + INVALIDATE_IOMMU_PAGES (D0's DomainID, PASID 1), COMPLETION_WAIT: at least 5.
      EXPECT_GE(stat(stats, v + ".vm0.vmm.host_commands_per_ioas_unmap", "min"), 5);
    }
    if (c.accelerated && c.vendor == "smmuv3") {   // TLBIs on VM 0's VCMDQ (VINTF 1's first: global 4), none failed
      EXPECT_GT(stat(stats, v + ".iommu.cmdqv.vcmdq4.executed.cmd_tlbi_nh_va"), 0);
      EXPECT_EQ(stat(stats, v + ".iommu.cmdqv.vcmdq4.errors"), 0);
    }
    if (c.ecmdqs) {   // every host command on the ECMDQs, none on the CMDQ, no error
      double on_ecmdqs = 0;
      for (unsigned n = 0; n < c.ecmdqs; ++n) {
        on_ecmdqs += stat(stats, v + ".iommu.ecmdq" + std::to_string(n) + ".commands");
        EXPECT_EQ(stat(stats, v + ".iommu.ecmdq" + std::to_string(n) + ".errors"), 0);
      }
      EXPECT_GT(on_ecmdqs, 0);
      EXPECT_EQ(stat(stats, v + ".iommu.commands"), 0);
    }
    if (c.ats) {   // the device translated through its ATC, and the IOMMU invalidated it
      const bool several = c.work_queue || c.pasid_vms;
      EXPECT_GT(stat(stats, v + (several ? ".endpoint.ep0" : ".endpoint") + ".atc.hits"), 0);
      EXPECT_GT(stat(stats, v + ".iommu.ats.invalidations_sent"), 0);
    }
    if (c.work_queue) {   // both queues through the one ATC, each Invalidate Request received once
      EXPECT_EQ(stat(stats, v + ".endpoint.ep1.transactions"), 20000);
      EXPECT_EQ(stat(stats, v + ".endpoint.ep0.atc.invalidations"), stat(stats, v + ".iommu.ats.invalidations_sent"));
    }
    if (c.pasid_vms && c.ats) {   // VM 0's page moves reached D0's shared ATC (ep1's, for PASID 1)
      EXPECT_GT(stat(stats, v + ".endpoint.ep1.atc.invalidated"), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(STRESS_SUITE, Stress, testing::ValuesIn(cells()), cell_name);

// SMMUv3.3 ECMDQs under several CPUs: the DMA API in strict mode on 4 CPUs maps and unmaps
// back to back, each CPU's invalidations and CMD_SYNC on its own ECMDQ (4 ECMDQs) or on one
// it shares with another CPU (2 ECMDQs: reservation and batched doorbells on an ECMDQ), with
// the oracle judging every DMA (and, with ATS, the device's ATC too). Passes when the oracle
// saw no violation, at least two ECMDQs executed commands and none stopped on an error.
struct EcmdqDmaApiCell { unsigned ecmdqs; bool ats; };
void PrintTo(const EcmdqDmaApiCell& c, std::ostream* os) { *os << c.ecmdqs << " ECMDQs" << (c.ats ? " ATS" : ""); }
class EcmdqDmaApi : public testing::TestWithParam<EcmdqDmaApiCell> {};

TEST_P(EcmdqDmaApi, NoViolationAndSeveralEcmdqsExecute) {
  const EcmdqDmaApiCell c = GetParam();
  for (unsigned seed = STRESS_FIRST_SEED; seed < STRESS_FIRST_SEED + STRESS_SEEDS; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string dir = testing::TempDir() + "stress_ecmdq_dma_api_" + std::to_string(c.ecmdqs) + (c.ats ? "_ats_" : "_") + std::to_string(seed);
    std::string args = "run --force -o " + dir + " -p sim.seed=" + std::to_string(seed) +
                       " -p iommu.vendor=smmuv3 -p iommu.translation=s1 -p workload.mode=dma_api -p dma_api.mode=strict"
                       " -p dma_api.cpus=4 -p workload.unmap_interval_ns=1 -p traffic.transactions=20000 -p sim.progress=false"
                       " -p iommu.smmuv3.ecmdqs=" + std::to_string(c.ecmdqs);
    if (c.ats) args += " -p traffic.ats.enabled=true -p pcie.enabled=true";
    std::string out;
    ASSERT_EQ(run(args, out), 0) << out;
    std::ifstream in(dir + "/stats.json");
    const nlohmann::json stats = nlohmann::json::parse(in);
    EXPECT_GT(stat(stats, "smmuv3.oracle.checked"), 19999);
    EXPECT_EQ(stat(stats, "smmuv3.oracle.violations"), 0);
    unsigned executing = 0;
    for (unsigned n = 0; n < c.ecmdqs; ++n) {
      const std::string q = "smmuv3.iommu.ecmdq" + std::to_string(n);
      if (stat(stats, q + ".executed.cmd_sync") > 0) ++executing;
      EXPECT_EQ(stat(stats, q + ".errors"), 0) << q;
      // its CMD_SYNCs timed in its own sync_exec (the SMMU-level one is the CMDQ's)
      EXPECT_EQ(stat(stats, q + ".sync_exec", "count"), stat(stats, q + ".syncs")) << q;
    }
    EXPECT_GE(executing, 2u) << "the CPUs' commands did not spread over the ECMDQs";
    EXPECT_EQ(stat(stats, "smmuv3.iommu.cmdq.executed.cmd_sync"), 0) << "nothing on the CMDQ";
    if (c.ats) {   // the device translated through its ATC, and the ECMDQs invalidated it
      EXPECT_GT(stat(stats, "smmuv3.endpoint.atc.hits"), 0);
      EXPECT_GT(stat(stats, "smmuv3.iommu.ats.invalidations_sent"), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(STRESS_SUITE, EcmdqDmaApi,
                         testing::Values(EcmdqDmaApiCell{4, false}, EcmdqDmaApiCell{4, true}, EcmdqDmaApiCell{2, false},
                                         EcmdqDmaApiCell{2, true}),
                         [](const testing::TestParamInfo<EcmdqDmaApiCell>& i) {
                           return "smmuv3_s1_dma_api_strict_4cpus_" + std::to_string(i.param.ecmdqs) + "ecmdqs" +
                                  (i.param.ats ? "_ats" : "");
                         });

}  // namespace

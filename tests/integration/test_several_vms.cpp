// Several VMs on one trapped lane (vmm.vms, vmm.assign; docs/vmm.md, "Several VMs"), run as
// a user runs them: two VMs each owning one device, on every vendor; one VM keeps today's
// names; and the config errors.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::bucket_count;
using iommusim::test::fresh_dir;
using iommusim::test::has_stat;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;

// Endpoint 0 (RID 16, 6000 DMAs) is VM 0's device, endpoint 1 (RID 24, 4000 DMAs) VM 1's;
// both guests know theirs as ID 0, so only the VM tells them apart.
const char* kTwoVms =
    " -p vmm.paths=trapped -p vmm.vms=2 -p workload.domain_invalidate_every=0"
    " -p 'traffic.endpoints=[{\"requester_id\":16,\"transactions\":6000},{\"requester_id\":24,\"transactions\":4000}]'"
    " -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},{\"endpoint\":1,\"vm\":1,\"virt_id\":0}]'";

// Stress beside work queues (SMMUv3, AMD): endpoint 0 (RID 16) is VM 0's stressed device,
// D0 (RID 32)'s PASID 1 a work queue of VM 0 (its VMM's page moves reach it), PASID 2 one of VM 1.
const char* kStressedBesideWorkQueues =
    " -p iommu.translation=nested -p vmm.paths=trapped -p vmm.vms=2"
    " -p workload.mode=stress -p workload.unmap_interval_ns=1000 -p traffic.transactions=100000"
    " -p traffic.window_bytes=262144 -p platform.stage2_page_bytes=4096"
    " -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":2}]'"
    " -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},{\"endpoint\":1,\"vm\":0,\"virt_id\":1,\"pasid\":1},"
    "{\"endpoint\":2,\"vm\":1,\"virt_id\":0,\"pasid\":2}]'";

// Host queue entries the host driver writes at its own init, before any guest exists:
// SMMUv3 CFGI_ALL, TLBI_NSNH_ALL, CMD_SYNC (arm_smmu_device_reset).
constexpr double kSmmuHostInit = 3;

// Two VMs, one device each, one unit:
// - every DMA is checked against its own VM's mappings (the guest's stage 1 over the VM's
//   parent, whose GPA 0 is a host PA range of its own) and none violates or faults: a DMA
//   landing in the other VM's RAM would be a violation;
// - each VM's guest driver programmed its own device: every churn unmap is one VM's;
// - fan-out per VM: a churn unmap is one guest invalidation command (SMMU TLBI_NH_VA, VT-d
//   P_IOTLB, AMD INVALIDATE_IOMMU_PAGES) and its forward costs the host 2 queue entries:
//   the converted invalidation with the VM's own tag (VMID, DID, hDomID) and the host's
//   barrier. Were it to reach the other VM's tags too, it would cost 3. (VT-d reports per
//   queue run, which for an unmap is the same two entries.)
void expect_two_vms(const std::string& vendor) {
  const std::string dir = fresh_dir("vms_" + vendor);
  const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=" + vendor + " -p iommu.translation=nested" + kTwoVms);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  const std::string l = vendor + "@trapped.";
  EXPECT_EQ(stat(stats, l + "oracle.checked"), 10000);
  EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
  EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
  EXPECT_EQ(stat(stats, l + "iommu.translations"), 10000);
  const std::string fanout = vendor == "vtd" ? "vmm.host_commands_per_queue_run" : "vmm.host_commands_per_guest_invalidation";
  double unmaps = 0;
  for (const char* v : {"vm0.", "vm1."}) {
    SCOPED_TRACE(v);
    const std::string m = l + v;
    const double vm_unmaps = stat(stats, m + "driver.invalidation.latency", "count");
    EXPECT_GT(vm_unmaps, 0);
    unmaps += vm_unmaps;
    EXPECT_GT(stat(stats, m + "vmm.commands.forwarded"), 0);
    // (A VT-d guest's invalidations from before its first PASID entry name no device the
    // vVT-d has attached: dropped there, on one VM as on several.)
    if (vendor != "vtd") {
      EXPECT_EQ(stat(stats, m + "vmm.commands.dropped_unattached"), 0);
    }
    EXPECT_EQ(stat(stats, m + "vmm.ioctl_errors"), 0);
    EXPECT_EQ(stat(stats, m + "vmm.guest_ram.outside"), 0);
    EXPECT_GT(stat(stats, m + "vmm.iommufd.hwpt_alloc.calls"), 0);
    EXPECT_EQ(stat(stats, m + fanout, "max"), 2);
    EXPECT_GE(bucket_count(stats, m + fanout, 2), vm_unmaps);
  }
  EXPECT_EQ(unmaps, stat(stats, l + "workload.unmaps"));
  for (const char* single : {"vmm.commands.forwarded", "vmm.iommufd.hwpt_alloc.calls"})
    EXPECT_FALSE(has_stat(stats, l + single)) << single;
  // The lane's invalidations under the one-driver name: both VMs' guest drivers' together.
  EXPECT_EQ(stat(stats, l + "driver.invalidation.latency", "count"), unmaps);
  if (vendor == "smmuv3") {
    // Every host queue entry after the host's init came from one VM's queue runs.
    double from_vms = 0;
    for (const char* v : {"vm0.", "vm1."}) {
      const std::string h = l + v + "vmm.host_commands_per_queue_run";
      from_vms += stat(stats, h, "count") * stat(stats, h, "mean");
    }
    EXPECT_DOUBLE_EQ(from_vms, stat(stats, l + "host.driver.commands_issued") - kSmmuHostInit);
  }
  // One host tag per VM: a VMID per vIOMMU (vmm.arm_vmid = per_viommu), an hDomID per guest
  // DomainID (vmm.amd_domid = per_gdomid); VT-d reports none.
  if (vendor != "vtd") {
    EXPECT_EQ(stat(stats, l + "vmm.tags.host_ids"), 2);
  }
}

}  // namespace

TEST(SeveralVms, SmmuTwoVmsKeepTheirDevicesApart) { expect_two_vms("smmuv3"); }
TEST(SeveralVms, VtdTwoVmsKeepTheirDevicesApart) { expect_two_vms("vtd"); }
TEST(SeveralVms, AmdTwoVmsKeepTheirDevicesApart) { expect_two_vms("amdvi"); }

// The oracle still catches a VMM bug with two VMs: VM 0's VMM drops its guest's TLBIs
// (vmm.inject) while endpoint 0, VM 0's device, is stressed; the stale translations are
// counted and the run exits 3.
TEST(SeveralVms, OracleCatchesAVmmThatDropsOneVmsTlbis) {
  const nlohmann::json s = iommusim::test::run_expecting_violations(
      fresh_dir("vms_inject"),
      "-p iommu.vendor=smmuv3 -p iommu.translation=nested -p vmm.paths=trapped -p vmm.vms=2 -p vmm.inject=drop_tlbi"
      " -p workload.mode=stress -p traffic.pattern=random -p traffic.window_bytes=1048576"
      " -p workload.unmap_interval_ns=500"
      " -p 'traffic.endpoints=[{\"requester_id\":16,\"transactions\":100000},{\"requester_id\":24,\"transactions\":2000}]'"
      " -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},{\"endpoint\":1,\"vm\":1,\"virt_id\":0}]'");
  EXPECT_GT(stat(s, "smmuv3@trapped.vm0.vmm.commands.dropped_injected"), 0);
  EXPECT_GT(stat(s, "smmuv3@trapped.oracle.violations"), 0);
}

// The same seed twice gives identical bytes with two VMs.
TEST(SeveralVms, TwoVmsAreDeterministic) {
  nlohmann::json s[2];
  for (int i = 0; i < 2; ++i) {
    const std::string dir = fresh_dir("vms_det" + std::to_string(i));
    const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=smmuv3 -p iommu.translation=nested" + kTwoVms);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    s[i] = read_json(dir + "/stats.json");
  }
  EXPECT_EQ(s[0], s[1]);
}

// vmm.vms = 1 with vmm.assign spelling out the default gives the default run's bytes.
TEST(SeveralVms, OneVmWithTheDefaultAssignmentIsUnchanged) {
  const std::string eps =
      " -p vmm.paths=trapped -p 'traffic.endpoints=[{\"requester_id\":16,\"transactions\":800},"
      "{\"requester_id\":24,\"transactions\":800}]'";
  nlohmann::json s[2];
  const std::string extra[2] = {"", " -p 'vmm.assign=[{\"endpoint\":0,\"vm\":0,\"virt_id\":0},"
                                    "{\"endpoint\":1,\"vm\":0,\"virt_id\":1}]'"};
  for (int i = 0; i < 2; ++i) {
    const std::string dir = fresh_dir("vms_one" + std::to_string(i));
    const CliRun r = run_cli("run --force -o " + dir + " -p iommu.vendor=vtd -p iommu.translation=nested" + eps + extra[i]);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    s[i] = read_json(dir + "/stats.json");
  }
  EXPECT_EQ(s[0]["stats"], s[1]["stats"]);
  EXPECT_TRUE(has_stat(s[0], "vtd@trapped.vmm.commands.forwarded"));
  EXPECT_FALSE(has_stat(s[0], "vtd@trapped.vm0.vmm.commands.forwarded"));
}

// configs/examples/topology_pasid_vms.json on VT-d: D0 (RID 32) has work queues PASID 1
// (VM A, its vRID 0) and PASID 2 (VM B, its vRID 0); D1 (RID 33) is VM A's vRID 1.
// - Every DMA of the three endpoints (4000 each) is checked against the mappings of the VM
//   that owns its queue, with no violation or fault: a DMA of D0/PASID 2 translated
//   through A's tables would be one.
// - The VMM installs each guest device's RID_PASID entry once as a nested HWPT (A: two, B:
//   one), allocated PASID-capable and attached with VFIO_DEVICE_ATTACH_PASID to its
//   physical (RID, PASID) or to D1's RID: one attach each, none failing.
// - Fan-out of a churn unmap: guest A's one DMA domain serves both its devices, so its
//   P_IOTLB reaches two nested HWPTs (QEMU: one call per device whose entry has the DID),
//   each costing the host its P_IOTLB (that HWPT's DID, the PASID of its attachment) and
//   inv_wait: 4 host entries per queue run; guest B's reaches one: 2.
TEST(SeveralVms, VtdWorkQueuesOfOneDeviceServeTwoVms) {
  const std::string dir = fresh_dir("vms_topology_vtd");
  const CliRun r = run_cli("run --force -o " + dir + " " + std::string(IOMMUSIM_SOURCE_DIR) +
                           "/configs/examples/topology_pasid_vms.json -p iommu.vendor=vtd -p traffic.transactions=4000"
                           " -p workload.domain_invalidate_every=0");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  const std::string l = "vtd@trapped.";
  EXPECT_EQ(stat(stats, l + "oracle.checked"), 12000);
  EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
  EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
  EXPECT_EQ(stat(stats, l + "iommu.translations"), 12000);
  struct Vm { const char* name; double devices, host_entries_per_unmap; };
  for (const Vm& vm : {Vm{"vm0.", 2, 4}, Vm{"vm1.", 1, 2}}) {
    SCOPED_TRACE(vm.name);
    const std::string m = l + vm.name;
    EXPECT_EQ(stat(stats, m + "vmm.pasid_installs"), vm.devices);
    EXPECT_EQ(stat(stats, m + "vmm.iommufd.attach.calls"), vm.devices);
    EXPECT_EQ(stat(stats, m + "vmm.iommufd.attach.errors"), 0);
    EXPECT_EQ(stat(stats, m + "vmm.ioctl_errors"), 0);
    const double unmaps = stat(stats, m + "driver.invalidation.latency", "count");
    EXPECT_GT(unmaps, 0);
    EXPECT_GE(bucket_count(stats, m + "vmm.host_commands_per_queue_run", vm.host_entries_per_unmap), unmaps);
  }
}

// The same example on SMMUv3 and AMD (docs/vmm.md, "The topology as a run"): one STE / DTE
// per RID cannot nest one PASID for a guest, so for each work queue (D0/PASID 1 in VM A,
// D0/PASID 2 in VM B) the VMM's nested attempt is refused and it attaches a paging HWPT of
// the VM's IOAS instead; the guest sees the queue untranslated.
// - Every DMA of the three endpoints (4000 each) is checked, with no violation or fault: the
//   queues' DMAs address GPAs, checked against their own VM's GPA map.
// - The refusal is the errno Linux gives, one per VM: SMMUv3 refuses the PASID-capable
//   nested HWPT itself (arm_vsmmu_alloc_domain_nested takes no flags: EOPNOTSUPP, 95); AMD
//   allocates it and refuses its PASID attach (its nested domain has no set_dev_pasid:
//   EOPNOTSUPP), and the VMM destroys it. One fallback per VM.
// - The queues are no device of the guest's vIOMMU: VM A has one vDEVICE (D1), VM B none;
//   VM B's guest installs nothing and has nothing to invalidate.
// - Fan-out of A's churn unmap (the table's first column, docs/vmm.md): A's one DMA domain
//   now covers D1 alone, and one guest invalidation command costs the host 2 queue entries:
//   SMMUv3, the guest's TLBI_NH_VA with A's VMID forced and one CMD_SYNC
//   (arm_vsmmu_cache_invalidate); AMD, the guest's INVALIDATE_IOMMU_PAGES with its gDomID
//   made A's hDomID and one COMPLETION_WAIT. Nothing reaches D0's paging HWPTs.
void expect_fallback(const std::string& vendor) {
  const std::string dir = fresh_dir("vms_topology_" + vendor);
  const CliRun r = run_cli("run --force -o " + dir + " " + std::string(IOMMUSIM_SOURCE_DIR) +
                           "/configs/examples/topology_pasid_vms.json -p iommu.vendor=" + vendor +
                           " -p traffic.transactions=4000 -p workload.domain_invalidate_every=0");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json stats = read_json(dir + "/stats.json");
  const std::string l = vendor + "@trapped.";
  EXPECT_EQ(stat(stats, l + "oracle.checked"), 12000);
  EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
  EXPECT_EQ(stat(stats, l + "endpoint.faults"), 0);
  EXPECT_EQ(stat(stats, l + "iommu.translations"), 12000);
  const bool smmu = vendor == "smmuv3";
  const std::string installs = smmu ? "vmm.ste_installs" : "vmm.dte_installs";
  for (const char* v : {"vm0.", "vm1."}) {
    SCOPED_TRACE(v);
    const std::string m = l + v;
    EXPECT_EQ(stat(stats, m + "vmm.pasid_fallbacks"), 1);
    EXPECT_EQ(stat(stats, m + "vmm.pasid_refusal_errno", "count"), 1);
    EXPECT_EQ(stat(stats, m + "vmm.pasid_refusal_errno", "max"), 95);   // EOPNOTSUPP
    EXPECT_EQ(stat(stats, m + "vmm.pasid_refusal_errno", "min"), 95);
    EXPECT_EQ(stat(stats, m + "vmm.iommufd.hwpt_alloc.errors"), smmu ? 1 : 0);
    EXPECT_EQ(stat(stats, m + "vmm.iommufd.attach.errors"), smmu ? 0 : 1);
    EXPECT_EQ(stat(stats, m + "vmm.iommufd.destroy.calls"), smmu ? 0 : 1);
    EXPECT_EQ(stat(stats, m + "vmm.ioctl_errors"), 0);
    EXPECT_EQ(stat(stats, m + "vmm.guest_ram.outside"), 0);
  }
  EXPECT_EQ(stat(stats, l + "vm0.vmm.iommufd.vdevice_alloc.calls"), 1);   // D1's
  EXPECT_EQ(stat(stats, l + "vm1.vmm.iommufd.vdevice_alloc.calls"), 0);
  EXPECT_GE(stat(stats, l + "vm0." + installs), 1);
  EXPECT_EQ(stat(stats, l + "vm1." + installs), 0);
  EXPECT_EQ(stat(stats, l + "vm1.driver.invalidation.latency", "count"), 0);
  const double unmaps = stat(stats, l + "vm0.driver.invalidation.latency", "count");
  EXPECT_GT(unmaps, 0);
  EXPECT_EQ(unmaps, stat(stats, l + "workload.unmaps"));
  const std::string fanout = l + "vm0.vmm.host_commands_per_guest_invalidation";
  EXPECT_EQ(stat(stats, fanout, "max"), 2);
  EXPECT_GE(bucket_count(stats, fanout, 2), unmaps);
}

TEST(SeveralVms, SmmuWorkQueuesFallBackToPagingHwpts) { expect_fallback("smmuv3"); }
TEST(SeveralVms, AmdWorkQueuesFallBackToPagingHwpts) { expect_fallback("amdvi"); }

// The topology's second fan-out (docs/vmm.md, "Attach topologies"): once the traffic is
// done the VMM unmaps all of one VM's memory (vmm.teardown_vm, one IOMMU_IOAS_UNMAP of the
// VM's one IOAS area, 128 MiB of GPA at 0: platform.guest_ram_bytes), and every paging HWPT
// of that IOAS invalidates. Host queue entries, from each driver's rules:
// - VT-d (intel cache_tag_flush_range; the model's VtdDriver): the parent's IOTLB PSI of
//   its DID, one PSI per nested DID on it with an attachment, one inv_wait. VM A: its
//   parent, D0/PASID 1's and D1's nested DIDs, inv_wait = 4. VM B: its parent, D0/PASID 2's
//   nested DID, inv_wait = 3.
// - SMMUv3 (arm_smmu_tlb_inv_range_domain; Smmuv3Driver::invalidate_range with RIL): the
//   nest parent's TLBI_S2_IPA (128 MiB = 2^15 pages: one range command, SCALE 15, NUM 0),
//   TLBI_NH_ALL of its one VMID (vmm.arm_vmid = per_viommu) and CMD_SYNC = 3; the queue's
//   paging HWPT (a stage-1 domain) TLBI_NH_VA of its ASID (one range command) and CMD_SYNC
//   = 2. VM A and VM B alike: 5 (D1's nested STE adds nothing: no ATS).
// - AMD (amd_iommu_domain_flush_pages; AmdViDriver::flush_commands: one command per tag,
//   whatever the range): the parent's INVALIDATE_IOMMU_PAGES of its own DomainID, one per
//   hDomID of the VM's vIOMMU (VM A: D1's gDomID; VM B: none, the refused nested HWPT's
//   gDomID went with it) and COMPLETION_WAIT; the queue's v2 domain INVALIDATE_IOMMU_PAGES
//   of (D0's GCR3 DomainID, its PASID, GN) and COMPLETION_WAIT. VM A: 3 + 2 = 5; VM B:
//   2 + 2 = 4.
// With ATS (configs/examples/topology_pasid_vms_ats.json; D0's queues share one ATC):
// - VT-d: the parent's change adds the device-TLB invalidation of every nested attachment
//   on it (iommu_flush_dev_iotlb for a nest parent): A 4 + 2 (D0 PASID 1, D1) = 6, B 3 + 1
//   (D0 PASID 2) = 4.
// - SMMUv3: the parent's adds CMD_ATC_INV of each nested ATS master's whole ATC (A: D1; B:
//   none), the paging HWPT's arm_smmu_atc_inv_domain one CMD_ATC_INV of D0 for its SSID:
//   A 5 + 2 = 7, B 5 + 1 = 6.
// - AMD: INVALIDATE_IOTLB_PAGES of every nested ATS device on the parent (A: D1) and of D0
//   with GN and the queue's PASID (amd_iommu_domain_flush_pages -> device_flush_iotlb):
//   A 5 + 2 = 7, B 4 + 1 = 5.
// The other VM unmaps nothing; no DMA runs after the teardown, so none is judged by it.
TEST(SeveralVms, TopologyTeardownFansOutToEveryPagingHwptOfTheIoas) {
  struct Case { const char* vendor; unsigned vm; double host_entries; bool ats = false; };
  for (const Case& c : {Case{"vtd", 0, 4}, Case{"vtd", 1, 3}, Case{"smmuv3", 0, 5}, Case{"smmuv3", 1, 5},
                        Case{"amdvi", 0, 5}, Case{"amdvi", 1, 4}, Case{"vtd", 0, 6, true}, Case{"vtd", 1, 4, true},
                        Case{"smmuv3", 0, 7, true}, Case{"smmuv3", 1, 6, true}, Case{"amdvi", 0, 7, true},
                        Case{"amdvi", 1, 5, true}}) {
    const std::string vm = std::to_string(c.vm), other = std::to_string(1 - c.vm);
    SCOPED_TRACE(std::string(c.vendor) + " VM " + vm + (c.ats ? " ATS" : ""));
    const std::string dir = fresh_dir("vms_topology_teardown_" + std::string(c.vendor) + vm + (c.ats ? "_ats" : ""));
    const CliRun r = run_cli("run --force -o " + dir + " " + std::string(IOMMUSIM_SOURCE_DIR) +
                             "/configs/examples/topology_pasid_vms" + (c.ats ? "_ats" : "") +
                             ".json -p iommu.vendor=" + c.vendor + " -p traffic.transactions=2000 -p vmm.teardown_vm=" + vm);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const nlohmann::json stats = read_json(dir + "/stats.json");
    const std::string l = std::string(c.vendor) + "@trapped.";
    const std::string h = l + "vm" + vm + ".vmm.host_commands_per_ioas_unmap";
    EXPECT_EQ(stat(stats, h, "count"), 1);
    EXPECT_EQ(stat(stats, h, "min"), c.host_entries);
    EXPECT_EQ(stat(stats, h, "max"), c.host_entries);
    EXPECT_EQ(stat(stats, l + "vm" + other + ".vmm.host_commands_per_ioas_unmap", "count"), 0);
    EXPECT_EQ(stat(stats, l + "vm" + vm + ".vmm.iommufd.ioas_unmap.calls"), 1);
    EXPECT_EQ(stat(stats, l + "vm" + vm + ".vmm.iommufd.ioas_unmap.errors"), 0);
    EXPECT_EQ(stat(stats, l + "oracle.violations"), 0);
  }
}

// The oracle judges an untranslated work queue by its VM's GPA map, each VMM change
// complete when its ioctl returns: with vmm.inject = drop_host_flush the VMM's page moves
// (IOMMU_IOAS_UNMAP then MAP, under stress) clear the host's PTEs without invalidating, and
// the queue of the stressed VM (RID 32, PASID 1) keeps reaching the old pages: violations,
// exit 3, every one of them that queue's (the stressed device's stage-2 changes stay
// pending on the host's side, which the architecture permits).
TEST(SeveralVms, OracleCatchesAHostThatKeepsAWorkQueuesOldPages) {
  for (const char* vendor : {"smmuv3", "amdvi"}) {
    SCOPED_TRACE(vendor);
    const std::string dir = fresh_dir(std::string("vms_queue_inject_") + vendor);
    const nlohmann::json stats = iommusim::test::run_expecting_violations(
        dir, std::string("-p iommu.vendor=") + vendor + " -p vmm.inject=drop_host_flush" + kStressedBesideWorkQueues);
    EXPECT_GT(stat(stats, std::string(vendor) + "@trapped.oracle.violations"), 0);
    EXPECT_GT(stat(stats, std::string(vendor) + "@trapped.workload.stress_s2_remaps"), 0);
    const nlohmann::json v = read_json(dir + "/violations.json");
    ASSERT_FALSE(v["first"].empty());
    for (const auto& e : v["first"]) {
      EXPECT_EQ(e["requester_id"], 32);
      EXPECT_EQ(e["pasid"], 1);
    }
  }
}

// The last 128 MiB (platform.guest_ram_bytes' default) of the 1 TiB simulated memory: VM 0's
// guest RAM fits there, VM 1's (the next 128 MiB) does not.
constexpr uint64_t kGuestRamNearTheTop = (1ull << 40) - (128ull << 20);

// What vmm.vms and vmm.assign cannot be given is a config error naming the key (exit 2).
TEST(SeveralVms, ConfigErrorsNameTheKey) {
  const std::string two = " -p 'traffic.endpoints=[{\"requester_id\":16},{\"requester_id\":24}]'";
  auto assign = [](const std::string& list) { return " -p 'vmm.assign=[" + list + "]'"; };
  const std::string a0 = "{\"endpoint\":0,\"vm\":0,\"virt_id\":0}";
  iommusim::test::expect_config_errors(
      fresh_dir("vms_bad"), "-p iommu.vendor=smmuv3 -p iommu.translation=nested -p vmm.paths=trapped",
      {
          {"-p vmm.vms=0", "vmm.vms"},
          {"-p vmm.vms=5", "vmm.vms"},
          {"-p vmm.vms=2" + two, "vmm.assign: with vmm.vms above 1"},
          {"-p vmm.vms=2" + two + assign(a0 + ",{\"endpoint\":1,\"vm\":2,\"virt_id\":0}"), "vmm.assign: [1] vm 2 does not exist"},
          {"-p vmm.vms=2" + two + assign(a0 + ",{\"endpoint\":0,\"vm\":1,\"virt_id\":0}"), "already assigned whole"},
          {two + assign(a0 + ",{\"endpoint\":1,\"vm\":0,\"virt_id\":0}"), "virt_id 0 is already VM 0's"},
          {"-p vmm.vms=2" + two + assign(a0 + "," + a0), "vmm.assign: [1] endpoint 0 is already assigned"},
          {"-p vmm.vms=2" + two + assign(a0 + ",{\"endpoint\":1,\"vm\":0,\"virt_id\":1}"), "VM 1 has no device"},
          {two + assign(a0 + ",{\"endpoint\":2,\"vm\":0,\"virt_id\":1}"), "vmm.assign[1].endpoint"},
          {two + assign(a0), "vmm.assign: endpoint 1 (traffic.endpoints[1]) is in no VM"},
          {assign("{\"endpoint\":0,\"vm\":0}"), "vmm.assign[0].virt_id"},
          {assign("{\"endpoint\":0,\"vm\":0,\"virt_id\":0,\"bus\":1}"), "vmm.assign[0].bus: unknown key"},
          {assign("3"), "vmm.assign[0]: expected an object"},
          {assign("{\"endpoint\":0,\"vm\":0,\"virt_id\":70000}"), "vmm.assign[0].virt_id"},
          {"-p vmm.paths=native -p vmm.vms=2" + two + assign(a0 + ",{\"endpoint\":1,\"vm\":1,\"virt_id\":0}"),
           "vmm.vms: needs a trapped lane"},
          {"-p vmm.paths=native" + assign(a0), "vmm.assign: needs a trapped lane"},
          {"-p vmm.paths=native -p vmm.teardown_vm=0", "vmm.teardown_vm: needs a trapped lane"},
          {"-p vmm.teardown_vm=1", "vmm.teardown_vm: VM 1 does not exist"},
          {"-p vmm.teardown_vm=4", "vmm.teardown_vm"},
          {"-p vmm.vms=2 -p workload.mode=nic" + two + assign(a0 + ",{\"endpoint\":1,\"vm\":1,\"virt_id\":0}"),
           "vmm.vms: workload.mode = nic drives one VM's driver"},
          {"-p vmm.vms=2 -p platform.guest_ram_pa=" + std::to_string(kGuestRamNearTheTop) + two +
               assign(a0 + ",{\"endpoint\":1,\"vm\":1,\"virt_id\":0}"),
           "vmm.vms: 2 VMs' guest RAM"},
          {"-p vmm.vms=2" + two + assign(a0 + ",{\"endpoint\":1,\"vm\":1,\"virt_id\":0,\"pasid\":1}"),
           "vmm.assign[1].pasid: the endpoint's DMAs carry traffic.endpoints[1].pasid"},
      });
  // PASID-granular assignment (work queues of one device, RID 32 with PASIDs 1 and 2).
  const std::string wq = " -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":2}]'";
  const std::string q0 = "{\"endpoint\":0,\"vm\":0,\"virt_id\":0,\"pasid\":1}";
  const std::string q1 = "{\"endpoint\":1,\"vm\":1,\"virt_id\":0,\"pasid\":2}";
  iommusim::test::expect_config_errors(
      fresh_dir("vms_bad_pasid"), "-p iommu.vendor=vtd -p iommu.translation=nested -p vmm.paths=trapped",
      {
          // Under stress a work queue runs on SMMUv3 and AMD only, beside endpoint 0, never as it.
          {"-p vmm.vms=2 -p iommu.vendor=smmuv3 -p workload.mode=stress" + wq + assign(q0 + "," + q1),
           "vmm.assign[0].pasid: workload.mode = stress drives endpoint 0 through its guest's driver"},
          {"-p vmm.vms=2 -p iommu.vendor=smmuv3,vtd -p workload.mode=stress" + wq + assign(q0 + "," + q1),
           "or under stress on smmuv3@trapped and amdvi@trapped"},
          {"-p vmm.inject=drop_host_flush -p iommu.vendor=amdvi", "vmm.inject: drop_host_flush drops the host's "
                                                                  "invalidation of the VMM's IOMMU_IOAS_UNMAPs"},
          {"-p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32}]'",
           "traffic.endpoints[1].requester_id: already used"},
          {"-p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":1}]'",
           "traffic.endpoints[1].requester_id: already used"},
          {"-p platform.iommus=2 -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},"
           "{\"requester_id\":32,\"pasid\":2,\"iommu\":1}]'",
           "traffic.endpoints[1].iommu: a device sits behind one IOMMU"},
          {"-p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":1},{\"requester_id\":32,\"pasid\":2,"
           "\"ats\":{\"enabled\":true}}]'",
           "traffic.endpoints[1].ats: must equal traffic.endpoints[0].ats"},   // one ATC for the device
          {"-p vmm.vms=2" + wq + assign(q0 + ",{\"endpoint\":1,\"vm\":1,\"virt_id\":0}"),
           "vmm.assign[1].endpoint: RID 32 is already assigned by assign[0]"},
          {wq + assign(q0 + ",{\"endpoint\":1,\"vm\":0,\"virt_id\":1,\"pasid\":2}"),
           "vmm.assign[1].vm: VM 0 already has a PASID of RID 32"},
          {"-p vmm.vms=2 -p workload.extra_pasids=2 -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":8},"
           "{\"requester_id\":32,\"pasid\":9}]'" +
               assign("{\"endpoint\":0,\"vm\":0,\"virt_id\":0,\"pasid\":8},"
                      "{\"endpoint\":1,\"vm\":1,\"virt_id\":0,\"pasid\":9}"),
           "vmm.assign[0].pasid: not with workload.extra_pasids"},
          {"-p vmm.vms=2" + wq + assign(q0 + "," + q1) + " -p workload.mode=stress",
           "vmm.assign[0].pasid: PASID-granular assignment runs with the default workload only"},
          // PASID 0 is IOMMU_NO_PASID (the RID's own): iommufd would refuse the attach.
          {"-p vmm.vms=2 -p 'traffic.endpoints=[{\"requester_id\":32,\"pasid\":0},{\"requester_id\":32,\"pasid\":2}]'" +
               assign("{\"endpoint\":0,\"vm\":0,\"virt_id\":0,\"pasid\":0}," + q1),
           "vmm.assign[0].pasid"},
          {wq, "vmm.assign[1].endpoint: RID 32"},
          {"-p traffic.pasid=3", "traffic.pasid: vtd@trapped nests the RID_PASID entry only"},
      });
}

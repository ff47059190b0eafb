// The VMM's vVT-d (platforms/vmm/vvtd.h) between a guest's VT-d driver and the host's, over
// iommufd: a descriptor the vVT-d's capabilities make illegal stops the guest's queue with
// FSTS.IQE and IQER.IQEI = 4 (VT-d spec §6.5.2.10, "invalidation queue error": a reserved
// field, here a DID beyond CAP.ND) and reaches neither iommufd nor the host queue.
// Guest faults (a MODEL EXTENSION, VeventqType::VtdExt on the nest parent): a first-stage
// fault reaches the guest's fault-recording registers with its vRID, a second-stage one
// stays with the host, a full vEVENTQ shows as the guest's FSTS.PFO.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "platforms/vmm/vm.h"
#include "platforms/vmm/vvtd.h"
#include "vmm_guest_fixture.h"
#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

using Call = vmm::Iommufd::Call;

TEST(VVtd, IllegalGuestDescriptorRaisesIqeAndIssuesNothingOnTheHost) {
  Harness h;
  vmm::Vm vm(h.memory, test::guest_layout(test::kGuestRamPa), {vmm::HostIommu{&h.drv, &h.drv}});
  vmm::VVtdConfig vc;
  vc.nd = 2;   // 2^(4 + 2 * 2) = 256 DIDs: DID 0x100 is beyond CAP.ND
  vmm::VVtd vvtd("vvtd", vc, vm.ram(), vm.iommufd(), h.drv);
  driver::VtdDriver guest("guest", test::guest_driver_config<driver::VtdDriverConfig>(), vvtd, vm.ram());
  guest.mmio.bind(vvtd.mmio);
  guest.set_trapping_doorbell(&vvtd);
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    std::vector<vmm::AssignedDevice> devices{{0x10, 0, 0}};
    IOMMUSIM_ASSERT_OK(vm.build(devices, std::nullopt));
    EXPECT_EQ(vm.viommu_id(), 0u);   // VT-d: no vIOMMU, no vDEVICE
    EXPECT_EQ(vm.iommufd().calls(Call::ViommuAlloc) + vm.iommufd().calls(Call::VdeviceAlloc), 0u);
    vvtd.set_parent(vm.parent_id());
    vvtd.add_device(0, devices[0].dev_id);
    IOMMUSIM_ASSERT_OK(guest.init());
    const uint64_t host_queue = h.drv.queue_time_ps();
    const uint64_t calls = vm.iommufd().calls(Call::HwptInvalidate) + vm.iommufd().calls(Call::HwptAlloc);
    // The guest's driver sees FSTS.IQE at its first poll and recovers as Linux
    // qi_check_fault does (the bad slot becomes an inv_wait, IQE cleared), so the batch
    // completes.
    IOMMUSIM_ASSERT_OK(guest.submit({vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, 0x100, 0)}, "bad"));
    EXPECT_EQ(vvtd.illegal_descriptors(), 1u);
    EXPECT_EQ(guest.queue_errors_recovered(), 1u);
    EXPECT_EQ(vtd::reg::IQER_IQEI::get(vvtd.peek_register(vtd::reg::IQER)), uint64_t(vtd::reg::Iqei::ReservedField));
    EXPECT_EQ(vtd::reg::FSTS_IQE::get(vvtd.peek_register(vtd::reg::FSTS, 4)), 0u);   // cleared by the guest
    EXPECT_EQ(vvtd.stats().forwarded.value(), 0u);
    EXPECT_EQ(vm.iommufd().calls(Call::HwptInvalidate) + vm.iommufd().calls(Call::HwptAlloc), calls);
    EXPECT_EQ(h.drv.queue_time_ps(), host_queue);   // nothing on the host queue
  });
}

constexpr uint32_t kRid = 0x10;   // the device's physical RID; the guest's vRID for it is 0
constexpr uint64_t kGuestIova = 0x10000;
constexpr uint64_t kGuestRamBytes = 64ull << 20;   // test::guest_layout

// One VM with a vVT-d over the harness's VT-d unit, a guest VT-d driver on it, kRid
// assigned as vRID 0.
struct VvtdRig {
  vmm::Vm vm;
  vmm::VVtd vvtd;
  driver::VtdDriver guest;
  std::vector<vmm::AssignedDevice> devices{{kRid, 0, 0}};
  DomainId domain = 0;

  VvtdRig(Harness& h, const vmm::VVtdConfig& vc)
      : vm(h.memory, test::guest_layout(test::kGuestRamPa), {vmm::HostIommu{&h.drv, &h.drv}}),
        vvtd("vvtd", vc, vm.ram(), vm.iommufd(), h.drv),
        guest("guest", test::guest_driver_config<driver::VtdDriverConfig>(), vvtd, vm.ram()) {
    guest.mmio.bind(vvtd.mmio);
    guest.set_trapping_doorbell(&vvtd);
  }
  // Host init, the VM, guest init, and a guest first-stage domain mapping kGuestIova to GPA
  // kBufferIpa attached to vRID 0 (the VMM installs it as a nested HWPT).
  void boot(Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    IOMMUSIM_ASSERT_OK(vm.build(devices, std::nullopt));
    vvtd.set_parent(vm.parent_id());
    vvtd.add_device(0, devices[0].dev_id);
    IOMMUSIM_ASSERT_OK(guest.init());
    std::string why;
    const auto d = guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(d.has_value()) << why;
    domain = *d;
    IOMMUSIM_ASSERT_OK(guest.map(domain, kGuestIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(guest.attach(0, std::nullopt, domain));
    ASSERT_NE(vvtd.installed_hwpt(0), 0u);
  }
  // The guest's fault-recording register `i` (lo, hi), read without time.
  vtd::FrcdWords guest_frcd(unsigned i) {
    const uint64_t off = vtd::reg::decode_cap(vvtd.peek_register(vtd::reg::CAP)).fault_record_offset() + 16ull * i;
    return {vvtd.peek_register(off), vvtd.peek_register(off + 8)};
  }
  uint32_t guest_fsts() { return uint32_t(vvtd.peek_register(vtd::reg::FSTS, 4)); }
};

// A first-stage fault: a read of a guest IOVA the guest never mapped. The host driver
// reports it to the nest parent's vEVENTQ and keeps nothing; the VMM records it in the
// guest's FRCD 0 with vRID 0. FRCD words from the VT-d spec §11.4.11 (scalable mode): lo
// FI[63:12] = the page address 0x110000; hi SID[15:0] (host 0x10, guest 0), FR[39:32] =
// 0x71 (first-stage entry not present), T[62] = 1 (a read), F[63] = 1:
// 0xC000007100000010 on the host, 0xC000007100000000 in the guest. Guest FSTS: PPF[1] with
// FRI[15:8] = 0: 0x2.
TEST(VVtd, FirstStageFaultReachesTheGuestsFrcdWithItsVrid) {
  Harness h;
  VvtdRig rig(h, test::guest_fault_costs<vmm::VVtdConfig>());
  h.run([&](Harness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_NE(rig.vvtd.veventq_id(), 0u) << "allocated when the guest set GCMD.TE";
    EXPECT_EQ(rig.vm.iommufd().type_of(rig.vvtd.veventq_id()), vmm::ObjType::Veventq);
    const uint64_t iova = kGuestIova + 0x100000;   // 0x110000
    ASSERT_FALSE(h.read(kRid, iova).ok());
    const std::vector<FaultRecord> host = h.faults();
    ASSERT_EQ(host.size(), 1u);
    const vtd::FrcdWords hw = vtd::encode_frcd(host[0]);
    EXPECT_EQ(hw[0], 0x110000ull);
    EXPECT_EQ(hw[1], 0xC000007100000010ull);
    const uint64_t written = h.iommu.event_written_ps(0);
    const uint64_t t0 = common::now_ps();
    ASSERT_TRUE(rig.vvtd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 1u);
    EXPECT_EQ(h.drv.faults_seen(FaultReason::SM_FS_ENTRY_NOT_PRESENT), 0u) << "the host keeps none";
    const vtd::FrcdWords g = rig.guest_frcd(0);
    EXPECT_EQ(g[0], 0x110000ull);
    EXPECT_EQ(g[1], 0xC000007100000000ull);
    EXPECT_EQ(rig.guest_fsts(), 0x2u);
    // Its latency, from the host's record to the guest's: the wait for the handler, then
    // the host's interrupt (2000 ns), its driver's drain (dmar_fault: FSTS, FRCD0 high and
    // low, FRCD1 high reads, 400 ns each plus one 1 ns register cycle; the F-clear and FSTS
    // writes, 150 + 1 ns each: 1906 ns), the report (250 ns), the VMM's wake-up (5000 ns),
    // one read() (1000 ns) and the FRCD write (100 ns): 10256 ns.
    const vmm::TrappedMmio::EventStats& st = rig.vvtd.event_stats();
    ASSERT_EQ(st.latency_ps.count(), 1u);
    EXPECT_EQ(st.latency_ps.max(), (t0 - written) + 10256000u);
    EXPECT_EQ(st.forwarded.value(), 1u);
    EXPECT_EQ(st.reads.value(), 1u);
    // The guest's handler reads it through trapped registers and clears it.
    EXPECT_EQ(rig.guest.drain_faults(), 1u);
    EXPECT_EQ(rig.guest.faults_seen(FaultReason::SM_FS_ENTRY_NOT_PRESENT), 1u);
    ASSERT_EQ(rig.guest.fault_log().size(), 1u);
    EXPECT_EQ(rig.guest.fault_log()[0].sid, 0u);
    EXPECT_EQ(rig.guest_fsts(), 0u);
  });
}

// A second-stage fault under the guest (its first stage maps to a GPA the VMM never mapped
// in the IOAS): reason 0x79 (second-stage read/write denied), the host's to keep; nothing
// reaches the vEVENTQ or the guest.
TEST(VVtd, SecondStageFaultStaysWithTheHost) {
  Harness h;
  VvtdRig rig(h, test::guest_fault_costs<vmm::VVtdConfig>());
  h.run([&](Harness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    const uint64_t iova = 0x200000, gpa_outside = kGuestRamBytes * 2;
    IOMMUSIM_ASSERT_OK(rig.guest.map(rig.domain, iova, gpa_outside, kPage, {}, kPage));
    ASSERT_FALSE(h.read(kRid, iova).ok());
    ASSERT_EQ(h.faults().size(), 1u);
    EXPECT_EQ(h.faults()[0].reason, uint8_t(FaultReason::SM_SS_ENTRY_RW_DENIED));
    EXPECT_FALSE(rig.vvtd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 0u);
    EXPECT_EQ(h.drv.faults_seen(FaultReason::SM_SS_ENTRY_RW_DENIED), 1u);
    EXPECT_EQ(rig.vm.iommufd().veventq_pending(rig.vvtd.veventq_id()), 0u);
    EXPECT_EQ(rig.guest_fsts(), 0u);
    EXPECT_EQ(rig.vvtd.event_stats().forwarded.value(), 0u);
  });
}

// A depth-2 vEVENTQ and three guest faults before the host's handler runs: two records and
// the LOST_EVENTS header. The guest sees both records (FRCD 0 and 1) and FSTS.PFO[0] with
// PPF[1]: 0x3; its driver counts the overflow and clears both.
TEST(VVtd, AFullVeventqSetsTheGuestsPfo) {
  Harness h;
  VvtdRig rig(h, test::guest_fault_costs<vmm::VVtdConfig>(2));
  h.run([&](Harness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    for (uint64_t i = 1; i <= 3; ++i) ASSERT_FALSE(h.read(kRid, kGuestIova + i * 0x100000).ok());
    ASSERT_TRUE(rig.vvtd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 3u);
    const vmm::TrappedMmio::EventStats& st = rig.vvtd.event_stats();
    EXPECT_EQ(st.forwarded.value(), 2u);
    EXPECT_EQ(st.lost.value(), 1u);
    EXPECT_EQ(st.reads.value(), 3u);
    EXPECT_EQ(rig.guest_frcd(0)[0], kGuestIova + 0x100000);
    EXPECT_EQ(rig.guest_frcd(1)[0], kGuestIova + 0x200000);
    EXPECT_EQ(rig.guest_fsts(), 0x3u);
    EXPECT_EQ(rig.guest.drain_faults(), 2u);
    EXPECT_EQ(rig.guest_fsts() & 0x3, 0u);   // PFO and PPF cleared (FRI means nothing without PPF)
  });
}

}  // namespace
}  // namespace iommusim::vtdtest

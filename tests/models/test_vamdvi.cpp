// The VMM's vAMD (platforms/vmm/vamdvi.h) between a guest's AMD driver and the host's, over
// iommufd: a command the vAMD's decoder calls illegal (a reserved bit, 48882 §2.4) logs
// ILLEGAL_COMMAND_ERROR (§2.5.x, the 16-byte record) into the guest's event log in guest
// RAM, stops the guest's buffer and reaches neither iommufd nor the host's buffer; commands
// naming a gDomID no installed DTE carries, or a DeviceID with no vDEVICE, are dropped and
// counted; the guest's INVALIDATE_DEVTAB_ENTRY installs its DTE as a nested HWPT once.
// Guest faults (a MODEL EXTENSION, VeventqType::AmdExt): a guest-stage IO_PAGE_FAULT reaches
// the guest's event log with its DeviceID, a host-stage one stays with the host, a full
// vEVENTQ shows as the guest's EvtOverflow.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "vmm_guest_fixture.h"
#include "models/amdvi/registers.h"
#include "platforms/vmm/vamdvi.h"
#include "platforms/vmm/vm.h"

namespace iommusim::test {
namespace {

using Call = vmm::Iommufd::Call;
constexpr uint32_t kRid = 0x10;
constexpr uint64_t kGuestIova = 0x10000;

// One VM with a vAMD over the harness's AMD IOMMU, a guest AMD driver on it, kRid assigned
// as guest DeviceID 0.
struct VamdRig {
  vmm::Vm vm;
  vmm::VAmdVi vamd;
  driver::AmdViDriver guest;
  std::vector<vmm::AssignedDevice> devices{{kRid, 0, 0}};
  explicit VamdRig(AmdHarness& h, const vmm::VAmdViConfig& vc = vmm::VAmdViConfig{})
      : vm(h.memory, guest_layout(kGuestRamPa), vmm::HostIommu{&h.drv, &h.drv}),
        vamd("vamd", vc, vm.ram(), vm.iommufd(), h.drv),
        guest("guest", guest_driver_config<driver::AmdViDriverConfig>(), vamd, vm.ram()) {
    guest.mmio.bind(vamd.mmio);
    guest.set_trapping_doorbell(&vamd);
  }
  void boot(AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    AMD_ASSERT_OK(vm.build(devices, driver::ViommuType::Amd));
    vamd.set_viommu(vm.viommu_id());
    vamd.add_device(0, devices[0].dev_id);
    AMD_ASSERT_OK(guest.init());
  }
  // A guest v2 domain mapping kGuestIova to GPA kBufferIpa, attached to its device 0.
  void map_guest_page() {
    std::string why;
    const auto dom = guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(dom) << why;
    domain = *dom;
    AMD_ASSERT_OK(guest.map(domain, kGuestIova, kBufferIpa, kPage, {}, kPage));
    AMD_ASSERT_OK(guest.attach(0, std::nullopt, domain));
  }
  // The guest's event-log entry `i`, from guest RAM.
  amdvi::EventWords guest_event(uint32_t i) {
    amdvi::EventWords w{};
    vm.ram().read(guest.evt_log_base() + 16ull * i, w.data(), 16);
    return w;
  }
  DomainId domain = 0;
  uint64_t host_calls() const {
    return vm.iommufd().calls(Call::HwptInvalidate) + vm.iommufd().calls(Call::HwptAlloc);
  }
};

TEST(VAmdVi, IllegalGuestCommandLogsAnEventAndIssuesNothingOnTheHost) {
  AmdHarness h;
  VamdRig rig(h);
  h.run([&](AmdHarness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    // The guest's init forwarded its INVALIDATE_IOMMU_ALL; nothing after this may reach the host.
    const uint64_t host_queue = h.drv.queue_time_ps(), calls = rig.host_calls();
    const uint64_t forwarded = rig.vamd.stats().forwarded.value();
    // INVALIDATE_IOMMU_PAGES with reserved bit 31 of data[0] set.
    amdvi::CmdWords bad = amdvi::cmd_inv_iommu_pages(1, 0x1000, 4096);
    bad[0] |= 1ull << 31;
    // The guest's driver finds the record in its event log, makes the slot a no-op and
    // toggles CmdBufEn (Linux's recovery), so the batch completes.
    AMD_ASSERT_OK(rig.guest.submit({bad}, "bad"));
    EXPECT_EQ(rig.vamd.illegal_commands(), 1u);
    EXPECT_EQ(rig.guest.command_errors_recovered(), 1u);
    EXPECT_EQ(rig.guest.events_seen(amdvi::EventCode::IllegalCommandError), 1u)
        << "the guest decoded a real ILLEGAL_COMMAND_ERROR record from guest RAM";
    EXPECT_EQ(rig.vamd.stats().forwarded.value(), forwarded);
    EXPECT_EQ(rig.host_calls(), calls);
    EXPECT_EQ(h.drv.queue_time_ps(), host_queue) << "nothing on the host buffer";
  });
}

TEST(VAmdVi, UnattachedIdsAreDroppedAndTheDteInstalledOnce) {
  AmdHarness h;
  VamdRig rig(h);
  h.run([&](AmdHarness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    // No DTE installed yet: gDomID 1 is unknown to the host; guest DeviceID 9 has no vDEVICE.
    uint64_t calls = rig.host_calls(), host_queue = h.drv.queue_time_ps();
    AMD_ASSERT_OK(rig.guest.submit({amdvi::cmd_inv_iommu_pages(1, 0x1000, 4096, true, true, 0),
                                    amdvi::cmd_inv_iotlb_pages(9, 0, 0x1000, 4096)},
                                   "unattached"));
    EXPECT_EQ(rig.vamd.stats().dropped_unattached.value(), 2u);
    EXPECT_EQ(rig.host_calls(), calls);
    EXPECT_EQ(h.drv.queue_time_ps(), host_queue);
    // The guest attaches a v2 domain to its device 0: its DTE (GV, its GCR3 table, its
    // DomainID) becomes a nested HWPT, and the device's host DTE carries the hDomID.
    std::string why;
    const auto dom = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(dom) << why;
    AMD_ASSERT_OK(rig.guest.attach(0, std::nullopt, *dom));
    EXPECT_EQ(rig.vamd.stats().installs.value(), 1u);
    EXPECT_NE(rig.vamd.installed_hwpt(0), 0u);
    const uint16_t gdom = rig.guest.device_domain_id(0);
    const auto hdom = h.drv.host_domain_id(1, gdom);
    ASSERT_TRUE(hdom.has_value());
    EXPECT_EQ(h.drv.device_domain_id(kRid), *hdom);
    // Re-attaching the same domain rewrites an identical DTE: not installed again.
    AMD_ASSERT_OK(rig.guest.attach(0, std::nullopt, *dom));
    EXPECT_EQ(rig.vamd.stats().installs.value(), 1u);
    // Now the gDomID is known: a guest invalidation of it is forwarded.
    const uint64_t fwd = rig.vamd.stats().forwarded.value();
    AMD_ASSERT_OK(rig.guest.submit({amdvi::cmd_inv_iommu_pages(gdom, 0x1000, 4096, true, true, 0)}, "known"));
    EXPECT_EQ(rig.vamd.stats().forwarded.value(), fwd + 1);
  });
}

// A guest-stage fault: a read of a guest IOVA the guest never mapped (its GCR3 entry for
// PASID 0 holds a v2 table without that page). The host driver reports it to the vIOMMU's
// vEVENTQ with the guest's DeviceID and keeps nothing; the VMM stores it at the guest's
// EvtLogTail. Record words from 48882 §2.5 (IO_PAGE_FAULT): word 0 DeviceID[15:0] (host
// 0x10, guest 0), D/P = PASID 0 (GN = 1: the guest tables), GN[48] = 1, US[50] = 1 (a
// user request), RW[53] = 0 (a read), PR[52] = 0 (not present), EventCode[63:60] = 2:
// 0x2005000000000010 on the host, 0x2005000000000000 in the guest; word 1 the GVA.
TEST(VAmdVi, GuestStageFaultReachesTheGuestsEventLogWithItsDeviceId) {
  AmdHarness h;
  VamdRig rig(h, guest_fault_costs<vmm::VAmdViConfig>());
  h.run([&](AmdHarness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_NE(rig.vamd.veventq_id(), 0u) << "allocated when the guest set Control.EventLogEn";
    rig.map_guest_page();
    if (::testing::Test::HasFatalFailure()) return;
    const uint64_t iova = kGuestIova + 0x100000;   // 0x110000
    ASSERT_FALSE(h.read(kRid, iova).ok());
    amdvi::EventWords host{};
    h.memory.read(h.drv.evt_log_base(), host.data(), 16);
    EXPECT_EQ(host[0], 0x2005000000000010ull);
    EXPECT_EQ(host[1], 0x110000ull);
    const uint64_t written = h.iommu.event_written_ps(0);
    const uint64_t t0 = common::now_ps();
    ASSERT_TRUE(rig.vamd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 1u);
    EXPECT_EQ(h.drv.events_seen(EventCode::IoPageFault), 0u) << "the host keeps none";
    const amdvi::EventWords g = rig.guest_event(0);
    EXPECT_EQ(g[0], 0x2005000000000000ull);
    EXPECT_EQ(g[1], 0x110000ull);
    EXPECT_EQ(rig.vamd.peek_register(amdvi::reg::EVT_LOG_TAIL), 16u);
    // Its latency, from the host's record to the guest's: the wait for the handler, then
    // the host's interrupt (2000 ns), its driver's drain (EvtLogTail read 400 ns plus one
    // 1 ns IOMMU register cycle; 2 x 20 cycles of decode at 2000 MHz, 20 ns; EvtLogHead
    // write 150 + 1 ns; Status read 401 ns: 973 ns), the report (250 ns), the VMM's wake-up
    // (5000 ns), one read() (1000 ns) and the store (100 ns): 9323 ns.
    const vmm::TrappedMmio::EventStats& st = rig.vamd.event_stats();
    ASSERT_EQ(st.latency_ps.count(), 1u);
    EXPECT_EQ(st.latency_ps.max(), (t0 - written) + 9323000u);
    EXPECT_EQ(st.forwarded.value(), 1u);
    EXPECT_EQ(st.reads.value(), 1u);
    // The guest's handler: one record, by the guest's own EvtLogHead.
    EXPECT_EQ(rig.guest.drain_events(), 1u);
    EXPECT_EQ(rig.guest.events_seen(EventCode::IoPageFault), 1u);
    EXPECT_EQ(rig.vamd.peek_register(amdvi::reg::EVT_LOG_HEAD), 16u);
  });
}

// A host-stage fault under the guest (its v2 table maps a GPA the VMM never mapped in the
// IOAS): the model reports the host table's fault, GN = 0 with the DTE's DomainID (the
// hDomID) and the GPA, so the host keeps it; nothing reaches the vEVENTQ or the guest.
TEST(VAmdVi, HostStageFaultStaysWithTheHost) {
  AmdHarness h;
  VamdRig rig(h, guest_fault_costs<vmm::VAmdViConfig>());
  h.run([&](AmdHarness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    rig.map_guest_page();
    if (::testing::Test::HasFatalFailure()) return;
    const uint64_t iova = 0x200000, gpa_outside = (64ull << 20) * 2;
    AMD_ASSERT_OK(rig.guest.map(rig.domain, iova, gpa_outside, kPage, {}, kPage));
    ASSERT_FALSE(h.read(kRid, iova).ok());
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].code, EventCode::IoPageFault);
    EXPECT_FALSE(ev[0].gn);
    EXPECT_EQ(ev[0].domain_or_pasid, h.drv.device_domain_id(kRid));
    EXPECT_EQ(ev[0].address, gpa_outside);
    EXPECT_FALSE(rig.vamd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 0u);
    EXPECT_EQ(h.drv.events_seen(EventCode::IoPageFault), 1u);
    EXPECT_EQ(rig.vm.iommufd().veventq_pending(rig.vamd.veventq_id()), 0u);
    EXPECT_EQ(rig.vamd.peek_register(amdvi::reg::EVT_LOG_TAIL), 0u);
    EXPECT_EQ(rig.vamd.event_stats().forwarded.value(), 0u);
  });
}

// A depth-2 vEVENTQ and three guest faults before the host's handler runs: two records and
// the LOST_EVENTS header. The guest sees both records and Status.EvtOverflow[0] (its log
// stopped, EvtLogRun[3] = 0); its driver clears it and restarts logging.
TEST(VAmdVi, AFullVeventqSetsTheGuestsEvtOverflow) {
  AmdHarness h;
  VamdRig rig(h, guest_fault_costs<vmm::VAmdViConfig>(2));
  h.run([&](AmdHarness& h) {
    rig.boot(h);
    if (::testing::Test::HasFatalFailure()) return;
    rig.map_guest_page();
    if (::testing::Test::HasFatalFailure()) return;
    for (uint64_t i = 1; i <= 3; ++i) ASSERT_FALSE(h.read(kRid, kGuestIova + i * 0x100000).ok());
    ASSERT_TRUE(rig.vamd.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 3u);
    const vmm::TrappedMmio::EventStats& st = rig.vamd.event_stats();
    EXPECT_EQ(st.forwarded.value(), 2u);
    EXPECT_EQ(st.lost.value(), 1u);
    EXPECT_EQ(st.reads.value(), 3u);
    EXPECT_EQ(rig.guest_event(0)[1], kGuestIova + 0x100000);
    EXPECT_EQ(rig.guest_event(1)[1], kGuestIova + 0x200000);
    const uint64_t status = rig.vamd.peek_register(amdvi::reg::STATUS);
    EXPECT_EQ(status & 0x9, 0x1u);   // EvtOverflow set, EvtLogRun clear
    EXPECT_EQ(rig.guest.drain_events(), 2u);
    EXPECT_EQ(rig.vamd.peek_register(amdvi::reg::STATUS) & 0x9, 0x8u);   // cleared, running again
  });
}

}  // namespace
}  // namespace iommusim::test

// The VMM's vAMD (platforms/vmm/vamdvi.h) between a guest's AMD driver and the host's, over
// iommufd: a command the vAMD's decoder calls illegal (a reserved bit, 48882 §2.4) logs
// ILLEGAL_COMMAND_ERROR (§2.5.x, the 16-byte record) into the guest's event log in guest
// RAM, stops the guest's buffer and reaches neither iommufd nor the host's buffer; commands
// naming a gDomID no installed DTE carries, or a DeviceID with no vDEVICE, are dropped and
// counted; the guest's INVALIDATE_DEVTAB_ENTRY installs its DTE as a nested HWPT once.
// The cache-tag policies (vmm.amd_domid, guest.amd_gcr3) with two assigned devices: the
// host commands each guest invalidation and stage-2 change becomes (hex from 48882 §2.4.3
// field positions: opcode [63:60], DomainID [47:32], PASID [19:0] of u64[0]; address, GN
// [2], PDE [1], S [0] of u64[1]), and what the oracle makes of the DMAs.
// Guest faults (a MODEL EXTENSION, VeventqType::AmdExt): a guest-stage IO_PAGE_FAULT reaches
// the guest's event log with its DeviceID, a host-stage one stays with the host, a full
// vEVENTQ shows as the guest's EvtOverflow.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "vmm_guest_fixture.h"
#include "models/amdvi/registers.h"
#include "models/common/correctness_oracle.h"
#include "platforms/vmm/vamdvi.h"
#include "platforms/vmm/vm.h"

namespace iommusim::test {
namespace {

using Call = vmm::Iommufd::Call;
using driver::AmdGcr3Tables;
using driver::AmdNestedDomainIds;
constexpr uint32_t kRid = 0x10, kRid2 = 0x11;
constexpr uint64_t kMovableGpa = 0x300000;   // a guest page the VMM may move (one IOAS area)
constexpr uint64_t kGuestIova = 0x10000;

// One VM with a vAMD over the harness's AMD IOMMU, a guest AMD driver on it, kRid assigned
// as guest DeviceID 0 (and kRid2 as 1 with two devices); an oracle when asked.
struct VamdRig {
  vmm::Vm vm;
  vmm::VAmdVi vamd;
  driver::AmdViDriver guest;
  std::vector<vmm::AssignedDevice> devices{{kRid, 0, 0}};
  common::CorrectnessOracle oracle{"amdvi"};
  static vmm::VmLayout layout() {
    vmm::VmLayout l = guest_layout(kGuestRamPa);
    l.movable_gpa = kMovableGpa;
    l.movable_bytes = 4096;
    return l;
  }
  static driver::AmdViDriverConfig guest_config(AmdGcr3Tables gcr3) {
    auto gc = guest_driver_config<driver::AmdViDriverConfig>();
    gc.gcr3_tables = gcr3;
    return gc;
  }
  explicit VamdRig(AmdHarness& h, unsigned device_count = 1, AmdGcr3Tables gcr3 = AmdGcr3Tables::PerDevice,
                   const vmm::VAmdViConfig& vc = vmm::VAmdViConfig{})
      : vm(h.memory, layout(), {vmm::HostIommu{&h.drv, &h.drv}}),
        vamd("vamd", vc, vm.ram(), vm.iommufd(), h.drv),
        guest("guest", guest_config(gcr3), vamd, vm.ram()) {
    if (device_count > 1) devices.push_back({kRid2, 1, 0});
    guest.mmio.bind(vamd.mmio);
    guest.set_trapping_doorbell(&vamd);
  }
  void boot(AmdHarness& h, bool with_oracle = false) {
    if (with_oracle) {   // the host reports stage 2, the guest its stage 1 over it
      h.iommu.set_observer(&oracle);
      h.drv.set_oracle(&oracle);
    }
    AMD_ASSERT_OK(h.drv.init());
    AMD_ASSERT_OK(vm.build(devices, driver::ViommuType::Amd));
    vamd.set_viommu(vm.viommu_id());
    for (const vmm::AssignedDevice& d : devices) vamd.add_device(uint16_t(d.virt_id), d.dev_id);
    if (with_oracle) guest.set_oracle(&oracle, vm.guest_oracle_scope(devices));
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
  VamdRig rig(h, 1, AmdGcr3Tables::PerDevice, guest_fault_costs<vmm::VAmdViConfig>());
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
  VamdRig rig(h, 1, AmdGcr3Tables::PerDevice, guest_fault_costs<vmm::VAmdViConfig>());
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
  VamdRig rig(h, 1, AmdGcr3Tables::PerDevice, guest_fault_costs<vmm::VAmdViConfig>(2));
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


namespace policies {

constexpr uint64_t kIova = 0x10000000;                     // the guest's IOVA in both domains
constexpr uint64_t kGpaA = 0x100000, kGpaB = 0x200000;     // where domains A and B map it
constexpr uint64_t kDataA = 0xA1A1A1A1A1A1A1A1ull, kDataB = 0xB2B2B2B2B2B2B2B2ull;
// Guest INVALIDATE_IOMMU_PAGES of the 4 KiB page at kIova, PASID 0 (a leaf unmap of a v2
// table, reached by the host with the hDomID in DomainID): u64[0] = 3 [63:60] | DomainID
// [47:32]; u64[1] = kIova | GN [2] (S = 0, PDE = 0).
constexpr uint64_t kIovaWord1 = kIova | 0x4;
constexpr uint64_t kPagesHDom2 = 0x3000000200000000ull, kPagesHDom3 = 0x3000000300000000ull;

uint64_t cmd_tail(AmdHarness& h) {
  return amdvi::reg::RING_PTR::get_address(h.iommu.peek_register(amdvi::reg::CMD_BUF_TAIL));
}
// The host driver's commands in its physical buffer from byte offset `from` to the tail.
std::vector<amdvi::CmdWords> host_commands_since(AmdHarness& h, uint64_t from) {
  const uint64_t bytes = 16ull << driver::AmdViDriverConfig{}.cmd_buf_log2, to = cmd_tail(h);
  std::vector<amdvi::CmdWords> out;
  for (uint64_t off = from; off != to; off = (off + 16) % bytes) {
    amdvi::CmdWords w{};
    h.memory.read(h.drv.cmd_buf_base() + off, w.data(), 16);
    out.push_back(w);
  }
  return out;
}
// The DomainIDs of the INVALIDATE_IOMMU_PAGES among `cmds`, in order.
std::vector<uint16_t> page_domain_ids(const std::vector<amdvi::CmdWords>& cmds) {
  std::vector<uint16_t> ids;
  for (const auto& c : cmds)
    if (c[0] >> 60 == 0x3) ids.push_back(uint16_t(c[0] >> 32));
  return ids;
}

driver::AmdViDriverConfig host_config(AmdNestedDomainIds ids) {
  driver::AmdViDriverConfig c;
  c.nested_domids = ids;
  return c;
}

// The aliasing case of Linux amd_iommu_alloc_domain_nested: two assigned devices in
// different guest domains A and B, both at PASID 0, the same IOVA mapped to different
// pages. The guest gives each device's GCR3 table its own DomainID (gDomIDs 1 and 2, in
// attach order); the host's DomainIDs count from 1 (the nest parent), then 2 and 3.
class AmdAliasing : public testing::TestWithParam<AmdNestedDomainIds> {};

TEST_P(AmdAliasing, GuestInvalidationNamesOnlyItsDomainOrTheTagsAlias) {
  const AmdNestedDomainIds policy = GetParam();
  const bool group = policy == AmdNestedDomainIds::PerGroup;
  AmdHarness h(amd_config(), host_config(policy));
  VamdRig rig(h, 2);
  h.run([&](AmdHarness& h) {
    rig.boot(h, true);
    if (::testing::Test::HasFatalFailure()) return;
    std::string why;
    const auto a = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    const auto b = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(a && b) << why;
    AMD_ASSERT_OK(rig.guest.map(*a, kIova, kGpaA, 4096, {}, 4096));
    AMD_ASSERT_OK(rig.guest.map(*b, kIova, kGpaB, 4096, {}, 4096));
    h.memory.write64(kGuestRamPa + kGpaA, kDataA);
    h.memory.write64(kGuestRamPa + kGpaB, kDataB);
    AMD_ASSERT_OK(rig.guest.attach(0, std::nullopt, *a));
    AMD_ASSERT_OK(rig.guest.attach(1, std::nullopt, *b));
    EXPECT_EQ(rig.guest.device_domain_id(0), 1u);
    EXPECT_EQ(rig.guest.device_domain_id(1), 2u);
    EXPECT_EQ(h.drv.device_domain_id(kRid), 2u);
    EXPECT_EQ(h.drv.device_domain_id(kRid2), group ? 2u : 3u);
    EXPECT_EQ(h.drv.nested_tags_in_use(), std::optional<uint64_t>(group ? 1 : 2));

    EXPECT_EQ(h.read(kRid, kIova).data, kDataA);
    const AmdDmaResult rb = h.read(kRid2, kIova);
    ASSERT_TRUE(rb.ok());
    if (group) {
      // (hDomID 2, PASID 0) tags both GCR3 tables' translations: B hits A's entry.
      EXPECT_EQ(rb.data, kDataA) << "device B read domain A's page";
      rig.oracle.finish();
      EXPECT_GT(rig.oracle.violations(), 0u) << "a translation through another domain's tables";
      return;
    }
    EXPECT_EQ(rb.data, kDataB);
    // The guest unmaps A's page: one INVALIDATE_IOMMU_PAGES of gDomID 1, which reaches the
    // hardware as hDomID 2 only, then the host's COMPLETION_WAIT (opcode 1).
    const uint64_t tail = cmd_tail(h);
    AMD_ASSERT_OK(rig.guest.unmap(*a, kIova, 4096));
    const std::vector<amdvi::CmdWords> cmds = host_commands_since(h, tail);
    ASSERT_EQ(cmds.size(), 2u);
    EXPECT_EQ(cmds[0][0], kPagesHDom2);
    EXPECT_EQ(cmds[0][1], kIovaWord1);
    EXPECT_EQ(cmds[1][0] >> 60, 0x1u);
    // B's translation survived: its next DMA hits the IOTLB; A's page is gone.
    const uint64_t hits = h.iommu.iotlb_stats().hits.value();
    EXPECT_EQ(h.read(kRid2, kIova).data, kDataB);
    EXPECT_EQ(h.iommu.iotlb_stats().hits.value(), hits + 1);
    EXPECT_FALSE(h.read(kRid, kIova).ok());
    rig.oracle.finish();
    EXPECT_EQ(rig.oracle.violations(), 0u);
    EXPECT_GE(rig.oracle.checked(), 4u);
  });
}

INSTANTIATE_TEST_SUITE_P(Policies, AmdAliasing,
                         testing::Values(AmdNestedDomainIds::PerGuestDomain, AmdNestedDomainIds::PerDevice,
                                         AmdNestedDomainIds::PerGroup),
                         [](const testing::TestParamInfo<AmdNestedDomainIds>& i) {
                           return std::string(i.param == AmdNestedDomainIds::PerGuestDomain ? "per_gdomid"
                                              : i.param == AmdNestedDomainIds::PerDevice    ? "per_device"
                                                                                            : "per_group");
                         });

// One guest domain over two devices. With guest.amd_gcr3 = shared both devices' DTEs carry
// gDomID 1 (one GCR3 table); with per_device (Linux) gDomIDs 1 and 2 (two tables).
struct SplitCase {
  AmdNestedDomainIds ids;
  AmdGcr3Tables gcr3;
  uint64_t gcr3_tables;                 // the guest's GCR3 tables
  std::vector<uint16_t> unmap_hdoms;    // INVALIDATE_IOMMU_PAGES DomainIDs of one guest unmap
  unsigned unmap_waits;                 // host COMPLETION_WAITs (one per ioctl: one per guest command)
  std::vector<uint16_t> s2_hdoms;       // ... of one stage-2 page move: the parent (1), then each hDomID
  const char* name;
};

class AmdSplit : public testing::TestWithParam<SplitCase> {};

TEST_P(AmdSplit, GuestAndStage2InvalidationsNameEveryHostDomainId) {
  const SplitCase& c = GetParam();
  AmdHarness h(amd_config(), host_config(c.ids));
  VamdRig rig(h, 2, c.gcr3);
  h.run([&](AmdHarness& h) {
    rig.boot(h, true);
    if (::testing::Test::HasFatalFailure()) return;
    std::string why;
    const auto a = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(a) << why;
    AMD_ASSERT_OK(rig.guest.map(*a, kIova, kGpaA, 4096, {}, 4096));
    h.memory.write64(kGuestRamPa + kGpaA, kDataA);
    AMD_ASSERT_OK(rig.guest.attach(0, std::nullopt, *a));
    AMD_ASSERT_OK(rig.guest.attach(1, std::nullopt, *a));
    EXPECT_EQ(rig.guest.gcr3_tables(), c.gcr3_tables);
    EXPECT_EQ(h.read(kRid, kIova).data, kDataA);
    EXPECT_EQ(h.read(kRid2, kIova).data, kDataA);

    uint64_t tail = cmd_tail(h);
    AMD_ASSERT_OK(rig.guest.unmap(*a, kIova, 4096));
    std::vector<amdvi::CmdWords> cmds = host_commands_since(h, tail);
    EXPECT_EQ(page_domain_ids(cmds), c.unmap_hdoms);
    EXPECT_EQ(cmds.size(), c.unmap_hdoms.size() + c.unmap_waits);
    for (const auto& w : cmds)
      if (w[0] >> 60 == 0x3) {
        EXPECT_EQ(w[1], kIovaWord1);
      }
    EXPECT_EQ(cmds.front()[0], kPagesHDom2);
    if (c.unmap_hdoms.size() == 2) {
      EXPECT_EQ(cmds[c.unmap_waits == 2 ? 2 : 1][0], kPagesHDom3);
    }

    // The VMM moves a guest page (IOMMU_IOAS_UNMAP, MAP): the host flushes its stage 2.
    tail = cmd_tail(h);
    AMD_ASSERT_OK(rig.vm.move_page(kMovableGpa, kGuestRamPa + (32ull << 20), 4096));
    cmds = host_commands_since(h, tail);
    EXPECT_EQ(page_domain_ids(cmds), c.s2_hdoms);
    rig.oracle.finish();
    EXPECT_EQ(rig.oracle.violations(), 0u);
  });
}

INSTANTIATE_TEST_SUITE_P(
    Policies, AmdSplit,
    testing::Values(
        // Upstream host, de-duplicating guest: one hDomID, one command per invalidation.
        SplitCase{AmdNestedDomainIds::PerGuestDomain, AmdGcr3Tables::Shared, 1, {2}, 1, {1, 2}, "per_gdomid_shared"},
        // The mis-split: one gDomID over two hDomIDs, two commands per guest invalidation
        // (one ioctl) and two per stage-2 change.
        SplitCase{AmdNestedDomainIds::PerDevice, AmdGcr3Tables::Shared, 1, {2, 3}, 1, {1, 2, 3}, "per_device_shared"},
        // Linux's guest: two GCR3 tables, two gDomIDs, so two guest commands (two ioctls).
        SplitCase{AmdNestedDomainIds::PerGuestDomain, AmdGcr3Tables::PerDevice, 2, {2, 3}, 2, {1, 2, 3},
                  "per_gdomid_per_device_gcr3"}),
    [](const testing::TestParamInfo<SplitCase>& i) { return std::string(i.param.name); });

// guest.amd_gcr3 = shared: two devices share domain A's GCR3 table (DomainID 1) until
// device 0 attaches PASID 5 to domain C; it then gets a table of its own (DomainID 2)
// holding A at PASID 0 and C at PASID 5, while device 1 keeps the shared one, which never
// held PASID 5.
TEST(VAmdVi, SharedGcr3TableIsCopiedWhenADeviceAttachesAPasid) {
  AmdHarness h;
  VamdRig rig(h, 2, AmdGcr3Tables::Shared);
  h.run([&](AmdHarness& h) {
    rig.boot(h, true);
    if (::testing::Test::HasFatalFailure()) return;
    std::string why;
    const auto a = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    const auto c = rig.guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(a && c) << why;
    AMD_ASSERT_OK(rig.guest.map(*a, kIova, kGpaA, 4096, {}, 4096));
    AMD_ASSERT_OK(rig.guest.map(*c, kIova, kGpaB, 4096, {}, 4096));
    h.memory.write64(kGuestRamPa + kGpaA, kDataA);
    h.memory.write64(kGuestRamPa + kGpaB, kDataB);
    AMD_ASSERT_OK(rig.guest.attach(0, std::nullopt, *a));
    AMD_ASSERT_OK(rig.guest.attach(1, std::nullopt, *a));
    EXPECT_EQ(rig.guest.gcr3_tables(), 1u);
    EXPECT_EQ(rig.guest.device_domain_id(0), 1u);
    EXPECT_EQ(rig.guest.device_domain_id(1), 1u);
    EXPECT_EQ(h.drv.device_domain_id(kRid), h.drv.device_domain_id(kRid2)) << "one gDomID: one hDomID";
    AMD_ASSERT_OK(rig.guest.attach(0, 5u, *c));
    EXPECT_EQ(rig.guest.gcr3_tables(), 2u);
    EXPECT_EQ(rig.guest.device_domain_id(0), 2u);
    EXPECT_EQ(rig.guest.device_domain_id(1), 1u);
    EXPECT_EQ(h.dma(kRid, 5u, kIova, false).data, kDataB);
    EXPECT_EQ(h.read(kRid, kIova).data, kDataA) << "PASID 0 copied into the new table";
    EXPECT_FALSE(h.dma(kRid2, 5u, kIova, false).ok()) << "the shared table has no PASID 5";
    EXPECT_EQ(h.read(kRid2, kIova).data, kDataA);
    rig.oracle.finish();
    EXPECT_EQ(rig.oracle.violations(), 0u);
  });
}

}  // namespace policies

}  // namespace
}  // namespace iommusim::test

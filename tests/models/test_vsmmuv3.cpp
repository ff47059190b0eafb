// The VMM's vSMMU (platforms/vmm/vsmmuv3.h) between a guest's SMMUv3 driver and the host:
// what reaches the physical command queue, what does not, and a DMA through the guest's
// stage 1 nested over the host's stage 2. Field positions from IHI 0070 §4 (commands).
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "models/smmuv3/registers.h"
#include "platforms/vmm/vm.h"
#include "platforms/vmm/vsmmuv3.h"
#include "vmm_guest_fixture.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x10;             // the device's physical StreamID
constexpr uint64_t kVsid = 0;               // the guest's StreamID for it
constexpr uint64_t kGuestRamBytes = 64ull << 20;
constexpr uint64_t kGuestPoolGpa = 16ull << 20;
constexpr uint64_t kIova = 0x10000;

driver::Smmuv3DriverConfig guest_config() {
  driver::Smmuv3DriverConfig c;
  c.memory.table_pool_base = kGuestPoolGpa;
  c.memory.table_pool_bytes = 16ull << 20;
  c.memory.guest_pool_ipa = 0;
  c.memory.guest_pool_bytes = 0;
  c.timing.mmio_write_ns = c.timing.mmio_read_ns = 0;
  return c;
}

vmm::VmLayout layout(uint64_t ram_pa) {
  vmm::VmLayout l;
  l.ram_pa = ram_pa;
  l.ram_bytes = kGuestRamBytes;
  l.backing_page_bytes = kPage;
  return l;
}

// One VM on the host's SMMU: one device, the vSMMU and the guest driver.
struct GuestVm {
  vmm::Vm vm;
  vmm::VSmmuv3 vsmmu;
  driver::Smmuv3Driver guest;
  std::vector<vmm::AssignedDevice> devices;

  GuestVm(Harness& h, const std::string& name, uint64_t ram_pa, uint32_t rid,
          const vmm::VSmmuConfig& vc = vmm::VSmmuConfig{})
      : vm(h.memory, layout(ram_pa), {vmm::HostIommu{&h.drv, &h.drv}}),
        vsmmu((name + "_vsmmu").c_str(), vc, vm.ram(), vm.iommufd(), h.drv),
        guest((name + "_guest").c_str(), guest_config(), vsmmu, vm.ram()),
        devices{{rid, kVsid, 0}} {
    guest.mmio.bind(vsmmu.mmio);
    guest.set_trapping_doorbell(&vsmmu);
  }

  // The VM's objects, guest init, and a guest stage-1 domain mapping kIova to GPA
  // kBufferIpa attached to the device; returns the domain. The host driver is up.
  DomainId boot() {
    const driver::Status built = vm.build(devices, driver::ViommuType::ArmSmmuv3);
    EXPECT_TRUE(built.ok) << built.error;
    vsmmu.set_viommu(vm.viommu_id());
    EXPECT_EQ(vsmmu.add_device(kVsid, devices[0].dev_id), vmm::Errno::Ok);
    const driver::Status g = guest.init();
    EXPECT_TRUE(g.ok) << g.error;
    std::string why;
    const auto d = guest.create_domain(DomainKind::Stage1, std::nullopt, &why);
    EXPECT_TRUE(d.has_value()) << why;
    EXPECT_TRUE(guest.map(*d, kIova, kBufferIpa, kPage, {}, kPage).ok);
    EXPECT_TRUE(guest.attach(uint32_t(kVsid), std::nullopt, *d).ok);
    return *d;
  }
};

// The host SMMU and driver (Harness) and one VM.
struct TrappedHarness {
  Harness h;
  GuestVm g;
  vmm::VSmmuv3& vsmmu = g.vsmmu;
  driver::Smmuv3Driver& guest = g.guest;

  explicit TrappedHarness(const smmuv3::Smmuv3Config& cfg = smmu_config(),
                          const vmm::VSmmuConfig& vc = vmm::VSmmuConfig{})
      : h(cfg), g(h, "vm", kGuestRamPa, kRid, vc) {}

  // Host init, then the VM's boot.
  DomainId boot() {
    EXPECT_TRUE(h.drv.init().ok);
    return g.boot();
  }
  std::vector<smmuv3::CmdWords> host_commands() { return test::host_commands(h); }
};

uint8_t opcode(const smmuv3::CmdWords& c) { return uint8_t(c[0] & 0xFF); }

vmm::VSmmuConfig fault_costs(uint32_t veventq_depth = 0) { return guest_fault_costs<vmm::VSmmuConfig>(veventq_depth); }

// The guest's EVTQ entry `i`, from guest RAM.
smmuv3::EventWords guest_event(TrappedHarness& t, uint32_t i) {
  smmuv3::EventWords w{};
  t.g.vm.ram().read(t.guest.evtq_base() + uint64_t(i) * 32, w.data(), 32);
  return w;
}

}  // namespace

// The guest's DMA domain reaches the device: its STE, installed by the VMM as a nested
// HWPT, points the physical STE at the guest's CD (a GPA) over the host's stage 2. With the
// walk caches and the IPA cache off, the cold walk reads 24 descriptors (4 stage-1 levels,
// each located by a 4-level stage-2 walk, then the output's own stage-2 walk: 4 x 5 + 4).
TEST(VSmmuv3, GuestStage1NestsOverTheHostsStage2) {
  TrappedHarness t(smmu_config(false));
  t.h.run([&](Harness& h) {
    t.boot();
    const uint64_t before = h.smmu.walk_reads().count();
    ASSERT_EQ(before, 0u);
    const uint64_t reads0 = h.smmu.table_reads();
    h.memory.write(kGuestRamPa + kBufferIpa + 0x18, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    const DmaResult r = h.dma(kRid, std::nullopt, kIova + 0x18, false);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, 0x8877665544332211ull);
    EXPECT_EQ(h.smmu.table_reads() - reads0, 24u);
    EXPECT_EQ(t.vsmmu.stats().installs.value(), 2u);   // the guest's CFGI_ALL at init, its CFGI_STE at attach
    EXPECT_NE(t.vsmmu.installed_hwpt(kVsid), 0u);
  });
}

// A guest unmap: its TLBI_NH_VA reaches the physical queue with the VMID the host gave the
// VM (the nest parent's: the host's first stage-2 domain, VMID 1) in place of the guest's
// (0), its own ASID (1, the guest's first) and address; then the host's CMD_SYNC. The
// CFGI_CD of the guest's attach carries the physical StreamID, not the vSID.
TEST(VSmmuv3, ForwardedCommandsCarryTheHostsVmidAndStreamId) {
  TrappedHarness t;
  t.h.run([&](Harness&) {
    const DomainId d = t.boot();
    const size_t before = t.host_commands().size();
    ASSERT_TRUE(t.guest.unmap(d, kIova, kPage).ok);
    const std::vector<smmuv3::CmdWords> all = t.host_commands();
    ASSERT_EQ(all.size(), before + 2);
    const smmuv3::CmdWords& tlbi = all[before];
    EXPECT_EQ(opcode(tlbi), 0x12);                     // CMD_TLBI_NH_VA
    EXPECT_EQ((tlbi[0] >> 32) & 0xFFFF, 1u);           // VMID[47:32]
    EXPECT_EQ(tlbi[0] >> 48, 1u);                      // ASID[63:48]
    EXPECT_EQ(tlbi[1] & ~0xFFFull, kIova);             // Address[63:12]
    // The host's CMD_SYNC: its MSIAddress[51:2] is its own slot (Linux's MSI polling), so
    // its MSI has stored 0 over its first word.
    const uint64_t base = t.h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & common::mask(51, 5);
    EXPECT_EQ(all[before + 1][1] & common::mask(51, 2), base + (before + 1) * 16);
    EXPECT_EQ(uint32_t(all[before + 1][0]), 0u);
    bool cfgi_cd = false;
    for (size_t i = 0; i < before; ++i)
      if (opcode(all[i]) == 0x05) {                    // CMD_CFGI_CD
        cfgi_cd = true;
        EXPECT_EQ(all[i][0] >> 32, kRid);              // SID[63:32]: physical
      }
    EXPECT_TRUE(cfgi_cd);
  });
}

// A command the vSMMU does not implement (TLBI_S2_IPA: it has no stage 2) is CERROR_ILL in
// the guest's own CMDQ_CONS and GERROR; the guest driver recovers as Linux does, and nothing
// reaches the host's queue.
TEST(VSmmuv3, IllegalGuestCommandStopsTheGuestsQueueOnly) {
  TrappedHarness t;
  t.h.run([&](Harness&) {
    t.boot();
    const size_t before = t.host_commands().size();
    const uint64_t forwarded = t.vsmmu.stats().forwarded.value();
    ASSERT_TRUE(t.guest.submit({smmuv3::cmd_tlbi_s2_ipa(0, 0x1000, true)}, "bad").ok);
    EXPECT_EQ(t.guest.command_errors_recovered(), 1u);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::GERROR) & 1, 1u);   // CMDQ_ERR toggled (and acknowledged)
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::GERRORN) & 1, 1u);
    EXPECT_EQ(t.host_commands().size(), before);
    EXPECT_EQ(t.vsmmu.stats().forwarded.value(), forwarded);
  });
}

// Two VMs on one SMMU, each guest with its first ASID (1) for its DMA domain: the same
// guest tag. VM A's domain flush (TLBI_NH_ASID, ASID 1) reaches the host with VM A's VMID
// (1: the host's first stage-2 domain) and never VM B's (2), so VM B's translation stays
// in the IOTLB (its next DMA hits, no walk) while VM A's next DMA walks again.
TEST(VSmmuv3, OneVmsGuestInvalidationLeavesTheOtherVmsEntries) {
  Harness h;
  constexpr uint32_t kRidB = 0x11;
  GuestVm a(h, "vm_a", kGuestRamPa, kRid), b(h, "vm_b", kGuestRamPa + kGuestRamBytes, kRidB);
  h.run([&](Harness&) {
    ASSERT_TRUE(h.drv.init().ok);
    const DomainId da = a.boot();
    b.boot();
    ASSERT_TRUE(h.dma(kRid, std::nullopt, kIova, false).ok());
    ASSERT_TRUE(h.dma(kRidB, std::nullopt, kIova, false).ok());
    const size_t before = host_commands(h).size();
    ASSERT_TRUE(a.guest.invalidate_domain(da).ok);
    const std::vector<smmuv3::CmdWords> all = host_commands(h);
    ASSERT_EQ(all.size(), before + 2);                 // TLBI_NH_ASID, CMD_SYNC
    EXPECT_EQ(opcode(all[before]), 0x11);              // CMD_TLBI_NH_ASID
    EXPECT_EQ((all[before][0] >> 32) & 0xFFFF, 1u);    // VMID[47:32]: VM A's
    EXPECT_EQ(all[before][0] >> 48, 1u);               // ASID[63:48]: the guest's
    EXPECT_EQ(uint32_t(all[before + 1][0]), 0u);       // CMD_SYNC: its MSI stored 0 over this word
    const uint64_t walks = h.smmu.walk_reads().count();
    ASSERT_TRUE(h.dma(kRidB, std::nullopt, kIova, false).ok());
    EXPECT_EQ(h.smmu.walk_reads().count(), walks);     // VM B: an IOTLB hit
    ASSERT_TRUE(h.dma(kRid, std::nullopt, kIova, false).ok());
    EXPECT_EQ(h.smmu.walk_reads().count(), walks + 1); // VM A: walked again
  });
}

// A guest-stage fault: a read of a guest IOVA the guest never mapped faults in its stage 1
// (F_TRANSLATION, S2 = 0). The host driver reports it to the vIOMMU's vEVENTQ with the vSID
// and keeps nothing; the VMM writes it at the guest's EVTQ_PROD; the guest driver's handler
// consumes it. Record words from IHI 0070 §7.3: dword 0 EventID[7:0] = 0x10, SSV[11] = 0,
// StreamID[63:32] = the vSID 0 (the host's own said 0x10: 0x0000001000000010); dword 1
// RnW[35] = 1 (a read), S2[39] = 0; dword 2 the input address.
TEST(VSmmuv3, GuestStageFaultReachesTheGuestsEvtqWithItsVsid) {
  TrappedHarness t(smmu_config(), fault_costs());
  t.h.run([&](Harness& h) {
    t.boot();
    ASSERT_NE(t.vsmmu.veventq_id(), 0u) << "allocated when the guest set CR0.EVTQEN";
    const uint64_t iova = kIova + 0x100000;   // 0x110000
    ASSERT_FALSE(h.dma(kRid, std::nullopt, iova, false).ok());
    smmuv3::EventWords host{};
    h.memory.read(h.drv.evtq_base(), host.data(), 32);
    EXPECT_EQ(host[0], 0x0000001000000010ull);
    const uint64_t written = h.smmu.event_written_ps(0);
    const uint64_t t0 = common::now_ps();
    ASSERT_TRUE(t.vsmmu.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 1u);
    EXPECT_EQ(h.drv.events_seen(EventId::F_TRANSLATION), 0u) << "the host keeps none";
    const smmuv3::EventWords g = guest_event(t, 0);
    EXPECT_EQ(g[0], 0x0000000000000010ull);
    EXPECT_EQ((g[1] >> 35) & 1, 1u);
    EXPECT_EQ((g[1] >> 39) & 1, 0u);
    EXPECT_EQ(g[2], 0x110000ull);
    EXPECT_EQ(g[1], host[1]);
    EXPECT_EQ(g[3], host[3]);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::EVTQ_PROD), 1u);
    // Its latency, from the host's record to the guest's: the wait for the handler, then
    // the host's interrupt (2000 ns), its driver's drain (EVTQ_PROD and EVTQ_CONS reads,
    // 400 ns each plus one 1 ns SMMU register cycle; 4 x 20 cycles of decode, 40 ns;
    // EVTQ_CONS write 150 + 1 ns: 993 ns), the report (250 ns), the VMM's wake-up (5000 ns),
    // one read() (1000 ns) and the store (100 ns): 9343 ns.
    const vmm::TrappedMmio::EventStats& st = t.vsmmu.event_stats();
    ASSERT_EQ(st.latency_ps.count(), 1u);
    EXPECT_EQ(st.latency_ps.max(), (t0 - written) + 9343000u);
    EXPECT_EQ(st.forwarded.value(), 1u);
    EXPECT_EQ(st.reads.value(), 1u);
    // The guest's handler: one record, by the guest's own EVTQ_CONS.
    EXPECT_EQ(t.guest.drain_events(), 1u);
    EXPECT_EQ(t.guest.events_seen(EventId::F_TRANSLATION), 1u);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::EVTQ_CONS), 1u);
  });
}

// A stage-2 fault under the guest (its stage 1 maps to a GPA the VMM never mapped in the
// IOAS): S2 = 1, so the host keeps it; nothing reaches the vEVENTQ or the guest.
TEST(VSmmuv3, StageTwoFaultStaysWithTheHost) {
  TrappedHarness t(smmu_config(), fault_costs());
  t.h.run([&](Harness& h) {
    const DomainId d = t.boot();
    const uint64_t iova = 0x200000, gpa_outside = kGuestRamBytes * 2;
    ASSERT_TRUE(t.guest.map(d, iova, gpa_outside, kPage, {}, kPage).ok);
    ASSERT_FALSE(h.dma(kRid, std::nullopt, iova, false).ok());
    ASSERT_EQ(h.events().size(), 1u);
    EXPECT_TRUE(h.events()[0].s2);
    EXPECT_FALSE(t.vsmmu.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 0u);
    EXPECT_EQ(h.drv.events_seen(EventId::F_TRANSLATION), 1u);
    EXPECT_EQ(t.g.vm.iommufd().veventq_pending(t.vsmmu.veventq_id()), 0u);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::EVTQ_PROD), 0u);
    EXPECT_EQ(t.vsmmu.event_stats().forwarded.value(), 0u);
  });
}

// A depth-2 vEVENTQ and four guest faults before the host's handler runs: two records and
// the LOST_EVENTS header, which stands for the two dropped records (sequences 2 and 3: it
// carries 3, the last entry read carried 1). The guest sees both records and an overflow
// (EVTQ_PROD.OVFLG[31] toggled: 0x80000002), which its driver acknowledges
// (EVTQ_CONS.OVACKFLG[31]).
TEST(VSmmuv3, AFullVeventqSetsTheGuestsOverflowFlag) {
  TrappedHarness t(smmu_config(), fault_costs(2));
  t.h.run([&](Harness& h) {
    t.boot();
    for (uint64_t i = 1; i <= 4; ++i) ASSERT_FALSE(h.dma(kRid, std::nullopt, kIova + i * 0x100000, false).ok());
    ASSERT_TRUE(t.vsmmu.host_event_interrupt(h.drv));
    EXPECT_EQ(h.drv.events_reported(), 4u);
    const vmm::TrappedMmio::EventStats& st = t.vsmmu.event_stats();
    EXPECT_EQ(st.forwarded.value(), 2u);
    EXPECT_EQ(st.lost.value(), 2u);
    EXPECT_EQ(st.reads.value(), 3u);
    EXPECT_EQ(guest_event(t, 0)[2], kIova + 0x100000);
    EXPECT_EQ(guest_event(t, 1)[2], kIova + 0x200000);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::EVTQ_PROD), 0x80000002u);
    EXPECT_EQ(t.guest.drain_events(), 2u);
    EXPECT_EQ(t.vsmmu.peek32(smmuv3::reg::EVTQ_CONS), 0x80000002u);
  });
}

}  // namespace iommusim::test

// The VMM's vSMMU (platforms/vmm/vsmmuv3.h) between a guest's SMMUv3 driver and the host:
// what reaches the physical command queue, what does not, and a DMA through the guest's
// stage 1 nested over the host's stage 2. Field positions from IHI 0070 §4 (commands).
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "models/smmuv3/registers.h"
#include "platforms/vmm/vm.h"
#include "platforms/vmm/vsmmuv3.h"
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

  GuestVm(Harness& h, const std::string& name, uint64_t ram_pa, uint32_t rid)
      : vm(h.memory, layout(ram_pa), vmm::HostIommu{&h.drv, &h.drv}),
        vsmmu((name + "_vsmmu").c_str(), vmm::VSmmuConfig{}, vm.ram(), vm.iommufd(), h.drv),
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

// The host's physical command queue so far (it has not wrapped: 256 entries).
std::vector<smmuv3::CmdWords> host_commands(Harness& h) {
  const uint64_t base = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & common::mask(51, 5);
  const uint32_t prod = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_PROD, 4)) & 0xFF;
  std::vector<smmuv3::CmdWords> out(prod);
  for (uint32_t i = 0; i < prod; ++i) h.memory.read(base + i * 16ull, out[i].data(), 16);
  return out;
}

// The host SMMU and driver (Harness) and one VM.
struct TrappedHarness {
  Harness h;
  GuestVm g;
  vmm::VSmmuv3& vsmmu = g.vsmmu;
  driver::Smmuv3Driver& guest = g.guest;

  explicit TrappedHarness(const smmuv3::Smmuv3Config& cfg = smmu_config()) : h(cfg), g(h, "vm", kGuestRamPa, kRid) {}

  // Host init, then the VM's boot.
  DomainId boot() {
    EXPECT_TRUE(h.drv.init().ok);
    return g.boot();
  }
  std::vector<smmuv3::CmdWords> host_commands() { return test::host_commands(h); }
};

uint8_t opcode(const smmuv3::CmdWords& c) { return uint8_t(c[0] & 0xFF); }

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

}  // namespace iommusim::test

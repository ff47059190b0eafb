// Several physical IOMMUs behind one VM (docs/vmm.md, "Several IOMMUs"): two host SMMUv3s
// (unit 0 and unit 1), one vIOMMU object and one emulated vSMMU per unit, one guest driver
// instance per vSMMU. What reaches each unit's physical command queue, as command words
// (IHI 0070 §4: opcode [7:0], SID [63:32] of CFGI_*, VMID [47:32] and ASID [63:48] of TLBI_*;
// opcodes from Table 4.1).
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "models/common/bits.h"
#include "models/smmuv3/registers.h"
#include "platforms/vmm/vm.h"
#include "platforms/vmm/vsmmuv3.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid0 = 0x10, kRid1 = 0x11;   // physical StreamIDs: D0 behind unit 0, D1 behind unit 1
constexpr uint64_t kVsid0 = 0, kVsid1 = 1;      // the guest's StreamIDs for them
constexpr uint64_t kGuestRamBytes = 64ull << 20;
constexpr uint64_t kIova = 0x10000;
constexpr uint8_t kCfgiCd = 0x05;

// Guest driver k's tables: its own 8 MiB of the guest table pool at GPA 16 MiB.
driver::Smmuv3DriverConfig guest_config(unsigned k) {
  driver::Smmuv3DriverConfig c;
  c.memory.table_pool_base = (16ull << 20) + k * (8ull << 20);
  c.memory.table_pool_bytes = 8ull << 20;
  c.memory.guest_pool_ipa = 0;
  c.memory.guest_pool_bytes = 0;
  c.timing.mmio_write_ns = c.timing.mmio_read_ns = 0;
  return c;
}

// Guest RAM in host memory 0, its DMA buffer region movable one 4 KB page at a time.
vmm::VmLayout layout() {
  vmm::VmLayout l;
  l.ram_pa = kGuestRamPa;
  l.ram_bytes = kGuestRamBytes;
  l.backing_page_bytes = kPage;
  l.movable_gpa = kBufferIpa;
  l.movable_bytes = 2 * kPage;
  return l;
}

uint8_t opcode(const smmuv3::CmdWords& c) { return uint8_t(c[0] & 0xFF); }

// Entry `i` of `h`'s queue is the host driver's CMD_SYNC: its MSIAddress[51:2] is its own
// slot (Linux's MSI polling), where its MSI has stored 0 over the opcode's word.
void expect_host_sync(Harness& h, const std::vector<smmuv3::CmdWords>& q, size_t i) {
  const uint64_t base = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & common::mask(51, 5);
  EXPECT_EQ(q[i][1] & common::mask(51, 2), base + i * 16) << h.name();
  EXPECT_EQ(uint32_t(q[i][0]), 0u) << h.name();
}

// Two host SMMUs (each its own memory; the VM's RAM is in unit 0's, which is all the
// commands below need) and one VM with D0 behind unit 0 and D1 behind unit 1.
struct TwoUnits {
  Harness h0{smmu_config(), driver::Smmuv3DriverConfig{}, memory::MemoryConfig{}, "unit0"};
  Harness h1{smmu_config(), driver::Smmuv3DriverConfig{}, memory::MemoryConfig{}, "unit1"};
  vmm::Vm vm{h0.memory, layout(), {vmm::HostIommu{&h0.drv, &h0.drv}, vmm::HostIommu{&h1.drv, &h1.drv}}};
  vmm::VSmmuv3 vs0{"vsmmu0", vmm::VSmmuConfig{}, vm.ram(), vm.iommufd(), h0.drv};
  vmm::VSmmuv3 vs1{"vsmmu1", vmm::VSmmuConfig{}, vm.ram(), vm.iommufd(), h1.drv};
  driver::Smmuv3Driver g0{"guest0", guest_config(0), vs0, vm.ram()};
  driver::Smmuv3Driver g1{"guest1", guest_config(1), vs1, vm.ram()};
  std::vector<vmm::AssignedDevice> devices{{kRid0, kVsid0, 0, 0}, {kRid1, kVsid1, 0, 1}};
  DomainId d0 = 0, d1 = 0;

  TwoUnits() {
    h1.second_unit();
    g0.mmio.bind(vs0.mmio);
    g1.mmio.bind(vs1.mmio);
    g0.set_trapping_doorbell(&vs0);
    g1.set_trapping_doorbell(&vs1);
  }

  // Both hosts, the VM's objects, each vSMMU's own device, each guest's stage-1 domain
  // mapping kIova to GPA kBufferIpa attached to its device.
  void boot() {
    IOMMUSIM_ASSERT_OK(h0.drv.init());
    IOMMUSIM_ASSERT_OK(h1.drv.init());
    IOMMUSIM_ASSERT_OK(vm.build(devices, driver::ViommuType::ArmSmmuv3));
    ASSERT_NE(vm.viommu_id(0), vm.viommu_id(1));
    ASSERT_NE(vm.parent_id(0), vm.parent_id(1));
    vs0.set_viommu(vm.viommu_id(0));
    vs1.set_viommu(vm.viommu_id(1));
    ASSERT_EQ(vs0.add_device(kVsid0, devices[0].dev_id), vmm::Errno::Ok);
    ASSERT_EQ(vs1.add_device(kVsid1, devices[1].dev_id), vmm::Errno::Ok);
    d0 = guest_domain(g0, kVsid0);
    d1 = guest_domain(g1, kVsid1);
  }
  static DomainId guest_domain(driver::Smmuv3Driver& g, uint64_t vsid) {
    EXPECT_TRUE(g.init().ok);
    std::string why;
    const auto d = g.create_domain(DomainKind::Stage1, std::nullopt, &why);
    EXPECT_TRUE(d.has_value()) << why;
    EXPECT_TRUE(g.map(d.value_or(0), kIova, kBufferIpa, kPage, {}, kPage).ok);
    EXPECT_TRUE(g.attach(uint32_t(vsid), std::nullopt, d.value_or(0)).ok);
    return d.value_or(0);
  }
};

}  // namespace

// Each guest's attach reaches its own unit only: unit 1's queue has the CFGI_CD of D1's
// physical StreamID 0x11 and never D0's 0x10; unit 0's the other way round. Then guest
// 1's unmap of kIova (its first ASID, 1) reaches unit 1 as CMD_TLBI_NH_VA with the VMID
// unit 1's host gave the VM's parent there (its first stage-2 domain: VMID 1), followed
// by unit 1's own CMD_SYNC; unit 0's queue does not move.
TEST(MultiIommu, AGuestInvalidationOnVIommu1ReachesUnit1Only) {
  TwoUnits t;
  t.h0.run([&](Harness&) {
    t.boot();
    auto cfgi_sids = [](const std::vector<smmuv3::CmdWords>& q) {
      std::vector<uint64_t> sids;
      for (const smmuv3::CmdWords& c : q)
        if (opcode(c) == kCfgiCd) sids.push_back(c[0] >> 32);
      return sids;
    };
    EXPECT_EQ(cfgi_sids(host_commands(t.h0)), std::vector<uint64_t>{0x10});
    EXPECT_EQ(cfgi_sids(host_commands(t.h1)), std::vector<uint64_t>{0x11});

    const size_t before0 = host_commands(t.h0).size(), before1 = host_commands(t.h1).size();
    IOMMUSIM_ASSERT_OK(t.g1.unmap(t.d1, kIova, kPage));
    const std::vector<smmuv3::CmdWords> q1 = host_commands(t.h1);
    ASSERT_EQ(q1.size(), before1 + 2);
    // CMD_TLBI_NH_VA (0x12), VMID 1 in [47:32], ASID 1 in [63:48]; Address[63:12] = 0x10000.
    EXPECT_EQ(q1[before1][0] & 0xFFFFFFFF000000FFull, 0x0001000100000012ull);
    EXPECT_EQ(q1[before1][1] & ~0xFFFull, 0x10000ull);
    expect_host_sync(t.h1, q1, before1 + 1);
    EXPECT_EQ(host_commands(t.h0).size(), before0);
    EXPECT_GT(t.vs1.stats().forwarded.value(), 0u);
  });
}

// The VMM moves one guest page (IOMMU_IOAS_UNMAP, then MAP at another host page): the IOAS
// has a nest parent on each unit, so each host driver unmaps its stage-2 leaf and, by
// hand from arm_smmu_tlb_inv_range_domain for a nest parent, issues on its own queue
// CMD_TLBI_S2_IPA (0x2A) of the IPA with its VMID (1), CMD_TLBI_NH_ALL (0x10) of that
// VMID (the guest's stage-1 entries over it), and its own CMD_SYNC: three commands per
// unit. The MAP that follows fills an empty leaf and invalidates nothing.
TEST(MultiIommu, AVmmStage2MoveInvalidatesEveryUnit) {
  TwoUnits t;
  t.h0.run([&](Harness&) {
    t.boot();
    const size_t before0 = host_commands(t.h0).size(), before1 = host_commands(t.h1).size();
    IOMMUSIM_ASSERT_OK(t.vm.move_page(kBufferIpa, kGuestRamPa + kGuestRamBytes, kPage));
    for (Harness* h : {&t.h0, &t.h1}) {
      const std::vector<smmuv3::CmdWords> q = host_commands(*h);
      const size_t before = h == &t.h0 ? before0 : before1;
      ASSERT_EQ(q.size(), before + 3) << h->name();
      EXPECT_EQ(q[before][0] & 0x0000FFFF000000FFull, 0x000000010000002Aull) << h->name();
      EXPECT_EQ(q[before][1] & ~0xFFFull, kBufferIpa) << h->name();
      EXPECT_EQ(q[before + 1][0], 0x0000000100000010ull) << h->name();
      expect_host_sync(*h, q, before + 2);
    }
  });
}

// A guest command on vIOMMU 1 naming vSID 0, valid on vIOMMU 0 (D0) but not attached on
// vIOMMU 1: dropped and counted there; nothing reaches either unit's queue.
TEST(MultiIommu, AnIdOfAnotherVIommuIsDroppedNotForwarded) {
  TwoUnits t;
  t.h0.run([&](Harness&) {
    t.boot();
    const size_t before0 = host_commands(t.h0).size(), before1 = host_commands(t.h1).size();
    const uint64_t forwarded = t.vs1.stats().forwarded.value();
    IOMMUSIM_ASSERT_OK(t.g1.submit({smmuv3::cmd_cfgi_cd(uint32_t(kVsid0), 0, true)}, "misrouted"));
    EXPECT_EQ(t.vs1.stats().dropped_unattached.value(), 1u);
    EXPECT_EQ(t.vs0.stats().dropped_unattached.value(), 0u);
    EXPECT_EQ(t.vs1.stats().forwarded.value(), forwarded);
    EXPECT_EQ(host_commands(t.h0).size(), before0);
    EXPECT_EQ(host_commands(t.h1).size(), before1);
  });
}

}  // namespace iommusim::test

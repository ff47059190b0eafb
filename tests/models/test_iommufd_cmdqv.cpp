// iommufd objects for a Tegra241 CMDQV beside the SMMU (platforms/vmm/iommufd.h,
// Smmuv3Driver's CMDQV half): IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV gets a VINTF with the
// vIOMMU's VMID, a vDEVICE a SID_MATCH / SID_REPLACE pair, IOMMU_HW_QUEUE_ALLOC an LVCMDQ
// whose BASE is the host PA of the guest's queue; each errno as Linux's
// iommufd_hw_queue_alloc_ioctl and tegra241_vintf_alloc_lvcmdq_user return it. Expected
// register values are worked out from the tegra241-cmdqv.c field positions.
#include <cstdint>
#include <functional>

#include <gtest/gtest.h>

#include "models/smmuv3/cmdqv.h"
#include "platforms/vmm/iommufd.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

using driver::HwQueueType;
using driver::UserData;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;
using namespace smmuv3::cmdqv;

constexpr uint32_t kRid = 0x10;
constexpr uint64_t kVsid = 3;
constexpr uint64_t kGpaBytes = 2ull << 20;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;
// The guest queue: GPA 0x10000, 4 KB (256 commands), in guest RAM at kGuestRamPa.
constexpr uint64_t kQueueGpa = 0x10000, kQueueBytes = 4096;

struct CmdqvVm {
  Iommufd fd;
  uint32_t dev = 0, ioas = 0, parent = 0, viommu = 0;
  explicit CmdqvVm(Harness& h) : fd({vmm::HostIommu{&h.drv, &h.drv}}) {}
};

void run_with_cmdqv(const std::function<void(Harness&, smmuv3::Cmdqv&, CmdqvVm&)>& body) {
  Harness h;
  smmuv3::Cmdqv cmdqv("cmdqv", smmuv3::CmdqvConfig{}, h.smmu);
  h.drv.set_cmdqv(&cmdqv);
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    CmdqvVm vm(h);
    ASSERT_EQ(vm.fd.bind_device(kRid, 0, &vm.dev), Errno::Ok);
    ASSERT_EQ(vm.fd.ioas_alloc(0, &vm.ioas), Errno::Ok);
    // Guest RAM [0, 2 MB) at kGuestRamPa, except one 4 KB page at GPA 0x20000 that the VMM
    // backs elsewhere (a queue across it is not physically contiguous).
    ASSERT_EQ(vm.fd.ioas_map(vm.ioas, kMapRw, 0, kGuestRamPa, 0x20000), Errno::Ok);
    ASSERT_EQ(vm.fd.ioas_map(vm.ioas, kMapRw, 0x20000, kGuestRamPa + 0x400000, 0x1000), Errno::Ok);
    ASSERT_EQ(vm.fd.ioas_map(vm.ioas, kMapRw, 0x21000, kGuestRamPa + 0x21000, kGpaBytes - 0x21000), Errno::Ok);
    ASSERT_EQ(vm.fd.hwpt_alloc(vmm::kHwptAllocNestParent, vm.dev, vm.ioas, UserData{}, &vm.parent), Errno::Ok);
    ASSERT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &vm.viommu), Errno::Ok);
    body(h, cmdqv, vm);
  });
}

TEST(IommufdCmdqv, ViommuGetsAVintfWithItsVmid) {
  run_with_cmdqv([](Harness& h, smmuv3::Cmdqv& c, CmdqvVm& vm) {
    // The host's reset: CMDQV_EN, and VCMDQ 5 preassigned to VINTF 1 / LVCMDQ 1
    // (5 = 1 x 4 + 1): 1 << 15 | 1 << 1, not ALLOCATED.
    EXPECT_EQ(c.read32(CONFIG), 1u);
    EXPECT_EQ(c.read32(STATUS), 1u);
    EXPECT_EQ(c.read32(CMDQ_ALLOC(5)), 0x8002u);
    // VINTF 1 (VINTF 0 is the host's): CONFIG = VMID << 1 | EN, HYP_OWN (bit 17) 0.
    const uint16_t vmid = uint16_t(h.drv.viommu_tag(1));
    EXPECT_EQ(h.drv.vintf_of(1), 1u);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_CONFIG), uint32_t(vmid) << 1 | 1u);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_STATUS), 1u);
    // A vDEVICE: SID_REPLACE(0) = 0x10, SID_MATCH(0) = 3 << 1 | 1 = 7.
    uint32_t vdev = 0;
    ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_SID_REPLACE(0)), kRid);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_SID_MATCH(0)), 7u);
    ASSERT_EQ(vm.fd.destroy(vdev), Errno::Ok);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_SID_MATCH(0)), 0u);
    // Three guest VINTFs exist (4 minus the host's): the fourth vIOMMU finds none.
    uint32_t v = 0;
    EXPECT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &v), Errno::Ok);
    EXPECT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &v), Errno::Ok);
    EXPECT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &v), Errno::NoSpc);
    // Destroying the first vIOMMU frees its VINTF (tegra241_cmdqv_remove_vintf): not while a
    // vDEVICE holds it (EBUSY, VINTF untouched); then CONFIG 0 (disabled, no VMID), and the
    // next vIOMMU takes VINTF 1 again, with the same parent's VMID.
    ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    EXPECT_EQ(vm.fd.destroy(vm.viommu), Errno::Busy);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_CONFIG), uint32_t(vmid) << 1 | 1u);
    ASSERT_EQ(vm.fd.destroy(vdev), Errno::Ok);
    ASSERT_EQ(vm.fd.destroy(vm.viommu), Errno::Ok);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_CONFIG), 0u);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_STATUS), 0u);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_SID_MATCH(0)), 0u);
    EXPECT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &v), Errno::Ok);
    EXPECT_EQ(h.drv.vintf_of(1), 0u);   // the destroyed vIOMMU's handle holds none
    EXPECT_EQ(h.drv.vintf_of(4), 1u);
    EXPECT_EQ(c.read32(VINTF(1) + VINTF_CONFIG), uint32_t(vmid) << 1 | 1u);
    EXPECT_EQ(vm.fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, vm.parent, &v), Errno::NoSpc);
  });
}

TEST(IommufdCmdqv, HwQueueAllocChecksAndBase) {
  run_with_cmdqv([](Harness&, smmuv3::Cmdqv& c, CmdqvVm& vm) {
    uint32_t q0 = 0, q1 = 0, x = 0;
    const auto alloc = [&](uint32_t flags, HwQueueType t, uint32_t index, uint64_t gpa, uint64_t len, uint32_t* id) {
      return vm.fd.hw_queue_alloc(flags, vm.viommu, t, index, gpa, len, id);
    };
    EXPECT_EQ(alloc(1, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, kQueueBytes, &x), Errno::OpNotSupp);   // flags
    EXPECT_EQ(alloc(0, HwQueueType::Default, 0, kQueueGpa, kQueueBytes, &x), Errno::OpNotSupp);
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, 0, &x), Errno::Inval);
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, ~0ull - 100, kQueueBytes, &x), Errno::Overflow);
    // The last page of the IOVA space (its end is 2^64, no wrap): unmapped, ENOENT.
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, ~0ull - 0xFFF, 0x1000, &x), Errno::NoEnt);
    EXPECT_EQ(vm.fd.hw_queue_alloc(0, 999, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, kQueueBytes, &x), Errno::NoEnt);
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, 0x400000, kQueueBytes, &x), Errno::NoEnt);   // not mapped
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, 0x1F000, 0x2000, &x), Errno::Fault);   // across the odd page
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 4, kQueueGpa, kQueueBytes, &x), Errno::Inval);   // 4 LVCMDQs
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 1, kQueueGpa, kQueueBytes, &x), Errno::Io);   // LVCMDQ 0 first
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, 16, &x), Errno::Inval);    // < 32 B
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, 0x3000, &x), Errno::Inval);   // not 2^n
    // 16 MB is over IDR1.CMDQS = 19 (2^19 x 16 B = 8 MB), but the core pins first: ENOENT.
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, 0, 16ull << 20, &x), Errno::NoEnt);
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa + 0x800, kQueueBytes, &x), Errno::Inval);   // unaligned
    EXPECT_EQ(vm.fd.calls(Iommufd::Call::HwQueueAlloc), 14u);
    ASSERT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, kQueueBytes, &q0), Errno::Ok);
    // Global VCMDQ 4 (VINTF 1 x 4 + 0) ALLOCATED: 1 << 15 | 0 << 1 | 1; BASE = host PA
    // 0x40010000 | LOG2SIZE 8 (4096 B = 2^8 commands).
    EXPECT_EQ(c.read32(CMDQ_ALLOC(4)), 0x8001u);
    EXPECT_EQ(c.read64(VCMDQ_PAGE1(4) + VCMDQ_BASE), 0x4001'0008ull);
    EXPECT_EQ(c.read64(VINTFi_LVCMDQ_PAGE1(1, 0) + VCMDQ_BASE), 0x4001'0008ull);
    EXPECT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, kQueueBytes, &x), Errno::Exist);
    ASSERT_EQ(alloc(0, HwQueueType::Tegra241Cmdqv, 1, 0x40000, 32, &q1), Errno::Ok);
    EXPECT_EQ(c.read64(VCMDQ_PAGE1(5) + VCMDQ_BASE), 0x4004'0001ull);   // 32 B: LOG2SIZE 1
    // The queues pin the IOAS areas under them (iopt_unmap_iova_range: num_locks, EBUSY,
    // checked before a partial range's ENOENT): q0 the area [0, 0x20000), q1 the area
    // [0x21000, 2 MB); the odd page at 0x20000 is free to go.
    uint64_t unmapped = 0;
    EXPECT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, 0x20000, &unmapped), Errno::Busy);
    EXPECT_EQ(vm.fd.ioas_unmap(vm.ioas, 0x1000, 0x1000, &unmapped), Errno::Busy);
    EXPECT_EQ(vm.fd.ioas_unmap(vm.ioas, 0x21000, kGpaBytes - 0x21000, &unmapped), Errno::Busy);
    EXPECT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, ~0ull, &unmapped), Errno::Busy);
    EXPECT_EQ(unmapped, 0u);
    ASSERT_EQ(vm.fd.ioas_unmap(vm.ioas, 0x20000, 0x1000, &unmapped), Errno::Ok);
    EXPECT_EQ(unmapped, 0x1000u);
    // Unmapped in descending order: queue 0 is held by queue 1.
    EXPECT_EQ(vm.fd.hw_queues_of(vm.viommu), (std::vector<uint32_t>{q1, q0}));
    EXPECT_EQ(vm.fd.destroy(q0), Errno::Busy);
    EXPECT_EQ(vm.fd.destroy(vm.viommu), Errno::Busy);
    ASSERT_EQ(vm.fd.destroy(q1), Errno::Ok);
    EXPECT_EQ(c.read32(CMDQ_ALLOC(5)), 0x8002u) << "unmapped, still assigned to VINTF 1 / LVCMDQ 1";
    EXPECT_EQ(c.read64(VCMDQ_PAGE1(5) + VCMDQ_BASE), 0u);
    // q1's area is free; q0's still pinned.
    EXPECT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, 0x20000, &unmapped), Errno::Busy);
    ASSERT_EQ(vm.fd.ioas_unmap(vm.ioas, 0x21000, kGpaBytes - 0x21000, &unmapped), Errno::Ok);
    EXPECT_EQ(vm.fd.destroy(q0), Errno::Ok);
    EXPECT_EQ(vm.fd.hw_queues_of(vm.viommu), std::vector<uint32_t>{});
    ASSERT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, 0x20000, &unmapped), Errno::Ok);
  });
}

// A plain ARM_SMMUV3 vIOMMU has no HW queues.
TEST(IommufdCmdqv, ArmSmmuv3ViommuHasNoHwQueues) {
  run_with_cmdqv([](Harness&, smmuv3::Cmdqv&, CmdqvVm& vm) {
    uint32_t v = 0, x = 0;
    ASSERT_EQ(vm.fd.viommu_alloc(0, ViommuType::ArmSmmuv3, vm.dev, vm.parent, &v), Errno::Ok);
    EXPECT_EQ(vm.fd.hw_queue_alloc(0, v, HwQueueType::Tegra241Cmdqv, 0, kQueueGpa, kQueueBytes, &x), Errno::OpNotSupp);
  });
}

}  // namespace
}  // namespace iommusim::test

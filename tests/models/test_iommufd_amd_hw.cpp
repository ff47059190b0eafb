// iommufd over an AMD host with the hardware vIOMMU (models/amdvi/viommu.h, the unmerged
// HW-vIOMMU RFC; AmdViDriverConfig::hw_viommu_guests): IOMMU_VIOMMU_ALLOC takes a gid and
// sets up its map tables and translation DeviceID, vDEVICE programs the DeviceID map, the
// guest's nested domain (its DTE's gDomID) the DomainID map, and a guest command in the
// guest's own buffer is executed by the hardware against the host DomainID with nothing
// on the host's command buffer. IDs worked out from the driver's documented order:
// DomainIDs from 1 (1: the private-space domain of init, 2: the nest parent, 3: gDomID 5's
// hDomID); the translation DeviceID is the top of the 256-entry table minus the gid, 255.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "models/amdvi/viommu.h"
#include "platforms/vmm/iommufd.h"

namespace iommusim::test {
namespace {

namespace vi = amdvi::viommu;
using driver::HwptAmdGuest;
using driver::HwptDataType;
using driver::UserData;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;

constexpr uint32_t kRid = 0x10;
constexpr uint64_t kGdevId = 3;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;
constexpr uint64_t kCmdGpa = 0x90000, kEvtGpa = 0x92000, kSemGpa = 0x94000;
// The guest DTE of test_iommufd_amd.cpp: v2 only, gDomID 5, GCR3 table at GPA 0x81000.
constexpr uint64_t kGdte0 = 0x64C0000000000003ull, kGdte1 = 0x0000000000100005ull;

amdvi::AmdViConfig hw_config() {
  amdvi::AmdViConfig c = amd_config();
  c.caps.viommu = true;
  c.viommu_guests = 1;
  return c;
}
driver::AmdViDriverConfig hw_driver() {
  driver::AmdViDriverConfig d;
  d.hw_viommu_guests = 1;
  return d;
}

struct HwVm {
  AmdHarness& h;
  Iommufd fd;
  uint32_t dev = 0, ioas = 0, parent = 0, viommu = 0, vdev = 0, nested = 0;
  uint32_t tail = 0;
  explicit HwVm(AmdHarness& harness) : h(harness), fd({vmm::HostIommu{&harness.drv, &harness.drv}}) {}
  void build() {
    ASSERT_EQ(fd.bind_device(kRid, 0, &dev), Errno::Ok);
    ASSERT_EQ(fd.ioas_alloc(0, &ioas), Errno::Ok);
    ASSERT_EQ(fd.ioas_map(ioas, kMapRw, 0, kGuestRamPa, 2ull << 20), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, dev, ioas, UserData{}, &parent), Errno::Ok);
    ASSERT_EQ(fd.viommu_alloc(0, ViommuType::Amd, dev, parent, &viommu), Errno::Ok);
    ASSERT_EQ(fd.vdevice_alloc(viommu, dev, kGdevId, &vdev), Errno::Ok);
    HwptAmdGuest g;
    g.dte[0] = kGdte0;
    g.dte[1] = kGdte1;
    ASSERT_EQ(fd.hwpt_alloc(0, dev, viommu, UserData{HwptDataType::AmdGuest, &g, sizeof g}, &nested), Errno::Ok);
    ASSERT_EQ(fd.attach(dev, nested), Errno::Ok);
  }
  driver::ViommuHandle handle() const { return fd.viommu_handle(viommu); }
  // The guest driver's register writes the VMM mirrors (amd_viommu_guest_mmio_write).
  void guest_init() {
    namespace reg = amdvi::reg;
    EXPECT_EQ(h.drv.viommu_guest_mmio_write(handle(), reg::CMD_BUF_BASE, kCmdGpa | (8ull << 56)), Errno::Ok);
    EXPECT_EQ(h.drv.viommu_guest_mmio_write(handle(), reg::EVT_LOG_BASE, kEvtGpa | (8ull << 56)), Errno::Ok);
    EXPECT_EQ(h.drv.viommu_guest_mmio_write(handle(), reg::CONTROL, (1u << 12) | (1u << 2) | 1), Errno::Ok);
  }
  void ring(const std::vector<amdvi::CmdWords>& cmds) {
    for (const auto& c : cmds) h.memory.write(kGuestRamPa + kCmdGpa + 16 * tail++, c.data(), 16);
    h.register_access(vi::vf_offset(0, vi::VF_CMD_TAIL), true, uint64_t(tail) * 16);
    for (int i = 0; i < 10000; ++i) {
      if (h.iommu.peek_register(vi::vf_offset(0, vi::VF_CMD_HEAD)) == uint64_t(tail) * 16) break;
      if (h.iommu.guest_buffer_stopped(0)) break;
      sc_core::wait(10, sc_core::SC_NS);
    }
  }
};

TEST(IommufdAmdHw, ViommuTakesAGidAndTheGuestQueueRunsOnTheHardware) {
  AmdHarness h(hw_config(), hw_driver());
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // Control.VCmdEn [52] and vIommuEn [53] set by the host.
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::CONTROL) >> 52) & 3, 3u);
    HwVm vm(h);
    vm.build();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_EQ(h.drv.viommu_gid(vm.handle()), std::optional<unsigned>(0));
    EXPECT_EQ(h.drv.viommu_trans_devid(vm.handle()), 255u);
    // VF_CNTL MISC of gid 0 (0x10010): the translation DeviceID 255 in [31:16].
    EXPECT_EQ(h.iommu.peek_register(0x10010), 0xFF0000ull);
    // The translation DeviceID's DTE: the nest parent's table and DomainID 2.
    EXPECT_EQ(h.drv.device_domain_id(255), 2u);
    // set_dte_viommu: the device's DTE data[3] = vImuEn [15] | gDevID 3 << 16 | gid 0 << 32.
    amdvi::DteWords w{};
    h.memory.read(h.drv.dte_address(kRid), w.data(), 32);
    EXPECT_EQ(w[3], 0x38000ull);
    ASSERT_EQ(h.drv.host_domain_id(vm.handle(), 5), std::optional<uint16_t>(3));

    vm.guest_init();
    // VF_CNTL 0x20: ComBase 0x90000 | En [8] | Len 8.
    EXPECT_EQ(h.iommu.peek_register(0x10020), 0x90108ull);
    std::vector<common::CommandTrace> host_cmds;
    h.iommu.set_command_probe([&](const common::CommandTrace& t) { host_cmds.push_back(t); });
    // Guest INVALIDATE_IOMMU_PAGES of gDomID 5 (GN, PDE, PASID 0) + COMPLETION_WAIT storing 1.
    vm.ring({amdvi::cmd_inv_iommu_pages(5, 0x1000, 0x1000, true, true, 0),
             amdvi::cmd_completion_wait(true, false, kSemGpa, 1)});
    EXPECT_EQ(h.memory.read64(kGuestRamPa + kSemGpa), 1u);
    EXPECT_TRUE(host_cmds.empty()) << "the hardware ran it: nothing on the host's buffer";
    EXPECT_EQ(h.iommu.map_fetches(), 1u) << "the gDomID 5 entry";
    EXPECT_EQ(h.iommu.guest_buffer(0).stats().unmapped_ids.value(), 0u);

    // The nested HWPT's last user goes: clear_domain_mapping; gDomID 5 is now unmapped.
    ASSERT_EQ(vm.fd.attach(vm.dev, vm.parent), Errno::Ok);
    ASSERT_EQ(vm.fd.destroy(vm.nested), Errno::Ok);
    vm.ring({amdvi::cmd_inv_iommu_pages(5, 0x1000, 0x1000, true, true, 0),
             amdvi::cmd_completion_wait(true, false, kSemGpa, 2)});
    EXPECT_TRUE(h.iommu.guest_buffer_stopped(0));
    EXPECT_EQ(h.iommu.guest_buffer(0).stats().unmapped_ids.value(), 1u);
    EXPECT_EQ(h.memory.read64(kGuestRamPa + kSemGpa), 1u);
    EXPECT_EQ(h.iommu.map_fetches(), 2u) << "the clear dropped the cached entry";
  });
}

TEST(IommufdAmdHw, VdeviceProgramsTheDeviceIdMap) {
  AmdHarness h(hw_config(), hw_driver());
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    HwVm vm(h);
    vm.build();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    vm.guest_init();
    // Guest INVALIDATE_IOTLB_PAGES of gDevID 3 -> DeviceID 0x10: the hardware sends the
    // device's Invalidate Request itself (no ATC here: nothing to wait for); then an
    // unknown gDevID 4 stops the buffer.
    vm.ring({amdvi::cmd_inv_iotlb_pages(3, 0, 0x1000, 0x1000), amdvi::cmd_completion_wait(true, false, kSemGpa, 1)});
    EXPECT_EQ(h.memory.read64(kGuestRamPa + kSemGpa), 1u);
    EXPECT_FALSE(h.iommu.guest_buffer_stopped(0));
    vm.ring({amdvi::cmd_inv_iotlb_pages(4, 0, 0x1000, 0x1000), amdvi::cmd_completion_wait(true, false, kSemGpa, 2)});
    EXPECT_TRUE(h.iommu.guest_buffer_stopped(0));
    EXPECT_EQ(h.memory.read64(kGuestRamPa + kSemGpa), 1u);
    EXPECT_EQ(h.drv.viommu_guest_mmio_write(99, amdvi::reg::CONTROL, 0), Errno::Inval) << "no such vIOMMU";
  });
}

}  // namespace
}  // namespace iommusim::test

// The VMM's vAMD (platforms/vmm/vamdvi.h) between a guest's AMD driver and the host's, over
// iommufd: a command the vAMD's decoder calls illegal (a reserved bit, 48882 §2.4) logs
// ILLEGAL_COMMAND_ERROR (§2.5.x, the 16-byte record) into the guest's event log in guest
// RAM, stops the guest's buffer and reaches neither iommufd nor the host's buffer; commands
// naming a gDomID no installed DTE carries, or a DeviceID with no vDEVICE, are dropped and
// counted; the guest's INVALIDATE_DEVTAB_ENTRY installs its DTE as a nested HWPT once.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "platforms/vmm/vamdvi.h"
#include "platforms/vmm/vm.h"

namespace iommusim::test {
namespace {

using Call = vmm::Iommufd::Call;
constexpr uint32_t kRid = 0x10;

// One VM with a vAMD over the harness's AMD IOMMU, a guest AMD driver on it, kRid assigned
// as guest DeviceID 0.
struct VamdRig {
  vmm::Vm vm;
  vmm::VAmdVi vamd;
  driver::AmdViDriver guest;
  std::vector<vmm::AssignedDevice> devices{{kRid, 0, 0}};
  static vmm::VmLayout layout() {
    vmm::VmLayout l;
    l.ram_pa = kGuestRamPa;
    l.ram_bytes = 64ull << 20;
    return l;
  }
  static driver::AmdViDriverConfig guest_config() {
    driver::AmdViDriverConfig gc;   // the guest's tables and buffers in guest RAM
    gc.memory.table_pool_base = 16ull << 20;
    gc.memory.table_pool_bytes = 8ull << 20;
    gc.memory.guest_pool_ipa = 0;
    gc.memory.guest_pool_bytes = 0;
    gc.timing.mmio_write_ns = gc.timing.mmio_read_ns = 0;
    return gc;
  }
  explicit VamdRig(AmdHarness& h)
      : vm(h.memory, layout(), {vmm::HostIommu{&h.drv, &h.drv}}),
        vamd("vamd", vmm::VAmdViConfig{}, vm.ram(), vm.iommufd(), h.drv),
        guest("guest", guest_config(), vamd, vm.ram()) {
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

}  // namespace
}  // namespace iommusim::test

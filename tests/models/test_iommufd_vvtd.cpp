// The VMM's vVT-d (platforms/vmm/vvtd.h) between a guest's VT-d driver and the host's, over
// iommufd: a descriptor the vVT-d's capabilities make illegal stops the guest's queue with
// FSTS.IQE and IQER.IQEI = 4 (VT-d spec §6.5.2.10, "invalidation queue error": a reserved
// field, here a DID beyond CAP.ND) and reaches neither iommufd nor the host queue.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "platforms/vmm/vm.h"
#include "platforms/vmm/vvtd.h"
#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

using Call = vmm::Iommufd::Call;

TEST(VVtd, IllegalGuestDescriptorRaisesIqeAndIssuesNothingOnTheHost) {
  Harness h;
  vmm::VmLayout layout;
  layout.ram_pa = test::kGuestRamPa;
  layout.ram_bytes = 64ull << 20;
  vmm::Vm vm(h.memory, layout, {vmm::HostIommu{&h.drv, &h.drv}});
  vmm::VVtdConfig vc;
  vc.nd = 2;   // 2^(4 + 2 * 2) = 256 DIDs: DID 0x100 is beyond CAP.ND
  vmm::VVtd vvtd("vvtd", vc, vm.ram(), vm.iommufd(), h.drv);
  driver::VtdDriverConfig gc;   // the guest's tables and queue in guest RAM
  gc.memory.table_pool_base = 16ull << 20;
  gc.memory.table_pool_bytes = 8ull << 20;
  gc.memory.guest_pool_ipa = 0;
  gc.memory.guest_pool_bytes = 0;
  gc.timing.mmio_write_ns = gc.timing.mmio_read_ns = 0;
  driver::VtdDriver guest("guest", gc, vvtd, vm.ram());
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

}  // namespace
}  // namespace iommusim::vtdtest

#include "platforms/virtio_lane.h"

namespace iommusim::platforms {

vmm::VirtioIommuConfig virtio_device_config(const LaneSettings& s, const vmm::VmmCosts& costs) {
  // The one injected bug this device models: vmm.inject = drop_host_flush.
  auto c = viommu_config<vmm::VirtioIommuConfig>(s, costs, s.vmm.inject == vmm::VmmFault::DropHostFlush);
  c.inject = s.vmm.inject;
  c.queue_size_max = s.vmm.virtio.queue_size;
  c.space.probe_size = s.vmm.virtio.probe_size;
  c.tree_cycles = s.vmm.virtio.tree_cycles;
  c.pin_page_cycles = s.vmm.virtio.pin_page_cycles;
  // ioeventfd: the device runs in the VMM's main loop (the iothread), whatever vmm.completion says.
  c.ioeventfd = s.vmm.virtio.notify == VirtioNotify::Ioeventfd;
  c.domain_flush = s.vmm.virtio.host_flush == VirtioHostFlush::Domain;
  if (c.ioeventfd) c.completion = vmm::VmmCompletion::Deferred;
  return c;
}

driver::VirtioIommuDriverConfig virtio_guest_config(const LaneSettings& s) {
  driver::VirtioIommuDriverConfig host;
  host.timing = s.timing;
  host.memory = s.pools;
  driver::VirtioIommuDriverConfig g = guest_driver_config(host, s);
  g.request_cycles = s.guest.virtio_request_cycles;
  g.ram_pa = s.guest_ram_pa;
  g.ram_bytes = s.guest_ram_bytes;
  return g;
}

void check_virtio_endpoints(const LaneSettings& s) {
  if (s.iommus != 1) throw ConfigError("platform.iommus: vmm.paths = virtio models one IOMMU (set 1)");
  for (const EndpointSettings& e : s.endpoints) {
    if (e.config.ats.enabled) e.fail("ats.enabled", "virtio-iommu has no ATS (vmm.paths = virtio)");
    if (e.config.pasid_valid) e.fail("pasid", "virtio-iommu has no PASIDs (vmm.paths = virtio): use -1");
  }
}

}  // namespace iommusim::platforms

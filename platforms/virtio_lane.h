// A vendor's virtio-iommu lane (vmm.paths = virtio, docs/vmm.md "virtio-iommu"): its native
// lane (the model and the host driver, on the lane's memory) plus a VM whose guest drives a
// para-virtual virtio-iommu device; the VMM's device turns the guest's MAP and UNMAP
// requests into host map and unmap calls through iommufd, on one single-stage paging domain
// per endpoint. DMAs carry the physical RID and reach the model; it walks one stage.
//
// What it models
// - Guest RAM (GuestRam at platform.guest_ram_pa), the VM's iommufd context over the host
//   driver, the device (VirtioIommuDevice, costs from vmm.<arch> and vmm.virtio) and the
//   guest driver (VirtioIommuDriver, its queue in the guest table pool). The guest's
//   endpoint ID for a device is its RID (a virtio-iommu topology names endpoints by RID).
// - The oracle hears the guest: its mappings (IOVA -> GPA) over guest RAM (GPA -> PA). The
//   host driver reports nothing (its tables shadow the guest's, as a user-managed HWPT's
//   are the guest's to report), so nothing is reported twice.
//
// What it does not model: several IOMMUs (platform.iommus must be 1), ATS and PASIDs
// (virtio-iommu has neither: a config error naming the key), guest faults.
#pragma once
#include <memory>
#include <string>

#include "platforms/driver/virtio_iommu_driver.h"
#include "platforms/iommu_lane.h"
#include "platforms/trapped_lane.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/virtio_iommu.h"

namespace iommusim::platforms {

// The device's config: the host architecture's costs, vmm.completion (QEMU's ioeventfd is
// `deferred`), and vmm.virtio.
vmm::VirtioIommuConfig virtio_device_config(const LaneSettings& s, const vmm::VmmCosts& costs);
// The guest driver's config: its queue in the guest table pool, no MMIO time of its own.
driver::VirtioIommuDriverConfig virtio_guest_config(const LaneSettings& s);
// Throws ConfigError naming the key when the lane's endpoints need what virtio-iommu lacks.
void check_virtio_endpoints(const LaneSettings& s);

template <class NativeLane>
class VirtioLane : public NativeLane {
 public:
  template <class ModelConfig, class DriverConfig>
  VirtioLane(const LaneSettings& s, const ModelConfig& mc, const DriverConfig& host, const vmm::VmmCosts& costs)
      : NativeLane(s, mc, host),
        ram_(*s.sim_memory, s.guest_ram_pa, s.guest_ram_bytes),
        fd_({vmm::HostIommu{&this->drv(0), &this->drv(0)}}),
        device_((s.name + "virtio_iommu").c_str(), virtio_device_config(s, costs), ram_, fd_, this->drv(0)),
        guest_((s.name + "guest_driver").c_str(), virtio_guest_config(s), ram_) {
    for (const EndpointSettings& e : s.endpoints) rids_.push_back(e.config.requester_id);
    fd_.set_backing_page_bytes(s.stage2_page_bytes);   // the host pages behind guest RAM
    guest_.set_trapping_doorbell(&device_);
    // The guest reports; the host driver's shadow tables do not (see above).
    if (this->oracle_on_) this->drv(0).set_oracle(nullptr);
  }

  driver::IommuDriver& unit_driver(unsigned) override { return guest_; }
  // The guest's DMA API maps guest-physical buffers (its VMM backs them with guest RAM).
  bool guest_stage1() const override { return true; }
  void enable_ats(uint32_t) override {}   // refused at config time (check_virtio_endpoints)
  void bind() override {
    NativeLane::bind();
    guest_.mmio.bind(device_.mmio);
  }
  // The host driver, the VM's iommufd objects (per endpoint: bind, IOAS, paging HWPT,
  // attach), the guest driver.
  driver::Status boot() override {
    if (driver::Status st = NativeLane::boot(); !st.ok) return st;
    for (uint32_t rid : rids_) {
      uint32_t dev = 0;
      if (vmm::Errno e = fd_.bind_device(rid, 0, &dev); e != vmm::Errno::Ok)
        return driver::Status::fail(std::string("VFIO_DEVICE_BIND_IOMMUFD: ") + vmm::errno_name(e));
      if (driver::Status st = device_.add_endpoint(rid, dev); !st.ok) return st;
    }
    if (this->oracle_on_) {
      common::OracleScope scope;
      scope.space_base = kGuestSpaceBase;
      scope.stage1_parent = kGuestSpaceBase + driver::VirtioIommuDriver::kRamSpace;
      guest_.set_oracle(&this->oracle_, scope);
    }
    return guest_.init();
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    this->iommu(0).register_stats(reg, p + ".iommu");
    this->drv(0).register_stats(reg, p + ".host.driver");
    guest_.register_stats(reg, p + ".driver");
    device_.register_stats(reg, p + ".vmm");
    fd_.register_stats(reg, p + ".vmm.iommufd");
    ram_.register_stats(reg, p + ".vmm.guest_ram");
    if (this->oracle_on_) this->oracle_.register_stats(reg, p + ".oracle");
  }

  vmm::VirtioIommuDevice& device() { return device_; }
  driver::VirtioIommuDriver& guest() { return guest_; }

 private:
  static constexpr uint32_t kGuestSpaceBase = 0x40u << 24;   // the guest's oracle spaces, apart from the host's

  vmm::GuestRam ram_;
  vmm::Iommufd fd_;
  vmm::VirtioIommuDevice device_;
  driver::VirtioIommuDriver guest_;
  std::vector<uint32_t> rids_;   // the endpoints' (physical) RIDs
};

// A vendor's virtio lane from its model and host driver configs.
template <class NativeLane, class ModelConfig, class DriverConfig>
std::unique_ptr<IommuLane> make_virtio_lane(const LaneSettings& s, const ModelConfig& m, const DriverConfig& host,
                                            const vmm::VmmCosts& costs) {
  check_virtio_endpoints(s);
  return std::make_unique<VirtioLane<NativeLane>>(s, m, host, costs);
}

}  // namespace iommusim::platforms

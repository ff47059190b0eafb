// A vendor's trapped lane (vmm.paths = trapped, docs/vmm.md): its native lane (the model and
// the host driver, on the lane's memory) plus a VM whose guest runs the same driver against
// the VMM's emulated vIOMMU, its stage 1 nested over the host's stage 2 through iommufd.
// The workload programs the guest driver; DMAs carry physical IDs and reach the model.
//
// The vendor's lane file instantiates it with its native lane, its vIOMMU and its driver,
// and says which vIOMMU object the VM gets, how the vIOMMU learns its devices
// (connect_viommu) and how the guest driver drains its fault log (drain_guest_events).
//
// Guest faults (docs/vmm.md, "Guest faults") take their whole way in the lane's event
// thread, beside the workload: the host's event interrupt wakes it (the host's threaded
// IRQ handler, then the VMM's main loop, then the guest's handler).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "platforms/iommu_lane.h"
#include "platforms/vmm/vm.h"

namespace iommusim::platforms {

// The guest's view of each endpoint: device k (the k-th endpoint) is the guest's ID k, so
// virtual and physical IDs differ.
inline std::vector<vmm::AssignedDevice> assigned_devices(const LaneSettings& s) {
  std::vector<vmm::AssignedDevice> d;
  for (size_t i = 0; i < s.endpoints.size(); ++i) d.push_back(vmm::AssignedDevice{s.endpoints[i].config.requester_id, i, 0});
  return d;
}

// The VM of a trapped lane: guest RAM from platform.*, its stage-2 leaves from
// platform.stage2_page_bytes, and the guest pages the stress workload moves.
inline vmm::VmLayout vm_layout(const LaneSettings& s) {
  vmm::VmLayout l;
  l.ram_pa = s.guest_ram_pa;
  l.ram_bytes = s.guest_ram_bytes;
  l.backing_page_bytes = s.stage2_page_bytes;
  l.movable_gpa = s.movable_gpa;
  l.movable_bytes = s.movable_bytes;
  return l;
}

// The guest's driver config: the host's, with its tables and queues in the guest table pool
// (GPAs) and no MMIO time of its own (its accesses trap: the vIOMMU charges them).
template <class DriverConfig>
DriverConfig guest_driver_config(const DriverConfig& host, const LaneSettings& s) {
  DriverConfig g = host;
  g.memory.table_pool_base = s.pools.guest_pool_ipa;
  g.memory.table_pool_bytes = s.pools.guest_pool_bytes;
  g.memory.guest_pool_ipa = 0;
  g.memory.guest_pool_bytes = 0;
  g.timing.mmio_write_ns = g.timing.mmio_read_ns = 0;
  return g;
}

// A vIOMMU's config with the run's settings for the VMM: the host architecture's `costs`,
// vmm.completion and the host CPU's clock. vmm.inject is a config error on a vIOMMU that
// does not model the injected bugs (only the vSMMU does).
template <class VIommuConfig>
VIommuConfig viommu_config(const LaneSettings& s, const vmm::VmmCosts& costs, bool models_injected_bugs) {
  if (!models_injected_bugs && s.vmm.inject != vmm::VmmFault::None)
    throw ConfigError("vmm.inject: the injected VMM bugs are modelled on smmuv3@trapped only");
  VIommuConfig c;
  c.costs = costs;
  c.completion = s.vmm.completion;
  c.cpu_mhz = s.timing.cpu_mhz;
  return c;
}

template <class NativeLane, class VIommu, class Driver>
class TrappedLane : public NativeLane {
 public:
  template <class ModelConfig, class DriverConfig, class VIommuConfig>
  TrappedLane(const LaneSettings& s, const ModelConfig& mc, const DriverConfig& host, const DriverConfig& guest,
              const VIommuConfig& vc, const char* viommu_name)
      : NativeLane(s, mc, host),
        vm_(*s.sim_memory, vm_layout(s), vmm::HostIommu{&this->drv_, &this->drv_}),
        viommu_((s.name + viommu_name).c_str(), vc, vm_.ram(), vm_.iommufd(), this->drv_),
        guest_((s.name + "guest_driver").c_str(), guest, viommu_, vm_.ram()),
        devices_(assigned_devices(s)) {
    guest_.set_trapping_doorbell(&viommu_);
    sc_core::sc_spawn([this] { event_thread(); }, sc_core::sc_gen_unique_name("event_thread"));
  }

  // The host's event interrupt wakes the event thread, so a guest fault takes its whole way
  // beside the workload, not in its thread.
  void raise_event_interrupt() override {
    if (this->events_recorded() == events_handled_) return;   // no new record: no interrupt
    irq_pending_ = true;
    irq_.notify(sc_core::SC_ZERO_TIME);
  }
  // The end of the run: once the event thread is idle, whatever arrived since.
  void drain_events() override {
    while (irq_pending_ || handling_) sc_core::wait(idle_);
    handle_events();
  }

  driver::IommuDriver& driver() override { return guest_; }
  const driver::IommuDriver& driver() const override { return guest_; }
  bool guest_stage1() const override { return true; }
  uint32_t driver_rid(uint32_t rid) const override {
    for (const vmm::AssignedDevice& d : devices_)
      if (d.rid == rid) return uint32_t(d.virt_id);
    return rid;
  }
  // The host enables ATS on the physical device (its nested entries may allow translated
  // requests, its stage-2 changes drop the device's ATC); the guest on its virtual one (its
  // own entries ask for ATS, its invalidations carry ATC invalidations the VMM forwards).
  void enable_ats(uint32_t rid) override {
    this->drv_.enable_ats(rid);
    guest_.enable_ats(driver_rid(rid));
  }
  driver::Status move_guest_page(uint64_t gpa, uint64_t pa, uint64_t bytes) override {
    return vm_.move_page(gpa, pa, bytes);
  }
  void bind() override {
    NativeLane::bind();
    guest_.mmio.bind(viommu_.mmio);
  }
  // The host driver, the VM's iommufd objects, the vIOMMU's devices, the guest driver.
  driver::Status boot() override {
    if (driver::Status st = this->drv_.init(); !st.ok) return st;
    if (driver::Status st = vm_.build(devices_, viommu_type()); !st.ok) return st;
    if (driver::Status st = connect_viommu(); !st.ok) return st;
    if (this->oracle_on_) guest_.set_oracle(&this->oracle_, vm_.guest_oracle_scope(devices_));
    return guest_.init();
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    this->iommu_.register_stats(reg, p + ".iommu");
    guest_.register_stats(reg, p + ".driver");
    this->drv_.register_stats(reg, p + ".host.driver");
    viommu_.register_stats(reg, p + ".vmm");
    vm_.iommufd().register_stats(reg, p + ".vmm.iommufd");
    vm_.ram().register_stats(reg, p + ".vmm.guest_ram");
    if (this->oracle_on_) this->oracle_.register_stats(reg, p + ".oracle");
  }
  void set_end_values(common::StatRegistry& reg, const std::string& p) const override {
    NativeLane::set_end_values(reg, p);
    if (const std::optional<uint64_t> n = this->drv_.nested_tags_in_use())
      reg.set_value(p + ".vmm.tags.host_ids", double(*n), "count",
                    "host cache tags (hDomIDs, VMIDs) the VM's nested domains use at the end (vmm.amd_domid, "
                    "vmm.arm_vmid)");
  }

 protected:
  // The vIOMMU object the VM gets (none: the vendor has no vIOMMU type upstream).
  virtual std::optional<driver::ViommuType> viommu_type() const = 0;
  // Tells the vIOMMU its iommufd objects and the guest's devices, once the VM is built.
  virtual driver::Status connect_viommu() = 0;
  // The guest driver's fault / event handler, once the VMM injected its interrupt.
  virtual void drain_guest_events() = 0;

  vmm::Vm vm_;
  VIommu viommu_;
  Driver guest_;
  std::vector<vmm::AssignedDevice> devices_;

 private:
  void event_thread() {
    for (;;) {
      while (!irq_pending_) sc_core::wait(irq_);
      irq_pending_ = false;
      handling_ = true;
      handle_events();
      handling_ = false;
      idle_.notify(sc_core::SC_ZERO_TIME);
    }
  }
  // The host driver reports a guest's records to the vEVENTQ, the VMM puts them in the
  // guest's fault log and injects the guest's interrupt, and the guest driver's handler
  // drains them through trapped registers.
  void handle_events() {
    if (this->events_recorded() == events_handled_) return;
    events_handled_ = this->events_recorded();
    // The interrupt comes once the newest record is written: a DMA's fault is recorded at
    // its own (annotated) time, which may be ahead of the workload's.
    common::wait_until(this->iommu_.last_event_written_ps());
    if (viommu_.host_event_interrupt(this->drv_)) drain_guest_events();
  }

  uint64_t events_handled_ = 0;   // host records written when the handler last ran
  bool irq_pending_ = false, handling_ = false;
  sc_core::sc_event irq_, idle_;
};

}  // namespace iommusim::platforms

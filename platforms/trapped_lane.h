// A vendor's trapped lane (vmm.paths = trapped, docs/vmm.md): its native lane (the models and
// host drivers, on the lane's memory) plus a VM whose guest runs the same driver against
// the VMM's emulated vIOMMUs, its stage 1 nested over the host's stage 2 through iommufd.
// The workload programs the guest drivers; DMAs carry physical IDs and reach the models.
//
// Per physical IOMMU (unit) the VM has devices behind, it has one nest parent of its IOAS,
// one vIOMMU object, one emulated vIOMMU and one guest driver instance (Linux binds a
// driver instance per IOMMU); a device's vDEVICE lives on its unit's vIOMMU, and the
// emulated vIOMMU forwards only to its own vIOMMU object, so a guest command reaches the
// unit it was issued to or nothing. A unit without the VM's devices has none of these (a
// VMM such as QEMU is given a vIOMMU per host IOMMU its devices sit behind): only its host
// driver runs there, and it is what unit_driver() gives for it.
//
// The vendor's lane file instantiates it with its native lane, its vIOMMU and its driver,
// and says which vIOMMU object the VM gets, how each vIOMMU learns its devices
// (connect_viommu) and how a unit's guest driver drains its fault log (drain_guest_events).
//
// Guest faults (docs/vmm.md, "Guest faults") take their whole way in the lane's event
// thread, beside the workload: a host's event interrupt wakes it (per unit with the VM's
// devices: the host's threaded IRQ handler, then the VMM's main loop, then the guest's
// handler).
#pragma once
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "platforms/iommu_lane.h"
#include "platforms/vmm/vm.h"

namespace iommusim::platforms {

// The guest's view of each endpoint: device k (the k-th endpoint) is the guest's ID k, so
// virtual and physical IDs differ; it sits behind the endpoint's unit.
inline std::vector<vmm::AssignedDevice> assigned_devices(const LaneSettings& s) {
  std::vector<vmm::AssignedDevice> d;
  for (size_t i = 0; i < s.endpoints.size(); ++i)
    d.push_back(vmm::AssignedDevice{s.endpoints[i].config.requester_id, i, 0, s.endpoints[i].iommu});
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
      : NativeLane(s, mc, host), vm_(*s.sim_memory, vm_layout(s), host_units()), devices_(assigned_devices(s)) {
    guests_.resize(this->units());
    for (unsigned k = 0; k < this->units(); ++k) {
      if (!has_devices(k)) continue;
      DriverConfig g = guest;
      g.memory = unit_pools(guest.memory, k, this->units());   // its slice of the guest table pool
      const std::string n = unit_name("", k, this->units());
      guests_[k] = std::make_unique<Guest>(s.name + viommu_name + n, s.name + "guest_driver" + n, vc, g, vm_,
                                           this->drv(k));
    }
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

  driver::IommuDriver& unit_driver(unsigned k) override {
    return guests_[k] ? static_cast<driver::IommuDriver&>(guest(k)) : this->drv(k);
  }
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
    const unsigned k = this->unit_of(rid);
    this->drv(k).enable_ats(rid);
    guest(k).enable_ats(driver_rid(rid));   // an endpoint's unit has the VM's devices
  }
  driver::Status move_guest_page(uint64_t gpa, uint64_t pa, uint64_t bytes) override {
    return vm_.move_page(gpa, pa, bytes);
  }
  void bind() override {
    NativeLane::bind();
    for (auto& g : guests_)
      if (g) g->drv.mmio.bind(g->viommu.mmio);
  }
  // The host drivers, the VM's iommufd objects, each vIOMMU's devices, the guest drivers.
  driver::Status boot() override {
    if (driver::Status st = NativeLane::boot(); !st.ok) return st;
    if (driver::Status st = vm_.build(devices_, viommu_type()); !st.ok) return st;
    for (unsigned k = 0; k < this->units(); ++k) {
      if (!guests_[k]) continue;
      if (driver::Status st = connect_viommu(k); !st.ok) return st;
      if (this->oracle_on_)
        guest(k).set_oracle(&this->oracle_, vm_.guest_oracle_scope(devices_, k, unit_space_base(k)));
      if (driver::Status st = guest(k).init(); !st.ok) return st;
    }
    return {};
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    const unsigned n = this->units();
    for (unsigned k = 0; k < n; ++k) {
      this->iommu(k).register_stats(reg, p + "." + unit_name("iommu", k, n));
      this->drv(k).register_stats(reg, p + ".host." + unit_name("driver", k, n));
      if (!guests_[k]) continue;
      guests_[k]->drv.register_stats(reg, p + "." + unit_name("driver", k, n));
      guests_[k]->viommu.register_stats(reg, p + "." + unit_name("vmm", k, n));
    }
    vm_.iommufd().register_stats(reg, p + ".vmm.iommufd");
    vm_.ram().register_stats(reg, p + ".vmm.guest_ram");
    if (this->oracle_on_) this->oracle_.register_stats(reg, p + ".oracle");
  }
  void set_end_values(common::StatRegistry& reg, const std::string& p) const override {
    NativeLane::set_end_values(reg, p);
    // Per unit with the VM's devices: each host IOMMU has its own tag space.
    for (unsigned k = 0; k < this->units(); ++k)
      if (const std::optional<uint64_t> n = this->drv(k).nested_tags_in_use(); n && guests_[k])
        reg.set_value(p + "." + unit_name("vmm", k, this->units()) + ".tags.host_ids", double(*n), "count",
                      "host cache tags (hDomIDs, VMIDs) the VM's nested domains use at the end (vmm.amd_domid, "
                      "vmm.arm_vmid)");
  }

 protected:
  // One unit's half of the VM: the VMM's emulated vIOMMU and the guest driver behind it.
  struct Guest {
    template <class VIommuConfig, class DriverConfig, class HostDriver>
    Guest(const std::string& viommu_name, const std::string& driver_name, const VIommuConfig& vc,
          const DriverConfig& dc, vmm::Vm& vm, HostDriver& host)
        : viommu(viommu_name.c_str(), vc, vm.ram(), vm.iommufd(), host), drv(driver_name.c_str(), dc, viommu, vm.ram()) {
      drv.set_trapping_doorbell(&viommu);
    }
    VIommu viommu;
    Driver drv;
  };
  // The vIOMMU object the VM gets per unit (none: the vendor has no vIOMMU type upstream).
  virtual std::optional<driver::ViommuType> viommu_type() const = 0;
  // Tells unit k's vIOMMU its iommufd objects and the guest's devices behind it, once the
  // VM is built.
  virtual driver::Status connect_viommu(unsigned k) = 0;
  // Unit k's guest driver's fault / event handler, once the VMM injected its interrupt.
  virtual void drain_guest_events(unsigned k) = 0;

  VIommu& viommu(unsigned k) { return guests_[k]->viommu; }
  Driver& guest(unsigned k) { return guests_[k]->drv; }

  vmm::Vm vm_;
  std::vector<vmm::AssignedDevice> devices_;
  std::vector<std::unique_ptr<Guest>> guests_;   // per unit; none where the VM has no device

 private:
  bool has_devices(unsigned k) const {
    return std::any_of(devices_.begin(), devices_.end(), [k](const vmm::AssignedDevice& d) { return d.unit == k; });
  }
  std::vector<vmm::HostIommu> host_units() {
    std::vector<vmm::HostIommu> u;
    for (unsigned k = 0; k < this->units(); ++k) u.push_back(vmm::HostIommu{&this->drv(k), &this->drv(k)});
    return u;
  }
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
  // Per unit with the VM's devices: its host driver reports a guest's records to the unit's
  // vEVENTQ, the VMM puts them in that vIOMMU's guest fault log and injects its interrupt,
  // and the guest driver's handler drains them through trapped registers.
  // A unit with no new record raised no interrupt: its handler does not run.
  void handle_events() {
    if (this->events_recorded() == events_handled_) return;
    events_handled_ = this->events_recorded();
    unit_events_handled_.resize(this->units());
    for (unsigned k = 0; k < this->units(); ++k) {
      const uint64_t recorded = this->unit_events_recorded(k);
      if (!guests_[k] || recorded == unit_events_handled_[k]) continue;
      unit_events_handled_[k] = recorded;
      // The interrupt comes once the unit's newest record is written: a DMA's fault is
      // recorded at its own (annotated) time, which may be ahead of the workload's.
      common::wait_until(this->iommu(k).last_event_written_ps());
      if (viommu(k).host_event_interrupt(this->drv(k))) drain_guest_events(k);
    }
  }

  uint64_t events_handled_ = 0;   // host records written (all units) when the handler last ran
  std::vector<uint64_t> unit_events_handled_;   // per unit, when its handler last ran
  bool irq_pending_ = false, handling_ = false;
  sc_core::sc_event irq_, idle_;
};

}  // namespace iommusim::platforms

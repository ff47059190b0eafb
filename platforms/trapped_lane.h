// A vendor's trapped lane (vmm.paths = trapped, docs/vmm.md): its native lane (the models and
// host drivers, on the lane's memory) plus vmm.vms VMs whose guests run the same driver
// against the VMM's emulated vIOMMUs, their stage 1 nested over the host's stage 2 through
// iommufd. The workload programs the guest drivers; DMAs carry physical IDs and reach the
// models.
//
// Several VMs (docs/vmm.md, "Several VMs"): each its own guest RAM (a host PA range of its
// own), iommufd context, nest parents, vIOMMUs, guest drivers, oracle space IDs and slice
// of the guest table pool; vmm.assign says which endpoint is which VM's device (whole: its
// RID, or one PASID of it: a work queue). Stats of VM v are under vm<v>. when there are
// several. On SMMUv3 and AMD a work queue has no vIOMMU translation (vmm::Vm): it is no
// device of the guest's vIOMMU, no guest driver programs it, its DMAs address GPAs.
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
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "platforms/iommu_lane.h"
#include "platforms/vmm/vm.h"

namespace iommusim::platforms {

// VM `vm`'s view of the endpoints vmm.assign gives it (by default every endpoint, device k
// being the guest's ID k, so virtual and physical IDs differ); each sits behind its
// endpoint's unit.
inline std::vector<vmm::AssignedDevice> assigned_devices(const LaneSettings& s, unsigned vm) {
  std::vector<vmm::AssignedDevice> d;
  for (const VmAssignment& a : vm_assignment(s.vmm, s.endpoints.size()))
    if (a.vm == vm) {
      const EndpointSettings& e = s.endpoints.at(a.endpoint);
      d.push_back(vmm::AssignedDevice{e.config.requester_id, a.virt_id, 0, e.iommu, a.pasid.has_value(),
                                      a.pasid.value_or(0)});
    }
  return d;
}

// VM `vm` of a trapped lane: guest RAM from platform.* (VM v's s.vm_ram_stride * v further
// on), its stage-2 leaves from platform.stage2_page_bytes, its own oracle space IDs, and the
// guest pages the stress workload moves.
inline vmm::VmLayout vm_layout(const LaneSettings& s, unsigned vm) {
  vmm::VmLayout l;
  l.ram_pa = s.guest_ram_pa + vm * s.vm_ram_stride;
  l.oracle_space_base += vm << 24;   // a VM's guest drivers use (unit << 20) apart below it
  l.ram_bytes = s.guest_ram_bytes;
  l.backing_page_bytes = s.stage2_page_bytes;
  l.movable_gpa = s.movable_gpa;
  l.movable_bytes = s.movable_bytes;
  return l;
}

// vmm.assign with a pasid on a lane that does not run work queues (yet): a config error
// naming the assignment, saying `why`.
inline void refuse_pasid_assignment(const LaneSettings& s, const std::string& why) {
  const std::vector<VmAssignment> assign = vm_assignment(s.vmm, s.endpoints.size());
  for (size_t i = 0; i < assign.size(); ++i)
    if (assign[i].pasid) throw ConfigError("vmm.assign[" + std::to_string(i) + "].pasid: " + why);
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
// vmm.completion and the host CPU's clock. A vmm.inject bug of the guest's commands is a
// config error on a vIOMMU that does not model them (only the vSMMU does);
// drop_host_flush is the VMM's own (vmm::Vm), on every trapped lane.
template <class VIommuConfig>
VIommuConfig viommu_config(const LaneSettings& s, const vmm::VmmCosts& costs, bool models_injected_bugs) {
  if (!models_injected_bugs && s.vmm.inject != vmm::VmmFault::None && s.vmm.inject != vmm::VmmFault::DropHostFlush)
    throw ConfigError("vmm.inject: the injected VMM bugs of the guest's commands are modelled on smmuv3@trapped only");
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
      : NativeLane(s, mc, host) {
    const unsigned V = s.vmm.vms, U = this->units();
    for (unsigned v = 0; v < V; ++v) {
      vms_.push_back(std::make_unique<VmPart>(*s.sim_memory, vm_layout(s, v), host_units(), assigned_devices(s, v)));
      VmPart& vm = *vms_.back();
      vm.vm.set_drop_host_flush(s.vmm.inject == vmm::VmmFault::DropHostFlush);
      vm.prefix = V > 1 ? "vm" + std::to_string(v) + "." : "";
      const std::string sc_prefix = s.name + (V > 1 ? "vm" + std::to_string(v) + "_" : "");
      vm.guests.resize(U);
      for (unsigned k = 0; k < U; ++k) {
        if (!vm.has_devices(k)) continue;
        DriverConfig g = guest;
        g.memory = unit_pools(guest.memory, v * U + k, V * U);   // its slice of the guest table pool
        const std::string n = unit_name("", k, U);
        vm.guests[k] = std::make_unique<Guest>(sc_prefix + viommu_name + n, sc_prefix + "guest_driver" + n, vc, g,
                                               vm.vm, this->drv(k));
      }
    }
    // The drivers the workload programs: VM 0's per unit (the host's where it has no
    // device), then every other VM's guest drivers.
    for (unsigned v = 0; v < V; ++v)
      for (unsigned k = 0; k < U; ++k) {
        Guest* g = vms_[v]->guests[k].get();
        if (!g && v > 0) continue;
        drivers_.push_back(g ? static_cast<driver::IommuDriver*>(&g->drv) : &this->drv(k));
        driver_names_.push_back(g ? vms_[v]->prefix + unit_name("driver", k, U) : "host." + unit_name("driver", k, U));
        driver_slot_[{v, k}] = unsigned(drivers_.size() - 1);
      }
    assignment_.resize(s.endpoints.size());
    for (const VmAssignment& a : vm_assignment(s.vmm, s.endpoints.size())) assignment_.at(a.endpoint) = a;
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

  // VM 0's driver of unit k (the host's where VM 0 has no device there).
  driver::IommuDriver& unit_driver(unsigned k) override { return *drivers_.at(k); }
  unsigned drivers() const override { return unsigned(drivers_.size()); }
  driver::IommuDriver& nth_driver(unsigned i) override { return *drivers_.at(i); }
  std::string driver_stats_name(unsigned i) const override { return driver_names_.at(i); }
  unsigned endpoint_driver(size_t ep) const override {
    return driver_slot_.at({assignment_.at(ep).vm, NativeLane::endpoint_driver(ep)});
  }
  uint32_t endpoint_driver_rid(size_t ep, uint32_t) const override { return uint32_t(assignment_.at(ep).virt_id); }
  // A work queue on a vendor whose VMM gives it no vIOMMU translation (vmm::Vm).
  bool endpoint_untranslated(size_t ep) const override {
    return assignment_.at(ep).pasid && vmm::Vm::untranslated_work_queues(viommu_type());
  }
  std::optional<uint32_t> endpoint_driver_pasid(size_t ep, std::optional<uint32_t> pasid) const override {
    return assignment_.at(ep).pasid ? std::nullopt : pasid;
  }
  bool guest_stage1() const override { return true; }
  uint32_t driver_rid(uint32_t rid) const override {
    for (const auto& vm : vms_)
      for (const vmm::AssignedDevice& d : vm->devices)
        if (d.rid == rid) return uint32_t(d.virt_id);
    return rid;
  }
  // The host enables ATS on the physical device (its nested entries may allow translated
  // requests, its stage-2 changes drop the device's ATC); the guest on its virtual one (its
  // own entries ask for ATS, its invalidations carry ATC invalidations the VMM forwards).
  void enable_ats(uint32_t rid) override {
    const unsigned k = this->unit_of(rid);
    this->drv(k).enable_ats(rid);
    for (auto& vm : vms_)   // the VM the device is assigned to has a guest driver on its unit
      if (vm->owns(rid) && !vm->untranslated(rid)) vm->guests[k]->drv.enable_ats(driver_rid(rid));
  }
  // The VMM of the VM the single-device workloads drive (endpoint 0's) moves its page.
  driver::Status move_guest_page(uint64_t gpa, uint64_t pa, uint64_t bytes) override {
    return vms_.at(assignment_.at(0).vm)->vm.move_page(gpa, pa, bytes);
  }
  driver::Status teardown_vm(unsigned vm) override { return vms_.at(vm)->vm.unmap_all(); }
  void bind() override {
    NativeLane::bind();
    for (auto& vm : vms_)
      for (auto& g : vm->guests)
        if (g) g->drv.mmio.bind(g->viommu.mmio);
  }
  // The host drivers, then per VM its iommufd objects, each vIOMMU's devices, the guest drivers.
  // An untranslated work queue is no device of the guest's vIOMMU.
  driver::Status boot() override {
    if (driver::Status st = NativeLane::boot(); !st.ok) return st;
    for (auto& vm : vms_) {
      if (this->oracle_on_) vm->vm.set_oracle(&this->oracle_);
      if (driver::Status st = vm->vm.build(vm->devices, viommu_type()); !st.ok) return st;
      std::vector<vmm::AssignedDevice> translated;
      for (const vmm::AssignedDevice& d : vm->devices)
        if (!d.untranslated) translated.push_back(d);
      for (unsigned k = 0; k < this->units(); ++k) {
        Guest* g = vm->guests[k].get();
        if (!g) continue;
        if (driver::Status st = connect_viommu(g->viommu, vm->vm, translated, k); !st.ok) return st;
        if (this->oracle_on_)
          g->drv.set_oracle(&this->oracle_, vm->vm.guest_oracle_scope(translated, k, unit_space_base(k)));
        if (driver::Status st = g->drv.init(); !st.ok) return st;
      }
    }
    return {};
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    const unsigned n = this->units();
    for (unsigned k = 0; k < n; ++k) {
      this->iommu(k).register_stats(reg, p + "." + unit_name("iommu", k, n));
      this->drv(k).register_stats(reg, p + ".host." + unit_name("driver", k, n));
    }
    for (const auto& vm : vms_) {
      const std::string q = p + "." + vm->prefix;
      for (unsigned k = 0; k < n; ++k) {
        if (!vm->guests[k]) continue;
        vm->guests[k]->drv.register_stats(reg, q + unit_name("driver", k, n));
        vm->guests[k]->viommu.register_stats(reg, q + unit_name("vmm", k, n));
      }
      vm->vm.iommufd().register_stats(reg, q + "vmm.iommufd");
      vm->vm.ram().register_stats(reg, q + "vmm.guest_ram");
      vm->vm.register_stats(reg, q + "vmm");
    }
    if (this->oracle_on_) this->oracle_.register_stats(reg, p + ".oracle");
  }
  void set_end_values(common::StatRegistry& reg, const std::string& p) const override {
    NativeLane::set_end_values(reg, p);
    // Per unit: each host IOMMU has its own tag space; the tags in use are every VM's, so
    // they are reported once, under the first VM with devices there.
    for (unsigned k = 0; k < this->units(); ++k) {
      const std::optional<uint64_t> n = this->drv(k).nested_tags_in_use();
      auto vm = std::find_if(vms_.begin(), vms_.end(), [k](const auto& m) { return m->guests[k] != nullptr; });
      if (n && vm != vms_.end())
        reg.set_value(p + "." + unit_name("vmm", k, this->units()) + ".tags.host_ids", double(*n), "count",
                      "host cache tags (hDomIDs, VMIDs) the VMs' nested domains use at the end (vmm.amd_domid, "
                      "vmm.arm_vmid)");
    }
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
  // One VM: its iommufd objects and RAM, its devices, and per unit its Guest.
  struct VmPart {
    VmPart(memory::SparseMemory& mem, const vmm::VmLayout& layout, std::vector<vmm::HostIommu> units,
           std::vector<vmm::AssignedDevice> d)
        : vm(mem, layout, std::move(units)), devices(std::move(d)) {}
    bool has_devices(unsigned k) const {
      return std::any_of(devices.begin(), devices.end(), [k](const vmm::AssignedDevice& d) { return d.unit == k; });
    }
    bool owns(uint32_t rid) const {
      return std::any_of(devices.begin(), devices.end(), [rid](const vmm::AssignedDevice& d) { return d.rid == rid; });
    }
    bool untranslated(uint32_t rid) const {
      return std::any_of(devices.begin(), devices.end(),
                         [rid](const vmm::AssignedDevice& d) { return d.rid == rid && d.untranslated; });
    }
    vmm::Vm vm;
    std::vector<vmm::AssignedDevice> devices;
    std::vector<std::unique_ptr<Guest>> guests;   // per unit; none where the VM has no device
    std::string prefix;                           // its stats' ("vm<v>." with several VMs)
  };
  // The vIOMMU object a VM gets per unit (none: the vendor has no vIOMMU type upstream).
  virtual std::optional<driver::ViommuType> viommu_type() const = 0;
  // Tells a VM's vIOMMU of unit k its iommufd objects and the guest's devices behind it,
  // once the VM is built.
  virtual driver::Status connect_viommu(VIommu& viommu, const vmm::Vm& vm,
                                        const std::vector<vmm::AssignedDevice>& devices, unsigned k) = 0;
  // A guest driver's fault / event handler, once the VMM injected its interrupt.
  virtual void drain_guest_events(Driver& guest) = 0;

  std::vector<std::unique_ptr<VmPart>> vms_;

 private:
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
  // Per unit with a VM's devices: its host driver reports a guest's records to the VM's
  // vEVENTQ of the unit, the VMM puts them in that vIOMMU's guest fault log and injects its
  // interrupt, and the guest driver's handler drains them through trapped registers. A
  // unit with no new record raised no interrupt: its handlers do not run.
  void handle_events() {
    if (this->events_recorded() == events_handled_) return;
    events_handled_ = this->events_recorded();
    unit_events_handled_.resize(this->units());
    for (unsigned k = 0; k < this->units(); ++k) {
      const uint64_t recorded = this->unit_events_recorded(k);
      if (recorded == unit_events_handled_[k]) continue;
      unit_events_handled_[k] = recorded;
      for (auto& vm : vms_) {
        Guest* g = vm->guests[k].get();
        if (!g) continue;
        // The interrupt comes once the unit's newest record is written: a DMA's fault is
        // recorded at its own (annotated) time, which may be ahead of the workload's.
        common::wait_until(this->iommu(k).last_event_written_ps());
        if (g->viommu.host_event_interrupt(this->drv(k))) drain_guest_events(g->drv);
      }
    }
  }

  std::vector<driver::IommuDriver*> drivers_;   // what nth_driver() gives, and their stats names
  std::vector<std::string> driver_names_;
  std::map<std::pair<unsigned, unsigned>, unsigned> driver_slot_;   // (VM, unit) -> drivers_ index
  std::vector<VmAssignment> assignment_;                          // by endpoint: its VM and IDs
  uint64_t events_handled_ = 0;   // host records written (all units) when the handler last ran
  std::vector<uint64_t> unit_events_handled_;   // per unit, when its handler last ran
  bool irq_pending_ = false, handling_ = false;
  sc_core::sc_event irq_, idle_;
};

}  // namespace iommusim::platforms

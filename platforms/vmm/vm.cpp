#include "platforms/vmm/vm.h"

#include <algorithm>

#include "models/common/bits.h"

namespace iommusim::vmm {

namespace {
constexpr uint32_t kRw = kIoasMapFixedIova | kIoasMapReadable | kIoasMapWriteable;
}  // namespace

Vm::Vm(memory::SparseMemory& host_memory, const VmLayout& layout, std::vector<HostIommu> units)
    : layout_(layout), hosts_(units), ram_(host_memory, layout.ram_pa, layout.ram_bytes), fd_(units),
      units_(unsigned(units.size())),
      parents_(units.size(), 0), viommus_(units.size(), 0) {
  fd_.set_backing_page_bytes(layout.backing_page_bytes);
}

driver::Status Vm::build(std::vector<AssignedDevice>& devices, std::optional<driver::ViommuType> type) {
  auto failed = [](const char* call, Errno e) {
    return driver::Status::fail(std::string("VMM: ") + call + " failed with " + errno_name(e));
  };
  if (devices.empty()) return driver::Status::fail("VMM: no device assigned to the VM");
  for (AssignedDevice& d : devices)
    if (Errno e = fd_.bind_device(d.rid, d.unit, &d.dev_id); e != Errno::Ok) return failed("VFIO_DEVICE_BIND_IOMMUFD", e);
  if (Errno e = fd_.ioas_alloc(0, &ioas_); e != Errno::Ok) return failed("IOMMU_IOAS_ALLOC", e);
  // Guest RAM in up to three parts: below the movable range, the range a page per area,
  // and above it.
  const uint64_t lo = std::min(layout_.movable_gpa, layout_.ram_bytes);
  const uint64_t hi = std::min(lo + layout_.movable_bytes, layout_.ram_bytes);
  auto map = [&](uint64_t gpa, uint64_t bytes) {
    return bytes ? fd_.ioas_map(ioas_, kRw, gpa, layout_.ram_pa + gpa, bytes) : Errno::Ok;
  };
  if (Errno e = map(0, lo); e != Errno::Ok) return failed("IOMMU_IOAS_MAP", e);
  for (uint64_t gpa = lo; gpa < hi; gpa += layout_.backing_page_bytes)
    if (Errno e = map(gpa, std::min(layout_.backing_page_bytes, hi - gpa)); e != Errno::Ok)
      return failed("IOMMU_IOAS_MAP", e);
  if (Errno e = map(hi, layout_.ram_bytes - hi); e != Errno::Ok) return failed("IOMMU_IOAS_MAP", e);
  for (unsigned k = 0; k < units_; ++k) {
    // The unit's first device: the one a VMM allocates the unit's parent and vIOMMU for.
    auto first = std::find_if(devices.begin(), devices.end(), [k](const AssignedDevice& d) { return d.unit == k; });
    if (first == devices.end()) continue;   // none of the VM's devices there: no parent, no vIOMMU
    if (Errno e = fd_.hwpt_alloc(kHwptAllocNestParent, first->dev_id, ioas_, driver::UserData{}, &parents_[k]);
        e != Errno::Ok)
      return failed("IOMMU_HWPT_ALLOC (nest parent)", e);
    if (!type) continue;
    if (Errno e = fd_.viommu_alloc(0, *type, first->dev_id, parents_[k], &viommus_[k]); e != Errno::Ok)
      return failed("IOMMU_VIOMMU_ALLOC", e);
  }
  if (!type) return {};
  for (AssignedDevice& d : devices) {
    uint32_t vdev = 0;
    if (Errno e = fd_.vdevice_alloc(viommus_[d.unit], d.dev_id, d.virt_id, &vdev); e != Errno::Ok)
      return failed("IOMMU_VDEVICE_ALLOC", e);
  }
  return {};
}

driver::Status Vm::unmap(uint64_t gpa, uint64_t bytes) {
  auto issued = [this] {
    uint64_t n = 0;
    for (const HostIommu& h : hosts_) n += h.driver->commands_issued();
    return n;
  };
  const uint64_t before = issued();
  uint64_t unmapped = 0;
  if (Errno e = fd_.ioas_unmap(ioas_, gpa, bytes, &unmapped); e != Errno::Ok)
    return driver::Status::fail(std::string("VMM: IOMMU_IOAS_UNMAP of GPA ") + common::hex(gpa) + " failed with " +
                                errno_name(e));
  host_commands_per_unmap_.record(issued() - before);
  return {};
}

driver::Status Vm::unmap_all() { return unmap(0, ~0ull); }

void Vm::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".host_commands_per_ioas_unmap", host_commands_per_unmap_, "count",
          "host queue entries (commands and barriers, every unit) per IOMMU_IOAS_UNMAP of the VM's memory: the "
          "stage-2 fan-out of a VMM change (page moves under stress, vmm.teardown_vm)");
}

driver::Status Vm::move_page(uint64_t gpa, uint64_t pa, uint64_t bytes) {
  if (driver::Status st = unmap(gpa, bytes); !st.ok) return st;
  if (Errno e = fd_.ioas_map(ioas_, kRw, gpa, pa, bytes); e != Errno::Ok)
    return driver::Status::fail(std::string("VMM: IOMMU_IOAS_MAP of GPA ") + common::hex(gpa) + " failed with " +
                                errno_name(e));
  return {};
}

common::OracleScope Vm::guest_oracle_scope(const std::vector<AssignedDevice>& devices, unsigned k,
                                           uint32_t host_space_base) const {
  common::OracleScope s;
  s.space_base = layout_.oracle_space_base + (k << 20);   // each guest driver's own IDs apart
  s.stage1_parent = host_space_base + fd_.domain_of(parents_.at(k));
  s.virtual_rids = true;
  for (const AssignedDevice& d : devices)
    if (d.unit == k) {
      s.rid_map[uint32_t(d.virt_id)] = d.rid;
      if (d.by_pasid) s.rid_pasid_map[uint32_t(d.virt_id)] = d.pasid;
    }
  return s;
}

}  // namespace iommusim::vmm

#include "platforms/vmm/vm.h"

#include <algorithm>

#include "models/common/bits.h"
#include "models/common/clock.h"

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
  const bool queues = untranslated_work_queues(type);
  gpa_space_on_ = oracle_ && queues &&
                  std::any_of(devices.begin(), devices.end(), [](const AssignedDevice& d) { return d.by_pasid; });
  if (gpa_space_on_) oracle_->add_space(gpa_space(), common::CorrectnessOracle::SpaceKind::Stage2);
  for (AssignedDevice& d : devices)
    if (Errno e = fd_.bind_device(d.rid, d.unit, &d.dev_id); e != Errno::Ok) return failed("VFIO_DEVICE_BIND_IOMMUFD", e);
  if (Errno e = fd_.ioas_alloc(0, &ioas_); e != Errno::Ok) return failed("IOMMU_IOAS_ALLOC", e);
  // Guest RAM in up to three parts: below the movable range, the range a page per area,
  // and above it.
  const uint64_t lo = std::min(layout_.movable_gpa, layout_.ram_bytes);
  const uint64_t hi = std::min(lo + layout_.movable_bytes, layout_.ram_bytes);
  auto map_ram = [&](uint64_t gpa, uint64_t bytes) { return bytes ? map(gpa, layout_.ram_pa + gpa, bytes) : Errno::Ok; };
  if (Errno e = map_ram(0, lo); e != Errno::Ok) return failed("IOMMU_IOAS_MAP", e);
  for (uint64_t gpa = lo; gpa < hi; gpa += layout_.backing_page_bytes)
    if (Errno e = map_ram(gpa, std::min(layout_.backing_page_bytes, hi - gpa)); e != Errno::Ok)
      return failed("IOMMU_IOAS_MAP", e);
  if (Errno e = map_ram(hi, layout_.ram_bytes - hi); e != Errno::Ok) return failed("IOMMU_IOAS_MAP", e);
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
  for (AssignedDevice& d : devices)
    if (d.by_pasid && queues)
      if (driver::Status st = attach_work_queue(d, type); !st.ok) return st;
  if (!type) return {};
  for (AssignedDevice& d : devices) {
    if (d.untranslated) continue;   // not behind the guest's vIOMMU: no virtual ID to translate
    uint32_t vdev = 0;
    if (Errno e = fd_.vdevice_alloc(viommus_[d.unit], d.dev_id, d.virt_id, &vdev); e != Errno::Ok)
      return failed("IOMMU_VDEVICE_ALLOC", e);
  }
  return {};
}

namespace {
// The guest's configuration "no stage 1" for a nested HWPT: what a vIOMMU's guest writes
// for a device it does not translate. ARM: a vSTE with V and Config = bypass (IHI 0070
// §5.2, STRTAB_STE_0_CFG_BYPASS 4: ste[0] = 1 | 4 << 1 = 0x9), as QEMU's bypass HWPT; AMD:
// a guest DTE with V and TV and no GV (48882 §2.2.2.1: bits 0 and 1, dte[0] = 0x3), guest
// DomainID 0 (Linux's guests never use it: amd_iommu_pdom_id_alloc starts at 1).
const driver::HwptArmSmmuv3 kBypassVste{{0x9, 0}};
const driver::HwptAmdGuest kNoGvGuestDte{{0x3, 0, 0, 0}};

driver::UserData no_stage1(driver::ViommuType type) {
  if (type == driver::ViommuType::Amd) return {driver::HwptDataType::AmdGuest, &kNoGvGuestDte, sizeof kNoGvGuestDte};
  return {driver::HwptDataType::ArmSmmuv3, &kBypassVste, sizeof kBypassVste};
}
}  // namespace

driver::Status Vm::attach_work_queue(AssignedDevice& d, std::optional<driver::ViommuType> type) {
  auto failed = [&](const char* call, Errno e) {
    return driver::Status::fail(std::string("VMM: ") + call + " for RID " + std::to_string(d.rid) + " PASID " +
                                std::to_string(d.pasid) + " failed with " + errno_name(e));
  };
  // What VT-d does: a PASID-capable nested HWPT on the vIOMMU, attached to (RID, PASID).
  // SMMUv3 refuses the allocation (arm_vsmmu_alloc_domain_nested: flags, EOPNOTSUPP); AMD
  // allocates it (amd_iommu_alloc_domain_nested ignores ALLOC_PASID) and refuses the attach
  // (a nested domain has no set_dev_pasid: iommu_attach_device_pasid, EOPNOTSUPP).
  uint32_t hwpt = 0;
  const char* call = "IOMMU_HWPT_ALLOC (nested, PASID)";
  Errno e = fd_.hwpt_alloc(kHwptAllocPasid, d.dev_id, viommus_.at(d.unit), no_stage1(*type), &hwpt);
  if (e == Errno::Ok) {
    call = "VFIO_DEVICE_ATTACH_PASID (nested)";
    e = fd_.attach(d.dev_id, hwpt, d.pasid);
    if (e != Errno::Ok)
      if (Errno de = fd_.destroy(hwpt); de != Errno::Ok) return failed("IOMMU_DESTROY (refused nested HWPT)", de);
  }
  if (e != Errno::Ok) {
    // A refusal of the nested PASID attach; anything else is the VMM's failure.
    if (e != Errno::OpNotSupp && e != Errno::Inval && e != Errno::Busy) return failed(call, e);
    pasid_refusal_errno_.record(uint64_t(e));
    // The fallback: a paging HWPT of the IOAS. Not the nest parent: it was allocated
    // without ALLOC_PASID (iommufd_hwpt_pasid_compat: EINVAL on a PASID), and neither
    // driver makes a PASID-capable nest parent (arm_smmu_domain_alloc_paging_flags and
    // amd_iommu_domain_alloc_paging_flags: NEST_PARENT | ALLOC_PASID is EOPNOTSUPP; an
    // SMMU PASID takes a stage-1 CD, an AMD one a v2 GCR3 entry).
    if (Errno a = fd_.hwpt_alloc(kHwptAllocPasid, d.dev_id, ioas_, driver::UserData{}, &hwpt); a != Errno::Ok)
      return failed("IOMMU_HWPT_ALLOC (paging, PASID)", a);
    if (Errno a = fd_.attach(d.dev_id, hwpt, d.pasid); a != Errno::Ok) return failed("VFIO_DEVICE_ATTACH_PASID", a);
    pasid_fallbacks_.inc();
  }
  d.untranslated = true;
  if (gpa_space_on_) oracle_->complete(oracle_->attach(d.rid, d.pasid, gpa_space()), common::now_ps());
  return {};
}

Errno Vm::map(uint64_t gpa, uint64_t pa, uint64_t bytes) {
  if (!gpa_space_on_) return fd_.ioas_map(ioas_, kRw, gpa, pa, bytes);
  // The host writes the queues' PTEs somewhere inside the call: until it returns a DMA may
  // find the new mapping or none. So the mapping is live from the call on, and a pending
  // change of it (same output and rights) permits the faults until the call returns.
  oracle_->map(gpa_space(), gpa, pa, bytes, common::Rights{});
  const common::CorrectnessOracle::ChangeId c = oracle_->change_rights(gpa_space(), gpa, bytes, common::Rights{});
  const Errno e = fd_.ioas_map(ioas_, kRw, gpa, pa, bytes);
  oracle_->complete(c, common::now_ps());
  return e;
}

driver::Status Vm::unmap(uint64_t gpa, uint64_t bytes) {
  auto issued = [this] {
    uint64_t n = 0;
    for (const HostIommu& h : hosts_) n += h.driver->commands_issued();
    return n;
  };
  const uint64_t before = issued();
  uint64_t unmapped = 0;
  // The VMM relies on the unmap once the ioctl returns (it frees or reuses the page): the
  // queues' GPA map changes then.
  const common::CorrectnessOracle::ChangeId c =
      gpa_space_on_ ? oracle_->unmap(gpa_space(), gpa, std::min(bytes, layout_.ram_bytes - gpa)) : 0;
  if (Errno e = fd_.ioas_unmap(ioas_, gpa, bytes, &unmapped, !drop_host_flush_); e != Errno::Ok)
    return driver::Status::fail(std::string("VMM: IOMMU_IOAS_UNMAP of GPA ") + common::hex(gpa) + " failed with " +
                                errno_name(e));
  if (c) oracle_->complete(c, common::now_ps());
  host_commands_per_unmap_.record(issued() - before);
  return {};
}

driver::Status Vm::unmap_all() {
  for (uint32_t viommu : viommus_) {
    if (!viommu) continue;
    for (uint32_t q : fd_.hw_queues_of(viommu))
      if (const Errno e = fd_.destroy(q); e != Errno::Ok)
        return driver::Status::fail("VMM: IOMMU_DESTROY of HW queue " + std::to_string(q) + " failed with " +
                                    errno_name(e));
  }
  return unmap(0, ~0ull);
}

void Vm::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".host_commands_per_ioas_unmap", host_commands_per_unmap_, "count",
          "host queue entries (commands and barriers, every unit) per IOMMU_IOAS_UNMAP of the VM's memory: the "
          "stage-2 fan-out of a VMM change (page moves under stress, vmm.teardown_vm)");
  reg.add(p + ".pasid_fallbacks", pasid_fallbacks_, "count",
          "work queues (vmm.assign pasid) the VMM attached to a paging HWPT of the VM's IOAS after iommufd refused "
          "the nested PASID attach (SMMUv3, AMD)");
  reg.add(p + ".pasid_refusal_errno", pasid_refusal_errno_, "errno",
          "the errno of each refused nested PASID attach (95 EOPNOTSUPP, 22 EINVAL, 16 EBUSY)");
}

driver::Status Vm::move_page(uint64_t gpa, uint64_t pa, uint64_t bytes) {
  if (driver::Status st = unmap(gpa, bytes); !st.ok) return st;
  if (Errno e = map(gpa, pa, bytes); e != Errno::Ok)
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

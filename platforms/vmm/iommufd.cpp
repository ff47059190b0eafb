#include "platforms/vmm/iommufd.h"

#include <algorithm>
#include <cstring>

namespace iommusim::vmm {

using driver::DomainKind;

const char* Iommufd::call_name(Call c) {
  switch (c) {
    case Call::BindDevice: return "bind_device";
    case Call::IoasAlloc: return "ioas_alloc";
    case Call::IoasMap: return "ioas_map";
    case Call::IoasUnmap: return "ioas_unmap";
    case Call::HwptAlloc: return "hwpt_alloc";
    case Call::ViommuAlloc: return "viommu_alloc";
    case Call::VdeviceAlloc: return "vdevice_alloc";
    case Call::HwptInvalidate: return "hwpt_invalidate";
    case Call::Attach: return "attach";
    case Call::Destroy: return "destroy";
    case Call::VeventqAlloc: return "veventq_alloc";
    case Call::VeventqRead: return "veventq_read";
    case Call::HwQueueAlloc: return "hw_queue_alloc";
    case Call::Count: break;
  }
  return "?";
}

Iommufd::Iommufd(std::vector<HostIommu> units) : units_(std::move(units)) {}

Errno Iommufd::done(Call c, Errno e) {
  CallStats& s = stats_[size_t(c)];
  s.calls.inc();
  if (e != Errno::Ok) {
    s.errors.inc();
    ++s.by_errno[size_t(e) % s.by_errno.size()];
  }
  return e;
}

uint64_t Iommufd::errors(Call c, Errno e) const { return stats_[size_t(c)].by_errno[size_t(e) % 128]; }

Iommufd::Object* Iommufd::get(uint32_t id, ObjType type, Errno* err) {
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second.type != type) {
    *err = Errno::NoEnt;
    return nullptr;
  }
  return &it->second;
}

uint32_t Iommufd::add(Object o) {
  uint32_t id = 1;   // xa_alloc with XA_FLAGS_ALLOC1: the lowest free index from 1
  for (const auto& [used, obj] : objects_) {
    if (used != id) break;
    ++id;
  }
  objects_.emplace(id, std::move(o));
  return id;
}

Errno Iommufd::bind_device(uint32_t rid, unsigned u, uint32_t* dev_id) {
  if (u >= units_.size()) return done(Call::BindDevice, Errno::NoDev);
  Object o;
  o.type = ObjType::Device;
  o.unit = u;
  o.rid = rid;
  *dev_id = add(std::move(o));
  return done(Call::BindDevice, Errno::Ok);
}

Errno Iommufd::ioas_alloc(uint32_t flags, uint32_t* ioas_id) {
  if (flags) return done(Call::IoasAlloc, Errno::OpNotSupp);   // iommufd_ioas_alloc_ioctl
  Object o;
  o.type = ObjType::Ioas;
  *ioas_id = add(std::move(o));
  return done(Call::IoasAlloc, Errno::Ok);
}

Errno Iommufd::map_area(const Object& hwpt, uint64_t iova, const Area& a) {
  // As iommu_map: the largest page size that the IOVA, the PA and the length allow, and
  // the pages backing guest RAM (set_backing_page_bytes).
  uint64_t page = 4096;
  for (uint64_t size : {1ull << 30, 1ull << 21})
    if (size <= backing_page_ && !(iova % size) && !(a.pa % size) && !(a.length % size)) { page = size; break; }
  driver::Prot prot;
  prot.read = a.flags & kIoasMapReadable;
  prot.write = a.flags & kIoasMapWriteable;
  return units_[hwpt.unit].driver->map(hwpt.domain, iova, a.pa, a.length, prot, page).ok ? Errno::Ok : Errno::NoMem;
}

Errno Iommufd::ioas_map(uint32_t ioas_id, uint32_t flags, uint64_t iova, uint64_t pa, uint64_t length) {
  // iommufd_ioas_map: an unknown flag is EOPNOTSUPP.
  if (flags & ~(kIoasMapFixedIova | kIoasMapWriteable | kIoasMapReadable)) return done(Call::IoasMap, Errno::OpNotSupp);
  Errno err = Errno::Ok;
  Object* ioas = get(ioas_id, ObjType::Ioas, &err);
  if (!ioas) return done(Call::IoasMap, err);
  // Model: the VMM names the IOVA (a GPA); iommufd's IOVA allocation is not modelled.
  if (!(flags & kIoasMapFixedIova)) return done(Call::IoasMap, Errno::Inval);
  // iopt_check_iova: unaligned (page size) or empty is EINVAL, past the end EOVERFLOW, a
  // range overlapping a mapped area EEXIST.
  if (!length || (iova | pa | length) % 4096) return done(Call::IoasMap, Errno::Inval);
  if (iova + (length - 1) < iova) return done(Call::IoasMap, Errno::Overflow);
  const uint64_t last = iova + (length - 1);
  auto next = ioas->areas.upper_bound(last);
  if (next != ioas->areas.begin()) {
    const auto& [start, a] = *std::prev(next);
    if (start + (a.length - 1) >= iova) return done(Call::IoasMap, Errno::Exist);
  }
  const Area area{pa, length, flags};
  for (uint32_t h : ioas->paging)
    if (Errno e = map_area(objects_.at(h), iova, area); e != Errno::Ok) return done(Call::IoasMap, e);
  ioas->areas.emplace(iova, area);
  return done(Call::IoasMap, Errno::Ok);
}

Errno Iommufd::hwpt_flush(uint32_t hwpt_id) {
  Errno err = Errno::Ok;
  const Object* hw = get(hwpt_id, ObjType::HwptPaging, &err);
  if (!hw) return err;
  return units_[hw->unit].driver->invalidate_domain(hw->domain).ok ? Errno::Ok : Errno::Io;
}

Errno Iommufd::ioas_unmap(uint32_t ioas_id, uint64_t iova, uint64_t length, uint64_t* unmapped, bool flush) {
  *unmapped = 0;
  Errno err = Errno::Ok;
  Object* ioas = get(ioas_id, ObjType::Ioas, &err);
  if (!ioas) return done(Call::IoasUnmap, err);
  const bool all = iova == 0 && length == ~0ull;
  if (!all && !length) return done(Call::IoasUnmap, Errno::Inval);
  const uint64_t last = all ? ~0ull : iova + (length - 1);
  if (last < iova) return done(Call::IoasUnmap, Errno::Overflow);
  // iopt_unmap_iova_range: only whole areas; one reaching outside the range is ENOENT.
  std::vector<uint64_t> hit;
  for (const auto& [start, a] : ioas->areas) {
    const uint64_t end = start + (a.length - 1);
    if (end < iova || start > last) continue;
    // An area a HW queue has pinned stays until the queue is destroyed (checked first).
    if (a.locks) return done(Call::IoasUnmap, Errno::Busy);
    if (start < iova || end > last) return done(Call::IoasUnmap, Errno::NoEnt);
    hit.push_back(start);
  }
  // iommufd_ioas_unmap: nothing unmapped is ENOENT (unmap-all of nothing succeeds).
  if (hit.empty()) return done(Call::IoasUnmap, all ? Errno::Ok : Errno::NoEnt);
  for (uint64_t start : hit) {
    const Area a = ioas->areas.at(start);
    for (uint32_t h : ioas->paging) {
      const Object& hw = objects_.at(h);
      driver::DriverBase& drv = *units_[hw.unit].driver;
      common::CorrectnessOracle::ChangeId change = 0;
      const driver::Status st = flush ? drv.unmap(hw.domain, start, a.length)
                                      : drv.unmap_deferred(hw.domain, start, a.length, &change);
      if (!st.ok) return done(Call::IoasUnmap, Errno::Io);
      // IOMMU_IOAS_UNMAP returns with the unmap complete: a host that skipped its flush
      // (vmm.inject = drop_host_flush) leaves stale translations the oracle must see now.
      if (change) drv.complete_deferred(change, common::now_ps());
    }
    ioas->areas.erase(start);
    *unmapped += a.length;
  }
  return done(Call::IoasUnmap, Errno::Ok);
}

Errno Iommufd::hwpt_alloc(uint32_t flags, uint32_t dev_id, uint32_t pt_id, const driver::UserData& data,
                          uint32_t* hwpt_id) {
  // iommufd_hwpt_alloc's own checks.
  if (flags & ~(kHwptAllocNestParent | kHwptAllocPasid)) return done(Call::HwptAlloc, Errno::OpNotSupp);
  const bool has_data = data.type != driver::HwptDataType::None;
  if (has_data != (data.len != 0)) return done(Call::HwptAlloc, Errno::Inval);
  if ((flags & kHwptAllocNestParent) && has_data) return done(Call::HwptAlloc, Errno::Inval);
  Errno err = Errno::Ok;
  const Object* dev = get(dev_id, ObjType::Device, &err);
  if (!dev) return done(Call::HwptAlloc, err);
  auto pt = objects_.find(pt_id);
  if (pt == objects_.end()) return done(Call::HwptAlloc, Errno::Inval);   // "pt_obj" lookup failure
  HostIommu& host = units_[dev->unit];
  Object o;
  o.unit = dev->unit;
  o.pasid_compat = flags & kHwptAllocPasid;   // hwpt->pasid_compat
  switch (pt->second.type) {
    case ObjType::Ioas: {
      // The driver's paging allocation takes no user data.
      if (has_data) return done(Call::HwptAlloc, Errno::OpNotSupp);
      o.type = ObjType::HwptPaging;
      o.ioas = pt_id;
      o.nest_parent = flags & kHwptAllocNestParent;
      std::string why;
      auto d = host.driver->create_domain(o.nest_parent ? DomainKind::Stage2 : DomainKind::Stage1, std::nullopt, &why);
      if (!d) return done(Call::HwptAlloc, Errno::NoMem);
      o.domain = *d;
      if (o.nest_parent) host.driver->mark_nest_parent(o.domain);
      for (const auto& [iova, a] : pt->second.areas)
        if (Errno e = map_area(o, iova, a); e != Errno::Ok) return done(Call::HwptAlloc, e);
      const uint32_t id = add(std::move(o));
      Object& ioas = objects_.at(pt_id);
      ioas.paging.push_back(id);
      ++ioas.users;
      *hwpt_id = id;
      return done(Call::HwptAlloc, Errno::Ok);
    }
    case ObjType::HwptPaging: {
      // iommufd_hwpt_nested_alloc: a flag other than ALLOC_PASID (NEST_PARENT), no data or a
      // driver without domain_alloc_nested is EOPNOTSUPP; then a parent that is not a nest
      // parent (or, here, is on another IOMMU) EINVAL; then the driver's own checks.
      if ((flags & ~kHwptAllocPasid) || !has_data || !host.nesting->nests_on_parent())
        return done(Call::HwptAlloc, Errno::OpNotSupp);
      if (!pt->second.nest_parent || pt->second.unit != dev->unit) return done(Call::HwptAlloc, Errno::Inval);
      if (Errno e = host.nesting->alloc_nested_on_parent(pt->second.domain, flags, data, &o.domain); e != Errno::Ok)
        return done(Call::HwptAlloc, e);
      o.type = ObjType::HwptNested;
      o.parent = pt_id;
      ++pt->second.users;
      break;
    }
    case ObjType::Viommu: {
      // iommufd_viommu_alloc_hwpt_nested: a flag other than ALLOC_PASID is EOPNOTSUPP; the
      // driver sees ALLOC_PASID (arm_vsmmu_alloc_domain_nested refuses it too).
      if (flags & ~kHwptAllocPasid) return done(Call::HwptAlloc, Errno::OpNotSupp);
      // iommufd_hwpt_alloc: a device behind another IOMMU than the vIOMMU's is EINVAL.
      if (pt->second.unit != dev->unit) return done(Call::HwptAlloc, Errno::Inval);
      if (Errno e = host.nesting->alloc_nested(pt->second.handle, flags, data, &o.domain); e != Errno::Ok)
        return done(Call::HwptAlloc, e);
      o.type = ObjType::HwptNested;
      o.parent = pt->second.parent;   // held through the vIOMMU
      o.viommu = pt_id;
      ++pt->second.users;
      break;
    }
    default:
      return done(Call::HwptAlloc, Errno::Inval);
  }
  *hwpt_id = add(std::move(o));
  return done(Call::HwptAlloc, Errno::Ok);
}

Errno Iommufd::viommu_alloc(uint32_t flags, driver::ViommuType type, uint32_t dev_id, uint32_t hwpt_id,
                            uint32_t* viommu_id) {
  // iommufd_viommu_alloc_ioctl
  if (flags || type == driver::ViommuType::Default) return done(Call::ViommuAlloc, Errno::OpNotSupp);
  Errno err = Errno::Ok;
  const Object* dev = get(dev_id, ObjType::Device, &err);
  if (!dev) return done(Call::ViommuAlloc, err);
  if (!units_[dev->unit].nesting->supports_viommu(type)) return done(Call::ViommuAlloc, Errno::OpNotSupp);
  Object* parent = get(hwpt_id, ObjType::HwptPaging, &err);
  if (!parent) return done(Call::ViommuAlloc, err);
  if (!parent->nest_parent) return done(Call::ViommuAlloc, Errno::Inval);
  Object o;
  o.type = ObjType::Viommu;
  o.unit = dev->unit;
  o.parent = hwpt_id;
  // The driver's viommu_init: a parent on another IOMMU is EINVAL there (arm_vsmmu_init).
  if (parent->unit != dev->unit) return done(Call::ViommuAlloc, Errno::Inval);
  if (Errno e = units_[dev->unit].nesting->viommu_init(type, parent->domain, &o.handle); e != Errno::Ok)
    return done(Call::ViommuAlloc, e);
  ++parent->users;
  const driver::ViommuHandle handle = o.handle;
  *viommu_id = add(std::move(o));
  units_[dev->unit].nesting->set_event_sink(handle, this, *viommu_id);
  return done(Call::ViommuAlloc, Errno::Ok);
}

Errno Iommufd::vdevice_alloc(uint32_t viommu_id, uint32_t dev_id, uint64_t virt_id, uint32_t* vdevice_id) {
  // iommufd_vdevice_alloc_ioctl
  Errno err = Errno::Ok;
  Object* v = get(viommu_id, ObjType::Viommu, &err);
  if (!v) return done(Call::VdeviceAlloc, err);
  Object* dev = get(dev_id, ObjType::Device, &err);
  if (!dev) return done(Call::VdeviceAlloc, err);
  if (v->unit != dev->unit) return done(Call::VdeviceAlloc, Errno::Inval);
  if (dev->vdevice) return done(Call::VdeviceAlloc, Errno::Exist);        // idev->vdev
  if (v->vdevs.count(virt_id)) return done(Call::VdeviceAlloc, Errno::Exist);   // xa_cmpxchg
  if (Errno e = units_[v->unit].nesting->set_vdevice(v->handle, virt_id, dev->rid); e != Errno::Ok)
    return done(Call::VdeviceAlloc, e);
  Object o;
  o.type = ObjType::Vdevice;
  o.unit = v->unit;
  o.viommu = viommu_id;
  o.dev = dev_id;
  o.virt_id = virt_id;
  const uint32_t id = add(std::move(o));   // a std::map insert: v and dev stay valid
  v->vdevs[virt_id] = id;
  ++v->users;
  dev->vdevice = id;
  ++dev->users;
  *vdevice_id = id;
  return done(Call::VdeviceAlloc, Errno::Ok);
}

Errno Iommufd::hwpt_invalidate(uint32_t id, driver::InvalidateDataType type, const void* entries, uint32_t entry_len,
                               uint32_t* entry_num) {
  // iommufd_hwpt_invalidate: entries without a buffer or a length are EINVAL; the handled
  // count is 0 on any error before the driver.
  const uint32_t n = *entry_num;
  *entry_num = 0;
  if (n && (!entries || !entry_len)) return done(Call::HwptInvalidate, Errno::Inval);
  auto it = objects_.find(id);
  if (it == objects_.end()) return done(Call::HwptInvalidate, Errno::NoEnt);
  const Object& o = it->second;
  if (o.type == ObjType::Viommu) {
    *entry_num = n;
    return done(Call::HwptInvalidate, units_[o.unit].nesting->cache_invalidate(o.handle, type, entries, entry_len, entry_num));
  }
  // A HWPT_NESTED: its domain's cache_invalidate_user (VT-d's ranges; the SMMU's nested
  // domains have none, arm_smmu_nested_ops: EOPNOTSUPP).
  if (o.type == ObjType::HwptNested) {
    *entry_num = n;
    return done(Call::HwptInvalidate,
                units_[o.unit].nesting->cache_invalidate_hwpt(o.domain, type, entries, entry_len, entry_num));
  }
  return done(Call::HwptInvalidate, Errno::Inval);
}

Errno Iommufd::attach(uint32_t dev_id, uint32_t pt_id, std::optional<uint32_t> pasid) {
  Errno err = Errno::Ok;
  Object* dev = get(dev_id, ObjType::Device, &err);
  if (!dev) return done(Call::Attach, err);
  auto it = objects_.find(pt_id);
  if (it == objects_.end()) return done(Call::Attach, Errno::NoEnt);
  Object& pt = it->second;
  if (pt.type != ObjType::HwptPaging && pt.type != ObjType::HwptNested) return done(Call::Attach, Errno::Inval);
  if (pt.unit != dev->unit) return done(Call::Attach, Errno::Inval);   // a domain of another IOMMU
  // iommu_attach_device_pasid: IOMMU_NO_PASID, or a PASID beyond the device's width, is EINVAL.
  if (pasid && (*pasid == kNoPasid || (*pasid >> kPasidBits))) return done(Call::Attach, Errno::Inval);
  // iommufd_hwpt_pasid_compat: a PASID only on a HWPT allocated with ALLOC_PASID, and only
  // while the RID's HWPT is one too; the RID only on such a HWPT while PASIDs are attached.
  if (pasid) {
    if (!pt.pasid_compat || (dev->attached && !objects_.at(dev->attached).pasid_compat))
      return done(Call::Attach, Errno::Inval);
  } else if (!pt.pasid_compat && !dev->pasids.empty()) {
    return done(Call::Attach, Errno::Inval);
  }
  HostIommu& host = units_[dev->unit];
  if (pt.type == ObjType::HwptNested) {
    const Errno e = pasid ? host.nesting->attach_nested_pasid(dev->rid, *pasid, pt.domain)
                          : host.nesting->attach_nested(dev->rid, pt.domain);
    if (e != Errno::Ok) return done(Call::Attach, e);
  } else if (!host.driver->attach(dev->rid, pasid, pt.domain).ok) {
    return done(Call::Attach, Errno::Inval);   // e.g. a stage-2 domain on an SMMU PASID
  }
  uint32_t& slot = pasid ? dev->pasids[*pasid] : dev->attached;
  if (slot) --objects_.at(slot).users;
  slot = pt_id;
  ++pt.users;
  return done(Call::Attach, Errno::Ok);
}

uint32_t Iommufd::attached_to(uint32_t dev_id, std::optional<uint32_t> pasid) const {
  const Object& dev = objects_.at(dev_id);
  if (!pasid) return dev.attached;
  auto it = dev.pasids.find(*pasid);
  return it == dev.pasids.end() ? 0 : it->second;
}

Errno Iommufd::destroy(uint32_t id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return done(Call::Destroy, Errno::NoEnt);
  const Object o = it->second;
  if (o.users) return done(Call::Destroy, Errno::Busy);   // iommufd_object_remove
  switch (o.type) {
    case ObjType::HwptPaging: {
      Object& ioas = objects_.at(o.ioas);
      ioas.paging.erase(std::find(ioas.paging.begin(), ioas.paging.end(), id));
      --ioas.users;
      break;
    }
    case ObjType::HwptNested:
      --objects_.at(o.viommu ? o.viommu : o.parent).users;
      units_[o.unit].nesting->free_nested(o.domain);
      break;
    case ObjType::Viommu:
      units_[o.unit].nesting->set_event_sink(o.handle, nullptr, id);
      units_[o.unit].nesting->viommu_destroy(o.handle);
      --objects_.at(o.parent).users;
      break;
    case ObjType::Veventq: {   // iommufd_veventq_abort: its events go, the vIOMMU is free
      Object& v = objects_.at(o.viommu);
      v.veventqs[*veventq_slot(o.veventq_type)] = 0;
      if (v.type == ObjType::HwptPaging) units_[v.unit].nesting->set_parent_event_sink(v.domain, nullptr, o.viommu);
      --v.users;
      break;
    }
    case ObjType::HwQueue: {   // the driver's destroy, then the vIOMMU (and the queue before it) are free
      Object& v = objects_.at(o.viommu);
      units_[v.unit].nesting->hw_queue_destroy(v.handle, o.index);
      Object& ioas = objects_.at(o.ioas);
      for (uint64_t start : o.pinned) --ioas.areas.at(start).locks;
      --v.users;
      if (o.prev) --objects_.at(o.prev).users;
      break;
    }
    case ObjType::Vdevice: {
      Object& v = objects_.at(o.viommu);
      units_[v.unit].nesting->set_vdevice(v.handle, o.virt_id, std::nullopt);
      v.vdevs.erase(o.virt_id);
      --v.users;
      Object& dev = objects_.at(o.dev);
      dev.vdevice = 0;
      --dev.users;
      break;
    }
    default:
      break;
  }
  objects_.erase(id);
  return done(Call::Destroy, Errno::Ok);
}

std::optional<size_t> Iommufd::veventq_slot(driver::VeventqType t) {
  switch (t) {
    case driver::VeventqType::ArmSmmuv3: return 1;
    case driver::VeventqType::Tegra241Cmdqv: return 2;
    case driver::VeventqType::VtdExt: return 3;
    case driver::VeventqType::AmdExt: return 4;
    default: return std::nullopt;
  }
}

Iommufd::Object* Iommufd::veventq_owner(uint32_t id, driver::VeventqType t) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return nullptr;
  Object& o = it->second;
  if (o.type == ObjType::Viommu) return &o;
  // MODEL EXTENSION: VT-d's vEVENTQ hangs on the nest parent (VT-d has no vIOMMU type).
  const bool vtd_parent = t == driver::VeventqType::VtdExt && o.type == ObjType::HwptPaging && o.nest_parent;
  return vtd_parent ? &o : nullptr;
}

Errno Iommufd::veventq_alloc(uint32_t flags, uint32_t viommu_id, driver::VeventqType type, uint32_t depth,
                             uint32_t* veventq_id) {
  // iommufd_veventq_alloc: flags (or __reserved) or type DEFAULT is EOPNOTSUPP, depth 0
  // EINVAL, then an unknown vIOMMU ENOENT, a second queue of the type EEXIST. Linux bounds
  // neither the depth (a u32) nor the type against the vIOMMU's; a type outside the uAPI
  // enum and the model's extensions is EOPNOTSUPP here (no driver would report it).
  const std::optional<size_t> slot = veventq_slot(type);
  if (flags || !slot) return done(Call::VeventqAlloc, Errno::OpNotSupp);
  const size_t t = *slot;
  if (!depth) return done(Call::VeventqAlloc, Errno::Inval);
  Object* v = veventq_owner(viommu_id, type);
  if (!v) return done(Call::VeventqAlloc, Errno::NoEnt);
  if (v->veventqs[t]) return done(Call::VeventqAlloc, Errno::Exist);
  Object o;
  o.type = ObjType::Veventq;
  o.unit = v->unit;
  o.viommu = viommu_id;
  o.veventq_type = type;
  o.depth = depth;
  const uint32_t id = add(std::move(o));   // a std::map insert: v stays valid
  v->veventqs[t] = id;
  ++v->users;   // the vIOMMU is EBUSY to destroy while its vEVENTQ exists
  if (v->type == ObjType::HwptPaging) units_[v->unit].nesting->set_parent_event_sink(v->domain, this, viommu_id);
  *veventq_id = id;
  return done(Call::VeventqAlloc, Errno::Ok);
}

Errno Iommufd::hw_queue_alloc(uint32_t flags, uint32_t viommu_id, driver::HwQueueType type, uint32_t index,
                              uint64_t iova, uint64_t length, uint32_t* hw_queue_id) {
  // iommufd_hw_queue_alloc_ioctl: flags or type DEFAULT EOPNOTSUPP, length 0 EINVAL, an
  // IOVA range past 2^64 EOVERFLOW, an unknown vIOMMU ENOENT, a type the vIOMMU has no
  // queues of EOPNOTSUPP.
  if (flags || type == driver::HwQueueType::Default) return done(Call::HwQueueAlloc, Errno::OpNotSupp);
  if (!length) return done(Call::HwQueueAlloc, Errno::Inval);
  if (iova + (length - 1) < iova) return done(Call::HwQueueAlloc, Errno::Overflow);
  Errno err = Errno::Ok;
  Object* v = get(viommu_id, ObjType::Viommu, &err);
  if (!v) return done(Call::HwQueueAlloc, err);
  driver::NestingOps& ops = *units_[v->unit].nesting;
  if (!ops.supports_hw_queue(v->handle, type)) return done(Call::HwQueueAlloc, Errno::OpNotSupp);
  // iommufd_hw_queue_alloc_phys: pin every page of the range through the nest parent's
  // IOAS (an unmapped one fails the pin), then check them physically contiguous (the
  // hardware reads by PA).
  const uint32_t ioas_id = objects_.at(v->parent).ioas;
  Object& ioas = objects_.at(ioas_id);
  constexpr uint64_t kPage = 4096;
  const uint64_t first = iova & ~(kPage - 1);
  auto pa_of = [&ioas](uint64_t page) -> std::optional<uint64_t> {
    auto a = ioas.areas.upper_bound(page);
    if (a == ioas.areas.begin()) return std::nullopt;
    --a;
    if (page >= a->first + a->second.length) return std::nullopt;
    return a->second.pa + (page - a->first);
  };
  // By page index from the first to the last byte's: a range ending at 2^64 must not wrap.
  const uint64_t pages = ((iova + (length - 1)) & ~(kPage - 1)) / kPage - first / kPage + 1;
  for (uint64_t i = 0; i < pages; ++i)
    if (!pa_of(first + i * kPage)) return done(Call::HwQueueAlloc, Errno::NoEnt);
  const uint64_t first_pa = *pa_of(first);
  for (uint64_t i = 1; i < pages; ++i)
    if (*pa_of(first + i * kPage) != first_pa + i * kPage) return done(Call::HwQueueAlloc, Errno::Fault);
  const uint64_t base_pa = first_pa + (iova - first);
  if (Errno e = ops.hw_queue_init_phys(v->handle, type, index, base_pa, length); e != Errno::Ok)
    return done(Call::HwQueueAlloc, e);
  Object o;
  o.type = ObjType::HwQueue;
  o.unit = v->unit;
  o.viommu = viommu_id;
  o.index = index;
  // iopt_pin_pages with lock_area: the areas under the queue cannot be unmapped while it lives.
  o.ioas = ioas_id;
  for (auto a = std::prev(ioas.areas.upper_bound(first)); a != ioas.areas.end() && a->first <= iova + (length - 1); ++a) {
    ++a->second.locks;
    o.pinned.push_back(a->first);
  }
  // iommufd_hw_queue_depend: the queue of index - 1 stays until this one is destroyed.
  for (auto& [id, q] : objects_)
    if (index && q.type == ObjType::HwQueue && q.viommu == viommu_id && q.index == index - 1) {
      o.prev = id;
      ++q.users;
    }
  ++v->users;
  *hw_queue_id = add(std::move(o));   // a std::map insert: v stays valid
  return done(Call::HwQueueAlloc, Errno::Ok);
}

std::vector<uint32_t> Iommufd::hw_queues_of(uint32_t viommu_id) const {
  std::vector<std::pair<uint32_t, uint32_t>> by_index;
  for (const auto& [id, o] : objects_)
    if (o.type == ObjType::HwQueue && o.viommu == viommu_id) by_index.emplace_back(o.index, id);
  std::sort(by_index.rbegin(), by_index.rend());
  std::vector<uint32_t> ids;
  for (const auto& [index, id] : by_index) ids.push_back(id);
  return ids;
}

Errno Iommufd::report_event(uint32_t viommu, driver::VeventqType type, const void* data, uint32_t len,
                            uint64_t recorded_ps) {
  // iommufd_viommu_report_event: no vEVENTQ of the type is EOPNOTSUPP. A full queue takes
  // the lost-events header instead; any new entry first removes that header when it is
  // last, so it is never followed and carries the newest sequence (iommufd_vevent_handler).
  const std::optional<size_t> slot = veventq_slot(type);
  const Object* owner = slot ? veventq_owner(viommu, type) : nullptr;
  if (!owner || !owner->veventqs[*slot]) return Errno::OpNotSupp;
  Object& q = objects_.at(owner->veventqs[*slot]);
  if (!q.deliver.empty() && (q.deliver.back().header.flags & kVeventqFlagLostEvents)) q.deliver.pop_back();
  Vevent e;
  if (q.num_events == q.depth) {
    e.header.flags = kVeventqFlagLostEvents;
  } else {
    std::memcpy(e.evt.data(), data, std::min<size_t>(len, sizeof e.evt));
    e.recorded_ps = recorded_ps;
    ++q.num_events;
  }
  e.header.sequence = q.sequence;
  q.sequence = (q.sequence + 1) & 0x7FFFFFFFu;   // INT_MAX
  q.deliver.push_back(e);
  return Errno::Ok;
}

Errno Iommufd::veventq_read(uint32_t veventq_id, Vevent* out, uint32_t max, uint32_t* n) {
  *n = 0;
  Errno err = Errno::Ok;
  Object* q = get(veventq_id, ObjType::Veventq, &err);
  if (!q) return done(Call::VeventqRead, err);
  // iommufd_veventq_fops_read: whole entries, oldest first, while they fit.
  while (*n < max && !q->deliver.empty()) {
    out[(*n)++] = q->deliver.front();
    if (!(q->deliver.front().header.flags & kVeventqFlagLostEvents)) --q->num_events;
    q->deliver.pop_front();
  }
  return done(Call::VeventqRead, Errno::Ok);
}

void Iommufd::register_stats(common::StatRegistry& reg, const std::string& prefix) const {
  for (size_t c = 0; c < size_t(Call::Count); ++c) {
    const std::string p = prefix + "." + call_name(Call(c));
    reg.add(p + ".calls", stats_[c].calls, "count", std::string(call_name(Call(c))) + " calls");
    reg.add(p + ".errors", stats_[c].errors, "count", std::string(call_name(Call(c))) + " calls that failed");
  }
}

}  // namespace iommusim::vmm

#include "platforms/driver/virtio_iommu_driver.h"

#include "models/common/bits.h"

namespace iommusim::driver {

namespace vi = virtio_iommu;

namespace {
// virtio-mmio register offsets (virtio spec v1.2, "MMIO Device Register Layout").
constexpr uint64_t kMagic = 0x000, kDeviceId = 0x008, kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014,
                   kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034,
                   kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050, kStatus = 0x070,
                   kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
                   kQueueDeviceLow = 0x0A0, kQueueDeviceHigh = 0x0A4, kConfig = 0x100;
constexpr uint32_t kStatusAcknowledge = 1, kStatusDriver = 2, kStatusDriverOk = 4, kStatusFeaturesOk = 8;
constexpr uint64_t kSlotBytes = 64;   // a request buffer: body (<= 40 bytes but PROBE's) and tail
uint64_t now_ps() { return common::to_ps(sc_core::sc_time_stamp()); }
}  // namespace

VirtioIommuDriver::VirtioIommuDriver(sc_core::sc_module_name name, const VirtioIommuDriverConfig& cfg,
                                     DriverMemoryRef mem)
    : DriverBase(name, cfg.timing, cfg.memory, mem), cfg_(cfg) {}

Status VirtioIommuDriver::init() {
  if (reg_read(kMagic) != 0x74726976 || reg_read(kDeviceId) != 23)
    return Status::fail("virtio-iommu: no virtio-mmio IOMMU device (magic or device ID)");
  reg_write(kStatus, kStatusAcknowledge | kStatusDriver);
  // Features: the device's, of those this driver knows (Linux virtio_iommu_drv.feature_table).
  const uint64_t known = (1ull << vi::kFVersion1) | (1ull << vi::kFInputRange) | (1ull << vi::kFDomainRange) |
                         (1ull << vi::kFMapUnmap) | (1ull << vi::kFProbe) | (1ull << vi::kFBypassConfig);
  uint64_t offered = 0;
  for (uint32_t sel = 0; sel < 2; ++sel) {
    reg_write(kDeviceFeaturesSel, sel);
    offered |= uint64_t(reg_read(kDeviceFeatures)) << (32 * sel);
  }
  if (!(offered >> vi::kFMapUnmap & 1)) return Status::fail("virtio-iommu: the device lacks VIRTIO_IOMMU_F_MAP_UNMAP");
  const uint64_t accepted = offered & known;
  for (uint32_t sel = 0; sel < 2; ++sel) {
    reg_write(kDriverFeaturesSel, sel);
    reg_write(kDriverFeatures, uint32_t(accepted >> (32 * sel)));
  }
  reg_write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  probe_size_ = accepted >> vi::kFProbe & 1 ? reg_read(kConfig + 32) : 0;
  // The request queue at the device's size, its buffers after it.
  reg_write(kQueueSel, 0);
  const uint32_t n = reg_read(kQueueNumMax);
  if (n == 0 || n > virtq::kMaxSize || (n & (n - 1))) return Status::fail("virtio-iommu: bad QueueNumMax " + std::to_string(n));
  const virtq::Layout probe = virtq::Layout::contiguous(0, uint16_t(n));
  const uint64_t base = alloc_host(probe.total_bytes(), 4096);
  buffers_ = alloc_host(kSlotBytes * n, 64);
  probe_buffer_ = probe_size_ ? alloc_host(vi::kProbeBody + probe_size_ + vi::kTailBytes, 64) : 0;
  if (!base || !buffers_ || (probe_size_ && !probe_buffer_))
    return Status::fail("virtio-iommu: driver memory exhausted for the request queue (platform.guest_table_pool_bytes)");
  const virtq::Layout l = virtq::Layout::contiguous(base, uint16_t(n));
  vq_ = std::make_unique<virtq::DriverSide>(memory_view(), l);
  slots_.assign(n, Slot{});
  reg_write(kQueueNum, n);
  reg_write(kQueueDescLow, uint32_t(l.desc));
  reg_write(kQueueDescHigh, uint32_t(l.desc >> 32));
  reg_write(kQueueDriverLow, uint32_t(l.avail));
  reg_write(kQueueDriverHigh, uint32_t(l.avail >> 32));
  reg_write(kQueueDeviceLow, uint32_t(l.used));
  reg_write(kQueueDeviceHigh, uint32_t(l.used >> 32));
  reg_write(kQueueReady, 1);
  reg_write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  // The oracle's guest RAM: GPA -> PA, the parent of every domain's space.
  oracle_.add_space(kRamSpace, common::CorrectnessOracle::SpaceKind::Stage2, 0);
  if (cfg_.ram_bytes) oracle_.map(kRamSpace, 0, cfg_.ram_pa, cfg_.ram_bytes, common::Rights{});
  return {};
}

std::unique_ptr<DriverBase::Domain> VirtioIommuDriver::make_domain(DomainKind kind, const Domain*, std::string* why) {
  if (kind != DomainKind::Stage1) {
    if (why) *why = "virtio-iommu domains are single-stage (the host owns the tables)";
    return nullptr;
  }
  return std::make_unique<Domain>();   // no format: no tables here
}

Status VirtioIommuDriver::add_req(const vi::Request& r, uint32_t writable, uint64_t* lock_ps) {
  // request_lock for the add (another CPU's sync holds it while it polls).
  const uint64_t asked = now_ps();
  const uint64_t ticket = next_ticket_++;
  while (serving_ != ticket) sc_core::wait(lock_released_);
  if (lock_ps) *lock_ps += now_ps() - asked;
  struct Unlock {
    VirtioIommuDriver& d;
    ~Unlock() { ++d.serving_; d.lock_released_.notify(sc_core::SC_ZERO_TIME); }
  } unlock{*this};
  // -ENOSPC: sync what is queued, then retry (the lock stays held, as Linux's spinlock).
  while (vq_->free_descriptors() < 2) {
    full_syncs_.inc();
    uint64_t t_doorbell = 0;
    if (Status s = kick_and_wait(&t_doorbell); !s.ok) return s;
  }
  // The body and tail in the buffer of the descriptor the chain will start with.
  const bool probe = r.type == vi::ReqType::Probe;
  const uint16_t head = vq_->next_head();
  const uint64_t buf = probe ? probe_buffer_ : buffers_ + kSlotBytes * head;
  uint8_t body[vi::kMaxBody];
  const size_t n = vi::encode(r, body);
  memory_view().write(buf, body, n);
  const virtq::Buffer out{buf, uint32_t(n)}, in{buf + n, writable};
  if (!vq_->add(&out, 1, &in, 1)) return Status::fail("virtio-iommu: the request queue has no free descriptors");
  slots_[head] = Slot{r.type, buf + n + writable - vi::kTailBytes, true};
  ++queued_;
  requests_.inc();
  charge_descriptor_writes(2 + (n + 7) / 8);   // two descriptors, the body
  return {};
}

Status VirtioIommuDriver::kick_and_wait(uint64_t* t_doorbell) {
  syncs_.inc();
  vq_->publish();
  reg_write(kQueueNotify, 0);
  collect_doorbell_spans();
  *t_doorbell = now_ps();
  // Linux spins without a limit; here the device must use a request within
  // driver.sync_timeout_us of the kick or of the one used before (a queue that stops is an error).
  sc_core::sc_time deadline = sync_deadline();
  while (queued_) {
    charge_cycles(timing_.poll_read_cycles);
    polls_.inc();
    bool any = false;
    while (auto u = vq_->get_used()) {
      any = true;
      Slot& s = slots_[u->id];   // an outstanding head: DriverSide checked it
      uint8_t tail[vi::kTailBytes];
      memory_view().read(s.tail_gpa, tail, vi::kTailBytes);
      if (tail[0] != uint8_t(vi::Status::Ok) && failed_.empty())
        failed_ = std::string("virtio-iommu ") + vi::type_name(s.type) + " answered " +
                  vi::status_name(vi::Status(tail[0]));
      s.pending = false;
      --queued_;
    }
    // A used id that names no outstanding head (Linux: BAD_RING, the queue broken): the
    // device's error; nothing more will come back.
    if (vq_->broken()) {
      failed_.clear();
      return Status::fail("virtio-iommu: the device returned a bad used element: " + vq_->error());
    }
    if (!queued_) break;
    if (any) deadline = sync_deadline();
    if (!any && sc_core::sc_time_stamp() > deadline)
      return barrier_timeout("virtio-iommu request", std::to_string(queued_) + " requests not used");
    sc_core::wait(poll_interval());
  }
  if (!failed_.empty()) {
    const std::string why = failed_;
    failed_.clear();
    return Status::fail(why);
  }
  return {};
}

Status VirtioIommuDriver::sync_req(const std::string& op, uint64_t t0, uint64_t lock_ps) {
  const uint64_t asked = now_ps();
  const uint64_t ticket = next_ticket_++;
  while (serving_ != ticket) sc_core::wait(lock_released_);
  lock_ps += now_ps() - asked;
  uint64_t t_doorbell = 0;
  const Status s = kick_and_wait(&t_doorbell);
  ++serving_;
  lock_released_.notify(sc_core::SC_ZERO_TIME);
  if (!s.ok) return s;
  if (op.empty()) {
    drop_trap_spans();
    map_sync_ps_.record(now_ps() - t0);
    takes_effect_now();
  } else {
    record_invalidation(op, t0, t_doorbell, now_ps(), {}, lock_ps);
  }
  return {};
}

Status VirtioIommuDriver::probe_endpoint(uint32_t ep) {
  if (!probe_size_ || probed_.count(ep)) return {};
  vi::Request r;
  r.type = vi::ReqType::Probe;
  r.endpoint = ep;
  if (Status s = add_req(r, probe_size_ + vi::kTailBytes); !s.ok) return s;
  if (Status s = sync_req("", now_ps()); !s.ok) return s;
  // The properties: a list ended by NONE; RESV_MEM regions are not modelled (none reported).
  uint8_t head[4];
  memory_view().read(probe_buffer_ + vi::kProbeBody, head, 4);
  if ((vi::get_le(head, 2) & vi::kProbeTMask) != vi::kProbeTNone)
    return Status::fail("virtio-iommu: PROBE of endpoint " + std::to_string(ep) + " reported properties this model does not handle");
  probed_.insert(ep);
  return {};
}

Status VirtioIommuDriver::attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId d) {
  if (pasid) return Status::fail("virtio-iommu has no PASIDs: attach the device (traffic.pasid = -1)");
  if (Status s = probe_endpoint(rid); !s.ok) return s;
  const uint64_t t0 = now_ps();
  vi::Request r;
  r.type = vi::ReqType::Attach;
  r.domain = d;
  r.endpoint = rid;
  VDomain& vd = vdomains_[d];
  // The domain's first endpoint: the device has none of its mappings until the replay below.
  const bool first = vd.endpoints.empty();
  if (first)
    for (const auto& [start, m] : vd.mappings)
      oracle_.visible_from(d, start, m.end - start + 1, common::CorrectnessOracle::kNotYetVisible);
  if (Status s = add_req(r); !s.ok) return s;
  if (Status s = sync_req("attach", t0); !s.ok) return s;
  if (auto old = attached_.find(rid); old != attached_.end()) vdomains_[old->second].endpoints.erase(rid);
  attached_[rid] = d;
  vd.endpoints.insert(rid);
  if (!first || vd.mappings.empty()) return {};
  // viommu_replay_mappings: what was mapped while no endpoint was attached.
  for (const auto& [start, m] : vd.mappings) {
    vi::Request map;
    map.type = vi::ReqType::Map;
    map.domain = d;
    map.virt_start = start;
    map.virt_end = m.end;
    map.phys_start = m.phys;
    map.flags = m.flags;
    if (Status s = add_req(map); !s.ok) return s;
  }
  if (Status s = sync_req("", now_ps()); !s.ok) return s;
  for (const auto& [start, m] : vd.mappings) oracle_.visible_from(d, start, m.end - start + 1, now_ps());
  return {};
}

Status VirtioIommuDriver::detach_device(uint32_t rid, std::optional<uint32_t> pasid) {
  if (pasid) return Status::fail("virtio-iommu has no PASIDs");
  auto it = attached_.find(rid);
  if (it == attached_.end()) return {};
  const uint64_t t0 = now_ps();
  vi::Request r;
  r.type = vi::ReqType::Detach;
  r.domain = it->second;
  r.endpoint = rid;
  if (Status s = add_req(r); !s.ok) return s;
  if (Status s = sync_req("detach", t0); !s.ok) return s;
  vdomains_[it->second].endpoints.erase(rid);
  attached_.erase(it);
  return {};
}

Status VirtioIommuDriver::map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t) {
  Status st;
  if (!domain(d, st)) return st;
  if (bytes == 0 || (iova | pa | bytes) & 0xFFF) return Status::fail("virtio-iommu map: not 4 KiB aligned");
  const uint64_t t0 = now_ps();
  charge_cycles(timing_.op_overhead_cycles);
  VDomain& vd = vdomains_[d];
  const uint64_t end = iova + bytes - 1;
  auto next = vd.mappings.lower_bound(iova);
  if ((next != vd.mappings.end() && next->first <= end) ||
      (next != vd.mappings.begin() && std::prev(next)->second.end >= iova))
    return Status::fail("virtio-iommu map at " + hex(iova) + ": overlaps a mapping (-EEXIST)");
  const uint32_t flags = (prot.read ? vi::kMapFRead : 0) | (prot.write ? vi::kMapFWrite : 0);
  oracle_.map(d, iova, pa, bytes, common::Rights{prot.read, prot.write, prot.exec, true});
  // The device maps on the host while it serves the MAP: until the guest saw it used, a DMA
  // there may still fault.
  oracle_.visible_from(d, iova, bytes, common::CorrectnessOracle::kNotYetVisible);
  // iommu_map splits the range by the device's page sizes (every power of two from 4 KiB):
  // chunks aligned in both IOVA and PA (iommu_pgsize), each one viommu_map_pages call, so one
  // mapping and, with an endpoint attached, one MAP request; then one .iotlb_sync_map.
  uint64_t lock_ps = 0;
  for (uint64_t off = 0; off < bytes;) {
    const uint64_t a = iova + off, p = pa + off, left = bytes - off;
    uint64_t chunk = (a | p) & (~(a | p) + 1);   // the lowest set bit: the alignment of both
    if (chunk == 0 || chunk > left) {
      chunk = 1;
      while (chunk <= left / 2) chunk <<= 1;   // the largest power of two within what is left
    }
    charge_cycles(cfg_.request_cycles);
    vd.mappings.emplace(a, Mapping{a + chunk - 1, p, flags});
    if (!vd.endpoints.empty()) {   // no endpoint yet: the replay at attach sends it
      vi::Request r;
      r.type = vi::ReqType::Map;
      r.domain = d;
      r.virt_start = a;
      r.virt_end = a + chunk - 1;
      r.phys_start = p;
      r.flags = flags;
      if (Status s = add_req(r, vi::kTailBytes, &lock_ps); !s.ok) return s;
    }
    off += chunk;
  }
  if (vd.endpoints.empty()) return {};
  if (Status s = sync_req("", t0, lock_ps); !s.ok) return s;   // .iotlb_sync_map
  oracle_.visible_from(d, iova, bytes, now_ps());
  return {};
}

Status VirtioIommuDriver::unmap_deferred(DomainId d, uint64_t iova, uint64_t bytes,
                                         common::CorrectnessOracle::ChangeId* change) {
  return remove(d, iova, bytes, change, nullptr);
}

Status VirtioIommuDriver::remove(DomainId d, uint64_t iova, uint64_t bytes, common::CorrectnessOracle::ChangeId* change,
                                 uint64_t* lock_ps) {
  Status st;
  if (!domain(d, st)) return st;
  charge_cycles(timing_.op_overhead_cycles + cfg_.request_cycles);
  VDomain& vd = vdomains_[d];
  // viommu_del_mappings: whole mappings inside the range; a range they do not cover exactly fails.
  const uint64_t end = iova + bytes - 1;
  uint64_t covered = 0;
  const auto first = vd.mappings.lower_bound(iova);
  auto last = first;
  for (; last != vd.mappings.end() && last->first <= end && last->second.end <= end; ++last)
    covered += last->second.end - last->first + 1;
  if (covered != bytes)
    return Status::fail("virtio-iommu unmap at " + hex(iova) + " (" + std::to_string(bytes) +
                        " bytes): not whole mappings (viommu_del_mappings removes whole ones only)");
  vd.mappings.erase(first, last);
  const common::CorrectnessOracle::ChangeId c = oracle_.unmap(d, iova, bytes);
  if (change) *change = c;
  if (vd.endpoints.empty()) return {};
  vi::Request r;
  r.type = vi::ReqType::Unmap;
  r.domain = d;
  r.virt_start = iova;
  r.virt_end = end;
  return add_req(r, vi::kTailBytes, lock_ps);
}

Status VirtioIommuDriver::unmap(DomainId d, uint64_t iova, uint64_t bytes) {
  const uint64_t t0 = now_ps();
  common::CorrectnessOracle::ChangeId c = 0;
  uint64_t lock_ps = 0;
  if (Status s = remove(d, iova, bytes, &c, &lock_ps); !s.ok) return s;
  if (Status s = sync_req("unmap", t0, lock_ps); !s.ok) return s;   // .iotlb_sync
  complete_deferred(c);
  return {};
}

Status VirtioIommuDriver::protect(DomainId, uint64_t, uint64_t, Prot) {
  return Status::fail("virtio-iommu has no in-place permission change (unmap and map instead)");
}

Status VirtioIommuDriver::remap(DomainId, uint64_t, uint64_t, uint64_t, Prot) {
  return Status::fail("virtio-iommu has no in-place remap (unmap and map instead)");
}

// The native drivers' operation names, so records compare op by op.
Status VirtioIommuDriver::invalidate_range(DomainId, uint64_t, uint64_t, bool leaf) {
  return sync_req(leaf ? "invalidate_range_leaf" : "invalidate_range", now_ps());
}
Status VirtioIommuDriver::invalidate_domain(DomainId) { return sync_req("invalidate_domain", now_ps()); }
Status VirtioIommuDriver::sync() { return sync_req("sync", now_ps()); }

void VirtioIommuDriver::register_stats(common::StatRegistry& reg, const std::string& p) const {
  DriverBase::register_stats(reg, p);
  reg.add(p + ".virtio.requests", requests_, "count", "requests queued on the request virtqueue");
  reg.add(p + ".virtio.syncs", syncs_, "count", "kicks of the request queue, each waited for (viommu_sync_req)");
  reg.add(p + ".virtio.full_syncs", full_syncs_, "count", "syncs because the request queue was full");
  reg.add(p + ".virtio.map_sync", map_sync_ps_, "ns", "a map (or probe): request built, queued, kicked and used", 1e-3);
}

}  // namespace iommusim::driver

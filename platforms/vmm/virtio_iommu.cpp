#include "platforms/vmm/virtio_iommu.h"

#include <algorithm>
#include <cstring>

namespace iommusim::vmm {

namespace vi = driver::virtio_iommu;
namespace vq = driver::virtq;
using namespace virtio_mmio;

uint64_t aligned_pow2_mask(uint64_t start, uint64_t end) {
  const uint64_t size_mask = end - start;
  const uint64_t align_mask = start ? (start & (~start + 1)) - 1 : ~0ull;
  if (align_mask <= size_mask) return align_mask;
  // Not aligned to a block as large as the range: the largest power of two within it.
  unsigned bit = 63;
  while (!((size_mask + 1) >> bit)) --bit;
  return (1ull << bit) - 1;
}

void for_each_pow2_chunk(uint64_t start, uint64_t end, const std::function<void(uint64_t, uint64_t)>& f) {
  for (;;) {
    const uint64_t mask = aligned_pow2_mask(start, end);
    f(start, mask + 1);
    if (end - start == mask) return;   // the last chunk (also when it reaches 2^64)
    start += mask + 1;
  }
}

VirtioIommuDevice::VirtioIommuDevice(sc_core::sc_module_name name, const VirtioIommuConfig& cfg, GuestRam& ram,
                                     Iommufd& fd, const driver::DriverBase& host)
    : sc_core::sc_module(name), TrappedMmio(cfg, host), mmio("mmio"), cfg_(cfg), ram_(ram), fd_(fd),
      bypass_(cfg.space.bypass) {
  mmio.register_b_transport(this, &VirtioIommuDevice::b_transport);
  chain_.descs.reserve(cfg.queue_size_max);
  writable_.reserve(cfg.space.probe_size + vi::kTailBytes);
}

driver::Status VirtioIommuDevice::add_endpoint(uint32_t endpoint, uint32_t dev_id) {
  Endpoint ep;
  ep.dev_id = dev_id;
  if (Errno e = fd_.ioas_alloc(0, &ep.ioas); e != Errno::Ok)
    return driver::Status::fail(std::string("IOMMU_IOAS_ALLOC: ") + errno_name(e));
  if (Errno e = fd_.hwpt_alloc(0, dev_id, ep.ioas, driver::UserData{}, &ep.hwpt); e != Errno::Ok)
    return driver::Status::fail("IOMMU_HWPT_ALLOC (paging) of endpoint " + std::to_string(endpoint) + ": " +
                                errno_name(e));
  if (Errno e = fd_.attach(dev_id, ep.hwpt); e != Errno::Ok)
    return driver::Status::fail("VFIO_DEVICE_ATTACH_IOMMUFD_PT of endpoint " + std::to_string(endpoint) + ": " +
                                errno_name(e));
  endpoints_[endpoint] = ep;
  return {};
}

std::optional<uint32_t> VirtioIommuDevice::endpoint_domain(uint32_t endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? std::nullopt : it->second.domain;
}

size_t VirtioIommuDevice::mappings(uint32_t domain) const {
  auto it = domains_.find(domain);
  return it == domains_.end() ? 0 : it->second.mappings.size();
}

vi::Config VirtioIommuDevice::config_space() const {
  vi::Config c = cfg_.space;
  c.bypass = bypass_;
  return c;
}

namespace {
// QEMU's feature set; PROBE only with a property space to fill.
uint64_t offered_features(uint32_t probe_size) {
  return (1ull << driver::virtio_iommu::kFVersion1) | (1ull << vi::kFInputRange) | (1ull << vi::kFDomainRange) |
         (1ull << vi::kFMapUnmap) | (probe_size ? 1ull << vi::kFProbe : 0) | (1ull << vi::kFBypassConfig);
}
}  // namespace

void VirtioIommuDevice::b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const uint64_t off = p.get_address();
  const unsigned len = p.get_data_length();
  const bool doorbell = p.is_write() && off == kQueueNotify;
  if (doorbell && cfg_.ioeventfd && p.get_data_length() == 4) {
    uint32_t v;
    std::memcpy(&v, p.get_data_ptr(), 4);
    p.set_response_status(tlm::TLM_OK_RESPONSE);
    if (v == kRequestQueue && queues_[kRequestQueue].side) kernel_doorbell(delay, costs_.ioeventfd_exit_cycles);
    return;
  }
  trap(p, delay, doorbell, [&] {
    p.set_response_status(tlm::TLM_OK_RESPONSE);
    if (off + len > kWindowBytes) { p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE); return; }
    uint8_t* data = p.get_data_ptr();
    if (off >= kConfig) {   // the config space: any width, little endian
      uint8_t cfg[vi::kConfigBytes + 8] = {};
      vi::encode(config_space(), cfg);
      const uint64_t at = off - kConfig;
      if (at + len > sizeof cfg) { p.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE); return; }
      if (p.is_read()) {
        std::memcpy(data, cfg + at, len);
      } else if (at <= 36 && at + len > 36 && (driver_features_ >> vi::kFBypassConfig & 1)) {
        bypass_ = data[36 - at];   // the one writable field (with BYPASS_CONFIG)
      }
      return;
    }
    if (len != 4 || off % 4) { p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE); return; }
    if (p.is_read()) {
      const uint32_t v = read_register(off);
      std::memcpy(data, &v, 4);
    } else {
      uint32_t v;
      std::memcpy(&v, data, 4);
      write_register(off, v);
    }
  });
}

uint32_t VirtioIommuDevice::read_register(uint64_t off) const {
  const Queue* q = queue_sel_ < kQueues ? &queues_[queue_sel_] : nullptr;
  switch (off) {
    case kMagic: return kMagicValue;
    case kVersion: return 2;
    case kDeviceId: return kVirtioIommuDeviceId;
    case kVendorId: return kQemuVendorId;
    case kDeviceFeatures:
      return device_features_sel_ < 2 ? uint32_t(offered_features(cfg_.space.probe_size) >> (32 * device_features_sel_))
                                      : 0;
    case kQueueNumMax: return q ? cfg_.queue_size_max : 0;
    case kQueueReady: return q && q->ready;
    case kInterruptStatus: return 0;
    case kStatus: return status_;
    case kConfigGeneration: return 0;
    default: return 0;
  }
}

void VirtioIommuDevice::write_register(uint64_t off, uint32_t v) {
  Queue* q = queue_sel_ < kQueues ? &queues_[queue_sel_] : nullptr;
  const auto set_low = [](uint64_t& a, uint32_t x) { a = (a & ~0xFFFFFFFFull) | x; };
  const auto set_high = [](uint64_t& a, uint32_t x) { a = (a & 0xFFFFFFFFull) | uint64_t(x) << 32; };
  switch (off) {
    case kDeviceFeaturesSel: device_features_sel_ = v; break;
    case kDriverFeaturesSel: driver_features_sel_ = v; break;
    case kDriverFeatures:
      if (driver_features_sel_ < 2) {
        const unsigned shift = 32 * driver_features_sel_;
        driver_features_ = (driver_features_ & ~(0xFFFFFFFFull << shift)) | (uint64_t(v) << shift);
        driver_features_ &= offered_features(cfg_.space.probe_size);   // a driver may accept only what is offered
      }
      break;
    case kQueueSel: queue_sel_ = v; break;
    case kQueueNum: if (q) q->num = uint16_t(v); break;
    case kQueueDescLow: if (q) set_low(q->desc, v); break;
    case kQueueDescHigh: if (q) set_high(q->desc, v); break;
    case kQueueDriverLow: if (q) set_low(q->driver, v); break;
    case kQueueDriverHigh: if (q) set_high(q->driver, v); break;
    case kQueueDeviceLow: if (q) set_low(q->device, v); break;
    case kQueueDeviceHigh: if (q) set_high(q->device, v); break;
    case kQueueReady:
      if (!q) break;
      q->ready = v & 1;
      if (q->ready) {
        vq::Layout l{q->desc, q->driver, q->device, q->num};
        if (!vq::validate(l).empty() || q->num > cfg_.queue_size_max) { broken_ = true; q->ready = false; break; }
        q->side = std::make_unique<vq::DeviceSide>(ram_, l);
      }
      break;
    case kQueueNotify:
      if (v == kRequestQueue && queues_[kRequestQueue].side) queue_may_run();
      break;
    case kStatus: status_ = v; break;
    default: break;
  }
}

bool VirtioIommuDevice::run_queue() {
  Queue& q = queues_[kRequestQueue];
  if (!q.side || broken_ || !driver_ok()) return false;
  bool consumed = false;
  std::string error;
  unsigned reads = 0;
  while (!broken_ && q.side->pop(&chain_, &error, &reads)) {
    cpu_.wait_cycles(costs_.fetch_cycles * reads);
    serve(chain_);
    consumed = true;
  }
  if (!error.empty()) {   // QEMU virtio_error: the device stops until reset
    cpu_.wait_cycles(costs_.fetch_cycles * reads);
    stop_device();
  }
  return consumed;
}

void VirtioIommuDevice::serve(const vq::DeviceSide::Chain& c) {
  // QEMU virtqueue_pop maps every descriptor: one outside guest RAM is virtio_error. The
  // readable part (head and body, at most the largest body) is copied; the writable part
  // is only measured (its length is the guest's: nothing is allocated from it).
  uint8_t body[vi::kMaxBody] = {};
  uint64_t readable = 0, writable = 0;
  for (const vq::Desc& d : c.descs) {
    if (!ram_.contains(d.addr, d.len)) { stop_device(); return; }
    if (d.flags & vq::kDescFWrite) { writable += d.len; continue; }
    const size_t take = size_t(std::min<uint64_t>(d.len, sizeof body - std::min<uint64_t>(readable, sizeof body)));
    ram_.fetch(d.addr, body + readable, take);
    readable += d.len;
  }
  // No room for the head or the tail: QEMU "virtio-iommu bad head/tail size" (virtio_error).
  if (writable < vi::kTailBytes || readable < vi::kHeadBytes) { stop_device(); return; }
  const uint64_t ioctls0 = ioctl_count_, commands0 = host_.commands_issued();
  cpu_.wait_cycles(costs_.decode_cycles);
  Request r;
  Status st = Status::Ok;
  // QEMU's output_size: the tail, or for PROBE the property space and the tail. The tail
  // goes at output_size - 4 and the used length is output_size, whatever the guest offered.
  size_t output = vi::kTailBytes;
  writable_.assign(vi::kTailBytes, 0);
  if (vi::decode(body, size_t(std::min<uint64_t>(readable, sizeof body)), &r, &st)) {
    by_type_[size_t(r.type)].inc();
    const bool probe = r.type == vi::ReqType::Probe;
    if (probe && writable < cfg_.space.probe_size + vi::kTailBytes) {
      st = Status::Inval;   // no room for the properties: the tail alone says so
    } else {
      if (probe) output += cfg_.space.probe_size;
      writable_.assign(output, 0);   // at most probe_size + 4: reserved at construction
      st = handle(r, writable_.data(), probe ? cfg_.space.probe_size : 0);
    }
  }
  writable_[output - vi::kTailBytes] = uint8_t(st);
  write_writable(c, 0, writable_.data(), output);
  by_status_[size_t(st)].inc();
  cpu_.wait_cycles(costs_.complete_cycles);
  queues_[kRequestQueue].side->push_used(c.head, uint32_t(output));
  used_write_ps_ = common::now_ps();
  last_ioctls_ = ioctl_count_ - ioctls0;
  last_host_commands_ = host_.commands_issued() - commands0;
  ioctls_per_request_.record(last_ioctls_);
  host_commands_per_request_.record(last_host_commands_);
}

void VirtioIommuDevice::stop_device() {
  malformed_.inc();
  broken_ = true;
}

void VirtioIommuDevice::write_writable(const vq::DeviceSide::Chain& c, size_t offset, const uint8_t* buf,
                                       size_t len) {
  size_t at = 0;   // offset of the current descriptor in the writable part
  for (const vq::Desc& d : c.descs) {
    if (!(d.flags & vq::kDescFWrite)) continue;
    const size_t lo = std::max(at, offset), hi = std::min(at + d.len, offset + len);
    if (lo < hi) ram_.write(d.addr + (lo - at), buf + (lo - offset), hi - lo);
    at += d.len;
  }
}

VirtioIommuDevice::Status VirtioIommuDevice::handle(const Request& r, uint8_t*, size_t) {
  switch (r.type) {
    case vi::ReqType::Attach: return attach(r);
    case vi::ReqType::Detach: return detach(r);
    case vi::ReqType::Map: return map(r);
    case vi::ReqType::Unmap: return unmap(r);
    case vi::ReqType::Probe:
      // No reserved regions: the property list is the NONE that ends it (zeros).
      return endpoints_.count(r.endpoint) ? Status::Ok : Status::NoEnt;
  }
  return Status::Unsupp;
}

VirtioIommuDevice::Status VirtioIommuDevice::attach(const Request& r) {
  auto ep = endpoints_.find(r.endpoint);
  if (ep == endpoints_.end()) return Status::NoEnt;
  if (r.flags & ~vi::kAttachFBypass) return Status::Inval;
  const bool bypass = r.flags & vi::kAttachFBypass;
  cpu_.wait_cycles(cfg_.tree_cycles);   // the domain lookup or insert
  auto d = domains_.find(r.domain);
  if (d != domains_.end() && d->second.bypass != bypass) return Status::Inval;
  if (ep->second.domain == r.domain) return Status::Ok;
  if (ep->second.domain)
    if (Status st = detach_endpoint(r.endpoint); st != Status::Ok) return st;
  Domain& dom = domains_[r.domain];
  dom.bypass = bypass;
  dom.endpoints.insert(r.endpoint);
  ep->second.domain = r.domain;
  if (bypass) return bypass_ram(ep->second, true);
  // Replay the domain's mappings onto the endpoint (virtio_iommu_mapping_map).
  for (const auto& [start, m] : dom.mappings)
    if (Status st = notify_map(ep->second, start, m); st != Status::Ok) return st;
  return Status::Ok;
}

VirtioIommuDevice::Status VirtioIommuDevice::detach(const Request& r) {
  auto ep = endpoints_.find(r.endpoint);
  if (ep == endpoints_.end()) return Status::NoEnt;
  if (ep->second.domain != r.domain) return Status::Inval;
  return detach_endpoint(r.endpoint);
}

VirtioIommuDevice::Status VirtioIommuDevice::detach_endpoint(uint32_t id) {
  Endpoint& ep = endpoints_.at(id);
  cpu_.wait_cycles(cfg_.tree_cycles);
  auto d = domains_.find(*ep.domain);
  Status st = d->second.bypass ? bypass_ram(ep, false) : Status::Ok;
  for (const auto& [start, m] : d->second.mappings)
    if (Status s = notify_unmap(ep, start, m); s != Status::Ok && st == Status::Ok) st = s;
  d->second.endpoints.erase(id);
  ep.domain.reset();
  if (d->second.endpoints.empty()) domains_.erase(d);
  return st;
}

VirtioIommuDevice::Status VirtioIommuDevice::map(const Request& r) {
  cpu_.wait_cycles(cfg_.tree_cycles);   // the domain lookup
  auto d = domains_.find(r.domain);
  if (d == domains_.end()) return Status::NoEnt;
  if (r.flags & ~vi::kMapFMask) return Status::Inval;
  if (d->second.bypass) return Status::Inval;
  if (r.virt_end < r.virt_start) return Status::Inval;
  // virtio spec v1.2, "MAP request", device requirements: virt_start, phys_start or
  // virt_end + 1 not aligned on the page granularity (page_size_mask's lowest bit) is RANGE;
  // nothing is mapped, not even the whole pages inside.
  const uint64_t psm = cfg_.space.page_size_mask;
  const uint64_t granule_mask = psm ? (psm & (~psm + 1)) - 1 : 0;
  if ((r.virt_start | r.phys_start | (r.virt_end + 1)) & granule_mask) return Status::Range;
  // MODEL CHOICE (the spec names no status): 64-bit arithmetic that wraps is RANGE ("out-of-
  // range parameters"): a 2^64-byte mapping, or phys_end = phys_start + (virt_end -
  // virt_start), the spec's definition, past 2^64 - 1.
  const uint64_t span = r.virt_end - r.virt_start;   // bytes - 1
  if (span == ~0ull || r.phys_start > ~0ull - span) return Status::Range;
  if (!ram_.contains(r.phys_start, span + 1)) return Status::IoErr;   // not guest RAM
  auto& maps = d->second.mappings;
  cpu_.wait_cycles(cfg_.tree_cycles);   // the overlap lookup and insert
  auto next = maps.lower_bound(r.virt_start);
  if (next != maps.end() && next->first <= r.virt_end) return Status::Inval;
  if (next != maps.begin() && std::prev(next)->second.end >= r.virt_start) return Status::Inval;
  const Mapping m{r.virt_end, r.phys_start, r.flags};
  maps.emplace(r.virt_start, m);
  for (uint32_t id : d->second.endpoints)
    if (Status st = notify_map(endpoints_.at(id), r.virt_start, m); st != Status::Ok) return st;
  return Status::Ok;
}

VirtioIommuDevice::Status VirtioIommuDevice::unmap(const Request& r) {
  cpu_.wait_cycles(cfg_.tree_cycles);   // the domain lookup
  auto d = domains_.find(r.domain);
  if (d == domains_.end()) return Status::NoEnt;
  auto& maps = d->second.mappings;
  // Each stored mapping that meets [virt_start, virt_end], in address order.
  auto it = maps.lower_bound(r.virt_start);
  if (it != maps.begin() && std::prev(it)->second.end >= r.virt_start) --it;
  Status st = Status::Ok;
  bool removed = false;
  const bool no_flush = cfg_.inject == VmmFault::DropHostFlush;   // the injected bug: PTEs only
  const bool flush_each = !cfg_.domain_flush && !no_flush;
  while (it != maps.end() && it->first <= r.virt_end) {
    cpu_.wait_cycles(cfg_.tree_cycles);
    if (it->first < r.virt_start || it->second.end > r.virt_end) { st = Status::Range; break; }
    for (uint32_t id : d->second.endpoints)
      if (Status s = notify_unmap(endpoints_.at(id), it->first, it->second, flush_each);
          s != Status::Ok && st == Status::Ok)
        st = s;
    it = maps.erase(it);
    removed = true;
  }
  // The idealised host: one domain-wide invalidation per endpoint for all it removed.
  if (removed && cfg_.domain_flush && !no_flush)
    for (uint32_t id : d->second.endpoints) {
      ++ioctl_count_;
      if (ioctl(0, [&] { return fd_.hwpt_flush(endpoints_.at(id).hwpt); }) != Errno::Ok && st == Status::Ok)
        st = Status::IoErr;
    }
  return st;
}

VirtioIommuDevice::Status VirtioIommuDevice::bypass_ram(const Endpoint& ep, bool map) {
  // The endpoint's address space becomes guest memory: the VMM's memory listener maps (or
  // unmaps) all of guest RAM at GPA = IOVA, one call for the one RAM slot.
  ++ioctl_count_;
  uint64_t unmapped = 0;
  const Errno e = map ? ioctl(0, [&] {
    return fd_.ioas_map(ep.ioas, kIoasMapFixedIova | kIoasMapReadable | kIoasMapWriteable, 0, ram_.pa(), ram_.bytes());
  })
                      : ioctl(0, [&] { return fd_.ioas_unmap(ep.ioas, 0, ram_.bytes(), &unmapped); });
  return e == Errno::Ok ? Status::Ok : Status::IoErr;
}

VirtioIommuDevice::Status VirtioIommuDevice::notify_map(const Endpoint& ep, uint64_t start, const Mapping& m) {
  const uint32_t flags = kIoasMapFixedIova | (m.flags & vi::kMapFRead ? kIoasMapReadable : 0) |
                         (m.flags & vi::kMapFWrite ? kIoasMapWriteable : 0);
  Status st = Status::Ok;
  for_each_pow2_chunk(start, m.end, [&](uint64_t iova, uint64_t size) {
    const uint64_t pages = (size + 4095) / 4096;
    pinned_pages_.inc(pages);
    ++ioctl_count_;
    const Errno e = ioctl(cfg_.pin_page_cycles * pages, [&] {
      return fd_.ioas_map(ep.ioas, flags, iova, ram_.pa() + m.phys + (iova - start), size);
    });
    if (e != Errno::Ok) st = Status::IoErr;
  });
  return st;
}

VirtioIommuDevice::Status VirtioIommuDevice::notify_unmap(const Endpoint& ep, uint64_t start, const Mapping& m,
                                                          bool flush) {
  Status st = Status::Ok;
  for_each_pow2_chunk(start, m.end, [&](uint64_t iova, uint64_t size) {
    uint64_t unmapped = 0;
    const uint64_t pages = (size + 4095) / 4096;
    ++ioctl_count_;
    const Errno e =
        ioctl(cfg_.pin_page_cycles * pages, [&] { return fd_.ioas_unmap(ep.ioas, iova, size, &unmapped, flush); });
    if (e != Errno::Ok) st = Status::IoErr;
  });
  return st;
}

void VirtioIommuDevice::register_stats(common::StatRegistry& reg, const std::string& p) const {
  register_exit_stats(reg, p, "QueueNotify writes (the request queue's doorbell)", "trapped register reads");
  register_ioctl_stats(reg, p, "iommufd calls that failed (the request answered IOERR)");
  for (vi::ReqType t : {vi::ReqType::Attach, vi::ReqType::Detach, vi::ReqType::Map, vi::ReqType::Unmap,
                        vi::ReqType::Probe})
    reg.add(p + ".virtio.requests." + vi::type_name(t), by_type_[size_t(t)], "count",
            std::string("virtio-iommu ") + vi::type_name(t) + " requests served");
  for (unsigned s = 0; s < vi::kStatusCount; ++s)
    reg.add(p + ".virtio.status." + vi::status_name(Status(s)), by_status_[s], "count",
            std::string("requests answered ") + vi::status_name(Status(s)));
  reg.add(p + ".virtio.malformed", malformed_, "count", "malformed chains (the device stops, as QEMU's virtio_error)");
  reg.add(p + ".virtio.ioctls_per_request", ioctls_per_request_, "count",
          "iommufd calls per request: per endpoint of the domain, per power-of-two chunk");
  reg.add(p + ".virtio.host_commands_per_request", host_commands_per_request_, "count",
          "host queue entries (commands and barriers) per request");
  reg.add(p + ".virtio.pinned_pages", pinned_pages_, "count", "4 KiB pages pinned by IOMMU_IOAS_MAP");
}

}  // namespace iommusim::vmm

#include "platforms/driver/virtqueue.h"

#include <algorithm>

#include "platforms/driver/virtio_iommu_format.h"

namespace iommusim::driver::virtq {

using virtio_iommu::get_le;
using virtio_iommu::put_le;

namespace {
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
uint16_t read16(const MemoryView& m, uint64_t a) {
  uint8_t b[2];
  m.read(a, b, 2);
  return uint16_t(get_le(b, 2));
}
void write16(MemoryView& m, uint64_t a, uint16_t v) {
  uint8_t b[2];
  put_le(b, v, 2);
  m.write(a, b, 2);
}
}  // namespace

Layout Layout::contiguous(uint64_t base, uint16_t n) {
  Layout l;
  l.size = n;
  l.desc = align_up(base, 16);
  l.avail = l.desc + desc_bytes(n);                    // 16-byte multiple: 2-aligned
  l.used = align_up(l.avail + avail_bytes(n), 4);
  return l;
}

uint64_t Layout::total_bytes() const { return used + used_bytes(size) - desc; }

std::string validate(const Layout& l) {
  if (l.size == 0 || l.size > kMaxSize || (l.size & (l.size - 1)))
    return "queue size " + std::to_string(l.size) + " is not a power of two of 1..32768";
  if (l.desc % 16) return "descriptor table not 16-byte aligned";
  if (l.avail % 2) return "available ring not 2-byte aligned";
  if (l.used % 4) return "used ring not 4-byte aligned";
  return {};
}

void write_desc(MemoryView& m, const Layout& l, unsigned i, const Desc& d) {
  uint8_t b[kDescBytes];
  put_le(b, d.addr, 8);
  put_le(b + 8, d.len, 4);
  put_le(b + 12, d.flags, 2);
  put_le(b + 14, d.next, 2);
  m.write(l.desc_addr(i), b, kDescBytes);
}

Desc read_desc(const MemoryView& m, const Layout& l, unsigned i) {
  uint8_t b[kDescBytes];
  m.read(l.desc_addr(i), b, kDescBytes);
  Desc d;
  d.addr = get_le(b, 8);
  d.len = uint32_t(get_le(b + 8, 4));
  d.flags = uint16_t(get_le(b + 12, 2));
  d.next = uint16_t(get_le(b + 14, 2));
  return d;
}

DriverSide::DriverSide(MemoryView& mem, const Layout& l) : m_(mem), l_(l), chain_len_(l.size, 0) {
  write16(m_, l_.avail, 0);
  write16(m_, l_.avail_idx_addr(), 0);
  write16(m_, l_.used, 0);
  write16(m_, l_.used_idx_addr(), 0);
  free_.reserve(l.size);
  for (unsigned i = l.size; i-- > 0;) free_.push_back(uint16_t(i));   // descriptor 0 on top
}

std::optional<uint16_t> DriverSide::add(const Buffer* out, unsigned n_out, const Buffer* in, unsigned n_in) {
  const unsigned n = n_out + n_in;
  if (n == 0 || n > free_.size()) return std::nullopt;
  // Take the chain's numbers first, so each descriptor can name the next.
  uint16_t ids[64];
  if (n > 64) return std::nullopt;
  for (unsigned k = 0; k < n; ++k) {
    ids[k] = free_.back();
    free_.pop_back();
  }
  for (unsigned k = 0; k < n; ++k) {
    const Buffer& b = k < n_out ? out[k] : in[k - n_out];
    Desc d;
    d.addr = b.addr;
    d.len = b.len;
    d.flags = uint16_t((k + 1 < n ? kDescFNext : 0) | (k >= n_out ? kDescFWrite : 0));
    d.next = k + 1 < n ? ids[k + 1] : 0;
    write_desc(m_, l_, ids[k], d);
  }
  chain_len_[ids[0]] = uint16_t(n);
  write16(m_, l_.avail_slot_addr(avail_idx_), ids[0]);
  ++avail_idx_;
  last_chain_ = n;
  return ids[0];
}

uint16_t DriverSide::publish() {
  write16(m_, l_.avail_idx_addr(), avail_idx_);
  return avail_idx_;
}

std::optional<Used> DriverSide::get_used() {
  if (broken() || read16(m_, l_.used_idx_addr()) == last_used_) return std::nullopt;
  uint8_t b[8];
  m_.read(l_.used_slot_addr(last_used_), b, 8);
  const Used u{uint32_t(get_le(b, 4)), uint32_t(get_le(b + 4, 4))};
  // Linux virtqueue_get_buf_ctx_split: BAD_RING, the element not consumed.
  if (u.id >= l_.size) {
    error_ = "used element id " + std::to_string(u.id) + " out of range (queue size " + std::to_string(l_.size) + ")";
    return std::nullopt;
  }
  if (chain_len_[u.id] == 0) {
    error_ = "used element id " + std::to_string(u.id) + " is not a head (no chain of it is outstanding)";
    return std::nullopt;
  }
  ++last_used_;
  // Its descriptors back on the free list, following the chain as stored.
  uint16_t i = uint16_t(u.id);
  for (unsigned k = 0; k < chain_len_[u.id]; ++k) {
    free_.push_back(i);
    i = read_desc(m_, l_, i).next;
  }
  chain_len_[u.id] = 0;
  return u;
}

DeviceSide::DeviceSide(MemoryView& mem, const Layout& l) : m_(mem), l_(l), seen_(l.size, 0) {}

bool DeviceSide::pop(Chain* c, std::string* error, unsigned* reads) {
  error->clear();
  if (reads) *reads = 0;
  const uint16_t avail_idx = read16(m_, l_.avail_idx_addr());
  if (avail_idx == last_avail_) return false;
  // QEMU virtqueue_num_heads: more heads than the queue holds is "Guest moved avail index".
  if (uint16_t(avail_idx - last_avail_) > l_.size) {
    *error = "the guest moved avail->idx " + std::to_string(uint16_t(avail_idx - last_avail_)) +
             " entries ahead of the device, more than the queue size " + std::to_string(l_.size);
    return false;
  }
  const uint16_t head = read16(m_, l_.avail_slot_addr(last_avail_));
  ++last_avail_;
  c->head = head;
  c->descs.clear();
  if (++pop_stamp_ == 0) {   // the stamp wrapped: forget every earlier pop
    std::fill(seen_.begin(), seen_.end(), 0);
    pop_stamp_ = 1;
  }
  uint16_t i = head;
  bool writable_seen = false;
  for (;;) {
    if (i >= l_.size) { *error = "descriptor " + std::to_string(i) + " beyond the queue size"; return false; }
    if (seen_[i] == pop_stamp_) { *error = "descriptor chain loops at " + std::to_string(i); return false; }
    seen_[i] = pop_stamp_;
    const Desc d = read_desc(m_, l_, i);
    if (reads) ++*reads;
    if (d.flags & kDescFIndirect) { *error = "indirect descriptor (VIRTIO_F_INDIRECT_DESC not offered)"; return false; }
    const bool writable = d.flags & kDescFWrite;
    if (writable_seen && !writable) { *error = "device-readable descriptor after a writable one"; return false; }
    writable_seen |= writable;
    c->descs.push_back(d);
    if (!(d.flags & kDescFNext)) return true;
    i = d.next;
  }
}

void DeviceSide::push_used(uint16_t head, uint32_t len) {
  uint8_t b[8];
  put_le(b, head, 4);
  put_le(b + 4, len, 4);
  m_.write(l_.used_slot_addr(used_idx_), b, 8);
  ++used_idx_;
  write16(m_, l_.used_idx_addr(), used_idx_);
}

}  // namespace iommusim::driver::virtq

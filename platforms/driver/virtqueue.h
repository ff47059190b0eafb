// A split virtqueue in the driver's memory (virtio spec v1.2, "Split Virtqueues"; Linux
// drivers/virtio/virtio_ring.c, QEMU hw/virtio/virtio.c): its three areas and the two
// halves that use them, the driver's (a guest driver adds buffers and reads the used ring)
// and the device's (a VMM pops available chains and returns them used).
//
// What it models
// - The descriptor table (16 bytes each: le64 addr, le32 len, le16 flags NEXT b0 / WRITE b1
//   / INDIRECT b2, le16 next), the available ring (le16 flags, le16 idx, le16 ring[N],
//   le16 used_event) and the used ring (le16 flags, le16 idx, {le32 id, le32 len} ring[N],
//   le16 avail_event), aligned 16 / 2 / 4 bytes; N a power of two up to 32768.
// - Free-running 16-bit indices: avail->idx and used->idx count buffers since reset, modulo
//   2^16; the ring slot is the index modulo N.
// - The driver half: a chain of device-readable then device-writable descriptors from its
//   free list (the head's number is the buffer's id), its avail slot, then avail->idx (a
//   separate store, after the slot: the order the spec requires); reading used->idx and the
//   used elements it has not seen, returning their descriptors to the free list. A used
//   element whose id is not an outstanding head is the device's error, as Linux's
//   virtqueue_get_buf_ctx_split BAD_RING ("id %u out of range", "id %u is not a head!"):
//   the queue is then broken and returns nothing more.
// - The device half: reads avail->idx, the slot, then each descriptor of the chain (the reads
//   a VMM's fetch cost is charged per); writes the used element, then used->idx.
// - A malformed chain (a descriptor number >= N, a loop, a readable descriptor after a
//   writable one, INDIRECT which is not negotiated here) is the device's error: QEMU's
//   virtio_error marks the device broken; here pop fails with the reason.
//
// What it does not model: notification suppression (flags, used_event, avail_event stay 0:
// the driver always notifies, the device never interrupts), indirect descriptors, the packed
// layout, memory barriers (stores land in program order), access timing (callers charge it).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "platforms/driver/memory_view.h"

namespace iommusim::driver::virtq {

inline constexpr uint16_t kDescFNext = 1, kDescFWrite = 2, kDescFIndirect = 4;   // VRING_DESC_F_*
inline constexpr uint64_t kDescBytes = 16;
inline constexpr unsigned kMaxSize = 32768;

struct Desc {
  uint64_t addr = 0;
  uint32_t len = 0;
  uint16_t flags = 0, next = 0;
};

// Where the three areas are and how many entries they have.
struct Layout {
  uint64_t desc = 0, avail = 0, used = 0;
  uint16_t size = 0;

  static uint64_t desc_bytes(unsigned n) { return kDescBytes * n; }
  static uint64_t avail_bytes(unsigned n) { return 6 + 2ull * n; }
  static uint64_t used_bytes(unsigned n) { return 6 + 8ull * n; }
  // The areas back to back from `base` (16-byte aligned), each at its alignment.
  static Layout contiguous(uint64_t base, uint16_t n);
  uint64_t total_bytes() const;   // of a contiguous layout: from desc to the used ring's end

  uint64_t desc_addr(unsigned i) const { return desc + kDescBytes * i; }
  uint64_t avail_idx_addr() const { return avail + 2; }
  uint64_t avail_slot_addr(uint16_t idx) const { return avail + 4 + 2ull * (idx & (size - 1)); }
  uint64_t used_idx_addr() const { return used + 2; }
  uint64_t used_slot_addr(uint16_t idx) const { return used + 4 + 8ull * (idx & (size - 1)); }
};
// Empty when `l` is usable, else what is wrong.
std::string validate(const Layout& l);

void write_desc(MemoryView& m, const Layout& l, unsigned i, const Desc& d);
Desc read_desc(const MemoryView& m, const Layout& l, unsigned i);

// One buffer of a chain, in the driver's memory.
struct Buffer {
  uint64_t addr = 0;
  uint32_t len = 0;
};
// A used element: the chain's head and the bytes the device wrote.
struct Used {
  uint32_t id = 0;   // le32 in the ring: a device may write any value
  uint32_t len = 0;
};

class DriverSide {
 public:
  // Resets the areas (flags and indices 0) and puts every descriptor on the free list.
  DriverSide(MemoryView& mem, const Layout& l);
  const Layout& layout() const { return l_; }

  // virtqueue_add_sgs: `out` (device-readable) then `in` (device-writable) as one chain in
  // its avail slot; the index is not yet published. nullopt when too few descriptors are free.
  std::optional<uint16_t> add(const Buffer* out, unsigned n_out, const Buffer* in, unsigned n_in);
  // Stores avail->idx: the device may see every chain added so far. Returns the new index.
  uint16_t publish();
  // virtqueue_get_buf: the next used element, its descriptors freed; nullopt when the
  // device has returned nothing new, or when the queue is broken (below).
  std::optional<Used> get_used();
  // A used element named no outstanding head (an id >= N, or a descriptor that heads no
  // chain in flight): the device's error; nothing more is returned. Empty while not broken.
  bool broken() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  unsigned free_descriptors() const { return unsigned(free_.size()); }
  // The descriptor the next add's chain starts with (its id), when one is free.
  uint16_t next_head() const { return free_.empty() ? 0 : free_.back(); }
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t last_used_idx() const { return last_used_; }
  // Descriptors stored by the last add (for the caller's CPU-time charge).
  unsigned last_chain_length() const { return last_chain_; }

 private:
  MemoryView& m_;
  Layout l_;
  std::vector<uint16_t> free_;         // free descriptor numbers (a stack)
  std::vector<uint16_t> chain_len_;    // per head: its chain's length
  uint16_t avail_idx_ = 0, last_used_ = 0;
  unsigned last_chain_ = 0;
  std::string error_;                  // why the queue broke
};

class DeviceSide {
 public:
  DeviceSide(MemoryView& mem, const Layout& l);
  const Layout& layout() const { return l_; }

  // One available chain: its head and descriptors in order (at most N).
  struct Chain {
    uint16_t head = 0;
    std::vector<Desc> descs;
  };
  // virtqueue_pop: false when nothing is available, or (with *error set) when the chain is
  // malformed. `reads` counts the descriptor reads (avail idx and slot not included).
  bool pop(Chain* c, std::string* error, unsigned* reads = nullptr);
  // virtqueue_push + virtqueue_flush: the used element, then used->idx.
  void push_used(uint16_t head, uint32_t len);
  uint16_t last_avail_idx() const { return last_avail_; }
  uint16_t used_idx() const { return used_idx_; }

 private:
  MemoryView& m_;
  Layout l_;
  uint16_t last_avail_ = 0, used_idx_ = 0;
  std::vector<uint32_t> seen_;   // loop detection: the pop that last visited each descriptor
  uint32_t pop_stamp_ = 0;
};

}  // namespace iommusim::driver::virtq

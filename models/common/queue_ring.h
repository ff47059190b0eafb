// Index arithmetic of memory-resident circular queues. Two conventions exist:
// - WrapRing: SMMUv3 PROD/CONS, index in [log2size-1:0] plus a wrap bit at [log2size];
//   empty when index and wrap match, full when index matches and wrap differs, so every
//   slot is usable.
// - OffsetRing: VT-d IQH/IQT and AMD head/tail, plain byte offsets; one slot is kept empty
//   to tell full from empty.
// IndexRing serves code that handles either convention (the command-queue engine and the
// driver's submit): entry indices, with or without the wrap bit.
#pragma once
#include <cstdint>

namespace iommusim::common {

struct WrapRing {
  unsigned log2size = 0;
  uint32_t entries() const { return 1u << log2size; }
  uint32_t index(uint32_t p) const { return p & (entries() - 1); }
  bool wrap(uint32_t p) const { return (p >> log2size) & 1u; }
  uint32_t pointer_mask() const { return (2u << log2size) - 1; }
  bool empty(uint32_t prod, uint32_t cons) const { return ((prod ^ cons) & pointer_mask()) == 0; }
  bool full(uint32_t prod, uint32_t cons) const {
    return index(prod) == index(cons) && wrap(prod) != wrap(cons);
  }
  uint32_t used(uint32_t prod, uint32_t cons) const {
    return (prod - cons) & pointer_mask();
  }
  uint32_t next(uint32_t p) const { return (p + 1) & pointer_mask(); }
};

struct OffsetRing {
  uint64_t size_bytes = 0, entry_bytes = 16;
  uint64_t next(uint64_t off) const { return (off + entry_bytes) % size_bytes; }
  bool empty(uint64_t head, uint64_t tail) const { return head == tail; }
  bool full(uint64_t head, uint64_t tail) const { return next(tail) == head; }
};

struct IndexRing {
  unsigned log2size = 0;
  bool wrap_bit = false;   // true: WrapRing's convention; false: one slot kept empty
  uint32_t entries() const { return 1u << log2size; }
  uint32_t pointer_mask() const { return (wrap_bit ? 2 * entries() : entries()) - 1; }
  uint32_t index(uint32_t p) const { return p & (entries() - 1); }
  uint32_t next(uint32_t p) const { return (p + 1) & pointer_mask(); }
  uint32_t used(uint32_t prod, uint32_t cons) const { return (prod - cons) & pointer_mask(); }
  bool empty(uint32_t prod, uint32_t cons) const { return used(prod, cons) == 0; }
  bool full(uint32_t prod, uint32_t cons) const { return used(prod, cons) == (wrap_bit ? entries() : entries() - 1); }
};

}  // namespace iommusim::common

// The radix walk engine shared by every format and every vendor.
//
// It is a plain function, not a module: the caller supplies `fetch`, which reads one
// descriptor (through its memory socket, and for a nested stage-1 walk through stage 2
// first), so time, caches and nesting stay with the model. `on_table` lets the caller
// fill its walk caches with each table pointer it passes.
//
// Hierarchical permissions: the table_allows_* of every table descriptor passed are ANDed
// and applied to the leaf before the format's check_access. A walk resumed from a walk
// cache must pass the permissions of the tables it skipped (WalkStart::inherited); an
// on_table that takes a third `const TablePermissions&` receives them to cache.
// Level skipping (AMD v1): a table descriptor whose next level is not level + 1 requires
// the index bits of the skipped levels to be zero, else Fault::Reserved (so is a NextLevel
// that does not point further down).
#pragma once
#include <cstdint>
#include <type_traits>

#include "models/pagetable/format.h"

namespace iommusim::pagetable {

struct WalkStart {
  unsigned level;      // level of the table at `table`
  uint64_t table;      // table base address (in the walk's own address space)
  TablePermissions inherited = {};   // from the table descriptors above `level` (walk-cache resume)
};

struct WalkResult {
  Fault fault = Fault::None;
  unsigned level = 0;          // level of the leaf, or where the fault was found
  uint64_t output = 0;         // translated address (leaf base | offset)
  uint64_t leaf_bytes = 0;
  uint64_t descriptor_address = 0;   // address of the last descriptor read (fault reporting)
  unsigned reads = 0;          // descriptors read by this walk
  DecodedDescriptor leaf;
};

struct FetchResult {
  bool ok = true;
  uint64_t raw = 0;
};

// fetch(uint64_t descriptor_address, unsigned level) -> FetchResult
// on_table(unsigned next_level, uint64_t next_table) -> void, or
// on_table(unsigned next_level, uint64_t next_table, const TablePermissions& above) -> void
template <class FetchFn, class OnTableFn>
WalkResult walk(const Format& fmt, WalkStart start, uint64_t ia, const Access& access, FetchFn&& fetch,
                OnTableFn&& on_table) {
  WalkResult r;
  if (fmt.input_bits() < 64 && (ia >> fmt.input_bits()) != 0) {
    r.fault = Fault::Translation;
    r.level = start.level;
    return r;
  }
  unsigned level = start.level;
  uint64_t table = start.table;
  TablePermissions perms = start.inherited;
  for (;;) {
    const uint64_t daddr = table + fmt.index(level, ia) * fmt.descriptor_bytes();
    r.descriptor_address = daddr;
    r.level = level;
    FetchResult f = fetch(daddr, level);
    ++r.reads;
    if (!f.ok) { r.fault = Fault::FetchAbort; return r; }
    DecodedDescriptor d = fmt.decode(level, f.raw);
    switch (d.kind) {
      case DecodedDescriptor::Kind::Invalid:
        r.fault = Fault::Translation;
        return r;
      case DecodedDescriptor::Kind::Reserved:
        r.fault = Fault::Reserved;
        return r;
      case DecodedDescriptor::Kind::Table:
        if (fmt.output_bits() < 64 && (d.address >> fmt.output_bits()) != 0) { r.fault = Fault::AddressSize; return r; }
        if (d.next_level <= level || d.next_level > fmt.last_level()) { r.fault = Fault::Reserved; return r; }
        if (ia & fmt.skipped_index_mask(level, d.next_level)) { r.fault = Fault::Reserved; return r; }
        perms.restrict_by(d);
        if constexpr (std::is_invocable_v<OnTableFn&, unsigned, uint64_t, const TablePermissions&>)
          on_table(d.next_level, d.address, perms);
        else
          on_table(d.next_level, d.address);
        level = d.next_level;
        table = d.address;
        break;
      case DecodedDescriptor::Kind::Leaf: {
        if (fmt.output_bits() < 64 && (d.address >> fmt.output_bits()) != 0) { r.fault = Fault::AddressSize; return r; }
        perms.apply_to(d);
        r.leaf = d;
        r.leaf_bytes = d.leaf_bytes;
        r.output = d.address | (ia & (d.leaf_bytes - 1));
        r.fault = fmt.check_access(d, access);
        return r;
      }
    }
  }
}

template <class FetchFn>
WalkResult walk(const Format& fmt, WalkStart start, uint64_t ia, const Access& access, FetchFn&& fetch) {
  return walk(fmt, start, ia, access, fetch, [](unsigned, uint64_t) {});
}

}  // namespace iommusim::pagetable

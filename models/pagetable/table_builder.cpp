#include "models/pagetable/table_builder.h"

#include "models/common/bits.h"

namespace iommusim::pagetable {

namespace {
std::string hex_error(const char* what, uint64_t a) { return what + common::hex(a); }
}  // namespace

TableBuilder::TableBuilder(const Format& fmt, TableMemory& mem)
    : fmt_(fmt), mem_(mem), root_(mem.allocate_table(fmt.table_bytes(fmt.start_level()))) {}

unsigned TableBuilder::level_for(uint64_t leaf_bytes) const {
  for (unsigned l = fmt_.start_level(); l <= fmt_.last_level(); ++l)
    if ((1ull << fmt_.level_shift(l)) == leaf_bytes && fmt_.leaf_allowed(l)) return l;
  return ~0u;
}

EditResult TableBuilder::map(uint64_t ia, uint64_t out, uint64_t bytes, uint64_t leaf_bytes,
                             const LeafAttributes& attrs) {
  EditResult r;
  const unsigned leaf_level = level_for(leaf_bytes);
  if (leaf_level == ~0u) { r.ok = false; r.error = "leaf size " + std::to_string(leaf_bytes) + " not allowed by " + fmt_.name(); return r; }
  if ((ia | out | bytes) & (leaf_bytes - 1)) { r.ok = false; r.error = "address or size not aligned to the leaf size"; return r; }
  r.leaf_bytes = leaf_bytes;
  if (fmt_.input_bits() < 64 && ((ia + bytes - 1) >> fmt_.input_bits()) != 0) { r.ok = false; r.error = "input address beyond the table's input size"; return r; }
  // The builder keeps its place: consecutive pages whose leaves share a table reuse the
  // table the previous page reached, instead of walking from the root again (tables are
  // never freed, so the pointer stays valid).
  const uint64_t leaf_table_span = leaf_bytes << fmt_.index_bits(leaf_level);
  uint64_t place_table = 0, place_block = ~0ull;
  for (uint64_t off = 0; off < bytes; off += leaf_bytes) {
    const uint64_t va = ia + off;
    const uint64_t block = leaf_table_span ? va / leaf_table_span : 0;
    const bool in_place = block == place_block;
    uint64_t table = in_place ? place_table : root_;
    for (unsigned level = in_place ? leaf_level : fmt_.start_level();; ) {
      const uint64_t daddr = table + fmt_.index(level, va) * fmt_.descriptor_bytes();
      if (level == leaf_level) {
        const DecodedDescriptor old = fmt_.decode(level, mem_.read_descriptor(daddr));
        if (old.kind != DecodedDescriptor::Kind::Invalid) {
          r.ok = false;
          r.error = hex_error(old.kind == DecodedDescriptor::Kind::Leaf ? "already mapped at " : "a table is in the way at ", va);
          return r;
        }
        mem_.write_descriptor(daddr, fmt_.encode_leaf(level, out + off, attrs));
        ++r.descriptors_written;
        place_table = table;
        place_block = block;
        break;
      }
      DecodedDescriptor d = fmt_.decode(level, mem_.read_descriptor(daddr));
      if (d.kind == DecodedDescriptor::Kind::Leaf) { r.ok = false; r.error = "range overlaps an existing larger leaf"; return r; }
      if (d.kind == DecodedDescriptor::Kind::Reserved) { r.ok = false; r.error = "range crosses a malformed entry"; return r; }
      if (d.kind == DecodedDescriptor::Kind::Invalid) {
        const uint64_t next = mem_.allocate_table(fmt_.table_bytes(level + 1));
        if (next == 0) { r.ok = false; r.error = "table pool exhausted"; r.pool_exhausted = true; return r; }
        mem_.write_descriptor(daddr, fmt_.encode_table(level, next));
        ++r.descriptors_written;
        ++r.tables_allocated;
        table = next;
        level = level + 1;
      } else {
        // A table that skips levels (AMD v1) only covers IAs whose skipped index bits are zero.
        if (d.next_level <= level || d.next_level > leaf_level || (va & fmt_.skipped_index_mask(level, d.next_level))) {
          r.ok = false;
          r.error = "range crosses an existing table that skips levels";
          return r;
        }
        table = d.address;
        level = d.next_level;
      }
    }
  }
  return r;
}

EditResult TableBuilder::unmap(uint64_t ia, uint64_t bytes) {
  EditResult r;
  uint64_t va = ia;
  const uint64_t end = ia + bytes;
  while (va < end) {
    uint64_t table = root_;
    unsigned level = fmt_.start_level();
    uint64_t step = 1ull << fmt_.level_shift(fmt_.last_level());
    for (;;) {
      const uint64_t daddr = table + fmt_.index(level, va) * fmt_.descriptor_bytes();
      DecodedDescriptor d = fmt_.decode(level, mem_.read_descriptor(daddr));
      if (d.kind == DecodedDescriptor::Kind::Invalid || d.kind == DecodedDescriptor::Kind::Reserved) {
        step = 1ull << fmt_.level_shift(level);
        break;
      }
      if (d.kind == DecodedDescriptor::Kind::Leaf) {
        // A leaf larger than its level (AMD v1 NextLevel 7) is replicated: clear every copy.
        const uint64_t natural = 1ull << fmt_.level_shift(level);
        const uint64_t copies = d.leaf_bytes > natural ? d.leaf_bytes / natural : 1;
        const uint64_t first =
            copies > 1 ? table + fmt_.index(level, va & ~(d.leaf_bytes - 1)) * fmt_.descriptor_bytes() : daddr;
        for (uint64_t i = 0; i < copies; ++i) {
          mem_.write_descriptor(first + i * fmt_.descriptor_bytes(), fmt_.encode_invalid());
          ++r.descriptors_written;
        }
        if (r.leaf_bytes == 0 || d.leaf_bytes < r.leaf_bytes) r.leaf_bytes = d.leaf_bytes;
        step = d.leaf_bytes;
        break;
      }
      // Past the part of a level-skipping table's range it maps: nothing until the entry's end.
      if (d.next_level <= level || (va & fmt_.skipped_index_mask(level, d.next_level))) {
        step = 1ull << fmt_.level_shift(level);
        break;
      }
      table = d.address;
      level = d.next_level;
    }
    const uint64_t next = (va & ~(step - 1)) + step;
    if (next <= va) break;   // wrapped past the top of a 64-bit input space
    va = next;
  }
  return r;
}

}  // namespace iommusim::pagetable

namespace iommusim::pagetable {

bool TableBuilder::find_leaf(uint64_t va, uint64_t& daddr, unsigned& level, DecodedDescriptor& d) {
  uint64_t table = root_;
  level = fmt_.start_level();
  for (;;) {
    daddr = table + fmt_.index(level, va) * fmt_.descriptor_bytes();
    d = fmt_.decode(level, mem_.read_descriptor(daddr));
    if (d.kind == DecodedDescriptor::Kind::Leaf) return true;
    if (d.kind == DecodedDescriptor::Kind::Invalid) return false;
    if (d.next_level <= level || (va & fmt_.skipped_index_mask(level, d.next_level))) return false;
    table = d.address;
    level = d.next_level;
  }
}

EditResult TableBuilder::change(uint64_t ia, uint64_t bytes, std::optional<uint64_t> out, const LeafAttributes& attrs) {
  EditResult r;
  for (uint64_t va = ia; va < ia + bytes;) {
    uint64_t daddr = 0;
    unsigned level = 0;
    DecodedDescriptor d;
    if (!find_leaf(va, daddr, level, d)) { r.ok = false; r.error = hex_error("nothing mapped at ", va); return r; }
    const uint64_t natural = 1ull << fmt_.level_shift(level);
    if (d.leaf_bytes != natural || (va & (natural - 1)) || va + natural > ia + bytes) {
      r.ok = false;
      r.error = hex_error("range splits the leaf at ", va);
      return r;
    }
    const uint64_t output = out ? *out + (va - ia) : d.address;
    mem_.write_descriptor(daddr, fmt_.encode_leaf(level, output, attrs));
    ++r.descriptors_written;
    if (r.leaf_bytes == 0 || natural < r.leaf_bytes) r.leaf_bytes = natural;
    va += natural;
  }
  return r;
}

}  // namespace iommusim::pagetable

#include "models/pagetable/amd_v1.h"

#include <cassert>

#include "models/common/bits.h"

namespace iommusim::pagetable {

using common::bit;
using common::extract;
using common::mask;

namespace {
constexpr unsigned kOaHi = 51, kOaLo = 12;
}

std::string validate(const AmdV1Config& c) {
  if (c.mode < 1 || c.mode > 6) return "AMD v1 paging mode must be 1..6 (0 and 7 are not page tables)";
  if (c.output_bits < 32 || c.output_bits > 52) return "output size must be 32..52 bits";
  return {};
}

AmdV1Format::AmdV1Format(const AmdV1Config& cfg) : cfg_(cfg) {}

std::string AmdV1Format::name() const { return "amd-v1-mode" + std::to_string(cfg_.mode); }

DecodedDescriptor AmdV1Format::decode(unsigned level, uint64_t raw) const {
  DecodedDescriptor d;
  if (!bit(raw, kPR)) return d;
  // A present entry that is malformed: an I/O page fault with PR=1 (and RZ=1).
  DecodedDescriptor reserved;
  reserved.kind = DecodedDescriptor::Kind::Reserved;
  const unsigned amd = amd_level(level);
  const unsigned next = unsigned(extract(raw, kNextLevelHi, kNextLevelLo));
  if (next >= 1 && next <= 6) {
    if (next >= amd) return reserved;   // a PDE must point to a lower level
    if (raw & mask(60, 52)) return reserved;   // PDE bits 60:52 are reserved
    d.kind = DecodedDescriptor::Kind::Table;
    d.address = raw & mask(kOaHi, kOaLo);
    d.next_level = walk_level(next);
    d.table_allows_read = bit(raw, kIR);
    d.table_allows_write = bit(raw, kIW);
    return d;
  }
  if (!leaf_allowed(level)) return reserved;   // the level-6 table holds no pages
  if (raw & mask(58, 52)) return reserved;     // PTE bits 58:52 are reserved (59 U, 60 FC are not)
  const unsigned natural = level_shift(level);
  unsigned size_shift = natural;
  if (next == kNextLevelLarge) {
    // Bits 11:0 count as ones, bits 63:52 as zeros (the address is zero-extended).
    const uint64_t v = (raw & mask(kOaHi, kOaLo)) | 0xFFF;
    size_shift = unsigned(__builtin_ctzll(~v)) + 1;
    if (size_shift <= natural || size_shift >= natural + 9 || size_shift > kOaHi + 1) return reserved;
  }
  d.kind = DecodedDescriptor::Kind::Leaf;
  d.leaf_bytes = 1ull << size_shift;
  d.address = raw & mask(kOaHi, kOaLo) & ~(d.leaf_bytes - 1);
  d.readable = bit(raw, kIR);
  d.writable = bit(raw, kIW);
  d.user = true;
  d.exec_user = d.exec_priv = true;
  return d;
}

Fault AmdV1Format::check_access(const DecodedDescriptor& leaf, const Access& a) const {
  // No execute permission in v1: an execute request needs what a read needs.
  if (a.write ? !leaf.writable : !leaf.readable) return Fault::Permission;
  return Fault::None;
}

uint64_t AmdV1Format::encode_table(unsigned level, uint64_t next_table) const {
  return encode_table_to(level, next_table, amd_level(level) - 1);
}

uint64_t AmdV1Format::encode_table_to([[maybe_unused]] unsigned level, uint64_t next_table,
                                      unsigned next_amd_level) const {
  assert(next_amd_level >= 1 && next_amd_level < amd_level(level) && "a PDE points to a lower level");
  // Tables allow everything; the leaf carries the permissions (as Linux does).
  return (next_table & mask(kOaHi, kOaLo)) | (uint64_t(next_amd_level) << kNextLevelLo) | (1ull << kPR) |
         (1ull << kIR) | (1ull << kIW);
}

uint64_t AmdV1Format::encode_leaf(unsigned level, uint64_t output, const LeafAttributes& a) const {
  // FC set as Linux does (force coherent); NextLevel 0 = the level's natural size.
  uint64_t d = (output & mask(kOaHi, kOaLo) & ~((1ull << level_shift(level)) - 1)) | (1ull << kPR) | (1ull << kFC);
  if (a.read) d |= 1ull << kIR;
  if (a.write) d |= 1ull << kIW;
  return d;
}

uint64_t AmdV1Format::encode_large_leaf(unsigned level, uint64_t output, uint64_t bytes,
                                        const LeafAttributes& a) const {
  const unsigned natural = level_shift(level);
  if (bytes == (1ull << natural)) return encode_leaf(level, output, a);
  assert(bytes && (bytes & (bytes - 1)) == 0 && "page size must be a power of two");
  assert(bytes > (1ull << natural) && bytes < (1ull << (natural + 9)) && bytes <= (1ull << (kOaHi + 1)) &&
         "large page must lie between this level's size and its parent's");
  assert((output & (bytes - 1)) == 0 && "output must be aligned to the page size");
  // Ones in address bits [log2(bytes)-2 : 12], zero in bit log2(bytes)-1.
  uint64_t d = (output & mask(kOaHi, kOaLo)) | (((bytes >> 1) - 1) & mask(kOaHi, kOaLo)) |
               (uint64_t(kNextLevelLarge) << kNextLevelLo) | (1ull << kPR) | (1ull << kFC);
  if (a.read) d |= 1ull << kIR;
  if (a.write) d |= 1ull << kIW;
  return d;
}

}  // namespace iommusim::pagetable

#include "models/pagetable/x86.h"

#include "models/common/bits.h"

namespace iommusim::pagetable {

using common::bit;
using common::mask;

std::string validate(const X86PagingConfig& c) {
  if (c.levels != 4 && c.levels != 5) return "x86 paging has 4 or 5 levels";
  if (c.output_bits < 32 || c.output_bits > 52) return "output size must be 32..52 bits";
  return {};
}

X86Format::X86Format(const X86PagingConfig& cfg) : cfg_(cfg) {}

std::string X86Format::name() const { return "x86-" + std::to_string(cfg_.levels) + "level"; }

bool X86Format::leaf_allowed(unsigned level) const {
  return level == 4 || level == 3 || (level == 2 && cfg_.pages_1g);
}

DecodedDescriptor X86Format::decode(unsigned level, uint64_t raw) const {
  DecodedDescriptor d;
  if (!bit(raw, kP)) return d;
  DecodedDescriptor reserved;
  reserved.kind = DecodedDescriptor::Kind::Reserved;
  // Address bits from MAXPHYADDR up to 51 are reserved in every entry.
  if (cfg_.output_bits < 52 && (raw & mask(51, cfg_.output_bits))) return reserved;
  const bool ps = level < 4 && bit(raw, kPS);   // bit 7 of a PTE is PAT, not PS
  if (!ps && level < 4) {
    d.kind = DecodedDescriptor::Kind::Table;
    d.address = raw & mask(51, 12);
    d.next_level = level + 1;
    d.table_allows_write = bit(raw, kRW);
    d.table_allows_user = bit(raw, kUS);
    d.table_allows_exec = !bit(raw, kXD);
    return d;
  }
  if (!leaf_allowed(level)) return reserved;   // PS in a PML5E/PML4E, or a 1 GB page without support
  const unsigned shift = level_shift(level);
  // A large page keeps PAT in bit 12; the address bits between it and the page base are reserved.
  if (level < 4 && (raw & mask(shift - 1, 13))) return reserved;
  d.kind = DecodedDescriptor::Kind::Leaf;
  d.leaf_bytes = 1ull << shift;
  d.address = raw & mask(51, shift);
  d.readable = true;
  d.writable = bit(raw, kRW);
  d.user = bit(raw, kUS);
  d.exec_user = d.exec_priv = !bit(raw, kXD);
  d.access_flag = true;   // the IOMMU sets A itself
  return d;
}

Fault X86Format::check_access(const DecodedDescriptor& leaf, const Access& a) const {
  if (a.write && !leaf.writable) return Fault::Permission;
  if (!a.write && !leaf.readable) return Fault::Permission;
  if (!a.privileged && !leaf.user) return Fault::Permission;
  if (a.exec && !(a.privileged ? leaf.exec_priv : leaf.exec_user)) return Fault::Permission;
  return Fault::None;
}

uint64_t X86Format::encode_table(unsigned, uint64_t next_table) const {
  // Tables allow everything; the leaf carries the permissions (as Linux does).
  return (next_table & mask(51, 12)) | (1u << kP) | (1u << kRW) | (1u << kUS) | (1u << kA);
}

uint64_t X86Format::encode_leaf(unsigned level, uint64_t output, const LeafAttributes& a) const {
  // x86 has no read permission: a present page is readable, so attrs.read is not encoded.
  // A and D are set up front (Linux does, so the IOMMU need not write them).
  uint64_t d = (output & mask(51, level_shift(level))) | (1u << kP) | (1u << kA) | (1u << kD);
  if (level < 4) d |= 1u << kPS;
  if (a.write) d |= 1u << kRW;
  if (a.user) d |= 1u << kUS;
  if (!a.exec) d |= 1ull << kXD;
  return d;
}

}  // namespace iommusim::pagetable

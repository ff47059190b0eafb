#include "models/pagetable/vtd_ss.h"

#include "models/common/bits.h"

namespace iommusim::pagetable {

using common::bit;
using common::mask;

std::string validate(const VtdSecondStageConfig& c) {
  if (c.levels < 3 || c.levels > 5) return "VT-d second stage has 3, 4 or 5 levels";
  if (c.output_bits < 32 || c.output_bits > 52) return "output size must be 32..52 bits";
  return {};
}

VtdSecondStageFormat::VtdSecondStageFormat(const VtdSecondStageConfig& cfg) : cfg_(cfg) {}

std::string VtdSecondStageFormat::name() const { return "vtd-ss-" + std::to_string(cfg_.levels) + "level"; }

bool VtdSecondStageFormat::leaf_allowed(unsigned level) const {
  return level == 4 || (level == 3 && cfg_.pages_2m) || (level == 2 && cfg_.pages_1g);
}

DecodedDescriptor VtdSecondStageFormat::decode(unsigned level, uint64_t raw) const {
  DecodedDescriptor d;
  if (!bit(raw, kR) && !bit(raw, kW)) return d;   // no present bit: R=W=0 is not present
  DecodedDescriptor reserved;
  reserved.kind = DecodedDescriptor::Kind::Reserved;
  if (cfg_.output_bits < 52 && (raw & mask(51, cfg_.output_bits))) return reserved;
  const bool ps = level < 4 && bit(raw, kPS);    // bit 7 of an SS-PTE is ignored
  if (!ps && level < 4) {
    d.kind = DecodedDescriptor::Kind::Table;
    d.address = raw & mask(51, 12);
    d.next_level = level + 1;
    d.table_allows_read = bit(raw, kR);
    d.table_allows_write = bit(raw, kW);
    return d;
  }
  if (!leaf_allowed(level)) return reserved;   // PS reserved here
  const unsigned shift = level_shift(level);
  if (raw & mask(shift - 1, 12)) return reserved;   // large page: address bits below its base are reserved
  d.kind = DecodedDescriptor::Kind::Leaf;
  d.leaf_bytes = 1ull << shift;
  d.address = raw & mask(51, shift);
  d.readable = bit(raw, kR);
  d.writable = bit(raw, kW);
  d.user = true;
  d.exec_user = d.exec_priv = true;
  return d;
}

Fault VtdSecondStageFormat::check_access(const DecodedDescriptor& leaf, const Access& a) const {
  if (a.write ? !leaf.writable : !leaf.readable) return Fault::Permission;
  if (a.exec && !leaf.readable) return Fault::Permission;
  return Fault::None;
}

uint64_t VtdSecondStageFormat::encode_table(unsigned, uint64_t next_table) const {
  return (next_table & mask(51, 12)) | (1u << kR) | (1u << kW);
}

uint64_t VtdSecondStageFormat::encode_leaf(unsigned level, uint64_t output, const LeafAttributes& a) const {
  // Note read=write=false encodes a not-present entry: the format has no other way to say it.
  uint64_t d = output & mask(51, level_shift(level));
  if (level < 4) d |= 1u << kPS;
  if (a.read) d |= 1u << kR;
  if (a.write) d |= 1u << kW;
  return d;
}

}  // namespace iommusim::pagetable

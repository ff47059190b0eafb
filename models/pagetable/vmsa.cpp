#include "models/pagetable/vmsa.h"

#include "models/common/bits.h"

namespace iommusim::pagetable {

using common::bit;
using common::mask;

const char* to_string(Fault f) {
  switch (f) {
    case Fault::None: return "none";
    case Fault::Translation: return "translation";
    case Fault::AccessFlag: return "access_flag";
    case Fault::Permission: return "permission";
    case Fault::AddressSize: return "address_size";
    case Fault::FetchAbort: return "fetch_abort";
    case Fault::Reserved: return "reserved";
  }
  return "?";
}

unsigned vmsa_stage1_start_level(unsigned g, unsigned ia) {
  const unsigned s = g - 3;
  const unsigned levels = (ia - g + s - 1) / s;   // ceil((ia - g) / s)
  return 4 - levels;
}

std::optional<unsigned> vmsa_stage2_start_level(unsigned g, unsigned sl0) {
  if (g == 12) {              // 4 KB: SL0 0 -> L2, 1 -> L1, 2 -> L0
    if (sl0 > 2) return std::nullopt;
    return 2 - sl0;
  }
  if (sl0 > 2) return std::nullopt;   // 16 KB / 64 KB: SL0 0 -> L3, 1 -> L2, 2 -> L1
  return 3 - sl0;
}

std::optional<unsigned> vmsa_granule_bits_from_tg0(unsigned tg) {
  switch (tg) {
    case 0: return 12;
    case 1: return 16;
    case 2: return 14;
    default: return std::nullopt;
  }
}

std::optional<unsigned> vmsa_address_bits(unsigned ps) {
  static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52};
  if (ps > 6) return std::nullopt;
  return kBits[ps];
}

std::string validate(const VmsaConfig& c) {
  if (c.stage != 1 && c.stage != 2) return "stage must be 1 or 2";
  if (c.granule_bits != 12 && c.granule_bits != 14 && c.granule_bits != 16) return "granule must be 4K, 16K or 64K";
  if (c.input_bits < 25 || c.input_bits > 48) return "input size must be 25..48 bits";
  if (c.output_bits < 32 || c.output_bits > 48) return "output size must be 32..48 bits";
  if (c.start_level > 3) return "start level must be 0..3";
  const unsigned s = c.granule_bits - 3;
  const unsigned shift = c.granule_bits + s * (3 - c.start_level);
  if (c.input_bits <= shift) return "start level too deep for the input size";
  const unsigned width = c.input_bits - shift;
  const unsigned max_width = c.stage == 2 ? s + 4 : s;   // stage 2 may concatenate up to 16 tables
  if (width > max_width) return "start level too shallow for the input size";
  if (c.granule_bits == 12 && c.start_level == 0 && c.stage == 1 && c.input_bits > 48) return "input too wide";
  return {};
}

VmsaFormat::VmsaFormat(const VmsaConfig& cfg) : cfg_(cfg), bits_per_level_(cfg.granule_bits - 3) {}

std::string VmsaFormat::name() const {
  return std::string("vmsa-s") + std::to_string(cfg_.stage) + "-" + std::to_string(1u << (cfg_.granule_bits - 10)) + "k";
}

unsigned VmsaFormat::level_shift(unsigned level) const {
  return cfg_.granule_bits + bits_per_level_ * (3 - level);
}

unsigned VmsaFormat::index_bits(unsigned level) const {
  if (level == cfg_.start_level) return cfg_.input_bits - level_shift(level);
  return bits_per_level_;
}

bool VmsaFormat::leaf_allowed(unsigned level) const {
  if (level == 3) return true;
  switch (cfg_.granule_bits) {
    case 12: return level == 1 || level == 2;   // 1 GB and 2 MB blocks
    case 14: return level == 2;                 // 32 MB
    case 16: return level == 2;                 // 512 MB
  }
  return false;
}

DecodedDescriptor VmsaFormat::decode(unsigned level, uint64_t raw) const {
  DecodedDescriptor d;
  if (!bit(raw, kValid)) return d;
  const bool table_or_page = bit(raw, kTableOrPage);
  if (level < 3 && table_or_page) {
    d.kind = DecodedDescriptor::Kind::Table;
    d.address = raw & mask(47, cfg_.granule_bits);
    d.next_level = level + 1;
    return d;
  }
  // Level 3 with bit[1] clear is reserved; a block where the granule allows none is invalid.
  if (level == 3 ? !table_or_page : !leaf_allowed(level)) return d;
  d.kind = DecodedDescriptor::Kind::Leaf;
  d.leaf_bytes = 1ull << level_shift(level);
  d.address = raw & mask(47, level_shift(level));
  d.access_flag = bit(raw, kAF);
  if (cfg_.stage == 1) {
    d.readable = true;
    d.writable = !bit(raw, kAP2);
    d.user = bit(raw, kAP1);
    d.exec_user = !bit(raw, kUXN);
    d.exec_priv = !bit(raw, kPXN);
    d.global = !bit(raw, kNG);
  } else {
    d.readable = bit(raw, kS2AP_R);
    d.writable = bit(raw, kS2AP_W);
    d.user = true;
    d.exec_user = d.exec_priv = !bit(raw, kS2XN);
  }
  return d;
}

Fault VmsaFormat::check_access(const DecodedDescriptor& leaf, const Access& a) const {
  if (!leaf.access_flag && !cfg_.hardware_access_flag) return Fault::AccessFlag;
  if (cfg_.stage == 1) {
    if (!a.privileged && !leaf.user) return Fault::Permission;
    if (a.write && !leaf.writable) return Fault::Permission;
    if (a.exec && !(a.privileged ? leaf.exec_priv : leaf.exec_user)) return Fault::Permission;
    return Fault::None;
  }
  if (a.write ? !leaf.writable : !leaf.readable) return Fault::Permission;
  if (a.exec && !leaf.exec_user) return Fault::Permission;
  return Fault::None;
}

uint64_t VmsaFormat::encode_table(unsigned, uint64_t next_table) const {
  return (next_table & mask(47, cfg_.granule_bits)) | 0x3;
}

uint64_t VmsaFormat::encode_leaf(unsigned level, uint64_t output, const LeafAttributes& a) const {
  uint64_t d = (output & mask(47, level_shift(level))) | 1u;
  if (level == 3) d |= 1u << kTableOrPage;
  d |= 3ull << kSH0;                       // inner shareable
  if (a.access_flag) d |= 1ull << kAF;
  if (cfg_.stage == 1) {
    // AttrIndx 0 (MAIR slot 0, Linux: normal WB); nG so entries are ASID-tagged, unless
    // asked for a global entry.
    if (!a.global) d |= 1ull << kNG;
    if (!a.write) d |= 1ull << kAP2;
    if (a.user) d |= 1ull << kAP1;
    if (!a.exec) d |= (1ull << kUXN) | (1ull << kPXN);
  } else {
    d |= 0xFull << kAttrIndxLo;             // MemAttr[5:2] = 0b1111: normal, outer/inner WB
    if (a.read) d |= 1ull << kS2AP_R;
    if (a.write) d |= 1ull << kS2AP_W;
    if (!a.exec) d |= 1ull << kS2XN;
  }
  return d;
}

}  // namespace iommusim::pagetable

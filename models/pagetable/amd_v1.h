// AMD IOMMU v1 (host) I/O page tables: 1 to 6 levels (DTE Mode), 4 KB base pages.
//
// Models: PDEs whose NextLevel names the level of the next table, including level
// skipping (NextLevel below current - 1): the IOVA index bits of the skipped levels must be
// zero, else an I/O page fault with PR=1 (Fault::Reserved) -- the walker checks it; natural-size
// leaves (NextLevel 0) at levels 1..5; NextLevel 7 "large pages" whose size is the run of
// ones in the address bits above 12 (size = 2^(1 + first zero bit of pte | 0xFFF)), larger
// than the level's natural size and smaller than its parent's; IR/IW ANDed across every
// level. An address at or above output_bits faults as Fault::AddressSize. Reserved bits
// (PDE 60:52, PTE 58:52; VirtualBox IOMMU_PDE_RSVD_MASK / IOMMU_PTE_RSVD_MASK) decode as
// Kind::Reserved, like bad NextLevel and large-page encodings.
// Does not model: Mode 0 / Mode 7 (no translation / reserved: the device model handles
// them), the DTE's own IR/IW (the model ANDs them), A/D updates, U, FC and SME C-bit
// semantics. The 512 GB page erratum is Linux's to avoid: such a leaf decodes.
//
// Levels: walk level w = 6 - AMD level. w0 = AMD level 6 (IOVA bits 63:57, 7 index bits),
// w1 = level 5 (56:48) ... w5 = level 1 (20:12, 4 KB PTEs). Mode m starts at w = 6 - m
// and covers IOVA bits [min(63, 11 + 9m):0].
#pragma once
#include "models/pagetable/format.h"

namespace iommusim::pagetable {

struct AmdV1Config {
  unsigned mode = 4;            // DTE Mode: 1..6 levels
  unsigned output_bits = 52;
};

// Returns an error naming the problem, or empty.
std::string validate(const AmdV1Config& c);

class AmdV1Format final : public Format {
 public:
  explicit AmdV1Format(const AmdV1Config& cfg);

  std::string name() const override;
  unsigned start_level() const override { return 6 - cfg_.mode; }
  unsigned last_level() const override { return 5; }
  unsigned level_shift(unsigned level) const override { return 12 + 9 * (5 - level); }
  unsigned index_bits(unsigned level) const override { return level == 0 ? 7 : 9; }
  unsigned input_bits() const override { return cfg_.mode >= 6 ? 64 : 12 + 9 * cfg_.mode; }
  unsigned output_bits() const override { return cfg_.output_bits; }
  bool leaf_allowed(unsigned level) const override { return level >= 1; }   // not AMD level 6

  DecodedDescriptor decode(unsigned level, uint64_t raw) const override;
  Fault check_access(const DecodedDescriptor& leaf, const Access& a) const override;
  // A PDE pointing at the next level down (NextLevel = AMD level - 1), IR and IW set.
  uint64_t encode_table(unsigned level, uint64_t next_table) const override;
  // A natural-size PTE (NextLevel 0).
  uint64_t encode_leaf(unsigned level, uint64_t output, const LeafAttributes& attrs) const override;

  // A PDE that skips levels: next_amd_level (1..AMD level - 1) is where next_table belongs.
  uint64_t encode_table_to(unsigned level, uint64_t next_table, unsigned next_amd_level) const;
  // A NextLevel 7 PTE of `bytes` (a power of two, natural size < bytes < parent's); the
  // caller replicates it into the bytes / natural-size entries it covers. A natural-size
  // request gives encode_leaf's NextLevel 0 entry (hardware rejects 7 there).
  uint64_t encode_large_leaf(unsigned level, uint64_t output, uint64_t bytes, const LeafAttributes& attrs) const;

  static unsigned amd_level(unsigned walk_level) { return 6 - walk_level; }
  static unsigned walk_level(unsigned amd_level) { return 6 - amd_level; }
  const AmdV1Config& config() const { return cfg_; }

  // Entry bit positions (AMD IOMMU spec 2.2.3).
  static constexpr unsigned kPR = 0, kNextLevelLo = 9, kNextLevelHi = 11, kU = 59, kFC = 60, kIR = 61, kIW = 62;
  static constexpr unsigned kNextLevelLarge = 7;

 private:
  AmdV1Config cfg_;
};

}  // namespace iommusim::pagetable

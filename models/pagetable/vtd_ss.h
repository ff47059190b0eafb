// Intel VT-d second-stage translation tables (3, 4 or 5 levels: AGAW 39/48/57 bits).
//
// Models: 4 KB pages, 2 MB and 1 GB pages (PS) when the capability allows them; R and W,
// ANDed across every level (a table with R=0 removes read below it, W=0 removes write);
// an entry with R=0 and W=0 is not present; reserved-bit checks (address bits at and above
// output_bits, PS in an SS-PML5E/SS-PML4E or where the large page is not supported, the
// low address bits of a large page) fault as a translation fault.
// Does not model: the X (execute) bit (an execute request needs only R: execute is treated
// as allowed), A/D updates (SSADE), EMT/IPAT memory types, SNP and TM beyond encoding
// nothing for them.
//
// Levels: 0 = SS-PML5 (bits 56:48), 1 = SS-PML4 (47:39), 2 = SS-PDPT (38:30),
// 3 = SS-PD (29:21), 4 = SS-PT (20:12). A 3-level table starts at level 2.
#pragma once
#include "models/pagetable/format.h"

namespace iommusim::pagetable {

struct VtdSecondStageConfig {
  unsigned levels = 4;          // 3, 4 or 5 (AGAW 39/48/57)
  bool pages_2m = true, pages_1g = true;   // CAP.SLLPS bits 0 and 1
  unsigned output_bits = 48;    // HAW: address bits at and above are reserved
};

// Returns an error naming the problem, or empty.
std::string validate(const VtdSecondStageConfig& c);

class VtdSecondStageFormat final : public Format {
 public:
  explicit VtdSecondStageFormat(const VtdSecondStageConfig& cfg);

  std::string name() const override;
  unsigned start_level() const override { return 5 - cfg_.levels; }
  unsigned last_level() const override { return 4; }
  unsigned level_shift(unsigned level) const override { return 12 + 9 * (4 - level); }
  unsigned index_bits(unsigned) const override { return 9; }
  unsigned input_bits() const override { return 12 + 9 * cfg_.levels; }
  unsigned output_bits() const override { return cfg_.output_bits; }
  bool leaf_allowed(unsigned level) const override;

  DecodedDescriptor decode(unsigned level, uint64_t raw) const override;
  Fault check_access(const DecodedDescriptor& leaf, const Access& a) const override;
  uint64_t encode_table(unsigned level, uint64_t next_table) const override;
  uint64_t encode_leaf(unsigned level, uint64_t output, const LeafAttributes& attrs) const override;

  const VtdSecondStageConfig& config() const { return cfg_; }

  // Entry bit positions (VT-d 9.8).
  static constexpr unsigned kR = 0, kW = 1, kX = 2, kPS = 7, kA = 8, kD = 9, kSNP = 11;

 private:
  VtdSecondStageConfig cfg_;
};

}  // namespace iommusim::pagetable

// x86-64 long-mode paging (4-level and 5-level), as VT-d first-stage and AMD v2 (guest)
// translation read it.
//
// Models: 4 KB pages, 2 MB pages (PDE.PS) and 1 GB pages (PDPTE.PS, when pages_1g);
// P, R/W, U/S and XD, ANDed across every level (a table with R/W=0 removes write below
// it, U/S=0 removes user access, XD=1 removes execute); reserved-bit checks (address bits
// at and above output_bits, PS in a PML5E/PML4E or in a PDPTE without 1 GB pages, the
// low address bits of a large page above PAT) fault as a translation fault.
// Does not model: A/D updates (the IOMMU sets them itself; we never write them back, so
// A is treated as set), the upper canonical half (addresses at or above 2^48 / 2^57 are
// out of range and fault; Linux IOVAs and AMD's non-sign-extended PASID-0 use are in the
// lower half), SMEP/SMAP and CR0.WP=0 (a write to a read-only page always faults), PAT,
// PCD/PWT, G and protection keys.
//
// Levels: 0 = PML5 (bits 56:48), 1 = PML4 (47:39), 2 = PDPT (38:30), 3 = PD (29:21),
// 4 = PT (20:12). A 4-level table starts at level 1, a 5-level table at level 0.
#pragma once
#include "models/pagetable/format.h"

namespace iommusim::pagetable {

struct X86PagingConfig {
  unsigned levels = 4;        // 4 or 5
  bool pages_1g = true;       // 1 GB pages (CPUID / VT-d FS1GP / AMD v2 always)
  unsigned output_bits = 52;  // MAXPHYADDR / HAW: address bits at and above are reserved
};

// Returns an error naming the problem, or empty.
std::string validate(const X86PagingConfig& c);

class X86Format final : public Format {
 public:
  explicit X86Format(const X86PagingConfig& cfg);

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

  const X86PagingConfig& config() const { return cfg_; }

  // Entry bit positions (Intel SDM vol. 3 4.5; VT-d 9.7; AMD IOMMU 2.2.6).
  static constexpr unsigned kP = 0, kRW = 1, kUS = 2, kPWT = 3, kPCD = 4, kA = 5, kD = 6, kPS = 7,
                            kXD = 63;

 private:
  X86PagingConfig cfg_;
};

}  // namespace iommusim::pagetable

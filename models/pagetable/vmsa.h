// VMSAv8-64 translation tables (ARM stage 1 and stage 2), as SMMUv3 reads them.
//
// Models: 4 KB, 16 KB and 64 KB granules; input sizes from TxSZ; stage-1 start level
// derived from T0SZ, stage-2 start level from SL0 with concatenated start tables; table,
// block and page descriptors; stage-1 AP[2:1]/PXN/UXN/AF and stage-2 S2AP/XN/AF checks;
// output-size (address size) faults.
// Does not model: hierarchical APTable/XNTable/PXNTable controls, 52-bit LPA/LPA2
// descriptors, the contiguous hint, hardware dirty-bit updates (AF clear with HA=0 faults;
// with HA=1 it is treated as set) and memory attributes beyond encoding them.
#pragma once
#include <optional>

#include "models/pagetable/format.h"

namespace iommusim::pagetable {

struct VmsaConfig {
  unsigned stage = 1;           // 1 or 2
  unsigned granule_bits = 12;   // 12 (4 KB), 14 (16 KB), 16 (64 KB)
  unsigned input_bits = 48;     // 64 - TxSZ
  unsigned start_level = 0;     // stage 2: from SL0 (see stage2_start_level); stage 1: derived
  unsigned output_bits = 48;    // IPS / PS
  bool hardware_access_flag = false;
};

// Stage-1 start level for a given granule and input size (the TxSZ rule).
unsigned vmsa_stage1_start_level(unsigned granule_bits, unsigned input_bits);
// Stage-2 start level from SL0; nullopt for reserved encodings.
std::optional<unsigned> vmsa_stage2_start_level(unsigned granule_bits, unsigned sl0);
// Granule from the CD TG0 / STE S2TG encoding (0 = 4K, 1 = 64K, 2 = 16K).
std::optional<unsigned> vmsa_granule_bits_from_tg0(unsigned tg);
// OAS/IPS/PS encoding to bits (0 = 32 .. 5 = 48, 6 = 52).
std::optional<unsigned> vmsa_address_bits(unsigned ps);
// Returns an error naming the problem, or empty.
std::string validate(const VmsaConfig& c);

class VmsaFormat final : public Format {
 public:
  explicit VmsaFormat(const VmsaConfig& cfg);

  std::string name() const override;
  unsigned start_level() const override { return cfg_.start_level; }
  unsigned last_level() const override { return 3; }
  unsigned level_shift(unsigned level) const override;
  unsigned index_bits(unsigned level) const override;
  unsigned input_bits() const override { return cfg_.input_bits; }
  unsigned output_bits() const override { return cfg_.output_bits; }
  bool leaf_allowed(unsigned level) const override;

  DecodedDescriptor decode(unsigned level, uint64_t raw) const override;
  Fault check_access(const DecodedDescriptor& leaf, const Access& a) const override;
  uint64_t encode_table(unsigned level, uint64_t next_table) const override;
  uint64_t encode_leaf(unsigned level, uint64_t output, const LeafAttributes& attrs) const override;

  const VmsaConfig& config() const { return cfg_; }

  // Descriptor bit positions (ARM ARM D8.3).
  static constexpr unsigned kValid = 0, kTableOrPage = 1, kAttrIndxLo = 2, kAP1 = 6, kAP2 = 7, kSH0 = 8,
                            kAF = 10, kNG = 11, kPXN = 53, kUXN = 54, kS2AP_R = 6, kS2AP_W = 7, kS2XN = 54;

 private:
  VmsaConfig cfg_;
  unsigned bits_per_level_;
};

}  // namespace iommusim::pagetable

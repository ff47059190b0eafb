// SMMUv3 in-memory configuration structures: Stream Table Entry (STE), Context
// Descriptor (CD) and 2-level stream-table L1 descriptor. Field positions follow the Arm
// SMMUv3 architecture specification (IHI 0070), sections 5.1 (level-1 stream table
// descriptor), 5.2 (STE) and 5.4 (CD); Linux STRTAB_STE_* / CTXDESC_CD_* masks.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace iommusim::smmuv3 {

// STE.Config: bit0 = S1 enabled, bit1 = S2 enabled, bit2 = "not abort".
enum class SteConfig : uint8_t { Abort = 0, Bypass = 4, S1Trans = 5, S2Trans = 6, Nested = 7 };

using SteWords = std::array<uint64_t, 8>;  // 64-byte STE, dw0..dw7, little-endian dwords

struct StreamTableEntry {
  bool valid = false;
  SteConfig config = SteConfig::Abort;
  uint8_t s1_fmt = 0;
  uint64_t s1_context_ptr = 0;  // byte address, 64-B aligned, bits [51:6]
  uint8_t s1_cd_max = 0;
  uint8_t s1_dss = 0;
  uint8_t s1_cir = 0, s1_cor = 0, s1_csh = 0;
  bool mev = false;
  bool s1_stalld = false;
  uint8_t eats = 0;
  uint8_t strw = 0;
  uint8_t shcfg = 0;
  uint16_t s2_vmid = 0;
  uint8_t s2_t0sz = 0, s2_sl0 = 0, s2_ir0 = 0, s2_or0 = 0, s2_sh0 = 0, s2_tg = 0, s2_ps = 0;
  bool s2_aa64 = false, s2_endi = false, s2_ptw = false, s2_r = false, s2_s = false;
  uint64_t s2_ttb = 0;  // byte address, bits [51:4]

  bool s1_enabled() const { return static_cast<uint8_t>(config) & 1; }
  bool s2_enabled() const { return static_cast<uint8_t>(config) & 2; }
};

// Encoders assert that every field fits its width (a too-wide value is a model bug).
SteWords encode_ste(const StreamTableEntry&);
// Decodes and validates. On an ill-formed STE returns std::nullopt and sets *why
// (if non-null) to a short reason naming the field; the model turns that into C_BAD_STE.
// V=0 is not a decode error: the entry comes back with valid=false, unvalidated.
std::optional<StreamTableEntry> decode_ste(const SteWords&, std::string* why);

using CdWords = std::array<uint64_t, 8>;

struct ContextDescriptor {
  bool valid = false;
  uint8_t t0sz = 0;
  uint8_t tg0 = 0;
  uint8_t irgn0 = 0, orgn0 = 0, sh0 = 0;
  bool epd0 = false, endi = false;
  uint8_t t1sz = 0, tg1 = 0;
  bool epd1 = false;
  uint8_t ips = 0;
  uint8_t tbi = 0;
  bool aa64 = false, hd = false, ha = false;
  bool s = false, r = false, a = false, aset = false;
  uint16_t asid = 0;
  uint64_t ttb0 = 0, ttb1 = 0;  // byte addresses, bits [51:4]
  uint64_t mair = 0;
};

CdWords encode_cd(const ContextDescriptor&);
// V=0 -> returned with valid=false, unvalidated (the model raises C_BAD_CD).
// Ill-formed -> std::nullopt + *why.
std::optional<ContextDescriptor> decode_cd(const CdWords&, std::string* why);

// 2-level stream table L1 descriptor (8 bytes): SPAN[4:0], L2Ptr[51:6].
struct StreamTableL1Desc {
  uint8_t span = 0;
  uint64_t l2_ptr = 0;  // byte address, 64-B aligned
};
uint64_t encode_st_l1(const StreamTableL1Desc&);
StreamTableL1Desc decode_st_l1(uint64_t);

}  // namespace iommusim::smmuv3

#include "models/smmuv3/structures.h"

#include <cassert>

#include "models/common/bits.h"

namespace iommusim::smmuv3 {
namespace {

using common::Field;
using common::mask;


using common::reject;

// ---- STE fields (IHI 0070 section 5.2) ----
namespace ste {
// dw0
using V = Field<0, 0>;
using Config = Field<3, 1>;
using S1Fmt = Field<5, 4>;
using S1ContextPtr = Field<51, 6>;
using S1CDMax = Field<63, 59>;
// dw1
using S1DSS = Field<1, 0>;
using S1CIR = Field<3, 2>;
using S1COR = Field<5, 4>;
using S1CSH = Field<7, 6>;
using MEV = Field<19, 19>;
using S1STALLD = Field<27, 27>;
using EATS = Field<29, 28>;
using STRW = Field<31, 30>;
using SHCFG = Field<45, 44>;
// dw2. S2S/S2R use the Linux positions (57/58). QEMU instead reads S2HD=56, S2HA=57,
// S2S=58; revisit against ARM IHI 0070 section 5.2 if stall/record matters.
using S2VMID = Field<15, 0>;
using S2T0SZ = Field<37, 32>;
using S2SL0 = Field<39, 38>;
using S2IR0 = Field<41, 40>;
using S2OR0 = Field<43, 42>;
using S2SH0 = Field<45, 44>;
using S2TG = Field<47, 46>;
using S2PS = Field<50, 48>;
using S2AA64 = Field<51, 51>;
using S2ENDI = Field<52, 52>;
using S2PTW = Field<54, 54>;
using S2S = Field<57, 57>;
using S2R = Field<58, 58>;
// dw3
using S2TTB = Field<51, 4>;
}  // namespace ste

// ---- CD fields (IHI 0070 section 5.4) ----
namespace cd {
// dw0
using T0SZ = Field<5, 0>;
using TG0 = Field<7, 6>;
using IRGN0 = Field<9, 8>;
using ORGN0 = Field<11, 10>;
using SH0 = Field<13, 12>;
using EPD0 = Field<14, 14>;
using ENDI = Field<15, 15>;
using T1SZ = Field<21, 16>;
using TG1 = Field<23, 22>;
using EPD1 = Field<30, 30>;
using V = Field<31, 31>;
using IPS = Field<34, 32>;
using TBI = Field<39, 38>;
using AA64 = Field<41, 41>;
using HD = Field<42, 42>;
using HA = Field<43, 43>;
using S = Field<44, 44>;
using R = Field<45, 45>;
using A = Field<46, 46>;
using ASET = Field<47, 47>;
using ASID = Field<63, 48>;
// dw1 / dw2
using TTB = Field<51, 4>;
}  // namespace cd

namespace l1 {
using SPAN = Field<4, 0>;
using L2Ptr = Field<51, 6>;
}  // namespace l1

constexpr uint8_t kGranule4K = 0;  // S2TG / TG0 encoding: 0=4K, 1=64K, 2=16K
constexpr uint8_t kMaxPs48 = 5;    // IDR5.OAS-style encoding, 5 = 48 bits; 52-bit not modelled
constexpr uint64_t kTableAlign4K = mask(11, 4);  // TTB low bits that must be 0 for a 4K table

// ARM ARM AArch64.S2InconsistentSL, specialised to the 4K granule:
// the input size must be resolvable from the start level, with at most 16
// concatenated tables at that level. SL0: 0 -> start L2, 1 -> L1, 2 -> L0.
bool s2_sl0_consistent_4k(unsigned sl0, unsigned t0sz) {
  if (sl0 > 2) return false;
  const unsigned stride = 9, granule_bits = 12;
  const unsigned levels = sl0 + 1;  // levels below the start level (final level = 3)
  const unsigned min_ia = levels * stride + granule_bits + 1;
  const unsigned max_ia = min_ia + (stride - 1) + 4;  // one more stride + 2^4 concatenation
  const unsigned ia = 64 - t0sz;
  return ia >= min_ia && ia <= max_ia;
}

}  // namespace

SteWords encode_ste(const StreamTableEntry& e) {
  SteWords w{};
  ste::V::put(w[0], e.valid);
  ste::Config::put(w[0], static_cast<uint8_t>(e.config));
  ste::S1Fmt::put(w[0], e.s1_fmt);
  ste::S1ContextPtr::put_address(w[0], e.s1_context_ptr);
  ste::S1CDMax::put(w[0], e.s1_cd_max);

  ste::S1DSS::put(w[1], e.s1_dss);
  ste::S1CIR::put(w[1], e.s1_cir);
  ste::S1COR::put(w[1], e.s1_cor);
  ste::S1CSH::put(w[1], e.s1_csh);
  ste::MEV::put(w[1], e.mev);
  ste::S1STALLD::put(w[1], e.s1_stalld);
  ste::EATS::put(w[1], e.eats);
  ste::STRW::put(w[1], e.strw);
  ste::SHCFG::put(w[1], e.shcfg);

  ste::S2VMID::put(w[2], e.s2_vmid);
  ste::S2T0SZ::put(w[2], e.s2_t0sz);
  ste::S2SL0::put(w[2], e.s2_sl0);
  ste::S2IR0::put(w[2], e.s2_ir0);
  ste::S2OR0::put(w[2], e.s2_or0);
  ste::S2SH0::put(w[2], e.s2_sh0);
  ste::S2TG::put(w[2], e.s2_tg);
  ste::S2PS::put(w[2], e.s2_ps);
  ste::S2AA64::put(w[2], e.s2_aa64);
  ste::S2ENDI::put(w[2], e.s2_endi);
  ste::S2PTW::put(w[2], e.s2_ptw);
  ste::S2S::put(w[2], e.s2_s);
  ste::S2R::put(w[2], e.s2_r);

  ste::S2TTB::put_address(w[3], e.s2_ttb);
  return w;
}

std::optional<StreamTableEntry> decode_ste(const SteWords& w, std::string* why) {
  StreamTableEntry e;
  e.valid = ste::V::get(w[0]);
  const auto config = static_cast<uint8_t>(ste::Config::get(w[0]));
  e.config = static_cast<SteConfig>(config);
  e.s1_fmt = ste::S1Fmt::get(w[0]);
  e.s1_context_ptr = ste::S1ContextPtr::get_address(w[0]);
  e.s1_cd_max = ste::S1CDMax::get(w[0]);

  e.s1_dss = ste::S1DSS::get(w[1]);
  e.s1_cir = ste::S1CIR::get(w[1]);
  e.s1_cor = ste::S1COR::get(w[1]);
  e.s1_csh = ste::S1CSH::get(w[1]);
  e.mev = ste::MEV::get(w[1]);
  e.s1_stalld = ste::S1STALLD::get(w[1]);
  e.eats = ste::EATS::get(w[1]);
  e.strw = ste::STRW::get(w[1]);
  e.shcfg = ste::SHCFG::get(w[1]);

  e.s2_vmid = ste::S2VMID::get(w[2]);
  e.s2_t0sz = ste::S2T0SZ::get(w[2]);
  e.s2_sl0 = ste::S2SL0::get(w[2]);
  e.s2_ir0 = ste::S2IR0::get(w[2]);
  e.s2_or0 = ste::S2OR0::get(w[2]);
  e.s2_sh0 = ste::S2SH0::get(w[2]);
  e.s2_tg = ste::S2TG::get(w[2]);
  e.s2_ps = ste::S2PS::get(w[2]);
  e.s2_aa64 = ste::S2AA64::get(w[2]);
  e.s2_endi = ste::S2ENDI::get(w[2]);
  e.s2_ptw = ste::S2PTW::get(w[2]);
  e.s2_s = ste::S2S::get(w[2]);
  e.s2_r = ste::S2R::get(w[2]);

  e.s2_ttb = ste::S2TTB::get_address(w[3]);

  // An invalid STE carries no meaning; the caller reports C_BAD_STE for it.
  if (!e.valid) return e;

  // Config 1..3 are reserved encodings.
  if (config >= 1 && config <= 3) return reject(why, "STE.Config reserved");

  if (e.s1_enabled()) {
    // Only the linear CD table is modelled (S1Fmt 1/2 are 2-level formats).
    if (e.s1_fmt != 0) return reject(why, "STE.S1Fmt unsupported (only linear)");
    // SSIDs are at most 20 bits wide.
    if (e.s1_cd_max > 20) return reject(why, "STE.S1CDMax > 20");
    // S1DSS=3 is a reserved encoding.
    if (e.s1_dss == 3) return reject(why, "STE.S1DSS reserved");
  }

  if (e.s2_enabled()) {
    // AArch32 (LPAE) stage-2 tables are not modelled.
    if (!e.s2_aa64) return reject(why, "STE.S2AA64 must be 1");
    // IDR0.TTENDIAN=2 (little-endian only) and IDR0.STALL_MODEL=1 (no stall).
    if (e.s2_endi) return reject(why, "STE.S2ENDI set but IDR0.TTENDIAN=little-endian only");
    if (e.s2_s) return reject(why, "STE.S2S set but IDR0.STALL_MODEL=1 (no stall)");
    // Only the 4 KB stage-2 granule is modelled.
    if (e.s2_tg != kGranule4K) return reject(why, "STE.S2TG unsupported granule");
    // 4K granule: IPA size 25..48 bits.
    if (e.s2_t0sz < 16 || e.s2_t0sz > 39) return reject(why, "STE.S2T0SZ out of range");
    // SL0=3 is reserved for 4K; otherwise the start level must suit the IPA size.
    if (e.s2_sl0 == 3) return reject(why, "STE.S2SL0 reserved");
    if (!s2_sl0_consistent_4k(e.s2_sl0, e.s2_t0sz))
      return reject(why, "STE.S2SL0 inconsistent with S2T0SZ");
    // Output sizes above 48 bits (52-bit PA) are not modelled.
    if (e.s2_ps > kMaxPs48) return reject(why, "STE.S2PS > 48-bit");
    // The stage-2 base must point at a 4K-aligned table.
    if (e.s2_ttb & kTableAlign4K) return reject(why, "STE.S2TTB not 4K aligned");
  }
  return e;
}

CdWords encode_cd(const ContextDescriptor& d) {
  CdWords w{};
  cd::T0SZ::put(w[0], d.t0sz);
  cd::TG0::put(w[0], d.tg0);
  cd::IRGN0::put(w[0], d.irgn0);
  cd::ORGN0::put(w[0], d.orgn0);
  cd::SH0::put(w[0], d.sh0);
  cd::EPD0::put(w[0], d.epd0);
  cd::ENDI::put(w[0], d.endi);
  cd::T1SZ::put(w[0], d.t1sz);
  cd::TG1::put(w[0], d.tg1);
  cd::EPD1::put(w[0], d.epd1);
  cd::V::put(w[0], d.valid);
  cd::IPS::put(w[0], d.ips);
  cd::TBI::put(w[0], d.tbi);
  cd::AA64::put(w[0], d.aa64);
  cd::HD::put(w[0], d.hd);
  cd::HA::put(w[0], d.ha);
  cd::S::put(w[0], d.s);
  cd::R::put(w[0], d.r);
  cd::A::put(w[0], d.a);
  cd::ASET::put(w[0], d.aset);
  cd::ASID::put(w[0], d.asid);
  cd::TTB::put_address(w[1], d.ttb0);
  cd::TTB::put_address(w[2], d.ttb1);
  w[3] = d.mair;
  return w;
}

std::optional<ContextDescriptor> decode_cd(const CdWords& w, std::string* why) {
  ContextDescriptor d;
  d.t0sz = cd::T0SZ::get(w[0]);
  d.tg0 = cd::TG0::get(w[0]);
  d.irgn0 = cd::IRGN0::get(w[0]);
  d.orgn0 = cd::ORGN0::get(w[0]);
  d.sh0 = cd::SH0::get(w[0]);
  d.epd0 = cd::EPD0::get(w[0]);
  d.endi = cd::ENDI::get(w[0]);
  d.t1sz = cd::T1SZ::get(w[0]);
  d.tg1 = cd::TG1::get(w[0]);
  d.epd1 = cd::EPD1::get(w[0]);
  d.valid = cd::V::get(w[0]);
  d.ips = cd::IPS::get(w[0]);
  d.tbi = cd::TBI::get(w[0]);
  d.aa64 = cd::AA64::get(w[0]);
  d.hd = cd::HD::get(w[0]);
  d.ha = cd::HA::get(w[0]);
  d.s = cd::S::get(w[0]);
  d.r = cd::R::get(w[0]);
  d.a = cd::A::get(w[0]);
  d.aset = cd::ASET::get(w[0]);
  d.asid = cd::ASID::get(w[0]);
  d.ttb0 = cd::TTB::get_address(w[1]);
  d.ttb1 = cd::TTB::get_address(w[2]);
  d.mair = w[3];

  if (!d.valid) return d;  // caller raises C_BAD_CD

  // AArch32 stage-1 tables are not modelled.
  if (!d.aa64) return reject(why, "CD.AA64 must be 1");
  // What the model's IDR0 claims (QEMU decode_cd makes the same checks):
  // HTTU=0: no hardware access-flag / dirty updates.
  if (d.ha || d.hd) return reject(why, "CD.HA/HD set but IDR0.HTTU=0");
  // TTENDIAN=2: little-endian tables only.
  if (d.endi) return reject(why, "CD.ENDI set but IDR0.TTENDIAN=little-endian only");
  // STALL_MODEL=1: stalling is not supported.
  if (d.s) return reject(why, "CD.S set but IDR0.STALL_MODEL=1 (no stall)");
  // TERM_MODEL=1: terminated transactions always abort, so CD.A must be 1.
  if (!d.a) return reject(why, "CD.A clear but IDR0.TERM_MODEL=1 (always abort)");
  // Only the 4 KB granule is modelled for TTB0 (TTB1 is unused: Linux sets EPD1).
  if (d.tg0 != kGranule4K) return reject(why, "CD.TG0 unsupported granule");
  // 4K granule, 4-level max: VA size 25..48 bits.
  if (d.t0sz < 16 || d.t0sz > 39) return reject(why, "CD.T0SZ out of range");
  // 52-bit PA not modelled.
  if (d.ips > kMaxPs48) return reject(why, "CD.IPS > 48-bit");
  // Table base must be 4K aligned. Checked even with EPD0=1 (EPD0 is legal and kept).
  if (d.ttb0 & kTableAlign4K) return reject(why, "CD.TTB0 not 4K aligned");
  return d;
}

uint64_t encode_st_l1(const StreamTableL1Desc& d) {
  uint64_t w = 0;
  l1::SPAN::put(w, d.span);
  l1::L2Ptr::put_address(w, d.l2_ptr);
  return w;
}

StreamTableL1Desc decode_st_l1(uint64_t w) {
  StreamTableL1Desc d;
  d.span = l1::SPAN::get(w);
  d.l2_ptr = l1::L2Ptr::get_address(w);
  return d;
}

}  // namespace iommusim::smmuv3

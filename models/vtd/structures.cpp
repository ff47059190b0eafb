#include "models/vtd/structures.h"

#include "models/common/bits.h"

namespace iommusim::vtd {
namespace {

using common::Field;
using common::mask;

using common::reject;

// Bits at or above the host address width (none when haw >= 64).
constexpr uint64_t above_haw(unsigned haw) { return haw >= 64 ? 0 : ~mask(haw - 1, 0); }

// ---- Scalable-mode root entry (VT-d section 9.2) ----
namespace root {
using P = Field<0, 0>;
using CTP = Field<63, 12>;
constexpr uint64_t kRsvd = mask(11, 1);
}  // namespace root

// ---- Scalable-mode context entry (VT-d section 9.4; QEMU reserved masks) ----
namespace ctx {
// dw0
using P = Field<0, 0>;
using FPD = Field<1, 1>;
using DTE = Field<2, 2>;
using PASIDE = Field<3, 3>;
using PRE = Field<4, 4>;
using PDTS = Field<11, 9>;
using PASIDDIRPTR = Field<63, 12>;
// dw1
using RID_PASID = Field<19, 0>;
using RID_PRIV = Field<20, 20>;
constexpr uint64_t kRsvd0 = 0x1E0;                  // bits 8:5
constexpr uint64_t kRsvd1 = 0xFFFFFFFFFFE00000ull;  // bits 63:21
}  // namespace ctx

// ---- PASID directory entry (VT-d section 9.5) ----
namespace pde {
using P = Field<0, 0>;
using FPD = Field<1, 1>;
using PTP = Field<63, 12>;
constexpr uint64_t kRsvd = mask(11, 2);
}  // namespace pde

// ---- PASID table entry (VT-d section 9.6) ----
namespace pe {
// val[0]
using P = Field<0, 0>;
using FPD = Field<1, 1>;
using AW = Field<4, 2>;
using PGTT = Field<8, 6>;
using SSADE = Field<9, 9>;
using SSPTPTR = Field<63, 12>;
// val[1]
using DID = Field<15, 0>;
using PWSNP = Field<23, 23>;
using PGSNP = Field<24, 24>;
// val[2]
using SRE = Field<0, 0>;
using FSPM = Field<3, 2>;
using WPE = Field<4, 4>;
using EAFE = Field<7, 7>;
using FSPTPTR = Field<63, 12>;
// Everything outside the modelled fields. Some of these bits are spec fields Linux
// never sets (memory type, PAT, ERE, ...); a model that ignores them must reject them.
constexpr uint64_t kRsvd0 = mask(5, 5) | mask(11, 10);
constexpr uint64_t kRsvd1 = mask(22, 16) | mask(63, 25);
constexpr uint64_t kRsvd2 = mask(1, 1) | mask(6, 5) | mask(11, 8);
constexpr uint8_t kMaxAw = 3;    // 57-bit, 5-level
constexpr uint8_t kMaxFspm = 1;  // 5-level
}  // namespace pe

}  // namespace

RootWords encode_root_entry(const RootEntry& e) {
  RootWords w{};
  root::P::put(w[0], e.lower_present);
  root::CTP::put_address(w[0], e.lower_ctp);
  root::P::put(w[1], e.upper_present);
  root::CTP::put_address(w[1], e.upper_ctp);
  return w;
}

std::optional<RootEntry> decode_root_entry(const RootWords& w, std::string* why, unsigned haw) {
  RootEntry e;
  e.lower_present = root::P::get(w[0]);
  e.lower_ctp = root::CTP::get_address(w[0]);
  e.upper_present = root::P::get(w[1]);
  e.upper_ctp = root::CTP::get_address(w[1]);
  const uint64_t rsvd = root::kRsvd | above_haw(haw);
  if (e.lower_present && (w[0] & rsvd)) return reject(why, "root entry: reserved bits set in lo (LP half)");
  if (e.upper_present && (w[1] & rsvd)) return reject(why, "root entry: reserved bits set in hi (UP half)");
  return e;
}

SmContextWords encode_sm_context(const SmContextEntry& e) {
  SmContextWords w{};
  ctx::P::put(w[0], e.present);
  ctx::FPD::put(w[0], e.fpd);
  ctx::DTE::put(w[0], e.dte);
  ctx::PASIDE::put(w[0], e.paside);
  ctx::PRE::put(w[0], e.pre);
  ctx::PDTS::put(w[0], e.pdts);
  ctx::PASIDDIRPTR::put_address(w[0], e.pasid_dir_ptr);
  ctx::RID_PASID::put(w[1], e.rid_pasid);
  ctx::RID_PRIV::put(w[1], e.rid_priv);
  return w;
}

std::optional<SmContextEntry> decode_sm_context(const SmContextWords& w, std::string* why, unsigned haw) {
  SmContextEntry e;
  e.present = ctx::P::get(w[0]);
  e.fpd = ctx::FPD::get(w[0]);
  e.dte = ctx::DTE::get(w[0]);
  e.paside = ctx::PASIDE::get(w[0]);
  e.pre = ctx::PRE::get(w[0]);
  e.pdts = ctx::PDTS::get(w[0]);
  e.pasid_dir_ptr = ctx::PASIDDIRPTR::get_address(w[0]);
  e.rid_pasid = ctx::RID_PASID::get(w[1]);
  e.rid_priv = ctx::RID_PRIV::get(w[1]);

  if (!e.present) return e;  // the walker reports "context entry not present"

  if (w[0] & ctx::kRsvd0) return reject(why, "SM context entry: reserved bits set in dw0 [8:5]");
  if (w[0] & above_haw(haw)) return reject(why, "SM context entry: PASIDDIRPTR beyond HAW");
  if (w[1] & ctx::kRsvd1) return reject(why, "SM context entry: reserved bits set in dw1 [63:21]");
  if (w[2] != 0 || w[3] != 0) return reject(why, "SM context entry: reserved bits set in dw2/dw3");
  return e;
}

uint64_t encode_pasid_dir_entry(const PasidDirEntry& e) {
  uint64_t w = 0;
  pde::P::put(w, e.present);
  pde::FPD::put(w, e.fpd);
  pde::PTP::put_address(w, e.pasid_table_ptr);
  return w;
}

std::optional<PasidDirEntry> decode_pasid_dir_entry(uint64_t w, std::string* why, unsigned haw) {
  PasidDirEntry e;
  e.present = pde::P::get(w);
  e.fpd = pde::FPD::get(w);
  e.pasid_table_ptr = pde::PTP::get_address(w);
  if (!e.present) return e;
  if (w & pde::kRsvd) return reject(why, "PASID dir entry: reserved bits set [11:2]");
  if (w & above_haw(haw)) return reject(why, "PASID dir entry: PASID-table pointer beyond HAW");
  return e;
}

PasidEntryWords encode_pasid_entry(const PasidEntry& e) {
  PasidEntryWords w{};
  pe::P::put(w[0], e.present);
  pe::FPD::put(w[0], e.fpd);
  pe::AW::put(w[0], e.aw);
  pe::PGTT::put(w[0], static_cast<uint8_t>(e.pgtt));
  pe::SSADE::put(w[0], e.ssade);
  pe::SSPTPTR::put_address(w[0], e.ssptptr);
  pe::DID::put(w[1], e.did);
  pe::PWSNP::put(w[1], e.pwsnp);
  pe::PGSNP::put(w[1], e.pgsnp);
  pe::SRE::put(w[2], e.sre);
  pe::FSPM::put(w[2], e.fspm);
  pe::WPE::put(w[2], e.wpe);
  pe::EAFE::put(w[2], e.eafe);
  pe::FSPTPTR::put_address(w[2], e.fsptptr);
  return w;
}

std::optional<PasidEntry> decode_pasid_entry(const PasidEntryWords& w, std::string* why, unsigned haw) {
  PasidEntry e;
  e.present = pe::P::get(w[0]);
  e.fpd = pe::FPD::get(w[0]);
  e.aw = pe::AW::get(w[0]);
  const auto pgtt = static_cast<uint8_t>(pe::PGTT::get(w[0]));
  e.pgtt = static_cast<Pgtt>(pgtt);
  e.ssade = pe::SSADE::get(w[0]);
  e.ssptptr = pe::SSPTPTR::get_address(w[0]);
  e.did = pe::DID::get(w[1]);
  e.pwsnp = pe::PWSNP::get(w[1]);
  e.pgsnp = pe::PGSNP::get(w[1]);
  e.sre = pe::SRE::get(w[2]);
  e.fspm = pe::FSPM::get(w[2]);
  e.wpe = pe::WPE::get(w[2]);
  e.eafe = pe::EAFE::get(w[2]);
  e.fsptptr = pe::FSPTPTR::get_address(w[2]);

  if (!e.present) return e;  // the walker reports "PASID entry not present"

  // Reserved bits first (fault 0x5A), then reserved encodings (0x5B).
  if (w[0] & pe::kRsvd0) return reject(why, "PASID entry: reserved bits set in val[0]");
  if (w[1] & pe::kRsvd1) return reject(why, "PASID entry: reserved bits set in val[1]");
  if (w[2] & pe::kRsvd2) return reject(why, "PASID entry: reserved bits set in val[2]");
  for (unsigned i = 3; i < w.size(); ++i)
    if (w[i] != 0) return reject(why, "PASID entry: reserved bits set in val[3..7]");
  if (w[0] & above_haw(haw)) return reject(why, "PASID entry: SSPTPTR beyond HAW");
  if (w[2] & above_haw(haw)) return reject(why, "PASID entry: FSPTPTR beyond HAW");

  if (pgtt == 0 || pgtt > static_cast<uint8_t>(Pgtt::PassThrough)) return reject(why, "PASID entry: PGTT reserved");
  if (e.aw > pe::kMaxAw) return reject(why, "PASID entry: AW reserved");
  // AW=0 would be a 2-level, 30-bit second stage: not a supported AGAW.
  if (e.uses_second_stage() && e.aw == 0) return reject(why, "PASID entry: AW must be 1..3 with a second stage");
  if (e.fspm > pe::kMaxFspm) return reject(why, "PASID entry: FSPM reserved");
  return e;
}

}  // namespace iommusim::vtd

#include "models/vtd/commands.h"

#include <cassert>
#include <cstdio>
#include <utility>

#include "models/common/bits.h"

namespace iommusim::vtd {
namespace {

using common::Field;
using common::mask;

std::nullopt_t reject(std::string* why, reg::Iqei* iqei, reg::Iqei code, std::string reason) {
  if (iqei) *iqei = code;
  return common::reject(why, std::move(reason));
}

using common::hex;

// ---- qw0, shared ----
using TypeLo = Field<3, 0>;
using TypeHi = Field<11, 9>;  // type bits [6:4]
using G = Field<5, 4>;
using Did = Field<31, 16>;
using Pasid = Field<51, 32>;  // P_IOTLB, PC, P_DEV_TLB, page-group response
// qw1 of IOTLB / P_IOTLB
using Am = Field<5, 0>;
using Ih = Field<6, 6>;
using PageAddr = Field<63, 12>;

namespace cc {
using Sid = Field<47, 32>;
using Fm = Field<49, 48>;
constexpr uint64_t kRsvd0 = 0xFFFC00000000F1C0ull;  // 63:50, 15:12, 8:6
}  // namespace cc
namespace iotlb {
using Dw = Field<6, 6>;
using Dr = Field<7, 7>;
constexpr uint64_t kRsvd0 = 0xFFFFFFFF0000F100ull;  // 63:32, 15:12, 8
constexpr uint64_t kRsvd1 = 0xF80;                  // 11:7
}  // namespace iotlb
namespace devtlb {
using PfsidLo = Field<15, 12>;  // PFSID[3:0]
using Mip = Field<20, 16>;
using Sid = Field<47, 32>;
using PfsidHi = Field<63, 52>;  // PFSID[15:4]
using S = Field<0, 0>;
constexpr uint64_t kPfsid = mask(63, 52) | mask(15, 12);
constexpr uint64_t kRsvd0 = mask(51, 48) | mask(31, 21) | mask(8, 4);
constexpr uint64_t kRsvd1 = 0xFFE;  // 11:1
}  // namespace devtlb
namespace iec {
using Gbit = Field<4, 4>;
using Im = Field<31, 27>;
using Iidx = Field<47, 32>;
constexpr uint64_t kRsvd0 = mask(63, 48) | mask(26, 12) | mask(8, 5);
}  // namespace iec
namespace wait {
using If = Field<4, 4>;
using Sw = Field<5, 5>;
using Fn = Field<6, 6>;
using Pd = Field<7, 7>;
using Data = Field<63, 32>;
using Addr = Field<63, 2>;
constexpr uint64_t kRsvd0 = 0xFFFFF100ull;  // 31:12, 8 (PD at 7 is checked on its own)
constexpr uint64_t kRsvd1 = 0x3;
}  // namespace wait
namespace piotlb {
constexpr uint64_t kRsvd0 = 0xFFF000000000F1C0ull;  // 63:52, 15:12, 8:6
constexpr uint64_t kRsvd1 = 0xF80;
}  // namespace piotlb
namespace pc {
constexpr uint64_t kRsvd0 = 0xFFF000000000F1C0ull;
}  // namespace pc
namespace pdevtlb {
using Mip = Field<8, 4>;
using PfsidLo = Field<15, 12>;
using Sid = Field<31, 16>;
using PfsidHi = Field<63, 52>;
using Gbit = Field<0, 0>;
using S = Field<11, 11>;
constexpr uint64_t kPfsid = mask(63, 52) | mask(15, 12);
constexpr uint64_t kRsvd1 = 0x7FE;  // 10:1
}  // namespace pdevtlb
namespace pgrp {
using PasidP = Field<4, 4>;
using Resp = Field<15, 12>;
using Rid = Field<31, 16>;
using Lpig = Field<2, 2>;
using Prgi = Field<11, 3>;
constexpr uint64_t kRsvd0 = mask(63, 52) | mask(8, 5);
constexpr uint64_t kRsvd1 = ~mask(11, 2);
}  // namespace pgrp

constexpr uint64_t kAll = ~uint64_t{0};

DescWords header(DescType t) {
  DescWords w{};
  const auto v = static_cast<uint8_t>(t);
  TypeLo::put(w[0], v & 0xF);
  TypeHi::put(w[0], v >> 4);
  return w;
}

uint16_t join_pfsid(uint64_t lo4, uint64_t hi12) { return static_cast<uint16_t>(hi12 << 4 | lo4); }

bool too_wide(uint64_t value, unsigned bits) { return bits < 64 && (value >> bits) != 0; }

bool aligned_to_am(uint64_t addr, uint8_t am) {
  return 12 + am >= 64 ? addr == 0 : (addr & (psi_bytes(am) - 1)) == 0;
}

}  // namespace

// ---------------------------------------------------------------- builders

DescWords desc_context_cache(CcGran g, uint16_t did, uint16_t sid, uint8_t fm) {
  DescWords w = header(DescType::ContextCache);
  G::put(w[0], static_cast<uint8_t>(g));
  Did::put(w[0], did);
  cc::Sid::put(w[0], sid);
  cc::Fm::put(w[0], fm);
  return w;
}

DescWords desc_iotlb(IotlbGran g, uint16_t did, uint64_t addr, uint8_t am, bool ih, bool dr, bool dw) {
  assert(aligned_to_am(addr, am) && "IOTLB PSI address not aligned to 2^AM pages");
  DescWords w = header(DescType::Iotlb);
  G::put(w[0], static_cast<uint8_t>(g));
  iotlb::Dw::put(w[0], dw);
  iotlb::Dr::put(w[0], dr);
  Did::put(w[0], did);
  Am::put(w[1], am);
  Ih::put(w[1], ih);
  PageAddr::put_address(w[1], addr);
  return w;
}

DescWords desc_dev_tlb(uint16_t sid, uint16_t pfsid, uint8_t mip, uint64_t addr, unsigned size_order) {
  const DevTlbAddr a = encode_devtlb_range(addr, size_order);
  DescWords w = header(DescType::DevTlb);
  devtlb::PfsidLo::put(w[0], pfsid & 0xF);
  devtlb::Mip::put(w[0], mip);
  devtlb::Sid::put(w[0], sid);
  devtlb::PfsidHi::put(w[0], pfsid >> 4);
  devtlb::S::put(w[1], a.s);
  PageAddr::put_address(w[1], a.addr);
  return w;
}

DescWords desc_iec(IecGran g, uint16_t iidx, uint8_t im) {
  DescWords w = header(DescType::Iec);
  iec::Gbit::put(w[0], static_cast<uint8_t>(g));
  iec::Im::put(w[0], im);
  iec::Iidx::put(w[0], iidx);
  return w;
}

DescWords desc_inv_wait(WaitFlags f, uint32_t status_data, uint64_t status_addr) {
  assert((status_addr & 3) == 0 && "status address must be 4-byte aligned");
  DescWords w = header(DescType::InvWait);
  wait::If::put(w[0], f.iflag);
  wait::Sw::put(w[0], f.sw);
  wait::Fn::put(w[0], f.fn);
  wait::Pd::put(w[0], f.pd);
  wait::Data::put(w[0], status_data);
  wait::Addr::put_address(w[1], status_addr);
  return w;
}

DescWords desc_pasid_iotlb(PiotlbGran g, uint16_t did, uint32_t pasid, uint64_t addr, uint8_t am, bool ih) {
  assert(aligned_to_am(addr, am) && "P_IOTLB address not aligned to 2^AM pages");
  DescWords w = header(DescType::PasidIotlb);
  G::put(w[0], static_cast<uint8_t>(g));
  Did::put(w[0], did);
  Pasid::put(w[0], pasid);
  Am::put(w[1], am);
  Ih::put(w[1], ih);
  PageAddr::put_address(w[1], addr);
  return w;
}

DescWords desc_pasid_cache(PcGran g, uint16_t did, uint32_t pasid) {
  DescWords w = header(DescType::PasidCache);
  G::put(w[0], static_cast<uint8_t>(g));
  Did::put(w[0], did);
  Pasid::put(w[0], pasid);
  return w;
}

DescWords desc_pasid_dev_tlb(uint16_t sid, uint16_t pfsid, uint32_t pasid, uint8_t mip, uint64_t addr,
                             unsigned size_order, bool global) {
  const DevTlbAddr a = encode_devtlb_range(addr, size_order);
  DescWords w = header(DescType::PasidDevTlb);
  pdevtlb::Mip::put(w[0], mip);
  pdevtlb::PfsidLo::put(w[0], pfsid & 0xF);
  pdevtlb::Sid::put(w[0], sid);
  Pasid::put(w[0], pasid);
  pdevtlb::PfsidHi::put(w[0], pfsid >> 4);
  pdevtlb::Gbit::put(w[1], global);
  pdevtlb::S::put(w[1], a.s);
  PageAddr::put_address(w[1], a.addr);
  return w;
}

// ---------------------------------------------------------------- device-TLB size encoding

DevTlbAddr encode_devtlb_range(uint64_t addr, unsigned size_order) {
  assert(size_order <= 64 - kPageShift);
  const unsigned log2_bytes = kPageShift + size_order;
  assert((log2_bytes >= 64 ? addr == 0 : (addr & mask(log2_bytes - 1, 0)) == 0) &&
         "device-TLB range not naturally aligned");
  uint64_t a = addr & PageAddr::get_address(kAll);
  if (size_order == 0) return {a, false};
  // Ones below the size bit, then the size bit itself clear.
  if (size_order >= 2) a |= mask(log2_bytes - 2, kPageShift);
  a &= ~(uint64_t{1} << (log2_bytes - 1));
  return {a, true};
}

DevTlbSpan decode_devtlb_range(uint64_t addr, bool s) {
  const uint64_t page = addr & PageAddr::get_address(kAll);
  if (!s) return {page, kPageShift};
  // Span = 2 pages << (number of trailing one bits from bit 12 up). The top 12 bits of
  // page>>12 are zero, so the count stops at 52 at most.
  const unsigned ones = static_cast<unsigned>(__builtin_ctzll(~(page >> kPageShift)));
  const unsigned log2_bytes = kPageShift + 1 + ones;
  if (log2_bytes >= 64) return {0, 64};
  return {page & ~mask(log2_bytes - 1, 0), log2_bytes};
}

// ---------------------------------------------------------------- decoder

QiCaps make_qi_caps(const reg::Capability& cap, const reg::ExtCapability& ecap, bool iqa_dw) {
  QiCaps c;
  c.dw256 = iqa_dw;
  c.mamv = cap.mamv;
  c.psi = cap.psi;
  c.did_bits = cap.did_bits();
  c.pasid_bits = ecap.pasid_bits();
  c.device_tlb = ecap.dt;
  c.pds = ecap.pds;
  c.dit = ecap.dit;
  return c;
}

std::optional<Descriptor> decode_descriptor(const DescWords& w, const QiCaps& caps, std::string* why,
                                            reg::Iqei* iqei) {
  using reg::Iqei;
  const uint64_t qw0 = w[0], qw1 = w[1];
  const auto raw_type = static_cast<uint8_t>(TypeHi::get(qw0) << 4 | TypeLo::get(qw0));
  Descriptor d;
  d.type = static_cast<DescType>(raw_type);

  const bool known = raw_type >= static_cast<uint8_t>(DescType::ContextCache) &&
                     raw_type <= static_cast<uint8_t>(DescType::PageGroupResp);
  if (!known) {
    std::string reason = "unknown descriptor type " + hex(raw_type);
    if (d.type == DescType::PageStreamResp) reason += " (pstrm_resp_dsc: not supported)";
    return reject(why, iqei, Iqei::InvalidType, reason);
  }
  const std::string name = desc_type_name(d.type);
  const bool wide_only = raw_type >= static_cast<uint8_t>(DescType::PasidIotlb);
  if (wide_only && !caps.dw256)
    return reject(why, iqei, Iqei::InvalidType, name + ": 256-bit descriptor in a 128-bit queue (IQA.DW=0)");
  if (caps.dw256 && (w[2] != 0 || w[3] != 0))
    return reject(why, iqei, Iqei::ReservedField, name + ": qw2/qw3 (upper 128 bits) nonzero");

  auto reserved = [&](uint64_t rsvd0, uint64_t rsvd1) -> std::optional<std::string> {
    if (qw0 & rsvd0) return name + ": reserved bits " + hex(qw0 & rsvd0) + " set in qw0";
    if (qw1 & rsvd1) return name + ": reserved bits " + hex(qw1 & rsvd1) + " set in qw1";
    return std::nullopt;
  };
  auto bad = [&](const std::string& what) { return reject(why, iqei, Iqei::ReservedField, name + ": " + what); };
  auto check_did = [&]() { return too_wide(d.did, caps.did_bits); };
  auto check_pasid = [&]() { return too_wide(d.pasid, caps.pasid_bits); };
  // Page-selective IOTLB / P_IOTLB: AM within MAMV, ADDR aligned to the 2^AM pages.
  auto page_range = [&]() -> std::optional<std::string> {
    d.am = Am::get(qw1);
    d.ih = Ih::get(qw1);
    d.addr = PageAddr::get_address(qw1);
    if (d.am > caps.mamv) return "AM " + std::to_string(d.am) + " > MAMV " + std::to_string(caps.mamv);
    if (!aligned_to_am(d.addr, d.am)) return "ADDR " + hex(d.addr) + " not aligned to 2^AM pages";
    return std::nullopt;
  };

  switch (d.type) {
    case DescType::ContextCache: {
      if (auto r = reserved(cc::kRsvd0, kAll)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.g = G::get(qw0);
      if (d.g == 0) return bad("G=0 reserved");
      if (d.g != static_cast<uint8_t>(CcGran::Global)) {
        d.did = Did::get(qw0);
        if (check_did()) return bad("DID wider than CAP.ND");
      }
      if (d.g == static_cast<uint8_t>(CcGran::Device)) {
        d.sid = cc::Sid::get(qw0);
        d.fm = cc::Fm::get(qw0);
      }
      break;
    }
    case DescType::Iotlb: {
      if (auto r = reserved(iotlb::kRsvd0, iotlb::kRsvd1)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.g = G::get(qw0);
      if (d.g == 0) return bad("G=0 reserved");
      d.dw = iotlb::Dw::get(qw0);
      d.dr = iotlb::Dr::get(qw0);
      if (d.g != static_cast<uint8_t>(IotlbGran::Global)) {
        d.did = Did::get(qw0);
        if (check_did()) return bad("DID wider than CAP.ND");
      }
      if (d.g == static_cast<uint8_t>(IotlbGran::Page)) {
        if (!caps.psi) return bad("G=3 (page-selective) without CAP.PSI");
        if (auto r = page_range()) return bad(*r);
      }
      break;
    }
    case DescType::DevTlb: {
      const uint64_t rsvd0 = devtlb::kRsvd0 | (caps.dit ? 0 : devtlb::kPfsid);
      if (auto r = reserved(rsvd0, devtlb::kRsvd1)) {
        if (!caps.dit && (qw0 & devtlb::kPfsid)) return bad("PFSID set without ECAP.DIT (reserved)");
        return reject(why, iqei, Iqei::ReservedField, *r);
      }
      if (!caps.device_tlb) return bad("device-TLB invalidation without ECAP.DT");
      d.sid = devtlb::Sid::get(qw0);
      d.mip = devtlb::Mip::get(qw0);
      d.pfsid = join_pfsid(devtlb::PfsidLo::get(qw0), devtlb::PfsidHi::get(qw0));
      d.size = devtlb::S::get(qw1);
      d.addr = PageAddr::get_address(qw1);
      break;
    }
    case DescType::Iec: {
      if (auto r = reserved(iec::kRsvd0, kAll)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.g = iec::Gbit::get(qw0);
      if (d.g == static_cast<uint8_t>(IecGran::Index)) {
        d.im = iec::Im::get(qw0);
        d.iidx = iec::Iidx::get(qw0);
      }
      break;
    }
    case DescType::InvWait: {
      if (auto r = reserved(wait::kRsvd0, wait::kRsvd1)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.iflag = wait::If::get(qw0);
      d.sw = wait::Sw::get(qw0);
      d.fn = wait::Fn::get(qw0);
      d.pd = wait::Pd::get(qw0);
      if (d.pd && !caps.pds) return bad("PD set without ECAP.PDS");
      d.status_data = wait::Data::get(qw0);
      d.status_addr = wait::Addr::get_address(qw1);  // SW=1 with address 0 is legal
      break;
    }
    case DescType::PasidIotlb: {
      if (auto r = reserved(piotlb::kRsvd0, piotlb::kRsvd1)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.g = G::get(qw0);
      if (d.g != static_cast<uint8_t>(PiotlbGran::Pasid) && d.g != static_cast<uint8_t>(PiotlbGran::Page))
        return bad("G=" + std::to_string(d.g) + " reserved");
      d.did = Did::get(qw0);
      d.pasid = Pasid::get(qw0);
      if (check_did()) return bad("DID wider than CAP.ND");
      if (check_pasid()) return bad("PASID wider than ECAP.PSS");
      if (d.g == static_cast<uint8_t>(PiotlbGran::Page))
        if (auto r = page_range()) return bad(*r);
      break;
    }
    case DescType::PasidCache: {
      if (auto r = reserved(pc::kRsvd0, kAll)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.g = G::get(qw0);
      if (d.g == 2) return bad("G=2 reserved");
      if (d.g != static_cast<uint8_t>(PcGran::Global)) {
        d.did = Did::get(qw0);
        if (check_did()) return bad("DID wider than CAP.ND");
      }
      if (d.g == static_cast<uint8_t>(PcGran::Pasid)) {
        d.pasid = Pasid::get(qw0);
        if (check_pasid()) return bad("PASID wider than ECAP.PSS");
      }
      break;
    }
    case DescType::PasidDevTlb: {
      const uint64_t rsvd0 = caps.dit ? 0 : pdevtlb::kPfsid;
      if (auto r = reserved(rsvd0, pdevtlb::kRsvd1)) {
        if (qw0 & rsvd0) return bad("PFSID set without ECAP.DIT (reserved)");
        return reject(why, iqei, Iqei::ReservedField, *r);
      }
      if (!caps.device_tlb) return bad("device-TLB invalidation without ECAP.DT");
      d.mip = pdevtlb::Mip::get(qw0);
      d.sid = pdevtlb::Sid::get(qw0);
      d.pfsid = join_pfsid(pdevtlb::PfsidLo::get(qw0), pdevtlb::PfsidHi::get(qw0));
      d.global = pdevtlb::Gbit::get(qw1);
      if (!d.global) {
        d.pasid = Pasid::get(qw0);
        if (check_pasid()) return bad("PASID wider than ECAP.PSS");
      }
      d.size = pdevtlb::S::get(qw1);
      d.addr = PageAddr::get_address(qw1);
      break;
    }
    case DescType::PageGroupResp: {
      if (auto r = reserved(pgrp::kRsvd0, pgrp::kRsvd1)) return reject(why, iqei, Iqei::ReservedField, *r);
      d.pasid_present = pgrp::PasidP::get(qw0);
      d.resp_code = pgrp::Resp::get(qw0);
      if (d.resp_code != kRespSuccess && d.resp_code != kRespInvalid && d.resp_code != kRespFailure)
        return bad("RespCode " + hex(d.resp_code) + " reserved");
      d.sid = pgrp::Rid::get(qw0);
      if (d.pasid_present) {
        d.pasid = Pasid::get(qw0);
        if (check_pasid()) return bad("PASID wider than ECAP.PSS");
      }
      d.prg_index = pgrp::Prgi::get(qw1);
      d.lpig = pgrp::Lpig::get(qw1);
      break;
    }
    case DescType::PageStreamResp:
      break;  // unreachable: rejected as unknown above
  }
  return d;
}

const char* desc_type_name(DescType t) {
  switch (t) {
    case DescType::ContextCache: return "cc_inv_dsc";
    case DescType::Iotlb: return "iotlb_inv_dsc";
    case DescType::DevTlb: return "dev_tlb_inv_dsc";
    case DescType::Iec: return "iec_inv_dsc";
    case DescType::InvWait: return "inv_wait_dsc";
    case DescType::PasidIotlb: return "p_iotlb_inv_dsc";
    case DescType::PasidCache: return "pc_inv_dsc";
    case DescType::PasidDevTlb: return "p_dev_tlb_inv_dsc";
    case DescType::PageGroupResp: return "pgrp_resp_dsc";
    case DescType::PageStreamResp: return "pstrm_resp_dsc";
  }
  return "unknown_dsc";
}

std::vector<std::pair<uint8_t, std::string>> descriptor_type_names() {
  std::vector<std::pair<uint8_t, std::string>> out;
  for (DescType t : {DescType::ContextCache, DescType::Iotlb, DescType::DevTlb, DescType::Iec, DescType::InvWait,
                     DescType::PasidIotlb, DescType::PasidCache, DescType::PasidDevTlb, DescType::PageGroupResp})
    out.emplace_back(uint8_t(t), desc_type_name(t));
  return out;
}

// ---------------------------------------------------------------- PSI planning

PsiPlan plan_psi(uint64_t start, uint64_t size, uint8_t mamv, bool psi_supported) {
  assert(size > 0);
  constexpr unsigned kMaxPfnBits = 64 - kPageShift;  // Linux MAX_AGAW_PFN_WIDTH
  PsiPlan p;
  // Ranges of 2^63 bytes or more are "everything" in practice (and would overflow below).
  if (!psi_supported || size == kFlushAll || size >> 63) {
    p.fallback = true;
    return p;
  }
  const uint64_t pages = ((start & (kPageSize - 1)) + size + kPageSize - 1) >> kPageShift;
  unsigned am = pages <= 1 ? 0 : 64 - static_cast<unsigned>(__builtin_clzll(pages - 1));  // log2 roundup
  const uint64_t pfn = start >> kPageShift;
  const uint64_t bitmask = (uint64_t{1} << am) - 1;  // am <= 52 here
  if (pfn & bitmask) {
    // PSI ignores the low AM bits of ADDR: grow AM until one aligned block holds both ends.
    const uint64_t end_pfn = pfn + pages - 1;
    const uint64_t shared = ~(pfn ^ end_pfn) & ~bitmask;
    am = shared ? static_cast<unsigned>(__builtin_ctzll(shared)) : kMaxPfnBits;
  }
  if (am > kMaxPfnBits) am = kMaxPfnBits;
  if (am > mamv) {
    p.fallback = true;
    return p;
  }
  p.am = static_cast<uint8_t>(am);
  p.addr = kPageShift + am >= 64 ? 0 : start & ~(psi_bytes(p.am) - 1);
  return p;
}

std::vector<PsiChunk> split_psi(uint64_t start, uint64_t size, uint8_t mamv) {
  std::vector<PsiChunk> chunks;
  uint64_t pfn = start >> kPageShift;
  const uint64_t end = (start + size + kPageSize - 1) >> kPageShift;  // exclusive
  while (pfn < end) {
    unsigned am = pfn ? static_cast<unsigned>(__builtin_ctzll(pfn)) : 63;
    if (am > mamv) am = mamv;
    while (am > 0 && (uint64_t{1} << am) > end - pfn) --am;
    chunks.push_back({pfn << kPageShift, static_cast<uint8_t>(am)});
    pfn += uint64_t{1} << am;
  }
  return chunks;
}

}  // namespace iommusim::vtd

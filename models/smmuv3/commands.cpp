#include "models/smmuv3/commands.h"

#include <cassert>
#include <utility>

#include "models/common/bits.h"

namespace iommusim::smmuv3 {
namespace {

using common::Field;
using common::mask;


using common::reject;

// dw0
using OpcodeF = Field<7, 0>;
using Ssv = Field<11, 11>;
using Ssid = Field<31, 12>;
using Sid = Field<63, 32>;
using Vmid = Field<47, 32>;
using Asid = Field<63, 48>;
using Num = Field<16, 12>;
using Scale = Field<24, 20>;
using AtcGlobal = Field<9, 9>;
using SyncCsF = Field<13, 12>;
using SyncMsh = Field<23, 22>;
using SyncMsiAttr = Field<27, 24>;
using SyncMsiData = Field<63, 32>;
using ResumeResp = Field<13, 12>;
// dw1
using Leaf = Field<0, 0>;
using Ttl = Field<9, 8>;
using Tg = Field<11, 10>;
using Va = Field<63, 12>;
using Ipa = Field<51, 12>;
using CfgiRange = Field<4, 0>;
using AtcSize = Field<5, 0>;
using PrefetchSize = Field<4, 0>;
using SyncMsiAddr = Field<51, 2>;
using PriPrgi = Field<8, 0>;
using PriResp = Field<13, 12>;
using ResumeStag = Field<15, 0>;

constexpr uint8_t kCfgiAllRange = 31;  // Linux CMDQ_OP_CFGI_ALL: cover the whole SID space
constexpr uint8_t kLinuxMshIsh = 3;
constexpr uint8_t kLinuxMsiAttrOiwb = 0xF;
constexpr unsigned kPageShift = 12;

CmdWords header(Opcode op) {
  CmdWords c{};
  OpcodeF::put(c[0], static_cast<uint8_t>(op));
  return c;
}

// Shared by NH_VA / NH_VAA / S2_IPA.
void put_range(CmdWords& c, bool leaf, const TlbiRange& r) {
  Num::put(c[0], r.num);
  Scale::put(c[0], r.scale);
  Leaf::put(c[1], leaf);
  Ttl::put(c[1], r.ttl);
  Tg::put(c[1], r.tg);
}

bool too_wide(uint64_t value, unsigned bits) { return bits < 64 && (value >> bits) != 0; }

}  // namespace

CmdWords cmd_cfgi_ste(uint32_t sid, bool leaf) {
  CmdWords c = header(Opcode::CfgiSte);
  Sid::put(c[0], sid);
  Leaf::put(c[1], leaf);
  return c;
}

CmdWords cmd_cfgi_all() { return cmd_cfgi_ste_range(0, kCfgiAllRange); }

CmdWords cmd_cfgi_ste_range(uint32_t sid, uint8_t range) {
  CmdWords c = header(Opcode::CfgiAll);
  Sid::put(c[0], sid);
  CfgiRange::put(c[1], range);
  return c;
}

CmdWords cmd_cfgi_cd(uint32_t sid, uint32_t ssid, bool leaf) {
  CmdWords c = header(Opcode::CfgiCd);
  Ssid::put(c[0], ssid);
  Sid::put(c[0], sid);
  Leaf::put(c[1], leaf);
  return c;
}

CmdWords cmd_cfgi_cd_all(uint32_t sid) {
  CmdWords c = header(Opcode::CfgiCdAll);
  Sid::put(c[0], sid);
  return c;
}

CmdWords cmd_tlbi_nh_all(uint16_t vmid) {
  CmdWords c = header(Opcode::TlbiNhAll);
  Vmid::put(c[0], vmid);
  return c;
}

CmdWords cmd_tlbi_nh_asid(uint16_t vmid, uint16_t asid) {
  CmdWords c = header(Opcode::TlbiNhAsid);
  Vmid::put(c[0], vmid);
  Asid::put(c[0], asid);
  return c;
}

CmdWords cmd_tlbi_nh_va(uint16_t vmid, uint16_t asid, uint64_t va, bool leaf, TlbiRange r) {
  CmdWords c = header(Opcode::TlbiNhVa);
  Vmid::put(c[0], vmid);
  Asid::put(c[0], asid);
  put_range(c, leaf, r);
  Va::put_address(c[1], va);
  return c;
}

CmdWords cmd_tlbi_nh_vaa(uint16_t vmid, uint64_t va, bool leaf, TlbiRange r) {
  CmdWords c = header(Opcode::TlbiNhVaa);
  Vmid::put(c[0], vmid);
  put_range(c, leaf, r);
  Va::put_address(c[1], va);
  return c;
}

CmdWords cmd_tlbi_s12_vmall(uint16_t vmid) {
  CmdWords c = header(Opcode::TlbiS12Vmall);
  Vmid::put(c[0], vmid);
  return c;
}

CmdWords cmd_tlbi_s2_ipa(uint16_t vmid, uint64_t ipa, bool leaf, TlbiRange r) {
  CmdWords c = header(Opcode::TlbiS2Ipa);
  Vmid::put(c[0], vmid);
  put_range(c, leaf, r);
  Ipa::put_address(c[1], ipa);
  return c;
}

CmdWords cmd_tlbi_nsnh_all() { return header(Opcode::TlbiNsnhAll); }

CmdWords cmd_sync(SyncCs cs, uint64_t msi_addr, uint32_t msi_data) {
  CmdWords c = header(Opcode::Sync);
  SyncCsF::put(c[0], static_cast<uint8_t>(cs));
  SyncMsh::put(c[0], kLinuxMshIsh);
  SyncMsiAttr::put(c[0], kLinuxMsiAttrOiwb);
  SyncMsiData::put(c[0], msi_data);
  SyncMsiAddr::put_address(c[1], msi_addr);
  return c;
}

CmdWords cmd_prefetch_config(uint32_t sid) {
  CmdWords c = header(Opcode::PrefetchConfig);
  Sid::put(c[0], sid);
  return c;
}

CmdWords cmd_atc_inv(uint32_t sid, bool ssv, uint32_t ssid, uint64_t addr, uint8_t size, bool global) {
  CmdWords c = header(Opcode::AtcInv);
  AtcGlobal::put(c[0], global);
  Ssv::put(c[0], ssv);
  Ssid::put(c[0], ssid);
  Sid::put(c[0], sid);
  AtcSize::put(c[1], size);
  Va::put_address(c[1], addr);
  return c;
}

std::vector<TlbiPiece> plan_tlbi_range(uint64_t iova, uint64_t size, uint64_t pgsize, bool leaf, bool ril) {
  assert(pgsize >= (1ull << kPageShift) && (pgsize & (pgsize - 1)) == 0);
  std::vector<TlbiPiece> pieces;
  const uint64_t end = iova + size;
  if (!ril) {
    for (; iova < end; iova += pgsize) pieces.push_back({iova, TlbiRange{}});
    return pieces;
  }
  // Linux: tg = log2(leaf page size of the domain) = 12 here; TG field = (tg-10)/2 = 1.
  const unsigned log2_pgsize = static_cast<unsigned>(__builtin_ctzll(pgsize));
  TlbiRange r;
  r.tg = (kPageShift - 10) / 2;
  // Rounded up so an unaligned tail is still covered (Linux truncates; callers pass aligned sizes).
  uint64_t num_pages = (size + (1ull << kPageShift) - 1) >> kPageShift;
  if (leaf) {
    // Level hint: 4K -> 3, 2M -> 2, 1G -> 1.
    r.ttl = static_cast<uint8_t>(4 - ((log2_pgsize - 3) / (kPageShift - 3)));
  } else if ((num_pages & 31) == 1) {
    // Erratum workaround: never emit NUM=0,SCALE=0 for a non-leaf range.
    num_pages++;
  }
  while (iova < end && num_pages != 0) {
    // Each command covers the lowest 5-bit chunk of the remaining page count.
    const unsigned scale = static_cast<unsigned>(__builtin_ctzll(num_pages));
    const uint64_t num = (num_pages >> scale) & 31;
    r.scale = static_cast<uint8_t>(scale);
    r.num = static_cast<uint8_t>(num - 1);
    pieces.push_back({iova, r});
    iova += num << (scale + kPageShift);
    num_pages -= num << scale;
  }
  return pieces;
}

uint64_t tlbi_range_bytes(const Command& c) {
  if (c.tg == 0) return 1ull << kPageShift;
  const unsigned granule_shift = 10 + 2 * c.tg;  // TG 1=4K, 2=16K, 3=64K
  return (uint64_t{c.num} + 1) << c.scale << granule_shift;
}

// Opcodes treated as unknown (-> CERROR_ILL): everything not in `Opcode`, notably
// 0x00, 0x07 (QEMU's CFGI_ALL), 0x18/0x1A (TLBI_EL3_*), 0x23 (TLBI_EL2_VAA),
// 0x45 (STALL_TERM), and all other (secure, implementation-defined) opcodes.
// Non-zero reserved bits are ignored rather than rejected.
std::optional<Command> decode_command(const CmdWords& w, const DecodeCaps& caps, std::string* why) {
  const uint64_t dw0 = w[0], dw1 = w[1];
  const auto raw_op = static_cast<uint8_t>(OpcodeF::get(dw0));
  Command c;
  c.op = static_cast<Opcode>(raw_op);

  bool has_sid = false, has_ssid = false, ssid_needs_ssv = true, is_range_tlbi = false;
  switch (c.op) {
    case Opcode::PrefetchAddr:
      c.size = PrefetchSize::get(dw1);
      c.addr = Va::get_address(dw1);
      [[fallthrough]];
    case Opcode::PrefetchConfig:
      has_sid = has_ssid = true;
      break;
    case Opcode::CfgiSte:
      has_sid = true;
      c.leaf = Leaf::get(dw1);
      break;
    case Opcode::CfgiAll:
      has_sid = true;
      c.range = CfgiRange::get(dw1);  // 5 bits, so Range <= 31 always holds
      break;
    case Opcode::CfgiCd:
      has_sid = has_ssid = true;
      ssid_needs_ssv = false;  // CFGI_CD has no SSV bit; SSID is always meaningful
      c.leaf = Leaf::get(dw1);
      break;
    case Opcode::CfgiCdAll:
      has_sid = true;
      break;
    case Opcode::TlbiNhAll:
    case Opcode::TlbiS12Vmall:
      c.vmid = Vmid::get(dw0);
      break;
    case Opcode::TlbiNhAsid:
      c.vmid = Vmid::get(dw0);
      c.asid = Asid::get(dw0);
      break;
    case Opcode::TlbiNhVa:
      c.asid = Asid::get(dw0);
      [[fallthrough]];
    case Opcode::TlbiNhVaa:
      c.vmid = Vmid::get(dw0);
      c.addr = Va::get_address(dw1);
      is_range_tlbi = true;
      break;
    case Opcode::TlbiEl2All:
    case Opcode::TlbiNsnhAll:
      break;
    case Opcode::TlbiEl2Asid:
      c.asid = Asid::get(dw0);
      break;
    case Opcode::TlbiEl2Va:
      c.asid = Asid::get(dw0);
      c.addr = Va::get_address(dw1);
      is_range_tlbi = true;
      break;
    case Opcode::TlbiS2Ipa:
      c.vmid = Vmid::get(dw0);
      c.addr = Ipa::get_address(dw1);
      is_range_tlbi = true;
      break;
    case Opcode::AtcInv:
      has_sid = has_ssid = true;
      c.global = AtcGlobal::get(dw0);
      c.size = AtcSize::get(dw1);
      c.addr = Va::get_address(dw1);
      break;
    case Opcode::PriResp:
      has_sid = has_ssid = true;
      c.prgi = PriPrgi::get(dw1);
      c.resp = PriResp::get(dw1);
      if (c.resp == 3) return reject(why, "CMD_PRI_RESP: Resp=3 reserved");
      break;
    case Opcode::Resume:
      has_sid = true;
      c.resp = ResumeResp::get(dw0);
      c.stag = ResumeStag::get(dw1);
      if (c.resp == 3) return reject(why, "CMD_RESUME: Resp=3 reserved");
      break;
    case Opcode::Sync: {
      const auto cs = static_cast<uint8_t>(SyncCsF::get(dw0));
      if (cs == 3) return reject(why, "CMD_SYNC: CS=3 reserved");
      c.cs = static_cast<SyncCs>(cs);
      c.msh = SyncMsh::get(dw0);
      c.msi_attr = SyncMsiAttr::get(dw0);
      c.msi_data = SyncMsiData::get(dw0);
      c.msi_addr = SyncMsiAddr::get_address(dw1);
      break;
    }
    default: {
      static const char kHex[] = "0123456789ABCDEF";
      std::string reason = "unknown opcode 0x";
      reason += kHex[raw_op >> 4];
      reason += kHex[raw_op & 0xF];
      return reject(why, reason);
    }
  }

  const std::string name = opcode_name(c.op);
  if (has_sid) {
    c.sid = Sid::get(dw0);
    if (too_wide(c.sid, caps.sid_bits)) return reject(why, name + ": SID wider than SIDSIZE");
  }
  if (has_ssid) {
    c.ssv = ssid_needs_ssv && Ssv::get(dw0);
    if (c.ssv || !ssid_needs_ssv) {
      c.ssid = Ssid::get(dw0);
      if (too_wide(c.ssid, caps.ssid_bits)) return reject(why, name + ": SSID wider than SSIDSIZE");
    }
  }
  if (is_range_tlbi) {
    c.num = Num::get(dw0);
    c.scale = Scale::get(dw0);
    c.leaf = Leaf::get(dw1);
    c.ttl = Ttl::get(dw1);
    c.tg = Tg::get(dw1);
    const bool range_fields = c.tg != 0 || c.num != 0 || c.scale != 0;
    if (range_fields && !caps.range_invalidation)
      return reject(why, name + ": range fields (TG/NUM/SCALE) without IDR3.RIL");
    if (c.tg == 0 && (c.num != 0 || c.scale != 0)) return reject(why, name + ": NUM/SCALE set with TG=0");
  }
  return c;
}

const char* opcode_name(Opcode op) {
  switch (op) {
    case Opcode::PrefetchConfig: return "CMD_PREFETCH_CONFIG";
    case Opcode::PrefetchAddr: return "CMD_PREFETCH_ADDR";
    case Opcode::CfgiSte: return "CMD_CFGI_STE";
    case Opcode::CfgiAll: return "CMD_CFGI_STE_RANGE";
    case Opcode::CfgiCd: return "CMD_CFGI_CD";
    case Opcode::CfgiCdAll: return "CMD_CFGI_CD_ALL";
    case Opcode::TlbiNhAll: return "CMD_TLBI_NH_ALL";
    case Opcode::TlbiNhAsid: return "CMD_TLBI_NH_ASID";
    case Opcode::TlbiNhVa: return "CMD_TLBI_NH_VA";
    case Opcode::TlbiNhVaa: return "CMD_TLBI_NH_VAA";
    case Opcode::TlbiEl2All: return "CMD_TLBI_EL2_ALL";
    case Opcode::TlbiEl2Asid: return "CMD_TLBI_EL2_ASID";
    case Opcode::TlbiEl2Va: return "CMD_TLBI_EL2_VA";
    case Opcode::TlbiS12Vmall: return "CMD_TLBI_S12_VMALL";
    case Opcode::TlbiS2Ipa: return "CMD_TLBI_S2_IPA";
    case Opcode::TlbiNsnhAll: return "CMD_TLBI_NSNH_ALL";
    case Opcode::AtcInv: return "CMD_ATC_INV";
    case Opcode::PriResp: return "CMD_PRI_RESP";
    case Opcode::Resume: return "CMD_RESUME";
    case Opcode::Sync: return "CMD_SYNC";
  }
  return "CMD_UNKNOWN";
}

std::vector<std::pair<uint8_t, std::string>> command_type_names() {
  std::vector<std::pair<uint8_t, std::string>> out;
  for (Opcode op : {Opcode::PrefetchConfig, Opcode::PrefetchAddr, Opcode::CfgiSte, Opcode::CfgiAll, Opcode::CfgiCd,
                    Opcode::CfgiCdAll, Opcode::TlbiNhAll, Opcode::TlbiNhAsid, Opcode::TlbiNhVa, Opcode::TlbiNhVaa,
                    Opcode::TlbiEl2All, Opcode::TlbiEl2Asid, Opcode::TlbiEl2Va, Opcode::TlbiS12Vmall, Opcode::TlbiS2Ipa,
                    Opcode::TlbiNsnhAll, Opcode::AtcInv, Opcode::PriResp, Opcode::Resume, Opcode::Sync})
    out.emplace_back(uint8_t(op), opcode_name(op));
  return out;
}

}  // namespace iommusim::smmuv3

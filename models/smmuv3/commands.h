// SMMUv3 command-queue entries (16 bytes): builders (what a driver writes),
// the decoder the model's CMDQ consumer uses, and Linux's range-TLBI planner.
// Field positions: Arm SMMUv3 architecture specification (IHI 0070), chapter 4 (commands:
// 4.3 configuration invalidation, 4.4 TLB invalidation, 4.7 CMD_SYNC); Linux CMDQ_* masks.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iommusim::smmuv3 {

enum class Opcode : uint8_t {
  PrefetchConfig = 0x01, PrefetchAddr = 0x02,
  CfgiSte = 0x03, CfgiAll = 0x04 /* CFGI_STE_RANGE; CFGI_ALL is Range=31 */, CfgiCd = 0x05, CfgiCdAll = 0x06,
  TlbiNhAll = 0x10, TlbiNhAsid = 0x11, TlbiNhVa = 0x12, TlbiNhVaa = 0x13,
  TlbiEl2All = 0x20, TlbiEl2Asid = 0x21, TlbiEl2Va = 0x22,
  TlbiS12Vmall = 0x28, TlbiS2Ipa = 0x2A, TlbiNsnhAll = 0x30,
  AtcInv = 0x40, PriResp = 0x41, Resume = 0x44, Sync = 0x46
};

using CmdWords = std::array<uint64_t, 2>;

enum class SyncCs : uint8_t { None = 0, Irq = 1, Sev = 2 };

struct Command {  // decoded form; fields not used by an opcode are zero
  Opcode op = Opcode::Sync;
  uint32_t sid = 0;
  bool ssv = false;
  uint32_t ssid = 0;
  bool leaf = false;
  uint8_t range = 0;  // CFGI_STE_RANGE: invalidates 2^(range+1) SIDs from sid
  uint16_t vmid = 0;
  uint16_t asid = 0;
  uint8_t num = 0, scale = 0, ttl = 0, tg = 0;  // range-TLBI fields as encoded (NUM = count-1)
  uint64_t addr = 0;  // VA/IPA byte address (VA bits [63:12], IPA [51:12])
  uint8_t size = 0;   // PREFETCH / ATC_INV size
  bool global = false;  // ATC_INV
  SyncCs cs = SyncCs::None;
  uint8_t msh = 0, msi_attr = 0;
  uint32_t msi_data = 0;
  uint64_t msi_addr = 0;  // MSIAddr[51:2] as byte address
  uint16_t prgi = 0;  // PRI_RESP: page-request group index [8:0]
  uint16_t stag = 0;  // RESUME: stall tag
  uint8_t resp = 0;   // PRI_RESP: 0 deny,1 fail,2 success; RESUME: 0 term,1 retry,2 abort
};

// Builders (what a driver writes). All return the two dwords.
CmdWords cmd_cfgi_ste(uint32_t sid, bool leaf);
CmdWords cmd_cfgi_all();  // opcode 0x04 with Range=31
CmdWords cmd_cfgi_ste_range(uint32_t sid, uint8_t range);
CmdWords cmd_cfgi_cd(uint32_t sid, uint32_t ssid, bool leaf);
CmdWords cmd_cfgi_cd_all(uint32_t sid);
CmdWords cmd_tlbi_nh_all(uint16_t vmid);
CmdWords cmd_tlbi_nh_asid(uint16_t vmid, uint16_t asid);

// Range-TLBI fields as they go into the command: NUM is (chunk count - 1).
struct TlbiRange {
  uint8_t num = 0, scale = 0, ttl = 0, tg = 0;  // tg=0: single address (non-range form)
};
CmdWords cmd_tlbi_nh_va(uint16_t vmid, uint16_t asid, uint64_t va, bool leaf, TlbiRange r = {});
CmdWords cmd_tlbi_nh_vaa(uint16_t vmid, uint64_t va, bool leaf, TlbiRange r = {});
CmdWords cmd_tlbi_s12_vmall(uint16_t vmid);
CmdWords cmd_tlbi_s2_ipa(uint16_t vmid, uint64_t ipa, bool leaf, TlbiRange r = {});
CmdWords cmd_tlbi_nsnh_all();
// Like Linux, MSH=ISH(3) and MSIAttr=OIWB(0xF) are written for every CS value
// (they only matter for CS=IRQ).
CmdWords cmd_sync(SyncCs cs, uint64_t msi_addr = 0, uint32_t msi_data = 0);
CmdWords cmd_prefetch_config(uint32_t sid);
CmdWords cmd_atc_inv(uint32_t sid, bool ssv, uint32_t ssid, uint64_t addr, uint8_t size, bool global);

// Range planning as Linux __arm_smmu_tlb_inv_range (IHI 0070 4.4: TG/SCALE/NUM), for a 4 KB-granule
// domain: [iova, iova+size) whose leaf entries are pgsize bytes (Linux's `granule`:
// 4K, 2M or 1G; it sets the TTL hint and, without RIL, the step).
// ril=true: range pieces with TG=1 (4K); ril=false: one non-range piece per pgsize.
struct TlbiPiece {
  uint64_t addr;
  TlbiRange range;
};
std::vector<TlbiPiece> plan_tlbi_range(uint64_t iova, uint64_t size, uint64_t pgsize, bool leaf, bool ril);
// Bytes covered by a decoded TLBI: (num+1) << scale << granule_shift(tg); tg=0 => one 4K page.
uint64_t tlbi_range_bytes(const Command&);

struct DecodeCaps {
  bool range_invalidation = true;  // IDR3.RIL
  unsigned sid_bits = 16;
  unsigned ssid_bits = 20;
};
// Decodes one entry. An illegal command (the model raises GERROR.CMDQ_ERR with
// CERROR_ILL) returns std::nullopt and sets *why (if non-null) to a reason.
std::optional<Command> decode_command(const CmdWords&, const DecodeCaps&, std::string* why);
const char* opcode_name(Opcode);
// Every opcode the decoder accepts, with its name: the command queue's stats by type.
std::vector<std::pair<uint8_t, std::string>> command_type_names();

}  // namespace iommusim::smmuv3

#include "models/vtd/faults.h"

#include "models/common/bits.h"

namespace iommusim::vtd {
namespace {

using common::Field;

// lo
using FI = Field<63, 12>;
// hi
using SID = Field<15, 0>;
using PRIV = Field<29, 29>;
using EXE = Field<30, 30>;
using PP = Field<31, 31>;
using FR = Field<39, 32>;
using PV = Field<59, 40>;
using AT = Field<61, 60>;
using T = Field<62, 62>;
using F = Field<63, 63>;

struct ReasonInfo {
  const char* name;
  const char* text;
};

ReasonInfo info(uint8_t r) {
  switch (static_cast<FaultReason>(r)) {
#define R(id, text) \
  case FaultReason::id: return {#id, text};
    R(ROOT_ENTRY_NOT_PRESENT, "Present bit in root entry is clear")
    R(CONTEXT_ENTRY_NOT_PRESENT, "Present bit in context entry is clear")
    R(CONTEXT_ENTRY_INVALID, "Invalid context entry")
    R(ADDR_BEYOND_MGAW, "Access beyond MGAW")
    R(WRITE_DENIED, "PTE Write access is not set")
    R(READ_DENIED, "PTE Read access is not set")
    R(PAGING_ENTRY_ACCESS, "Next page table ptr is invalid")
    R(ROOT_TABLE_ACCESS, "Root table address invalid")
    R(CONTEXT_TABLE_ACCESS, "Context table ptr is invalid")
    R(ROOT_ENTRY_RESERVED, "non-zero reserved fields in RTP")
    R(CONTEXT_ENTRY_RESERVED, "non-zero reserved fields in CTP")
    R(PAGING_ENTRY_RESERVED, "non-zero reserved fields in PTE")
    R(CONTEXT_ENTRY_TT_BLOCKED, "PCE for translation request specifies blocking")
    R(IR_REQUEST_RESERVED, "Detected reserved fields in the decoded interrupt-remapped request")
    R(IR_INDEX_OVERFLOW, "Interrupt index exceeded the interrupt-remapping table size")
    R(IR_ENTRY_NOT_PRESENT, "Present field in the IRTE entry is clear")
    R(IR_TABLE_ACCESS, "Error accessing interrupt-remapping table pointed by IRTA_REG")
    R(IR_ENTRY_RESERVED, "Detected reserved fields in the IRTE entry")
    R(IR_COMPAT_BLOCKED, "Blocked a compatibility format interrupt request")
    R(IR_SID_MISMATCH, "Blocked an interrupt request due to source-id verification failure")
    R(SM_ROOT_TABLE_ADDR_INVALID, "SM: Invalid Root Table Address")
    R(SM_TTM0_PASID_REQUEST, "SM: TTM 0 for request with PASID")
    R(SM_TTM0_PAGE_REQUEST, "SM: TTM 0 for page group request")
    R(SM_ROOT_ENTRY_ACCESS, "SM: Error attempting to access Root Entry")
    R(SM_ROOT_ENTRY_NOT_PRESENT, "SM: Present bit in Root Entry is clear")
    R(SM_ROOT_ENTRY_RESERVED, "SM: Non-zero reserved field set in Root Entry")
    R(SM_CONTEXT_ENTRY_ACCESS, "SM: Error attempting to access Context Entry")
    R(SM_CONTEXT_ENTRY_NOT_PRESENT, "SM: Present bit in Context Entry is clear")
    R(SM_CONTEXT_ENTRY_RESERVED, "SM: Non-zero reserved field set in the Context Entry")
    R(SM_CONTEXT_ENTRY_INVALID, "SM: Invalid Context Entry")
    R(SM_CONTEXT_DTE_CLEAR, "SM: DTE field in Context Entry is clear")
    R(SM_CONTEXT_PASIDE_CLEAR, "SM: PASID Enable field in Context Entry is clear")
    R(SM_PASID_BEYOND_PDTS, "SM: PASID is larger than the max in Context Entry")
    R(SM_CONTEXT_PRE_CLEAR, "SM: PRE field in Context-Entry is clear")
    R(SM_RID_PASID_ERROR, "SM: RID_PASID field error in Context-Entry")
    R(SM_PASID_DIR_ACCESS, "SM: Error attempting to access the PASID Directory Entry")
    R(SM_PASID_DIR_NOT_PRESENT, "SM: Present bit in Directory Entry is clear")
    R(SM_PASID_DIR_RESERVED, "SM: Non-zero reserved field set in PASID Directory Entry")
    R(SM_PASID_ENTRY_ACCESS, "SM: Error attempting to access PASID Table Entry")
    R(SM_PASID_ENTRY_NOT_PRESENT, "SM: Present bit in PASID Table Entry is clear")
    R(SM_PASID_ENTRY_RESERVED, "SM: Non-zero reserved field set in PASID Table Entry")
    R(SM_PASID_ENTRY_INVALID, "SM: Invalid Scalable-Mode PASID Table Entry")
    R(SM_PASID_ERE_CLEAR, "SM: ERE field is clear in PASID Table Entry")
    R(SM_PASID_SRE_CLEAR, "SM: SRE field is clear in PASID Table Entry")
    R(SM_FS_ENTRY_ACCESS, "SM: Error attempting to access first-level paging entry")
    R(SM_FS_ENTRY_NOT_PRESENT, "SM: Present bit in first-level paging entry is clear")
    R(SM_FS_ENTRY_RESERVED, "SM: Non-zero reserved field set in first-level paging entry")
    R(SM_FS_PML4_ACCESS, "SM: Error attempting to access FL-PML4 entry")
    R(SM_FS_ADDR_BEYOND_MGAW_NESTED, "SM: First-level entry address beyond MGAW in Nested translation")
    R(SM_FS_PML4_READ_DENIED_NESTED, "SM: Read permission error in FL-PML4 entry in Nested translation")
    R(SM_FS_ENTRY_READ_DENIED_NESTED,
      "SM: Read permission error in first-level paging entry in Nested translation")
    R(SM_FS_ENTRY_WRITE_DENIED_NESTED,
      "SM: Write permission error in first-level paging entry in Nested translation")
    R(SM_SS_ENTRY_ACCESS, "SM: Error attempting to access second-level paging entry")
    R(SM_SS_ENTRY_RW_DENIED, "SM: Read/Write permission error in second-level paging entry")
    R(SM_SS_ENTRY_RESERVED, "SM: Non-zero reserved field set in second-level paging entry")
    R(SM_SS_PTPTR_INVALID, "SM: Invalid second-level page table pointer")
    R(SM_SS_AD_UPDATE_NO_SNOOP, "SM: A/D bit update needed in second-level entry when set up in no snoop")
    R(SM_FS_NON_CANONICAL, "SM: Address in first-level translation is not canonical")
    R(SM_FS_USER_ACCESS_DENIED, "SM: U/S set 0 for first-level translation with user privilege")
    R(SM_EXECUTE_DENIED, "SM: No execute permission for request with PASID and ER=1")
    R(SM_ADDR_BEYOND_MAX, "SM: Address beyond the DMA hardware max")
    R(SM_SS_ADDR_BEYOND_MAX, "SM: Second-level entry address beyond the max")
    R(SM_WRITE_DENIED, "SM: No write permission for Write/AtomicOp request")
    R(SM_READ_DENIED, "SM: No read permission for Read/AtomicOp request")
    R(SM_INTERRUPT_ADDR, "SM: Invalid address-interrupt address")
    R(SM_FS_AD_UPDATE_NO_SNOOP, "SM: A/D bit update needed in first-level entry when set up in no snoop")
#undef R
  }
  return {"UNKNOWN", "Unknown"};
}

}  // namespace

const char* reason_name(uint8_t r) { return info(r).name; }
const char* reason_text(uint8_t r) { return info(r).text; }

FrcdWords encode_frcd(const FaultRecord& r) {
  FrcdWords w{};
  w[0] = r.fault_info & FI::get_address(~uint64_t{0});
  SID::put(w[1], r.sid);
  PRIV::put(w[1], r.priv);
  EXE::put(w[1], r.exe);
  PP::put(w[1], r.pasid_present);
  FR::put(w[1], r.reason);
  PV::put(w[1], r.pasid);
  AT::put(w[1], r.at);
  T::put(w[1], static_cast<uint8_t>(r.type));
  F::put(w[1], r.fault);
  return w;
}

FaultRecord decode_frcd(const FrcdWords& w) {
  FaultRecord r;
  r.fault_info = FI::get_address(w[0]);
  r.sid = SID::get(w[1]);
  r.priv = PRIV::get(w[1]);
  r.exe = EXE::get(w[1]);
  r.pasid_present = PP::get(w[1]);
  r.reason = FR::get(w[1]);
  r.pasid = PV::get(w[1]);
  r.at = AT::get(w[1]);
  r.type = static_cast<FaultType>(T::get(w[1]));
  r.fault = F::get(w[1]);
  return r;
}

}  // namespace iommusim::vtd

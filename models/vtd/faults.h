// VT-d fault reasons and the 128-bit fault-recording register (FRCD) record
// (Intel VT-d architecture specification, section 7.1.3 (fault conditions and reason
// codes) and chapter 11 (fault recording registers); reason codes and texts from Linux dmar.c
// dma_remap_fault_reasons / dma_remap_sm_fault_reasons / irq_remap_fault_reasons;
// FRCD layout from Linux dmar_fault and Intel datasheets).
// Models: legacy reasons 0x1-0xD, interrupt-remapping reasons 0x20-0x26 (names only),
// scalable-mode reasons 0x30-0x90; FRCD fields FI, SID, PP/PV, EXE, PRIV, FR, AT, T, F.
// Does not model: advanced fault logging, the newer "T2" type bit (hi[28:16] are
// written as zero and ignored), page-request faults.
// Note: QEMU once used 0x58 for "invalid PASID table entry"; the spec/Linux meaning is
// "PASID table entry access error" and the invalid-entry reason is 0x5B.
#pragma once
#include <array>
#include <cstdint>

namespace iommusim::vtd {

enum class FaultReason : uint8_t {
  // Legacy mode
  ROOT_ENTRY_NOT_PRESENT = 0x01, CONTEXT_ENTRY_NOT_PRESENT = 0x02, CONTEXT_ENTRY_INVALID = 0x03,
  ADDR_BEYOND_MGAW = 0x04, WRITE_DENIED = 0x05, READ_DENIED = 0x06, PAGING_ENTRY_ACCESS = 0x07,
  ROOT_TABLE_ACCESS = 0x08, CONTEXT_TABLE_ACCESS = 0x09, ROOT_ENTRY_RESERVED = 0x0A,
  CONTEXT_ENTRY_RESERVED = 0x0B, PAGING_ENTRY_RESERVED = 0x0C, CONTEXT_ENTRY_TT_BLOCKED = 0x0D,
  // Interrupt remapping
  IR_REQUEST_RESERVED = 0x20, IR_INDEX_OVERFLOW = 0x21, IR_ENTRY_NOT_PRESENT = 0x22,
  IR_TABLE_ACCESS = 0x23, IR_ENTRY_RESERVED = 0x24, IR_COMPAT_BLOCKED = 0x25, IR_SID_MISMATCH = 0x26,
  // Scalable mode: root table / RTADDR
  SM_ROOT_TABLE_ADDR_INVALID = 0x30, SM_TTM0_PASID_REQUEST = 0x31, SM_TTM0_PAGE_REQUEST = 0x32,
  SM_ROOT_ENTRY_ACCESS = 0x38, SM_ROOT_ENTRY_NOT_PRESENT = 0x39, SM_ROOT_ENTRY_RESERVED = 0x3A,
  // Scalable mode: context entry
  SM_CONTEXT_ENTRY_ACCESS = 0x40, SM_CONTEXT_ENTRY_NOT_PRESENT = 0x41, SM_CONTEXT_ENTRY_RESERVED = 0x42,
  SM_CONTEXT_ENTRY_INVALID = 0x43, SM_CONTEXT_DTE_CLEAR = 0x44, SM_CONTEXT_PASIDE_CLEAR = 0x45,
  SM_PASID_BEYOND_PDTS = 0x46, SM_CONTEXT_PRE_CLEAR = 0x47, SM_RID_PASID_ERROR = 0x48,
  // Scalable mode: PASID directory / table entry
  SM_PASID_DIR_ACCESS = 0x50, SM_PASID_DIR_NOT_PRESENT = 0x51, SM_PASID_DIR_RESERVED = 0x52,
  SM_PASID_ENTRY_ACCESS = 0x58, SM_PASID_ENTRY_NOT_PRESENT = 0x59, SM_PASID_ENTRY_RESERVED = 0x5A,
  SM_PASID_ENTRY_INVALID = 0x5B, SM_PASID_ERE_CLEAR = 0x5C, SM_PASID_SRE_CLEAR = 0x5D,
  // Scalable mode: first-stage (FS) and second-stage (SS) walks
  SM_FS_ENTRY_ACCESS = 0x70, SM_FS_ENTRY_NOT_PRESENT = 0x71, SM_FS_ENTRY_RESERVED = 0x72,
  SM_FS_PML4_ACCESS = 0x73, SM_FS_ADDR_BEYOND_MGAW_NESTED = 0x74, SM_FS_PML4_READ_DENIED_NESTED = 0x75,
  SM_FS_ENTRY_READ_DENIED_NESTED = 0x76, SM_FS_ENTRY_WRITE_DENIED_NESTED = 0x77,
  SM_SS_ENTRY_ACCESS = 0x78, SM_SS_ENTRY_RW_DENIED = 0x79, SM_SS_ENTRY_RESERVED = 0x7A,
  SM_SS_PTPTR_INVALID = 0x7B, SM_SS_AD_UPDATE_NO_SNOOP = 0x7C,
  SM_FS_NON_CANONICAL = 0x80, SM_FS_USER_ACCESS_DENIED = 0x81, SM_EXECUTE_DENIED = 0x82,
  SM_ADDR_BEYOND_MAX = 0x83, SM_SS_ADDR_BEYOND_MAX = 0x84, SM_WRITE_DENIED = 0x85,
  SM_READ_DENIED = 0x86, SM_INTERRUPT_ADDR = 0x87, SM_FS_AD_UPDATE_NO_SNOOP = 0x90,
};

// Short name ("SM_PASID_ENTRY_INVALID") and Linux's text for a reason byte; unknown
// values give "UNKNOWN" / "Unknown".
const char* reason_name(uint8_t);
const char* reason_text(uint8_t);
inline const char* reason_name(FaultReason r) { return reason_name(static_cast<uint8_t>(r)); }
constexpr bool is_ir_fault(uint8_t r) { return r >= 0x20 && r <= 0x26; }

// FRCD: lo = FI[63:12]; hi = SID[15:0], PRIV[29], EXE[30], PP[31], FR[39:32],
// PV[59:40], AT[61:60], T[62], F[63].
using FrcdWords = std::array<uint64_t, 2>;  // lo, hi (register offsets +0, +8)

// T: Linux prints T=1 as "DMA Read"; the spec says 1 = read or AtomicOp, 0 = write.
enum class FaultType : uint8_t { Write = 0, Read = 1 };

struct FaultRecord {
  uint64_t fault_info = 0;   // page address of the faulting request (bits [63:12]);
                             // IR faults put the interrupt index in [63:48]
  uint16_t sid = 0;
  bool priv = false;         // privileged-mode-requested (with PASID)
  bool exe = false;          // execute-requested (with PASID)
  bool pasid_present = false;
  uint32_t pasid = 0;        // PV, meaningful when pasid_present
  uint8_t reason = 0;        // FaultReason value
  uint8_t at = 0;            // PCIe address type of the request
  FaultType type = FaultType::Write;
  bool fault = false;        // F: record valid; software clears it by writing 1
};

// Asserts that every field fits. fault_info is masked to [63:12].
FrcdWords encode_frcd(const FaultRecord&);
FaultRecord decode_frcd(const FrcdWords&);

}  // namespace iommusim::vtd

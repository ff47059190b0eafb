// AMD-Vi in-memory configuration structures: the 256-bit Device Table Entry (DTE)
// and the GCR3 table entry (PASID -> guest CR3). Positions: AMD IOMMU Specification
// (48882), section 2.2 (device table entry format, GCR3 table), Linux
// amd_iommu_types.h (DTE_*), QEMU's reserved masks.
// Models: host (v1) translation fields, guest (GCR3/v2) fields, IOTLB/ATS and
// fault-suppression flags, interrupt-remapping fields (decoded only).
// Does not model (rejected when set): data[1] bit 42, data[2] bit 59 and the
// data[3] HW-vIOMMU / attribute-override fields (vImuEn, GuestID, GDeviceID,
// AttrV, Mode0FC, SnoopAttr).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "models/amdvi/registers.h"

namespace iommusim::amdvi {

using DteWords = std::array<uint64_t, 4>;  // data[0..3], little-endian quadwords

constexpr uint8_t kModeNone = 0;  // DTE.Mode 0: no host translation (pass-through)
constexpr uint8_t kIntCtlAbort = 0, kIntCtlForward = 1, kIntCtlRemap = 2;  // 3 reserved
constexpr uint8_t kGuestPaging4Level = 0, kGuestPaging5Level = 1;          // 2, 3 reserved

struct DeviceTableEntry {
  // data[0]
  bool valid = false;
  bool tv = false;   // translation information valid
  uint8_t had = 0;   // host access/dirty update
  uint8_t mode = 0;  // host page-table levels 1..6; 0 = pass-through; 7 reserved
  uint64_t host_pt_root = 0;  // byte address, bits [51:12]
  bool ppr = false;
  bool grpr = false;  // guest PPR response with PASID
  bool giov = false;  // guest I/O protection valid (v2 table for non-PASID requests)
  bool gv = false;    // guest translation valid (GCR3 table in use)
  uint8_t glx = 0;    // GCR3 table levels - 1; 3 reserved
  uint64_t gcr3_root = 0;  // byte address, bits [51:12], split over data[0]/data[1]
  bool ir = false, iw = false;
  // data[1]
  uint16_t domain_id = 0;
  bool iotlb = false;  // I: device may use ATS
  bool se = false;     // suppress repeated page-fault events
  bool sa = false;     // suppress all page-fault events
  uint8_t ioctl = 0;   // port I/O control; 3 reserved
  bool cache = false;
  bool sd = false;  // snoop disable
  bool ex = false;  // allow exclusion range
  uint8_t sysmgt = 0;
  // data[2]
  bool iv = false;          // interrupt map valid
  uint8_t int_tab_len = 0;  // log2(IRTEs), 0..11
  bool ig = false;          // ignore unmapped interrupts
  uint64_t int_table_root = 0;  // byte address, bits [51:6]
  uint8_t guest_paging_mode = 0;
  bool init_pass = false, eint_pass = false, nmi_pass = false;
  uint8_t int_ctl = 0;
  bool lint0_pass = false, lint1_pass = false;
  // data[3]: the hardware vIOMMU's fields (the unmerged HW-vIOMMU RFC, set_dte_viommu;
  // positions in models/amdvi/viommu.h): vImuEn, the guest's DeviceID and the gid.
  bool vimu_en = false;
  uint16_t gdevice_id = 0, guest_id = 0;
};

// Which event a DTE rejection maps to: reserved bits and encodings are
// ILLEGAL_DEV_TABLE_ENTRY; a reserved paging Mode (7) is reported by the spec as
// an IO_PAGE_FAULT (VirtualBox: "DTE reserved paging mode").
enum class DteFault : uint8_t { IllegalDte, IoPageFault };

// Asserts that every field fits its width.
DteWords encode_dte(const DeviceTableEntry&);
// V=0 is not a decode error: the entry comes back with valid=false, unvalidated.
// V=1 and ill-formed -> std::nullopt, *why (if non-null) names the field, *fault
// (if non-null) says which event to log. Checks: reserved bits (data[0] [6:2],[63];
// data[2] [53:52]; data[3] [14:0],[53:48]), unmodelled fields, Mode 7 (with TV=1),
// GLX 3, GuestPagingMode 2/3, IoCtl 3, and with IV=1 IntTabLen > 11 and IntCtl 3.
std::optional<DeviceTableEntry> decode_dte(const DteWords&, std::string* why, DteFault* fault = nullptr);
// Feature checks against the EFR (for a valid, decoded DTE): Mode within HATS,
// GV needs GTSup and GLX <= GLXSup, 5-level guest paging needs GATS=1, GIOV needs
// GIoSup, PPR needs PPRSup, HAD needs HASup (dirty: HDSup). False + *why if not.
bool check_dte_caps(const DeviceTableEntry&, const Caps&, std::string* why);

// GCR3 table entry (8 bytes): GCR3_VALID[0], address[51:12]. At non-leaf levels
// the address is the next-level table; at the leaf it is the guest CR3 (the
// guest's v2 page-table root).
struct Gcr3Entry {
  bool valid = false;
  uint64_t addr = 0;  // byte address, 4K aligned
};
uint64_t encode_gcr3_entry(const Gcr3Entry&);
Gcr3Entry decode_gcr3_entry(uint64_t);

// GLX 0: one 4 KB table (PASID[8:0]); 1: two levels (PASID[17:0]); 2: three levels.
constexpr unsigned gcr3_levels(unsigned glx) { return glx + 1; }
// Index into the table at `level` (top level = GLX, leaf level = 0).
constexpr unsigned gcr3_index(uint32_t pasid, unsigned level) { return (pasid >> (9 * level)) & 0x1FF; }
// True when the PASID is reachable with `glx` (bits above 9*(GLX+1) are zero).
constexpr bool gcr3_pasid_fits(uint32_t pasid, unsigned glx) {
  return 9 * gcr3_levels(glx) >= 32 || (pasid >> (9 * gcr3_levels(glx))) == 0;
}
constexpr uint64_t int_table_entries(unsigned int_tab_len) { return uint64_t{1} << int_tab_len; }

}  // namespace iommusim::amdvi

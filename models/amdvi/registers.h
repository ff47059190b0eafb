// AMD IOMMU (AMD-Vi, pub 48882) MMIO register offsets and fields, and the EFR
// capability set (Caps) that the command/DTE decoders check against.
// Models: the registers Linux drivers/iommu/amd programs (device table, command
// buffer, event log, control, exclusion range, EFR, head/tail, status) and the
// PPR/GA log base/head/tail offsets. Does not model: perf counters (0x4000+),
// SMI filter, MARC, dual logs, segmented device table, x2APIC interrupt control.
// Positions: AMD IOMMU Specification (48882), section 3.4 (MMIO registers), cross-checked
// against Linux amd_iommu_types.h and the VirtualBox AMD IOMMU register unions.
#pragma once
#include <cstdint>

#include "models/common/bits.h"

namespace iommusim::amdvi {

namespace reg {

using common::Field;

constexpr uint64_t DEV_TABLE_BASE = 0x0000, CMD_BUF_BASE = 0x0008, EVT_LOG_BASE = 0x0010,
                   CONTROL = 0x0018, EXCL_BASE = 0x0020, EXCL_LIMIT = 0x0028, EFR = 0x0030,
                   PPR_LOG_BASE = 0x0038, GA_LOG_BASE = 0x00E0, GA_LOG_TAIL_ADDR = 0x00E8,
                   MSI_ADDR_LO = 0x015C, MSI_ADDR_HI = 0x0160, MSI_DATA = 0x0164, EFR2 = 0x01A0,
                   CMD_BUF_HEAD = 0x2000, CMD_BUF_TAIL = 0x2008, EVT_LOG_HEAD = 0x2010,
                   EVT_LOG_TAIL = 0x2018, STATUS = 0x2020, PPR_LOG_HEAD = 0x2030, PPR_LOG_TAIL = 0x2038,
                   GA_LOG_HEAD = 0x2040, GA_LOG_TAIL = 0x2048;
constexpr uint64_t kMmioBytes = 0x4000;  // like QEMU: everything below the perf counters

// DevTableBase: Size = (table bytes / 4 KB) - 1 (Linux iommu_set_device_table;
// VirtualBox IOMMU_GET_DEV_TAB_SIZE = (Size+1) << 12). 0x1FF = 2 MB = 64K DTEs.
using DTB_SIZE = Field<8, 0>;
using DTB_BASE = Field<51, 12>;
constexpr uint64_t dev_table_bytes(uint64_t size_field) { return (size_field + 1) << 12; }
constexpr uint64_t dev_table_size_field(uint64_t bytes) { return (bytes >> 12) - 1; }

// CmdBufBase / EvtLogBase / PPR log base: Len = log2(entries); 8 (256) .. 15 (32K),
// below 8 is reserved. Linux writes 9 (512 x 16 B = 8 KB).
using CMD_BUF_BASE_ADDR = Field<51, 12>;
using CMD_BUF_LEN = Field<59, 56>;
using EVT_LOG_BASE_ADDR = Field<51, 12>;
using EVT_LOG_LEN = Field<59, 56>;
using PPR_LOG_BASE_ADDR = Field<51, 12>;
using PPR_LOG_LEN = Field<59, 56>;
constexpr unsigned kMinLogLen = 8, kMaxLogLen = 15;
constexpr uint64_t kEntryBytes = 16;  // command, event and PPR log entries
constexpr uint64_t log_entries(unsigned len) { return uint64_t{1} << len; }

// Head/tail pointers hold byte offsets into their ring; only [18:4] is writable.
using RING_PTR = Field<18, 4>;  // get_address() / put_address() give the byte offset

// Control (48882 section 3.4, IOMMU Control Register). InvTimeOut is the ATS invalidation timeout (IOTLB_INV_TIMEOUT).
using CTRL_IOMMU_EN = Field<0, 0>;
using CTRL_HT_TUN_EN = Field<1, 1>;
using CTRL_EVT_LOG_EN = Field<2, 2>;
using CTRL_EVT_INT_EN = Field<3, 3>;
using CTRL_COMWAIT_INT_EN = Field<4, 4>;
using CTRL_INV_TIMEOUT = Field<7, 5>;
using CTRL_PASSPW = Field<8, 8>;
using CTRL_RESPASSPW = Field<9, 9>;
using CTRL_COHERENT = Field<10, 10>;
using CTRL_ISOC = Field<11, 11>;
using CTRL_CMD_BUF_EN = Field<12, 12>;
using CTRL_PPR_LOG_EN = Field<13, 13>;
using CTRL_PPR_INT_EN = Field<14, 14>;
using CTRL_PPR_EN = Field<15, 15>;
using CTRL_GT_EN = Field<16, 16>;
using CTRL_GA_EN = Field<17, 17>;
using CTRL_GAM_EN = Field<27, 25>;  // Linux sets bit 25 only (vAPIC mode 1)
using CTRL_GA_LOG_EN = Field<28, 28>;
using CTRL_GA_INT_EN = Field<29, 29>;
using CTRL_NUM_INT_REMAP_MODE = Field<44, 43>;  // 1 = 2K IRTEs
using CTRL_EPH_EN = Field<45, 45>;
using CTRL_XT_EN = Field<50, 50>;
using CTRL_INTCAPXT_EN = Field<51, 51>;
// Hardware vIOMMU (the unmerged HW-vIOMMU RFC only: CONTROL_VCMD_EN, CONTROL_VIOMMU_EN;
// models/amdvi/viommu.h).
using CTRL_VCMD_EN = Field<52, 52>;
using CTRL_VIOMMU_EN = Field<53, 53>;
using CTRL_IRT_CACHE_DIS = Field<59, 59>;
using CTRL_GCR3TRP_MODE = Field<58, 58>;  // Linux CONTROL_GCR3TRPMODE: the DTE's GCR3 root is a GPA
using CTRL_SNPAVIC_EN = Field<61, 61>;
// EFR2 (MMIO 0x1A0)
using EFR2_GCR3TRP_MODE = Field<3, 3>;    // Linux FEATURE_GCR3TRPMODE: Control.GCR3TRPMode supported
constexpr uint8_t INV_TO_NONE = 0, INV_TO_1MS = 1, INV_TO_10MS = 2, INV_TO_100MS = 3, INV_TO_1S = 4,
                  INV_TO_10S = 5, INV_TO_100S = 6;  // 7 reserved

// Exclusion range: the limit's low 12 bits read as ones.
using EXCL_EN = Field<0, 0>;
using EXCL_ALLOW = Field<1, 1>;
using EXCL_BASE_ADDR = Field<51, 12>;
using EXCL_LIMIT_ADDR = Field<51, 12>;

// Extended Feature Register. HATS: max host levels = 4 + HATS (3 invalid: Linux
// then disables host translation). GATS: 0 = 4-level, 1 = 5-level guest tables.
// GLXSup: largest legal DTE.GLX. PASmax: PASID width - 1 (Linux max_pasids =
// 2^(PASmax+1) - 1).
using EFR_PREF_SUP = Field<0, 0>;
using EFR_PPR_SUP = Field<1, 1>;
using EFR_XT_SUP = Field<2, 2>;
using EFR_NX_SUP = Field<3, 3>;
using EFR_GT_SUP = Field<4, 4>;
using EFR_IA_SUP = Field<6, 6>;
using EFR_GA_SUP = Field<7, 7>;
using EFR_HE_SUP = Field<8, 8>;
using EFR_PC_SUP = Field<9, 9>;
using EFR_HATS = Field<11, 10>;
using EFR_GATS = Field<13, 12>;
using EFR_GLX_SUP = Field<15, 14>;
using EFR_SMIF_SUP = Field<17, 16>;
using EFR_SMIF_RC = Field<20, 18>;
using EFR_GAM_SUP = Field<23, 21>;
using EFR_DUAL_PPR_LOG_SUP = Field<25, 24>;
using EFR_DUAL_EVT_LOG_SUP = Field<29, 28>;
using EFR_PASMAX = Field<36, 32>;
using EFR_US_SUP = Field<37, 37>;
using EFR_DEV_TBL_SEG_SUP = Field<39, 38>;
using EFR_MSI_CAP_MMIO_SUP = Field<46, 46>;
using EFR_GIO_SUP = Field<48, 48>;
using EFR_HA_SUP = Field<49, 49>;
using EFR_EPH_SUP = Field<50, 50>;
using EFR_HD_SUP = Field<52, 52>;
using EFR_INV_IOTLB_TYPE_SUP = Field<54, 54>;
using EFR_VIOMMU_SUP = Field<55, 55>;   // the HW-vIOMMU RFC's FEATURE_VIOMMU
using EFR_SNP_SUP = Field<63, 63>;

// Status. The interrupt/overflow bits are write-1-to-clear; *_RUN are read-only.
using STS_EVT_OVERFLOW = Field<0, 0>;
using STS_EVT_LOG_INT = Field<1, 1>;
using STS_COMWAIT_INT = Field<2, 2>;
using STS_EVT_LOG_RUN = Field<3, 3>;
using STS_CMD_BUF_RUN = Field<4, 4>;
using STS_PPR_OVERFLOW = Field<5, 5>;
using STS_PPR_INT = Field<6, 6>;
using STS_PPR_LOG_RUN = Field<7, 7>;
using STS_GA_LOG_RUN = Field<8, 8>;
using STS_GA_LOG_OVERFLOW = Field<9, 9>;
using STS_GA_INT = Field<10, 10>;
constexpr uint64_t kStatusRw1cMask = 0x667;  // bits 0,1,2,5,6,9,10

}  // namespace reg

// The EFR features the encoders/decoders care about. Defaults describe the model's
// IOMMU: 6-level host tables, 4-level guest tables, 16-bit PASIDs (Linux's
// PASID_MASK; it BUG()s on more), 2-level GCR3 tables, INVALIDATE_IOMMU_ALL.
struct Caps {
  bool prefetch = false;  // PreFSup: PREFETCH_IOMMU_PAGES
  bool ppr = false;       // PPRSup: COMPLETE_PPR_REQUEST, DTE.PPR
  bool xt = false;
  bool nx = false;
  bool gt = true;   // GTSup: DTE.GV, GN=1 invalidations
  bool ia = true;   // IASup: INVALIDATE_IOMMU_ALL
  bool ga = false;
  bool he = false;
  bool pc = false;
  uint8_t hats = 2;     // 0/1/2 = 4/5/6 host levels, 3 invalid
  uint8_t gats = 0;     // 0 = 4-level, 1 = 5-level guest tables
  uint8_t glx_sup = 1;  // max DTE.GLX
  uint8_t pasmax = 15;  // PASID width - 1
  bool gio = true;  // GIoSup: DTE.GIOV
  bool ha = false;  // HASup: DTE.HAD access bit
  bool hd = false;  // HDSup: DTE.HAD dirty bit
  bool viommu = false;   // the HW-vIOMMU RFC's FEATURE_VIOMMU (EFR bit 55): guest command buffers

  unsigned host_levels() const { return hats <= 2 ? 4u + hats : 0u; }
  unsigned guest_levels() const { return gats == 1 ? 5u : 4u; }
  unsigned pasid_bits() const { return pasmax + 1u; }
};

// Inline: the folder has no registers.cpp. Fields not in Caps read back as zero.
inline uint64_t encode_efr(const Caps& c) {
  uint64_t w = 0;
  reg::EFR_PREF_SUP::put(w, c.prefetch);
  reg::EFR_PPR_SUP::put(w, c.ppr);
  reg::EFR_XT_SUP::put(w, c.xt);
  reg::EFR_NX_SUP::put(w, c.nx);
  reg::EFR_GT_SUP::put(w, c.gt);
  reg::EFR_IA_SUP::put(w, c.ia);
  reg::EFR_GA_SUP::put(w, c.ga);
  reg::EFR_HE_SUP::put(w, c.he);
  reg::EFR_PC_SUP::put(w, c.pc);
  reg::EFR_HATS::put(w, c.hats);
  reg::EFR_GATS::put(w, c.gats);
  reg::EFR_GLX_SUP::put(w, c.glx_sup);
  reg::EFR_PASMAX::put(w, c.pasmax);
  reg::EFR_GIO_SUP::put(w, c.gio);
  reg::EFR_HA_SUP::put(w, c.ha);
  reg::EFR_HD_SUP::put(w, c.hd);
  reg::EFR_VIOMMU_SUP::put(w, c.viommu);
  return w;
}

inline Caps decode_efr(uint64_t w) {
  Caps c;
  c.prefetch = reg::EFR_PREF_SUP::get(w);
  c.ppr = reg::EFR_PPR_SUP::get(w);
  c.xt = reg::EFR_XT_SUP::get(w);
  c.nx = reg::EFR_NX_SUP::get(w);
  c.gt = reg::EFR_GT_SUP::get(w);
  c.ia = reg::EFR_IA_SUP::get(w);
  c.ga = reg::EFR_GA_SUP::get(w);
  c.he = reg::EFR_HE_SUP::get(w);
  c.pc = reg::EFR_PC_SUP::get(w);
  c.hats = static_cast<uint8_t>(reg::EFR_HATS::get(w));
  c.gats = static_cast<uint8_t>(reg::EFR_GATS::get(w));
  c.glx_sup = static_cast<uint8_t>(reg::EFR_GLX_SUP::get(w));
  c.pasmax = static_cast<uint8_t>(reg::EFR_PASMAX::get(w));
  c.gio = reg::EFR_GIO_SUP::get(w);
  c.ha = reg::EFR_HA_SUP::get(w);
  c.hd = reg::EFR_HD_SUP::get(w);
  c.viommu = reg::EFR_VIOMMU_SUP::get(w);
  return c;
}

}  // namespace iommusim::amdvi

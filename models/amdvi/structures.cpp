#include "models/amdvi/structures.h"

#include <cassert>

#include "models/amdvi/viommu.h"
#include "models/common/bits.h"

namespace iommusim::amdvi {
namespace {

using common::Field;
using common::mask;

std::nullopt_t reject(std::string* why, DteFault* fault, DteFault kind, const char* reason) {
  if (fault) *fault = kind;
  return common::reject(why, reason);
}

// ---- DTE fields (48882 section 2.2.2.1; Linux DTE_FLAG_*/DEV_ENTRY_*) ----
namespace dte {
// data[0]
using V = Field<0, 0>;
using TV = Field<1, 1>;
using HAD = Field<8, 7>;
using Mode = Field<11, 9>;
using HostPtRoot = Field<51, 12>;
using PPR = Field<52, 52>;
using GRPR = Field<53, 53>;
using GIOV = Field<54, 54>;
using GV = Field<55, 55>;
using GLX = Field<57, 56>;
using Gcr3_14_12 = Field<60, 58>;
using IR = Field<61, 61>;
using IW = Field<62, 62>;
// data[1]
using DomainID = Field<15, 0>;
using Gcr3_30_15 = Field<31, 16>;
using I = Field<32, 32>;
using SE = Field<33, 33>;
using SA = Field<34, 34>;
using IoCtl = Field<36, 35>;
using Cache = Field<37, 37>;
using SD = Field<38, 38>;
using EX = Field<39, 39>;
using SysMgt = Field<41, 40>;
using Gcr3_51_31 = Field<63, 43>;
// data[2]
using IV = Field<0, 0>;
using IntTabLen = Field<4, 1>;
using IG = Field<5, 5>;
using IntTableRoot = Field<51, 6>;
using GuestPagingMode = Field<55, 54>;
using InitPass = Field<56, 56>;
using EIntPass = Field<57, 57>;
using NMIPass = Field<58, 58>;
using IntCtl = Field<61, 60>;
using Lint0Pass = Field<62, 62>;
using Lint1Pass = Field<63, 63>;
}  // namespace dte

// Reserved per the current spec (QEMU's updated masks, reviewed by AMD).
constexpr uint64_t kRsvd0 = mask(6, 2) | mask(63, 63);
constexpr uint64_t kRsvd2 = mask(53, 52);
constexpr uint64_t kRsvd3 = mask(14, 0) | mask(53, 48);
// Defined by the spec but not modelled: rejected rather than silently ignored.
constexpr uint64_t kUnmodelled1 = mask(42, 42);
constexpr uint64_t kUnmodelled2 = mask(59, 59);
constexpr uint64_t kUnmodelled3 = ~kRsvd3 & ~mask(47, 15);   // [47:15]: the HW vIOMMU's (viommu.h)

constexpr uint8_t kModeReserved = 7;
constexpr uint8_t kGlxReserved = 3;
constexpr uint8_t kHadReserved = 2, kHadAccessDirty = 3;   // DTE.HAD encodings
constexpr uint8_t kIoCtlReserved = 3;
constexpr uint8_t kIntCtlReserved = 3;
constexpr uint8_t kMaxIntTabLen = 11;  // 2048 IRTEs

// GCR3 table entry
using Gcr3Valid = Field<0, 0>;
using Gcr3Addr = Field<51, 12>;

}  // namespace

DteWords encode_dte(const DeviceTableEntry& e) {
  DteWords w{};
  dte::V::put(w[0], e.valid);
  dte::TV::put(w[0], e.tv);
  dte::HAD::put(w[0], e.had);
  dte::Mode::put(w[0], e.mode);
  dte::HostPtRoot::put_address(w[0], e.host_pt_root);
  dte::PPR::put(w[0], e.ppr);
  dte::GRPR::put(w[0], e.grpr);
  dte::GIOV::put(w[0], e.giov);
  dte::GV::put(w[0], e.gv);
  dte::GLX::put(w[0], e.glx);
  assert((e.gcr3_root & ~mask(51, 12)) == 0 && "GCR3 root must be a 4K-aligned 52-bit address");
  dte::Gcr3_14_12::put(w[0], common::extract(e.gcr3_root, 14, 12));
  dte::IR::put(w[0], e.ir);
  dte::IW::put(w[0], e.iw);

  dte::DomainID::put(w[1], e.domain_id);
  dte::Gcr3_30_15::put(w[1], common::extract(e.gcr3_root, 30, 15));
  dte::I::put(w[1], e.iotlb);
  dte::SE::put(w[1], e.se);
  dte::SA::put(w[1], e.sa);
  dte::IoCtl::put(w[1], e.ioctl);
  dte::Cache::put(w[1], e.cache);
  dte::SD::put(w[1], e.sd);
  dte::EX::put(w[1], e.ex);
  dte::SysMgt::put(w[1], e.sysmgt);
  dte::Gcr3_51_31::put(w[1], common::extract(e.gcr3_root, 51, 31));

  dte::IV::put(w[2], e.iv);
  dte::IntTabLen::put(w[2], e.int_tab_len);
  dte::IG::put(w[2], e.ig);
  dte::IntTableRoot::put_address(w[2], e.int_table_root);
  dte::GuestPagingMode::put(w[2], e.guest_paging_mode);
  dte::InitPass::put(w[2], e.init_pass);
  dte::EIntPass::put(w[2], e.eint_pass);
  dte::NMIPass::put(w[2], e.nmi_pass);
  dte::IntCtl::put(w[2], e.int_ctl);
  dte::Lint0Pass::put(w[2], e.lint0_pass);
  dte::Lint1Pass::put(w[2], e.lint1_pass);
  viommu::DTE3_VIMU_EN::put(w[3], e.vimu_en);
  viommu::DTE3_GDEVICE_ID::put(w[3], e.gdevice_id);
  viommu::DTE3_GUEST_ID::put(w[3], e.guest_id);
  return w;
}

std::optional<DeviceTableEntry> decode_dte(const DteWords& w, std::string* why, DteFault* fault) {
  DeviceTableEntry e;
  e.valid = dte::V::get(w[0]);
  e.tv = dte::TV::get(w[0]);
  e.had = dte::HAD::get(w[0]);
  e.mode = dte::Mode::get(w[0]);
  e.host_pt_root = dte::HostPtRoot::get_address(w[0]);
  e.ppr = dte::PPR::get(w[0]);
  e.grpr = dte::GRPR::get(w[0]);
  e.giov = dte::GIOV::get(w[0]);
  e.gv = dte::GV::get(w[0]);
  e.glx = dte::GLX::get(w[0]);
  e.gcr3_root = (dte::Gcr3_14_12::get(w[0]) << 12) | (dte::Gcr3_30_15::get(w[1]) << 15) |
                (dte::Gcr3_51_31::get(w[1]) << 31);
  e.ir = dte::IR::get(w[0]);
  e.iw = dte::IW::get(w[0]);

  e.domain_id = dte::DomainID::get(w[1]);
  e.iotlb = dte::I::get(w[1]);
  e.se = dte::SE::get(w[1]);
  e.sa = dte::SA::get(w[1]);
  e.ioctl = dte::IoCtl::get(w[1]);
  e.cache = dte::Cache::get(w[1]);
  e.sd = dte::SD::get(w[1]);
  e.ex = dte::EX::get(w[1]);
  e.sysmgt = dte::SysMgt::get(w[1]);

  e.iv = dte::IV::get(w[2]);
  e.int_tab_len = dte::IntTabLen::get(w[2]);
  e.ig = dte::IG::get(w[2]);
  e.int_table_root = dte::IntTableRoot::get_address(w[2]);
  e.guest_paging_mode = dte::GuestPagingMode::get(w[2]);
  e.init_pass = dte::InitPass::get(w[2]);
  e.eint_pass = dte::EIntPass::get(w[2]);
  e.nmi_pass = dte::NMIPass::get(w[2]);
  e.int_ctl = dte::IntCtl::get(w[2]);
  e.lint0_pass = dte::Lint0Pass::get(w[2]);
  e.lint1_pass = dte::Lint1Pass::get(w[2]);
  e.vimu_en = viommu::DTE3_VIMU_EN::get(w[3]);
  e.gdevice_id = uint16_t(viommu::DTE3_GDEVICE_ID::get(w[3]));
  e.guest_id = uint16_t(viommu::DTE3_GUEST_ID::get(w[3]));

  // The hardware ignores an invalid DTE's other bits; the caller decides what V=0 means.
  if (!e.valid) return e;

  constexpr auto kIll = DteFault::IllegalDte;
  if (w[0] & kRsvd0) return reject(why, fault, kIll, "DTE.data[0] reserved bits [6:2]/[63] set");
  if (w[2] & kRsvd2) return reject(why, fault, kIll, "DTE.data[2] reserved bits [53:52] set");
  if (w[3] & kRsvd3) return reject(why, fault, kIll, "DTE.data[3] reserved bits [14:0]/[53:48] set");
  if (w[1] & kUnmodelled1) return reject(why, fault, kIll, "DTE.data[1] bit 42 not modelled");
  if (w[2] & kUnmodelled2) return reject(why, fault, kIll, "DTE.data[2] bit 59 not modelled");
  if (w[3] & kUnmodelled3)
    return reject(why, fault, kIll, "DTE.data[3] attribute-override fields not modelled");

  // Mode is only looked at when TV=1 (TV=0: no page-table information).
  if (e.tv && e.mode == kModeReserved)
    return reject(why, fault, DteFault::IoPageFault, "DTE.Mode=7 reserved");
  if (e.glx == kGlxReserved) return reject(why, fault, kIll, "DTE.GLX=3 reserved");
  // HAD: 00 no update, 01 access, 11 access and dirty; 10 is reserved.
  if (e.had == kHadReserved) return reject(why, fault, kIll, "DTE.HAD=2 reserved");
  if (e.guest_paging_mode > kGuestPaging5Level)
    return reject(why, fault, kIll, "DTE.GuestPagingMode reserved (only 0=4-level, 1=5-level)");
  if (e.ioctl == kIoCtlReserved) return reject(why, fault, kIll, "DTE.IoCtl=3 reserved");
  if (e.iv) {
    if (e.int_tab_len > kMaxIntTabLen) return reject(why, fault, kIll, "DTE.IntTabLen > 11 reserved");
    if (e.int_ctl == kIntCtlReserved) return reject(why, fault, kIll, "DTE.IntCtl=3 reserved");
  }
  return e;
}

bool check_dte_caps(const DeviceTableEntry& e, const Caps& caps, std::string* why) {
  auto fail = [why](const char* reason) {
    if (why) *why = reason;
    return false;
  };
  if (e.tv && e.mode > caps.host_levels()) return fail("DTE.Mode exceeds EFR.HATS levels");
  if (e.gv && !caps.gt) return fail("DTE.GV without EFR.GTSup");
  if (e.gv && e.glx > caps.glx_sup) return fail("DTE.GLX exceeds EFR.GLXSup");
  if (e.guest_paging_mode == kGuestPaging5Level && caps.guest_levels() < 5)
    return fail("DTE.GuestPagingMode 5-level without EFR.GATS=1");
  if (e.giov && !caps.gio) return fail("DTE.GIOV without EFR.GIoSup");
  if (e.vimu_en && !caps.viommu) return fail("DTE.vImuEn without EFR FEATURE_VIOMMU");
  if (e.ppr && !caps.ppr) return fail("DTE.PPR without EFR.PPRSup");
  if (e.had != 0 && !caps.ha) return fail("DTE.HAD without EFR.HASup");
  if (e.had == kHadAccessDirty && !caps.hd) return fail("DTE.HAD dirty update without EFR.HDSup");
  return true;
}

uint64_t encode_gcr3_entry(const Gcr3Entry& g) {
  uint64_t w = 0;
  Gcr3Valid::put(w, g.valid);
  Gcr3Addr::put_address(w, g.addr);
  return w;
}

Gcr3Entry decode_gcr3_entry(uint64_t w) {
  Gcr3Entry g;
  g.valid = Gcr3Valid::get(w);
  g.addr = Gcr3Addr::get_address(w);
  return g;
}

}  // namespace iommusim::amdvi

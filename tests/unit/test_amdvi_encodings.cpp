// Known-answer tests for the AMD-Vi encodings: MMIO register fields and EFR caps,
// Device Table Entries, GCR3 entries, command-buffer entries (builders, Linux's
// range encoding and the decoder's illegal cases) and event-log records. Every
// literal was worked out by hand from the field tables of the AMD IOMMU Specification
// (48882: sections 2.2 (DTE, page tables, GCR3), 2.4 (commands), 2.5 (event log) and 3.4
// (registers)); the arithmetic is in the
// comment next to it. Nibble notation: "n[63:60]=3" means the hex digit for bits
// 63..60 is 3. Commands and events are shown as u64[0] = data[1]:data[0],
// u64[1] = data[3]:data[2].
#include <gtest/gtest.h>

#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"
#include "models/amdvi/structures.h"

namespace iommusim::amdvi {
namespace {

bool has(const std::string& why, const std::string& what) { return why.find(what) != std::string::npos; }

// ---------------------------------------------------------------- registers

TEST(AmdViRegs, DevTableBase) {
  // Linux: 64K DTEs x 32 B = 2 MB at 0x1000_0000; Size = 0x20_0000/0x1000 - 1 = 0x1FF
  //  -> 0x1000_0000 | 0x1FF = 0x0000_0000_1000_01FF
  uint64_t v = 0;
  reg::DTB_BASE::put_address(v, 0x10000000);
  reg::DTB_SIZE::put(v, reg::dev_table_size_field(0x200000));
  EXPECT_EQ(v, 0x00000000100001FFull);
  EXPECT_EQ(reg::DTB_SIZE::get(v), 0x1FFu);
  EXPECT_EQ(reg::DTB_BASE::get_address(v), 0x10000000u);
  EXPECT_EQ(reg::dev_table_bytes(0x1FF), 0x200000u);
  EXPECT_EQ(reg::dev_table_bytes(0) / 32, 128u);  // one 4 KB page = 128 DTEs
}

TEST(AmdViRegs, CmdBufBaseAndPointers) {
  // ComLen=9 (Linux MMIO_CMD_SIZE_512) at [59:56] -> n[59:56]=9; base 0x2000_0000
  //  -> 0x0900_0000_2000_0000
  uint64_t v = 0;
  reg::CMD_BUF_BASE_ADDR::put_address(v, 0x20000000);
  reg::CMD_BUF_LEN::put(v, 9);
  EXPECT_EQ(v, 0x0900000020000000ull);
  EXPECT_EQ(reg::log_entries(reg::CMD_BUF_LEN::get(v)) * reg::kEntryBytes, 8192u);
  // Head/tail keep byte offsets in [18:4]: 0xFFFF_FFFF -> 0x7FFF0
  EXPECT_EQ(reg::RING_PTR::get_address(0xFFFFFFFFull), 0x7FFF0u);
  EXPECT_EQ(reg::RING_PTR::get_address(0x1230), 0x1230u);
}

TEST(AmdViRegs, ControlLinuxEnable) {
  // IommuEn 0x1 | EventLogEn 0x4 | EventIntEn 0x8 | ComWaitIntEn 0x10
  // | InvTimeOut=1s (4<<5 = 0x80) | CmdBufEn 0x1000 = 0x109D
  uint64_t v = 0;
  reg::CTRL_IOMMU_EN::put(v, 1);
  reg::CTRL_EVT_LOG_EN::put(v, 1);
  reg::CTRL_EVT_INT_EN::put(v, 1);
  reg::CTRL_COMWAIT_INT_EN::put(v, 1);
  reg::CTRL_INV_TIMEOUT::put(v, reg::INV_TO_1S);
  reg::CTRL_CMD_BUF_EN::put(v, 1);
  EXPECT_EQ(v, 0x109Dull);
  EXPECT_EQ(reg::CTRL_INV_TIMEOUT::get(v), 4u);
  // XTEn=1<<50 (n[51:48]=4), IRTCacheDis=1<<59 (n[59:56]=8), GAMEn=1<<25
  EXPECT_EQ(reg::CTRL_XT_EN::set(0, 1), 0x0004000000000000ull);
  EXPECT_EQ(reg::CTRL_IRT_CACHE_DIS::set(0, 1), 0x0800000000000000ull);
  EXPECT_EQ(reg::CTRL_GAM_EN::set(0, 1), 0x02000000ull);
}

TEST(AmdViRegs, StatusBits) {
  // EvtOverflow 0x1, EvtLogInt 0x2, ComWaitInt 0x4, EvtLogRun 0x8, CmdBufRun 0x10
  EXPECT_EQ(reg::STS_COMWAIT_INT::set(0, 1), 0x4u);
  EXPECT_EQ(reg::STS_EVT_LOG_RUN::set(0, 1), 0x8u);
  EXPECT_EQ(reg::STS_CMD_BUF_RUN::set(0, 1), 0x10u);
  // RW1C: 0x1|0x2|0x4|0x20|0x40|0x200|0x400 = 0x667; the *_RUN bits are not in it
  EXPECT_EQ(reg::kStatusRw1cMask & 0x18, 0u);
}

TEST(AmdViRegs, EfrEncodeDefaultCaps) {
  // GTSup 1<<4 (0x10) | IASup 1<<6 (0x40) | HATS=2<<10 (0x800) | GLXSup=1<<14 (0x4000)
  // | PASmax=15<<32 (0xF_0000_0000) | GIoSup 1<<48                 => 0x0001_000F_0000_4850
  const Caps caps;
  EXPECT_EQ(encode_efr(caps), 0x0001000F00004850ull);
  EXPECT_EQ(caps.host_levels(), 6u);
  EXPECT_EQ(caps.guest_levels(), 4u);
  EXPECT_EQ(caps.pasid_bits(), 16u);
}

TEST(AmdViRegs, EfrDecodeQemuValue) {
  // QEMU AMDVI_EXT_FEATURES: PreF 0x1 | PPR 0x2 | GT 0x10 | IA 0x40 | GA 0x80 | HE 0x100
  // | HATS=2<<10 (0x800) | GATS=2<<12 (0x2000) = 0x29D3
  const Caps c = decode_efr(0x29D3);
  EXPECT_TRUE(c.prefetch);
  EXPECT_TRUE(c.ppr);
  EXPECT_TRUE(c.gt);
  EXPECT_TRUE(c.ia);
  EXPECT_TRUE(c.ga);
  EXPECT_TRUE(c.he);
  EXPECT_FALSE(c.xt);
  EXPECT_FALSE(c.gio);
  EXPECT_EQ(c.hats, 2);
  EXPECT_EQ(c.host_levels(), 6u);
  EXPECT_EQ(c.gats, 2);
  EXPECT_EQ(c.guest_levels(), 4u);  // only GATS=1 means 5-level (Linux GUEST_PGTABLE_5_LEVEL)
  EXPECT_EQ(c.pasid_bits(), 1u);    // PASmax=0
  EXPECT_EQ(encode_efr(c), 0x29D3ull);
  // HATS=3 (3<<10 = 0xC00) is invalid: Linux disables host translation
  EXPECT_EQ(decode_efr(0xC00).host_levels(), 0u);
}

// ---------------------------------------------------------------- DTE

// V 0x1 | TV 0x2 | Mode=4<<9 (0x800) | root 0x1234_5000 in place | IR 1<<61 | IW 1<<62
// (n[63:60]=2|4=6)                                     => data[0] = 0x6000_0000_1234_5803
// DomainID 7                                           => data[1] = 0x7
const DteWords kV1Dte = {0x6000000012345803ull, 0x7ull, 0, 0};

TEST(AmdViDte, V1EncodeKat) {
  DeviceTableEntry e;
  e.valid = true;
  e.tv = true;
  e.mode = 4;
  e.host_pt_root = 0x12345000;
  e.ir = e.iw = true;
  e.domain_id = 7;
  EXPECT_EQ(encode_dte(e), kV1Dte);
}

TEST(AmdViDte, V1DecodeKat) {
  std::string why;
  auto e = decode_dte(kV1Dte, &why);
  ASSERT_TRUE(e.has_value()) << why;
  EXPECT_TRUE(e->valid);
  EXPECT_TRUE(e->tv);
  EXPECT_EQ(e->mode, 4);
  EXPECT_EQ(e->host_pt_root, 0x12345000u);
  EXPECT_TRUE(e->ir);
  EXPECT_TRUE(e->iw);
  EXPECT_EQ(e->domain_id, 7);
  EXPECT_FALSE(e->gv);
  EXPECT_FALSE(e->iv);
  EXPECT_EQ(e->gcr3_root, 0u);
  EXPECT_TRUE(check_dte_caps(*e, Caps{}, &why)) << why;
}

// GCR3 root 0x000F_EDCB_A987_6000 split three ways (Linux DTE_GCR3_*):
//   [14:12] = (0x6000 >> 12) & 7              = 6       -> data[0][60:58]: 6<<58 = n[63:56] 0x18
//   [30:15] = (0xA987_6000 >> 15) & 0xFFFF    = 0x530E  -> data[1][31:16]: 0x530E_0000
//   [51:31] = 0xF_EDCB << 1 | bit31 (1)       = 0x1F_DB97 -> data[1][63:43]: 0x1FDB97<<43 = 0xFEDC_B800_0000_0000
// data[0]: V 0x1 | TV 0x2 | GIOV 1<<54 | GV 1<<55 | GLX=1<<56 (n[59:52]: 0x04+0x08+0x10 = 0x1C)
//          | GCR3[14:12] | IR | IW (n[63:56] = 0x18|0x20|0x40 = 0x78)       => 0x79C0_0000_0000_0003
// data[1]: 0xFEDC_B800_0000_0000 | 0x530E_0000 | I 1<<32 | DomainID 0x8001  => 0xFEDC_B801_530E_8001
// data[2]: GuestPagingMode=1<<54 (5-level)                                   => 0x0040_0000_0000_0000
const DteWords kGcr3Dte = {0x79C0000000000003ull, 0xFEDCB801530E8001ull, 0x0040000000000000ull, 0};

DeviceTableEntry gcr3_dte() {
  DeviceTableEntry e;
  e.valid = e.tv = true;
  e.giov = e.gv = true;
  e.glx = 1;
  e.gcr3_root = 0x000FEDCBA9876000ull;
  e.ir = e.iw = true;
  e.domain_id = 0x8001;
  e.iotlb = true;
  e.guest_paging_mode = kGuestPaging5Level;
  return e;
}

TEST(AmdViDte, Gcr3RootSplitKat) {
  const DteWords w = encode_dte(gcr3_dte());
  EXPECT_EQ(w[0], kGcr3Dte[0]);
  EXPECT_EQ(w[1], kGcr3Dte[1]);
  EXPECT_EQ(w[2], kGcr3Dte[2]);
  EXPECT_EQ(w[3], 0u);
  // Each piece in its own field
  EXPECT_EQ((w[0] >> 58) & 0x7, 0x6u);
  EXPECT_EQ((w[1] >> 16) & 0xFFFF, 0x530Eu);
  EXPECT_EQ(w[1] >> 43, 0x1FDB97u);

  std::string why;
  auto e = decode_dte(kGcr3Dte, &why);
  ASSERT_TRUE(e.has_value()) << why;
  EXPECT_EQ(e->gcr3_root, 0x000FEDCBA9876000ull);
  EXPECT_TRUE(e->gv);
  EXPECT_TRUE(e->giov);
  EXPECT_EQ(e->glx, 1);
  EXPECT_TRUE(e->iotlb);
  EXPECT_EQ(e->domain_id, 0x8001);
  EXPECT_EQ(e->mode, kModeNone);
  EXPECT_EQ(e->guest_paging_mode, kGuestPaging5Level);
  EXPECT_EQ(encode_dte(*e), kGcr3Dte);  // round trip
}

TEST(AmdViDte, InterruptRemapKat) {
  DeviceTableEntry e;
  e.valid = true;
  e.domain_id = 0x42;
  e.sa = true;
  e.ex = true;
  e.sysmgt = 2;
  e.iv = true;
  e.int_tab_len = 9;  // 512 IRTEs (Linux DTE_INTTABLEN_512)
  e.int_table_root = 0x123456780;  // 128-byte aligned
  e.init_pass = e.eint_pass = e.nmi_pass = true;
  e.int_ctl = kIntCtlRemap;
  e.lint0_pass = e.lint1_pass = true;
  // data[1]: DomainID 0x42 | SA 1<<34 (0x4_0000_0000) | EX 1<<39 (0x80_0000_0000)
  //          | SysMgt=2<<40 (0x200_0000_0000)                                 => 0x0000_0284_0000_0042
  // data[2]: IV 0x1 | IntTabLen=9<<1 (0x12) | root 0x1_2345_6780 in place -> low 0x1_2345_6793;
  //          Init/EInt/NMIPass 1<<56..58 (n[59:56]=7) | IntCtl=2<<60 | Lint0 1<<62 | Lint1 1<<63
  //          (n[63:60]=2|4|8=0xE)                                             => 0xE700_0001_2345_6793
  const DteWords kat = {0x1ull, 0x0000028400000042ull, 0xE700000123456793ull, 0};
  EXPECT_EQ(encode_dte(e), kat);
  std::string why;
  auto d = decode_dte(kat, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_TRUE(d->iv);
  EXPECT_EQ(d->int_tab_len, 9);
  EXPECT_EQ(int_table_entries(d->int_tab_len), 512u);
  EXPECT_EQ(d->int_table_root, 0x123456780u);
  EXPECT_EQ(d->int_ctl, kIntCtlRemap);
  EXPECT_TRUE(d->sa);
  EXPECT_TRUE(d->ex);
  EXPECT_EQ(d->sysmgt, 2);
  EXPECT_FALSE(d->tv);
  EXPECT_TRUE(d->lint1_pass);
}

TEST(AmdViDte, InvalidIsNotADecodeError) {
  // V=0 with reserved bit 63 and Mode=7<<9 (0xE00): comes back unvalidated
  auto e = decode_dte({0x8000000000000E00ull, 0, 0, 0}, nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_FALSE(e->valid);
}

void expect_bad_dte(const DteWords& w, const std::string& field, DteFault want = DteFault::IllegalDte) {
  std::string why;
  DteFault fault = want == DteFault::IllegalDte ? DteFault::IoPageFault : DteFault::IllegalDte;
  EXPECT_FALSE(decode_dte(w, &why, &fault).has_value());
  EXPECT_TRUE(has(why, field)) << "why=" << why;
  EXPECT_EQ(fault, want) << "why=" << why;
}

TEST(AmdViDte, RejectsReservedBits) {
  // kV1Dte data[0] | bit 2 (0x4)                         => 0x6000_0000_1234_5807
  expect_bad_dte({0x6000000012345807ull, 7, 0, 0}, "data[0] reserved");
  // | bit 63 (n[63:60]=6|8=0xE)                          => 0xE000_0000_1234_5803
  expect_bad_dte({0xE000000012345803ull, 7, 0, 0}, "data[0] reserved");
  // data[2] bit 52 (n[55:52]=1)                          => 0x0010_0000_0000_0000
  expect_bad_dte({0x6000000012345803ull, 7, 0x0010000000000000ull, 0}, "data[2] reserved");
  // data[3] bit 0
  expect_bad_dte({0x6000000012345803ull, 7, 0, 0x1}, "data[3] reserved");
  // data[3] bit 48 (n[51:48]=1)
  expect_bad_dte({0x6000000012345803ull, 7, 0, 0x0001000000000000ull}, "data[3] reserved");
}

TEST(AmdViDte, RejectsUnmodelledFields) {
  // data[1] bit 42 (n[43:40]=4)                          => 0x0000_0400_0000_0007
  expect_bad_dte({0x6000000012345803ull, 0x0000040000000007ull, 0, 0}, "bit 42");
  // data[2] bit 59 (n[59:56]=8)
  expect_bad_dte({0x6000000012345803ull, 7, 0x0800000000000000ull, 0}, "bit 59");
  // data[3] AttrV 1<<54 (n[55:52]=4)
  expect_bad_dte({0x6000000012345803ull, 7, 0, 0x0040000000000000ull}, "data[3]");
}

// The hardware vIOMMU's data[3] fields (HW-vIOMMU RFC set_dte_viommu, as its code uses
// them: vImuEn [15], GDeviceID [31:16], GuestID [47:32]): vImuEn, gDevID 3, gid 1 =
// 0x8000 | 3 << 16 | 1 << 32 = 0x0000_0001_0003_8000. Decoded; legal only with FEATURE_VIOMMU.
TEST(AmdViDte, ViommuFieldsNeedFeatureViommu) {
  DeviceTableEntry e;
  e.valid = e.tv = true;
  e.vimu_en = true;
  e.gdevice_id = 3;
  e.guest_id = 1;
  EXPECT_EQ(encode_dte(e)[3], 0x0000000100038000ull);
  const auto d = decode_dte({0x3, 0, 0, 0x0000000100038000ull}, nullptr);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->vimu_en);
  EXPECT_EQ(d->gdevice_id, 3u);
  EXPECT_EQ(d->guest_id, 1u);
  Caps caps;
  std::string why;
  EXPECT_FALSE(check_dte_caps(*d, caps, &why));
  EXPECT_TRUE(has(why, "vImuEn")) << why;
  caps.viommu = true;
  EXPECT_TRUE(check_dte_caps(*d, caps, &why)) << why;
}

TEST(AmdViDte, RejectsReservedEncodings) {
  // Mode=7<<9 (0xE00) with TV: low 0x1234_5E03 -> IO_PAGE_FAULT per spec
  expect_bad_dte({0x6000000012345E03ull, 7, 0, 0}, "Mode", DteFault::IoPageFault);
  // ...but with TV=0 (low 0x1234_5E01) Mode is not looked at
  auto e = decode_dte({0x6000000012345E01ull, 7, 0, 0}, nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->mode, 7);
  // GLX=3<<56 (n[59:56]=3)                               => 0x6300_0000_1234_5803
  expect_bad_dte({0x6300000012345803ull, 7, 0, 0}, "GLX");
  // GuestPagingMode=2<<54 (n[55:52]=8) and 3<<54 (0xC)
  expect_bad_dte({0x6000000012345803ull, 7, 0x0080000000000000ull, 0}, "GuestPagingMode");
  expect_bad_dte({0x6000000012345803ull, 7, 0x00C0000000000000ull, 0}, "GuestPagingMode");
  // HAD=2<<7 (0x100; 00 none, 01 access, 11 access+dirty, 10 reserved): low 0x1234_5903
  expect_bad_dte({0x6000000012345903ull, 7, 0, 0}, "HAD");
  // HAD=1 (0x80, low 0x1234_5883) decodes (the caps check then wants EFR.HASup).
  auto had1 = decode_dte({0x6000000012345883ull, 7, 0, 0}, nullptr);
  ASSERT_TRUE(had1.has_value());
  EXPECT_EQ(had1->had, 1);
  // IoCtl=3<<35 (0x18_0000_0000)                         => data[1] 0x0000_0018_0000_0007
  expect_bad_dte({0x6000000012345803ull, 0x0000001800000007ull, 0, 0}, "IoCtl");
  // IV 0x1 | IntTabLen=12<<1 (0x18) = 0x19
  expect_bad_dte({0x6000000012345803ull, 7, 0x19, 0}, "IntTabLen");
  // IV | IntCtl=3<<60 (n[63:60]=3)                       => 0x3000_0000_0000_0001
  expect_bad_dte({0x6000000012345803ull, 7, 0x3000000000000001ull, 0}, "IntCtl");
  // Interrupt fields are not checked with IV=0: 0x18 and 0x3000_0000_0000_0000 decode
  EXPECT_TRUE(decode_dte({0x6000000012345803ull, 7, 0x18, 0}, nullptr).has_value());
  EXPECT_TRUE(decode_dte({0x6000000012345803ull, 7, 0x3000000000000000ull, 0}, nullptr).has_value());
}

TEST(AmdViDte, CapsChecks) {
  std::string why;
  DeviceTableEntry e = *decode_dte(kV1Dte, nullptr);
  Caps four_levels;
  four_levels.hats = 0;
  EXPECT_TRUE(check_dte_caps(e, four_levels, &why)) << why;  // Mode 4 <= 4
  e.mode = 5;
  EXPECT_FALSE(check_dte_caps(e, four_levels, &why));
  EXPECT_TRUE(has(why, "HATS")) << why;

  DeviceTableEntry g = gcr3_dte();
  EXPECT_FALSE(check_dte_caps(g, Caps{}, &why));  // 5-level guest paging, GATS=0
  EXPECT_TRUE(has(why, "GATS")) << why;
  Caps five;
  five.gats = 1;
  EXPECT_TRUE(check_dte_caps(g, five, &why)) << why;
  Caps no_gt = five;
  no_gt.gt = false;
  EXPECT_FALSE(check_dte_caps(g, no_gt, &why));
  EXPECT_TRUE(has(why, "GTSup")) << why;
  Caps glx0 = five;
  glx0.glx_sup = 0;
  EXPECT_FALSE(check_dte_caps(g, glx0, &why));
  EXPECT_TRUE(has(why, "GLXSup")) << why;
  Caps no_gio = five;
  no_gio.gio = false;
  EXPECT_FALSE(check_dte_caps(g, no_gio, &why));
  EXPECT_TRUE(has(why, "GIoSup")) << why;

  DeviceTableEntry h = *decode_dte(kV1Dte, nullptr);
  h.had = 3;
  EXPECT_FALSE(check_dte_caps(h, Caps{}, &why));
  EXPECT_TRUE(has(why, "HASup")) << why;
  Caps ha_only;
  ha_only.ha = true;
  EXPECT_FALSE(check_dte_caps(h, ha_only, &why));
  EXPECT_TRUE(has(why, "HDSup")) << why;
}

// ---------------------------------------------------------------- GCR3 table

TEST(AmdViGcr3, EntryKat) {
  // GCR3_VALID 0x1 | 0x1_2345_6000 in place                => 0x0000_0001_2345_6001
  EXPECT_EQ(encode_gcr3_entry({true, 0x123456000}), 0x0000000123456001ull);
  // Bits [11:1] are not part of the address
  const Gcr3Entry g = decode_gcr3_entry(0x0000000123456FFFull);
  EXPECT_TRUE(g.valid);
  EXPECT_EQ(g.addr, 0x123456000u);
  EXPECT_FALSE(decode_gcr3_entry(0x123456000).valid);
}

TEST(AmdViGcr3, IndexAndLevels) {
  // PASID 0x12345 = 0b1_0010_0011_0100_0101:
  //   level 0: & 0x1FF = 0x145; level 1: >> 9 = 0x91; level 2: >> 18 = 0
  EXPECT_EQ(gcr3_index(0x12345, 0), 0x145u);
  EXPECT_EQ(gcr3_index(0x12345, 1), 0x91u);
  EXPECT_EQ(gcr3_index(0x12345, 2), 0u);
  EXPECT_EQ(gcr3_index(0xFFFFF, 2), 0x3u);  // 20-bit PASID: top level uses 2 bits
  EXPECT_EQ(gcr3_levels(0), 1u);
  EXPECT_EQ(gcr3_levels(2), 3u);
  EXPECT_TRUE(gcr3_pasid_fits(0x1FF, 0));    // GLX 0: 512 PASIDs
  EXPECT_FALSE(gcr3_pasid_fits(0x200, 0));
  EXPECT_TRUE(gcr3_pasid_fits(0x3FFFF, 1));  // GLX 1: 18 bits
  EXPECT_FALSE(gcr3_pasid_fits(0x40000, 1));
  EXPECT_TRUE(gcr3_pasid_fits(0xFFFFF, 2));
}

// ---------------------------------------------------------------- range encoding

TEST(AmdViInvRange, LinuxBuildInvAddress) {
  // (0x10000, 0x4000): end 0x13FFF, end^start = 0x3FFF -> msb 13; start | 0x1FFF = 0x11FFF,
  // clear [11:0] -> 0x11000, | S                                          => 0x11001
  EXPECT_EQ(inv_address(0x10000, 0x4000), 0x11001u);
  // (0x10000, 0x3000): end^start = 0x2FFF -> msb 13 -> same 16 KB block      => 0x11001
  EXPECT_EQ(inv_address(0x10000, 0x3000), 0x11001u);
  // (0x1F000, 0x2000): end 0x20FFF, ^ = 0x3FFFF -> msb 17; | 0x1FFFF = 0x1FFFF => 0x1F001
  EXPECT_EQ(inv_address(0x1F000, 0x2000), 0x1F001u);
  // Within one page: page address, S=0
  EXPECT_EQ(inv_address(0x12345678, 0x10), 0x12345000u);
  EXPECT_EQ(inv_address(0x12345000, 0x1000), 0x12345000u);
  // 0x20 bytes crossing a page: end 0x1234_600F, ^ = 0x3FFF -> msb 13     => 0x1234_5001
  EXPECT_EQ(inv_address(0x12345FF0, 0x20), 0x12345001u);
  // Linux "all": size 0x7FFF_FFFF_FFFF_FFFF -> msb 62 > 51               => 0x7FFF_FFFF_FFFF_F001
  EXPECT_EQ(inv_address(0, kInvAllPagesSize), 0x7FFFFFFFFFFFF001ull);
  // device_flush_dte's IOTLB flush (0, ~0): msb 63                          => same
  EXPECT_EQ(inv_address(0, ~0ull), 0x7FFFFFFFFFFFF001ull);
}

TEST(AmdViInvRange, DecodeRange) {
  // S=1, 0x11000: bit 12 set, bit 13 clear -> 2^14 = 0x4000 at 0x11000 & ~0x3FFF = 0x10000
  InvRange r = inv_range(0x11000, true);
  EXPECT_EQ(r.base, 0x10000u);
  EXPECT_EQ(r.bytes(), 0x4000u);
  EXPECT_EQ(r.last, 0x13FFFu);
  EXPECT_FALSE(r.all());
  // S=0: one page
  r = inv_range(0x12345000, false);
  EXPECT_EQ(r.base, 0x12345000u);
  EXPECT_EQ(r.bytes(), 0x1000u);
  // S=1, 0x1F000: bits 12..16 set, 17 clear -> 2^18 at 0
  r = inv_range(0x1F000, true);
  EXPECT_EQ(r.base, 0u);
  EXPECT_EQ(r.bytes(), 0x40000u);
  // S=1, bits 12..49 set, bit 50 clear -> 2^51 bytes at 0: not yet "all"
  r = inv_range(0x0003FFFFFFFFF000ull, true);
  EXPECT_FALSE(r.all());
  EXPECT_EQ(r.bytes(), 1ull << 51);
  // first zero at bit 51 or above is everything (spec example: (1<<51)-1)
  EXPECT_TRUE(inv_range(0x0007FFFFFFFFF000ull, true).all());
  EXPECT_TRUE(inv_range(kInvAllPagesAddress, true).all());
  EXPECT_TRUE(inv_range(~0ull, true).all());
  EXPECT_EQ(inv_range(kInvAllPagesAddress, true).bytes(), 0u);  // 2^64 wraps
}

TEST(AmdViInvRange, EncodedRangeCoversRequest) {
  // Property: the decoded block always contains [start, start+size).
  const uint64_t cases[][2] = {{0x10000, 0x4000}, {0x1F000, 0x2000},   {0x12345FF0, 0x20},
                               {0x7000, 0x1000},  {0x40000000, 0x200000}, {0xFFFFF000, 0x3000},
                               {0x1000, 0x1}};
  for (const auto& c : cases) {
    const uint64_t enc = inv_address(c[0], c[1]);
    const InvRange r = inv_range(enc & ~0xFFFull, enc & 1);
    EXPECT_LE(r.base, c[0]) << std::hex << c[0];
    EXPECT_GE(r.last, c[0] + c[1] - 1) << std::hex << c[0];
  }
}

TEST(AmdViInvRange, Overlaps) {
  const InvRange r = inv_range(0x11000, true);  // [0x10000, 0x13FFF]
  EXPECT_TRUE(r.overlaps(0x13000, 0x1000));
  EXPECT_TRUE(r.overlaps(0xF000, 0x1001));   // reaches 0x10000
  EXPECT_FALSE(r.overlaps(0xF000, 0x1000));  // ends at 0xFFFF
  EXPECT_FALSE(r.overlaps(0x14000, 0x1000));
  EXPECT_FALSE(r.overlaps(0x12000, 0));
  EXPECT_TRUE(inv_range(kInvAllPagesAddress, true).overlaps(~0ull, 1));
}

// ---------------------------------------------------------------- commands

const Caps kCaps{};

Command decode_ok(const CmdWords& w, const Caps& caps = kCaps) {
  std::string why;
  auto c = decode_command(w, caps, &why);
  EXPECT_TRUE(c.has_value()) << why;
  return c.value_or(Command{});
}

void expect_illegal(const CmdWords& w, const Caps& caps, const std::string& what) {
  std::string why;
  EXPECT_FALSE(decode_command(w, caps, &why).has_value());
  EXPECT_TRUE(has(why, what)) << "why=" << why;
}

TEST(AmdViCmd, CompletionWaitStore) {
  // data[0] = 0x1000 | S 0x1 = 0x1001; data[1] = opcode 1<<28; data[2:3] = 1
  //  -> u64[0] = 0x1000_0000_0000_1001, u64[1] = 0x1
  const CmdWords kat = {0x1000000000001001ull, 0x1};
  EXPECT_EQ(cmd_completion_wait(true, false, 0x1000, 0x1), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::CompletionWait);
  EXPECT_TRUE(c.store);
  EXPECT_FALSE(c.interrupt);
  EXPECT_EQ(c.store_addr, 0x1000u);
  EXPECT_EQ(c.store_data, 1u);
  // Highest 8-aligned 52-bit address 0xF_FFFF_FFFF_FFF8 | S, opcode n[63:60]=1
  //  -> 0x100F_FFFF_FFFF_FFF9
  const CmdWords hi = {0x100FFFFFFFFFFFF9ull, 0xDEADBEEFCAFEF00Dull};
  EXPECT_EQ(cmd_completion_wait(true, false, 0xFFFFFFFFFFFF8ull, 0xDEADBEEFCAFEF00Dull), hi);
  EXPECT_EQ(decode_ok(hi).store_addr, 0xFFFFFFFFFFFF8ull);
  EXPECT_EQ(decode_ok(hi).store_data, 0xDEADBEEFCAFEF00Dull);
}

TEST(AmdViCmd, CompletionWaitBarrierAndInterrupt) {
  // S=I=F=0: a pure barrier, legal                          => {0x1000_0000_0000_0000, 0}
  const CmdWords barrier = {0x1000000000000000ull, 0};
  EXPECT_EQ(cmd_completion_wait(false, false), barrier);
  Command b = decode_ok(barrier);
  EXPECT_FALSE(b.store || b.interrupt || b.flush);
  // I 0x2 | F 0x4                                           => 0x1000_0000_0000_0006
  const CmdWords irq = {0x1000000000000006ull, 0};
  EXPECT_EQ(cmd_completion_wait(false, true, 0, 0, true), irq);
  Command i = decode_ok(irq);
  EXPECT_TRUE(i.interrupt);
  EXPECT_TRUE(i.flush);
  // reserved bit 52 (n[55:52]=1)                            => 0x1010_0000_0000_1001
  expect_illegal({0x1010000000001001ull, 1}, kCaps, "COMPLETION_WAIT: reserved bits [59:52]");
}

TEST(AmdViCmd, InvalidateDevtabAndInterruptTable) {
  // DeviceID 0x10 (00:02.0) | opcode 2<<60                 => 0x2000_0000_0000_0010
  const CmdWords dte = {0x2000000000000010ull, 0};
  EXPECT_EQ(cmd_inv_devtab_entry(0x10), dte);
  Command c = decode_ok(dte);
  EXPECT_EQ(c.op, Opcode::InvalidateDevtabEntry);
  EXPECT_EQ(c.device_id, 0x10);
  // DeviceID 0xFFFF | opcode 5<<60                         => 0x5000_0000_0000_FFFF
  const CmdWords irt = {0x500000000000FFFFull, 0};
  EXPECT_EQ(cmd_inv_interrupt_table(0xFFFF), irt);
  EXPECT_EQ(decode_ok(irt).device_id, 0xFFFF);
  EXPECT_EQ(decode_ok(irt).op, Opcode::InvalidateInterruptTable);
  // bit 16 set                                              => 0x2000_0000_0001_0010
  expect_illegal({0x2000000000010010ull, 0}, kCaps, "INVALIDATE_DEVTAB_ENTRY: reserved bits [59:16]");
  expect_illegal({0x2000000000000010ull, 1}, kCaps, "reserved bits [127:64]");
  expect_illegal({0x500000000000FFFFull, 1ull << 63}, kCaps, "INVALIDATE_INTERRUPT_TABLE: reserved");
}

TEST(AmdViCmd, InvalidateIommuPagesAll) {
  // Linux domain flush: DomainID 3, address 0x7FFF_FFFF_FFFF_F000, S=1, PDE=1
  // data[1] = 3<<28 | 3 = 0x3000_0003; data[0] = 0      -> u64[0] = 0x3000_0003_0000_0000
  // data[3]:data[2] = 0x7FFF_FFFF_FFFF_F000 | S 0x1 | PDE 0x2 -> u64[1] = 0x7FFF_FFFF_FFFF_F003
  const CmdWords kat = {0x3000000300000000ull, 0x7FFFFFFFFFFFF003ull};
  EXPECT_EQ(cmd_inv_iommu_pages(3, 0, kInvAllPagesSize), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::InvalidateIommuPages);
  EXPECT_EQ(c.domain_id, 3);
  EXPECT_TRUE(c.s);
  EXPECT_TRUE(c.pde);
  EXPECT_FALSE(c.gn);
  EXPECT_EQ(c.address, kInvAllPagesAddress);
  EXPECT_TRUE(inv_range(c.address, c.s).all());
}

TEST(AmdViCmd, InvalidateIommuPagesRangeAndPage) {
  // DomainID 0x1234<<32 | opcode 3<<60                      => u64[0] = 0x3000_1234_0000_0000
  // (0x10000, 0x4000) -> 0x11001 | PDE 0x2                   => u64[1] = 0x0000_0000_0001_1003
  const CmdWords range = {0x3000123400000000ull, 0x0000000000011003ull};
  EXPECT_EQ(cmd_inv_iommu_pages(0x1234, 0x10000, 0x4000), range);
  Command c = decode_ok(range);
  const InvRange r = inv_range(c.address, c.s);
  EXPECT_EQ(r.base, 0x10000u);
  EXPECT_EQ(r.bytes(), 0x4000u);
  // One page, PDE=0: u64[1] = 0x1234_5000 (S=0)
  const CmdWords page = {0x3000123400000000ull, 0x12345000ull};
  EXPECT_EQ(cmd_inv_iommu_pages(0x1234, 0x12345678, 0x10, false), page);
  Command p = decode_ok(page);
  EXPECT_FALSE(p.s);
  EXPECT_FALSE(p.pde);
  EXPECT_EQ(inv_range(p.address, p.s).bytes(), 0x1000u);
}

TEST(AmdViCmd, InvalidateIommuPagesGuest) {
  // GN form, DomainID 5, PASID 0xABCDE (20 bits), page 0x7000:
  // u64[0] = 3<<60 | 5<<32 | 0xA_BCDE = 0x3000_0005_000A_BCDE; u64[1] = 0x7000 | PDE 0x2 | GN 0x4 = 0x7006
  const CmdWords kat = {0x30000005000ABCDEull, 0x7006ull};
  EXPECT_EQ(cmd_inv_iommu_pages(5, 0x7000, 0x1000, true, true, 0xABCDE), kat);
  Caps wide;
  wide.pasmax = 19;
  Command c = decode_ok(kat, wide);
  EXPECT_TRUE(c.gn);
  EXPECT_EQ(c.pasid, 0xABCDEu);
  EXPECT_EQ(c.domain_id, 5);
  // Default caps have 16-bit PASIDs
  expect_illegal(kat, kCaps, "INVALIDATE_IOMMU_PAGES: PASID wider than EFR.PASmax");
  // GN needs GTSup
  Caps no_gt = wide;
  no_gt.gt = false;
  expect_illegal(kat, no_gt, "GN=1 without EFR.GTSup");
  // GN=0: the PASID field is ignored (read as 0), even if wide: u64[1] = 0x7002
  Command g0 = decode_ok({0x30000005000ABCDEull, 0x7002ull});
  EXPECT_FALSE(g0.gn);
  EXPECT_EQ(g0.pasid, 0u);
  // reserved: u64[0] bit 20 (0x10_0000), bit 48 (n[51:48]=1); u64[1] bit 3 (0x7002 | 0x8 = 0x700A)
  expect_illegal({0x3000000500100000ull, 0x7002ull}, kCaps, "reserved bits [31:20]");
  expect_illegal({0x3001000500000000ull, 0x7002ull}, kCaps, "reserved bits [59:48]");
  expect_illegal({0x3000000500000000ull, 0x700Aull}, kCaps, "reserved bits [75:67]");
}

TEST(AmdViCmd, InvalidateIotlbPagesLinuxLayout) {
  // DeviceID 0x0100, qdep 0x20, (0x10000, 0x4000), GN, PASID 0x1234:
  // data[0] = 0x0100 | PASID[15:8]=0x12<<16 | 0x20<<24 = 0x2012_0100
  // data[1] = 0x0100 (QueueID) | PASID[7:0]=0x34<<16 | 4<<28 = 0x4034_0100
  //  -> u64[0] = 0x4034_0100_2012_0100; u64[1] = 0x11001 | GN 0x4 = 0x11005
  const CmdWords kat = {0x4034010020120100ull, 0x11005ull};
  EXPECT_EQ(cmd_inv_iotlb_pages(0x0100, 0x20, 0x10000, 0x4000, true, 0x1234), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::InvalidateIotlbPages);
  EXPECT_EQ(c.device_id, 0x0100);
  EXPECT_EQ(c.queue_id, 0x0100);
  EXPECT_EQ(c.maxpend, 0x20);
  EXPECT_TRUE(c.gn);
  EXPECT_EQ(c.pasid, 0x1234u);
  EXPECT_TRUE(c.s);
  EXPECT_EQ(inv_range(c.address, c.s).base, 0x10000u);
  // 20-bit PASID 0xABCDE: [15:8]=0xBC -> data[0] 0x20BC_0100; [7:0]=0xDE, [19:16]=0xA at data[1][27:24]
  //  -> data[1] 0x4ADE_0100; page 0x7000 | GN = 0x7004
  const CmdWords p20 = {0x4ADE010020BC0100ull, 0x7004ull};
  EXPECT_EQ(cmd_inv_iotlb_pages(0x0100, 0x20, 0x7000, 0x1000, true, 0xABCDE), p20);
  Caps wide;
  wide.pasmax = 19;
  EXPECT_EQ(decode_ok(p20, wide).pasid, 0xABCDEu);
  expect_illegal(p20, kCaps, "PASID wider");
  // Linux device_flush_dte: whole IOTLB, (0, ~0), no GN: data[1]:data[0] = 0x4000_0100:0x0000_0100
  const CmdWords all = {0x4000010000000100ull, 0x7FFFFFFFFFFFF001ull};
  EXPECT_EQ(cmd_inv_iotlb_pages(0x0100, 0, 0, ~0ull), all);
  EXPECT_TRUE(inv_range(decode_ok(all).address, true).all());
  // Type=1 at u64[1][5:4] (0x10): 0x11015
  expect_illegal({0x4034010020120100ull, 0x11015ull}, kCaps, "Type");
  // reserved u64[1] bit 1 (0x11007) and bit 6 (0x11045)
  expect_illegal({0x4034010020120100ull, 0x11007ull}, kCaps, "reserved bits [65:65]");
  expect_illegal({0x4034010020120100ull, 0x11045ull}, kCaps, "reserved bits [75:70]");
}

TEST(AmdViCmd, PrefetchIommuPages) {
  Caps pf;
  pf.prefetch = true;
  // DeviceID 0x10 | PFCount 4<<24 | opcode 6<<60           => u64[0] = 0x6000_0000_0400_0010
  // 0x4000_0000 | Inval 1<<4 (0x10)                         => u64[1] = 0x4000_0010
  const CmdWords kat = {0x6000000004000010ull, 0x40000010ull};
  EXPECT_EQ(cmd_prefetch_iommu_pages(0x10, 4, 0x40000000, false, true), kat);
  Command c = decode_ok(kat, pf);
  EXPECT_EQ(c.pf_count, 4);
  EXPECT_TRUE(c.inval);
  EXPECT_EQ(c.address, 0x40000000u);
  expect_illegal(kat, kCaps, "PREFETCH_IOMMU_PAGES without EFR.PreFSup");
  // GN, PASID 0x55 at [51:32]: u64[0] | 0x55<<32, u64[1] | GN 0x4
  const CmdWords gn = {0x6000005504000010ull, 0x40000014ull};
  EXPECT_EQ(cmd_prefetch_iommu_pages(0x10, 4, 0x40000000, false, true, true, 0x55), gn);
  EXPECT_EQ(decode_ok(gn, pf).pasid, 0x55u);
  // reserved u64[0] bit 16 and u64[1] bit 5
  expect_illegal({0x6000000004010010ull, 0x40000010ull}, pf, "reserved bits [23:16]");
  expect_illegal({0x6000000004000010ull, 0x40000030ull}, pf, "reserved bits [75:69]");
}

TEST(AmdViCmd, CompletePprRequest) {
  Caps ppr;
  ppr.ppr = true;
  // DeviceID 0x0200; data[1] = PASID 0x77 | 7<<28 = 0x7000_0077  -> u64[0] = 0x7000_0077_0000_0200
  // data[2] = GN 0x4; data[3] = tag 0x1AB | status 0xF<<12 = 0xF1AB -> u64[1] = 0x0000_F1AB_0000_0004
  const CmdWords kat = {0x7000007700000200ull, 0x0000F1AB00000004ull};
  EXPECT_EQ(cmd_complete_ppr(0x0200, 0x77, 0xF, 0x1AB, true), kat);
  Command c = decode_ok(kat, ppr);
  EXPECT_EQ(c.device_id, 0x0200);
  EXPECT_TRUE(c.gn);
  EXPECT_EQ(c.pasid, 0x77u);
  EXPECT_EQ(c.completion_tag, 0x1AB);
  EXPECT_EQ(c.ppr_status, 0xF);
  // Without GN Linux writes neither PASID nor GN
  EXPECT_EQ(cmd_complete_ppr(0x0200, 0x77, 0xF, 0x1AB, false),
            (CmdWords{0x7000000000000200ull, 0x0000F1AB00000000ull}));
  expect_illegal(kat, kCaps, "COMPLETE_PPR_REQUEST without EFR.PPRSup");
  // reserved data[3] bit 16 (u64[1] bit 48)
  expect_illegal({0x7000007700000200ull, 0x0001F1AB00000004ull}, ppr, "reserved bits [127:112]");
}

TEST(AmdViCmd, InvalidateIommuAll) {
  const CmdWords kat = {0x8000000000000000ull, 0};
  EXPECT_EQ(cmd_inv_iommu_all(), kat);
  EXPECT_EQ(decode_ok(kat).op, Opcode::InvalidateIommuAll);
  Caps no_ia;
  no_ia.ia = false;
  expect_illegal(kat, no_ia, "INVALIDATE_IOMMU_ALL without EFR.IASup");
  expect_illegal({0x8000000000000001ull, 0}, kCaps, "reserved bits [59:0]");
}

TEST(AmdViCmd, UnknownOpcodes) {
  expect_illegal({0, 0}, kCaps, "unknown opcode 0x0");
  expect_illegal({0x9000000000000000ull, 0}, kCaps, "unknown opcode 0x9");
  expect_illegal({0xF000000000000000ull, 0}, kCaps, "unknown opcode 0xF");
}

TEST(AmdViCmd, OpcodeNames) {
  EXPECT_STREQ(opcode_name(Opcode::CompletionWait), "COMPLETION_WAIT");
  EXPECT_STREQ(opcode_name(Opcode::InvalidateIotlbPages), "INVALIDATE_IOTLB_PAGES");
  EXPECT_STREQ(opcode_name(Opcode::InvalidateIommuAll), "INVALIDATE_IOMMU_ALL");
}

// ---------------------------------------------------------------- events

TEST(AmdViEvent, IoPageFaultHostKat) {
  // Write to a non-present page: DeviceID 0x10, DomainID 7, RW 1<<53
  // u64[0]: 0x10 | 7<<32 | RW (n[55:52]=2) | code 2<<60    => 0x2020_0007_0000_0010
  EventRecord e;
  e.code = EventCode::IoPageFault;
  e.device_id = 0x10;
  e.domain_or_pasid = 7;
  e.rw = true;
  e.address = 0x12345000;
  const EventWords kat = {0x2020000700000010ull, 0x12345000ull};
  EXPECT_EQ(encode_event(e), kat);
  // Linux: flags = (event[1] >> 16) & 0xFFF = 0x020 = EVENT_FLAG_RW
  EXPECT_EQ((kat[0] >> 48) & 0xFFF, 0x020u);
  EventRecord d = decode_event(kat);
  EXPECT_EQ(d.code, EventCode::IoPageFault);
  EXPECT_EQ(d.device_id, 0x10);
  EXPECT_EQ(d.domain_or_pasid, 7u);
  EXPECT_TRUE(d.rw);
  EXPECT_FALSE(d.pr || d.gn || d.i);
  EXPECT_EQ(d.address, 0x12345000u);
}

TEST(AmdViEvent, IoPageFaultGuestKat) {
  // GN, PASID 0xABCDE, NX, US, PR, RW, PE, DeviceID 0x0A08:
  //  [15:0] 0x0A08 | PASID[19:16]=0xA<<16 | PASID[15:0]=0xBCDE<<32
  //  | n[51:48] = GN 1|NX 2|US 4 = 7 | n[55:52] = PR 1|RW 2|PE 4 = 7 | code n[63:60]=2
  //                                                         => 0x2077_BCDE_000A_0A08
  EventRecord e;
  e.code = EventCode::IoPageFault;
  e.device_id = 0x0A08;
  e.domain_or_pasid = 0xABCDE;
  e.gn = e.nx = e.us = e.pr = e.rw = e.pe = true;
  e.address = 0x7FFF12345000ull;
  const EventWords kat = {0x2077BCDE000A0A08ull, 0x7FFF12345000ull};
  EXPECT_EQ(encode_event(e), kat);
  EXPECT_EQ((kat[0] >> 48) & 0xFFF, 0x077u);  // Linux flags value
  EventRecord d = decode_event(kat);
  EXPECT_EQ(d.domain_or_pasid, 0xABCDEu);
  EXPECT_TRUE(d.gn && d.nx && d.us && d.pr && d.rw && d.pe);
  EXPECT_FALSE(d.i || d.rz || d.tr);
  EXPECT_EQ(encode_event(d), kat);
}

TEST(AmdViEvent, IllegalDteAndCommandKat) {
  // ILLEGAL_DEV_TABLE_ENTRY: DeviceID 0x10, RZ 1<<55 (n[55:52]=8), code 1 => 0x1080_0000_0000_0010
  EventRecord dte;
  dte.code = EventCode::IllegalDevTableEntry;
  dte.device_id = 0x10;
  dte.rz = true;
  dte.address = 0x1000;
  EXPECT_EQ(encode_event(dte), (EventWords{0x1080000000000010ull, 0x1000}));
  // ILLEGAL_COMMAND_ERROR: only the code; address = command buffer 0x2000_0000 + head 0x120
  EventRecord cmd;
  cmd.code = EventCode::IllegalCommandError;
  cmd.address = 0x20000120;
  const EventWords kat = {0x5000000000000000ull, 0x20000120ull};
  EXPECT_EQ(encode_event(cmd), kat);
  EventRecord d = decode_event(kat);
  EXPECT_EQ(d.code, EventCode::IllegalCommandError);
  EXPECT_EQ(d.address, 0x20000120u);
  EXPECT_STREQ(event_name(d.code), "ILLEGAL_COMMAND_ERROR");
}

TEST(AmdViEvent, HardwareErrorsKat) {
  // DEV_TAB_HW_ERROR: DeviceID 0x10, Type=master abort 1<<57 (n[59:56]=2), code 3
  //  -> 0x3200_0000_0000_0010; address = DTE 0x1000_0000 + 0x10*32 = 0x1000_0200
  EventRecord dt;
  dt.code = EventCode::DevTabHwError;
  dt.device_id = 0x10;
  dt.type = kHwErrMasterAbort;
  dt.address = 0x10000200;
  EXPECT_EQ(encode_event(dt), (EventWords{0x3200000000000010ull, 0x10000200ull}));
  // PAGE_TAB_HW_ERROR: DomainID 7<<32, RW 1<<53 (n[55:52]=2), Type=target abort 2<<57 (n[59:56]=4)
  //  -> 0x4420_0007_0000_0010
  EventRecord pt;
  pt.code = EventCode::PageTabHwError;
  pt.device_id = 0x10;
  pt.domain_or_pasid = 7;
  pt.rw = true;
  pt.type = kHwErrTargetAbort;
  pt.address = 0x300000018ull;
  EXPECT_EQ(encode_event(pt), (EventWords{0x4420000700000010ull, 0x300000018ull}));
  // COMMAND_HW_ERROR: Type=data error 3<<57 (n[59:56]=6), code 6 => 0x6600_0000_0000_0000
  EventRecord ch;
  ch.code = EventCode::CommandHwError;
  ch.type = kHwErrDataError;
  ch.address = 0x20000040;
  EXPECT_EQ(encode_event(ch), (EventWords{0x6600000000000000ull, 0x20000040ull}));
  EXPECT_EQ(decode_event(encode_event(ch)).type, kHwErrDataError);
}

TEST(AmdViEvent, TimeoutAndInvalidRequestKat) {
  // IOTLB_INV_TIMEOUT: DeviceID 0x100, code 7 => 0x7000_0000_0000_0100; address [63:4]:
  // 0x2000_005F -> 0x2000_0050
  EventRecord to;
  to.code = EventCode::IotlbInvTimeout;
  to.device_id = 0x100;
  to.address = 0x2000005F;
  EXPECT_EQ(encode_event(to), (EventWords{0x7000000000000100ull, 0x20000050ull}));
  // INVALID_DEVICE_REQUEST: DeviceID 0x18, TR 1<<56 (n[59:56]=1) | Type=1<<57 (|2 -> 3), code 8
  //  -> 0x8300_0000_0000_0018
  EventRecord ir;
  ir.code = EventCode::InvalidDeviceRequest;
  ir.device_id = 0x18;
  ir.tr = true;
  ir.type = 1;
  ir.address = 0xFEE00000;
  const EventWords kat = {0x8300000000000018ull, 0xFEE00000ull};
  EXPECT_EQ(encode_event(ir), kat);
  EventRecord d = decode_event(kat);
  EXPECT_TRUE(d.tr);
  EXPECT_EQ(d.type, 1);
  EXPECT_EQ(d.device_id, 0x18);
}

// Event codes 0x9 and 0xA of the AMD IOMMU spec event-code table.
TEST(AmdViEvent, InvalidPprRequestAndEventCounterZeroKat) {
  // INVALID_PPR_REQUEST (Linux PPR_PASID1/PPR_PASID2 positions): DeviceID 0x0010 [15:0],
  // PASID 0x12345: [15:0]=0x2345 at [31:16], [19:16]=0x1 at [45:42] (0x400 in [47:32]);
  // Tag 0x155 at [41:32]; GN 1<<48; code 9<<60
  //   => [47:32] = 0x155|0x400 = 0x555 => 0x9001_0555_2345_0010
  EventRecord p;
  p.code = EventCode::InvalidPprRequest;
  p.device_id = 0x10;
  p.domain_or_pasid = 0x12345;
  p.tag = 0x155;
  p.gn = true;
  p.address = 0xFEDCBA9876543000ull;
  const EventWords kat = {0x9001055523450010ull, 0xFEDCBA9876543000ull};
  EXPECT_EQ(encode_event(p), kat);
  const EventRecord d = decode_event(kat);
  EXPECT_EQ(d.code, EventCode::InvalidPprRequest);
  EXPECT_EQ(d.device_id, 0x10);
  EXPECT_EQ(d.domain_or_pasid, 0x12345u);
  EXPECT_EQ(d.tag, 0x155);
  EXPECT_TRUE(d.gn);
  EXPECT_STREQ(event_name(d.code), "INVALID_PPR_REQUEST");
  // EVENT_COUNTER_ZERO: code 0xA<<60, the address word as given.
  EventRecord z;
  z.code = EventCode::EventCounterZero;
  z.address = 0x40;
  EXPECT_EQ(encode_event(z), (EventWords{0xA000000000000000ull, 0x40ull}));
  EXPECT_EQ(decode_event({0xA000000000000000ull, 0x40ull}).code, EventCode::EventCounterZero);
  EXPECT_STREQ(event_name(EventCode::EventCounterZero), "EVENT_COUNTER_ZERO");
}

TEST(AmdViEvent, Names) {
  EXPECT_STREQ(event_name(EventCode::IoPageFault), "IO_PAGE_FAULT");
  EXPECT_STREQ(event_name(EventCode::IotlbInvTimeout), "IOTLB_INV_TIMEOUT");
  // Unknown codes decode as stored (0xD = RMP_FAULT, not modelled)
  EventRecord d = decode_event({0xD000000000000000ull, 0});
  EXPECT_EQ(static_cast<uint8_t>(d.code), 0xD);
  EXPECT_STREQ(event_name(d.code), "UNKNOWN");
}

}  // namespace
}  // namespace iommusim::amdvi

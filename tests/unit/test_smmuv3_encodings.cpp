// Known-answer tests for SMMUv3 STE/CD/L1 descriptors, CMDQ entries, the Linux
// range-TLBI planner and event records. Every literal was worked out by hand from
// the field tables of the Arm SMMUv3 architecture specification (IHI 0070: 5.2 STE, 5.4
// CD, chapter 4 commands, 7.3 event records); the
// arithmetic is in the comment next to it. Nibble notation: "n[47:44]=3" means
// hex digit for bits 47..44 is 3.
#include <gtest/gtest.h>

#include "models/smmuv3/commands.h"
#include "models/smmuv3/events.h"
#include "models/smmuv3/structures.h"

namespace iommusim::smmuv3 {
namespace {

// ---------------------------------------------------------------- STE

StreamTableEntry nested_ste() {
  StreamTableEntry e;
  e.valid = true;
  e.config = SteConfig::Nested;
  e.s1_context_ptr = 0x80001000;
  e.s1_cd_max = 3;
  e.s1_dss = 1;
  e.s1_cir = 1;
  e.s1_cor = 1;
  e.s1_csh = 3;
  e.mev = true;
  e.shcfg = 1;
  e.s2_vmid = 0x42;
  e.s2_t0sz = 24;  // 40-bit IPA
  e.s2_sl0 = 1;    // start at L1 (valid for 31..43-bit IPA)
  e.s2_ir0 = 1;
  e.s2_or0 = 1;
  e.s2_sh0 = 3;
  e.s2_ps = 2;  // 40-bit PA
  e.s2_aa64 = true;
  e.s2_ptw = true;
  e.s2_r = true;
  e.s2_ttb = 0x40000000;
  return e;
}

// dw0: V=1 (0x1) | Config=0b111<<1 (0xE) | S1ContextPtr 0x80001000 in place
//      | S1CDMax=3<<59 (0x1800_0000_0000_0000)                       => 0x1800_0000_8000_100F
// dw1: S1DSS=1 (0x1) | S1CIR=1<<2 (0x4) | S1COR=1<<4 (0x10) | S1CSH=3<<6 (0xC0)
//      | MEV=1<<19 (0x8_0000) | SHCFG=1<<44 (0x1000_0000_0000)       => 0x0000_1000_0008_00D5
// dw2: S2VMID=0x42 | S2T0SZ=24<<32 (n[39:36]=1,n[35:32]=8) | S2SL0=1<<38 (n[39:36]|=4)
//      | S2IR0=1<<40 (n[43:40]=1) | S2OR0=1<<42 (n[43:40]|=4) | S2SH0=3<<44 (n[47:44]=3)
//      | S2PS=2<<48 (n[51:48]=2) | S2AA64=1<<51 (n[51:48]|=8) | S2PTW=1<<54 (n[55:52]=4)
//      | S2R=1<<58 (n[59:56]=4)                                        => 0x044A_3558_0000_0042
// dw3: S2TTB 0x4000_0000 in place                                      => 0x0000_0000_4000_0000
const SteWords kNestedSte = {0x180000008000100Full, 0x00001000000800D5ull, 0x044A355800000042ull,
                             0x0000000040000000ull, 0, 0, 0, 0};

TEST(SmmuV3Ste, NestedEncodeKat) { EXPECT_EQ(encode_ste(nested_ste()), kNestedSte); }

TEST(SmmuV3Ste, NestedDecodeKat) {
  std::string why;
  auto e = decode_ste(kNestedSte, &why);
  ASSERT_TRUE(e.has_value()) << why;
  EXPECT_TRUE(e->valid);
  EXPECT_EQ(e->config, SteConfig::Nested);
  EXPECT_TRUE(e->s1_enabled());
  EXPECT_TRUE(e->s2_enabled());
  EXPECT_EQ(e->s1_context_ptr, 0x80001000u);
  EXPECT_EQ(e->s1_cd_max, 3);
  EXPECT_EQ(e->s1_dss, 1);
  EXPECT_EQ(e->s1_csh, 3);
  EXPECT_TRUE(e->mev);
  EXPECT_EQ(e->shcfg, 1);
  EXPECT_EQ(e->s2_vmid, 0x42);
  EXPECT_EQ(e->s2_t0sz, 24);
  EXPECT_EQ(e->s2_sl0, 1);
  EXPECT_EQ(e->s2_ir0, 1);
  EXPECT_EQ(e->s2_or0, 1);
  EXPECT_EQ(e->s2_sh0, 3);
  EXPECT_EQ(e->s2_tg, 0);
  EXPECT_EQ(e->s2_ps, 2);
  EXPECT_TRUE(e->s2_aa64);
  EXPECT_TRUE(e->s2_ptw);
  EXPECT_TRUE(e->s2_r);
  EXPECT_FALSE(e->s2_s);
  EXPECT_FALSE(e->s2_endi);
  EXPECT_EQ(e->s2_ttb, 0x40000000u);
}

// S2-only: dw0: V=1 | Config=0b110<<1 (0xC)                               => 0xD
// dw2: S2VMID=1 | S2T0SZ=25<<32 (n[39:36]=1,n[35:32]=9) | S2SL0=1<<38 (n[39:36]|=4)
//      | S2PS=5<<48 (n[51:48]=5) | S2AA64=1<<51 (n[51:48]|=8)            => 0x000D_0059_0000_0001
// dw3: S2TTB 0x8_1234_5000                                                => 0x0000_0008_1234_5000
const SteWords kS2Ste = {0xDull, 0, 0x000D005900000001ull, 0x0000000812345000ull, 0, 0, 0, 0};

TEST(SmmuV3Ste, S2OnlyEncodeKat) {
  StreamTableEntry e;
  e.valid = true;
  e.config = SteConfig::S2Trans;
  e.s2_vmid = 1;
  e.s2_t0sz = 25;
  e.s2_sl0 = 1;
  e.s2_ps = 5;
  e.s2_aa64 = true;
  e.s2_ttb = 0x812345000;
  EXPECT_EQ(encode_ste(e), kS2Ste);
}

TEST(SmmuV3Ste, S2OnlyDecodeKat) {
  std::string why;
  auto e = decode_ste(kS2Ste, &why);
  ASSERT_TRUE(e.has_value()) << why;
  EXPECT_EQ(e->config, SteConfig::S2Trans);
  EXPECT_FALSE(e->s1_enabled());
  EXPECT_EQ(e->s2_vmid, 1);
  EXPECT_EQ(e->s2_t0sz, 25);
  EXPECT_EQ(e->s2_sl0, 1);
  EXPECT_EQ(e->s2_ps, 5);
  EXPECT_EQ(e->s2_ttb, 0x812345000u);
}

TEST(SmmuV3Ste, RoundTrip) {
  auto e = decode_ste(encode_ste(nested_ste()), nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(encode_ste(*e), kNestedSte);
}

TEST(SmmuV3Ste, InvalidIsNotADecodeError) {
  // V=0 with garbage Config=1: decodes (valid=false) without validation.
  auto e = decode_ste(SteWords{0x2, 0, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(e.has_value());
  EXPECT_FALSE(e->valid);
}

TEST(SmmuV3Ste, BypassAndAbortDecode) {
  // V=1 | Config=0b100<<1 (0x8) => 0x9; V=1 | Config=0 => 0x1
  auto bypass = decode_ste(SteWords{0x9, 0, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(bypass.has_value());
  EXPECT_EQ(bypass->config, SteConfig::Bypass);
  auto abort = decode_ste(SteWords{0x1, 0, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(abort.has_value());
  EXPECT_EQ(abort->config, SteConfig::Abort);
}

void expect_bad_ste(const SteWords& w, const std::string& field) {
  std::string why;
  EXPECT_FALSE(decode_ste(w, &why).has_value());
  EXPECT_NE(why.find(field), std::string::npos) << "why=" << why;
}

TEST(SmmuV3Ste, RejectsReservedConfig) {
  // V=1 | Config=1<<1 (0x2) => 0x3
  expect_bad_ste({0x3, 0, 0, 0, 0, 0, 0, 0}, "Config");
}

TEST(SmmuV3Ste, RejectsNon4KS2Granule) {
  // kS2Ste dw2 | S2TG=1 (64K) <<46 (n[47:44]=4) => 0x000D_4059_0000_0001
  expect_bad_ste({0xD, 0, 0x000D405900000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2TG");
}

TEST(SmmuV3Ste, RejectsOtherS2Fields) {
  // S2AA64 cleared: n[51:48]=5                                    => 0x0005_0059_0000_0001
  expect_bad_ste({0xD, 0, 0x0005005900000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2AA64");
  // SL0=0 (start L2 covers 22..34-bit IPA) with 39-bit IPA: n[39:36]=1 => 0x000D_0019_0000_0001
  expect_bad_ste({0xD, 0, 0x000D001900000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2SL0");
  // SL0=3 reserved: n[39:36]=1|0xC=0xD                            => 0x000D_00D9_0000_0001
  expect_bad_ste({0xD, 0, 0x000D00D900000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2SL0");
  // S2T0SZ=40 (0x28): n[39:36]=2|4(SL0=1)=6, n[35:32]=8           => 0x000D_0068_0000_0001
  expect_bad_ste({0xD, 0, 0x000D006800000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2T0SZ");
  // S2PS=6 (52-bit): n[51:48]=6|8=0xE                              => 0x000E_0059_0000_0001
  expect_bad_ste({0xD, 0, 0x000E005900000001ull, 0x812345000ull, 0, 0, 0, 0}, "S2PS");
  // S2TTB with bit 4 set: 0x8_1234_5010
  expect_bad_ste({0xD, 0, 0x000D005900000001ull, 0x812345010ull, 0, 0, 0, 0}, "S2TTB");
}

TEST(SmmuV3Ste, RejectsS1Fields) {
  // V=1 | Config=0b101<<1 (0xA) => 0xB; | S1Fmt=2<<4 (0x20) => 0x2B
  expect_bad_ste({0x2B, 0, 0, 0, 0, 0, 0, 0}, "S1Fmt");
  // 0xB | S1CDMax=21<<59 (0b10101<<59 = 0xA800_0000_0000_0000) => 0xA800_0000_0000_000B
  expect_bad_ste({0xA80000000000000Bull, 0, 0, 0, 0, 0, 0, 0}, "S1CDMax");
}

TEST(SmmuV3Ste, RejectsWhatIdr0DoesNotAdvertise) {
  // kNestedSte dw2 0x044A_3558_0000_0042 with S2ENDI=1<<52: n[55:52]=4|1=5 => 0x045A_3558_0000_0042
  // (IDR0.TTENDIAN=2: little-endian only)
  expect_bad_ste({kNestedSte[0], kNestedSte[1], 0x045A355800000042ull, kNestedSte[3], 0, 0, 0, 0}, "S2ENDI");
  // ... with S2S=1<<57: n[59:56]=4|2=6 => 0x064A_3558_0000_0042 (IDR0.STALL_MODEL=1: no stall)
  expect_bad_ste({kNestedSte[0], kNestedSte[1], 0x064A355800000042ull, kNestedSte[3], 0, 0, 0, 0}, "S2S");
}

// ---------------------------------------------------------------- CD

// dw0: T0SZ=16 (0x10) | IRGN0=1<<8 (0x100) | ORGN0=1<<10 (0x400) | SH0=3<<12 (0x3000)
//      | EPD1=1<<30 | V=1<<31 (together 0xC000_0000)  -> low word 0xC000_3510
//      | IPS=5<<32 (n[35:32]=5) | AA64=1<<41 (n[43:40]=2) | R=1<<45 (n[47:44]=2)
//      | A=1<<46 (n[47:44]|=4) | ASID=0x1234<<48                     => 0x1234_6205_C000_3510
// dw1: TTB0 0x8765_4000 in place; dw3: MAIR 0x44FF04
const CdWords kCd = {0x12346205C0003510ull, 0x0000000087654000ull, 0, 0x000000000044FF04ull, 0, 0, 0, 0};

TEST(SmmuV3Cd, EncodeKat) {
  ContextDescriptor d;
  d.valid = true;
  d.t0sz = 16;
  d.irgn0 = 1;
  d.orgn0 = 1;
  d.sh0 = 3;
  d.epd1 = true;
  d.ips = 5;
  d.aa64 = true;
  d.r = true;
  d.a = true;
  d.asid = 0x1234;
  d.ttb0 = 0x87654000;
  d.mair = 0x44FF04;
  EXPECT_EQ(encode_cd(d), kCd);
}

TEST(SmmuV3Cd, DecodeKat) {
  std::string why;
  auto d = decode_cd(kCd, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_TRUE(d->valid);
  EXPECT_EQ(d->t0sz, 16);
  EXPECT_EQ(d->tg0, 0);
  EXPECT_EQ(d->irgn0, 1);
  EXPECT_EQ(d->orgn0, 1);
  EXPECT_EQ(d->sh0, 3);
  EXPECT_FALSE(d->epd0);
  EXPECT_TRUE(d->epd1);
  EXPECT_EQ(d->ips, 5);
  EXPECT_TRUE(d->aa64);
  EXPECT_TRUE(d->r);
  EXPECT_TRUE(d->a);
  EXPECT_FALSE(d->s);
  EXPECT_FALSE(d->aset);
  EXPECT_EQ(d->asid, 0x1234);
  EXPECT_EQ(d->ttb0, 0x87654000u);
  EXPECT_EQ(d->mair, 0x44FF04u);
  EXPECT_EQ(encode_cd(*d), kCd);  // round trip
}

TEST(SmmuV3Cd, InvalidIsNotADecodeError) {
  // kCd dw0 with V (bit 31) cleared: low word 0x4000_3510
  auto d = decode_cd({0x1234620540003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->valid);
}

void expect_bad_cd(const CdWords& w, const std::string& field) {
  std::string why;
  EXPECT_FALSE(decode_cd(w, &why).has_value());
  EXPECT_NE(why.find(field), std::string::npos) << "why=" << why;
}

TEST(SmmuV3Cd, Rejects) {
  // AA64 cleared: n[43:40]=0                                 => 0x1234_6005_C000_3510
  expect_bad_cd({0x12346005C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "AA64");
  // TG0=2 (16K) <<6 = 0x80: low word 0xC000_3590
  expect_bad_cd({0x12346205C0003590ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "TG0");
  // T0SZ=15 (0xF): low word 0xC000_350F
  expect_bad_cd({0x12346205C000350Full, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "T0SZ");
  // IPS=6: n[35:32]=6                                        => 0x1234_6206_C000_3510
  expect_bad_cd({0x12346206C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "IPS");
  // TTB0 0x8765_4800 (bit 11 set)
  expect_bad_cd({0x12346205C0003510ull, 0x87654800ull, 0, 0, 0, 0, 0, 0}, "TTB0");
}

// The model's IDR0 claims (HTTU=0, TTENDIAN=2 little-endian only, STALL_MODEL=1,
// TERM_MODEL=1) make these CD fields ILLEGAL: C_BAD_CD, as QEMU decode_cd does. kCd dw0 is
// 0x1234_6205_C000_3510: n[47:44]=6 (A=bit 46, R=bit 45), n[43:40]=2 (AA64=bit 41).
TEST(SmmuV3Cd, RejectsWhatIdr0DoesNotAdvertise) {
  // HA=1<<43: n[43:40]=2|8=A                                  => 0x1234_6A05_C000_3510
  expect_bad_cd({0x12346A05C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "HA");
  // HD=1<<42: n[43:40]=2|4=6                                  => 0x1234_6605_C000_3510
  expect_bad_cd({0x12346605C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "HD");
  // ENDI=1<<15: low word 0xC000_3510|0x8000                   => 0x1234_6205_C000_B510
  expect_bad_cd({0x12346205C000B510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "ENDI");
  // S=1<<44: n[47:44]=6|1=7                                   => 0x1234_7205_C000_3510
  expect_bad_cd({0x12347205C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "CD.S");
  // A cleared (bit 46): n[47:44]=6&~4=2                       => 0x1234_2205_C000_3510
  expect_bad_cd({0x12342205C0003510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, "CD.A");
}

TEST(SmmuV3Cd, Epd0IsAllowed) {
  // EPD0=1<<14 (0x4000): low word 0xC000_7510
  auto d = decode_cd({0x12346205C0007510ull, 0x87654000ull, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->epd0);
}

// ---------------------------------------------------------------- L1 descriptor

TEST(SmmuV3StL1, Kat) {
  // SPAN=9 (Linux SPLIT=8 -> span 9) | L2Ptr 0x8_0000_1000 in place => 0x0000_0008_0000_1009
  EXPECT_EQ(encode_st_l1({9, 0x800001000}), 0x0000000800001009ull);
  auto d = decode_st_l1(0x0000000800001009ull);
  EXPECT_EQ(d.span, 9);
  EXPECT_EQ(d.l2_ptr, 0x800001000u);
}

// ---------------------------------------------------------------- commands

const DecodeCaps kCaps{};

Command decode_ok(const CmdWords& w, const DecodeCaps& caps = kCaps) {
  std::string why;
  auto c = decode_command(w, caps, &why);
  EXPECT_TRUE(c.has_value()) << why;
  return c.value_or(Command{});
}

TEST(SmmuV3Cmd, CfgiSte) {
  // Opcode 0x03 | SID=0x12<<32; dw1 Leaf=1
  const CmdWords kat = {0x0000001200000003ull, 0x1};
  EXPECT_EQ(cmd_cfgi_ste(0x12, true), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::CfgiSte);
  EXPECT_EQ(c.sid, 0x12u);
  EXPECT_TRUE(c.leaf);
}

TEST(SmmuV3Cmd, CfgiAllAndRange) {
  // Opcode 0x04, SID=0; dw1 Range=31 (0x1F)
  EXPECT_EQ(cmd_cfgi_all(), (CmdWords{0x04, 0x1F}));
  // Opcode 0x04 | SID=0x100<<32; dw1 Range=7
  const CmdWords kat = {0x0000010000000004ull, 0x7};
  EXPECT_EQ(cmd_cfgi_ste_range(0x100, 7), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::CfgiAll);
  EXPECT_EQ(c.sid, 0x100u);
  EXPECT_EQ(c.range, 7);
}

TEST(SmmuV3Cmd, CfgiCd) {
  // Opcode 0x05 | SSID=0x345<<12 (0x34_5000) | SID=0x12<<32; dw1 Leaf=0
  const CmdWords kat = {0x0000001200345005ull, 0};
  EXPECT_EQ(cmd_cfgi_cd(0x12, 0x345, false), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.op, Opcode::CfgiCd);
  EXPECT_EQ(c.sid, 0x12u);
  EXPECT_EQ(c.ssid, 0x345u);
  EXPECT_FALSE(c.leaf);
  // Opcode 0x06 | SID=0x12<<32
  EXPECT_EQ(cmd_cfgi_cd_all(0x12), (CmdWords{0x0000001200000006ull, 0}));
}

TEST(SmmuV3Cmd, TlbiNhAllAsid) {
  // Opcode 0x10 | VMID=5<<32
  EXPECT_EQ(cmd_tlbi_nh_all(5), (CmdWords{0x0000000500000010ull, 0}));
  // Opcode 0x11 | VMID=5<<32 | ASID=0xABCD<<48
  const CmdWords kat = {0xABCD000500000011ull, 0};
  EXPECT_EQ(cmd_tlbi_nh_asid(5, 0xABCD), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.vmid, 5);
  EXPECT_EQ(c.asid, 0xABCD);
}

TEST(SmmuV3Cmd, TlbiNhVaSingle) {
  // Opcode 0x12 | VMID=5<<32 | ASID=7<<48; dw1 VA 0xFFFF_8000_1234_5000 | Leaf=1
  const CmdWords kat = {0x0007000500000012ull, 0xFFFF800012345001ull};
  EXPECT_EQ(cmd_tlbi_nh_va(5, 7, 0xFFFF800012345000ull, true), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.addr, 0xFFFF800012345000ull);
  EXPECT_TRUE(c.leaf);
  EXPECT_EQ(c.tg, 0);
  EXPECT_EQ(tlbi_range_bytes(c), 0x1000u);
}

// Range form: dw0 Opcode 0x12 | NUM=3<<12 (0x3000) | SCALE=2<<20 (0x20_0000) | VMID=5<<32 | ASID=7<<48
// dw1 Leaf=1 | TTL=3<<8 (0x300) | TG=1<<10 (0x400) | VA 0x1234_5000 => 0x1234_5701
const CmdWords kNhVaRange = {0x0007000500203012ull, 0x0000000012345701ull};

TEST(SmmuV3Cmd, TlbiNhVaRange) {
  EXPECT_EQ(cmd_tlbi_nh_va(5, 7, 0x12345000, true, TlbiRange{3, 2, 3, 1}), kNhVaRange);
  Command c = decode_ok(kNhVaRange);
  EXPECT_EQ(c.num, 3);
  EXPECT_EQ(c.scale, 2);
  EXPECT_EQ(c.ttl, 3);
  EXPECT_EQ(c.tg, 1);
  EXPECT_EQ(c.addr, 0x12345000u);
  // (3+1) << 2 << 12 = 16 pages = 0x10000
  EXPECT_EQ(tlbi_range_bytes(c), 0x10000u);
}

TEST(SmmuV3Cmd, TlbiNhVaaS12S2IpaNsnh) {
  // Opcode 0x13 | VMID=9<<32; dw1 VA 0x4000_0000, Leaf=0
  EXPECT_EQ(cmd_tlbi_nh_vaa(9, 0x40000000, false), (CmdWords{0x0000000900000013ull, 0x40000000ull}));
  // Opcode 0x28 | VMID=0x1FF<<32
  EXPECT_EQ(cmd_tlbi_s12_vmall(0x1FF), (CmdWords{0x000001FF00000028ull, 0}));
  // Opcode 0x2A | SCALE=5<<20 (0x50_0000) | VMID=2<<32; dw1 IPA 0x8_8000_0000 | TTL=3<<8 | TG=1<<10 | Leaf
  const CmdWords ipa = {0x000000020050002Aull, 0x0000000880000701ull};
  EXPECT_EQ(cmd_tlbi_s2_ipa(2, 0x880000000, true, TlbiRange{0, 5, 3, 1}), ipa);
  Command c = decode_ok(ipa);
  EXPECT_EQ(c.op, Opcode::TlbiS2Ipa);
  EXPECT_EQ(c.vmid, 2);
  EXPECT_EQ(c.addr, 0x880000000u);
  EXPECT_EQ(tlbi_range_bytes(c), 32u * 0x1000);  // (0+1) << 5 << 12
  // Opcode 0x30
  EXPECT_EQ(cmd_tlbi_nsnh_all(), (CmdWords{0x30, 0}));
}

TEST(SmmuV3Cmd, SyncLinuxIrq) {
  // Opcode 0x46 | CS=1<<12 (0x1000) | MSH=3<<22 (0xC0_0000) | MSIAttr=0xF<<24 (0xF00_0000) => 0x0FC0_1046
  // dw1 MSIAddr 0x1_0000_0040 in place (bits [51:2])
  const CmdWords kat = {0x000000000FC01046ull, 0x0000000100000040ull};
  EXPECT_EQ(cmd_sync(SyncCs::Irq, 0x100000040), kat);
  Command c = decode_ok(kat);
  EXPECT_EQ(c.cs, SyncCs::Irq);
  EXPECT_EQ(c.msh, 3);
  EXPECT_EQ(c.msi_attr, 0xF);
  EXPECT_EQ(c.msi_data, 0u);
  EXPECT_EQ(c.msi_addr, 0x100000040u);
  // MSIData=0xDEADBEEF<<32 on top of the same dw0
  EXPECT_EQ(cmd_sync(SyncCs::Irq, 0x100000040, 0xDEADBEEF)[0], 0xDEADBEEF0FC01046ull);
  // CS=SEV: 2<<12 = 0x2000 => 0x0FC0_2046
  EXPECT_EQ(cmd_sync(SyncCs::Sev), (CmdWords{0x000000000FC02046ull, 0}));
}

TEST(SmmuV3Cmd, PrefetchConfig) {
  // Opcode 0x01 | SID=0x77<<32
  const CmdWords kat = {0x0000007700000001ull, 0};
  EXPECT_EQ(cmd_prefetch_config(0x77), kat);
  EXPECT_EQ(decode_ok(kat).sid, 0x77u);
}

TEST(SmmuV3Cmd, AtcInv) {
  // Opcode 0x40 | SSV=1<<11 (0x800) | SSID=3<<12 (0x3000) | SID=0x10<<32; dw1 Addr 0x7000, Size=0
  const CmdWords kat = {0x0000001000003840ull, 0x7000};
  EXPECT_EQ(cmd_atc_inv(0x10, true, 3, 0x7000, 0, false), kat);
  Command c = decode_ok(kat);
  EXPECT_TRUE(c.ssv);
  EXPECT_EQ(c.ssid, 3u);
  EXPECT_EQ(c.sid, 0x10u);
  EXPECT_EQ(c.addr, 0x7000u);
  // Linux "invalidate all": Global=1<<9 (0x200) | opcode 0x40 => 0x240; dw1 Size=52 (0x34)
  const CmdWords all = {0x0000001000000240ull, 0x34};
  EXPECT_EQ(cmd_atc_inv(0x10, false, 0, 0, 52, true), all);
  Command a = decode_ok(all);
  EXPECT_TRUE(a.global);
  EXPECT_EQ(a.size, 52);
}

TEST(SmmuV3Cmd, DecodePriRespAndResume) {
  // PRI_RESP: opcode 0x41 | SID=3<<32; dw1 PRGI=0x1FF | Resp=2<<12 (0x2000) => 0x21FF
  Command p = decode_ok({0x0000000300000041ull, 0x21FF});
  EXPECT_EQ(p.prgi, 0x1FF);
  EXPECT_EQ(p.resp, 2);
  // RESUME: opcode 0x44 | Resp=1<<12 (0x1000) | SID=3<<32; dw1 STAG=0xBEEF
  Command r = decode_ok({0x0000000300001044ull, 0xBEEF});
  EXPECT_EQ(r.resp, 1);
  EXPECT_EQ(r.stag, 0xBEEF);
  EXPECT_EQ(r.sid, 3u);
}

void expect_illegal(const CmdWords& w, const DecodeCaps& caps, const std::string& what) {
  std::string why;
  EXPECT_FALSE(decode_command(w, caps, &why).has_value());
  EXPECT_NE(why.find(what), std::string::npos) << "why=" << why;
}

TEST(SmmuV3Cmd, DecodeRejects) {
  expect_illegal({0x7F, 0}, kCaps, "0x7F");
  expect_illegal({0x07, 0}, kCaps, "0x07");  // QEMU's CFGI_ALL number is not an opcode here
  expect_illegal({0x45, 0}, kCaps, "0x45");  // STALL_TERM not modelled
  expect_illegal({0x00, 0}, kCaps, "0x00");
  // CMD_SYNC CS=3<<12 (0x3000) => 0x3046
  expect_illegal({0x3046, 0}, kCaps, "CS=3");
  // Range fields without RIL
  DecodeCaps no_ril;
  no_ril.range_invalidation = false;
  expect_illegal(kNhVaRange, no_ril, "RIL");
  // TG=1<<10 alone (NUM=SCALE=0) is still a range command: dw1 0x1234_5401
  expect_illegal({0x0007000500000012ull, 0x12345401ull}, no_ril, "RIL");
  // ...and the non-range form is fine without RIL
  EXPECT_TRUE(decode_command({0x0007000500000012ull, 0x12345001ull}, no_ril, nullptr).has_value());
  // TG=0 with NUM=1<<12 (0x1000) is illegal even with RIL
  expect_illegal({0x0007000500001012ull, 0x12345001ull}, kCaps, "TG=0");
  // SID wider than SIDSIZE: CFGI_STE SID=0x100 with 8 SID bits
  DecodeCaps narrow;
  narrow.sid_bits = 8;
  narrow.ssid_bits = 1;
  expect_illegal({0x0000010000000003ull, 0}, narrow, "SID");
  // SSV=1 with SSID=3 wider than 1 bit (ATC_INV literal from above, SID 0x10 fits 8 bits)
  expect_illegal({0x0000001000003840ull, 0x7000}, narrow, "SSID");
  // Same SSID bits but SSV=0 (bit 11 clear, 0x3040): SSID is ignored
  EXPECT_TRUE(decode_command({0x0000001000003040ull, 0x7000}, narrow, nullptr).has_value());
  // PRI_RESP Resp=3<<12 (0x3000)
  expect_illegal({0x0000000300000041ull, 0x3000}, kCaps, "Resp=3");
}

TEST(SmmuV3Cmd, OpcodeNames) {
  EXPECT_STREQ(opcode_name(Opcode::Sync), "CMD_SYNC");
  EXPECT_STREQ(opcode_name(Opcode::CfgiAll), "CMD_CFGI_STE_RANGE");
  EXPECT_STREQ(opcode_name(Opcode::TlbiS2Ipa), "CMD_TLBI_S2_IPA");
}

// ---------------------------------------------------------------- range planner

bool same(const TlbiPiece& p, uint64_t addr, TlbiRange r) {
  return p.addr == addr && p.range.num == r.num && p.range.scale == r.scale && p.range.ttl == r.ttl &&
         p.range.tg == r.tg;
}

TEST(SmmuV3TlbiPlan, ThirtyThreePagesLeafNeedsTwoCommands) {
  // 33 pages: scale=ffs(33)=0, num=33&31=1 -> NUM=0,SCALE=0 (1 page), 32 left;
  // scale=ffs(32)=5, num=1 -> NUM=0,SCALE=5 at 0x10000+0x1000. TTL=3 (4K leaf), TG=1.
  auto p = plan_tlbi_range(0x10000, 33 * 0x1000, 0x1000, true, true);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(same(p[0], 0x10000, {0, 0, 3, 1}));
  EXPECT_TRUE(same(p[1], 0x11000, {0, 5, 3, 1}));
  // Second piece as a command: opcode 0x12 | SCALE=5<<20 (0x50_0000) | VMID=1<<32 | ASID=2<<48;
  // dw1 0x11000 | TG 0x400 | TTL 0x300 | Leaf 1 => 0x11701
  EXPECT_EQ(cmd_tlbi_nh_va(1, 2, p[1].addr, true, p[1].range),
            (CmdWords{0x0002000100500012ull, 0x0000000000011701ull}));
}

TEST(SmmuV3TlbiPlan, SingleCommandCases) {
  // 32 pages: scale=5, num=1 -> NUM=0, SCALE=5
  auto p = plan_tlbi_range(0x200000, 32 * 0x1000, 0x1000, true, true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(same(p[0], 0x200000, {0, 5, 3, 1}));
  // 31 pages: scale=0, num=31 -> NUM=30
  p = plan_tlbi_range(0x200000, 31 * 0x1000, 0x1000, true, true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(same(p[0], 0x200000, {30, 0, 3, 1}));
  // 0x2000_0000 bytes of 2M leaves: 2^17 pages -> scale=17, num=1; TTL=4-((21-3)/9)=2
  p = plan_tlbi_range(0x40000000, 0x20000000, 0x200000, true, true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(same(p[0], 0x40000000, {0, 17, 2, 1}));
}

TEST(SmmuV3TlbiPlan, ThousandPages) {
  // 1000 = 0b11_1110_1000: scale=3, num=(1000>>3)&31=125&31=29 -> NUM=28, covers 232 pages;
  // 768 left = 0b11_0000_0000: scale=8, num=3 -> NUM=2 at iova + 232*0x1000 = +0xE8000.
  auto p = plan_tlbi_range(0x100000, 1000 * 0x1000, 0x1000, true, true);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(same(p[0], 0x100000, {28, 3, 3, 1}));
  EXPECT_TRUE(same(p[1], 0x1E8000, {2, 8, 3, 1}));
}

TEST(SmmuV3TlbiPlan, NonLeafAvoidsNumZeroScaleZero) {
  // 33 pages non-leaf: 33&31==1 -> 34 pages; scale=1, num=17 -> NUM=16; TTL=0
  auto p = plan_tlbi_range(0x10000, 33 * 0x1000, 0x1000, false, true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(same(p[0], 0x10000, {16, 1, 0, 1}));
  // 1 page non-leaf -> 2 pages: scale=1, num=1 -> NUM=0, SCALE=1
  p = plan_tlbi_range(0x10000, 0x1000, 0x1000, false, true);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_TRUE(same(p[0], 0x10000, {0, 1, 0, 1}));
}

TEST(SmmuV3TlbiPlan, WithoutRil) {
  auto p = plan_tlbi_range(0x10000, 3 * 0x1000, 0x1000, true, false);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_TRUE(same(p[0], 0x10000, {}));
  EXPECT_TRUE(same(p[1], 0x11000, {}));
  EXPECT_TRUE(same(p[2], 0x12000, {}));
  p = plan_tlbi_range(0x200000, 0x400000, 0x200000, true, false);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1].addr, 0x400000u);
  EXPECT_TRUE(plan_tlbi_range(0x10000, 0, 0x1000, true, true).empty());
}

TEST(SmmuV3TlbiPlan, PiecesTileTheRange) {
  // Property: decoded pieces are contiguous and cover exactly [iova, iova+size).
  for (uint64_t pages : {1u, 2u, 17u, 31u, 33u, 63u, 64u, 65u, 1000u, 4097u}) {
    const uint64_t iova = 0x80000000, size = pages * 0x1000;
    uint64_t next = iova;
    for (const auto& piece : plan_tlbi_range(iova, size, 0x1000, true, true)) {
      Command c = decode_ok(cmd_tlbi_nh_va(0, 0, piece.addr, true, piece.range));
      EXPECT_EQ(c.addr, next);
      next += tlbi_range_bytes(c);
    }
    EXPECT_EQ(next, iova + size) << pages << " pages";
  }
}

TEST(SmmuV3TlbiPlan, RangeBytesOtherGranules) {
  Command c;
  c.tg = 3;  // 64K
  c.num = 1;
  EXPECT_EQ(tlbi_range_bytes(c), 0x20000u);  // (1+1) << 0 << 16
  c.tg = 2;  // 16K
  c.num = 0;
  c.scale = 2;
  EXPECT_EQ(tlbi_range_bytes(c), 0x10000u);  // 1 << 2 << 14
}

// ---------------------------------------------------------------- events

TEST(SmmuV3Event, TranslationFaultS2Kat) {
  EventRecord e;
  e.id = EventId::F_TRANSLATION;
  e.ssv = true;
  e.ssid = 5;
  e.sid = 0x10;
  e.rnw = true;
  e.s2 = true;
  e.cls = 1;  // stage-2 fault on a stage-1 table fetch
  e.ttrnw = true;
  e.input_addr = 0xFFFF000012345678ull;
  e.ipa_or_fetch_addr = 0x801234000ull;
  // dw0: EventID 0x10 | SSV=1<<11 (0x800) | SSID=5<<12 (0x5000) | SID=0x10<<32 => 0x0000_0010_0000_5810
  // dw1: RnW=1<<35 (n[35:32]=8) | S2=1<<39 (n[39:36]=8) | CLASS=1<<40 (n[43:40]=1)
  //      | TTRnW=1<<44 (n[47:44]=1)                                      => 0x0000_1188_0000_0000
  // dw2: InputAddr; dw3: IPA 0x8_0123_4000 in place (bits [51:12])
  const EventWords kat = {0x0000001000005810ull, 0x0000118800000000ull, 0xFFFF000012345678ull,
                          0x0000000801234000ull};
  EXPECT_EQ(encode_event(e), kat);
  EventRecord d = decode_event(kat);
  EXPECT_EQ(d.id, EventId::F_TRANSLATION);
  EXPECT_TRUE(d.ssv);
  EXPECT_EQ(d.ssid, 5u);
  EXPECT_EQ(d.sid, 0x10u);
  EXPECT_TRUE(d.rnw);
  EXPECT_TRUE(d.s2);
  EXPECT_EQ(d.cls, 1);
  EXPECT_TRUE(d.ttrnw);
  EXPECT_FALSE(d.pnu);
  EXPECT_FALSE(d.ind);
  EXPECT_FALSE(d.stall);
  EXPECT_EQ(d.input_addr, 0xFFFF000012345678ull);
  EXPECT_EQ(d.ipa_or_fetch_addr, 0x801234000ull);
  EXPECT_EQ(encode_event(d), kat);
}

TEST(SmmuV3Event, Dw3FormsByEventId) {
  // IPA form keeps [51:12]: 0x8_0123_4567 -> 0x8_0123_4000
  EventRecord t;
  t.id = EventId::F_PERMISSION;
  t.ipa_or_fetch_addr = 0x801234567ull;
  EXPECT_EQ(encode_event(t)[3], 0x801234000ull);
  // Fetch form keeps [51:3]: 0x8000_123F -> 0x8000_1238
  EventRecord f;
  f.id = EventId::F_WALK_EABT;
  f.ipa_or_fetch_addr = 0x8000123Full;
  EXPECT_EQ(encode_event(f)[3], 0x80001238ull);
  // C_BAD_STE has no dw3 address: EventID 0x04 | SID=2<<32
  EventRecord b;
  b.id = EventId::C_BAD_STE;
  b.sid = 2;
  b.ipa_or_fetch_addr = 0x1234000;
  EXPECT_EQ(encode_event(b), (EventWords{0x0000000200000004ull, 0, 0, 0}));
}

TEST(SmmuV3Event, StalledFaultDecodeKat) {
  // dw0: F_PERMISSION 0x13 | SID=7<<32; dw1: STAG=0x1234 | Stall=1<<31 (0x8000_0000)
  //      | PnU=1<<33 (n[35:32]=2) | InD=1<<34 (n[35:32]|=4) | CLASS=2<<40 (n[43:40]=2) => 0x0000_0206_8000_1234
  EventRecord d = decode_event({0x0000000700000013ull, 0x0000020680001234ull, 0x1000, 0});
  EXPECT_EQ(d.id, EventId::F_PERMISSION);
  EXPECT_EQ(d.sid, 7u);
  EXPECT_EQ(d.stag, 0x1234);
  EXPECT_TRUE(d.stall);
  EXPECT_TRUE(d.pnu);
  EXPECT_TRUE(d.ind);
  EXPECT_FALSE(d.rnw);
  EXPECT_EQ(d.cls, 2);
  EXPECT_STREQ(event_name(d.id), "F_PERMISSION");
  EXPECT_STREQ(event_name(static_cast<EventId>(0x7E)), "UNKNOWN");
}

}  // namespace
}  // namespace iommusim::smmuv3

// Known-answer tests for the VT-d encodings layer: registers (CAP/ECAP and control
// fields), root / scalable-mode context / PASID directory / PASID table entries,
// queued-invalidation descriptors, the device-TLB size encoding, the PSI planner and
// fault records. Every literal was worked out by hand from the field positions in
// the Intel VT-d architecture specification (chapter 9 structures, 6.5.2 descriptors,
// chapter 11 registers); the arithmetic is next to it.
// Nibble notation: "n[47:44]=3" means the hex digit for bits 47..44 is 3.
#include <gtest/gtest.h>

#include <string>

#include "models/vtd/commands.h"
#include "models/vtd/faults.h"
#include "models/vtd/registers.h"
#include "models/vtd/structures.h"

namespace iommusim::vtd {
namespace {

void expect_why(const std::string& why, const std::string& what) {
  EXPECT_NE(why.find(what), std::string::npos) << "why=\"" << why << "\" expected to mention \"" << what << "\"";
}

// ---------------------------------------------------------------- registers

TEST(VtdRegs, Offsets) {
  EXPECT_EQ(reg::IVA, 0xF0u);
  EXPECT_EQ(reg::IOTLB, 0xF8u);
  EXPECT_EQ(reg::frcd(0), 0x220u);
  EXPECT_EQ(reg::frcd(1), 0x230u);
  EXPECT_EQ(reg::kEcapIro, 0xF);    // 0xF0 / 16
  EXPECT_EQ(reg::kCapFro, 0x22);    // 0x220 / 16
  EXPECT_EQ(reg::kMaxFaultRecords, 14u);  // (0x300 - 0x220) / 16
  EXPECT_EQ(reg::IQER, 0xB0u);
  EXPECT_EQ(reg::ICS, 0x9Cu);
}

// CAP: ND=6 (0x6) | CM=1<<7 (0x80) | SAGAW=0x4<<8 (0x400) | MGAW=47<<16 (0x2F_0000)
//      | FRO=0x22<<24 (0x2200_0000)                                 -> low word 0x222F_0486
//      SLLPS=3<<34 (n[35:32]=0xC) | PSI=1<<39 (n[39:36]=8) | NFR=0 | MAMV=18<<48 (n[51:48]=2,
//      n[55:52]=1) | DWD=1<<54 (n[55:52]|=4) | DRD=1<<55 (n[55:52]|=8) -> high word 0x00D2_008C
constexpr uint64_t kCap = 0x00D2008C222F0486ull;

TEST(VtdRegs, CapDecodeKat) {
  reg::Capability c = reg::decode_cap(kCap);
  EXPECT_EQ(c.nd, 6);
  EXPECT_EQ(c.did_bits(), 16u);
  EXPECT_TRUE(c.cm);
  EXPECT_FALSE(c.rwbf);
  EXPECT_EQ(c.sagaw, 0x4);
  EXPECT_EQ(c.mgaw_bits, 48u);
  EXPECT_EQ(c.fro, 0x22);
  EXPECT_EQ(c.fault_record_offset(), 0x220u);
  EXPECT_EQ(c.sllps, 3);
  EXPECT_TRUE(c.psi);
  EXPECT_EQ(c.num_fault_records, 1u);
  EXPECT_EQ(c.mamv, 18);
  EXPECT_TRUE(c.dwd);
  EXPECT_TRUE(c.drd);
  EXPECT_FALSE(c.fl5lp);
  // Raw Field<> access agrees.
  EXPECT_EQ(reg::CAP_MAMV::get(kCap), 18u);
  EXPECT_EQ(reg::CAP_FRO::get(kCap) * 16, 0x220u);
  EXPECT_EQ(reg::CAP_MGAW::get(kCap), 47u);
}

TEST(VtdRegs, CapEncodeKat) {
  reg::Capability c;
  c.nd = 6;
  c.cm = true;
  c.sagaw = 0x4;
  c.mgaw_bits = 48;
  c.fro = reg::kCapFro;
  c.sllps = 3;
  c.psi = true;
  c.num_fault_records = 1;
  c.mamv = 18;
  c.dwd = c.drd = true;
  EXPECT_EQ(reg::encode_cap(c), kCap);
  // NFR holds count-1: 8 records -> 7<<40 (n[43:40]=7)
  c.num_fault_records = 8;
  EXPECT_EQ(reg::encode_cap(c), kCap | 0x0000070000000000ull);
}

// ECAP: QI=1<<1 (0x2) | DT=1<<2 (0x4) | PT=1<<6 (0x40) | IRO=0xF<<8 (0xF00) | SRS=1<<31
//       -> low word 0x8000_0F46
//       PSS=19<<35 (high-word bits 7:3 = 19<<3 = 0x98) | PASID=1<<40 (0x100) | PDS=1<<42 (0x400)
//       | SMTS=1<<43 (0x800) | SSTS=1<<46 (0x4000) | FSTS=1<<47 (0x8000) -> high word 0x0000_CD98
constexpr uint64_t kEcap = 0x0000CD9880000F46ull;

TEST(VtdRegs, EcapDecodeKat) {
  reg::ExtCapability e = reg::decode_ecap(kEcap);
  EXPECT_TRUE(e.qi);
  EXPECT_TRUE(e.dt);
  EXPECT_TRUE(e.pt);
  EXPECT_FALSE(e.ir);
  EXPECT_FALSE(e.c);
  EXPECT_EQ(e.iro, 0xF);
  EXPECT_EQ(e.iotlb_reg_offset(), 0xF0u);
  EXPECT_TRUE(e.srs);
  EXPECT_EQ(e.pss, 19);
  EXPECT_EQ(e.pasid_bits(), 20u);
  EXPECT_TRUE(e.pasid);
  EXPECT_FALSE(e.dit);
  EXPECT_TRUE(e.pds);
  EXPECT_TRUE(e.smts);
  EXPECT_TRUE(e.ssts);
  EXPECT_TRUE(e.fsts);
  EXPECT_FALSE(e.nest);
  EXPECT_EQ(reg::ECAP_IRO::get(kEcap) * 16, reg::IVA);
}

TEST(VtdRegs, EcapEncodeKat) {
  reg::ExtCapability e;
  e.qi = e.dt = e.pt = e.srs = e.pasid = e.pds = e.smts = e.ssts = e.fsts = true;
  e.iro = reg::kEcapIro;
  e.pss = 19;
  EXPECT_EQ(reg::encode_ecap(e), kEcap);
  EXPECT_EQ(reg::encode_ecap(reg::decode_ecap(kEcap)), kEcap);
}

TEST(VtdRegs, ControlFieldsKat) {
  // RTADDR: root table 0x1234_5000 | TTM=1<<10 (0x400)
  const uint64_t rtaddr = 0x12345400;
  EXPECT_EQ(reg::RTADDR_TTM::get(rtaddr), reg::TTM_SCALABLE);
  EXPECT_EQ(reg::RTADDR_RTA::get_address(rtaddr), 0x12345000u);
  // GCMD TE|QIE|SRTP: bits 31, 26, 30 -> 0xC400_0000
  EXPECT_TRUE(reg::GCMD_TE::get(0xC4000000));
  EXPECT_TRUE(reg::GCMD_SRTP::get(0xC4000000));
  EXPECT_TRUE(reg::GCMD_QIE::get(0xC4000000));
  EXPECT_FALSE(reg::GCMD_IRE::get(0xC4000000));
  // IQA: base 0x7000_0000 | DW=1<<11 (0x800) | QS=1 -> 0x7000_0801
  const uint64_t iqa = 0x70000801;
  EXPECT_EQ(reg::IQA_IQA::get_address(iqa), 0x70000000u);
  EXPECT_TRUE(reg::IQA_DW::get(iqa));
  EXPECT_EQ(reg::IQA_QS::get(iqa), 1u);
  // QS=1: 8 KiB; 256-bit descriptors -> 8192/32 = 256 entries (Linux's QI_LENGTH)
  EXPECT_EQ(reg::iq_entries(1, true), 256u);
  EXPECT_EQ(reg::iq_entries(0, false), 256u);  // 4096/16
  // IQT=0x40: 256-bit index 0x40>>5 = 2; 128-bit index 0x40>>4 = 4
  EXPECT_EQ(reg::iq_index(0x40, true), 2u);
  EXPECT_EQ(reg::iq_index(0x40, false), 4u);
  EXPECT_EQ(reg::iq_reg_value(2, true), 0x40u);
  // FSTS: FRI=3<<8 (0x300) | PPF=1<<1 -> 0x302
  EXPECT_EQ(reg::FSTS_FRI::get(0x302), 3u);
  EXPECT_TRUE(reg::FSTS_PPF::get(0x302));
  EXPECT_FALSE(reg::FSTS_IQE::get(0x302));
  // IQER: IQEI=4 | ITESID=0x0010<<32 | ICESID=0x0200<<48 -> 0x0200_0010_0000_0004
  const uint64_t iqer = 0x0200001000000004ull;
  EXPECT_EQ(reg::IQER_IQEI::get(iqer), static_cast<uint64_t>(reg::Iqei::ReservedField));
  EXPECT_EQ(reg::IQER_ITESID::get(iqer), 0x10u);
  EXPECT_EQ(reg::IQER_ICESID::get(iqer), 0x200u);
  // CCMD: ICC=1<<63 | CIRG=3<<61 (n[63:60]=0x8|0x6=0xE) | SID=0x10<<16 | DID=5 -> 0xE000_0000_0010_0005
  const uint64_t ccmd = 0xE000000000100005ull;
  EXPECT_TRUE(reg::CCMD_ICC::get(ccmd));
  EXPECT_EQ(reg::CCMD_CIRG::get(ccmd), reg::GRAN_DEVICE_OR_PAGE);
  EXPECT_EQ(reg::CCMD_SID::get(ccmd), 0x10u);
  EXPECT_EQ(reg::CCMD_DID::get(ccmd), 5u);
  // IOTLB reg: IVT=1<<63 | IIRG=3<<60 (n[63:60]=0xB) | DID=5<<32 -> 0xB000_0005_0000_0000
  const uint64_t iotlb = 0xB000000500000000ull;
  EXPECT_TRUE(reg::IOTLB_IVT::get(iotlb));
  EXPECT_EQ(reg::IOTLB_IIRG::get(iotlb), reg::GRAN_DEVICE_OR_PAGE);
  EXPECT_EQ(reg::IOTLB_DID::get(iotlb), 5u);
  // IVA: ADDR 0x1234_0000 | IH=1<<6 | AM=4 -> 0x1234_0044
  EXPECT_EQ(reg::IVA_ADDR::get_address(0x12340044), 0x12340000u);
  EXPECT_TRUE(reg::IVA_IH::get(0x12340044));
  EXPECT_EQ(reg::IVA_AM::get(0x12340044), 4u);
}

// ---------------------------------------------------------------- structures

TEST(VtdStruct, IndexHelpers) {
  EXPECT_EQ(make_sid(0x01, 0x85), 0x0185);
  EXPECT_EQ(sid_bus(0x0185), 0x01);
  EXPECT_EQ(sid_devfn(0x0185), 0x85);
  EXPECT_EQ(root_entry_offset(0x12), 0x120u);  // 0x12 * 16
  // devfn 0x85 = 133: upper table, index 133-128 = 5, offset 5*32 = 0xA0
  EXPECT_TRUE(sm_context_in_upper(0x85));
  EXPECT_EQ(sm_context_index(0x85), 5u);
  EXPECT_EQ(sm_context_entry_offset(0x85), 0xA0u);
  // devfn 0x7F: lower table, index 127, offset 127*32 = 0xFE0 (last slot of 4 KiB)
  EXPECT_FALSE(sm_context_in_upper(0x7F));
  EXPECT_EQ(sm_context_entry_offset(0x7F), 0xFE0u);
  // PASID 0x12345: dir index 0x12345>>6 = 0x48D, table index 0x12345&0x3F = 0x05
  EXPECT_EQ(pasid_dir_index(0x12345), 0x48Du);
  EXPECT_EQ(pasid_table_index(0x12345), 0x05u);
  EXPECT_EQ(pasid_dir_entry_offset(0x12345), 0x2468u);  // 0x48D * 8
  EXPECT_EQ(pasid_entry_offset(0x12345), 0x140u);       // 5 * 64
  // 2^(PDTS+7) directory entries: PDTS=2 -> 512 (one 4 KiB page), PDTS=7 -> 2^14 (20-bit PASIDs)
  EXPECT_EQ(pasid_dir_entries(2), 512u);
  EXPECT_EQ(pasid_dir_entries(7), 1u << 14);
  EXPECT_FALSE(pasid_within_dir(0x12345, 2));  // 0x48D = 1165 >= 512
  EXPECT_TRUE(pasid_within_dir(0x12345, 4));   // < 2048
  EXPECT_TRUE(pasid_within_dir(0xFFFFF, 7));
}

TEST(VtdStruct, RootEntryKat) {
  // lo: LCTP 0x1000_1000 | LP=1 -> 0x1000_1001; hi: UCTP 0x1000_2000 | UP=1 -> 0x1000_2001
  const RootWords kat = {0x10001001ull, 0x10002001ull};
  EXPECT_EQ(encode_root_entry({true, 0x10001000, true, 0x10002000}), kat);
  std::string why;
  auto e = decode_root_entry(kat, &why);
  ASSERT_TRUE(e.has_value()) << why;
  EXPECT_TRUE(e->lower_present);
  EXPECT_EQ(e->lower_ctp, 0x10001000u);
  EXPECT_TRUE(e->upper_present);
  EXPECT_EQ(e->upper_ctp, 0x10002000u);
}

TEST(VtdStruct, RootEntryRejects) {
  std::string why;
  // lo bit 1 reserved: 0x1000_1003
  EXPECT_FALSE(decode_root_entry({0x10001003ull, 0}, &why).has_value());
  expect_why(why, "lo");
  // hi bit 11 reserved with UP=1: 0x1000_2801
  EXPECT_FALSE(decode_root_entry({0x10001001ull, 0x10002801ull}, &why).has_value());
  expect_why(why, "hi");
  // Garbage in a non-present half is not looked at: hi = 0x2 (UP=0)
  EXPECT_TRUE(decode_root_entry({0x10001001ull, 0x2}, nullptr).has_value());
  // LCTP 0x1_0000_1000 with a 32-bit host address width
  EXPECT_FALSE(decode_root_entry({0x100001001ull, 0}, &why, 32).has_value());
  expect_why(why, "lo");
  EXPECT_TRUE(decode_root_entry({0x100001001ull, 0}, nullptr, 39).has_value());
}

// SM context dw0: P=1 | DTE=1<<2 (0x4) | PASIDE=1<<3 (0x8) | PDTS=2<<9 (0x400)
//                 | PASIDDIRPTR 0x2000_0000 in place                      -> 0x2000_040D
//            dw1: RID_PASID 0x12345
const SmContextWords kSmCtx = {0x2000040Dull, 0x12345ull, 0, 0};

TEST(VtdStruct, SmContextKat) {
  SmContextEntry c;
  c.present = c.dte = c.paside = true;
  c.pdts = 2;
  c.pasid_dir_ptr = 0x20000000;
  c.rid_pasid = 0x12345;
  EXPECT_EQ(encode_sm_context(c), kSmCtx);
  std::string why;
  auto d = decode_sm_context(kSmCtx, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_TRUE(d->present);
  EXPECT_FALSE(d->fpd);
  EXPECT_TRUE(d->dte);
  EXPECT_TRUE(d->paside);
  EXPECT_FALSE(d->pre);
  EXPECT_EQ(d->pdts, 2);
  EXPECT_EQ(d->pasid_dir_entries(), 512u);
  EXPECT_EQ(d->pasid_dir_ptr, 0x20000000u);
  EXPECT_EQ(d->rid_pasid, 0x12345u);
  EXPECT_FALSE(d->rid_priv);
  // FPD=1<<1 | PRE=1<<4 on top: 0x2000_040D | 0x12 = 0x2000_041F
  auto f = decode_sm_context({0x2000041Full, 0, 0, 0}, nullptr);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->fpd);
  EXPECT_TRUE(f->pre);
}

TEST(VtdStruct, SmContextRejects) {
  std::string why;
  // dw0 bit 5 reserved (mask 0x1E0): 0x2000_042D
  EXPECT_FALSE(decode_sm_context({0x2000042Dull, 0x12345ull, 0, 0}, &why).has_value());
  expect_why(why, "dw0");
  // dw1 bit 21 reserved (mask 0xFFFF_FFFF_FFE0_0000): 0x20_0000
  EXPECT_FALSE(decode_sm_context({0x2000040Dull, 0x200000ull, 0, 0}, &why).has_value());
  expect_why(why, "dw1");
  // dw1 bit 20 (RID_PRIV) is not reserved
  auto priv = decode_sm_context({0x2000040Dull, 0x100000ull, 0, 0}, nullptr);
  ASSERT_TRUE(priv.has_value());
  EXPECT_TRUE(priv->rid_priv);
  // dw2 nonzero
  EXPECT_FALSE(decode_sm_context({0x2000040Dull, 0, 1, 0}, &why).has_value());
  expect_why(why, "dw2");
  // PASIDDIRPTR 0x1_2000_0000 beyond a 32-bit HAW
  EXPECT_FALSE(decode_sm_context({0x12000040Dull, 0, 0, 0}, &why, 32).has_value());
  expect_why(why, "PASIDDIRPTR");
  // Not present: decodes (present=false) without checks, even with reserved bits
  auto np = decode_sm_context({0x2000042Cull, ~0ull, 5, 5}, &why);
  ASSERT_TRUE(np.has_value());
  EXPECT_FALSE(np->present);
}

TEST(VtdStruct, PasidDirEntryKat) {
  // PASID-table ptr 0x3000_0000 | P=1 -> 0x3000_0001; | FPD=1<<1 -> 0x3000_0003
  EXPECT_EQ(encode_pasid_dir_entry({true, false, 0x30000000}), 0x30000001u);
  EXPECT_EQ(encode_pasid_dir_entry({true, true, 0x30000000}), 0x30000003u);
  std::string why;
  auto d = decode_pasid_dir_entry(0x30000003u, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_TRUE(d->present);
  EXPECT_TRUE(d->fpd);
  EXPECT_EQ(d->pasid_table_ptr, 0x30000000u);
  // bit 2 reserved: 0x3000_0005
  EXPECT_FALSE(decode_pasid_dir_entry(0x30000005u, &why).has_value());
  expect_why(why, "[11:2]");
  // not present with reserved bits: fine
  EXPECT_TRUE(decode_pasid_dir_entry(0x30000004u, nullptr).has_value());
}

// First-stage entry, as Linux intel_pasid_setup_first_level with SRE/WPE and 5-level:
// val0: P=1 | AW=2<<2 (0x8) | PGTT=1<<6 (0x40)                 -> 0x49
// val1: DID=1 | PWSNP=1<<23 (0x80_0000)                         -> 0x80_0001
// val2: SRE=1 | FSPM=1<<2 (0x4) | WPE=1<<4 (0x10) | FSPTPTR 0x4000_0000 -> 0x4000_0015
const PasidEntryWords kFsPasid = {0x49ull, 0x800001ull, 0x40000015ull, 0, 0, 0, 0, 0};

TEST(VtdStruct, PasidEntryFirstStageKat) {
  PasidEntry e;
  e.present = true;
  e.aw = 2;
  e.pgtt = Pgtt::FirstStage;
  e.did = 1;
  e.pwsnp = true;
  e.sre = true;
  e.fspm = 1;
  e.wpe = true;
  e.fsptptr = 0x40000000;
  EXPECT_EQ(encode_pasid_entry(e), kFsPasid);
  std::string why;
  auto d = decode_pasid_entry(kFsPasid, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_EQ(d->pgtt, Pgtt::FirstStage);
  EXPECT_TRUE(d->uses_first_stage());
  EXPECT_FALSE(d->uses_second_stage());
  EXPECT_EQ(d->aw, 2);
  EXPECT_EQ(d->did, 1);
  EXPECT_TRUE(d->pwsnp);
  EXPECT_FALSE(d->pgsnp);
  EXPECT_TRUE(d->sre);
  EXPECT_EQ(d->fspm, 1);
  EXPECT_EQ(d->fs_levels(), 5u);
  EXPECT_TRUE(d->wpe);
  EXPECT_FALSE(d->eafe);
  EXPECT_EQ(d->fsptptr, 0x40000000u);
}

// Nested entry:
// val0: P=1 | AW=3<<2 (0xC) | PGTT=3<<6 (0xC0) | SSADE=1<<9 (0x200) | SSPTPTR 0x8_0000_0000
//       -> 0x0000_0008_0000_02CD
// val1: DID=0x42 | PGSNP=1<<24 (0x100_0000)                     -> 0x100_0042
// val2: EAFE=1<<7 (0x80) | FSPTPTR 0x1234_5000                  -> 0x1234_5080
const PasidEntryWords kNestedPasid = {0x00000008000002CDull, 0x1000042ull, 0x12345080ull, 0, 0, 0, 0, 0};

TEST(VtdStruct, PasidEntryNestedKat) {
  PasidEntry e;
  e.present = true;
  e.aw = 3;
  e.pgtt = Pgtt::Nested;
  e.ssade = true;
  e.ssptptr = 0x800000000;
  e.did = 0x42;
  e.pgsnp = true;
  e.eafe = true;
  e.fsptptr = 0x12345000;
  EXPECT_EQ(encode_pasid_entry(e), kNestedPasid);
  std::string why;
  auto d = decode_pasid_entry(kNestedPasid, &why);
  ASSERT_TRUE(d.has_value()) << why;
  EXPECT_EQ(d->pgtt, Pgtt::Nested);
  EXPECT_TRUE(d->uses_first_stage());
  EXPECT_TRUE(d->uses_second_stage());
  EXPECT_EQ(d->ss_levels(), 5u);
  EXPECT_EQ(d->fs_levels(), 4u);
  EXPECT_TRUE(d->ssade);
  EXPECT_EQ(d->ssptptr, 0x800000000u);
  EXPECT_EQ(d->did, 0x42);
  EXPECT_TRUE(d->pgsnp);
  EXPECT_TRUE(d->eafe);
  EXPECT_EQ(d->fsptptr, 0x12345000u);
  EXPECT_EQ(encode_pasid_entry(*d), kNestedPasid);
}

void expect_bad_pasid_entry(const PasidEntryWords& w, const std::string& field) {
  std::string why;
  EXPECT_FALSE(decode_pasid_entry(w, &why).has_value());
  expect_why(why, field);
}

TEST(VtdStruct, PasidEntryRejects) {
  // PGTT=0: 0x2CD without the PGTT bits 0xC0 -> 0x20D
  expect_bad_pasid_entry({0x000000080000020Dull, 0x1000042ull, 0x12345080ull, 0, 0, 0, 0, 0}, "PGTT");
  // PGTT=5: 0x20D | 5<<6 (0x140) -> 0x34D
  expect_bad_pasid_entry({0x000000080000034Dull, 0x1000042ull, 0x12345080ull, 0, 0, 0, 0, 0}, "PGTT");
  // PGTT=7: 0x20D | 0x1C0 -> 0x3CD
  expect_bad_pasid_entry({0x00000008000003CDull, 0x1000042ull, 0x12345080ull, 0, 0, 0, 0, 0}, "PGTT");
  // AW=4: 0x2CD with AW bits 0x1C replaced by 4<<2 (0x10) -> 0x2D1
  expect_bad_pasid_entry({0x00000008000002D1ull, 0x1000042ull, 0x12345080ull, 0, 0, 0, 0, 0}, "AW");
  // AW=0 with a second stage: P | PGTT=2<<6 (0x80) | SSADE 0x200 | SSPTPTR -> 0x8_0000_0281
  expect_bad_pasid_entry({0x0000000800000281ull, 0x42ull, 0, 0, 0, 0, 0, 0}, "AW");
  // FSPM=2: kFsPasid val2 0x4000_0015 with FSPM bits (0xC) = 2<<2 (0x8) -> 0x4000_0019
  expect_bad_pasid_entry({0x49ull, 0x800001ull, 0x40000019ull, 0, 0, 0, 0, 0}, "FSPM");
  // reserved / unmodelled bits: val0 bit 5 (0x20), val1 bit 16, val2 bit 1, val5
  expect_bad_pasid_entry({0x69ull, 0x800001ull, 0x40000015ull, 0, 0, 0, 0, 0}, "val[0]");
  expect_bad_pasid_entry({0x49ull, 0x810001ull, 0x40000015ull, 0, 0, 0, 0, 0}, "val[1]");
  expect_bad_pasid_entry({0x49ull, 0x800001ull, 0x40000017ull, 0, 0, 0, 0, 0}, "val[2]");
  expect_bad_pasid_entry({0x49ull, 0x800001ull, 0x40000015ull, 0, 0, 1, 0, 0}, "val[3..7]");
  // FSPTPTR 0x1_4000_0000 beyond a 32-bit HAW
  std::string why;
  EXPECT_FALSE(decode_pasid_entry({0x49ull, 0x800001ull, 0x140000015ull, 0, 0, 0, 0, 0}, &why, 32).has_value());
  expect_why(why, "FSPTPTR");
}

TEST(VtdStruct, PasidEntryAcceptedEdgeCases) {
  // AW=0 is fine when there is no second stage: first stage only, val0 = P | PGTT=1<<6 -> 0x41
  EXPECT_TRUE(decode_pasid_entry({0x41ull, 1, 0x40000000ull, 0, 0, 0, 0, 0}, nullptr).has_value());
  // Pass-through: P | AW=2<<2 | PGTT=4<<6 (0x100) -> 0x109, DID 1
  auto pt = decode_pasid_entry({0x109ull, 1, 0, 0, 0, 0, 0, 0}, nullptr);
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(pt->pgtt, Pgtt::PassThrough);
  EXPECT_FALSE(pt->uses_first_stage());
  EXPECT_FALSE(pt->uses_second_stage());
  // Not present: garbage PGTT and reserved bits are not checked
  auto np = decode_pasid_entry({0x1C2ull, ~0ull, 0, 0, 0, 0, 0, 7}, nullptr);
  ASSERT_TRUE(np.has_value());
  EXPECT_FALSE(np->present);
  EXPECT_TRUE(np->fpd);
}

// ---------------------------------------------------------------- descriptors

const QiCaps kCaps{};  // 256-bit queue, MAMV 18, PSI, 16-bit DID, 20-bit PASID, DT, no PDS, no DIT

Descriptor decode_ok(const DescWords& w, const QiCaps& caps = kCaps) {
  std::string why;
  auto d = decode_descriptor(w, caps, &why);
  EXPECT_TRUE(d.has_value()) << why;
  return d.value_or(Descriptor{});
}

void expect_invalid(const DescWords& w, const QiCaps& caps, const std::string& what,
                    reg::Iqei code = reg::Iqei::ReservedField) {
  std::string why;
  reg::Iqei iqei = reg::Iqei::NoInfo;
  EXPECT_FALSE(decode_descriptor(w, caps, &why, &iqei).has_value());
  expect_why(why, what);
  EXPECT_EQ(iqei, code) << "why=" << why;
}

TEST(VtdDesc, ContextCacheKat) {
  // Device-selective: type 1 | G=3<<4 (0x30) | DID=5<<16 (0x5_0000) | SID=0x0010<<32 | FM=0
  //   -> 0x0000_0010_0005_0031
  const DescWords dev = {0x0000001000050031ull, 0, 0, 0};
  EXPECT_EQ(desc_context_cache(CcGran::Device, 5, 0x0010, 0), dev);
  Descriptor d = decode_ok(dev);
  EXPECT_EQ(d.type, DescType::ContextCache);
  EXPECT_EQ(d.g, static_cast<uint8_t>(CcGran::Device));
  EXPECT_EQ(d.did, 5);
  EXPECT_EQ(d.sid, 0x0010);
  EXPECT_EQ(d.fm, 0);
  // FM=3<<48 on top (n[51:48]=3): 0x0003_0010_0005_0031
  EXPECT_EQ(desc_context_cache(CcGran::Device, 5, 0x0010, 3)[0], 0x0003001000050031ull);
  EXPECT_EQ(decode_ok({0x0003001000050031ull, 0, 0, 0}).fm, 3);
  // Global: 1 | 1<<4 -> 0x11; domain DID 7: 1 | 2<<4 | 7<<16 -> 0x7_0021
  EXPECT_EQ(desc_context_cache(CcGran::Global), (DescWords{0x11, 0, 0, 0}));
  EXPECT_EQ(desc_context_cache(CcGran::Domain, 7), (DescWords{0x70021, 0, 0, 0}));
  EXPECT_EQ(decode_ok({0x70021, 0, 0, 0}).did, 7);
}

TEST(VtdDesc, IotlbKat) {
  // PSI: type 2 | G=3<<4 (0x30) | DID=5<<16 -> 0x5_0032
  //   qw1: ADDR 0x1234_0000 (64 KiB aligned) | IH=1<<6 (0x40) | AM=4 -> 0x1234_0044
  const DescWords psi = {0x50032ull, 0x12340044ull, 0, 0};
  EXPECT_EQ(desc_iotlb(IotlbGran::Page, 5, 0x12340000, 4, true), psi);
  Descriptor d = decode_ok(psi);
  EXPECT_EQ(d.type, DescType::Iotlb);
  EXPECT_EQ(d.g, static_cast<uint8_t>(IotlbGran::Page));
  EXPECT_EQ(d.did, 5);
  EXPECT_EQ(d.addr, 0x12340000u);
  EXPECT_EQ(d.am, 4);
  EXPECT_TRUE(d.ih);
  EXPECT_EQ(psi_bytes(d.am), 0x10000u);
  EXPECT_EQ(psi_bytes(51), 1ull << 63);
  EXPECT_EQ(psi_bytes(52), 0u) << "2^64 bytes: every address (IVA.AM is 6 bits)";
  EXPECT_EQ(psi_bytes(63), 0u);
  // DSI with DW=1<<6 and DR=1<<7 (as Linux when CAP.DWD/DRD): 2 | 0x20 | 0xC0 | 5<<16 -> 0x5_00E2
  EXPECT_EQ(desc_iotlb(IotlbGran::Domain, 5, 0, 0, false, true, true), (DescWords{0x500E2ull, 0, 0, 0}));
  Descriptor dsi = decode_ok({0x500E2ull, 0, 0, 0});
  EXPECT_TRUE(dsi.dr);
  EXPECT_TRUE(dsi.dw);
  EXPECT_EQ(dsi.am, 0);  // unused by DSI
  // Global: 2 | 1<<4 -> 0x12
  EXPECT_EQ(desc_iotlb(IotlbGran::Global, 0), (DescWords{0x12, 0, 0, 0}));
}

TEST(VtdDesc, DevTlbKat) {
  // SID 0x0100, MIP 0, 16 KiB (order 2) at 0x1_0000:
  //   qw0: type 3 | SID=0x100<<32 -> 0x0000_0100_0000_0003
  //   qw1: order 2 -> bit 12 set, bit 13 clear: 0x1_1000 | S=1 -> 0x1_1001
  const DescWords kat = {0x0000010000000003ull, 0x11001ull, 0, 0};
  EXPECT_EQ(desc_dev_tlb(0x100, 0, 0, 0x10000, 2), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.type, DescType::DevTlb);
  EXPECT_EQ(d.sid, 0x100);
  EXPECT_TRUE(d.size);
  EXPECT_EQ(d.addr, 0x11000u);
  DevTlbSpan span = decode_devtlb_range(d.addr, d.size);
  EXPECT_EQ(span.base, 0x10000u);
  EXPECT_EQ(span.log2_bytes, 14u);
  // With ECAP.DIT: PFSID 0x123 -> [15:12]=0x3 (0x3000), [63:52]=0x012 (0x0120_0000_0000_0000);
  //   MIP=5<<16 (0x5_0000) -> qw0 0x0120_0100_0005_3003
  const DescWords vf = {0x0120010000053003ull, 0x11001ull, 0, 0};
  EXPECT_EQ(desc_dev_tlb(0x100, 0x123, 5, 0x10000, 2), vf);
  QiCaps dit = kCaps;
  dit.dit = true;
  Descriptor v = decode_ok(vf, dit);
  EXPECT_EQ(v.pfsid, 0x123);
  EXPECT_EQ(v.mip, 5);
  expect_invalid(vf, kCaps, "PFSID");  // without DIT the PFSID bits are reserved (QEMU)
}

TEST(VtdDesc, DevTlbSizeEncoding) {
  // order 0: S=0, address as is
  DevTlbAddr a0 = encode_devtlb_range(0x5000, 0);
  EXPECT_FALSE(a0.s);
  EXPECT_EQ(a0.addr, 0x5000u);
  EXPECT_EQ(decode_devtlb_range(0x5000, false).log2_bytes, 12u);
  // order 1 (8 KiB) at 0x1_0000: bit 12 clear -> 0x1_0000, S=1; trailing ones of 0x10 = 0 -> 2^13
  DevTlbAddr a1 = encode_devtlb_range(0x10000, 1);
  EXPECT_TRUE(a1.s);
  EXPECT_EQ(a1.addr, 0x10000u);
  EXPECT_EQ(decode_devtlb_range(a1.addr, true).log2_bytes, 13u);
  // order 4 (64 KiB) at 0x4_0000: bits 14:12 set, bit 15 clear -> 0x4_7000; ones(0x47)=3 -> 2^16
  DevTlbAddr a4 = encode_devtlb_range(0x40000, 4);
  EXPECT_EQ(a4.addr, 0x47000u);
  DevTlbSpan s4 = decode_devtlb_range(a4.addr, true);
  EXPECT_EQ(s4.base, 0x40000u);
  EXPECT_EQ(s4.log2_bytes, 16u);
  // Linux "flush all" (order 52, addr 0): bits 62:12 set, 63 clear -> 0x7FFF_FFFF_FFFF_F000
  DevTlbAddr all = encode_devtlb_range(0, 52);
  EXPECT_EQ(all.addr, 0x7FFFFFFFFFFFF000ull);
  DevTlbSpan sall = decode_devtlb_range(all.addr, true);
  EXPECT_EQ(sall.base, 0u);
  EXPECT_EQ(sall.log2_bytes, 64u);
  // Round trip for every order at a suitably aligned address
  for (unsigned order = 0; order <= 40; ++order) {
    const uint64_t addr = uint64_t{3} << (12 + order + 1);  // aligned to 2^(12+order)
    DevTlbAddr e = encode_devtlb_range(addr, order);
    DevTlbSpan s = decode_devtlb_range(e.addr, e.s);
    EXPECT_EQ(s.base, addr) << order;
    EXPECT_EQ(s.log2_bytes, 12 + order) << order;
  }
}

TEST(VtdDesc, IecKat) {
  // Index-selective: type 4 | G=1<<4 (0x10) | IM=2<<27 (0x1000_0000) | IIDX=0x40<<32 -> 0x0000_0040_1000_0014
  const DescWords kat = {0x0000004010000014ull, 0, 0, 0};
  EXPECT_EQ(desc_iec(IecGran::Index, 0x40, 2), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.g, static_cast<uint8_t>(IecGran::Index));
  EXPECT_EQ(d.iidx, 0x40);
  EXPECT_EQ(d.im, 2);
  // Global: G=0 -> 0x4
  EXPECT_EQ(desc_iec(IecGran::Global), (DescWords{0x4, 0, 0, 0}));
  EXPECT_EQ(decode_ok({0x4, 0, 0, 0}).g, static_cast<uint8_t>(IecGran::Global));
}

TEST(VtdDesc, InvWaitKat) {
  // SW, status data 0x1 at 0x1000: type 5 | SW=1<<5 (0x20) | data 1<<32 -> 0x0000_0001_0000_0025; qw1 0x1000
  const DescWords kat = {0x0000000100000025ull, 0x1000, 0, 0};
  WaitFlags sw;
  sw.sw = true;
  EXPECT_EQ(desc_inv_wait(sw, 0x1, 0x1000), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.type, DescType::InvWait);
  EXPECT_TRUE(d.sw);
  EXPECT_FALSE(d.iflag);
  EXPECT_FALSE(d.fn);
  EXPECT_FALSE(d.pd);
  EXPECT_EQ(d.status_data, 1u);
  EXPECT_EQ(d.status_addr, 0x1000u);
  // IF|FN: 5 | 1<<4 | 1<<6 -> 0x55
  WaitFlags iffn;
  iffn.iflag = iffn.fn = true;
  EXPECT_EQ(desc_inv_wait(iffn), (DescWords{0x55, 0, 0, 0}));
  // SW=1 with status address 0 is legal
  EXPECT_EQ(decode_ok({0x0000000100000025ull, 0, 0, 0}).status_addr, 0u);
  // Status address keeps bits [63:2]: 0x1234
  EXPECT_EQ(decode_ok({0x25, 0x1234, 0, 0}).status_addr, 0x1234u);
  // PD=1<<7: 0x25 | 0x80 -> 0xA5; needs ECAP.PDS
  expect_invalid({0xA5, 0x1000, 0, 0}, kCaps, "PD");
  QiCaps pds = kCaps;
  pds.pds = true;
  EXPECT_TRUE(decode_ok({0xA5, 0x1000, 0, 0}, pds).pd);
}

TEST(VtdDesc, PasidIotlbKat) {
  // Page-selective: type 6 | G=3<<4 (0x30) | DID=1<<16 | PASID=0x12345<<32 -> 0x0001_2345_0001_0036
  //   qw1: ADDR 0x7F00_0020_0000 (2 MiB aligned) | AM=9 -> 0x0000_7F00_0020_0009
  const DescWords kat = {0x0001234500010036ull, 0x00007F0000200009ull, 0, 0};
  EXPECT_EQ(desc_pasid_iotlb(PiotlbGran::Page, 1, 0x12345, 0x7F0000200000ull, 9), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.type, DescType::PasidIotlb);
  EXPECT_EQ(d.g, static_cast<uint8_t>(PiotlbGran::Page));
  EXPECT_EQ(d.did, 1);
  EXPECT_EQ(d.pasid, 0x12345u);
  EXPECT_EQ(d.addr, 0x7F0000200000ull);
  EXPECT_EQ(d.am, 9);
  EXPECT_FALSE(d.ih);
  // All in PASID: G=2<<4 -> ...26, qw1 0
  const DescWords all = {0x0001234500010026ull, 0, 0, 0};
  EXPECT_EQ(desc_pasid_iotlb(PiotlbGran::Pasid, 1, 0x12345), all);
  EXPECT_EQ(decode_ok(all).g, static_cast<uint8_t>(PiotlbGran::Pasid));
}

TEST(VtdDesc, PasidCacheKat) {
  // PASID-selective: type 7 | G=1<<4 | DID=1<<16 | PASID=0x12345<<32 -> 0x0001_2345_0001_0017
  const DescWords kat = {0x0001234500010017ull, 0, 0, 0};
  EXPECT_EQ(desc_pasid_cache(PcGran::Pasid, 1, 0x12345), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.type, DescType::PasidCache);
  EXPECT_EQ(d.g, static_cast<uint8_t>(PcGran::Pasid));
  EXPECT_EQ(d.did, 1);
  EXPECT_EQ(d.pasid, 0x12345u);
  // Domain-selective (G=0), DID 2: 7 | 2<<16 -> 0x2_0007; global: 7 | 3<<4 -> 0x37
  EXPECT_EQ(desc_pasid_cache(PcGran::Domain, 2), (DescWords{0x20007, 0, 0, 0}));
  EXPECT_EQ(desc_pasid_cache(PcGran::Global, 0), (DescWords{0x37, 0, 0, 0}));
  EXPECT_EQ(decode_ok({0x20007, 0, 0, 0}).did, 2);
}

TEST(VtdDesc, PasidDevTlbKat) {
  // type 8 | SID=0x100<<16 (0x100_0000) | PASID=0x12345<<32 -> 0x0001_2345_0100_0008
  // qw1: order 1 at 0x2_0000 -> bit 12 clear | S=1<<11 (0x800) -> 0x2_0800
  const DescWords kat = {0x0001234501000008ull, 0x20800ull, 0, 0};
  EXPECT_EQ(desc_pasid_dev_tlb(0x100, 0, 0x12345, 0, 0x20000, 1), kat);
  Descriptor d = decode_ok(kat);
  EXPECT_EQ(d.type, DescType::PasidDevTlb);
  EXPECT_EQ(d.sid, 0x100);
  EXPECT_EQ(d.pasid, 0x12345u);
  EXPECT_FALSE(d.global);
  EXPECT_TRUE(d.size);
  EXPECT_EQ(decode_devtlb_range(d.addr, d.size).log2_bytes, 13u);
  // G=1 (all PASIDs): qw1 | 1 -> 0x2_0801
  EXPECT_EQ(desc_pasid_dev_tlb(0x100, 0, 0x12345, 0, 0x20000, 1, true)[1], 0x20801u);
  EXPECT_TRUE(decode_ok({0x0001234501000008ull, 0x20801ull, 0, 0}).global);
  // MIP=0x1F<<4 (0x1F0): ...0008 | 0x1F0 -> ...01F8
  EXPECT_EQ(decode_ok({0x00012345010001F8ull, 0x20800ull, 0, 0}).mip, 0x1F);
}

TEST(VtdDesc, PageGroupResponseDecode) {
  // type 9 | PASID_P=1<<4 (0x10) | RespCode 0 | RID=0x100<<16 | PASID=0x12345<<32 -> 0x0001_2345_0100_0019
  // qw1: PRG index 0x1FF<<3 -> 0xFF8
  Descriptor d = decode_ok({0x0001234501000019ull, 0xFF8ull, 0, 0});
  EXPECT_EQ(d.type, DescType::PageGroupResp);
  EXPECT_TRUE(d.pasid_present);
  EXPECT_EQ(d.resp_code, kRespSuccess);
  EXPECT_EQ(d.sid, 0x100);
  EXPECT_EQ(d.pasid, 0x12345u);
  EXPECT_EQ(d.prg_index, 0x1FF);
  // Failure: RespCode 0xF<<12 (0xF000) -> ...F019
  EXPECT_EQ(decode_ok({0x000123450100F019ull, 0xFF8ull, 0, 0}).resp_code, kRespFailure);
  // RespCode 2<<12 is reserved
  expect_invalid({0x0001234501002019ull, 0xFF8ull, 0, 0}, kCaps, "RespCode");
}

TEST(VtdDesc, RejectsUnknownTypes) {
  expect_invalid({0x0, 0, 0, 0}, kCaps, "type 0x0", reg::Iqei::InvalidType);
  expect_invalid({0xB, 0, 0, 0}, kCaps, "type 0xB", reg::Iqei::InvalidType);
  expect_invalid({0xF, 0, 0, 0}, kCaps, "type 0xF", reg::Iqei::InvalidType);
  expect_invalid({0xA, 0, 0, 0}, kCaps, "pstrm_resp_dsc", reg::Iqei::InvalidType);
  // Type bits [6:4] live in qw0[11:9]: 0x201 has bit 9 set -> type 0x11, not a CC descriptor
  expect_invalid({0x201, 0, 0, 0}, kCaps, "type 0x11", reg::Iqei::InvalidType);
}

TEST(VtdDesc, RejectsWidthViolations) {
  QiCaps narrow = kCaps;
  narrow.dw256 = false;
  // 256-bit-only types (6-9) in a 128-bit queue
  expect_invalid({0x0001234500010026ull, 0, 0, 0}, narrow, "128-bit", reg::Iqei::InvalidType);
  expect_invalid({0x37, 0, 0, 0}, narrow, "128-bit", reg::Iqei::InvalidType);
  // Legacy types are fine in a 128-bit queue, and qw2/qw3 are not looked at there
  EXPECT_TRUE(decode_descriptor({0x0000001000050031ull, 0, 1, 1}, narrow, nullptr).has_value());
  // In a 256-bit queue the upper 128 bits must be zero
  expect_invalid({0x0000001000050031ull, 0, 1, 0}, kCaps, "qw2/qw3");
  expect_invalid({0x0001234500010026ull, 0, 0, 0x8000000000000000ull}, kCaps, "qw2/qw3");
}

TEST(VtdDesc, RejectsReservedBits) {
  // CC qw0 bit 6 (0x40): 0x...0031 | 0x40 -> 0x...0071
  expect_invalid({0x0000001000050071ull, 0, 0, 0}, kCaps, "qw0");
  // CC bit 50 (0x0004 << 48): 0x0004_0010_0005_0031
  expect_invalid({0x0004001000050031ull, 0, 0, 0}, kCaps, "qw0");
  // CC qw1 is all reserved
  expect_invalid({0x0000001000050031ull, 0x1000, 0, 0}, kCaps, "qw1");
  // IOTLB qw1 bit 7 (0x80): 0x1234_0044 | 0x80 -> 0x1234_00C4
  expect_invalid({0x50032ull, 0x123400C4ull, 0, 0}, kCaps, "qw1");
  // IOTLB qw0 bit 32: 0x1_0005_0032
  expect_invalid({0x100050032ull, 0x12340044ull, 0, 0}, kCaps, "qw0");
  // P_IOTLB qw0 bit 52 (n[55:52]=1): 0x0011_2345_0001_0036
  expect_invalid({0x0011234500010036ull, 0x00007F0000200009ull, 0, 0}, kCaps, "qw0");
  // PASID-cache qw0 bit 7 (0x80): ...0017 | 0x80 -> ...0097
  expect_invalid({0x0001234500010097ull, 0, 0, 0}, kCaps, "qw0");
  // inv_wait bit 12 (0x1000): 0x1025 ; qw1 bit 0 (status address not dword aligned)
  expect_invalid({0x1025, 0x1000, 0, 0}, kCaps, "qw0");
  expect_invalid({0x25, 0x1001, 0, 0}, kCaps, "qw1");
  // device-TLB qw1 bit 1 (0x2): 0x1_1003
  expect_invalid({0x0000010000000003ull, 0x11003ull, 0, 0}, kCaps, "qw1");
  // P_DEV_TLB qw1 bit 1: 0x2_0802
  expect_invalid({0x0001234501000008ull, 0x20802ull, 0, 0}, kCaps, "qw1");
  // IEC bit 12 (0x1000): 0x1014
  expect_invalid({0x1014, 0, 0, 0}, kCaps, "qw0");
}

TEST(VtdDesc, RejectsReservedGranularity) {
  expect_invalid({0x0000001000050001ull, 0, 0, 0}, kCaps, "G=0");  // CC G=0
  expect_invalid({0x50002ull, 0, 0, 0}, kCaps, "G=0");             // IOTLB G=0
  expect_invalid({0x0001234500010006ull, 0, 0, 0}, kCaps, "G=0");  // P_IOTLB G=0
  expect_invalid({0x0001234500010016ull, 0, 0, 0}, kCaps, "G=1");  // P_IOTLB G=1
  expect_invalid({0x0001234500010027ull, 0, 0, 0}, kCaps, "G=2");  // PASID-cache G=2
}

TEST(VtdDesc, RejectsBadPageSelectiveRanges) {
  // IOTLB PSI with AM=19 (0x13) > MAMV 18, address 0
  expect_invalid({0x50032ull, 0x13ull, 0, 0}, kCaps, "AM 19 > MAMV 18");
  // P_IOTLB PSI with AM=19
  expect_invalid({0x0001234500010036ull, 0x13ull, 0, 0}, kCaps, "MAMV");
  // AM=4 needs 64 KiB alignment; 0x1234_1000 is not: qw1 0x1234_1004
  expect_invalid({0x50032ull, 0x12341004ull, 0, 0}, kCaps, "ADDR");
  expect_invalid({0x0001234500010036ull, 0x12341004ull, 0, 0}, kCaps, "ADDR");
  // A smaller MAMV
  QiCaps small = kCaps;
  small.mamv = 3;
  expect_invalid({0x50032ull, 0x12340044ull, 0, 0}, small, "AM 4 > MAMV 3");
  // Page-selective IOTLB without CAP.PSI
  QiCaps nopsi = kCaps;
  nopsi.psi = false;
  expect_invalid({0x50032ull, 0x12340044ull, 0, 0}, nopsi, "PSI");
  EXPECT_TRUE(decode_descriptor({0x50022ull, 0, 0, 0}, nopsi, nullptr).has_value());  // DSI is fine
}

TEST(VtdDesc, RejectsIdWidthsAndMissingFeatures) {
  QiCaps narrow = kCaps;
  narrow.did_bits = 8;
  narrow.pasid_bits = 16;
  // IOTLB DSI for DID 0x100 (2 | 2<<4 | 0x100<<16 -> 0x100_0022)
  expect_invalid({0x1000022ull, 0, 0, 0}, narrow, "DID");
  // P_IOTLB for PASID 0x12345 (> 16 bits), DID 1
  expect_invalid({0x0001234500010026ull, 0, 0, 0}, narrow, "PASID");
  // Global CC ignores DID (1 | 1<<4 | 0x100<<16 -> 0x100_0011): a wide DID there is fine, decoded as 0
  auto g = decode_descriptor({0x1000011ull, 0, 0, 0}, narrow, nullptr);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->did, 0);
  // Device-TLB without ECAP.DT
  QiCaps nodt = kCaps;
  nodt.device_tlb = false;
  expect_invalid({0x0000010000000003ull, 0x11001ull, 0, 0}, nodt, "ECAP.DT");
  expect_invalid({0x0001234501000008ull, 0x20800ull, 0, 0}, nodt, "ECAP.DT");
}

TEST(VtdDesc, CapsFromRegisters) {
  // kCap: ND=6, MAMV=18, PSI; kEcap: DT, PDS, PSS=19, no DIT
  QiCaps c = make_qi_caps(reg::decode_cap(kCap), reg::decode_ecap(kEcap), true);
  EXPECT_TRUE(c.dw256);
  EXPECT_EQ(c.mamv, 18);
  EXPECT_TRUE(c.psi);
  EXPECT_EQ(c.did_bits, 16u);
  EXPECT_EQ(c.pasid_bits, 20u);
  EXPECT_TRUE(c.device_tlb);
  EXPECT_TRUE(c.pds);
  EXPECT_FALSE(c.dit);
}

TEST(VtdDesc, BuilderDecoderRoundTrip) {
  const DescWords all[] = {
      desc_context_cache(CcGran::Device, 0x1234, 0xBEEF, 2),
      desc_iotlb(IotlbGran::Page, 0xFFFF, 0xFFFFF00000ull, 8, true),
      desc_dev_tlb(0x0200, 0, 31, 0x80000000ull, 5),
      desc_iec(IecGran::Index, 0xFFFF, 31),
      desc_inv_wait({true, true, true, false}, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFCull),
      desc_pasid_iotlb(PiotlbGran::Page, 2, 0xFFFFF, 0x40000000ull, 18, true),
      desc_pasid_cache(PcGran::Pasid, 3, 0xFFFFF),
      desc_pasid_dev_tlb(0x0300, 0, 0xFFFFF, 31, 0, 52, true),
  };
  for (const auto& w : all) {
    std::string why;
    auto d = decode_descriptor(w, kCaps, &why);
    EXPECT_TRUE(d.has_value()) << why << " qw0=" << std::hex << w[0];
  }
  EXPECT_STREQ(desc_type_name(DescType::PasidCache), "pc_inv_dsc");
}

// ---------------------------------------------------------------- PSI planner

TEST(VtdPsiPlan, AlignedRanges) {
  // One page: AM 0
  PsiPlan p = plan_psi(0x1000, 0x1000, 18);
  EXPECT_FALSE(p.fallback);
  EXPECT_EQ(p.addr, 0x1000u);
  EXPECT_EQ(p.am, 0);
  // 16 pages at 0x1_0000: pfn 0x10 is 16-aligned -> AM 4 at 0x1_0000
  p = plan_psi(0x10000, 0x10000, 18);
  EXPECT_EQ(p.addr, 0x10000u);
  EXPECT_EQ(p.am, 4);
  // 5 pages at 0: round up to 8 -> AM 3
  p = plan_psi(0, 5 * 0x1000, 18);
  EXPECT_EQ(p.addr, 0u);
  EXPECT_EQ(p.am, 3);
}

TEST(VtdPsiPlan, UnalignedRangesGrowTheMask) {
  // Pages 3..4: 2 pages -> AM 1, but pfn 3 is odd. pfn^end = 3^4 = 7; shared = ~7 & ~1 -> lowest
  // set bit 3 -> AM 3 at 0 (pages 0..7).
  PsiPlan p = plan_psi(0x3000, 0x2000, 18);
  EXPECT_FALSE(p.fallback);
  EXPECT_EQ(p.addr, 0u);
  EXPECT_EQ(p.am, 3);
  // 0x1800 + 0x1000 touches pages 1..2: pages = (0x800 + 0x1000 + 0xFFF) >> 12 = 2 -> AM 1; pfn 1 odd,
  // 1^2 = 3 -> shared lowest bit 2 -> AM 2 at 0.
  p = plan_psi(0x1800, 0x1000, 18);
  EXPECT_EQ(p.addr, 0u);
  EXPECT_EQ(p.am, 2);
  // The result always covers the range.
  for (uint64_t start : {0x0ull, 0x3000ull, 0x7F000ull, 0x12345000ull}) {
    for (uint64_t pages : {1ull, 2ull, 3ull, 17ull, 512ull, 513ull}) {
      PsiPlan q = plan_psi(start, pages * 0x1000, 40);
      ASSERT_FALSE(q.fallback);
      EXPECT_EQ(q.addr % psi_bytes(q.am), 0u);
      EXPECT_LE(q.addr, start);
      EXPECT_GE(q.addr + psi_bytes(q.am), start + pages * 0x1000) << start << " " << pages;
    }
  }
}

TEST(VtdPsiPlan, FallsBack) {
  // 2^20 pages (4 GiB) at 0 -> AM 20 > MAMV 18
  EXPECT_TRUE(plan_psi(0, 0x100000000ull, 18).fallback);
  EXPECT_FALSE(plan_psi(0, 0x100000000ull, 20).fallback);
  EXPECT_TRUE(plan_psi(0x1000, 0x1000, 18, /*psi_supported=*/false).fallback);
  EXPECT_TRUE(plan_psi(0, kFlushAll, 63).fallback);
  // Planned descriptors decode cleanly
  PsiPlan p = plan_psi(0x3000, 0x2000, 18);
  EXPECT_TRUE(decode_descriptor(desc_iotlb(IotlbGran::Page, 1, p.addr, p.am), kCaps, nullptr).has_value());
  EXPECT_TRUE(
      decode_descriptor(desc_pasid_iotlb(PiotlbGran::Page, 1, 5, p.addr, p.am), kCaps, nullptr).has_value());
}

TEST(VtdPsiPlan, SplitIsExact) {
  // Pages 3..8: pfn 3 -> AM 0; pfn 4 (4-aligned, 5 left) -> AM 2; pfn 8 -> AM 0
  auto c = split_psi(0x3000, 0x6000, 18);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].addr, 0x3000u);
  EXPECT_EQ(c[0].am, 0);
  EXPECT_EQ(c[1].addr, 0x4000u);
  EXPECT_EQ(c[1].am, 2);
  EXPECT_EQ(c[2].addr, 0x8000u);
  EXPECT_EQ(c[2].am, 0);
  // 2^20 pages at 0 with MAMV 18 -> four AM-18 chunks
  c = split_psi(0, 0x100000000ull, 18);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[3].addr, 0xC0000000u);
  EXPECT_EQ(c[3].am, 18);
}

// ---------------------------------------------------------------- faults

TEST(VtdFault, FrcdScalableKat) {
  FaultRecord r;
  r.fault_info = 0x12345000;
  r.sid = 0x0100;
  r.pasid_present = true;
  r.pasid = 0x12345;
  r.reason = static_cast<uint8_t>(FaultReason::SM_PASID_ENTRY_INVALID);  // 0x5B
  r.type = FaultType::Read;
  r.fault = true;
  // lo: FI 0x1234_5000
  // hi low word:  SID 0x0100 | PP=1<<31                            -> 0x8000_0100
  // hi high word: FR 0x5B (bits 39:32) | PV 0x12345<<8 (bits 59:40) = 0x0123_4500
  //               | T=1<<30 (bit 62) | F=1<<31 (bit 63)           -> 0xC123_455B
  const FrcdWords kat = {0x12345000ull, 0xC123455B80000100ull};
  EXPECT_EQ(encode_frcd(r), kat);
  FaultRecord d = decode_frcd(kat);
  EXPECT_EQ(d.fault_info, 0x12345000u);
  EXPECT_EQ(d.sid, 0x0100);
  EXPECT_TRUE(d.pasid_present);
  EXPECT_EQ(d.pasid, 0x12345u);
  EXPECT_EQ(d.reason, 0x5B);
  EXPECT_EQ(d.type, FaultType::Read);
  EXPECT_TRUE(d.fault);
  EXPECT_FALSE(d.exe);
  EXPECT_FALSE(d.priv);
  EXPECT_EQ(d.at, 0);
  // Linux's 32-bit view (dmar_fault): upper dword 0xC123_455B -> reason = & 0xFF, type = bit 30,
  // pasid = (>>8) & 0xFFFFF; dword at +8 -> SID = & 0xFFFF, pasid_present = bit 31.
  const uint32_t up = static_cast<uint32_t>(kat[1] >> 32), low = static_cast<uint32_t>(kat[1]);
  EXPECT_EQ(up & 0xFF, 0x5Bu);
  EXPECT_EQ((up >> 30) & 1, 1u);
  EXPECT_EQ((up >> 8) & 0xFFFFF, 0x12345u);
  EXPECT_EQ(low & 0xFFFF, 0x100u);
  EXPECT_EQ(low >> 31, 1u);
}

TEST(VtdFault, FrcdLegacyWriteKat) {
  // Write fault, reason 0x05, SID 0x0010, page 0xDEAD_B000 (FI keeps [63:12] only)
  // hi: SID 0x10 | FR 5<<32 | F 1<<63 -> 0x8000_0005_0000_0010
  FaultRecord r;
  r.fault_info = 0xDEADBEEF;
  r.sid = 0x10;
  r.reason = static_cast<uint8_t>(FaultReason::WRITE_DENIED);
  r.fault = true;
  EXPECT_EQ(encode_frcd(r), (FrcdWords{0xDEADB000ull, 0x8000000500000010ull}));
  // EXE=1<<30 | PRIV=1<<29 (0x6000_0000) | AT=2<<60 (n[63:60]=0x8|0x2): 0xA000_0005_6000_0010
  FaultRecord d = decode_frcd({0xDEADB000ull, 0xA000000560000010ull});
  EXPECT_TRUE(d.exe);
  EXPECT_TRUE(d.priv);
  EXPECT_EQ(d.at, 2);
  EXPECT_EQ(d.type, FaultType::Write);
  EXPECT_FALSE(d.pasid_present);
}

TEST(VtdFault, ReasonNames) {
  EXPECT_STREQ(reason_name(0x5B), "SM_PASID_ENTRY_INVALID");
  EXPECT_STREQ(reason_name(FaultReason::SM_PASID_ENTRY_ACCESS), "SM_PASID_ENTRY_ACCESS");
  EXPECT_STREQ(reason_name(0x01), "ROOT_ENTRY_NOT_PRESENT");
  EXPECT_STREQ(reason_name(0x0D), "CONTEXT_ENTRY_TT_BLOCKED");
  EXPECT_STREQ(reason_name(0x31), "SM_TTM0_PASID_REQUEST");
  EXPECT_STREQ(reason_name(0x50), "SM_PASID_DIR_ACCESS");
  EXPECT_STREQ(reason_name(0x90), "SM_FS_AD_UPDATE_NO_SNOOP");
  EXPECT_STREQ(reason_name(0x33), "UNKNOWN");
  EXPECT_STREQ(reason_name(0xFF), "UNKNOWN");
  EXPECT_STREQ(reason_text(0x58), "SM: Error attempting to access PASID Table Entry");
  EXPECT_STREQ(reason_text(0x06), "PTE Read access is not set");
  EXPECT_TRUE(is_ir_fault(0x22));
  EXPECT_FALSE(is_ir_fault(0x30));
}

}  // namespace
}  // namespace iommusim::vtd

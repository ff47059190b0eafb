// Typed registers and the register file: write rules (writable, read-only, write-1-to-
// clear), handlers, field accessors, 64-bit halves, aliases and the MMIO error cases.
// Every expected value is worked out by hand from the rules in register_file.h.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>
#include <tlm>

#include "models/common/bits.h"
#include "models/common/register_file.h"

namespace iommusim::common {
namespace {

using Low = Field<3, 0>;
using High = Field<31, 28>;
using Top = Field<63, 63>;

TEST(RegisterFile, WritableBitsTakeTheWriteOthersKeepTheirValue) {
  RegisterFile f;
  Reg<uint32_t> r(f, "R", 0x10);
  r.reset(0xA5A5A5A5).writable(0x0000FFFF);
  ASSERT_TRUE(f.write(0x10, 4, 0x12345678));
  // Upper half kept (0xA5A5), lower half written (0x5678).
  EXPECT_EQ(r.get(), 0xA5A55678u);
  uint64_t v = 0;
  ASSERT_TRUE(f.read(0x10, 4, v));
  EXPECT_EQ(v, 0xA5A55678u);
}

TEST(RegisterFile, ReadOnlyRegisterIgnoresWritesButAcceptsThem) {
  RegisterFile f;
  Reg<uint32_t> id(f, "ID", 0x0);
  id.read_only().reset(0x1234);
  EXPECT_TRUE(f.write(0x0, 4, 0xFFFFFFFF)) << "a write to a read-only register is not an address error";
  EXPECT_EQ(id.get(), 0x1234u);
  id.set(0x99);   // hardware may still update it
  EXPECT_EQ(id.get(), 0x99u);
}

TEST(RegisterFile, WriteOneToClear) {
  RegisterFile f;
  Reg<uint32_t> st(f, "STATUS", 0x4);
  st.writable(0x1).w1c(0x6);   // bit 0 read-write, bits 2:1 write-1-to-clear, the rest read-only
  st.set(0xF7);                // hardware: 1111 0111
  ASSERT_TRUE(f.write(0x4, 4, 0x2));
  // bit 0 <- 0 (written), bit 1 cleared (wrote 1), bit 2 kept (wrote 0), bits 7:3 read-only.
  EXPECT_EQ(st.get(), 0xF4u);
  ASSERT_TRUE(f.write(0x4, 4, 0xFFFFFFFF));
  // bit 0 <- 1, bits 2:1 cleared, read-only bits 7:3 (1111 0) kept.
  EXPECT_EQ(st.get(), 0xF1u);
  EXPECT_EQ(st.w1c_bits(), 0x6u);
  EXPECT_EQ(st.writable_bits(), 0x1u) << "w1c bits are not also writable";
}

TEST(RegisterFile, WriteOneToClearInTheUpperHalfOfA64BitRegister) {
  RegisterFile f;
  Reg<uint64_t> frcd_hi(f, "FRCD_HI", 0x228);
  frcd_hi.read_only().w1c(uint64_t{1} << 63);
  frcd_hi.set(0x8000000000000042ull);
  ASSERT_TRUE(f.write(0x228, 4, 0xFFFFFFFF));   // lower half: F is not in this lane
  EXPECT_EQ(frcd_hi.get(), 0x8000000000000042ull);
  ASSERT_TRUE(f.write(0x22C, 4, 0x80000000));   // upper half, bit 31 = bit 63
  EXPECT_EQ(frcd_hi.get(), 0x42ull);
}

TEST(RegisterFile, HandlerSeesOldAndNewValueAndMayOverride) {
  RegisterFile f;
  Reg<uint32_t> cmd(f, "CMD", 0x18), sts(f, "STS", 0x1C);
  sts.read_only();
  std::vector<std::pair<uint32_t, uint32_t>> calls;
  cmd.writable(0xFF).on_write([&](uint32_t old_value, uint32_t new_value) {
    calls.emplace_back(old_value, new_value);
    sts.set(new_value & 0x0F);   // status follows the enables
    cmd.set(0);                  // a command register that reads as zero
  });
  cmd.set(0x80);
  ASSERT_TRUE(f.write(0x18, 4, 0x1F3));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].first, 0x80u);
  EXPECT_EQ(calls[0].second, 0xF3u) << "the handler sees the value after the write rules (bit 8 is not writable)";
  EXPECT_EQ(sts.get(), 0x3u);
  EXPECT_EQ(cmd.get(), 0u);
  // Hardware updates run no handler.
  cmd.set(0x5);
  EXPECT_EQ(calls.size(), 1u);
  // A handler runs on a write to a read-only register too (doorbells on any write).
  unsigned rings = 0;
  sts.on_write([&](uint32_t, uint32_t) { ++rings; });
  ASSERT_TRUE(f.write(0x1C, 4, 0));
  EXPECT_EQ(rings, 1u);
  EXPECT_EQ(sts.get(), 0x3u);
}

TEST(RegisterFile, FieldAccessors) {
  RegisterFile f;
  Reg<uint32_t> r(f, "R", 0);
  r.set<High>(0xA);
  r.set<Low>(0x15);   // wider than the field: bits above [3:0] dropped
  EXPECT_EQ(r.get(), 0xA0000005u);
  EXPECT_EQ(r.get<High>(), 0xAu);
  EXPECT_EQ(r.get<Low>(), 0x5u);
  Reg<uint64_t> q(f, "Q", 8);
  q.set<Top>(1);
  EXPECT_EQ(q.get(), 0x8000000000000000ull);
  EXPECT_TRUE(q.get<Top>());
}

TEST(RegisterFile, SixtyFourBitRegisterWholeAndHalves) {
  RegisterFile f;
  Reg<uint64_t> base(f, "BASE", 0x80);
  base.writable(~0x3Full);   // bits 5:0 read-only
  ASSERT_TRUE(f.write(0x80, 8, 0x1122334455667788ull));
  EXPECT_EQ(base.get(), 0x1122334455667780ull);
  ASSERT_TRUE(f.write(0x84, 4, 0xAABBCCDD));   // upper half only
  EXPECT_EQ(base.get(), 0xAABBCCDD55667780ull);
  ASSERT_TRUE(f.write(0x80, 4, 0xFFFFFFFF));   // lower half only
  EXPECT_EQ(base.get(), 0xAABBCCDDFFFFFFC0ull);
  uint64_t v = 0;
  ASSERT_TRUE(f.read(0x80, 4, v));
  EXPECT_EQ(v, 0xFFFFFFC0ull);
  ASSERT_TRUE(f.read(0x84, 4, v));
  EXPECT_EQ(v, 0xAABBCCDDull);
  ASSERT_TRUE(f.read(0x80, 8, v));
  EXPECT_EQ(v, 0xAABBCCDDFFFFFFC0ull);
  EXPECT_FALSE(f.read(0x84, 8, v)) << "an 8-byte access at the upper half";
  EXPECT_FALSE(f.write(0x84, 8, 0));
}

TEST(RegisterFile, HolesWrongSizesAndNarrowRegisters) {
  RegisterFile f;
  Reg<uint32_t> r(f, "R", 0x20);
  r.set(0x77);
  uint64_t v = 0;
  EXPECT_FALSE(f.read(0x24, 4, v)) << "a hole";
  EXPECT_FALSE(f.read(0x20, 8, v)) << "8 bytes at a 32-bit register";
  EXPECT_FALSE(f.read(0x20, 2, v));
  EXPECT_FALSE(f.write(0x20, 1, 0));
  EXPECT_FALSE(f.read(0x22, 4, v)) << "misaligned";
  EXPECT_EQ(f.at(0x20), &r);
  EXPECT_EQ(f.at(0x24), nullptr);
  EXPECT_EQ(r.get(), 0x77u);
}

TEST(RegisterFile, AliasAnswersAtASecondOffset) {
  RegisterFile f;
  Reg<uint32_t> prod(f, "EVTQ_PROD", 0x100A8);
  f.alias(0xA8, prod);
  ASSERT_TRUE(f.write(0xA8, 4, 0x12));
  EXPECT_EQ(prod.get(), 0x12u);
  uint64_t v = 0;
  ASSERT_TRUE(f.read(0x100A8, 4, v));
  EXPECT_EQ(v, 0x12u);
}

TEST(RegisterFile, OverlappingRegistersAreRejectedAtElaboration) {
  RegisterFile f;
  Reg<uint64_t> a(f, "A", 0x10);
  EXPECT_THROW(Reg<uint32_t>(f, "B", 0x14), std::logic_error) << "inside A's upper half";
  EXPECT_THROW(Reg<uint32_t>(f, "C", 0x10), std::logic_error);
  EXPECT_THROW(f.alias(0x14, a), std::logic_error);
}

TEST(RegisterFile, TransportServesTheWindowAndRefusesTheRest) {
  RegisterFile f;
  Reg<uint32_t> r(f, "R", 0x8);
  r.writable(0xFFFF);
  uint32_t data = 0xCAFEF00D;
  tlm::tlm_generic_payload p;
  p.set_command(tlm::TLM_WRITE_COMMAND);
  p.set_address(0x8);
  p.set_data_ptr(reinterpret_cast<unsigned char*>(&data));
  p.set_data_length(4);
  p.set_streaming_width(4);
  f.transport(p, 0x1000);
  EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(r.get(), 0xF00Du);
  data = 0;
  p.set_command(tlm::TLM_READ_COMMAND);
  f.transport(p, 0x1000);
  EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(data, 0xF00Du);
  f.transport(p, 0x8);   // the window ends before the register
  EXPECT_EQ(p.get_response_status(), tlm::TLM_ADDRESS_ERROR_RESPONSE);
  unsigned char be[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  p.set_byte_enable_ptr(be);
  p.set_byte_enable_length(4);
  f.transport(p, 0x1000);
  EXPECT_EQ(p.get_response_status(), tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

}  // namespace
}  // namespace iommusim::common

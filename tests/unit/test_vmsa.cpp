// VMSAv8-64 descriptor encodings and walks against values worked out from the ARM ARM.
#include <map>

#include <gtest/gtest.h>

#include "map_memory.h"

#include "models/pagetable/table_builder.h"
#include "models/pagetable/vmsa.h"
#include "models/pagetable/walker.h"

using namespace iommusim::pagetable;

namespace {
VmsaFormat s1_4k() { return VmsaFormat({1, 12, 48, 0, 48, false}); }
VmsaFormat s2_4k() { return VmsaFormat({2, 12, 48, 0, 48, false}); }

}  // namespace

TEST(VmsaEncode, Stage1PageLiteral) {
  // valid 0x1 | page 0x2 | AP[1]=EL0 0x40 | SH=ISH 0x300 | AF 0x400 | nG 0x800 = 0xF43,
  // PXN bit53 + UXN bit54 = 0x0060_0000_0000_0000, OA 0x40001000.
  EXPECT_EQ(s1_4k().encode_leaf(3, 0x40001000, {}), 0x0060000040001F43ull);
  // Read-only adds AP[2] (bit 7): 0xFC3.
  LeafAttributes ro; ro.write = false;
  EXPECT_EQ(s1_4k().encode_leaf(3, 0x40001000, ro), 0x0060000040001FC3ull);
}

TEST(VmsaEncode, Stage2PageAndTableLiterals) {
  // 0x3 | MemAttr 0b1111<<2 (0x3C) | S2AP R 0x40 | W 0x80 | SH 0x300 | AF 0x400 = 0x7FF; XN bit54.
  EXPECT_EQ(s2_4k().encode_leaf(3, 0x80002000, {}), 0x00400000800027FFull);
  EXPECT_EQ(s2_4k().encode_table(1, 0x12345000), 0x12345003ull);
}

TEST(VmsaDecode, BlockAndReservedLiterals) {
  // 2 MB block at L2: OA 0x40200000 | AP[1] 0x40 | AF 0x400 | valid, bit1 clear.
  DecodedDescriptor d = s1_4k().decode(2, 0x40200441);
  EXPECT_EQ(d.kind, DecodedDescriptor::Kind::Leaf);
  EXPECT_EQ(d.leaf_bytes, 2ull << 20);
  EXPECT_EQ(d.address, 0x40200000ull);
  // 1 GB block at L1.
  EXPECT_EQ(s1_4k().decode(1, 0x40000441).leaf_bytes, 1ull << 30);
  // Level-3 descriptor with bit[1]=0 is reserved -> invalid; a level-0 block is invalid.
  EXPECT_EQ(s1_4k().decode(3, 0x9441).kind, DecodedDescriptor::Kind::Invalid);
  EXPECT_EQ(s1_4k().decode(0, 0x40000441).kind, DecodedDescriptor::Kind::Invalid);
}

TEST(VmsaWalk, FourLevelWalkOfLiteralTables) {
  // VA 0x0000_0080_4020_3123: L0 idx 1, L1 idx 1, L2 idx 1, L3 idx 3, offset 0x123.
  MapMemory m;
  m.words[0x1008] = 0x2003;
  m.words[0x2008] = 0x3003;
  m.words[0x3008] = 0x4003;
  m.words[0x4018] = 0x0060000000009F43ull;
  auto f = s1_4k();
  WalkResult r = walk_map(f, m, 0x1000, 0x0000008040203123ull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9123ull);
  EXPECT_EQ(r.reads, 4u);
  EXPECT_EQ(r.level, 3u);
}

TEST(VmsaWalk, BlockMappingsShortenTheWalk) {
  MapMemory m;
  auto f = s1_4k();
  TableBuilder b(f, m);
  ASSERT_TRUE(b.map(0x40000000, 0x80000000, 1ull << 30, 1ull << 30, {}).ok);   // 1 GB
  ASSERT_TRUE(b.map(0x200000, 0xC00000, 2ull << 20, 2ull << 20, {}).ok);       // 2 MB
  WalkResult g = walk_map(f, m, b.root(), 0x40012345);
  EXPECT_EQ(g.fault, Fault::None);
  EXPECT_EQ(g.output, 0x80012345ull);
  EXPECT_EQ(g.reads, 2u);
  WalkResult mb = walk_map(f, m, b.root(), 0x201234);
  EXPECT_EQ(mb.output, 0xC01234ull);
  EXPECT_EQ(mb.reads, 3u);
}

TEST(VmsaWalk, TranslationFaultsAtTheMissingLevel) {
  MapMemory m;
  auto f = s1_4k();
  TableBuilder b(f, m);
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, {}).ok);
  WalkResult r = walk_map(f, m, b.root(), 0x2000);   // same L3 table, empty slot
  EXPECT_EQ(r.fault, Fault::Translation);
  EXPECT_EQ(r.level, 3u);
  WalkResult far = walk_map(f, m, b.root(), 1ull << 31);   // L0 idx 0 present, L1 idx 2 empty
  EXPECT_EQ(far.fault, Fault::Translation);
  EXPECT_EQ(far.level, 1u);
  EXPECT_EQ(walk_map(f, m, b.root(), 1ull << 48).fault, Fault::Translation);  // beyond T0SZ
  ASSERT_TRUE(b.unmap(0x1000, 0x1000).ok);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1000).fault, Fault::Translation);
}

TEST(VmsaWalk, PermissionAndAccessFlagFaults) {
  MapMemory m;
  auto f = s1_4k();
  TableBuilder b(f, m);
  LeafAttributes ro; ro.write = false;
  LeafAttributes priv_only; priv_only.user = false;
  LeafAttributes no_af; no_af.access_flag = false;
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, ro).ok);
  ASSERT_TRUE(b.map(0x2000, 0x6000, 0x1000, 0x1000, priv_only).ok);
  ASSERT_TRUE(b.map(0x3000, 0x7000, 0x1000, 0x1000, no_af).ok);
  Access write; write.write = true;
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1000, write).fault, Fault::Permission);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1000).fault, Fault::None);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x2000).fault, Fault::Permission);       // unprivileged
  Access priv; priv.privileged = true;
  EXPECT_EQ(walk_map(f, m, b.root(), 0x2000, priv).fault, Fault::None);
  Access exec; exec.exec = true;
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1000, exec).fault, Fault::Permission);  // XN by default
  EXPECT_EQ(walk_map(f, m, b.root(), 0x3000).fault, Fault::AccessFlag);
}

TEST(VmsaWalk, Stage2PermissionsAndConcatenatedStart) {
  // 40-bit IPA, 4K granule, SL0=1 -> start at L1 with 2 concatenated tables (10 index bits).
  ASSERT_EQ(vmsa_stage2_start_level(12, 1), 1u);
  VmsaFormat f({2, 12, 40, 1, 48, false});
  ASSERT_EQ(validate(f.config()), "");
  EXPECT_EQ(f.index_bits(1), 10u);
  EXPECT_EQ(f.table_bytes(1), 8192u);
  MapMemory m;
  TableBuilder b(f, m);
  LeafAttributes ro; ro.write = false;
  ASSERT_TRUE(b.map(0x8000000000ull - 0x1000, 0x9000, 0x1000, 0x1000, ro).ok);
  Access write; write.write = true;
  WalkResult r = walk_map(f, m, b.root(), 0x8000000000ull - 0x1000 + 8);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9008ull);
  EXPECT_EQ(r.reads, 3u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x8000000000ull - 0x1000, write).fault, Fault::Permission);
}

TEST(VmsaWalk, AddressSizeFaultOnOutputBeyondOas) {
  VmsaFormat f({1, 12, 48, 0, 40, false});
  MapMemory m;
  m.words[0x1000] = 0x2003;
  m.words[0x2000] = 0x3003;
  m.words[0x3000] = 0x4003;
  m.words[0x4000] = 0x0000100000000F43ull;   // OA bit 44 set, OAS is 40 bits
  EXPECT_EQ(walk_map(f, m, 0x1000, 0x0).fault, Fault::AddressSize);
}

TEST(VmsaWalk, SixtyFourKGranuleThreeLevels) {
  // 64K granule, 48-bit VA: 13 bits per level, start level 1 (6 bits), L2, L3.
  VmsaFormat f({1, 16, 48, vmsa_stage1_start_level(16, 48), 48, false});
  EXPECT_EQ(f.start_level(), 1u);
  EXPECT_EQ(f.index_bits(1), 6u);
  MapMemory m;
  TableBuilder b(f, m);
  ASSERT_TRUE(b.map(0x123450000ull, 0x7770000, 0x10000, 0x10000, {}).ok);
  WalkResult r = walk_map(f, m, b.root(), 0x12345ABCDull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x777ABCDull);
  EXPECT_EQ(r.reads, 3u);
}

TEST(TableBuilder, RejectsMisalignedAndOverlappingMaps) {
  MapMemory m;
  auto f = s1_4k();
  TableBuilder b(f, m);
  EXPECT_FALSE(b.map(0x1001, 0x5000, 0x1000, 0x1000, {}).ok);
  EXPECT_FALSE(b.map(0x0, 0x5000, 0x1000, 0x3000, {}).ok);
  ASSERT_TRUE(b.map(0x200000, 0x400000, 2 << 20, 2 << 20, {}).ok);
  EditResult r = b.map(0x201000, 0x5000, 0x1000, 0x1000, {});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("larger leaf"), std::string::npos);
}

namespace iommusim::pagetable {
namespace {

// A pool that runs out after `tables` allocations (then answers 0, as the drivers' pools do).
struct SmallPool : MapMemory {
  unsigned left;
  explicit SmallPool(unsigned tables) : left(tables) {}
  uint64_t allocate_table(uint64_t bytes) override { return left-- > 0 ? MapMemory::allocate_table(bytes) : 0; }
};

// Defect: when the pool ran out, map() ignored the failed allocation and wrote the next
// level's tables at address 0. Now it stops, says so, and points nothing at address 0.
TEST(TableBuilder, ExhaustedPoolIsAnErrorNotTablesAtAddressZero) {
  const VmsaFormat f(VmsaConfig{1, 12, 48, 0, 48, false});   // 4 levels, 4 KB pages
  SmallPool mem(2);   // the root and one level-1 table; the level-2 table cannot be had
  TableBuilder tb(f, mem);
  ASSERT_NE(tb.root(), 0u);
  const EditResult r = tb.map(0x40000000, 0x80000000, 4096, 4096, {});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.pool_exhausted);
  EXPECT_NE(r.error.find("table pool exhausted"), std::string::npos) << r.error;
  for (auto& [addr, word] : mem.words) {
    EXPECT_GE(addr, 0x100000u) << "a descriptor was written into address 0's table";
    if (word) {
      EXPECT_NE(word & 0xFFFFFFFFF000ull, 0u) << "a table descriptor points at address 0";
    }
  }
  EXPECT_EQ(walk_map(f, mem, tb.root(), 0x40000000).fault, Fault::Translation);
}

// Mapping over a live leaf is refused; change() rewrites it in place, keeping its size.
TEST(TableBuilder, LiveLeafIsRefusedByMapAndRewrittenByChange) {
  const VmsaFormat f(VmsaConfig{1, 12, 48, 0, 48, false});
  MapMemory mem;
  TableBuilder tb(f, mem);
  ASSERT_TRUE(tb.map(0x40000000, 0x80000000, 2ull << 20, 2ull << 20, {}).ok);   // one 2 MB block
  const EditResult again = tb.map(0x40000000, 0x90000000, 2ull << 20, 2ull << 20, {});
  EXPECT_FALSE(again.ok);
  EXPECT_NE(again.error.find("already mapped at 0x40000000"), std::string::npos) << again.error;
  EXPECT_EQ(walk_map(f, mem, tb.root(), 0x40012345).output, 0x80012345u);
  LeafAttributes ro;
  ro.write = false;
  EXPECT_FALSE(tb.change(0x40000000, 4096, std::nullopt, ro).ok) << "4 KB of a 2 MB block: the range splits the leaf";
  const EditResult c = tb.change(0x40000000, 2ull << 20, 0xA0000000, ro);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.descriptors_written, 1u);
  const WalkResult w = walk_map(f, mem, tb.root(), 0x40012345);
  EXPECT_EQ(w.output, 0xA0012345u);
  EXPECT_EQ(w.leaf_bytes, 2ull << 20);
  Access write;
  write.write = true;
  EXPECT_EQ(walk_map(f, mem, tb.root(), 0x40012345, write).fault, Fault::Permission);
}

}  // namespace
}  // namespace iommusim::pagetable

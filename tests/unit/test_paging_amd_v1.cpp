// AMD IOMMU v1 (host) tables against values worked out from the AMD IOMMU spec 2.2.3:
// PR[0], NextLevel[11:9], OA[51:12], FC[60], IR[61], IW[62]. Walk level w = 6 - AMD level.
#include <map>

#include <gtest/gtest.h>

#include "map_memory.h"

#include "models/pagetable/amd_v1.h"
#include "models/pagetable/table_builder.h"
#include "models/pagetable/walker.h"

using namespace iommusim::pagetable;

namespace {
AmdV1Format amd(unsigned mode) { return AmdV1Format({mode, 52}); }

Access write_access() { Access a; a.write = true; return a; }

constexpr uint64_t kIrIw = 0x6000000000000000ull;     // IR bit 61 | IW bit 62
constexpr uint64_t kFcIrIw = 0x7000000000000000ull;   // + FC bit 60
}  // namespace

TEST(AmdV1, GeometryPerMode) {
  const unsigned input[] = {0, 21, 30, 39, 48, 57, 64};
  for (unsigned mode = 1; mode <= 6; ++mode) {
    EXPECT_EQ(amd(mode).start_level(), 6 - mode) << mode;
    EXPECT_EQ(amd(mode).input_bits(), input[mode]) << mode;
    EXPECT_EQ(validate(AmdV1Config{mode, 52}), "") << mode;
  }
  EXPECT_EQ(amd(6).level_shift(0), 57u);   // AMD level 6 indexes bits 63:57
  EXPECT_EQ(amd(6).index_bits(0), 7u);
  EXPECT_EQ(amd(6).level_shift(5), 12u);
  EXPECT_EQ(amd(6).index(0, 0xFE00000000000000ull), 0x7Full);
  EXPECT_NE(validate(AmdV1Config{0, 52}), "");
  EXPECT_NE(validate(AmdV1Config{7, 52}), "");
  EXPECT_FALSE(amd(6).leaf_allowed(0));
  EXPECT_TRUE(amd(6).leaf_allowed(1));
}

TEST(AmdV1, EncodeLiterals) {
  // PDE at AMD level 4 (w2) to 0x1000 one level down: PR 0x1 | NextLevel 3<<9 = 0x600 | IR | IW.
  EXPECT_EQ(amd(4).encode_table(2, 0x1000), 0x6000000000001601ull);
  // Straight to AMD level 2 (skipping level 3): NextLevel 2 -> 0x400.
  EXPECT_EQ(amd(4).encode_table_to(2, 0x1000, 2), 0x6000000000001401ull);
  // 4 KB PTE (w5), NextLevel 0: PR | FC | IR | IW; read-only drops IW (bit 62).
  EXPECT_EQ(amd(4).encode_leaf(5, 0x9000, {}), 0x7000000000009001ull);
  LeafAttributes ro;
  ro.write = false;
  EXPECT_EQ(amd(4).encode_leaf(5, 0x9000, ro), 0x3000000000009001ull);
  // Natural 2 MB PTE at AMD level 2 (w4): NextLevel 0, not 7.
  EXPECT_EQ(amd(4).encode_leaf(4, 0x40200000, {}), 0x7000000040200001ull);
  EXPECT_EQ(amd(4).encode_large_leaf(4, 0x40200000, 2ull << 20, {}), 0x7000000040200001ull);
}

TEST(AmdV1, LargePageLiterals) {
  auto f = amd(4);
  // 32 KB at AMD level 1 (w5), base 0x1234_0000: size 2^15 -> ones in address bits 13:12
  // (0x3000), bit 14 zero; NextLevel 7 (0xE00) | PR | FC | IR | IW.
  EXPECT_EQ(f.encode_large_leaf(5, 0x12340000, 0x8000, {}), 0x7000000012343E01ull);
  DecodedDescriptor d = f.decode(5, 0x7000000012343E01ull);
  ASSERT_EQ(d.kind, DecodedDescriptor::Kind::Leaf);
  EXPECT_EQ(d.leaf_bytes, 0x8000u);
  EXPECT_EQ(d.address, 0x12340000ull);
  EXPECT_TRUE(d.readable);
  EXPECT_TRUE(d.writable);
  // 8 KB: bit 12 CLEAR -> first zero of (pte | 0xFFF) is bit 12 -> 2^13. 0x2E01 = 0x2000 | 0xE00 | PR,
  // no IR/IW.
  d = f.decode(5, 0x2E01);
  EXPECT_EQ(d.leaf_bytes, 0x2000u);
  EXPECT_EQ(d.address, 0x2000ull);
  EXPECT_FALSE(d.readable);
  EXPECT_FALSE(d.writable);
  // Bit 12 set, bit 13 clear -> 16 KB: 0x5E01 is a 16 KB page at 0x5000 & ~0x3FFF = 0x4000.
  d = f.decode(5, 0x5E01);
  EXPECT_EQ(d.leaf_bytes, 0x4000u);
  EXPECT_EQ(d.address, 0x4000ull);
  // 4 MB at AMD level 2 (w4): ones in bits 20:12 (0x1FF000), bit 21 zero, base 0x40_0000.
  EXPECT_EQ(f.encode_large_leaf(4, 0x400000, 4ull << 20, {}), 0x70000000005FFE01ull);
  d = f.decode(4, 0x5FFE01);
  EXPECT_EQ(d.leaf_bytes, 4ull << 20);
  EXPECT_EQ(d.address, 0x400000ull);
  // 1 MB (ones in 18:12 = 0x7F000, bit 19 zero): fine at level 1 (4 KB < 1 MB < 2 MB) ...
  d = f.decode(5, 0x17FE01);
  EXPECT_EQ(d.leaf_bytes, 1ull << 20);
  EXPECT_EQ(d.address, 0x100000ull);
  // ... but smaller than level 2's natural 2 MB.
  EXPECT_EQ(f.decode(4, 0x17FE01).kind, DecodedDescriptor::Kind::Reserved);
  // 2 MB via NextLevel 7 (ones in 19:12 = 0xFF000): equal to level 2's size (NextLevel 0 is
  // required there) and not smaller than level 1's parent.
  EXPECT_EQ(f.decode(4, 0x2FFE01).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(5, 0x2FFE01).kind, DecodedDescriptor::Kind::Reserved);
  // 1 GB at AMD level 2 via NextLevel 7 (ones in 28:12): not smaller than the parent's 1 GB.
  EXPECT_EQ(f.decode(4, 0x1FFFFE01).kind, DecodedDescriptor::Kind::Reserved);
}

TEST(AmdV1, DecodeLiterals) {
  auto f = amd(6);
  EXPECT_EQ(f.decode(5, 0x7000000000009000ull).kind, DecodedDescriptor::Kind::Invalid);   // PR clear
  // Present but malformed entries decode as Reserved (IO_PAGE_FAULT PR=1 RZ=1), not as
  // not present. The level-6 table holds no pages, natural or large.
  EXPECT_EQ(f.decode(0, 0x7000000000000001ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(0, 0x7000000000000E01ull).kind, DecodedDescriptor::Kind::Reserved);
  // A PDE at AMD level 4 (w2) naming level 4 or 5 (0x801 / 0xA01) does not go down.
  EXPECT_EQ(f.decode(2, 0x6000000000003801ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(2, 0x6000000000003A01ull).kind, DecodedDescriptor::Kind::Reserved);
  // Table with IR only (bit 61): read allowed, write removed below.
  DecodedDescriptor t = f.decode(2, 0x2000000000003401ull);
  EXPECT_EQ(t.kind, DecodedDescriptor::Kind::Table);
  EXPECT_EQ(t.next_level, 4u);   // AMD level 2
  EXPECT_TRUE(t.table_allows_read);
  EXPECT_FALSE(t.table_allows_write);
  // Natural 512 GB leaf at AMD level 4 decodes (Linux avoids it for an erratum; the format allows it).
  EXPECT_EQ(f.decode(2, 0x7000008000000001ull).leaf_bytes, 1ull << 39);
  // Reserved bits: PDE 60:52, PTE 58:52 (bits 59 U and 60 FC are not reserved in a PTE).
  // PDE 0x6000_0000_0000_3401 | bit 52 (n[55:52]=1) => 0x6010_0000_0000_3401; | FC bit 60 => 0x7000_...
  EXPECT_EQ(f.decode(2, 0x6010000000003401ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(2, 0x7000000000003401ull).kind, DecodedDescriptor::Kind::Reserved);
  // PTE 0x7000_0000_0000_9001 | bit 58 (n[59:56]=4) => 0x7400_0000_0000_9001; U bit 59 (n=8) is fine.
  EXPECT_EQ(f.decode(5, 0x7400000000009001ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(5, 0x7800000000009001ull).kind, DecodedDescriptor::Kind::Leaf);
}

TEST(AmdV1, LiteralSixLevelWalk) {
  // Mode 6, IOVA 0x8000_0000_0000_0ABC: level-6 index = bits 63:57 = 0x40 (entry at 0x1000 + 0x200),
  // every lower index 0. NextLevel 5,4,3,2,1 = 0xA00, 0x800, 0x600, 0x400, 0x200.
  MapMemory m;
  m.words[0x1200] = 0x6000000000002A01ull;
  m.words[0x2000] = 0x6000000000003801ull;
  m.words[0x3000] = 0x6000000000004601ull;
  m.words[0x4000] = 0x6000000000005401ull;
  m.words[0x5000] = 0x6000000000006201ull;
  m.words[0x6000] = 0x7000000000009001ull;
  auto f = amd(6);
  EXPECT_EQ(f.encode_table(0, 0x2000), 0x6000000000002A01ull);
  WalkResult r = walk_map(f, m, 0x1000, 0x8000000000000ABCull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9ABCull);
  EXPECT_EQ(r.reads, 6u);
  EXPECT_EQ(r.level, 5u);
}

TEST(AmdV1, WalksAtEveryMode) {
  for (unsigned mode = 1; mode <= 6; ++mode) {
    auto f = amd(mode);
    MapMemory m;
    TableBuilder b(f, m);
    // The last 4 KB of the mode's input range.
    const uint64_t top = mode == 6 ? ~0xFFFull : (1ull << f.input_bits()) - 0x1000;
    ASSERT_TRUE(b.map(top, 0x9000, 0x1000, 0x1000, {}).ok) << mode;
    WalkResult r = walk_map(f, m, b.root(), top + 0x123);
    EXPECT_EQ(r.fault, Fault::None) << mode;
    EXPECT_EQ(r.output, 0x9123ull) << mode;
    EXPECT_EQ(r.reads, mode) << mode;
    if (mode < 6) {
      WalkResult out = walk_map(f, m, b.root(), 1ull << f.input_bits());
      EXPECT_EQ(out.fault, Fault::Translation) << mode;
      EXPECT_EQ(out.reads, 0u) << mode;
    }
  }
}

TEST(AmdV1, LevelSkipping) {
  // Mode 4, root (AMD level 4) entry 1 points straight at an AMD level-2 table (NextLevel 2).
  // IOVA 0x80_0040_3045 = 1<<39 | 2<<21 | 3<<12 | 0x45: level-4 index 1, skipped level-3 index
  // (bits 38:30) 0, level-2 index 2, level-1 index 3.
  auto f = amd(4);
  MapMemory m;
  m.words[0x1008] = 0x6000000000002401ull;   // NextLevel 2 (0x400) -> 0x2000
  m.words[0x2010] = 0x6000000000003201ull;   // NextLevel 1 (0x200) -> 0x3000
  m.words[0x3018] = 0x7000000000009001ull;
  EXPECT_EQ(f.encode_table_to(2, 0x2000, 2), 0x6000000000002401ull);
  WalkResult r = walk_map(f, m, 0x1000, 0x0000008000403045ull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9045ull);
  EXPECT_EQ(r.reads, 3u);
  // A nonzero skipped index (bit 30) is an I/O page fault at the skipping PDE: a present,
  // malformed entry (PR=1), not a missing one.
  WalkResult bad = walk_map(f, m, 0x1000, 0x0000008000403045ull | (1ull << 30));
  EXPECT_EQ(bad.fault, Fault::Reserved);
  EXPECT_EQ(bad.reads, 1u);
  EXPECT_EQ(bad.level, 2u);
  EXPECT_EQ(f.skipped_index_mask(2, 4), 0x0000007FC0000000ull);   // bits 38:30
  EXPECT_EQ(f.skipped_index_mask(2, 3), 0u);
}

TEST(AmdV1, TableBuilderRespectsSkippingTables) {
  auto f = amd(4);
  MapMemory m;
  TableBuilder b(f, m);
  const uint64_t l2 = m.allocate_table(4096);
  m.write_descriptor(b.root(), f.encode_table_to(2, l2, 2));   // root index 0 skips level 3
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, {}).ok);
  WalkResult r = walk_map(f, m, b.root(), 0x1234);
  EXPECT_EQ(r.output, 0x5234ull);
  EXPECT_EQ(r.reads, 3u);
  EditResult e = b.map(1ull << 30, 0x5000, 0x1000, 0x1000, {});   // level-3 index 1: not covered
  EXPECT_FALSE(e.ok);
  EXPECT_NE(e.error.find("skips levels"), std::string::npos);
  EXPECT_FALSE(b.map(0, 0x40000000, 1ull << 30, 1ull << 30, {}).ok);   // 1 GB leaf needs level 3
  ASSERT_TRUE(b.unmap(0, 2ull << 30).ok);   // walks past the uncovered part without looping
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1234).fault, Fault::Translation);
}

TEST(AmdV1, PermissionsAndedAcrossLevels) {
  // Mode 3, IOVA 0x8: root (AMD 3) 0x1000 -> AMD 2 table 0x2000 -> AMD 1 table 0x3000 -> 0x9000.
  auto f = amd(3);
  auto make = [](uint64_t root_perm, uint64_t pte) {
    MapMemory m;
    m.words[0x1000] = root_perm | 0x2401;   // NextLevel 2
    m.words[0x2000] = kIrIw | 0x3201;       // NextLevel 1
    m.words[0x3000] = pte;
    return m;
  };
  {
    MapMemory m = make(0x2000000000000000ull, kFcIrIw | 0x9001);   // root IR only
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::None);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::Permission);
  }
  {
    MapMemory m = make(0x4000000000000000ull, kFcIrIw | 0x9001);   // root IW only
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::None);
  }
  {
    MapMemory m = make(kIrIw, 0x3000000000009001ull);   // PTE FC|IR: read-only
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::None);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::Permission);
  }
  {
    MapMemory m = make(kIrIw, kFcIrIw | 0x9000);   // PTE not present
    WalkResult r = walk_map(f, m, 0x1000, 0x8);
    EXPECT_EQ(r.fault, Fault::Translation);
    EXPECT_EQ(r.level, 5u);
  }
}

TEST(AmdV1, NaturalLargeLeaves) {
  // Mode 3: root is AMD level 3 (1 GB entries). IOVA 0x4001_2345 -> root index 1: a 1 GB PTE
  // (NextLevel 0) at 0x8000_0000. IOVA 0x31_2345 -> root index 0 -> AMD 2 table, index 1: 2 MB PTE.
  auto f = amd(3);
  MapMemory m;
  m.words[0x1008] = kFcIrIw | 0x80000001ull;
  m.words[0x1000] = kIrIw | 0x2401;
  m.words[0x2008] = kFcIrIw | 0xC00001ull;
  WalkResult gb = walk_map(f, m, 0x1000, 0x40012345);
  EXPECT_EQ(gb.fault, Fault::None);
  EXPECT_EQ(gb.output, 0x80012345ull);
  EXPECT_EQ(gb.leaf_bytes, 1ull << 30);
  EXPECT_EQ(gb.reads, 1u);
  WalkResult mb = walk_map(f, m, 0x1000, 0x312345);
  EXPECT_EQ(mb.fault, Fault::None);
  EXPECT_EQ(mb.output, 0xD12345ull);
  EXPECT_EQ(mb.leaf_bytes, 2ull << 20);
  EXPECT_EQ(mb.reads, 2u);
}

TEST(AmdV1, LargePageWalkAndUnmapClearsReplicas) {
  auto f = amd(3);
  MapMemory m;
  TableBuilder b(f, m);
  ASSERT_TRUE(b.map(0x10000, 0x80000, 0x1000, 0x1000, {}).ok);
  // The level-1 table holding IOVA 0x10000 (index 16); fill indices 16..23 with a 32 KB page.
  WalkResult r = walk_map(f, m, b.root(), 0x10000);
  const uint64_t l1 = r.descriptor_address - 16 * 8;
  const uint64_t pte = f.encode_large_leaf(5, 0x80000, 0x8000, {});
  for (unsigned i = 16; i < 24; ++i) m.words[l1 + i * 8] = pte;
  WalkResult big = walk_map(f, m, b.root(), 0x15678);
  EXPECT_EQ(big.fault, Fault::None);
  EXPECT_EQ(big.output, 0x85678ull);
  EXPECT_EQ(big.leaf_bytes, 0x8000u);
  EditResult u = b.unmap(0x12000, 0x1000);
  EXPECT_TRUE(u.ok);
  EXPECT_EQ(u.descriptors_written, 8u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x10000).fault, Fault::Translation);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x17000).fault, Fault::Translation);
}

TEST(AmdV1, TableBuilderMapsNaturalSizes) {
  auto f = amd(4);
  MapMemory m;
  TableBuilder b(f, m);
  LeafAttributes ro;
  ro.write = false;
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, {}).ok);
  ASSERT_TRUE(b.map(0x200000, 0xC00000, 2ull << 20, 2ull << 20, ro).ok);
  ASSERT_TRUE(b.map(0x40000000, 0x80000000, 1ull << 30, 1ull << 30, {}).ok);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1234).reads, 4u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1234).output, 0x5234ull);
  WalkResult mb = walk_map(f, m, b.root(), 0x201234);
  EXPECT_EQ(mb.output, 0xC01234ull);
  EXPECT_EQ(mb.reads, 3u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234, write_access()).fault, Fault::Permission);
  WalkResult gb = walk_map(f, m, b.root(), 0x40012345, write_access());
  EXPECT_EQ(gb.fault, Fault::None);
  EXPECT_EQ(gb.output, 0x80012345ull);
  EXPECT_EQ(gb.reads, 2u);
  // The root PDE the builder wrote: one level down from AMD 4 -> NextLevel 3, IR|IW.
  EXPECT_EQ(m.read_descriptor(b.root()) & 0xFFF0000000000FFFull, 0x6000000000000601ull);
  ASSERT_TRUE(b.unmap(0x200000, 2ull << 20).ok);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234).fault, Fault::Translation);
}

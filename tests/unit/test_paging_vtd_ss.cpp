// VT-d second-stage tables against values worked out from VT-d 9.8:
// R[0] W[1] X[2] PS[7] SNP[11], address [51:12]; no present bit (R=W=0 is not present).
#include <map>

#include <gtest/gtest.h>

#include "map_memory.h"

#include "models/pagetable/table_builder.h"
#include "models/pagetable/vtd_ss.h"
#include "models/pagetable/walker.h"

using namespace iommusim::pagetable;

namespace {
VtdSecondStageFormat ss(unsigned levels, bool p2m = true, bool p1g = true) {
  return VtdSecondStageFormat({levels, p2m, p1g, 48});
}

Access write_access() { Access a; a.write = true; return a; }
}  // namespace

TEST(VtdSecondStage, GeometryAndValidate) {
  EXPECT_EQ(ss(3).start_level(), 2u);
  EXPECT_EQ(ss(4).start_level(), 1u);
  EXPECT_EQ(ss(5).start_level(), 0u);
  EXPECT_EQ(ss(3).input_bits(), 39u);
  EXPECT_EQ(ss(4).input_bits(), 48u);
  EXPECT_EQ(ss(5).input_bits(), 57u);
  EXPECT_EQ(ss(4).level_shift(2), 30u);
  EXPECT_EQ(validate(VtdSecondStageConfig{}), "");
  EXPECT_NE(validate(VtdSecondStageConfig{2, true, true, 48}), "");
  EXPECT_NE(validate(VtdSecondStageConfig{6, true, true, 48}), "");
  EXPECT_FALSE(ss(4, false, true).leaf_allowed(3));
  EXPECT_TRUE(ss(4, false, true).leaf_allowed(2));
}

TEST(VtdSecondStage, EncodeLiterals) {
  auto f = ss(4);
  EXPECT_EQ(f.encode_table(1, 0x2000), 0x2003ull);               // R|W
  EXPECT_EQ(f.encode_leaf(4, 0x9000, {}), 0x9003ull);           // R|W
  LeafAttributes ro;
  ro.write = false;
  LeafAttributes wo;
  wo.read = false;
  EXPECT_EQ(f.encode_leaf(4, 0x9000, ro), 0x9001ull);
  EXPECT_EQ(f.encode_leaf(4, 0x9000, wo), 0x9002ull);
  EXPECT_EQ(f.encode_leaf(3, 0x40200000, {}), 0x40200083ull);   // PS 0x80 | W | R
  EXPECT_EQ(f.encode_leaf(2, 0x80000000, ro), 0x80000081ull);   // PS | R
}

TEST(VtdSecondStage, DecodeLiterals) {
  auto f = ss(4);
  // 0x9804 = X (0x4) | SNP (0x800) | address 0x9000, but R=W=0: not present.
  EXPECT_EQ(f.decode(4, 0x9804).kind, DecodedDescriptor::Kind::Invalid);
  // 0x9801 = R | SNP: a read-only page at 0x9000.
  DecodedDescriptor d = f.decode(4, 0x9801);
  EXPECT_EQ(d.kind, DecodedDescriptor::Kind::Leaf);
  EXPECT_EQ(d.address, 0x9000ull);
  EXPECT_TRUE(d.readable);
  EXPECT_FALSE(d.writable);
  // A write-only table (0x3002) is present and removes read below it.
  DecodedDescriptor t = f.decode(2, 0x3002);
  EXPECT_EQ(t.kind, DecodedDescriptor::Kind::Table);
  EXPECT_EQ(t.address, 0x3000ull);
  EXPECT_FALSE(t.table_allows_read);
  EXPECT_TRUE(t.table_allows_write);
  // 2 MB leaf 0x40200083 and 1 GB leaf 0x40000083.
  EXPECT_EQ(f.decode(3, 0x40200083).leaf_bytes, 2ull << 20);
  EXPECT_EQ(f.decode(3, 0x40200083).address, 0x40200000ull);
  EXPECT_EQ(f.decode(2, 0x40000083).leaf_bytes, 1ull << 30);
  // Present (R or W) entries with reserved bits decode as Reserved (fault reason 0x7A), not
  // as not present (0x79). PS in an SS-PML4E or SS-PML5E is reserved.
  EXPECT_EQ(f.decode(1, 0x2083).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(ss(5).decode(0, 0x2083).kind, DecodedDescriptor::Kind::Reserved);
  // Large page with address bit 12 set (0x40201083): reserved.
  EXPECT_EQ(f.decode(3, 0x40201083).kind, DecodedDescriptor::Kind::Reserved);
  // PS where the capability has no such page size.
  EXPECT_EQ(ss(4, false, true).decode(3, 0x40200083).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(ss(4, true, false).decode(2, 0x40000083).kind, DecodedDescriptor::Kind::Reserved);
  // Address bit 48 (0x1_0000_0000_0000) beyond a 48-bit HAW is reserved; fine with 52 bits.
  EXPECT_EQ(f.decode(4, 0x0001000000009003ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(VtdSecondStageFormat({4, true, true, 52}).decode(4, 0x0001000000009003ull).address, 0x1000000009000ull);
}

TEST(VtdSecondStage, ThreeFourFiveLevelWalks) {
  // 4 levels: VA 0x80_4020_3123 -> SS-PML4 1, SS-PDPT 1, SS-PD 1, SS-PT 3, offset 0x123.
  {
    MapMemory m;
    m.words[0x1008] = 0x2003;
    m.words[0x2008] = 0x3003;
    m.words[0x3008] = 0x4003;
    m.words[0x4018] = 0x9003;
    WalkResult r = walk_map(ss(4), m, 0x1000, 0x0000008040203123ull);
    EXPECT_EQ(r.fault, Fault::None);
    EXPECT_EQ(r.output, 0x9123ull);
    EXPECT_EQ(r.reads, 4u);
    EXPECT_EQ(r.level, 4u);
  }
  // 3 levels (AGAW 39) start at the SS-PDPT: VA 0x4020_3123 -> 1, 1, 3.
  {
    MapMemory m;
    m.words[0x1008] = 0x3003;
    m.words[0x3008] = 0x4003;
    m.words[0x4018] = 0x9003;
    WalkResult r = walk_map(ss(3), m, 0x1000, 0x40203123);
    EXPECT_EQ(r.fault, Fault::None);
    EXPECT_EQ(r.output, 0x9123ull);
    EXPECT_EQ(r.reads, 3u);
    EXPECT_EQ(walk_map(ss(3), m, 0x1000, 1ull << 39).fault, Fault::Translation);
  }
  // 5 levels (AGAW 57): VA 0x1_0080_4020_3123 -> SS-PML5 1, then 1, 1, 1, 3.
  {
    MapMemory m;
    m.words[0x1008] = 0x2003;
    m.words[0x2008] = 0x3003;
    m.words[0x3008] = 0x4003;
    m.words[0x4008] = 0x5003;
    m.words[0x5018] = 0x9003;
    WalkResult r = walk_map(ss(5), m, 0x1000, 0x0001008040203123ull);
    EXPECT_EQ(r.fault, Fault::None);
    EXPECT_EQ(r.output, 0x9123ull);
    EXPECT_EQ(r.reads, 5u);
  }
}

TEST(VtdSecondStage, ReadWritePermissionsAcrossLevels) {
  // VA 0 through SS-PML4 0x1000 -> 0x2000 -> 0x3000 -> SS-PT 0x4000.
  auto make = [](uint64_t pde, uint64_t pte) {
    MapMemory m;
    m.words[0x1000] = 0x2003;
    m.words[0x2000] = 0x3003;
    m.words[0x3000] = pde;
    m.words[0x4000] = pte;
    return m;
  };
  auto f = ss(4);
  Access exec;
  exec.exec = true;
  {
    MapMemory m = make(0x4003, 0x9001);   // read-only page
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::None);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, exec).fault, Fault::None);   // X not modelled
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::Permission);
  }
  {
    MapMemory m = make(0x4003, 0x9002);   // write-only page
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::None);
  }
  {
    MapMemory m = make(0x4001, 0x9003);   // SS-PDE W=0 over a read-write page
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::None);
  }
  {
    MapMemory m = make(0x4002, 0x9003);   // SS-PDE R=0
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x8, write_access()).fault, Fault::None);
  }
  {
    MapMemory m = make(0x4000, 0x9003);   // SS-PDE R=W=0: not present
    WalkResult r = walk_map(f, m, 0x1000, 0x8);
    EXPECT_EQ(r.fault, Fault::Translation);
    EXPECT_EQ(r.level, 3u);
  }
}

TEST(VtdSecondStage, LargeLeavesInWalks) {
  MapMemory m;
  m.words[0x1000] = 0x2003;
  m.words[0x2008] = 0x3003;
  // 2 MB: VA 0x4031_2345 -> SS-PDPT 1, SS-PD 1, offset 0x112345.
  m.words[0x3008] = 0x80000083;
  // 1 GB: VA 0x8765_4321 -> SS-PDPT 2, offset 0x07654321.
  m.words[0x2010] = 0x140000083ull;
  WalkResult mb = walk_map(ss(4), m, 0x1000, 0x40312345);
  EXPECT_EQ(mb.fault, Fault::None);
  EXPECT_EQ(mb.output, 0x80112345ull);
  EXPECT_EQ(mb.reads, 3u);
  WalkResult gb = walk_map(ss(4), m, 0x1000, 0x87654321);
  EXPECT_EQ(gb.fault, Fault::None);
  EXPECT_EQ(gb.output, 0x147654321ull);
  EXPECT_EQ(gb.reads, 2u);
  EXPECT_EQ(walk_map(ss(4, false, true), m, 0x1000, 0x40312345).fault, Fault::Reserved);
  EXPECT_EQ(walk_map(ss(4, true, false), m, 0x1000, 0x87654321).fault, Fault::Reserved);
}

TEST(VtdSecondStage, TableBuilderMapsEveryPageSize) {
  auto f = ss(3);
  MapMemory m;
  TableBuilder b(f, m);
  LeafAttributes ro;
  ro.write = false;
  ASSERT_TRUE(b.map(0x40000000, 0x80000000, 1ull << 30, 1ull << 30, {}).ok);   // 1 GB at the root
  ASSERT_TRUE(b.map(0x200000, 0xC00000, 2ull << 20, 2ull << 20, ro).ok);
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, {}).ok);
  WalkResult gb = walk_map(f, m, b.root(), 0x40012345);
  EXPECT_EQ(gb.output, 0x80012345ull);
  EXPECT_EQ(gb.reads, 1u);
  WalkResult mb = walk_map(f, m, b.root(), 0x201234);
  EXPECT_EQ(mb.output, 0xC01234ull);
  EXPECT_EQ(mb.reads, 2u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234, write_access()).fault, Fault::Permission);
  WalkResult k4 = walk_map(f, m, b.root(), 0x1234, write_access());
  EXPECT_EQ(k4.fault, Fault::None);
  EXPECT_EQ(k4.output, 0x5234ull);
  EXPECT_EQ(k4.reads, 3u);
  EXPECT_FALSE(b.map(0x1ull << 39, 0x0, 0x1000, 0x1000, {}).ok);   // beyond AGAW 39
  ASSERT_TRUE(b.unmap(0x1000, 0x1000).ok);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x1234).fault, Fault::Translation);
  EXPECT_FALSE(TableBuilder(ss(4, false, false), m).map(0x200000, 0, 2ull << 20, 2ull << 20, {}).ok);
}

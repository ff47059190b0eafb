// x86-64 paging (VT-d first stage, AMD v2) against values worked out from the Intel SDM
// vol. 3 4.5 and VT-d 9.7: P[0] R/W[1] U/S[2] A[5] D[6] PS[7] XD[63], address [51:12].
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "map_memory.h"

#include "models/pagetable/table_builder.h"
#include "models/pagetable/walker.h"
#include "models/pagetable/x86.h"

using namespace iommusim::pagetable;

namespace {
X86Format x86_4l() { return X86Format({4, true, 52}); }
X86Format x86_5l() { return X86Format({5, true, 52}); }

Access write_access() { Access a; a.write = true; return a; }
Access priv_access() { Access a; a.privileged = true; return a; }
Access exec_access() { Access a; a.exec = true; return a; }

// A 4-level chain for VA 0: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 -> page 0x9000,
// each table entry's low bits given.
MapMemory chain(uint64_t pml4e_bits, uint64_t pdpte_bits, uint64_t pde_bits, uint64_t pte) {
  MapMemory m;
  m.words[0x1000] = 0x2000 | pml4e_bits;
  m.words[0x2000] = 0x3000 | pdpte_bits;
  m.words[0x3000] = 0x4000 | pde_bits;
  m.words[0x4000] = pte;
  return m;
}
}  // namespace

TEST(X86Paging, LevelGeometryAndValidate) {
  EXPECT_EQ(x86_4l().start_level(), 1u);
  EXPECT_EQ(x86_5l().start_level(), 0u);
  EXPECT_EQ(x86_4l().input_bits(), 48u);
  EXPECT_EQ(x86_5l().input_bits(), 57u);
  EXPECT_EQ(x86_4l().level_shift(0), 48u);
  EXPECT_EQ(x86_4l().level_shift(1), 39u);
  EXPECT_EQ(x86_4l().level_shift(4), 12u);
  EXPECT_EQ(x86_4l().table_bytes(1), 4096u);
  EXPECT_TRUE(x86_4l().leaf_allowed(2));
  EXPECT_FALSE(X86Format({4, false, 52}).leaf_allowed(2));
  EXPECT_FALSE(x86_4l().leaf_allowed(1));
  EXPECT_EQ(validate(X86PagingConfig{}), "");
  EXPECT_NE(validate(X86PagingConfig{3, true, 52}), "");
  EXPECT_NE(validate(X86PagingConfig{4, true, 53}), "");
}

TEST(X86Paging, PteDecodeLiteral) {
  // 0x8000000012345067: P 0x1 | R/W 0x2 | U/S 0x4 | A 0x20 | D 0x40 = 0x67, XD = bit 63,
  // address bits [51:12] = 0x12345000.
  const DecodedDescriptor d = x86_4l().decode(4, 0x8000000012345067ull);
  EXPECT_EQ(d.kind, DecodedDescriptor::Kind::Leaf);
  EXPECT_EQ(d.address, 0x12345000ull);
  EXPECT_EQ(d.leaf_bytes, 4096u);
  EXPECT_TRUE(d.readable);
  EXPECT_TRUE(d.writable);
  EXPECT_TRUE(d.user);
  EXPECT_FALSE(d.exec_user);
  EXPECT_FALSE(d.exec_priv);
  EXPECT_TRUE(d.access_flag);
  // The same bits in a PDE (PS clear) point to a table and carry its limits: XD removes exec.
  const DecodedDescriptor t = x86_4l().decode(3, 0x8000000012345067ull);
  EXPECT_EQ(t.kind, DecodedDescriptor::Kind::Table);
  EXPECT_EQ(t.address, 0x12345000ull);
  EXPECT_EQ(t.next_level, 4u);
  EXPECT_TRUE(t.table_allows_write);
  EXPECT_TRUE(t.table_allows_user);
  EXPECT_FALSE(t.table_allows_exec);
  // P clear (0x...066): not present.
  EXPECT_EQ(x86_4l().decode(4, 0x8000000012345066ull).kind, DecodedDescriptor::Kind::Invalid);
  // Bit 7 of a PTE is PAT, not PS: 0x9087 (P|RW|US|PAT) is still a 4 KB page at 0x9000.
  EXPECT_EQ(x86_4l().decode(4, 0x9087).address, 0x9000ull);
}

TEST(X86Paging, EncodeLiterals) {
  // Table: P 0x1 | R/W 0x2 | U/S 0x4 | A 0x20 = 0x27.
  EXPECT_EQ(x86_4l().encode_table(1, 0x5000), 0x5027ull);
  // 4 KB, default attributes (read, write, user, no exec): 0x67 | XD -> the decode literal above.
  EXPECT_EQ(x86_4l().encode_leaf(4, 0x12345000, {}), 0x8000000012345067ull);
  // 2 MB, read-only, supervisor, executable: P 0x1 | A 0x20 | D 0x40 | PS 0x80 = 0xE1.
  LeafAttributes ro_sup_x;
  ro_sup_x.write = false;
  ro_sup_x.user = false;
  ro_sup_x.exec = true;
  EXPECT_EQ(x86_4l().encode_leaf(3, 0x40200000, ro_sup_x), 0x402000E1ull);
  // 1 GB, defaults: 0x67 | PS 0x80 = 0xE7, plus XD.
  EXPECT_EQ(x86_4l().encode_leaf(2, 0xC0000000, {}), 0x80000000C00000E7ull);
}

TEST(X86Paging, FourLevelWalk4K) {
  // VA 0x80_4020_3123 = 1<<39 | 1<<30 | 1<<21 | 3<<12 | 0x123:
  // PML4 index 1, PDPT index 1, PD index 1, PT index 3, offset 0x123.
  MapMemory m;
  m.words[0x1008] = 0x2027;
  m.words[0x2008] = 0x3027;
  m.words[0x3008] = 0x4027;
  m.words[0x4018] = 0x8000000000009067ull;
  auto f = x86_4l();
  WalkResult r = walk_map(f, m, 0x1000, 0x0000008040203123ull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9123ull);
  EXPECT_EQ(r.reads, 4u);
  EXPECT_EQ(r.level, 4u);
  EXPECT_EQ(r.leaf_bytes, 4096u);
  EXPECT_EQ(r.descriptor_address, 0x4018ull);
  // Bit 48 is beyond a 4-level table's 48-bit input.
  WalkResult out = walk_map(f, m, 0x1000, 1ull << 48);
  EXPECT_EQ(out.fault, Fault::Translation);
  EXPECT_EQ(out.reads, 0u);
}

TEST(X86Paging, LargePageWalks) {
  MapMemory m;
  m.words[0x1000] = 0x2027;
  m.words[0x2008] = 0x3027;
  // 2 MB: VA 0x4031_2345 -> PDPT index 0x40312345>>30 = 1, PD index (>>21)&0x1FF = 0x201&0x1FF = 1,
  // offset 0x112345. PDE = 0x8000_0000 | PS|D|A|U/S|R/W|P (0xE7).
  m.words[0x3008] = 0x800000E7;
  auto f = x86_4l();
  WalkResult mb = walk_map(f, m, 0x1000, 0x40312345);
  EXPECT_EQ(mb.fault, Fault::None);
  EXPECT_EQ(mb.output, 0x80112345ull);
  EXPECT_EQ(mb.reads, 3u);
  EXPECT_EQ(mb.level, 3u);
  EXPECT_EQ(mb.leaf_bytes, 2ull << 20);
  // 1 GB: VA 0x8765_4321 -> PDPT index 2, offset 0x07654321. PDPTE = 0x1_4000_0000 | 0xE7.
  m.words[0x2010] = 0x1400000E7ull;
  WalkResult gb = walk_map(f, m, 0x1000, 0x87654321);
  EXPECT_EQ(gb.fault, Fault::None);
  EXPECT_EQ(gb.output, 0x147654321ull);
  EXPECT_EQ(gb.reads, 2u);
  EXPECT_EQ(gb.level, 2u);
  // Without 1 GB pages the PDPTE's PS is reserved.
  WalkResult no1g = walk_map(X86Format({4, false, 52}), m, 0x1000, 0x87654321);
  EXPECT_EQ(no1g.fault, Fault::Reserved);
  EXPECT_EQ(no1g.level, 2u);
}

TEST(X86Paging, FiveLevelWalk) {
  // VA 0x1_0080_4020_3123: PML5 index (bits 56:48) 1, then PML4/PDPT/PD index 1, PT index 3.
  MapMemory m;
  m.words[0x1008] = 0x2027;
  m.words[0x2008] = 0x3027;
  m.words[0x3008] = 0x4027;
  m.words[0x4008] = 0x5027;
  m.words[0x5018] = 0x8000000000009067ull;
  auto f = x86_5l();
  WalkResult r = walk_map(f, m, 0x1000, 0x0001008040203123ull);
  EXPECT_EQ(r.fault, Fault::None);
  EXPECT_EQ(r.output, 0x9123ull);
  EXPECT_EQ(r.reads, 5u);
  EXPECT_EQ(r.level, 4u);
  EXPECT_EQ(walk_map(f, m, 0x1000, 1ull << 57).fault, Fault::Translation);
}

TEST(X86Paging, HierarchicalPermissions) {
  auto f = x86_4l();
  const uint64_t leaf = 0x9067;   // P|RW|US|A|D, no XD: the leaf allows everything
  {
    // PML4E R/W=0 (0x25 = P|US|A): no write anywhere below, reads still fine.
    MapMemory m = chain(0x25, 0x27, 0x27, leaf);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10, write_access()).fault, Fault::Permission);
    WalkResult r = walk_map(f, m, 0x1000, 0x10);
    EXPECT_EQ(r.fault, Fault::None);
    EXPECT_FALSE(r.leaf.writable);
  }
  {
    // PDPTE U/S=0 (0x23 = P|RW|A): user accesses fault, supervisor ones do not.
    MapMemory m = chain(0x27, 0x23, 0x27, leaf);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10, priv_access()).fault, Fault::None);
  }
  {
    // PDE XD=1: no execute below.
    MapMemory m = chain(0x27, 0x27, 0x8000000000000027ull, leaf);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10, exec_access()).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10).fault, Fault::None);
  }
  {
    // The leaf's own bits: U/S=0 (0x9063) faults a user read; R/W=0 (0x9065) a write.
    MapMemory m = chain(0x27, 0x27, 0x27, 0x9063);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10).fault, Fault::Permission);
    m.words[0x4000] = 0x9065;
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10, write_access()).fault, Fault::Permission);
    EXPECT_EQ(walk_map(f, m, 0x1000, 0x10).fault, Fault::None);
  }
}

TEST(X86Paging, WalkReportsTablePermissionsAndHonoursInherited) {
  // on_table with a third argument sees the limits accumulated so far (for walk caches).
  auto f = x86_4l();
  MapMemory m = chain(0x25, 0x23, 0x27, 0x9067);
  std::vector<TablePermissions> seen;
  walk(f, {f.start_level(), 0x1000}, 0x10, Access{},
       [&](uint64_t addr, unsigned) { return FetchResult{true, m.read_descriptor(addr)}; },
       [&](unsigned, uint64_t, const TablePermissions& p) { seen.push_back(p); });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[0].write);
  EXPECT_TRUE(seen[0].user);
  EXPECT_FALSE(seen[2].write);
  EXPECT_FALSE(seen[2].user);
  // A walk resumed at the PT (as from a walk cache) keeps the limits it was given.
  WalkStart resume{4, 0x4000};
  resume.inherited.write = false;
  auto fetch = [&](uint64_t addr, unsigned) { return FetchResult{true, m.read_descriptor(addr)}; };
  EXPECT_EQ(walk(f, resume, 0x10, write_access(), fetch).fault, Fault::Permission);
  EXPECT_EQ(walk(f, {4, 0x4000}, 0x10, write_access(), fetch).fault, Fault::None);
}

TEST(X86Paging, ReservedBitsAreReservedFaultsNotNotPresent) {
  auto f = x86_4l();
  // PS in a PML4E (0x2027 | PS 0x80 = 0x20A7) or a PML5E is reserved.
  EXPECT_EQ(f.decode(1, 0x20A7).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(x86_5l().decode(0, 0x20A7).kind, DecodedDescriptor::Kind::Reserved);
  MapMemory m;
  m.words[0x1000] = 0x20A7;
  WalkResult r = walk_map(f, m, 0x1000, 0x0);
  EXPECT_EQ(r.fault, Fault::Reserved);   // VT-d 0x72, AMD PR=1 RZ=1 (not "not present")
  EXPECT_EQ(r.level, 1u);
  EXPECT_EQ(r.reads, 1u);
  // 2 MB PDE: bit 12 is PAT (0x800010E7 is a page at 0x8000_0000); bit 13 (0x800020E7) is reserved.
  EXPECT_EQ(f.decode(3, 0x800010E7).address, 0x80000000ull);
  EXPECT_EQ(f.decode(3, 0x800020E7).kind, DecodedDescriptor::Kind::Reserved);
  // 1 GB PDPTE: bits 29:13 reserved (bit 20 here).
  EXPECT_EQ(f.decode(2, 0xC01000E7).kind, DecodedDescriptor::Kind::Reserved);
  // Address bit 46 (0x4000_0000_0000) with a 46-bit MAXPHYADDR is reserved, in a PTE and in a table.
  X86Format narrow({4, true, 46});
  EXPECT_EQ(narrow.decode(4, 0x0000400000009067ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(narrow.decode(2, 0x0000400000003027ull).kind, DecodedDescriptor::Kind::Reserved);
  EXPECT_EQ(f.decode(4, 0x0000400000009067ull).address, 0x400000009000ull);
}

TEST(X86Paging, TableBuilderMapsEveryPageSize) {
  auto f = x86_4l();
  MapMemory m;
  TableBuilder b(f, m);
  LeafAttributes ro_sup;
  ro_sup.write = false;
  ro_sup.user = false;
  ASSERT_TRUE(b.map(0x1000, 0x5000, 0x1000, 0x1000, {}).ok);
  ASSERT_TRUE(b.map(0x200000, 0xC00000, 2ull << 20, 2ull << 20, ro_sup).ok);
  ASSERT_TRUE(b.map(0x40000000, 0x80000000, 1ull << 30, 1ull << 30, {}).ok);
  WalkResult k4 = walk_map(f, m, b.root(), 0x1234);
  EXPECT_EQ(k4.output, 0x5234ull);
  EXPECT_EQ(k4.reads, 4u);
  WalkResult mb = walk_map(f, m, b.root(), 0x201234, priv_access());
  EXPECT_EQ(mb.fault, Fault::None);
  EXPECT_EQ(mb.output, 0xC01234ull);
  EXPECT_EQ(mb.reads, 3u);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234).fault, Fault::Permission);   // supervisor-only
  Access priv_write = priv_access();
  priv_write.write = true;
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234, priv_write).fault, Fault::Permission);
  WalkResult gb = walk_map(f, m, b.root(), 0x40012345);
  EXPECT_EQ(gb.output, 0x80012345ull);
  EXPECT_EQ(gb.reads, 2u);
  ASSERT_TRUE(b.unmap(0x200000, 2ull << 20).ok);
  EXPECT_EQ(walk_map(f, m, b.root(), 0x201234, priv_access()).fault, Fault::Translation);
  EXPECT_FALSE(X86Format({4, false, 52}).leaf_allowed(2));
  // 5 levels: the top 4 KB of the 57-bit space.
  auto f5 = x86_5l();
  MapMemory m5;
  TableBuilder b5(f5, m5);
  ASSERT_TRUE(b5.map((1ull << 57) - 0x1000, 0x7000, 0x1000, 0x1000, {}).ok);
  WalkResult top = walk_map(f5, m5, b5.root(), (1ull << 57) - 0x1000 + 0x10);
  EXPECT_EQ(top.fault, Fault::None);
  EXPECT_EQ(top.output, 0x7010ull);
  EXPECT_EQ(top.reads, 5u);
}

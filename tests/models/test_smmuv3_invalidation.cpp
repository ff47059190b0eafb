// SMMUv3 model: invalidation scope. Each test warms the caches, invalidates through the
// driver (TLBI_* + CMD_SYNC on the command queue) and checks with exact descriptor-read
// counts what was dropped and what still hits.
#include <cstdint>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;

// Table reads one DMA read costs; fails the test if the DMA fails.
uint64_t reads_for(Harness& h, uint32_t sid, uint64_t iova, uint64_t* data = nullptr) {
  const uint64_t t0 = h.smmu.table_reads();
  const DmaResult r = h.read(sid, iova);
  EXPECT_TRUE(r.ok()) << "DMA to 0x" << std::hex << iova << " failed";
  if (data) *data = r.data;
  return h.smmu.table_reads() - t0;
}

TEST(SmmuInvalidation, ByAsidOnlyDropsThatDomain) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d1 = h.make_domain(DomainKind::Stage1), d2 = h.make_domain(DomainKind::Stage1);
    ASSERT_NE(h.drv.asid_of(d1), h.drv.asid_of(d2));
    IOMMUSIM_ASSERT_OK(h.drv.map(d1, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.map(d2, kIova, kPa + kPage, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d1));
    IOMMUSIM_ASSERT_OK(h.drv.attach(2, std::nullopt, d2));
    h.memory.write64(kPa, 111);
    h.memory.write64(kPa + kPage, 222);
    uint64_t v = 0;
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 4u);
    EXPECT_EQ(v, 111u);
    EXPECT_EQ(reads_for(h, 2, kIova, &v), 4u);
    EXPECT_EQ(v, 222u);
    EXPECT_EQ(reads_for(h, 1, kIova), 0u);
    EXPECT_EQ(reads_for(h, 2, kIova), 0u);
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d1));
    // TLBI_NH_ASID drops d1's IOTLB and walk-cache entries: a full walk again.
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 4u);
    EXPECT_EQ(v, 111u);
    EXPECT_EQ(reads_for(h, 2, kIova, &v), 0u);
    EXPECT_EQ(v, 222u);
  });
}

TEST(SmmuInvalidation, ByVmidOnlyDropsThatVm) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d1 = h.make_domain(DomainKind::Stage2), d2 = h.make_domain(DomainKind::Stage2);
    ASSERT_NE(h.drv.vmid_of(d1), h.drv.vmid_of(d2));
    IOMMUSIM_ASSERT_OK(h.drv.map(d1, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.map(d2, kIova, kPa + kPage, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d1));
    IOMMUSIM_ASSERT_OK(h.drv.attach(2, std::nullopt, d2));
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
    EXPECT_EQ(reads_for(h, 2, kIova), 4u);
    EXPECT_EQ(reads_for(h, 1, kIova), 0u);
    EXPECT_EQ(reads_for(h, 2, kIova), 0u);
    const uint64_t inv0 = h.smmu.iotlb_stats().invalidated.value();
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d1));   // TLBI_S12_VMALL(vmid of d1)
    EXPECT_EQ(h.smmu.iotlb_stats().invalidated.value() - inv0, 1u);
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);   // S2 walk cache dropped too
    EXPECT_EQ(reads_for(h, 2, kIova), 0u);
  });
}

TEST(SmmuInvalidation, ByVaOnlyDropsThatPage) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
    EXPECT_EQ(reads_for(h, 1, kIova + kPage), 1u);
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, true));
    EXPECT_EQ(reads_for(h, 1, kIova + kPage), 0u) << "the neighbouring page must still hit";
    EXPECT_EQ(reads_for(h, 1, kIova), 1u) << "the invalidated page re-walks (from the walk cache)";
  });
}

TEST(SmmuInvalidation, ByIpaOnlyDropsThatPage) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
    EXPECT_EQ(reads_for(h, 1, kIova + kPage), 1u);
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova + kPage, kPage, true));   // TLBI_S2_IPA
    EXPECT_EQ(reads_for(h, 1, kIova), 0u);
    EXPECT_EQ(reads_for(h, 1, kIova + kPage), 1u);
  });
}

TEST(SmmuInvalidation, LeafKeepsWalkCacheNonLeafDropsIt) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
    EXPECT_EQ(reads_for(h, 1, kIova), 0u);

    const uint64_t wc_inv0 = h.smmu.s1_walk_cache_stats().invalidated.value();
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, /*leaf=*/true));
    EXPECT_EQ(h.smmu.s1_walk_cache_stats().invalidated.value(), wc_inv0);
    const uint64_t wc_hits = h.smmu.s1_walk_cache_stats().hits.value();
    EXPECT_EQ(reads_for(h, 1, kIova), 1u);
    EXPECT_EQ(h.smmu.s1_walk_cache_stats().hits.value(), wc_hits + 1);

    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, /*leaf=*/false));
    EXPECT_EQ(h.smmu.s1_walk_cache_stats().invalidated.value() - wc_inv0, 3u);   // L1, L2, L3 table pointers
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
  });
}

TEST(SmmuInvalidation, LiveLeafIsChangedOnlyInPlaceWithItsInvalidation) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    const uint64_t old_pa = kPa, new_pa = kPa + 0x10000;
    h.memory.write64(old_pa, 0x01D);
    h.memory.write64(new_pa, 0x2E3);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, old_pa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
    uint64_t v = 0;
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 4u);
    EXPECT_EQ(v, 0x01Du);
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 0u);   // now an IOTLB hit
    // Mapping over a live leaf is refused (Linux: -EEXIST), never a silent replacement.
    const auto st = h.drv.map(d, kIova, new_pa, kPage, {}, kPage);
    EXPECT_FALSE(st.ok);
    EXPECT_NE(st.error.find("already mapped"), std::string::npos) << st.error;
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 0u);
    EXPECT_EQ(v, 0x01Du);
    // remap changes the leaf in place and invalidates it: the next DMA walks (1 read: the
    // walk cache holds the last-level table) to the new page.
    IOMMUSIM_ASSERT_OK(h.drv.remap(d, kIova, new_pa, kPage, {}));
    EXPECT_EQ(reads_for(h, 1, kIova, &v), 1u);
    EXPECT_EQ(v, 0x2E3u);
  });
}

TEST(SmmuInvalidation, StrictUnmapFaultsAfterwards) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
    IOMMUSIM_ASSERT_OK(h.drv.unmap(d, kIova, kPage));
    const DmaResult r = h.read(1, kIova);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::F_TRANSLATION);
  });
}

// The stage-1 leaf descriptor's PA for `iova` of the stream `sid` (linear stream table,
// CD 0, 4 KB granule, 4 levels), found by reading the STE, the CD and the tables.
uint64_t s1_leaf_address(Harness& h, uint32_t sid, uint64_t iova) {
  smmuv3::SteWords ste{};
  h.memory.read(h.drv.ste_address(sid), ste.data(), 64);
  std::string why;
  const auto e = smmuv3::decode_ste(ste, &why);
  EXPECT_TRUE(e.has_value()) << why;
  smmuv3::CdWords cd{};
  h.memory.read(e->s1_context_ptr, cd.data(), 64);
  const auto c = smmuv3::decode_cd(cd, &why);
  EXPECT_TRUE(c.has_value()) << why;
  uint64_t table = c->ttb0;
  for (unsigned shift : {39u, 30u, 21u}) table = h.memory.read64(table + ((iova >> shift) & 511) * 8) & 0xFFFFFFFFF000ull;
  return table + ((iova >> 12) & 511) * 8;
}

// Defect: nG was ignored. A global stage-1 entry (nG = 0) matches any ASID for
// TLBI_NH_VA and is kept by TLBI_NH_ASID (IHI 0070, 4.4.2 CMD_TLBI_NH_ASID and
// CMD_TLBI_NH_VA: "global entries ... are not invalidated" / "match any ASID").
TEST(SmmuInvalidation, GlobalEntriesSurviveNhAsidAndMatchAnyAsidForNhVa) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d1 = h.make_domain(DomainKind::Stage1), d2 = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d1, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.map(d2, kIova, kPa + kPage, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d1));
    IOMMUSIM_ASSERT_OK(h.drv.attach(2, std::nullopt, d2));
    // Make d1's leaf global: clear nG (bit 11). No entry is cached yet.
    const uint64_t leaf = s1_leaf_address(h, 1, kIova);
    const uint64_t pte = h.memory.read64(leaf);
    ASSERT_EQ(pte & ~0xFFFull & 0xFFFFFFFFF000ull, kPa);
    ASSERT_NE(pte & (1ull << 11), 0u) << "the driver maps stage 1 with nG = 1";
    h.memory.write64(leaf, pte & ~(1ull << 11));
    smmuv3::SteWords ste{};
    h.memory.read(h.drv.ste_address(1), ste.data(), 64);
    std::string why;
    const uint16_t vmid = smmuv3::decode_ste(ste, &why)->s2_vmid;
    const uint16_t a1 = h.drv.asid_of(d1), a2 = h.drv.asid_of(d2);
    ASSERT_NE(a1, a2);

    EXPECT_EQ(reads_for(h, 1, kIova), 4u);   // the global entry, cached under ASID a1
    EXPECT_EQ(reads_for(h, 2, kIova), 4u);   // d2's non-global entry
    // TLBI_NH_ASID(a1): the global entry stays.
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_asid(vmid, a1)}, "test"));
    EXPECT_EQ(reads_for(h, 1, kIova), 0u);
    // TLBI_NH_VA(ASID a2, kIova, Leaf=1): matches d2's entry and the global one.
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_va(vmid, a2, kIova, true)}, "test"));
    EXPECT_EQ(reads_for(h, 2, kIova), 1u);   // the leaf only: the walk caches stay (Leaf=1)
    // The global entry is gone too; ASID a1's walk-cache entries went with TLBI_NH_ASID
    // (table entries are never global), so its walk is the full four reads.
    EXPECT_EQ(reads_for(h, 1, kIova), 4u);
  });
}

}  // namespace
}  // namespace iommusim::test

// IovaAllocator against drivers/iommu/iova.c's rules, with placements and reuse orders
// worked out by hand from those rules (see each test's comments).
#include <gtest/gtest.h>

#include "platforms/driver/iova_allocator.h"

namespace iommusim::driver {
namespace {

// Frames 1..255 (limit_pfn 0xFF), two CPUs, magazines of 2 and a depot of 1 so the
// rcache's overflow paths are reached in a few steps.
IovaAllocatorConfig small(uint64_t limit_pfn = 0xFF) {
  IovaAllocatorConfig c;
  c.limit_pfn = limit_pfn;
  c.cpus = 2;
  c.mag_size = 2;
  c.max_global_mags = 1;
  return c;
}

uint64_t take(IovaAllocator& a, unsigned cpu, uint64_t pages) {
  const IovaAllocator::Result r = a.alloc(cpu, pages);
  EXPECT_NE(r.pfn, 0u) << r.error;
  return r.pfn;
}

TEST(IovaAllocator, DmaLengthRoundsBelowTheLargestCachedSize) {
  // iommu_dma_alloc_iova: lengths below 2^(6-1) = 32 pages round up to a power of two.
  EXPECT_EQ(IovaAllocator::dma_length(1), 1u);
  EXPECT_EQ(IovaAllocator::dma_length(3), 4u);
  EXPECT_EQ(IovaAllocator::dma_length(17), 32u);
  EXPECT_EQ(IovaAllocator::dma_length(32), 32u);
  EXPECT_EQ(IovaAllocator::dma_length(33), 33u);
}

TEST(IovaAllocator, TopDownSizeAlignedPlacement) {
  IovaAllocator a(small());
  // 1 page: (256 - 1) = 255.
  EXPECT_EQ(take(a, 0, 1), 255u);
  // 2 pages, 2-aligned: 254 collides with 255, so below 255: (255 - 2) & ~1 = 252.
  EXPECT_EQ(take(a, 0, 2), 252u);
  // 4 pages, 4-aligned: below 252: 248.
  EXPECT_EQ(take(a, 0, 4), 248u);
  // 3 pages as the DMA API asks for them (rounded to 4): below 248: 244.
  EXPECT_EQ(take(a, 0, IovaAllocator::dma_length(3)), 244u);
  // 1 page fills the gap at 254 (highest free frame), not below 244.
  EXPECT_EQ(take(a, 0, 1), 254u);
  // 40 pages (not rounded), aligned to 64: every gap above 244 is too small; below 244:
  // (244 - 40) & ~63 = 192.
  EXPECT_EQ(take(a, 0, 40), 192u);
  EXPECT_EQ(a.allocated_ranges(), 6u);
}

TEST(IovaAllocator, RcacheReuseOrderThroughPrevAndDepot) {
  IovaAllocator a(small());
  uint64_t p[7];
  for (auto& x : p) x = take(a, 0, 1);   // 255, 254, ..., 249
  EXPECT_EQ(p[0], 255u);
  EXPECT_EQ(p[6], 249u);
  // Frees on CPU 0 with magazines of 2 and a depot of 1:
  //   255, 254 -> loaded [255 254]
  //   253      -> loaded full, prev empty: swap; loaded [253], prev [255 254]
  //   252      -> loaded [253 252]
  //   251      -> both full: loaded to the depot; loaded [251]
  //   250      -> loaded [251 250]
  //   249      -> both full, depot full: loaded's 251, 250 go back to the tree; loaded [249]
  for (uint64_t x : p) EXPECT_TRUE(a.free(0, x, 1));
  // Gets: loaded 249; then prev swapped in (LIFO: 254, 255); then the depot's (252, 253);
  // then the tree's highest free frame, 251.
  for (uint64_t want : {249u, 254u, 255u, 252u, 253u}) {
    const IovaAllocator::Result r = a.alloc(0, 1);
    EXPECT_EQ(r.pfn, want);
    EXPECT_TRUE(r.from_cache);
  }
  const IovaAllocator::Result r = a.alloc(0, 1);
  EXPECT_EQ(r.pfn, 251u);
  EXPECT_FALSE(r.from_cache);
}

TEST(IovaAllocator, CachesArePerCpuAndPerSizeClass) {
  IovaAllocator a(small());
  const uint64_t one = take(a, 0, 1), two = take(a, 0, 2);   // 255, 252
  EXPECT_TRUE(a.free(1, one, 1));
  EXPECT_TRUE(a.free(1, two, 2));
  // CPU 0 misses its own cache: the tree's highest free frames (254; then 2 pages at 250).
  EXPECT_EQ(take(a, 0, 1), 254u);
  EXPECT_EQ(take(a, 0, 2), 250u);
  // CPU 1 gets each size class's own pfn back.
  EXPECT_EQ(take(a, 1, 2), 252u);
  EXPECT_EQ(take(a, 1, 1), 255u);
  // 64 pages: order 6, beyond the cached classes: freed straight to the tree.
  const uint64_t big = take(a, 0, 64);
  EXPECT_EQ(big, 128u);
  EXPECT_FALSE(a.free(0, big, 64));
}

TEST(IovaAllocator, ExhaustionIsAClearErrorAfterCachesReturnToTheTree) {
  IovaAllocator a(small(7));   // frames 1..7
  EXPECT_EQ(take(a, 0, 4), 4u);
  const IovaAllocator::Result full = a.alloc(0, 4);   // below 4: (4 - 4) = 0 < start
  EXPECT_EQ(full.pfn, 0u);
  EXPECT_NE(full.error.find("exhausted"), std::string::npos) << full.error;
  EXPECT_EQ(take(a, 0, 2), 2u);
  EXPECT_EQ(take(a, 0, 1), 1u);
  // Every frame is taken. Frame 1 goes into CPU 1's cache (still allocated in the tree);
  // CPU 0 misses its own cache, finds the tree full, returns every cached pfn to the tree
  // and gets frame 1 from the tree.
  a.free(1, 1, 1);
  const IovaAllocator::Result r = a.alloc(0, 1);
  EXPECT_EQ(r.pfn, 1u);
  EXPECT_FALSE(r.from_cache);   // from the tree, after the caches were flushed into it
}

TEST(IovaAllocator, RefusesARangeStillQueuedForItsFlush) {
  IovaAllocator a(small());
  const uint64_t pfn = take(a, 0, 1);
  a.mark_queued(pfn, 1);
  EXPECT_TRUE(a.queued(pfn, 1));
  // Forced misuse: freed while its flush is pending, so the rcache would hand it out.
  a.free(0, pfn, 1);
  const IovaAllocator::Result r = a.alloc(0, 1);
  EXPECT_EQ(r.pfn, 0u);
  EXPECT_NE(r.error.find("still queued for a flush"), std::string::npos) << r.error;
  EXPECT_EQ(a.refused(), 1u);
  // Overlap, not only equality: a 4-page request covering a queued page is refused too.
  a.mark_queued(249, 1);
  EXPECT_TRUE(a.queued(248, 4));
  EXPECT_FALSE(a.queued(244, 4));
  a.unmark_queued(pfn);
  a.unmark_queued(249);
  EXPECT_EQ(take(a, 0, 1), 254u);
  EXPECT_EQ(a.refused(), 1u);
}

}  // namespace
}  // namespace iommusim::driver

// The IOVA allocator of Linux's DMA API (drivers/iommu/iova.c, used by
// drivers/iommu/dma-iommu.c), in page frames (granule = the IOVA page).
//
// What it models
// - alloc_iova(size_aligned = true): top-down allocation below a limit, each range
//   aligned to its size rounded up to a power of two (fls_long(size - 1)).
// - The range caches: IOVA_RANGE_CACHE_MAX_SIZE = 6 size classes (1, 2, 4, 8, 16, 32
//   pages; order_base_2 of the length), each with per-CPU `loaded` and `prev` magazines of
//   IOVA_MAG_SIZE pfns and a global depot of at most MAX_GLOBAL_MAGS full magazines, with
//   __iova_rcache_insert / __iova_rcache_get's order: loaded, else swap with prev, else
//   the depot (insert: a full loaded magazine goes to the depot, or is freed back to the
//   tree when the depot is full; get: an empty loaded magazine is replaced by a depot
//   one). iova_magazine_pop takes the last pushed pfn (LIFO).
// - alloc_iova_fast: the caller's CPU cache first, then the tree; when the tree is
//   exhausted, every CPU's and the depot's cached pfns are returned to the tree and the
//   tree tried once more (free_cpu_cached_iovas, free_global_cached_iovas).
// - iommu_dma_alloc_iova's rounding: lengths below 2^(IOVA_RANGE_CACHE_MAX_SIZE - 1)
//   pages round up to a power of two, so a cached range always fits its class.
// - The flush-queue check this simulator adds (Linux has none): ranges waiting in a
//   lazy flush queue are registered (mark_queued) until freed; an allocation that would
//   hand out any of their pages is refused, counted and reported, never aborted.
//
// What it does not model
// - The rbtree's cached_node / cached32_node search start and max32_alloc_size: the
//   result here is always the highest fitting range below the limit (what Linux returns
//   when the search starts from the top).
// - The 32-bit SAC attempt for PCI devices (one limit serves), reserved regions (PCI
//   windows, MSI), the depot trimming of later kernels (IOVA_DEPOT_DELAY) and CPU
//   hot-unplug.
// Magazine and depot sizes are parameters (defaults: IOVA_MAG_SIZE 127 and
// MAX_GLOBAL_MAGS 32, the iova.c after the 1 KiB magazine change and before the
// unbounded depot list).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/common/stats.h"

namespace iommusim::driver {

struct IovaAllocatorConfig {
  uint64_t granule = 4096;            // bytes per IOVA page frame
  uint64_t start_pfn = 1;             // lowest allocatable frame (Linux: base_pfn = 1)
  uint64_t limit_pfn = (1ull << 32) / 4096 - 1;   // highest allocatable frame (dma_limit >> shift)
  unsigned cpus = 1;
  unsigned mag_size = 127;            // IOVA_MAG_SIZE
  unsigned max_global_mags = 32;      // MAX_GLOBAL_MAGS
};
std::string validate(const IovaAllocatorConfig& c);

class IovaAllocator {
 public:
  static constexpr unsigned kRangeCacheMaxSize = 6;   // IOVA_RANGE_CACHE_MAX_SIZE

  explicit IovaAllocator(const IovaAllocatorConfig& c);

  // iommu_dma_alloc_iova's length: below 32 pages, rounded up to a power of two.
  static uint64_t dma_length(uint64_t pages);

  struct Result {
    uint64_t pfn = 0;           // 0: failed (the space is exhausted, or the check refused)
    bool from_cache = false;    // served by an rcache magazine (the fast path)
    std::string error;
  };
  // alloc_iova_fast on `cpu` for `pages` frames (already rounded by the caller).
  Result alloc(unsigned cpu, uint64_t pages);
  // free_iova_fast: into `cpu`'s cache for its size class, else back to the tree.
  // Returns true when the cache took it.
  bool free(unsigned cpu, uint64_t pfn, uint64_t pages);

  // The flush-queue check: [pfn, pfn+pages) waits for a flush from now until unmarked.
  void mark_queued(uint64_t pfn, uint64_t pages);
  void unmark_queued(uint64_t pfn);
  bool queued(uint64_t pfn, uint64_t pages) const;

  // Frames handed out and not freed to the tree (cached ones count as allocated, as in
  // Linux: an rcache pfn stays in the rbtree).
  uint64_t allocated_ranges() const { return tree_.size(); }
  uint64_t refused() const { return refused_.value(); }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Magazine { std::vector<uint64_t> pfns; };   // capacity mag_size, never reallocated
  struct CpuCache { Magazine loaded, prev; };
  struct RangeCache {
    std::vector<CpuCache> cpus;
    std::vector<Magazine> depot;   // full magazines, at most max_global_mags
  };

  uint64_t tree_alloc(uint64_t pages);   // 0: no room
  void tree_free(uint64_t pfn);
  bool cache_insert(unsigned cpu, uint64_t pfn, uint64_t pages);
  uint64_t cache_get(unsigned cpu, uint64_t pages);
  void flush_caches();   // every CPU's and the depot's pfns back to the tree
  void empty_magazine(Magazine& m);
  static int size_class(uint64_t pages);   // order_base_2, or -1 when not cached

  IovaAllocatorConfig c_;
  std::map<uint64_t, uint64_t> tree_;     // allocated ranges: pfn_lo -> pages
  std::map<uint64_t, uint64_t> queued_;   // ranges waiting for a flush: pfn_lo -> pages
  std::vector<RangeCache> caches_;
  common::Counter cache_hits_, tree_allocs_, cache_frees_, tree_frees_, cache_flushes_, exhausted_, refused_;
};

}  // namespace iommusim::driver

#include "platforms/driver/iova_allocator.h"

#include <utility>

#include "models/common/bits.h"

namespace iommusim::driver {

std::string validate(const IovaAllocatorConfig& c) {
  if (c.granule < 4096 || (c.granule & (c.granule - 1))) return "granule must be a power of two of at least 4096";
  if (c.start_pfn == 0) return "start_pfn must be at least 1 (IOVA 0 is never handed out)";
  if (c.limit_pfn < c.start_pfn) return "the IOVA limit lies below the start";
  if (c.cpus == 0) return "cpus must be at least 1";
  if (c.mag_size == 0) return "mag_size must be at least 1";
  return {};
}

namespace {
unsigned ceil_log2(uint64_t n) {   // order_base_2
  unsigned l = 0;
  while ((uint64_t(1) << l) < n) ++l;
  return l;
}
}  // namespace

IovaAllocator::IovaAllocator(const IovaAllocatorConfig& c) : c_(c), caches_(kRangeCacheMaxSize) {
  for (RangeCache& rc : caches_) {
    rc.cpus.resize(c.cpus);
    for (CpuCache& cc : rc.cpus) {
      cc.loaded.pfns.reserve(c.mag_size);
      cc.prev.pfns.reserve(c.mag_size);
    }
  }
}

uint64_t IovaAllocator::dma_length(uint64_t pages) {
  if (pages < (uint64_t(1) << (kRangeCacheMaxSize - 1))) return uint64_t(1) << ceil_log2(pages);
  return pages;
}

int IovaAllocator::size_class(uint64_t pages) {
  const unsigned l = ceil_log2(pages);
  return l < kRangeCacheMaxSize ? int(l) : -1;
}

uint64_t IovaAllocator::tree_alloc(uint64_t pages) {
  // __alloc_and_insert_iova_range with size_aligned: from the limit down, the first gap
  // that holds a size-aligned range.
  const uint64_t align_mask = ~((uint64_t(1) << ceil_log2(pages)) - 1);
  uint64_t high = c_.limit_pfn + 1;   // exclusive
  auto it = tree_.lower_bound(high);
  for (;;) {
    if (high < pages) return 0;
    const uint64_t pfn = (high - pages) & align_mask;
    if (pfn < c_.start_pfn) return 0;
    if (it == tree_.begin()) { tree_.emplace(pfn, pages); return pfn; }
    auto below = std::prev(it);
    if (below->first + below->second - 1 < pfn) { tree_.emplace(pfn, pages); return pfn; }
    high = std::min(high, below->first);
    it = below;
  }
}

void IovaAllocator::tree_free(uint64_t pfn) {
  tree_.erase(pfn);
  tree_frees_.inc();
}

void IovaAllocator::empty_magazine(Magazine& m) {
  for (uint64_t pfn : m.pfns) tree_free(pfn);
  m.pfns.clear();
}

bool IovaAllocator::cache_insert(unsigned cpu, uint64_t pfn, uint64_t pages) {
  const int cls = size_class(pages);
  if (cls < 0) return false;
  RangeCache& rc = caches_[cls];
  CpuCache& cc = rc.cpus[cpu];
  if (cc.loaded.pfns.size() >= c_.mag_size) {
    if (cc.prev.pfns.size() < c_.mag_size) {
      std::swap(cc.loaded, cc.prev);
    } else {
      // A full loaded magazine goes to the depot, or back to the tree when the depot is full.
      if (rc.depot.size() < c_.max_global_mags) rc.depot.push_back(std::move(cc.loaded));
      else empty_magazine(cc.loaded);
      cc.loaded = Magazine{};
      cc.loaded.pfns.reserve(c_.mag_size);
    }
  }
  cc.loaded.pfns.push_back(pfn);
  return true;
}

uint64_t IovaAllocator::cache_get(unsigned cpu, uint64_t pages) {
  const int cls = size_class(pages);
  if (cls < 0) return 0;
  RangeCache& rc = caches_[cls];
  CpuCache& cc = rc.cpus[cpu];
  if (cc.loaded.pfns.empty()) {
    if (!cc.prev.pfns.empty()) {
      std::swap(cc.loaded, cc.prev);
    } else if (!rc.depot.empty()) {
      cc.loaded = std::move(rc.depot.back());
      rc.depot.pop_back();
    } else {
      return 0;
    }
  }
  const uint64_t pfn = cc.loaded.pfns.back();   // iova_magazine_pop: the last pushed
  cc.loaded.pfns.pop_back();
  return pfn;
}

void IovaAllocator::flush_caches() {
  cache_flushes_.inc();
  for (RangeCache& rc : caches_) {
    for (CpuCache& cc : rc.cpus) {
      empty_magazine(cc.loaded);
      empty_magazine(cc.prev);
    }
    for (Magazine& m : rc.depot) empty_magazine(m);
    rc.depot.clear();
  }
}

IovaAllocator::Result IovaAllocator::alloc(unsigned cpu, uint64_t pages) {
  Result r;
  if (cpu >= c_.cpus || pages == 0) {
    r.error = "IOVA allocation of " + std::to_string(pages) + " pages on CPU " + std::to_string(cpu) + ": bad request";
    return r;
  }
  r.pfn = cache_get(cpu, pages);
  r.from_cache = r.pfn != 0;
  if (!r.pfn) {
    r.pfn = tree_alloc(pages);
    if (!r.pfn) {
      // alloc_iova_fast's retry: return every cached pfn to the tree, then try once more.
      flush_caches();
      r.pfn = tree_alloc(pages);
    }
    if (!r.pfn) {
      exhausted_.inc();
      r.error = "IOVA space exhausted: no " + std::to_string(pages) + "-page range free below " +
                common::hex((c_.limit_pfn + 1) * c_.granule) + " (" + std::to_string(tree_.size()) + " ranges allocated)";
      return r;
    }
    tree_allocs_.inc();
  } else {
    cache_hits_.inc();
  }
  if (queued(r.pfn, pages)) {
    refused_.inc();
    r.error = "IOVA " + common::hex(r.pfn * c_.granule) + " (" + std::to_string(pages) +
              " pages) is still queued for a flush: refusing to hand it out";
    r.pfn = 0;
  }
  return r;
}

bool IovaAllocator::free(unsigned cpu, uint64_t pfn, uint64_t pages) {
  if (cpu < c_.cpus && cache_insert(cpu, pfn, pages)) {
    cache_frees_.inc();
    return true;
  }
  tree_free(pfn);
  return false;
}

void IovaAllocator::mark_queued(uint64_t pfn, uint64_t pages) { queued_[pfn] = pages; }
void IovaAllocator::unmark_queued(uint64_t pfn) { queued_.erase(pfn); }

bool IovaAllocator::queued(uint64_t pfn, uint64_t pages) const {
  auto it = queued_.lower_bound(pfn + pages);   // first queued range starting at or after our end
  if (it == queued_.begin()) return false;
  --it;
  return it->first + it->second > pfn;
}

void IovaAllocator::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".rcache_hits", cache_hits_, "count", "IOVA allocations served by a per-CPU or depot magazine");
  reg.add(p + ".tree_allocs", tree_allocs_, "count", "IOVA allocations from the range tree (rcache miss)");
  reg.add(p + ".rcache_frees", cache_frees_, "count", "IOVA frees taken by a per-CPU magazine");
  reg.add(p + ".tree_frees", tree_frees_, "count", "IOVA ranges returned to the range tree");
  reg.add(p + ".rcache_flushes", cache_flushes_, "count", "times every cached IOVA went back to the tree (space ran out)");
  reg.add(p + ".exhausted", exhausted_, "count", "IOVA allocations that failed: no free range below the limit");
  reg.add(p + ".refused_queued", refused_, "count", "IOVA allocations refused: the range was still waiting for its flush");
}

}  // namespace iommusim::driver

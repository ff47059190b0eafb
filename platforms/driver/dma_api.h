// Linux's DMA API over one IOMMU domain (drivers/iommu/dma-iommu.c): dma_map / dma_unmap
// per buffer, with IOVAs from the IovaAllocator, in strict or lazy mode (Linux's
// iommu.strict=1 / 0, IOMMU_DOMAIN_DMA / IOMMU_DOMAIN_DMA_FQ). Calls run in the calling
// CPU's SC_THREAD; several CPUs may call at once.
//
// What it models
// - map (iommu_dma_map_page -> __iommu_dma_map): iommu_dma_alloc_iova (length rounded as
//   IovaAllocator::dma_length says) on the calling CPU's rcache, then iommu_map of the
//   buffer's pages; the returned address keeps the buffer's offset in its first page.
// - strict unmap (__iommu_dma_unmap without a queued gather): the driver's unmap (PTE
//   clear, range invalidation, sync), then free_iova_fast on the calling CPU.
// - lazy unmap: PTE clear only (DriverBase::unmap_deferred), then queue_iova on the
//   calling CPU's flush queue, exactly as Linux:
//     fq_ring_free (free what finished flushes cover), then if fq_full — tail + 1 == head
//     modulo IOVA_DEFAULT_FQ_SIZE, i.e. the ring holds fq_size - 1 entries — a flush and
//     another fq_ring_free, then the entry is added with counter = fq_flush_start_cnt.
//   So with 256 slots the flush comes on the 256th queued unmap, before it is added: the
//   flush covers the 255 entries already queued, and the 256th waits for the next one.
//   The first queue_iova with the timer off arms it for IOVA_DEFAULT_FQ_TIMEOUT (10 ms);
//   later ones do not push it back. When it fires (fq_flush_timeout): timer off, a
//   flush, fq_ring_free on every CPU's queue.
//   A flush (fq_flush_iotlb) is fq_flush_start_cnt++, one domain-wide invalidation with
//   its sync (the backend's invalidate_domain, Linux's flush_iotlb_all), then
//   fq_flush_finish_cnt++. An entry is freed once its counter < fq_flush_finish_cnt.
// - The oracle: a lazy unmap's change completes when a flush finishes that makes its
//   entry freeable (that flush's barrier time: never before the covering flush, since
//   counter + 1 finished flushes include one that started after the entry was queued).
//   The allocator refuses any range still between queue_iova and its fq_ring_free.
// - CPU time: the allocator's fast (rcache) and slow (rbtree) paths and queue_iova's
//   bookkeeping cost configurable cycles (DmaApiConfig); map/unmap's table edits and
//   invalidations cost what the driver charges.
//
// What it does not model
// - Contention on the rcache, rbtree and flush-queue spinlocks (their operations are
//   atomic here); the timer's fq_ring_free does not wait for a CPU that holds its queue's
//   lock during a flush. The single-queue option (IOVA_SINGLE_FQ_SIZE), the merging of
//   scatter-gather segments, swiotlb bouncing, DMA direction beyond read/write rights, and cache maintenance.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/correctness_oracle.h"
#include "models/common/stats.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/iova_allocator.h"

namespace iommusim::driver {

struct DmaApiConfig {
  bool strict = false;              // driver.dma_mode: strict | lazy
  unsigned cpus = 4;
  unsigned fq_size = 256;           // IOVA_DEFAULT_FQ_SIZE
  double fq_timeout_us = 10000.0;   // IOVA_DEFAULT_FQ_TIMEOUT (10 ms)
  uint64_t iova_limit_bytes = 1ull << 32;   // the device's DMA mask (32-bit SAC space)
  double cpu_mhz = 2000.0;
  unsigned iova_cache_cycles = 100;   // rcache hit or insert: per-CPU lock, magazine push/pop
  unsigned iova_tree_cycles = 1000;   // rbtree search and insert/erase under iova_rbtree_lock
  unsigned fq_cycles = 50;            // queue_iova: lock, ring add, timer check
};
std::string validate(const DmaApiConfig& c);

class DmaApi {
 public:
  // `drv` maps into `domain` (attached already) with `page_bytes` leaves; that size is
  // also the IOVA granule.
  DmaApi(const DmaApiConfig& c, DriverBase& drv, DomainId domain, uint64_t page_bytes = 4096);
  ~DmaApi();
  // A platform registers the stats before the driver's init, so the domain comes later.
  void set_domain(DomainId domain) { domain_ = domain; }

  // dma_map_page: maps [pa, pa + bytes) for `cpu`; *dma gets the device address.
  Status map(unsigned cpu, uint64_t pa, uint64_t bytes, Prot prot, uint64_t* dma);
  // dma_map_sg (iommu_dma_map_sg): one IOVA range for the whole list, the segments mapped
  // back to back in it, *dma its start. Every segment but the last is whole pages (PA and
  // length page aligned). Each segment is its own iommu_map here (Linux maps the list in
  // one iommu_map_sg call, so the driver's per-operation overhead is charged per segment).
  // dma_unmap_sg is unmap() of *dma with the total length.
  struct Segment { uint64_t pa = 0, bytes = 0; };
  Status map_sg(unsigned cpu, const Segment* segments, size_t count, Prot prot, uint64_t* dma);
  // dma_unmap_page: what map returned, with the same length.
  Status unmap(unsigned cpu, uint64_t dma, uint64_t bytes);

  IovaAllocator& iovas() { return iovas_; }
  uint64_t maps() const { return maps_.value(); }
  uint64_t unmaps() const { return unmaps_.value(); }
  uint64_t flushes_full() const { return flushes_full_.value(); }
  uint64_t flushes_timer() const { return flushes_timer_.value(); }
  // Invalidation operations the DMA API issued: one per strict unmap, one per flush.
  uint64_t invalidations() const { return invalidations_.value(); }
  // Entries waiting in `cpu`'s flush queue.
  unsigned queued(unsigned cpu) const;
  // A failure of the timer's flush (it has no caller to return it to); empty when none.
  const std::string& timer_error() const { return timer_error_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Entry { uint64_t pfn = 0, pages = 0, counter = 0; common::CorrectnessOracle::ChangeId change = 0; bool completed = false; };
  struct FlushQueue { std::vector<Entry> entries; unsigned head = 0, tail = 0; };
  enum class Cause { Full, Timer };

  void charge(uint64_t cycles);
  Status queue_iova(unsigned cpu, uint64_t pfn, uint64_t pages, common::CorrectnessOracle::ChangeId change);
  Status flush(Cause why);
  // Frees what finished flushes cover, into `free_cpu`'s rcache.
  void ring_free(FlushQueue& fq, unsigned free_cpu);
  void timer_thread();

  DmaApiConfig c_;
  DriverBase& drv_;
  DomainId domain_;
  uint64_t page_bytes_;
  unsigned page_shift_;
  IovaAllocator iovas_;
  std::map<uint64_t, uint64_t> live_;   // mapped: first pfn -> pages (as mapped, unrounded)
  std::vector<FlushQueue> fqs_;
  uint64_t flush_start_cnt_ = 0, flush_finish_cnt_ = 0;
  // Finished flushes (their number in start order, their barrier's hardware time), the
  // latest kFinishedKept: an entry queued when `counter` flushes had started is covered by
  // the first to finish of those numbered above it, which is not always the flush whose
  // thread frees it (flushes on several CPUs finish out of order).
  struct FinishedFlush { uint64_t number = 0, barrier_ps = 0; };
  static constexpr size_t kFinishedKept = 256;
  std::deque<FinishedFlush> finished_;
  uint64_t covering_barrier_ps(uint64_t counter) const;
  bool timer_on_ = false;
  unsigned timer_cpu_ = 0;   // the CPU that armed the timer (its softirq frees into that rcache)
  sc_core::sc_event timer_;
  std::string timer_error_;
  common::Counter maps_, unmaps_, flushes_full_, flushes_timer_, invalidations_, failures_;
  common::Histogram fq_depth_at_flush_;
};

}  // namespace iommusim::driver

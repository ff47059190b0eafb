// sc_spawn: the flush-queue timer.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "platforms/driver/dma_api.h"

#include <algorithm>

#include "models/common/bits.h"

namespace iommusim::driver {

std::string validate(const DmaApiConfig& c) {
  if (c.cpus == 0 || c.cpus > 64) return "cpus must be 1..64";
  if (c.fq_size < 2 || (c.fq_size & (c.fq_size - 1))) return "fq_size must be a power of two of at least 2";
  if (c.fq_timeout_us <= 0) return "fq_timeout_us must be positive";
  if (c.cpu_mhz <= 0) return "cpu_mhz must be positive";
  if (c.iova_limit_bytes < (1ull << 20)) return "iova_limit_bytes must be at least 1 MiB";
  return {};
}

namespace {
IovaAllocatorConfig allocator_config(const DmaApiConfig& c, uint64_t page_bytes) {
  IovaAllocatorConfig a;
  a.granule = page_bytes;
  a.limit_pfn = c.iova_limit_bytes / page_bytes - 1;
  a.cpus = c.cpus;
  return a;
}
unsigned log2_of(uint64_t v) {
  unsigned s = 0;
  while ((uint64_t(1) << s) < v) ++s;
  return s;
}
}  // namespace

DmaApi::DmaApi(const DmaApiConfig& c, DriverBase& drv, DomainId domain, uint64_t page_bytes)
    : c_(c), drv_(drv), domain_(domain), page_bytes_(page_bytes), page_shift_(log2_of(page_bytes)),
      iovas_(allocator_config(c, page_bytes)), fqs_(c.cpus) {
  for (FlushQueue& fq : fqs_) fq.entries.resize(c.fq_size);
  if (!c.strict) {
    sc_core::sc_spawn_options opts;
    sc_core::sc_spawn([this] { timer_thread(); }, sc_core::sc_gen_unique_name("dma_fq_timer"), &opts);
  }
}

DmaApi::~DmaApi() = default;

void DmaApi::charge(uint64_t cycles) {
  if (cycles) sc_core::wait(sc_core::sc_time(double(cycles) * 1e6 / c_.cpu_mhz, sc_core::SC_PS));
}

unsigned DmaApi::queued(unsigned cpu) const {
  const FlushQueue& fq = fqs_.at(cpu);
  return (fq.tail - fq.head) & (c_.fq_size - 1);
}

Status DmaApi::map(unsigned cpu, uint64_t pa, uint64_t bytes, Prot prot, uint64_t* dma) {
  if (cpu >= c_.cpus) return Status::fail("dma_map: no CPU " + std::to_string(cpu));
  if (bytes == 0) return Status::fail("dma_map: empty buffer");
  const uint64_t offset = pa & (page_bytes_ - 1);
  const uint64_t pages = (offset + bytes + page_bytes_ - 1) >> page_shift_;
  const IovaAllocator::Result r = iovas_.alloc(cpu, IovaAllocator::dma_length(pages));
  charge(r.from_cache ? c_.iova_cache_cycles : c_.iova_tree_cycles);
  if (!r.pfn) { failures_.inc(); return Status::fail("dma_map: " + r.error); }
  const uint64_t iova = r.pfn << page_shift_;
  if (Status s = drv_.map(domain_, iova, pa - offset, pages << page_shift_, prot, page_bytes_); !s.ok) {
    iovas_.free(cpu, r.pfn, pages);
    failures_.inc();
    return Status::fail("dma_map: iommu_map at " + common::hex(iova) + ": " + s.error);
  }
  live_[r.pfn] = pages;
  maps_.inc();
  *dma = iova + offset;
  return {};
}

Status DmaApi::map_sg(unsigned cpu, const Segment* seg, size_t count, Prot prot, uint64_t* dma) {
  if (cpu >= c_.cpus) return Status::fail("dma_map_sg: no CPU " + std::to_string(cpu));
  if (count == 0) return Status::fail("dma_map_sg: empty list");
  uint64_t pages = 0;
  for (size_t i = 0; i < count; ++i) {
    const bool last = i + 1 == count;
    if (seg[i].bytes == 0 || seg[i].pa % page_bytes_ || (!last && seg[i].bytes % page_bytes_))
      return Status::fail("dma_map_sg: segment " + std::to_string(i) + " is not whole pages");
    pages += (seg[i].bytes + page_bytes_ - 1) >> page_shift_;
  }
  const IovaAllocator::Result r = iovas_.alloc(cpu, IovaAllocator::dma_length(pages));
  charge(r.from_cache ? c_.iova_cache_cycles : c_.iova_tree_cycles);
  if (!r.pfn) { failures_.inc(); return Status::fail("dma_map_sg: " + r.error); }
  const uint64_t iova = r.pfn << page_shift_;
  uint64_t off = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t len = (seg[i].bytes + page_bytes_ - 1) >> page_shift_ << page_shift_;
    if (Status s = drv_.map(domain_, iova + off, seg[i].pa, len, prot, page_bytes_); !s.ok) {
      failures_.inc();   // what is mapped stays so: the run fails here
      return Status::fail("dma_map_sg: iommu_map at " + common::hex(iova + off) + ": " + s.error);
    }
    off += len;
  }
  live_[r.pfn] = pages;
  maps_.inc();
  *dma = iova;
  return {};
}

Status DmaApi::unmap(unsigned cpu, uint64_t dma, uint64_t bytes) {
  if (cpu >= c_.cpus) return Status::fail("dma_unmap: no CPU " + std::to_string(cpu));
  const uint64_t offset = dma & (page_bytes_ - 1);
  const uint64_t pfn = dma >> page_shift_;
  const uint64_t pages = (offset + bytes + page_bytes_ - 1) >> page_shift_;
  auto it = live_.find(pfn);
  if (it == live_.end() || it->second != pages)
    return Status::fail("dma_unmap: " + common::hex(dma) + " (" + std::to_string(bytes) +
                        " bytes) is not a mapping dma_map returned");
  live_.erase(it);
  unmaps_.inc();
  const uint64_t iova = pfn << page_shift_, size = pages << page_shift_;
  if (c_.strict) {
    // iommu_unmap + iommu_iotlb_sync, then free_iova_fast.
    invalidations_.inc();
    if (Status s = drv_.unmap(domain_, iova, size); !s.ok) return s;
    const bool cached = iovas_.free(cpu, pfn, pages);
    charge(cached ? c_.iova_cache_cycles : c_.iova_tree_cycles);
    return {};
  }
  common::CorrectnessOracle::ChangeId change = 0;
  if (Status s = drv_.unmap_deferred(domain_, iova, size, &change); !s.ok) return s;
  return queue_iova(cpu, pfn, pages, change);
}

Status DmaApi::queue_iova(unsigned cpu, uint64_t pfn, uint64_t pages, common::CorrectnessOracle::ChangeId change) {
  FlushQueue& fq = fqs_[cpu];
  const unsigned mask = c_.fq_size - 1;
  charge(c_.fq_cycles);
  ring_free(fq, cpu);
  if (((fq.tail + 1) & mask) == fq.head) {   // fq_full
    if (Status s = flush(Cause::Full); !s.ok) return s;
    ring_free(fq, cpu);
  }
  Entry& e = fq.entries[fq.tail];
  e = Entry{pfn, pages, flush_start_cnt_, change, false};
  fq.tail = (fq.tail + 1) & mask;
  iovas_.mark_queued(pfn, pages);
  if (!timer_on_) {
    timer_on_ = true;
    timer_cpu_ = cpu;
    timer_.notify(sc_core::sc_time(c_.fq_timeout_us, sc_core::SC_US));
  }
  return {};
}

Status DmaApi::flush(Cause why) {
  const unsigned mask = c_.fq_size - 1;
  uint64_t depth = 0;
  for (const FlushQueue& fq : fqs_) depth += (fq.tail - fq.head) & mask;
  fq_depth_at_flush_.record(depth);
  const uint64_t number = ++flush_start_cnt_;
  invalidations_.inc();
  (why == Cause::Full ? flushes_full_ : flushes_timer_).inc();
  if (Status s = drv_.invalidate_domain(domain_); !s.ok) return s;
  finished_.push_back({number, drv_.last_barrier_ps()});
  if (finished_.size() > kFinishedKept) finished_.pop_front();
  ++flush_finish_cnt_;
  // Every queued entry this flush makes freeable has its change covered now (see dma_api.h).
  for (FlushQueue& fq : fqs_)
    for (unsigned i = fq.head; i != fq.tail; i = (i + 1) & mask) {
      Entry& e = fq.entries[i];
      if (e.counter >= flush_finish_cnt_) break;
      if (!e.completed) {
        drv_.complete_deferred(e.change, covering_barrier_ps(e.counter));
        e.completed = true;
      }
    }
  return {};
}

uint64_t DmaApi::covering_barrier_ps(uint64_t counter) const {
  // finish_cnt > counter: of the flushes finished, at least one started after the entry
  // was queued (numbered above counter). The earliest such barrier covers it.
  uint64_t t = drv_.last_barrier_ps();
  for (const FinishedFlush& f : finished_)
    if (f.number > counter) t = std::min(t, f.barrier_ps);
  return t;
}

void DmaApi::ring_free(FlushQueue& fq, unsigned free_cpu) {
  const unsigned mask = c_.fq_size - 1;
  uint64_t cycles = 0;
  while (fq.head != fq.tail) {
    const Entry& e = fq.entries[fq.head];
    if (e.counter >= flush_finish_cnt_) break;
    iovas_.unmark_queued(e.pfn);
    cycles += iovas_.free(free_cpu, e.pfn, e.pages) ? c_.iova_cache_cycles : c_.iova_tree_cycles;
    fq.head = (fq.head + 1) & mask;
  }
  charge(cycles);
}

void DmaApi::timer_thread() {
  for (;;) {
    sc_core::wait(timer_);
    // fq_flush_timeout: timer off first, so unmaps during the flush arm it again.
    timer_on_ = false;
    if (Status s = flush(Cause::Timer); !s.ok) {
      if (timer_error_.empty()) timer_error_ = "flush-queue timer: " + s.error;
      continue;
    }
    for (FlushQueue& fq : fqs_) ring_free(fq, timer_cpu_);
  }
}

void DmaApi::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".maps", maps_, "count", "dma_map calls that mapped a buffer");
  reg.add(p + ".unmaps", unmaps_, "count", "dma_unmap calls");
  reg.add(p + ".flushes_full", flushes_full_, "count", "lazy: flushes because a CPU's flush queue was full");
  reg.add(p + ".flushes_timer", flushes_timer_, "count", "lazy: flushes by the 10 ms flush-queue timer");
  reg.add(p + ".invalidations", invalidations_, "count", "invalidations issued: one per strict unmap, one per lazy flush");
  reg.add(p + ".failures", failures_, "count", "dma_map calls that failed (no IOVA space, or the map failed)");
  reg.add(p + ".queued_at_flush", fq_depth_at_flush_, "entries", "lazy: entries in all flush queues when a flush began");
  iovas_.register_stats(reg, p + ".iova");
}

}  // namespace iommusim::driver

// sc_spawn: one thread per CPU.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "platforms/dma_api_workload.h"

namespace iommusim::platforms {

using driver::DmaApiConfig;
using driver::Status;

static Section<DmaApiConfig> api_keys() {
  using D = DmaApiConfig;
  return Section<D>("Linux's DMA API as the driver (workload.mode = dma_api; platforms/driver/dma_api.h, docs/dma_api.md). "
                    "Cycle costs are orders of magnitude of the kernel paths, not measurements.")
      .choice("mode", &D::strict, false, {{"strict", true}, {"lazy", false}},
              "strict: every unmap invalidates and syncs (iommu.strict=1); lazy: per-CPU flush queues (iommu.strict=0)")
      .integer("cpus", &D::cpus, 4, 1, 64, "CPUs", "driver threads mapping and unmapping at once")
      .integer("fq_size", &D::fq_size, 256, 2, 1u << 20, "entries",
               "slots per CPU flush queue, a power of two (IOVA_DEFAULT_FQ_SIZE); a full ring holds one fewer")
      .number("fq_timeout_us", &D::fq_timeout_us, 10000, 1, 1e9, "us", "flush-queue timer (IOVA_DEFAULT_FQ_TIMEOUT: 10 ms)")
      .integer("iova_limit_bytes", &D::iova_limit_bytes, 1ull << 32, 1ull << 20, 1ull << 48, "bytes",
               "IOVAs are allocated top-down below this (the 32-bit SAC space of a PCI device)")
      .integer("iova_cache_cycles", &D::iova_cache_cycles, 100, 0, 1000000, "cycles",
               "IOVA alloc or free through a per-CPU rcache magazine (lock, push/pop)")
      .integer("iova_tree_cycles", &D::iova_tree_cycles, 1000, 0, 10000000, "cycles",
               "IOVA alloc or free in the range tree (rbtree walk under its lock)")
      .integer("fq_cycles", &D::fq_cycles, 50, 0, 1000000, "cycles", "queue_iova's bookkeeping per lazy unmap")
      .check("", [](const D& d) { return driver::validate(d); });
}

Section<DmaApiSection> dma_api_keys() {
  using D = DmaApiSection;
  return Section<D>("Linux's DMA API as the driver (workload.mode = dma_api; platforms/driver/dma_api.h, docs/dma_api.md). "
                    "Cycle costs are orders of magnitude of the kernel paths, not measurements.")
      .embed(&D::api, api_keys())
      .integer("buffer_bytes", &D::buffer_bytes, 64 << 10, 4096, 1ull << 30, "bytes",
               "one DMA buffer (one dma_map); the window is split into buffers of this size, an equal run per CPU")
      .multiple_of(4096);
}

DmaApiWorkload::DmaApiWorkload(const DmaApiWorkloadConfig& c, driver::DriverBase& drv)
    : c_(c), drv_(drv), api_(std::make_unique<driver::DmaApi>(c.api, drv, 0, c.page_bytes)),
      slots_per_cpu_(unsigned(c.window_bytes / c.api.cpus / c.buffer_bytes)),
      slots_(size_t(slots_per_cpu_) * c.api.cpus), cpu_idle_(c.api.cpus), next_slot_(c.api.cpus, 0) {
  if (slots_per_cpu_ == 0) throw std::invalid_argument("dma_api: the window holds no buffer per CPU");
}

uint64_t DmaApiWorkload::buffer_pa(unsigned slot, unsigned region) const {
  return c_.buffer_pa + region * c_.window_bytes + uint64_t(slot) * c_.buffer_bytes;
}

Status DmaApiWorkload::setup(uint32_t rid, std::optional<uint32_t> pasid) {
  std::string why;
  const auto d = drv_.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
  if (!d) return Status::fail(why);
  if (Status s = drv_.attach(rid, pasid, *d); !s.ok) return s;
  api_->set_domain(*d);
  for (unsigned k = 0; k < slots_.size(); ++k) {
    Buffer& b = slots_[k].current;
    if (Status s = api_->map(k / slots_per_cpu_, buffer_pa(k, 0), c_.buffer_bytes, {}, &b.iova); !s.ok) return s;
    by_iova_[b.iova] = k;
  }
  return {};
}

uint64_t DmaApiWorkload::translate(uint64_t window_addr) {
  // A window that does not divide into whole slots wraps its tail onto the first ones.
  const uint64_t off = (window_addr - c_.window_base) % (c_.buffer_bytes * slots_.size());
  Buffer& b = slots_[off / c_.buffer_bytes].current;
  ++b.dmas;
  return b.iova + off % c_.buffer_bytes;
}

void DmaApiWorkload::dma_done(uint64_t iova) {
  auto it = by_iova_.upper_bound(iova);
  if (it == by_iova_.begin()) return;
  --it;
  if (iova - it->first >= c_.buffer_bytes) return;
  Slot& slot = slots_[it->second];
  Buffer& b = slot.current.iova == it->first ? slot.current : slot.retiring;
  if (b.dmas && --b.dmas == 0) cpu_idle_[it->second / slots_per_cpu_].notify(sc_core::SC_ZERO_TIME);
}

void DmaApiWorkload::start() {
  for (unsigned cpu = 0; cpu < c_.api.cpus; ++cpu) {
    ++running_cpus_;
    sc_core::sc_spawn(
        [this, cpu] {
          cpu_thread(cpu);
          --running_cpus_;
          cpu_left_.notify(sc_core::SC_ZERO_TIME);
        },
        sc_core::sc_gen_unique_name("dma_api_cpu"));
  }
}

void DmaApiWorkload::stop() {
  stopped_ = true;
  stop_.notify(sc_core::SC_ZERO_TIME);
}

void DmaApiWorkload::join() {
  while (running_cpus_) sc_core::wait(cpu_left_);
}

std::string DmaApiWorkload::failure() const { return failure_.empty() ? api_->timer_error() : failure_; }

void DmaApiWorkload::cpu_thread(unsigned cpu) {
  while (!stopped_ && failure_.empty()) {
    sc_core::wait(sc_core::sc_time(c_.interval_ns, sc_core::SC_NS), stop_);
    if (stopped_) break;
    const unsigned k = cpu * slots_per_cpu_ + next_slot_[cpu];
    next_slot_[cpu] = (next_slot_[cpu] + 1) % slots_per_cpu_;
    Slot& slot = slots_[k];
    uint64_t next = 0;
    const unsigned region = slot.region ^ 1;
    Status s = api_->map(cpu, buffer_pa(k, region), c_.buffer_bytes, {}, &next);
    if (s.ok) {
      // Publish the new buffer; the old one gets no new DMA and is unmapped once its
      // DMAs have completed.
      slot.retiring = slot.current;
      slot.current = Buffer{next, 0};
      slot.region = region;
      by_iova_[next] = k;
      while (slot.retiring.dmas && !stopped_) sc_core::wait(cpu_idle_[cpu] | stop_);
      if (stopped_) break;
      s = api_->unmap(cpu, slot.retiring.iova, c_.buffer_bytes);
      by_iova_.erase(slot.retiring.iova);
      slot.retiring = Buffer{};
    }
    if (!s.ok) {
      if (failure_.empty()) failure_ = "dma_api CPU " + std::to_string(cpu) + ": " + s.error;
      break;
    }
  }
}

void DmaApiWorkload::register_stats(common::StatRegistry& reg, const std::string& p) const { api_->register_stats(reg, p); }

}  // namespace iommusim::platforms

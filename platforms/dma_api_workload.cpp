// sc_spawn: one thread per CPU.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "platforms/dma_api_workload.h"

namespace iommusim::platforms {

using driver::DmaApiConfig;
using driver::Status;

Section<DmaApiConfig> dma_api_keys() {
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

DmaApiWorkload::DmaApiWorkload(const DmaApiWorkloadConfig& c, driver::DriverBase& drv)
    : c_(c), drv_(drv), api_(std::make_unique<driver::DmaApi>(c.api, drv, 0, c.page_bytes)),
      slot_bytes_(c.window_bytes / c.api.cpus / c.page_bytes * c.page_bytes),
      buffers_(c.api.cpus), region_(c.api.cpus, 0) {}

uint64_t DmaApiWorkload::buffer_pa(unsigned cpu, unsigned region) const {
  return c_.buffer_pa + region * c_.window_bytes + cpu * slot_bytes_;
}

Status DmaApiWorkload::setup(uint32_t rid, std::optional<uint32_t> pasid) {
  std::string why;
  const auto d = drv_.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
  if (!d) return Status::fail(why);
  if (Status s = drv_.attach(rid, pasid, *d); !s.ok) return s;
  api_->set_domain(*d);
  for (unsigned cpu = 0; cpu < c_.api.cpus; ++cpu)
    if (Status s = api_->map(cpu, buffer_pa(cpu, 0), slot_bytes_, {}, &buffers_[cpu].current.iova); !s.ok) return s;
  return {};
}

uint64_t DmaApiWorkload::translate(uint64_t window_addr) {
  // A window that does not divide into whole-page slots wraps its tail onto the slots.
  const uint64_t off = (window_addr - c_.window_base) % (slot_bytes_ * c_.api.cpus);
  Buffer& b = buffers_[off / slot_bytes_].current;
  ++b.dmas;
  return b.iova + off % slot_bytes_;
}

void DmaApiWorkload::dma_done(uint64_t iova) {
  for (CpuBuffers& c : buffers_)
    for (Buffer* b : {&c.current, &c.previous})
      if (b->dmas && iova >= b->iova && iova - b->iova < slot_bytes_) {
        if (--b->dmas == 0) c.idle.notify(sc_core::SC_ZERO_TIME);
        return;
      }
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
  CpuBuffers& mine = buffers_[cpu];
  while (!stopped_ && failure_.empty()) {
    sc_core::wait(sc_core::sc_time(c_.interval_ns, sc_core::SC_NS), stop_);
    if (stopped_) break;
    uint64_t next = 0;
    const unsigned region = region_[cpu] ^ 1;
    Status s = api_->map(cpu, buffer_pa(cpu, region), slot_bytes_, {}, &next);
    if (s.ok && mine.previous.iova) {
      while (mine.previous.dmas && !stopped_) sc_core::wait(mine.idle | stop_);
      if (stopped_) break;
      s = api_->unmap(cpu, mine.previous.iova, slot_bytes_);
    }
    if (!s.ok) {
      if (failure_.empty()) failure_ = "dma_api CPU " + std::to_string(cpu) + ": " + s.error;
      break;
    }
    mine.previous = mine.current;
    mine.current = Buffer{next, 0};
    region_[cpu] = region;
  }
}

void DmaApiWorkload::register_stats(common::StatRegistry& reg, const std::string& p) const { api_->register_stats(reg, p); }

}  // namespace iommusim::platforms

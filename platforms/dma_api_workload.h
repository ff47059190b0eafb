// The DMA API workload (workload.mode = dma_api): several CPUs, each a driver thread,
// map and unmap DMA buffers through Linux's DMA API (platforms/driver/dma_api.h) while
// the endpoint's DMAs hit the buffers currently mapped.
//
// What it models
// - The window is split into buffer slots of buffer_bytes, an equal run of them per CPU
//   (as many as fit in window_bytes / cpus); the endpoint's window offset lands in one slot
//   at the IOVA the slot's current buffer was mapped at (the endpoint's address hook,
//   translate()); a tail that does not fill the slots wraps onto the first ones.
// - Every interval each CPU dma_maps a new buffer for the next of its slots, round robin
//   (alternating between two PA regions), publishes it to the device, then dma_unmaps the
//   buffer the slot held until then, once every DMA issued to it has completed (a driver
//   reclaiming completed descriptors; a DMA longer than the interval delays the unmap).
//   The CPUs start together, so their unmaps contend for the invalidation queue.
// - Stats: the DMA API's (maps, unmaps, flushes by ring-full and by timer, invalidations,
//   the IOVA allocator's paths) under <vendor>.dma_api; lock waits and queueing are in the
//   driver's invalidation breakdown.
//
// What it does not model
// - Descriptor rings, completion interrupts or the device choosing buffers: the device's
//   address stream is the endpoint's pattern over the window, redirected per slot.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/stats.h"
#include "platforms/config_keys.h"
#include "platforms/driver/dma_api.h"

namespace iommusim::platforms {

// The dma_api config section: the DMA API's keys and the workload's buffer size.
struct DmaApiSection {
  driver::DmaApiConfig api;
  uint64_t buffer_bytes = 64 << 10;
};

struct DmaApiWorkloadConfig {
  driver::DmaApiConfig api;
  uint64_t buffer_bytes = 64 << 10;             // one dma_map; a multiple of page_bytes
  uint64_t window_base = 0, window_bytes = 0;   // the endpoint's window
  uint64_t buffer_pa = 0;                       // the buffers' PA regions start here (2 x window)
  uint64_t page_bytes = 4096;
  double interval_ns = 5000;                    // between a CPU's buffer exchanges
};

// The dma_api section of the config (DmaApiConfig's keys and buffer_bytes).
Section<DmaApiSection> dma_api_keys();

class DmaApiWorkload {
 public:
  DmaApiWorkload(const DmaApiWorkloadConfig& c, driver::DriverBase& drv);
  // Creates the stage-1 domain, attaches the device and maps every CPU's first buffer.
  driver::Status setup(uint32_t rid, std::optional<uint32_t> pasid);
  // Starts the CPU threads; they run until stop().
  void start();
  void stop();
  // Waits until every CPU thread has left: each finishes the map or unmap it is in, so
  // the simulation never ends with a driver operation half done.
  void join();
  // The first failure of a CPU thread or the flush timer; empty when none.
  std::string failure() const;
  // The endpoint's address hooks: a window address -> the IOVA of the slot's current
  // buffer (counted as in use), and the end of a DMA issued to that IOVA.
  uint64_t translate(uint64_t window_addr);
  void dma_done(uint64_t iova);
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  void cpu_thread(unsigned cpu);
  uint64_t buffer_pa(unsigned slot, unsigned region) const;

  DmaApiWorkloadConfig c_;
  driver::DriverBase& drv_;
  std::unique_ptr<driver::DmaApi> api_;
  unsigned slots_per_cpu_ = 0;      // CPU k owns slots [k * slots_per_cpu_, (k+1) * slots_per_cpu_)
  // Per slot: the buffer published last (current) and the one it replaced while that one
  // waits for its unmap (retiring), each with the DMAs issued to it and not yet complete.
  // A buffer is unmapped only once its DMAs completed (a driver reclaims a descriptor
  // after the device is done with it).
  struct Buffer { uint64_t iova = 0; unsigned dmas = 0; };
  struct Slot { Buffer current, retiring; unsigned region = 0; };
  std::vector<Slot> slots_;
  std::map<uint64_t, unsigned> by_iova_;       // live buffers (current and previous): IOVA -> slot
  std::vector<sc_core::sc_event> cpu_idle_;    // per CPU: one of its buffers has no DMA left
  std::vector<unsigned> next_slot_;            // per CPU: the slot its next exchange renews
  bool stopped_ = false;
  sc_core::sc_event stop_;
  unsigned running_cpus_ = 0;
  sc_core::sc_event cpu_left_;
  std::string failure_;
};

}  // namespace iommusim::platforms

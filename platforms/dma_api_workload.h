// The DMA API workload (workload.mode = dma_api): several CPUs, each a driver thread,
// map and unmap DMA buffers through Linux's DMA API (platforms/driver/dma_api.h) while
// the endpoint's DMAs hit the buffers currently mapped.
//
// What it models
// - The window is split into one buffer slot per CPU (window_bytes / cpus, whole pages);
//   the endpoint's window offset o lands in slot k = o / slot_bytes at the IOVA the slot's
//   current buffer was mapped at (the endpoint's address hook, translate()); a tail that
//   does not fill a slot wraps onto the first slots.
// - Every interval each CPU dma_maps a new buffer for its slot (alternating between two
//   PA regions), publishes it to the device, then dma_unmaps the buffer it published one
//   interval earlier, once every DMA issued to that buffer has completed (a driver
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
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/stats.h"
#include "platforms/config_keys.h"
#include "platforms/driver/dma_api.h"

namespace iommusim::platforms {

struct DmaApiWorkloadConfig {
  driver::DmaApiConfig api;
  uint64_t window_base = 0, window_bytes = 0;   // the endpoint's window
  uint64_t buffer_pa = 0;                       // the buffers' PA regions start here (2 x window)
  uint64_t page_bytes = 4096;
  double interval_ns = 5000;                    // between a CPU's buffer exchanges
};

// The dma_api section of the config (DmaApiConfig's keys).
Section<driver::DmaApiConfig> dma_api_keys();

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
  uint64_t buffer_pa(unsigned cpu, unsigned region) const;

  DmaApiWorkloadConfig c_;
  driver::DriverBase& drv_;
  std::unique_ptr<driver::DmaApi> api_;
  uint64_t slot_bytes_ = 0;
  // Per CPU: the buffer it published last (current) and the one before (previous), each
  // with the DMAs issued to it and not yet complete. A buffer is unmapped only once its
  // DMAs completed (a driver reclaims a descriptor after the device is done with it).
  struct Buffer { uint64_t iova = 0; unsigned dmas = 0; };
  struct CpuBuffers { Buffer current, previous; sc_core::sc_event idle; };
  std::vector<CpuBuffers> buffers_;
  std::vector<unsigned> region_;    // per CPU: which PA region its current buffer is in
  bool stopped_ = false;
  sc_core::sc_event stop_;
  unsigned running_cpus_ = 0;
  sc_core::sc_event cpu_left_;
  std::string failure_;
};

}  // namespace iommusim::platforms

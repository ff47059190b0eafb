// Trace replay (workload.mode = trace, key trace.file): timed map, unmap and DMA events
// from a text file (docs/trace_replay.md), replayed on every lane.
//
// What it models
// - Each (device, PASID) pair the trace names gets its own stage-1 domain, attached at setup
//   (a device is the requester ID of one of the lane's endpoints).
// - map / unmap at the IOVA the trace gives, through the driver's iommu_map / iommu_unmap
//   (an unmap invalidates its range and waits for the sync: strict); a map's pages come from
//   the DMA buffer region (platform.buffer_ipa) at the offset the trace gives.
// - read / write: a DMA handed to the device's endpoint at its time (the endpoint's slots
//   take them in time order; a DMA waits for a free slot).
// - Order per device: an event starts at its time, or later once the device's map or unmap
//   listed before it has finished; a map or unmap also waits until the device's DMAs listed
//   before it have completed (a driver unmaps a buffer the device is done with).
//
// What it does not model
// - The DMA API's IOVA allocator and flush queues (the trace fixes the IOVAs; use
//   workload.mode = nic or storage for those), ordering between different devices.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/common/clock.h"
#include "platforms/config_keys.h"
#include "platforms/job_workload.h"

namespace iommusim::platforms {

struct TraceConfig {
  std::string file;
};
Section<TraceConfig> trace_keys();

struct TraceEvent {
  enum class Op { Map, Unmap, Read, Write };
  uint64_t time_ns = 0;
  uint32_t device = 0;        // requester ID
  std::optional<uint32_t> pasid;
  Op op = Op::Read;
  uint64_t iova = 0, bytes = 0;
  uint64_t buffer_offset = 0;   // map: where in the DMA buffer region its pages are
  unsigned line = 0;
};

// Reads and checks a trace: throws std::runtime_error "<file>:<line>: <why>" on a bad line.
// page_bytes: map and unmap must be aligned to it.
std::vector<TraceEvent> read_trace(const std::string& file, uint64_t page_bytes);

struct TraceSetup {
  const std::vector<TraceEvent>* events = nullptr;
  std::vector<uint32_t> endpoints;    // each endpoint's requester ID, in the lane's order
  std::vector<uint32_t> driver_rids;  // the ID the driver knows each by (a guest's: its virtual one)
  uint64_t buffer_pa = 0;             // the buffer region (a PA; a GPA for a guest's driver)
  uint64_t page_bytes = 4096;
};

class TraceWorkload : public JobWorkload {
 public:
  // The largest DMA of the trace; the bytes of buffer region its maps reach.
  static uint32_t max_dma_bytes(const std::vector<TraceEvent>& events);
  static uint64_t footprint(const std::vector<TraceEvent>& events);
  // Each endpoint's DMAs, for its queue's capacity.
  static size_t most_dmas(const TraceSetup& s);

  TraceWorkload(const TraceSetup& s, driver::DriverBase& drv);
  driver::Status setup() override;
  void run() override;
  void register_stats(common::StatRegistry& reg, const std::string& prefix) override;
  void report(common::StatRegistry& reg, const std::string& prefix) const override;

 private:
  struct Device {
    std::vector<size_t> events;   // indices into the trace, in order
    unsigned in_flight = 0;       // DMAs pushed and not completed
    sc_core::sc_event idle;
  };
  struct Space { uint32_t device; std::optional<uint32_t> pasid; driver::DomainId domain; };

  void job_done(size_t endpoint, const traffic::DmaJob& job, traffic::DmaStats::Outcome outcome) override;
  void replay(size_t endpoint);
  driver::DomainId domain_of(const TraceEvent& e) const;

  TraceSetup s_;
  std::vector<Device> devices_;   // per endpoint
  std::vector<Space> spaces_;
  common::Counter maps_, unmaps_, dmas_, faults_;
};

}  // namespace iommusim::platforms

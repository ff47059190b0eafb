// The NIC workload (workload.mode = nic, section nic): a network card with `flows` queue
// pairs, each an RX ring and a TX ring of `ring_size` descriptors, driven through Linux's
// DMA API (platforms/driver/dma_api.h) by driver CPUs (flow f on CPU f % dma_api.cpus).
//
// What it models
// - Each ring's descriptors live in coherent memory mapped once at setup (as
//   dma_alloc_coherent), 16 bytes each, as ixgbe/i40e's descriptor rings.
// - RX: at setup the driver dma_maps a packet_bytes buffer per descriptor and posts it.
//   Packet k of a flow arrives at k * interval; the device then reads descriptor k mod
//   ring_size (16 B DMA read), writes the packet into its buffer, and writes the descriptor
//   back (16 B DMA write). The flow's CPU reaps completions in ring order: dma_unmap the
//   buffer, dma_map a fresh one, post it. A packet whose descriptor is not posted yet waits
//   in the device (counted: rx_waited_for_descriptor; a NIC without that buffering drops).
// - TX: packet k of a flow is due at k * interval; when the ring has room, the CPU dma_maps
//   it and posts a descriptor; the device reads the descriptor, reads the packet and writes
//   the descriptor back; the CPU reaps in ring order and dma_unmaps.
// - interval = packet_bytes * 8 / (rate_gbps * share), share rx_fraction for RX and
//   1 - rx_fraction for TX; rate_gbps = 0: each direction with a non-zero share runs as fast
//   as its ring and the device allow.
// - The run: packets start for duration_us; then those started finish, their CPUs reap
//   them, and the run ends. Stats under <vendor>.nic: per flow and in total packets (RX,
//   TX), Gb/s of packet data over the traffic time, maps, unmaps; in total invalidations per
//   packet (the DMA API's invalidations: one per strict unmap, one per lazy flush).
//
// What it does not model
// - Interrupts and NAPI budgets (a CPU reaps a completion as soon as it is written), RSS
//   hashing, descriptor prefetch and batching, checksums, the wire; one NIC endpoint per lane.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "models/common/clock.h"
#include "platforms/config_keys.h"
#include "platforms/driver/dma_api.h"
#include "platforms/job_workload.h"

namespace iommusim::platforms {

struct NicConfig {
  unsigned flows = 4;
  unsigned ring_size = 256;
  unsigned packet_bytes = 1500;
  double rate_gbps = 10;      // per flow, RX and TX together; 0: as fast as possible
  double rx_fraction = 0.5;
  double duration_us = 12000;
};

Section<NicConfig> nic_keys();

struct NicSetup {
  NicConfig nic;
  driver::DmaApiConfig api;
  uint64_t buffer_pa = 0;     // the buffers and descriptor rings go from here (footprint())
  uint64_t page_bytes = 4096;
  uint32_t rid = 0;
  std::optional<uint32_t> pasid;
};

class NicWorkload : public JobWorkload {
 public:
  static constexpr uint32_t kDescriptorBytes = 16;
  // Bytes of memory the buffers and rings take from buffer_pa.
  static uint64_t footprint(const NicConfig& c, uint64_t page_bytes);
  // The largest DMA: a packet.
  static uint32_t max_dma_bytes(const NicConfig& c) { return c.packet_bytes; }

  NicWorkload(const NicSetup& s, driver::DriverBase& drv);
  driver::Status setup() override;
  void run() override;
  void register_stats(common::StatRegistry& reg, const std::string& prefix) override;
  void report(common::StatRegistry& reg, const std::string& prefix) const override;

 private:
  enum Dir : unsigned { kRx = 0, kTx = 1 };
  enum Stage : unsigned { kReadDescriptor = 0, kData = 1, kWriteBack = 2 };
  struct Ring {
    uint64_t desc_iova = 0;
    double interval_ps = 0;                  // between packets; 0: back to back
    bool active = false;                     // its share of the rate is not zero
    std::vector<uint64_t> buffer;            // per descriptor: the mapped buffer's IOVA
    std::vector<char> written_back;          // per descriptor: the device is done with it
    uint64_t posted = 0, started = 0, reaped = 0;   // descriptors posted, packets started, reaped
  };
  struct Flow {
    Ring ring[2];
    unsigned cpu = 0;
    common::Counter packets[2], maps, unmaps, waited;
  };

  void job_done(size_t endpoint, const traffic::DmaJob& job, traffic::DmaStats::Outcome outcome) override;
  void cpu_thread(unsigned cpu);
  // One pass over the CPU's flows; false when it failed. *worked: it did something.
  bool serve(unsigned cpu, bool* worked);
  bool map_buffer(unsigned cpu, unsigned f, Dir d, unsigned idx);
  bool unmap_buffer(unsigned cpu, unsigned f, Dir d, unsigned idx);
  // Starts the RX packets whose descriptors are posted (each at its arrival).
  void start_rx(unsigned f);
  void start_packet(unsigned f, Dir d, unsigned idx, common::Ps at);
  common::Ps packet_time(const Ring& r, uint64_t k) const;
  bool drained(unsigned cpu) const;
  uint64_t buffer_pa(unsigned f, Dir d, unsigned idx) const;
  traffic::DmaJob job(unsigned f, Dir d, Stage s, unsigned idx) const;

  NicSetup s_;
  std::unique_ptr<driver::DmaApi> api_;
  uint64_t buffer_stride_ = 0, ring_stride_ = 0;
  std::vector<Flow> flows_;
  std::vector<sc_core::sc_event> cpu_work_;
  common::Counter faults_;
};

}  // namespace iommusim::platforms

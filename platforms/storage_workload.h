// The storage workload (workload.mode = storage, section storage): an NVMe-like device with
// `queues` submission queues of `depth` I/Os each, every I/O's buffer mapped as a
// scatter-gather list through Linux's DMA API (platforms/driver/dma_api.h) when it is
// submitted and unmapped when its completion is reaped; queue q on CPU q % dma_api.cpus.
//
// What it models
// - Submission and completion queues in coherent memory mapped once at setup: 64-byte
//   submission entries, 16-byte completion entries (NVMe 2.0 base spec, 4.1 and 4.2).
// - Closed loop: each queue keeps `depth` I/Os in flight until duration_us; then those in
//   flight finish and the run ends. An I/O's size is drawn from `io_sizes` (weighted) and
//   its direction from read_fraction, from one generator per queue seeded by sim.seed.
// - Submission: the CPU dma_map_sg's the I/O's buffer (segments of segment_bytes,
//   physically in reverse order, so the list is truly scattered; one IOVA range) and
//   rings the doorbell. The device reads the submission entry, moves the data in DMAs of at
//   most dma_bytes over the IOVA range (all at once, as many as the endpoint's slots allow;
//   a read I/O writes memory), then writes the completion entry. The CPU reaps completions
//   in the order they were written, dma_unmap_sg's the buffer and submits the next I/O.
// - Stats under <vendor>.storage: I/Os, reads, writes, bytes, latency (submission start to
//   reap), IOPS, MB/s, invalidations per I/O.
//
// What it does not model
// - PRP lists or SGL descriptors (the device knows the range), interrupts and their
//   coalescing, the media, doorbell MMIO cost, several namespaces; one device per lane.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "models/common/clock.h"
#include "platforms/config_keys.h"
#include "platforms/driver/dma_api.h"
#include "platforms/job_workload.h"

namespace iommusim::platforms {

struct StorageConfig {
  unsigned queues = 4;
  unsigned depth = 32;
  // "bytes[:weight],...": each I/O's size, drawn with the weights (default 1).
  std::string io_sizes = "4096";
  double read_fraction = 0.7;
  unsigned segment_bytes = 65536;
  unsigned dma_bytes = 4096;
  double duration_us = 2000;

  struct Size { uint64_t bytes; uint64_t weight; };
  std::vector<Size> sizes;   // io_sizes, parsed
};

Section<StorageConfig> storage_keys();

struct StorageSetup {
  StorageConfig storage;
  driver::DmaApiConfig api;
  uint64_t buffer_pa = 0;
  uint64_t page_bytes = 4096;
  uint64_t seed = 1;
  uint32_t rid = 0;
  std::optional<uint32_t> pasid;
};

class StorageWorkload : public JobWorkload {
 public:
  static constexpr uint32_t kSubmissionBytes = 64, kCompletionBytes = 16;
  static uint64_t footprint(const StorageConfig& c, uint64_t page_bytes);
  static uint32_t max_dma_bytes(const StorageConfig& c);

  StorageWorkload(const StorageSetup& s, driver::DriverBase& drv);
  driver::Status setup() override;
  void run() override;
  void register_stats(common::StatRegistry& reg, const std::string& prefix) override;
  void report(common::StatRegistry& reg, const std::string& prefix) const override;

 private:
  enum Stage : unsigned { kSubmission = 0, kData = 1, kCompletion = 2 };
  struct Io {
    uint64_t iova = 0, bytes = 0;
    bool read = true;            // the host reads from the device: the device writes memory
    unsigned dmas_left = 0;
    common::Ps submitted = 0;
  };
  struct Queue {
    uint64_t sq_iova = 0, cq_iova = 0;
    unsigned cpu = 0;
    std::vector<Io> ios;               // per slot
    std::vector<unsigned> completed;   // ring of slots whose completion was written
    unsigned cq_head = 0, cq_count = 0;
    unsigned in_flight = 0;
    std::mt19937_64 rng;
  };

  void job_done(size_t endpoint, const traffic::DmaJob& job, traffic::DmaStats::Outcome outcome) override;
  void cpu_thread(unsigned cpu);
  bool submit(unsigned q, unsigned slot);
  bool reap(unsigned q);
  uint64_t slot_pa(unsigned q, unsigned slot) const;
  traffic::DmaJob job(unsigned q, unsigned slot, Stage s, uint64_t offset = 0) const;

  StorageSetup s_;
  std::unique_ptr<driver::DmaApi> api_;
  uint64_t max_io_ = 0, sq_stride_ = 0, cq_stride_ = 0, weight_sum_ = 0;
  std::vector<Queue> queues_;
  std::vector<sc_core::sc_event> cpu_work_;
  std::vector<std::vector<driver::DmaApi::Segment>> segments_;   // per CPU: its map_sg's list
  common::Counter ios_, reads_, writes_, bytes_, faults_;
  common::Histogram latency_ps_;
};

}  // namespace iommusim::platforms

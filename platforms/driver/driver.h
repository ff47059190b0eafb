// The host driver interface every vendor backend implements, and the invalidation
// bookkeeping they share. Calls run in the caller's SC_THREAD and take simulated time:
// software work is charged in CPU cycles, MMIO goes through a TLM socket, and completion
// is detected by polling, as a real driver does.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/common/stats.h"

namespace iommusim::common {
class Timeline;
}

namespace iommusim::driver {

using DomainId = uint32_t;

enum class DomainKind { Stage1, Stage2, Nested };   // Nested: stage 1 over a Stage2 parent

struct Prot { bool read = true, write = true, exec = false; };

struct Status {
  bool ok = true;
  std::string error;
  static Status fail(std::string why) { return {false, std::move(why)}; }
};

struct DriverTiming {
  double cpu_mhz = 2000.0;
  unsigned descriptor_write_cycles = 20;   // one 8-byte table store incl. barrier share
  unsigned command_write_cycles = 30;      // build and store one 16-byte queue entry
  unsigned op_overhead_cycles = 400;       // locking and bookkeeping per operation
  double mmio_write_ns = 150.0;            // posted write to the IOMMU
  double mmio_read_ns = 400.0;             // non-posted read round trip
  double poll_interval_ns = 50.0;          // between completion polls
  unsigned poll_read_cycles = 10;          // cached read of the completion word
  double sync_timeout_us = 100.0;          // give up on a completion barrier (Linux: 1 s)
};
std::string validate(const DriverTiming& t);

// One invalidation as the driver saw it. The parts add up to total:
// software (build commands, write queue, ring doorbell) + lock (waiting for other CPUs:
// the queue lock, or another CPU's doorbell covering these entries) + queueing (until the
// IOMMU starts fetching them) + fetch (queue reads) + execution (the invalidation
// commands) + atc (the barrier's wait for device ATC invalidation completions, beyond
// what it waited for anyway: docs/ats.md) + sync (completion barrier and its detection by
// the CPU).
// Shared work is charged in full to each invalidation that waited for it: a fetch burst
// or a doorbell carrying several CPUs' entries, and the IOMMU's work on other CPUs'
// entries ahead of these (queueing). So the parts add up per invalidation, and summing
// records over CPUs counts shared time once per CPU that waited.
// A guest's invalidation on a trapped path (a vIOMMU emulated by the VMM) has five more
// parts, zero on a native path: trap (VM exit to the VMM's handler), vmm (the VMM reading,
// checking and translating the guest's commands, and completing its sync), host_kernel
// (ioctl, iommufd and the host driver's software), host_queue (the host IOMMU's queueing,
// fetch, execution and sync of the forwarded commands) and return (VM entry). There the
// guest's queueing, fetch and execution are 0: their time is inside those parts.
struct InvalidationRecord {
  std::string op;
  uint64_t start_ps = 0;
  unsigned commands = 0;   // including the completion barrier
  uint64_t total_ps = 0, software_ps = 0, lock_ps = 0, queueing_ps = 0, fetch_ps = 0, execution_ps = 0, atc_ps = 0,
           sync_ps = 0;
  uint64_t trap_ps = 0, vmm_ps = 0, host_kernel_ps = 0, host_queue_ps = 0, return_ps = 0;   // trapped path only

  // Every part: what total_ps is the sum of.
  uint64_t parts_ps() const {
    return software_ps + lock_ps + queueing_ps + fetch_ps + execution_ps + atc_ps + sync_ps + trap_ps + vmm_ps +
           host_kernel_ps + host_queue_ps + return_ps;
  }
};

class InvalidationLog {
 public:
  void add(const InvalidationRecord& r);
  const std::vector<InvalidationRecord>& records() const { return records_; }
  const common::Histogram& total() const { return total_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  nlohmann::json to_json() const;
  void set_keep_records(size_t max) { keep_ = max; }
  // A trapped path's log: its five trapped parts become stats and JSON fields too. A
  // native log leaves them out, so native stats and invalidations.json do not change.
  void set_trapped_parts(bool on) { trapped_parts_ = on; }
  bool trapped_parts() const { return trapped_parts_; }

 private:
  std::vector<InvalidationRecord> records_;
  size_t keep_ = 100000;
  bool trapped_parts_ = false;
  common::Histogram total_, software_, lock_, queueing_, fetch_, execution_, atc_, sync_, commands_;
  common::Histogram trap_, vmm_, host_kernel_, host_queue_, return_;
  common::Counter dropped_records_;
};

class IommuDriver {
 public:
  virtual ~IommuDriver() = default;
  virtual std::string vendor() const = 0;

  // Brings the IOMMU up: tables, queues, enables; then invalidates everything.
  virtual Status init() = 0;
  // parent: the Stage2 domain a Nested domain sits on.
  virtual std::optional<DomainId> create_domain(DomainKind kind, std::optional<DomainId> parent, std::string* why) = 0;
  // Attaches (rid, pasid) to `domain`, replacing whatever it was attached to.
  virtual Status attach(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) = 0;
  // Blocks (rid, pasid): its DMAs fault (or abort) from then on.
  virtual Status detach(uint32_t rid, std::optional<uint32_t> pasid) = 0;
  // Maps unmapped IOVAs; a live leaf in the way is an error (Linux: -EEXIST).
  virtual Status map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t page_bytes) = 0;
  // Strict unmap: clears the PTEs, invalidates the range (leaf) and waits for completion.
  virtual Status unmap(DomainId d, uint64_t iova, uint64_t bytes) = 0;
  // Changes live leaves in place, then invalidates them (leaf) and waits: new rights
  // (protect), or a new output address and rights (remap).
  virtual Status protect(DomainId d, uint64_t iova, uint64_t bytes, Prot prot) = 0;
  virtual Status remap(DomainId d, uint64_t iova, uint64_t new_out, uint64_t bytes, Prot prot) = 0;
  virtual Status invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) = 0;
  virtual Status invalidate_domain(DomainId d) = 0;
  virtual Status sync() = 0;
  // Records the driver's invalidations on `timeline`, under process `pid`: each operation
  // with its latency breakdown on a "cpu 0" track, and what its command queue fetched and
  // executed on a "queue" track (docs/trace.md). Call before sc_start().
  virtual void set_timeline(common::Timeline& timeline, uint32_t pid) = 0;

  InvalidationLog& invalidations() { return log_; }
  const InvalidationLog& invalidations() const { return log_; }

  // Device `rid` has ATS enabled (an ATC, docs/ats.md). Call before attaching it: the
  // attachment lets it use ATS (SMMU STE.EATS, VT-d context DTE, AMD DTE.I), and every
  // invalidation of its domain also invalidates its ATC (Linux arm_smmu_atc_inv_domain,
  // qi_flush_dev_iotlb, amd device_flush_iotlb).
  void enable_ats(uint32_t rid) { ats_rids_.insert(rid); }
  bool ats_enabled(uint32_t rid) const { return ats_rids_.count(rid) != 0; }
  // Test hook: leave the device ATC invalidations out (the oracle must then catch the
  // stale translations the devices go on using).
  void skip_device_invalidations_for_test(bool skip) { skip_device_invalidations_ = skip; }

 protected:
  bool device_invalidations() const { return !ats_rids_.empty() && !skip_device_invalidations_; }

  InvalidationLog log_;
  std::set<uint32_t> ats_rids_;
  bool skip_device_invalidations_ = false;
};

}  // namespace iommusim::driver

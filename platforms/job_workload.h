// The common part of the workloads that hand the endpoints their DMAs one by one
// (workload.mode = nic, storage, trace): a JobQueue per endpoint, the driver threads
// (CPUs) the workload spawns and joins, and the first failure of any of them.
//
// What it models: nothing by itself; each workload (nic_workload.h, storage_workload.h,
// trace_workload.h) says what it models.
// What it does not model: interrupts; a CPU sees a completion as soon as the device wrote it
// (a polling NAPI or io_uring loop).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/stats.h"
#include "models/common/clock.h"
#include "platforms/driver/dma_api.h"
#include "platforms/driver/driver_base.h"
#include "traffic/job_queue.h"

namespace iommusim::platforms {

class JobWorkload {
 public:
  // One JobQueue of `queue_capacity` per endpoint of the lane.
  JobWorkload(driver::DriverBase& drv, size_t endpoints, size_t queue_capacity);
  virtual ~JobWorkload();
  JobWorkload(const JobWorkload&) = delete;
  JobWorkload& operator=(const JobWorkload&) = delete;

  // In the lane's thread after the driver's init: domains, attachments, first mappings.
  virtual driver::Status setup() = 0;
  // In the lane's thread once the traffic may start: runs the workload to its end, then
  // closes the queues so the endpoints' slots leave.
  virtual void run() = 0;
  // Stats under `prefix` (<vendor>); report() adds the rates once run() returned.
  virtual void register_stats(common::StatRegistry& reg, const std::string& prefix) = 0;
  virtual void report(common::StatRegistry& reg, const std::string& prefix) const = 0;

  traffic::JobSource& source(size_t endpoint);
  // The first failure (a map or unmap that failed, a full queue); empty when none.
  const std::string& failure() const { return failure_; }

 protected:
  // The endpoint's DMA `job` completed.
  virtual void job_done(size_t endpoint, const traffic::DmaJob& job, traffic::DmaStats::Outcome outcome) = 0;
  // Queues `job` for `endpoint`; a full queue fails the run (a sizing bug, not a config).
  void push(size_t endpoint, const traffic::DmaJob& job);
  void close_queues();
  // Runs `body` in its own SC_THREAD (a CPU); join() waits until every one has returned.
  void spawn(const std::string& name, std::function<void()> body);
  void join();
  // Records the first failure and wakes everything waiting on `wake` (the CPUs leave).
  void fail(const std::string& why);
  bool failed() const { return !failure_.empty(); }
  // The CPU-driven workloads' run(): `cpu(c)` on `cpus` CPU threads named `name`, for
  // `duration_us` of traffic from now (start_ .. end_; `first` runs once they are set, before
  // the CPUs start); then finished_ (when the last CPU left), a failure of `api`'s flush
  // timer, and the queues closed.
  void run_cpus(const std::string& name, unsigned cpus, double duration_us, const driver::DmaApi& api,
                const std::function<void(unsigned)>& cpu, const std::function<void()>& first = {});
  // A fresh stage-1 domain attached to (rid, pasid).
  driver::Status attach_new_domain(uint32_t rid, std::optional<uint32_t> pasid, driver::DomainId* domain);

  driver::DriverBase& drv_;
  common::Ps start_ = 0, end_ = 0, finished_ = 0;   // run_cpus: the traffic time, the last CPU's exit
  sc_core::sc_event wake_;   // CPUs wait on this (among others) so a failure reaches them

 private:
  class Queue;
  std::vector<std::unique_ptr<Queue>> queues_;
  unsigned running_ = 0;
  sc_core::sc_event left_;
  std::string failure_;
};

}  // namespace iommusim::platforms

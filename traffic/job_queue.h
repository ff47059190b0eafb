// A JobSource over a fixed-capacity queue of DMAs ordered by their earliest issue time
// (ties: the order they were pushed in). The workloads (NIC, storage, trace replay) push
// the DMAs their descriptors, I/Os or trace lines call for; the endpoint's free slots take
// them as they become due.
//
// What it models: a device's DMA engines picking the next due transfer of any queue.
// What it does not model: arbitration between queues beyond earliest-due-first.
// No allocation after construction: the heap is reserved to its capacity.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <systemc>

#include "traffic/endpoint.h"

namespace iommusim::traffic {

class JobQueue : public JobSource {
 public:
  // `capacity`: the most DMAs the workload can have queued at once.
  explicit JobQueue(size_t capacity);
  // Queues `job`; false when the queue is full (the workload sized it wrongly).
  bool push(const DmaJob& job);
  // No more jobs: slots that find the queue empty leave (those still queued are handed out).
  void close();
  size_t size() const { return heap_.size(); }
  size_t capacity() const { return capacity_; }

  // Waits until the earliest queued job is due (or, once closed, the queue is empty).
  bool next_job(unsigned slot, DmaJob& job) override;

 private:
  struct Entry { DmaJob job; uint64_t seq; };
  static bool later(const Entry& a, const Entry& b);
  size_t capacity_;
  std::vector<Entry> heap_;
  uint64_t seq_ = 0;
  bool closed_ = false;
  sc_core::sc_event pushed_;
};

}  // namespace iommusim::traffic

// A counted hardware resource (walker slots, cache ports, memory channels, queue entries)
// with strict FIFO hand-over to waiting SC_THREADs. Contention and queueing in every model
// come from these, never from hand-computed delays.
#pragma once
#include <cstdint>
#include <deque>
#include <string>

#include <systemc>

#include "models/common/stats.h"

namespace iommusim::common {

class CountedResource {
 public:
  CountedResource(std::string name, unsigned capacity);

  // Blocks the calling SC_THREAD until a unit is free. Waiters are served first come,
  // first served: a released unit goes straight to the oldest waiter.
  void acquire();
  // Non-blocking; false when no unit is free or someone is already waiting.
  bool try_acquire();
  void release();

  unsigned capacity() const { return capacity_; }
  unsigned in_use() const { return capacity_ - free_; }
  const Histogram& wait_ps() const { return wait_ps_; }
  const Counter& contended() const { return contended_; }
  const std::string& name() const { return name_; }
  void register_stats(StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Waiter { sc_core::sc_event* granted; };
  std::string name_;
  unsigned capacity_, free_;
  std::deque<Waiter> waiters_;
  Histogram wait_ps_;
  Counter acquisitions_, contended_;
};

// RAII holder so early returns (faults) always give the unit back.
class ResourceGuard {
 public:
  explicit ResourceGuard(CountedResource& r) : r_(&r) { r_->acquire(); }
  ~ResourceGuard() { if (r_) r_->release(); }
  ResourceGuard(const ResourceGuard&) = delete;
  ResourceGuard& operator=(const ResourceGuard&) = delete;
 private:
  CountedResource* r_;
};

}  // namespace iommusim::common

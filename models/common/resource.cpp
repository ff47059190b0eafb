#include "models/common/resource.h"

namespace iommusim::common {

CountedResource::CountedResource(std::string name, unsigned capacity)
    : name_(std::move(name)), capacity_(capacity), free_(capacity) {}

bool CountedResource::try_acquire() {
  if (free_ == 0 || !waiters_.empty()) return false;
  --free_;
  acquisitions_.inc();
  wait_ps_.record(0);
  return true;
}

void CountedResource::acquire() {
  if (try_acquire()) return;
  contended_.inc();
  acquisitions_.inc();
  sc_core::sc_event granted;   // lives on this thread's stack until the grant arrives
  const sc_core::sc_time start = sc_core::sc_time_stamp();
  waiters_.push_back({&granted});
  sc_core::wait(granted);
  wait_ps_.record(uint64_t((sc_core::sc_time_stamp() - start).value() /
                           sc_core::sc_time(1, sc_core::SC_PS).value()));
}

void CountedResource::release() {
  if (!waiters_.empty()) {
    // Hand the unit over directly; free_ stays unchanged.
    Waiter w = waiters_.front();
    waiters_.pop_front();
    w.granted->notify(sc_core::SC_ZERO_TIME);
    return;
  }
  ++free_;
}

void CountedResource::register_stats(StatRegistry& reg, const std::string& prefix) const {
  reg.add(prefix + ".acquisitions", acquisitions_, "count", "units granted of " + name_);
  reg.add(prefix + ".contended", contended_, "count", "acquisitions of " + name_ + " that had to wait");
  reg.add(prefix + ".wait", wait_ps_, "ns", "time spent waiting for " + name_, 1e-3);
}

}  // namespace iommusim::common

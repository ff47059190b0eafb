#include "platforms/driver/driver_queue.h"

#include <cassert>

namespace iommusim::driver {

DriverQueue::DriverQueue(const common::IndexRing& ring, unsigned entry_bytes, Hooks& hooks, std::string space_what,
                         std::string barrier_what)
    : ring_(ring), entry_bytes_(entry_bytes), hooks_(hooks), space_what_(std::move(space_what)),
      barrier_what_(std::move(barrier_what)), traces_(ring.entries()) {
  assert(entry_bytes % 8 == 0 && entry_bytes <= kMaxEntryBytes && ring.log2size < 31);
}

void DriverQueue::reset(uint64_t base) {
  base_ = base;
  producer_ = consumer_seen_ = 0;
}

}  // namespace iommusim::driver

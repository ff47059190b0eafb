#include "platforms/driver/driver_queue.h"

#include <cassert>

namespace iommusim::driver {

DriverQueue::DriverQueue(const common::IndexRing& ring, unsigned entry_bytes, Hooks& hooks, std::string space_what,
                         std::string barrier_what, Submission submission)
    : ring_(ring), entry_bytes_(entry_bytes), hooks_(hooks), space_what_(std::move(space_what)),
      barrier_what_(std::move(barrier_what)), traces_(ring.entries()), submission_(submission) {
  assert(entry_bytes % 8 == 0 && entry_bytes <= kMaxEntryBytes && ring.log2size < 31);
}

void DriverQueue::reset(uint64_t base) {
  base_ = base;
  producer_ = consumer_seen_ = written_ptr_ = 0;
  reservations_.clear();
  reserved_seq_ = written_seq_ = rung_seq_ = 0;
  ringing_ = false;
}

}  // namespace iommusim::driver

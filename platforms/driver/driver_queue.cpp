#include "platforms/driver/driver_queue.h"

#include <algorithm>
#include <cassert>
#include <cinttypes>
#include <cstdio>

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
  ringing_ = ring_again_ = false;
}

void DriverQueue::record(const common::CommandTrace& t) {
  if (t.first_of_fetch) timeline_->slice(track_, "queue", "fetch", t.fetch_start_ps, t.fetch_end_ps - t.fetch_start_ps);
  // One entry at a time: the first of a batch starts when the fetch ends, the others when
  // the entry before them ended.
  const uint64_t start = t.first_of_fetch ? t.fetch_end_ps : std::max(t.fetch_end_ps, last_exec_end_ps_);
  last_exec_end_ps_ = t.exec_end_ps;
  char args[64];
  std::snprintf(args, sizeof args, "{\"index\":%" PRIu32 "%s}", t.queue_index, t.illegal ? ",\"illegal\":true" : "");
  timeline_->slice(track_, "queue", hooks_.command_name(t.opcode), start, t.exec_end_ps - start, args);
}

}  // namespace iommusim::driver

#include "traffic/job_queue.h"

#include <algorithm>

#include "models/common/clock.h"

namespace iommusim::traffic {

JobQueue::JobQueue(size_t capacity) : capacity_(capacity), pushed_(sc_core::sc_gen_unique_name("job_pushed")) { heap_.reserve(capacity); }

bool JobQueue::later(const Entry& a, const Entry& b) {
  return a.job.not_before != b.job.not_before ? a.job.not_before > b.job.not_before : a.seq > b.seq;
}

bool JobQueue::push(const DmaJob& job) {
  if (heap_.size() == capacity_) return false;
  heap_.push_back({job, seq_++});
  std::push_heap(heap_.begin(), heap_.end(), later);
  pushed_.notify(sc_core::SC_ZERO_TIME);
  return true;
}

void JobQueue::close() {
  closed_ = true;
  pushed_.notify(sc_core::SC_ZERO_TIME);
}

bool JobQueue::next_job(unsigned, DmaJob& job) {
  for (;;) {
    if (!heap_.empty()) {
      const common::Ps now = common::now_ps(), due = heap_.front().job.not_before;
      if (due <= now) {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        job = heap_.back().job;
        heap_.pop_back();
        return true;
      }
      sc_core::wait(common::from_ps(due - now), pushed_);   // an earlier job may come meanwhile
      continue;
    }
    if (closed_) return false;
    sc_core::wait(pushed_);
  }
}

}  // namespace iommusim::traffic

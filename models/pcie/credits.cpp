#include "models/pcie/credits.h"

#include <algorithm>

namespace iommusim::pcie {

using common::Ps;

CreditPool::CreditPool(uint64_t credits) : ring_(credits), capacity_(credits) {}

Ps CreditPool::free_at(uint64_t n, Ps at) const {
  if (infinite()) return at;
  uint64_t free = capacity_ - in_use_;
  Ps t = at;
  for (size_t i = 0; free < n && i < count_; ++i) {
    const Taken& r = ring_[(head_ + i) % ring_.size()];
    free += r.units;
    t = std::max(t, r.release);
  }
  return t;
}

Ps CreditPool::take(uint64_t n, Ps at, Ps release) {
  if (infinite() || n == 0) return at;
  n = std::min(n, capacity_);   // a larger run is split by the caller (Link::send)
  const Ps start = free_at(n, at);
  // Return what the start needs, and what came back before now (no request is earlier).
  const Ps now = common::now_ps();
  while (count_ && (capacity_ - in_use_ < n || ring_[head_].release <= now)) {
    in_use_ -= ring_[head_].units;
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
  ring_[(head_ + count_) % ring_.size()] = Taken{n, std::max(release, start)};
  ++count_;
  in_use_ += n;
  if (start > at) waited_.inc();
  wait_ps_.record(start - at);
  return start;
}

void CreditPool::register_stats(common::StatRegistry& reg, const std::string& p, const std::string& what) const {
  reg.add(p + ".waited", waited_, "count", "TLP runs that waited for " + what + " credits");
  reg.add(p + ".wait", wait_ps_, "ns", "time TLP runs waited for " + what + " credits", 1e-3);
}

}  // namespace iommusim::pcie

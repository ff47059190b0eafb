#include "models/common/resource.h"

#include <algorithm>
#include <limits>

namespace iommusim::common {

namespace {
constexpr Ps kOpen = std::numeric_limits<Ps>::max();   // a hold not yet ended
}  // namespace

BusyUnits::BusyUnits(std::string name, unsigned units) : name_(std::move(name)), busy_(units ? units : 1) {}

Ps BusyUnits::earliest_fit(const Timeline& tl, Ps at, Ps duration) {
  Ps s = at;
  for (const Interval& iv : tl) {
    if (iv.end <= s) continue;
    if (iv.start >= s && iv.start - s >= duration) break;   // the gap before it fits
    s = iv.end;
    if (s == kOpen) break;
  }
  return s;
}

void BusyUnits::forget_past(Timeline& tl, Ps now) {
  // Every request begins at or after the current time, so intervals ended by then are
  // gaps nobody can use.
  if (tl.empty() || tl.front().end > now) return;
  auto first_live = std::find_if(tl.begin(), tl.end(), [&](const Interval& iv) { return iv.end > now; });
  tl.erase(tl.begin(), first_live);
}

void BusyUnits::count(Ps at, Ps start) {
  acquisitions_.inc();
  if (start > at) contended_.inc();
  wait_ps_.record(start - at);
}

Ps BusyUnits::reserve(Ps at, Ps duration) {
  unsigned best = 0;
  Ps best_start = kOpen;
  const Ps now = now_ps();
  for (unsigned u = 0; u < busy_.size(); ++u) {
    Timeline& tl = busy_[u];
    forget_past(tl, now);
    if (tl.empty() || tl.back().end <= at) {   // free from `at` on: the common, uncontended case
      if (duration) tl.emplace_back(at, at + duration);
      count(at, at);
      return at;
    }
    const Ps s = earliest_fit(tl, at, duration);
    if (s < best_start) { best = u; best_start = s; }
    if (s == at) break;
  }
  if (best_start == kOpen) {   // every unit held open: an extra unit, outside the timelines
    overflowed_.inc();
    count(at, at);
    return at;
  }
  Timeline& tl = busy_[best];
  if (duration) {
    auto pos = std::lower_bound(tl.begin(), tl.end(), best_start,
                                [](const Interval& iv, Ps t) { return iv.start < t; });
    tl.emplace(pos, best_start, best_start + duration);
  }
  count(at, best_start);
  return best_start;
}

BusyUnits::Hold BusyUnits::begin(Ps at) {
  unsigned best = 0;
  Ps best_start = kOpen;
  const Ps now = now_ps();
  for (unsigned u = 0; u < busy_.size(); ++u) {
    forget_past(busy_[u], now);
    const Ps s = busy_[u].empty() ? at : std::max(at, busy_[u].back().end);
    if (s < best_start) { best = u; best_start = s; }
  }
  if (best_start == kOpen) {   // every unit held open: an extra unit, outside the timelines
    overflowed_.inc();
    count(at, at);
    return {units(), at};
  }
  busy_[best].emplace_back(best_start, kOpen);
  count(at, best_start);
  return {best, best_start};
}

void BusyUnits::end(const Hold& h, Ps end_time) {
  if (h.unit >= busy_.size()) return;   // an extra unit (overflowed)
  Timeline& tl = busy_[h.unit];
  for (auto it = tl.rbegin(); it != tl.rend(); ++it)
    if (it->start == h.start && it->end == kOpen) { it->end = std::max(end_time, h.start); return; }
}

void BusyUnits::register_stats(StatRegistry& reg, const std::string& prefix) const {
  reg.add(prefix + ".acquisitions", acquisitions_, "count", "units granted of " + name_);
  reg.add(prefix + ".contended", contended_, "count", "acquisitions of " + name_ + " that had to wait");
  reg.add(prefix + ".wait", wait_ps_, "ns", "time spent waiting for " + name_, 1e-3);
  reg.add(prefix + ".overflowed", overflowed_, "count",
          "requests served beyond " + name_ + "'s units because every unit was held by an unfinished hold "
          "(a holder that waited mid-hold; no model does)");
}

}  // namespace iommusim::common

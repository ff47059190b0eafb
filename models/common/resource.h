// A hardware resource with a number of identical units (walker slots, cache lookup ports,
// memory channels, link lanes), modelled as reservations on a timeline per unit: a request
// at annotated time `at` for `duration` takes the earliest time >= at at which some unit
// is free for that long, filling gaps between reservations already made. No process
// blocks on it; the requester adds the wait to its annotated time.
//
// Reservations are made in host execution order: a request is placed among those already
// made and never moves them. A request that in simulated time arrives before an existing
// reservation but runs later on the host may therefore wait behind it (when no gap fits)
// where real hardware would have served it first. Since the kernel runs processes in time
// order and a request annotates only its own latency (a few hundred ns), that displacement
// stays within one DMA's span (docs/architecture.md, "Timing"). Reservations that ended
// before the current simulated time are forgotten, so the timelines stay short.
//
// Contention and queueing in every model come from these, never from hand-computed delays.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/common/clock.h"
#include "models/common/stats.h"

namespace iommusim::common {

class BusyUnits {
 public:
  BusyUnits(std::string name, unsigned units);

  // Reserves a unit for [start, start + duration), start being the earliest time >= at
  // at which one is free for that long. Returns start.
  Ps reserve(Ps at, Ps duration);

  // A reservation whose length is known only at its end (a table walk): begin() takes
  // the unit free soonest after its last reservation (busy until end()) and returns when
  // the hold starts.
  struct Hold { unsigned unit; Ps start; };
  Hold begin(Ps at);
  void end(const Hold& h, Ps end_time);
  // A hold must not span a wait: while every unit is held open, a request is served at
  // once on an extra unit, counted in `overflowed`, rather than never.

  unsigned units() const { return unsigned(busy_.size()); }
  const Histogram& wait_ps() const { return wait_ps_; }
  const Counter& contended() const { return contended_; }
  const std::string& name() const { return name_; }
  void register_stats(StatRegistry& reg, const std::string& prefix) const;

 private:
  // Built in place (emplace_back): a pushed temporary was copied as one 16-byte load of two
  // 8-byte stores, a store-forwarding stall that was 40% of reserve()'s time.
  struct Interval {
    Interval(Ps s, Ps e) : start(s), end(e) {}
    Ps start, end;
  };
  using Timeline = std::vector<Interval>;   // sorted, disjoint

  static Ps earliest_fit(const Timeline& tl, Ps at, Ps duration);
  void forget_past(Timeline& tl, Ps now);
  void count(Ps at, Ps start);

  std::string name_;
  std::vector<Timeline> busy_;
  Histogram wait_ps_;
  Counter acquisitions_, contended_, overflowed_;
};

}  // namespace iommusim::common

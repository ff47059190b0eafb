// Time on the hot path. A DMA's latency is accumulated as an absolute annotated time in
// picoseconds (Ps), in the TLM-2.0 loosely-timed style: blocks add their latency to the
// request's time instead of waiting, and the requester synchronises once (see
// docs/architecture.md, "Timing"). Each block counts latency in cycles of its own clock;
// the cycle period is kept in integer picoseconds, so no sc_time is built per access.
#pragma once
#include <algorithm>
#include <cstdint>

#include <systemc>

namespace iommusim::common {

using Ps = uint64_t;

// Kernel ticks per picosecond (1 at SystemC's default resolution of 1 ps).
inline uint64_t ticks_per_ps() {
  static const uint64_t t = std::max<uint64_t>(1, sc_core::sc_time(1, sc_core::SC_PS).value());
  return t;
}
// Out of line on purpose: inlined, GCC folds `per == 1 ? v : v / per` into an
// unconditional 64-bit divide, which showed as a fifth of BusyUnits::reserve's time.
[[gnu::noinline]] inline uint64_t ticks_to_ps_divided(uint64_t ticks) { return ticks / ticks_per_ps(); }
// The common resolution of 1 ps needs no division.
inline uint64_t to_ps(const sc_core::sc_time& t) {
  return ticks_per_ps() == 1 ? t.value() : ticks_to_ps_divided(t.value());
}
inline sc_core::sc_time from_ps(Ps ps) { return sc_core::sc_time::from_value(ps * ticks_per_ps()); }
// Inline kernel time read: sc_time_stamp() is an out-of-line call that copies an sc_time.
inline Ps now_ps() { return to_ps(sc_core::sc_get_curr_simcontext()->time_stamp()); }
// Suspends the calling SC_THREAD until `t` (no wait when t is not in the future).
inline void wait_until(Ps t) {
  const Ps now = now_ps();
  if (t > now) sc_core::wait(from_ps(t - now));
}

class Clock {
 public:
  Clock() : Clock(sc_core::sc_time(1, sc_core::SC_NS)) {}
  explicit Clock(const sc_core::sc_time& period) : period_(period), period_ps_(to_ps(period)) {}
  // The period is rounded to the kernel's resolution, as sc_time does.
  static Clock from_mhz(double mhz) { return Clock(sc_core::sc_time(1e6 / mhz, sc_core::SC_PS)); }

  const sc_core::sc_time& period() const { return period_; }
  Ps period_ps() const { return period_ps_; }
  Ps cycles_ps(uint64_t n) const { return period_ps_ * n; }
  sc_core::sc_time cycles(uint64_t n) const { return from_ps(cycles_ps(n)); }
  void wait_cycles(uint64_t n) const { if (n) sc_core::wait(cycles(n)); }

 private:
  sc_core::sc_time period_;
  Ps period_ps_;
};

}  // namespace iommusim::common

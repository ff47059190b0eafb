// Each block counts latency in cycles of its own clock; this converts.
#pragma once
#include <cstdint>

#include <systemc>

namespace iommusim::common {

struct Clock {
  sc_core::sc_time period = sc_core::sc_time(1, sc_core::SC_NS);
  static Clock from_mhz(double mhz) { return Clock{sc_core::sc_time(1e6 / mhz, sc_core::SC_PS)}; }
  sc_core::sc_time cycles(uint64_t n) const { return period * double(n); }
  void wait_cycles(uint64_t n) const { if (n) sc_core::wait(cycles(n)); }
};

inline uint64_t to_ps(const sc_core::sc_time& t) {
  return uint64_t(t.value() / sc_core::sc_time(1, sc_core::SC_PS).value());
}

}  // namespace iommusim::common

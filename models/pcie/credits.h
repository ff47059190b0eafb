// One kind of flow-control credit a receiver advertises (PCIe Base Spec 5.0 §2.6.1:
// posted, non-posted or completion; header or data), as busy-until bookkeeping rather than
// a counter that processes wait on.
//
// Models: a pool of `credits` units (0: infinite). A transmitter takes n units for a TLP
// (or a run of TLPs) at annotated time `at`; when fewer are free it starts at the time
// enough have returned. Units return in the order they were taken (a receive queue drains
// in order), each at the time its taker gave when it took it. Nothing waits: the caller
// adds the wait to its annotated time (docs/architecture.md, "Timing style").
// Does not model: credits returned out of order, the UpdateFC DLLP's own bandwidth (the
// link counts DLLPs), credit-limit overflow checks (a correct transmitter never overruns).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/common/clock.h"
#include "models/common/stats.h"

namespace iommusim::pcie {

class CreditPool {
 public:
  explicit CreditPool(uint64_t credits);

  bool infinite() const { return capacity_ == 0; }
  uint64_t capacity() const { return capacity_; }

  // Takes n units (n <= capacity) wanted at `at`, returns the earliest time >= at that they
  // are free (free_at); they come back at `release` (the taker's, known once it has placed
  // its TLPs; at least the returned time).
  common::Ps take(uint64_t n, common::Ps at, common::Ps release);
  // The time take(n, at, ...) would return, without taking anything.
  common::Ps free_at(uint64_t n, common::Ps at) const;

  void register_stats(common::StatRegistry& reg, const std::string& prefix, const std::string& what) const;

 private:
  struct Taken { uint64_t units; common::Ps release; };
  // Taken runs, oldest first, in a ring of `capacity_` slots (each run holds >= 1 unit).
  std::vector<Taken> ring_;
  size_t head_ = 0, count_ = 0;
  uint64_t capacity_, in_use_ = 0;
  common::Counter waited_;
  common::Histogram wait_ps_;
};

}  // namespace iommusim::pcie

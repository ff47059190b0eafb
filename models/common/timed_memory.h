// Direct (DMI-style) access to a memory model, for the accesses an IOMMU makes itself
// (descriptor, configuration and queue reads, event and semaphore writes) and the DMAs it
// forwards. The data moves by pointer instead of a TLM payload, but the memory's timing
// (channels, latency) is still charged. Timing and data are separate calls, so a thread
// that waits for its access (a queue writing a completion record) can move the data when
// the access completes, while the DMA path moves it at once and annotates the time.
#pragma once
#include <cstdint>

#include "models/common/clock.h"

namespace iommusim::common {

enum class AccessKind : uint8_t {
  Structure,    // tables, queues, records: always stored
  DmaPayload,   // a device's data: stored only when the memory is asked to
};

class TimedMemory {
 public:
  virtual ~TimedMemory() = default;
  // The timing of an access of `len` bytes at `addr` beginning at annotated time `t`,
  // which it advances to the access's completion. false: the address is outside the
  // memory (the caller raises its architected abort); no time is charged.
  virtual bool reserve(uint64_t addr, unsigned len, Ps& t) = 0;
  // The data of an access reserve() accepted, without time.
  virtual void transfer(bool write, uint64_t addr, void* data, unsigned len, AccessKind kind) = 0;
};
}  // namespace iommusim::common

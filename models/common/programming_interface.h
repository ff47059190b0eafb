// What a driver reaches besides MMIO, on an I/O MMU or an emulated one (VT-d and AMD; the
// SMMU's, with 32-bit peeks, is its own): the per-entry traces of its command queue (for the
// latency breakdown), untimed register peeks (error messages) and when a fault record was
// written (guest-fault latency).
#pragma once
#include <cstdint>
#include <functional>

#include "models/common/command_trace.h"

namespace iommusim::common {

class ProgrammingInterface {
 public:
  virtual ~ProgrammingInterface() = default;
  virtual void set_command_probe(std::function<void(const CommandTrace&)> probe) = 0;
  virtual uint64_t peek_register(uint64_t offset, unsigned len = 8) = 0;
  // When the fault record in slot `index` (VT-d: FRCD index; AMD: event-log entry) was
  // written, in simulated ps (bookkeeping for latency stats: no register shows it); 0 when
  // unknown.
  virtual uint64_t event_written_ps(uint32_t index) const { (void)index; return 0; }
};

}  // namespace iommusim::common

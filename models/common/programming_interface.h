// What a driver reaches besides MMIO, on an I/O MMU or an emulated one (VT-d and AMD; the
// SMMU's, with 32-bit peeks, is its own): the per-entry traces of its command queue (for the
// latency breakdown) and untimed register peeks (error messages).
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
};

}  // namespace iommusim::common

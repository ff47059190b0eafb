// Per-command timing a model reports to its driver, so the driver can split an
// invalidation's latency into queueing, fetch, execution and sync. A simulator probe,
// not architectural state; every vendor's queue consumer fills the same record.
#pragma once
#include <cstdint>

namespace iommusim::common {

struct CommandTrace {
  uint32_t queue_index = 0;      // the entry's index (SMMU: PROD/CONS value; VT-d/AMD: slot)
  uint8_t opcode = 0;            // the vendor's opcode / descriptor type
  bool illegal = false;
  uint64_t fetch_start_ps = 0, fetch_end_ps = 0, exec_end_ps = 0;
  bool first_of_fetch = false;   // this entry's queue read paid the fetch time
  // A barrier's wait for device ATC invalidation completions (part of its execution).
  uint64_t device_wait_ps = 0;
};

}  // namespace iommusim::common

// A doorbell that traps: a guest driver's queue is emulated by its VMM, and the doorbell
// write returns only once the VMM has consumed the queue (platforms/vmm). The guest driver's
// invalidation record then shows where the write's time went instead of the hardware
// queue's fetch and execution (docs/vmm.md).
#pragma once
#include <cstdint>

namespace iommusim::driver {

// The parts of one trapped doorbell write, in picoseconds; they add up to the write's time.
struct TrapSpans {
  uint64_t trap_ps = 0;          // VM exit and the VMM's register dispatch
  uint64_t vmm_ps = 0;           // VMM user space: reading and decoding guest commands, completing the guest's sync
  uint64_t host_kernel_ps = 0;   // ioctls: syscall, iommufd, the host driver's software
  uint64_t host_queue_ps = 0;    // the host queue: queueing, fetch, execution, device waits, sync
  uint64_t return_ps = 0;        // VM entry
  uint64_t total() const { return trap_ps + vmm_ps + host_kernel_ps + host_queue_ps + return_ps; }
  TrapSpans& operator+=(const TrapSpans& o) {
    trap_ps += o.trap_ps; vmm_ps += o.vmm_ps; host_kernel_ps += o.host_kernel_ps;
    host_queue_ps += o.host_queue_ps; return_ps += o.return_ps;
    return *this;
  }
};

// Who emulates a driver's queue registers: after each doorbell write, the spans of the
// trap it took (all zero when it did not trap); once a sync completed, the spans of the
// emulator's work done outside any trap meanwhile (a VMM iothread's: vmm, host_kernel and
// host_queue only), which fall in the driver's wait rather than in its doorbell write.
class TrappingDoorbell {
 public:
  virtual ~TrappingDoorbell() = default;
  virtual TrapSpans take_doorbell_spans() = 0;
  virtual TrapSpans take_background_spans() = 0;
  // When the emulator last wrote a completion the driver polls for (a virtio used entry),
  // for the oracle's barrier time; 0 when it does not say (the poll's time is used).
  virtual uint64_t last_completion_ps() const { return 0; }
};

}  // namespace iommusim::driver

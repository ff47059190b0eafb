// What every emulated vIOMMU of the VMM shares (platforms/vmm/vsmmuv3.h, vvtd.h): guest
// register accesses that trap, the VMM's big lock, the ioctls it forwards through, and the
// time of a doorbell write split into the trapped path's parts (driver::TrapSpans).
//
// What it models
// - A guest access: a VM exit, the big lock (QEMU's BQL: one vCPU in the VMM at a time,
//   served in arrival order), the VMM's register dispatch, whatever the access starts (the
//   vendor's queue, run in the trapping vCPU), a VM entry; each step charged from VmmCosts on
//   the host CPU's clock.
// - An ioctl: half the syscall and iommufd's part (plus the caller's per-call extra) before
//   the host kernel's work, the other half after; its time is host_kernel except what the
//   host driver's queue spent (host_queue).
// - When the guest's queue runs (VmmCompletion): inside the trap that let it run
//   (synchronous), or in the VMM's iothread once the trap returned (deferred): it wakes,
//   takes the big lock like any vCPU, runs the queue; its spans go to the guest record that
//   next completes (take_background_spans), so with several vCPUs one record may take work
//   done for another's commands.
// - Counts: doorbell, other write and read exits, ioctls and failed ones, lock waits, and
//   the host queue entries each queue run's ioctls wrote (commands and barriers: the fan-out
//   of one guest batch; host work of other threads overlapping an ioctl counts too).
//
// What it does not model: several vCPUs' exits overlapping in the VMM (the lock serialises
// them), ioeventfd-style exits without the big lock.
#pragma once
#include <cstdint>
#include <string>

#include <systemc>
#include <tlm>

#include "models/common/clock.h"
#include "models/common/stats.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/trap_spans.h"
#include "platforms/vmm/errno.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::vmm {

// What every emulated vIOMMU's config starts with: what its steps cost, when it runs the
// guest's queue, and the clock of the host CPU the VMM runs on (driver.cpu_mhz).
struct TrappedMmioConfig {
  VmmCosts costs;
  VmmCompletion completion = VmmCompletion::Synchronous;
  double cpu_mhz = 2000;
};

class TrappedMmio : public driver::TrappingDoorbell {
 public:
  driver::TrapSpans take_doorbell_spans() override;
  driver::TrapSpans take_background_spans() override;

 protected:
  TrappedMmio(const TrappedMmioConfig& cfg, const driver::DriverBase& host);

  // A register write let the guest's queue run (its doorbell, or a write that restarts a
  // stopped queue): run_queue follows within this trap, or in the iothread.
  void queue_may_run() { queue_may_run_ = true; }
  // Runs the vendor's queue until it is idle or stopped; the caller holds the big lock.
  // Returns whether it consumed anything.
  virtual bool run_queue() = 0;

  // A guest access: exit, lock, dispatch, `emulate` (the register access and what it
  // starts), entry. `doorbell`: the access is the queue's doorbell, whose spans the guest
  // driver's record shows.
  template <class Emulate>
  void trap(tlm::tlm_generic_payload& p, sc_core::sc_time& delay, bool doorbell, Emulate&& emulate) {
    const uint64_t t_exit = enter(delay);
    emulate();
    bool woke_iothread = false;
    if (queue_may_run_) {
      if (completion_ == VmmCompletion::Synchronous) {
        run_pending_queue();
      } else {
        woke_iothread = !iothread_woken_;
        iothread_woken_ = true;
        iothread_kick_.notify(sc_core::SC_ZERO_TIME);
      }
    }
    leave(t_exit, doorbell, p.is_write(), woke_iothread);
  }
  // One ioctl with `extra_cycles` of the caller's kernel work before the call.
  template <class Call>
  Errno ioctl(uint64_t extra_cycles, Call&& call) {
    const IoctlStart s = ioctl_begin(extra_cycles);
    const Errno e = call();
    ioctl_end(s, e);
    return e;
  }

  // IOMMU_HWPT_INVALIDATE of `guest_commands` forwarded guest commands: an ioctl whose host
  // queue entries (commands and barriers) per guest command go to
  // host_commands_per_guest_invalidation (rounded up when a call carries several).
  template <class Call>
  Errno invalidate_ioctl(uint64_t extra_cycles, uint32_t guest_commands, Call&& call) {
    const uint64_t before = host_.commands_issued();
    const Errno e = ioctl(extra_cycles, std::forward<Call>(call));
    if (guest_commands)
      host_commands_per_guest_inv_.record((host_.commands_issued() - before + guest_commands - 1) / guest_commands);
    return e;
  }

  // <p>.exits.{doorbell,mmio_write,mmio_read}, then <p>.ioctls, .ioctl_errors, .bql_wait.
  void register_exit_stats(common::StatRegistry& reg, const std::string& p, const char* doorbell_what,
                           const char* read_what) const;
  void register_ioctl_stats(common::StatRegistry& reg, const std::string& p, const char* error_what) const;
  // <p>.host_commands_per_guest_invalidation (vIOMMUs that forward with invalidate_ioctl).
  void register_fanout_stats(common::StatRegistry& reg, const std::string& p) const;

  VmmCosts costs_;
  common::Clock cpu_;
  const driver::DriverBase& host_;

 private:
  struct IoctlStart { uint64_t t0, queue0, commands0; };
  uint64_t enter(sc_core::sc_time& delay);
  void leave(uint64_t t_exit, bool doorbell, bool write, bool woke_iothread);
  // The big lock, served in ticket order (taken when `ticket` was drawn); the wait, in ps.
  uint64_t wait_for_lock(uint64_t ticket);
  void release_lock();
  void run_pending_queue();
  void iothread();
  IoctlStart ioctl_begin(uint64_t extra_cycles);
  void ioctl_end(const IoctlStart& s, Errno e);

  VmmCompletion completion_;
  bool queue_may_run_ = false;
  bool iothread_woken_ = false;   // a trap has woken the iothread for its next run
  // When the vCPU whose trap woke the iothread for its current run was back in the guest.
  uint64_t next_ticket_ = 0, serving_ = 0, host_commands_ = 0, waker_returned_ps_ = 0;
  sc_core::sc_event lock_released_, iothread_kick_;
  driver::TrapSpans current_, doorbell_spans_, background_spans_;
  common::Counter doorbell_exits_, write_exits_, read_exits_, ioctls_, ioctl_errors_, iothread_runs_;
  common::Histogram bql_wait_ps_, host_commands_per_run_, host_commands_per_guest_inv_;
};

}  // namespace iommusim::vmm

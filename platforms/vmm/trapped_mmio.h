// What every emulated vIOMMU of the VMM shares (platforms/vmm/vsmmuv3.h, vvtd.h,
// vamdvi.h): guest register accesses that trap, the VMM's big lock, the ioctls it forwards
// through, the time of a doorbell write split into the trapped path's parts
// (driver::TrapSpans), and the way of a guest fault from the host to the guest.
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
// - Guest faults (docs/vmm.md, "Guest faults"), the part every vendor shares: the vEVENTQ's
//   allocation when the guest enables its fault reporting (an ioctl inside that trap); the
//   host's event interrupt (its threaded handler wakes, the host driver drains its records
//   and reports a guest's to the vEVENTQ); the eventfd waking the VMM, which reads the
//   vEVENTQ one entry per read() and has the vendor write each into the guest's own fault
//   log (write_guest_event); then the guest's event interrupt. Counts and the latency from
//   the host's record to the guest's.
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
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::vmm {

// What every emulated vIOMMU's config starts with: what its steps cost, when it runs the
// guest's queue, and the clock of the host CPU the VMM runs on (driver.cpu_mhz).
struct TrappedMmioConfig {
  VmmCosts costs;
  VmmCompletion completion = VmmCompletion::Synchronous;
  double cpu_mhz = 2000;
  uint32_t veventq_depth = 0;   // 0: the size of the guest's own fault log, as QEMU asks
};

class TrappedMmio : public driver::TrappingDoorbell {
 public:
  driver::TrapSpans take_doorbell_spans() override;
  driver::TrapSpans take_background_spans() override;

  uint32_t veventq_id() const { return veventq_id_; }   // 0: none yet
  struct EventStats {
    common::Counter reported, forwarded, lost, reads;
    common::Histogram latency_ps;   // host's fault record written -> the guest's written
  };
  const EventStats& event_stats() const { return events_; }

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
  // A doorbell the host kernel handles itself (KVM ioeventfd): `exit_cycles` for the exit
  // and the resume (all trap time), no big lock and no VMM dispatch; the VMM's iothread runs
  // the queue afterwards. Needs vmm.completion = deferred (the iothread).
  void kernel_doorbell(sc_core::sc_time& delay, uint64_t exit_cycles);
  // One ioctl with `extra_cycles` of the caller's kernel work before the call.
  template <class Call>
  Errno ioctl(uint64_t extra_cycles, Call&& call) {
    const IoctlStart s = ioctl_begin(extra_cycles);
    const Errno e = call();
    ioctl_end(s, e);
    return e;
  }

  // Guest faults. Allocates the vEVENTQ of `type` on `owner` (a vIOMMU; VT-d: the nest
  // parent) with `guest_depth` entries unless configured, once; a failure leaves the guest
  // without events, as QEMU reports it and goes on.
  void alloc_veventq(Iommufd& fd, uint32_t owner, driver::VeventqType type, uint32_t guest_depth);
  // The host's event interrupt: its threaded handler wakes and runs the host driver's
  // handler `drain`, which reports a guest's records to the vEVENTQ (each charged as
  // iommufd's report); then the VMM delivers them. True when the guest's event interrupt
  // was injected (its driver's handler should run).
  template <class HostDriver>
  bool host_event_interrupt(HostDriver& host, unsigned (HostDriver::*drain)()) {
    const uint64_t raised = common::now_ps();
    cpu_.wait_cycles(costs_.event_irq_cycles);
    const uint64_t before = host.events_reported();
    (host.*drain)();
    cpu_.wait_cycles(costs_.event_report_cycles * (host.events_reported() - before));
    // With any the host driver reported while it polled its own queue (AMD: its completion
    // wait watches the event log), untimed there.
    events_.reported.inc(host.events_reported() - reported_seen_);
    reported_seen_ = host.events_reported();
    return deliver_events(raised);
  }
  // One vEVENTQ entry into the guest's fault log (a record, or the LOST_EVENTS header:
  // kVeventqFlagLostEvents); true when the guest has something to see. The vendor calls
  // event_forwarded or event_lost.
  virtual bool write_guest_event(const Vevent& e) = 0;
  void event_forwarded(const Vevent& e);
  // Entry `e` lost: one record, or as many as a LOST_EVENTS header stands for.
  void event_lost(const Vevent& e) { events_.lost.inc(e.header.flags & kVeventqFlagLostEvents ? header_records_ : 1); }
  // <p>.events.{reported,forwarded,lost,reads} and <p>.event_latency; `log` names the
  // guest's fault log.
  void register_event_stats(common::StatRegistry& reg, const std::string& p, const char* reported_what,
                            const char* log) const;
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
  // The VMM's vEVENTQ handler, when the vEVENTQ is readable: reads each entry and puts it in
  // the guest's log; then the guest's event interrupt. True when it was injected. Entries
  // the IOMMU wrote after the interrupt was `raised` wait for their own interrupt: a host
  // driver may meet a record before its annotated write time (a DMA's thread runs ahead;
  // the AMD driver peeks at its log while polling).
  bool deliver_events(uint64_t raised);

  VmmCompletion completion_;
  bool queue_may_run_ = false;
  bool iothread_woken_ = false;   // a trap has woken the iothread for its next run
  // When the vCPU whose trap woke the iothread for its current run was back in the guest.
  uint64_t next_ticket_ = 0, serving_ = 0, host_commands_ = 0, waker_returned_ps_ = 0;
  sc_core::sc_event lock_released_, iothread_kick_;
  driver::TrapSpans current_, doorbell_spans_, background_spans_;
  common::Counter doorbell_exits_, write_exits_, read_exits_, ioctls_, ioctl_errors_, iothread_runs_;
  common::Histogram bql_wait_ps_, host_commands_per_run_, host_commands_per_guest_inv_;
  Iommufd* events_fd_ = nullptr;
  uint32_t veventq_id_ = 0;
  uint32_t veventq_depth_;
  uint64_t reported_seen_ = 0;   // the host driver's reports counted so far
  uint32_t last_sequence_ = 0;   // of the last vEVENTQ entry read
  bool sequence_seen_ = false;
  uint64_t header_records_ = 1;  // the records the LOST_EVENTS header just read stands for
  EventStats events_;
};

}  // namespace iommusim::vmm

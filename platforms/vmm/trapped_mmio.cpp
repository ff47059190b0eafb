#include "platforms/vmm/trapped_mmio.h"

#include <algorithm>

namespace iommusim::vmm {

using common::now_ps;

TrappedMmio::TrappedMmio(const TrappedMmioConfig& cfg, const driver::DriverBase& host)
    : costs_(cfg.costs), cpu_(common::Clock::from_mhz(cfg.cpu_mhz)), host_(host), completion_(cfg.completion),
      veventq_depth_(cfg.veventq_depth) {
  if (completion_ == VmmCompletion::Deferred)
    sc_core::sc_spawn([this] { iothread(); }, sc_core::sc_gen_unique_name("vmm_iothread"));
}

driver::TrapSpans TrappedMmio::take_doorbell_spans() {
  const driver::TrapSpans s = doorbell_spans_;
  doorbell_spans_ = {};
  return s;
}

driver::TrapSpans TrappedMmio::take_background_spans() {
  const driver::TrapSpans s = background_spans_;
  background_spans_ = {};
  return s;
}

uint64_t TrappedMmio::wait_for_lock(uint64_t ticket) {
  const uint64_t t0 = now_ps();
  while (serving_ != ticket) sc_core::wait(lock_released_);
  return now_ps() - t0;
}

void TrappedMmio::release_lock() {
  ++serving_;
  lock_released_.notify(sc_core::SC_ZERO_TIME);
}

// VM exit, the big lock, the VMM's dispatch; returns when the exit began.
uint64_t TrappedMmio::enter(sc_core::sc_time& delay) {
  if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
  const uint64_t t_exit = now_ps();
  const uint64_t ticket = next_ticket_++;
  uint64_t lock_wait = 0;
  if (serving_ == ticket) {   // the lock is free: exit and dispatch in one wait
    cpu_.wait_cycles(costs_.exit_cycles + costs_.reg_access_cycles);
  } else {
    cpu_.wait_cycles(costs_.exit_cycles);
    lock_wait = wait_for_lock(ticket);
    cpu_.wait_cycles(costs_.reg_access_cycles);
  }
  bql_wait_ps_.record(lock_wait);
  current_ = {};
  host_commands_ = 0;
  current_.trap_ps = now_ps() - t_exit - lock_wait;
  return t_exit;
}

// The lock's release and the VM entry; what the access spent in between, apart from its
// ioctls, is the VMM's.
void TrappedMmio::leave(uint64_t t_exit, bool doorbell, bool write, bool woke_iothread) {
  // This access's spans, before the next vCPU in the VMM starts its own in current_.
  driver::TrapSpans mine = current_;
  release_lock();
  const uint64_t t_entry = now_ps();
  cpu_.wait_cycles(costs_.entry_cycles);
  mine.return_ps = now_ps() - t_entry;
  const uint64_t total = now_ps() - t_exit;
  mine.vmm_ps = total - mine.trap_ps - mine.host_kernel_ps - mine.host_queue_ps - mine.return_ps;
  (doorbell ? doorbell_exits_ : write ? write_exits_ : read_exits_).inc();
  if (doorbell) doorbell_spans_ += mine;
  if (woke_iothread) waker_returned_ps_ = now_ps();
}

void TrappedMmio::kernel_doorbell(sc_core::sc_time& delay, uint64_t exit_cycles) {
  if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
  const uint64_t t0 = now_ps();
  cpu_.wait_cycles(exit_cycles);
  driver::TrapSpans mine;
  mine.trap_ps = now_ps() - t0;
  doorbell_spans_ += mine;
  doorbell_exits_.inc();
  queue_may_run_ = true;
  // As a trap's deferred doorbell: the kick always, the waker's return time when it woke the iothread.
  const bool woke_iothread = !iothread_woken_;
  iothread_woken_ = true;
  iothread_kick_.notify(sc_core::SC_ZERO_TIME);
  if (woke_iothread) waker_returned_ps_ = now_ps();
}

// In the lock: the queue until nothing more lets it run (a run may restart it). A run
// that found the queue empty (an enable or acknowledge write) is not a queue run.
void TrappedMmio::run_pending_queue() {
  bool consumed = false;
  while (queue_may_run_) {
    queue_may_run_ = false;
    consumed |= run_queue();
  }
  if (consumed) host_commands_per_run_.record(host_commands_);
}

// vmm.completion = deferred: woken by a trap that let the queue run, after that trap's own
// lock; its work is VMM time (wake-up and lock wait included) but for its ioctls.
void TrappedMmio::iothread() {
  for (;;) {
    while (!queue_may_run_) sc_core::wait(iothread_kick_);
    const uint64_t t0 = now_ps();
    cpu_.wait_cycles(costs_.iothread_wakeup_cycles);
    bql_wait_ps_.record(wait_for_lock(next_ticket_++));
    iothread_woken_ = false;   // doorbells from here on wake it for its next run
    current_ = {};
    host_commands_ = 0;
    run_pending_queue();
    driver::TrapSpans mine = current_;
    release_lock();
    mine.vmm_ps = now_ps() - t0 - mine.host_kernel_ps - mine.host_queue_ps;
    // Its wake-up overlapped the VM entry of the vCPU that woke it, which that vCPU's
    // record has as return (another vCPU's traps meanwhile are the iothread's wait).
    if (waker_returned_ps_ > t0) mine.vmm_ps -= std::min(mine.vmm_ps, waker_returned_ps_ - t0);
    background_spans_ += mine;
    iothread_runs_.inc();
  }
}

TrappedMmio::IoctlStart TrappedMmio::ioctl_begin(uint64_t extra_cycles) {
  const IoctlStart s{now_ps(), host_.queue_time_ps(), host_.commands_issued()};
  cpu_.wait_cycles(costs_.syscall_cycles / 2 + costs_.iommufd_call_cycles + extra_cycles);
  return s;
}

void TrappedMmio::ioctl_end(const IoctlStart& s, Errno e) {
  cpu_.wait_cycles(costs_.syscall_cycles - costs_.syscall_cycles / 2);
  const uint64_t host_queue = host_.queue_time_ps() - s.queue0;
  current_.host_queue_ps += host_queue;
  current_.host_kernel_ps += now_ps() - s.t0 - host_queue;
  host_commands_ += host_.commands_issued() - s.commands0;
  ioctls_.inc();
  if (e != Errno::Ok) ioctl_errors_.inc();
}

void TrappedMmio::alloc_veventq(Iommufd& fd, uint32_t owner, driver::VeventqType type, uint32_t guest_depth) {
  if (veventq_id_ || !owner) return;
  const uint32_t depth = veventq_depth_ ? veventq_depth_ : guest_depth;
  if (ioctl(0, [&] { return fd.veventq_alloc(0, owner, type, depth, &veventq_id_); }) == Errno::Ok) events_fd_ = &fd;
}

bool TrappedMmio::deliver_events(uint64_t raised) {
  const auto readable = [&] {
    return events_fd_->veventq_readable(veventq_id_) && events_fd_->veventq_next_recorded_ps(veventq_id_) <= raised;
  };
  // The eventfd wakes the VMM only when the vEVENTQ has something to read.
  if (!veventq_id_ || !readable()) return false;
  cpu_.wait_cycles(costs_.event_wakeup_cycles);
  bool inject = false;
  // The main loop calls the handler while the fd polls readable; each call is one read().
  while (readable()) {
    Vevent e;
    uint32_t n = 0;
    cpu_.wait_cycles(costs_.syscall_cycles + costs_.iommufd_call_cycles);
    events_fd_->veventq_read(veventq_id_, &e, 1, &n);
    events_.reads.inc();
    if (!n) continue;
    // iommufd_viommu_report_event numbers every report, dropped or not: a LOST_EVENTS header
    // carries the newest dropped one's sequence and stands for every sequence since the last
    // entry read; a record after a gap follows drops whose header it replaced.
    const uint32_t gap = sequence_seen_ ? ((e.header.sequence - last_sequence_) & 0x7FFFFFFFu) : 1;
    if (e.header.flags & kVeventqFlagLostEvents) {
      header_records_ = gap;
    } else if (gap > 1) {
      events_.lost.inc(gap - 1);
    }
    last_sequence_ = e.header.sequence;
    sequence_seen_ = true;
    inject |= write_guest_event(e);
  }
  if (inject) cpu_.wait_cycles(costs_.irq_inject_cycles);
  return inject;
}

void TrappedMmio::event_forwarded(const Vevent& e) {
  events_.forwarded.inc();
  events_.latency_ps.record(now_ps() - e.recorded_ps);
}

void TrappedMmio::register_event_stats(common::StatRegistry& reg, const std::string& p, const char* reported_what,
                                       const char* log) const {
  reg.add(p + ".events.reported", events_.reported, "count", reported_what);
  reg.add(p + ".events.forwarded", events_.forwarded, "count", std::string("guest fault records written into ") + log);
  reg.add(p + ".events.lost", events_.lost, "count",
          std::string("guest fault records lost: the vEVENTQ's LOST_EVENTS, or a full ") + log);
  reg.add(p + ".events.reads", events_.reads, "count", "read() calls on the vEVENTQ");
  reg.add(p + ".event_latency", events_.latency_ps, "ns",
          std::string("a guest fault: its host record written -> written in ") + log, 1e-3);
}

void TrappedMmio::register_exit_stats(common::StatRegistry& reg, const std::string& p, const char* doorbell_what,
                                      const char* read_what) const {
  reg.add(p + ".exits.doorbell", doorbell_exits_, "count", doorbell_what);
  reg.add(p + ".exits.mmio_write", write_exits_, "count", "other trapped guest register writes");
  reg.add(p + ".exits.mmio_read", read_exits_, "count", read_what);
  reg.add(p + ".host_commands_per_queue_run", host_commands_per_run_, "count",
          "host queue entries (commands and barriers) one run of the guest's queue cost");
  if (completion_ == VmmCompletion::Deferred)
    reg.add(p + ".iothread_runs", iothread_runs_, "count", "runs of the guest's queue in the VMM's iothread");
}

void TrappedMmio::register_fanout_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".host_commands_per_guest_invalidation", host_commands_per_guest_inv_, "count",
          "host queue entries (commands and barriers) per forwarded guest invalidation command: the cache-tag "
          "policies' fan-out (vmm.amd_domid, vmm.arm_vmid)");
}

void TrappedMmio::register_ioctl_stats(common::StatRegistry& reg, const std::string& p, const char* error_what) const {
  reg.add(p + ".ioctls", ioctls_, "count", "iommufd calls the VMM made for the guest");
  reg.add(p + ".ioctl_errors", ioctl_errors_, "count", error_what);
  reg.add(p + ".bql_wait", bql_wait_ps_, "ns", "a trapped access's wait for the VMM's big lock", 1e-3);
}

}  // namespace iommusim::vmm

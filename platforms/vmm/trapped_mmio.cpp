#include "platforms/vmm/trapped_mmio.h"

namespace iommusim::vmm {

using common::now_ps;

TrappedMmio::TrappedMmio(const VmmCosts& costs, double cpu_mhz, const driver::DriverBase& host)
    : costs_(costs), cpu_(common::Clock::from_mhz(cpu_mhz)), host_(host) {}

driver::TrapSpans TrappedMmio::take_doorbell_spans() {
  const driver::TrapSpans s = doorbell_spans_;
  doorbell_spans_ = {};
  return s;
}

// VM exit, the big lock, the VMM's dispatch; returns when the exit began.
uint64_t TrappedMmio::enter(sc_core::sc_time& delay) {
  if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
  const uint64_t t_exit = now_ps();
  const uint64_t ticket = next_ticket_++;
  lock_wait_ps_ = 0;
  if (serving_ == ticket) {   // the lock is free: exit and dispatch in one wait
    cpu_.wait_cycles(costs_.exit_cycles + costs_.reg_access_cycles);
  } else {
    cpu_.wait_cycles(costs_.exit_cycles);
    const uint64_t t_lock = now_ps();
    while (serving_ != ticket) sc_core::wait(lock_released_);
    lock_wait_ps_ = now_ps() - t_lock;
    cpu_.wait_cycles(costs_.reg_access_cycles);
  }
  bql_wait_ps_.record(lock_wait_ps_);
  current_ = {};
  host_commands_ = 0;
  current_.trap_ps = now_ps() - t_exit - lock_wait_ps_;
  return t_exit;
}

// The lock's release and the VM entry; what the access spent in between, apart from its
// ioctls, is the VMM's.
void TrappedMmio::leave(uint64_t t_exit, bool doorbell, bool write) {
  // This access's spans, before the next vCPU in the VMM starts its own in current_.
  driver::TrapSpans mine = current_;
  const uint64_t host_commands = host_commands_;
  ++serving_;
  lock_released_.notify(sc_core::SC_ZERO_TIME);
  const uint64_t t_entry = now_ps();
  cpu_.wait_cycles(costs_.entry_cycles);
  mine.return_ps = now_ps() - t_entry;
  const uint64_t total = now_ps() - t_exit;
  mine.vmm_ps = total - mine.trap_ps - mine.host_kernel_ps - mine.host_queue_ps - mine.return_ps;
  (doorbell ? doorbell_exits_ : write ? write_exits_ : read_exits_).inc();
  if (doorbell) {
    doorbell_spans_ += mine;
    host_commands_per_doorbell_.record(host_commands);
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
  host_commands_ += host_.commands_issued() - s.commands0;
  current_.host_kernel_ps += now_ps() - s.t0 - host_queue;
  ioctls_.inc();
  if (e != Errno::Ok) ioctl_errors_.inc();
}

void TrappedMmio::register_exit_stats(common::StatRegistry& reg, const std::string& p, const char* doorbell_what,
                                      const char* read_what) const {
  reg.add(p + ".exits.doorbell", doorbell_exits_, "count", doorbell_what);
  reg.add(p + ".exits.mmio_write", write_exits_, "count", "other trapped guest register writes");
  reg.add(p + ".exits.mmio_read", read_exits_, "count", read_what);
  reg.add(p + ".host_commands_per_doorbell", host_commands_per_doorbell_, "count",
          "host queue entries (commands and barriers) one guest doorbell cost");
}

void TrappedMmio::register_ioctl_stats(common::StatRegistry& reg, const std::string& p, const char* error_what) const {
  reg.add(p + ".ioctls", ioctls_, "count", "iommufd calls the VMM made for the guest");
  reg.add(p + ".ioctl_errors", ioctl_errors_, "count", error_what);
  reg.add(p + ".bql_wait", bql_wait_ps_, "ns", "a trapped access's wait for the VMM's big lock", 1e-3);
}

}  // namespace iommusim::vmm

// The AMD IOMMU's MMIO programming interface (AMD 48882 §3.4): the registers software sees,
// with their write rules, the command buffer they describe and the event log they point
// at. One definition serves the AMD IOMMU model and a VMM's emulated vAMD
// (platforms/vmm/vamdvi.h), which differ in what EFR advertises, where the event log's
// records are stored and what runs the command buffer.
//
// What it models
// - DEV_TABLE_BASE, CMD_BUF_BASE, EVT_LOG_BASE (address and length fields writable),
//   CONTROL (CmdBufEn / EventLogEn 0 -> 1 restart a stopped buffer / log), EXCL_BASE /
//   LIMIT, EFR and EFR2 (read-only: the caps and GCR3TRPMode), the command-buffer and
//   event-log head / tail byte offsets, STATUS (RW1C interrupt and overflow bits, *Run
//   read-only).
// - The command buffer as these registers describe it (enabled, not stopped, head != tail),
//   its stop on an illegal command or a failed fetch (CmdBufRun = 0 until CmdBufEn is
//   toggled), and the record it logs then (ILLEGAL_COMMAND_ERROR / COMMAND_HW_ERROR).
// - The event log's slot bookkeeping: a record is lost while the log is off or stopped, or
//   has a bad length; a full log stops it with EvtOverflow; a stored record moves the tail
//   and raises EventLogInt when enabled. COMPLETION_WAIT's I: Status.ComWaitInt.
//
// What it does not model: the PPR log, GA log, MSI registers, performance counters,
// interrupt messages (the Status bits are set, no MSI is written).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>

#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"
#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/programming_interface.h"
#include "models/common/register_file.h"

namespace iommusim::amdvi {

// What a driver reaches besides MMIO, on the unit or an emulated one.
using ProgrammingInterface = common::ProgrammingInterface;

// The record a command buffer's error halt logs: ILLEGAL_COMMAND_ERROR (an illegal entry,
// or one whose execution failed), or COMMAND_HW_ERROR for a failed fetch; at the
// command's (the batch's) address.
EventRecord queue_halt_record(const common::QueueError& e);

class RegisterBlock {
 public:
  using R64 = common::Reg<uint64_t>;
  struct Hooks {
    std::function<void()> queue_may_run;   // a CmdBufTail write, CmdBufEn 0 -> 1
    std::function<void()> control_written = nullptr;   // any Control write (HW vIOMMU: VCmdEn, vIommuEn)
  };

  // Adds the registers to `file`; EFR from `caps`, EFR2.GCR3TRPMode set.
  RegisterBlock(common::RegisterFile& file, const Caps& caps, Hooks hooks);

  R64 dev_table_base, cmd_buf_base, evt_log_base, control, excl_base, excl_limit, efr, efr2;
  R64 cmd_buf_head, cmd_buf_tail, evt_log_head, evt_log_tail, status;

  const Caps& caps() const { return caps_; }
  // Decodes the command `e` with these caps: a legal one into `out`.
  common::Decoded decode_queue_entry(const uint64_t* e, Command& out) const;
  // The command buffer (common::CommandQueueVendor::queue_state): ready while CmdBufEn is
  // set, the buffer has not stopped, its length is legal and head != tail.
  common::QueueState cmd_state() const;
  void cmd_consumed(uint32_t head) { cmd_buf_head.set(uint64_t(head) * reg::kEntryBytes); }
  // The buffer stops (CmdBufRun = 0, head on the entry); returns the record to log.
  EventRecord cmd_halt(const common::QueueError& e);
  // Where the next event record goes, or nullopt when it is lost (a full log stops here).
  std::optional<uint64_t> evt_log_slot();
  // The record is stored at the slot: the tail moves, EventLogInt if enabled.
  void evt_log_stored();
  // Records were lost (the log was full, or an emulated unit's source dropped them):
  // EvtOverflow, and logging stops until software restarts it.
  void evt_log_overflow();
  void completion_wait_interrupt() { status.set<reg::STS_COMWAIT_INT>(1); }

 private:
  Caps caps_;
  Hooks hooks_;
  bool cmd_halted_ = false;   // an illegal command stopped the buffer until CmdBufEn is toggled
  bool evt_halted_ = false;   // the log overflowed until EventLogEn is toggled
};

}  // namespace iommusim::amdvi

#include "models/amdvi/register_block.h"

#include <utility>

#include "models/common/bits.h"
#include "models/common/queue_ring.h"

namespace iommusim::amdvi {

using namespace reg;

RegisterBlock::RegisterBlock(common::RegisterFile& f, const Caps& caps, Hooks hooks)
    : dev_table_base{f, "DEV_TABLE_BASE", DEV_TABLE_BASE}, cmd_buf_base{f, "CMD_BUF_BASE", CMD_BUF_BASE},
      evt_log_base{f, "EVT_LOG_BASE", EVT_LOG_BASE}, control{f, "CONTROL", CONTROL},
      excl_base{f, "EXCL_BASE", EXCL_BASE}, excl_limit{f, "EXCL_LIMIT", EXCL_LIMIT}, efr{f, "EFR", EFR},
      efr2{f, "EFR2", EFR2}, cmd_buf_head{f, "CMD_BUF_HEAD", CMD_BUF_HEAD},
      cmd_buf_tail{f, "CMD_BUF_TAIL", CMD_BUF_TAIL}, evt_log_head{f, "EVT_LOG_HEAD", EVT_LOG_HEAD},
      evt_log_tail{f, "EVT_LOG_TAIL", EVT_LOG_TAIL}, status{f, "STATUS", STATUS}, caps_(caps),
      hooks_(std::move(hooks)) {
  const uint64_t base_mask = common::mask(51, 12);
  dev_table_base.writable(base_mask | common::mask(8, 0));
  cmd_buf_base.writable(base_mask | common::mask(59, 56));
  evt_log_base.writable(base_mask | common::mask(59, 56));
  control.on_write([this](uint64_t old, uint64_t v) {
    // CmdBufEn 0->1 restarts a halted buffer; EventLogEn 0->1 restarts a stopped log.
    if (!CTRL_CMD_BUF_EN::get(v)) cmd_halted_ = false;
    if (!CTRL_EVT_LOG_EN::get(v)) evt_halted_ = false;
    status.set<STS_CMD_BUF_RUN>(CTRL_CMD_BUF_EN::get(v) && !cmd_halted_);
    status.set<STS_EVT_LOG_RUN>(CTRL_EVT_LOG_EN::get(v) && !evt_halted_);
    if (CTRL_CMD_BUF_EN::get(v) && !CTRL_CMD_BUF_EN::get(old)) hooks_.queue_may_run();
    if (hooks_.control_written) hooks_.control_written();
  });
  excl_base.writable(base_mask | 3);
  excl_limit.reset(0xFFF).writable(base_mask);
  efr.read_only().reset(encode_efr(caps_));
  efr2.read_only().reset(EFR2_GCR3TRP_MODE::set(0, 1));   // GCR3TRPMode supported
  // Head/tail: byte offsets, bits [18:4]. The head of the command buffer and the tail of
  // the log are the IOMMU's; software writes them only to reset (while disabled).
  cmd_buf_head.writable(common::mask(18, 4));
  cmd_buf_tail.writable(common::mask(18, 4)).on_write([this](uint64_t, uint64_t) { hooks_.queue_may_run(); });
  evt_log_head.writable(common::mask(18, 4));
  evt_log_tail.writable(common::mask(18, 4));
  // Status: software writes ones to clear the interrupt/overflow bits; *_RUN are read-only.
  status.read_only().w1c(kStatusRw1cMask);
}

common::Decoded RegisterBlock::decode_queue_entry(const uint64_t* e, Command& out) const {
  common::Decoded d;
  const auto cmd = decode_command(CmdWords{e[0], e[1]}, caps_, nullptr);
  if (!cmd) return d;
  out = *cmd;
  d.legal = true;
  d.type = uint8_t(cmd->op);
  d.barrier = cmd->op == Opcode::CompletionWait;
  return d;
}

common::QueueState RegisterBlock::cmd_state() const {
  common::QueueState q;
  const uint64_t base = cmd_buf_base.get();
  const unsigned len = unsigned(CMD_BUF_LEN::get(base));
  const bool len_ok = len >= kMinLogLen && len <= kMaxLogLen;
  q.ring = common::IndexRing{len_ok ? len : kMinLogLen, false};
  q.base = CMD_BUF_BASE_ADDR::get_address(base);
  q.entry_bytes = kEntryBytes;
  // Head and tail are byte offsets into the buffer.
  const uint64_t bytes = log_entries(q.ring.log2size) * kEntryBytes;
  q.head = uint32_t(RING_PTR::get_address(cmd_buf_head.get()) % bytes / kEntryBytes);
  q.tail = uint32_t(RING_PTR::get_address(cmd_buf_tail.get()) % bytes / kEntryBytes);
  if (control.get<CTRL_CMD_BUF_EN>() && !cmd_halted_ && len_ok && !q.ring.empty(q.tail, q.head))
    q.status = common::QueueState::Status::Ready;
  return q;
}

// ILLEGAL_COMMAND_ERROR at the command's address (a failed fetch: COMMAND_HW_ERROR at the
// batch's); Head stays on it and the buffer stops (CmdBufRun=0) until CmdBufEn is toggled.
EventRecord queue_halt_record(const common::QueueError& e) {
  EventRecord ev;
  if (e.kind == common::QueueError::Kind::FetchAbort) {
    ev.code = EventCode::CommandHwError;
    ev.type = kHwErrMasterAbort;
  } else {
    ev.code = EventCode::IllegalCommandError;
  }
  ev.address = e.address;
  return ev;
}

EventRecord RegisterBlock::cmd_halt(const common::QueueError& e) {
  cmd_halted_ = true;
  status.set<STS_CMD_BUF_RUN>(0);
  return queue_halt_record(e);
}

std::optional<uint64_t> RegisterBlock::evt_log_slot() {
  if (!control.get<CTRL_EVT_LOG_EN>() || evt_halted_) return std::nullopt;
  const uint64_t base = evt_log_base.get();
  const unsigned len = unsigned(EVT_LOG_LEN::get(base));
  if (len < kMinLogLen || len > kMaxLogLen) return std::nullopt;
  const common::OffsetRing ring{log_entries(len) * kEntryBytes, kEntryBytes};
  const uint64_t head = RING_PTR::get_address(evt_log_head.get()) % ring.size_bytes;
  const uint64_t tail = RING_PTR::get_address(evt_log_tail.get()) % ring.size_bytes;
  if (ring.full(head, tail)) {
    evt_log_overflow();   // the record is lost
    return std::nullopt;
  }
  return EVT_LOG_BASE_ADDR::get_address(base) + tail;
}

void RegisterBlock::evt_log_overflow() {
  evt_halted_ = true;
  status.set<STS_EVT_OVERFLOW>(1);
  status.set<STS_EVT_LOG_RUN>(0);
}

void RegisterBlock::evt_log_stored() {
  const common::OffsetRing ring{log_entries(unsigned(EVT_LOG_LEN::get(evt_log_base.get()))) * kEntryBytes, kEntryBytes};
  evt_log_tail.set(ring.next(RING_PTR::get_address(evt_log_tail.get()) % ring.size_bytes));
  if (control.get<CTRL_EVT_INT_EN>()) status.set<STS_EVT_LOG_INT>(1);
}

}  // namespace iommusim::amdvi

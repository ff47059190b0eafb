#include "models/common/command_queue.h"

#include <algorithm>
#include <cassert>
#include <cctype>

namespace iommusim::common {

CommandQueue::CommandQueue(const Clock& clk, const CommandQueueConfig& cfg, MemoryRead read, Drain drain,
                           CommandQueueVendor& vendor)
    : clk_(clk), cfg_(cfg), read_(std::move(read)), drain_(std::move(drain)), vendor_(vendor) {}

uint64_t CommandQueue::now_ps() const { return to_ps(sc_core::sc_time_stamp()); }

void CommandQueue::run() {
  for (;;)
    if (!step()) sc_core::wait(kick_);
}

bool CommandQueue::run_until_idle() {
  bool any = false;
  while (step()) any = true;
  return any;
}

bool CommandQueue::step() {
  const QueueState q = vendor_.queue_state();
  switch (q.status) {
    case QueueState::Status::Idle:
      return false;
    case QueueState::Status::BadPointer:
      stats_.errors.inc();
      vendor_.halt(QueueError{QueueError::Kind::BadPointer, q.error_code, q.head, 0}, q);
      return true;
    case QueueState::Status::Ready:
      // An empty ring (a head the vendor masked onto the tail) has nothing to fetch.
      if (q.ring.empty(q.tail, q.head)) return false;
      consume_batch(q);
      return true;
  }
  return false;
}

void CommandQueue::consume_batch(const QueueState& q) {
  assert(q.entry_bytes % 8 == 0 && q.entry_bytes <= kMaxEntryBytes && q.ring.log2size < 31);
  const uint32_t index = q.ring.index(q.head);
  // Contiguous entries only: never past the end of the ring.
  const uint32_t batch = std::min({q.ring.used(q.tail, q.head), q.ring.entries() - index, cfg_.batch, kMaxBatch});
  const uint64_t addr = q.base + uint64_t(index) * q.entry_bytes;
  const uint64_t fetch_start = now_ps();
  const bool fetched = read_(addr, words_.data(), batch * q.entry_bytes);
  const uint64_t fetch_end = now_ps();
  stats_.fetches.inc();
  if (!fetched) {
    stats_.errors.inc();
    vendor_.halt(QueueError{QueueError::Kind::FetchAbort, 0, q.head, addr}, q);
    return;
  }
  uint32_t head = q.head;
  for (uint32_t i = 0; i < batch; ++i) {
    const uint64_t* entry = words_.data() + i * (q.entry_bytes / 8);
    CommandTrace t;
    t.queue_index = head;
    t.fetch_start_ps = fetch_start;
    t.fetch_end_ps = fetch_end;
    t.first_of_fetch = i == 0;
    t.opcode = vendor_.trace_opcode(entry);
    clk_.wait_cycles(cfg_.decode_cycles);
    const Decoded d = vendor_.decode(entry, q);
    const sc_core::sc_time exec_start = sc_core::sc_time_stamp();
    if (!d.legal) {
      // The head stays on the bad entry; the vendor's state halts the queue.
      stats_.illegal.inc();
      stats_.errors.inc();
      vendor_.halt(QueueError{QueueError::Kind::Illegal, d.error_code, head, addr + uint64_t(i) * q.entry_bytes}, q);
      t.illegal = true;
      t.exec_end_ps = now_ps();
      if (probe_) probe_(t);
      return;
    }
    stats_.executed.inc();
    stats_.by_type[d.type].inc();
    if (d.barrier) stats_.barriers.inc();
    clk_.wait_cycles(cfg_.exec_cycles);
    vendor_.execute();
    t.device_wait_ps = device_wait_ps_;
    device_wait_ps_ = 0;
    if (exec_failed_) {
      // Executed but not completed: the head stays on it, as for an illegal entry.
      exec_failed_ = false;
      stats_.errors.inc();
      vendor_.halt(QueueError{QueueError::Kind::Completion, exec_error_code_, head, addr + uint64_t(i) * q.entry_bytes}, q);
      t.exec_end_ps = now_ps();
      if (probe_) probe_(t);
      return;
    }
    const uint64_t exec_ps = to_ps(sc_core::sc_time_stamp() - exec_start);
    stats_.exec_ps.record(exec_ps);
    if (d.barrier) stats_.barrier_ps.record(exec_ps);
    head = q.ring.next(head);
    vendor_.consumed(q, head);
    t.exec_end_ps = now_ps();
    if (probe_) probe_(t);
  }
}

void CommandQueue::barrier(unsigned cycles) {
  if (drain_) drain_();
  clk_.wait_cycles(cycles);
}

void CommandQueue::register_stats(StatRegistry& reg, const std::string& p,
                                  const std::vector<std::pair<uint8_t, std::string>>& type_names) const {
  reg.add(p + ".fetches", stats_.fetches, "count", "queue reads (each fetches a batch of entries)");
  for (const auto& [type, name] : type_names) {
    std::string stat = name;   // the vendor's command name, as a stat name: lower case
    for (char& c : stat) c = char(std::tolower(static_cast<unsigned char>(c)));
    reg.add(p + ".executed." + stat, stats_.by_type[type], "count", name + " entries executed");
  }
}

}  // namespace iommusim::common

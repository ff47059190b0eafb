// The IOMMU side of a memory-resident command queue, one engine for every vendor: the
// SMMUv3 command queue, the VT-d invalidation queue and the AMD command buffer are each a
// CommandQueue plus a small vendor hook (CommandQueueVendor), and so is any later queue
// (a guest queue, an SMMU VCMDQ, an AMD guest command buffer, a virtqueue).
//
// What it models
// - A ring of 2^n fixed-size entries (16 or 32 bytes) in memory. Software produces at the
//   tail and rings a doorbell (kick()); the engine consumes at the head. Pointers follow
//   one of the two conventions of queue_ring.h: an index plus a wrap bit (SMMU PROD/CONS)
//   or a plain index (VT-d IQH/IQT, AMD head/tail, which the vendor scales to bytes).
// - Batch fetch: up to `batch` contiguous entries (at most kMaxBatch) per memory read,
//   never past the end of the ring; the read costs memory time.
// - Per entry, in queue order: decode time, the vendor's decode, then for a legal entry a
//   fixed execution time and the vendor's execution (invalidations, cache scans), after
//   which the vendor's head register moves past it. One entry at a time.
// - Barriers (CMD_SYNC, inv_wait, COMPLETION_WAIT): the vendor's execution calls
//   barrier(), which waits until every request older than the last invalidation has
//   finished (the owner's drain callback: an IOMMU's TranslationEngine::drain_older_requests;
//   a queue with no translations behind it, such as a vIOMMU's, passes a no-op) and then
//   the barrier's own cycles.
// - Error halt: a bad pointer (found by the vendor when it reads its registers), a failed
//   fetch, an illegal entry or one whose execution fails (fail_execution) stops the queue, the head left on the offending entry, and
//   the vendor records its architected error (SMMU GERROR.CMDQ_ERR with CMDQ_CONS.ERR,
//   VT-d FSTS.IQE with IQER.IQEI, AMD ILLEGAL_COMMAND_ERROR / COMMAND_HW_ERROR with
//   Status.CmdBufRun cleared).
// - Consumers: run() is a vendor SC_THREAD's body that waits for doorbells; run_until_idle()
//   consumes in the calling thread until the queue is idle (a trapping vCPU that runs its
//   emulated queue synchronously, as QEMU does in its MMIO handler).
// - Restart: the queue runs whenever the vendor's registers say it may (enabled, no error
//   pending, not empty), checked after each batch and on each doorbell. Each vendor's
//   restart rule lives in its registers: GERRORN acknowledging GERROR, FSTS.IQE cleared,
//   CmdBufEn written 0 then 1.
// - A per-entry CommandTrace for the driver's latency breakdown, and stats: fetches,
//   entries executed (in all and per vendor type), errors, execution time per entry and
//   per barrier.
//
// What it does not model
// - Fetching ahead while entries execute, or several entries executing at once.
// - Completion interrupts and MSIs as such (a vendor's barrier writes its own).
//
// The engine's own time (fetch, decode, fixed execution, barrier) uses the block's memory
// read, its clock and the drain callback in command_queue.cpp and nowhere else; the
// vendor's execute() adds whatever its commands cost.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <systemc>

#include "models/common/clock.h"
#include "models/common/command_trace.h"
#include "models/common/queue_ring.h"
#include "models/common/stats.h"

namespace iommusim::common {

// The queue as the vendor's registers describe it, read once per batch.
struct QueueState {
  enum class Status {
    Idle,         // disabled, halted or empty: wait for a doorbell
    Ready,        // entries to consume (an empty ring counts as Idle)
    BadPointer,   // the vendor found an invalid pointer: error halt with error_code
  };
  Status status = Status::Idle;
  uint32_t error_code = 0;     // BadPointer: the vendor's reason (VT-d IQER.IQEI)
  uint64_t base = 0;           // address of entry 0
  IndexRing ring;              // size and pointer convention
  unsigned entry_bytes = 16;   // 16 or 32
  uint32_t head = 0, tail = 0; // consumer and producer pointers, in ring's convention
};

struct QueueError {
  // Completion: a legal entry that could not complete (a barrier whose device ATC
  // invalidation timed out: SMMU CERROR_ATC_INV_SYNC, VT-d ITE).
  enum class Kind { BadPointer, FetchAbort, Illegal, Completion };
  Kind kind = Kind::Illegal;
  uint32_t code = 0;       // the vendor's reason (from QueueState or Decoded)
  uint32_t head = 0;       // the pointer of the offending entry (fetch: of the batch)
  uint64_t address = 0;    // its address (fetch: the batch's); 0 for BadPointer
};

// What decode() makes of one entry.
struct Decoded {
  bool legal = false;
  uint8_t type = 0;         // the vendor's command type: stats by type
  bool barrier = false;     // its execution time is also recorded as barrier time
  uint32_t error_code = 0;  // illegal: the vendor's reason (SMMU CERROR, VT-d IQEI)
};

// The vendor's part of a queue.
class CommandQueueVendor {
 public:
  virtual ~CommandQueueVendor() = default;
  // Reads the queue's registers.
  virtual QueueState queue_state() = 0;
  // The opcode byte the trace reports (no decode).
  virtual uint8_t trace_opcode(const uint64_t* entry) const = 0;
  // Decodes one entry; a legal one is kept for execute().
  virtual Decoded decode(const uint64_t* entry, const QueueState& q) = 0;
  // Executes the entry decode() last accepted (after the engine's fixed execution time).
  virtual void execute() = 0;
  // The head moved past an executed entry: update the head register.
  virtual void consumed(const QueueState& q, uint32_t head) = 0;
  // Record the architected error; queue_state() must then report Idle until restart.
  virtual void halt(const QueueError& e, const QueueState& q) = 0;
};

struct CommandQueueConfig {
  unsigned batch = 8;          // entries per fetch (capped at kMaxBatch)
  unsigned decode_cycles = 2;  // per entry, before decode
  unsigned exec_cycles = 4;    // fixed part of every legal entry's execution
};

class CommandQueue {
 public:
  static constexpr unsigned kMaxBatch = 64;
  static constexpr unsigned kMaxEntryBytes = 32;
  using MemoryRead = std::function<bool(uint64_t addr, void* dst, unsigned len)>;
  // Waits until every request older than the last invalidation has finished.
  using Drain = std::function<void()>;

  struct Stats {
    Counter fetches;     // queue reads
    Counter executed;    // legal entries executed
    Counter illegal;     // entries that failed to decode
    Counter errors;      // every error halt (illegal, fetch abort, bad pointer)
    Counter barriers;    // barrier entries executed
    Histogram exec_ps;   // per executed entry, after decode
    Histogram barrier_ps;
    std::array<Counter, 256> by_type;
  };

  CommandQueue(const Clock& clk, const CommandQueueConfig& cfg, MemoryRead read, Drain drain,
               CommandQueueVendor& vendor);

  // The consumer: the body of the vendor's SC_THREAD. Never returns.
  void run();
  // Consumes in the calling thread until the queue is idle (disabled, halted or empty),
  // then returns without waiting for a doorbell.
  // Returns whether it consumed anything (or stopped on an error).
  bool run_until_idle();
  // Doorbell: a register write that may let the queue run (tail moved, enable, error
  // acknowledged). The engine re-reads the vendor's state in the next delta cycle.
  void kick() { kick_.notify(sc_core::SC_ZERO_TIME); }
  // The barrier of a completion command (and of VT-d's drain-on-invalidate): waits for
  // every request older than the last invalidation, then `cycles` of the block's clock.
  void barrier(unsigned cycles);
  // From the vendor's execute(): the entry could not complete (`code`: the vendor's
  // reason). The engine halts on it as on an illegal entry, the head left on it.
  void fail_execution(uint32_t code) { exec_failed_ = true; exec_error_code_ = code; }
  // From the vendor's execute(): `ps` of it went waiting for device ATC invalidations
  // (the trace's device_wait_ps).
  void note_device_wait(uint64_t ps) { device_wait_ps_ += ps; }

  void set_probe(std::function<void(const CommandTrace&)> probe) { probe_ = std::move(probe); }
  const Stats& stats() const { return stats_; }
  // <prefix>.fetches and <prefix>.executed.<name> (lower case) for each (type, name) the
  // vendor lists.
  void register_stats(StatRegistry& reg, const std::string& prefix,
                      const std::vector<std::pair<uint8_t, std::string>>& type_names) const;

 private:
  // One step of the consumer: false when the queue is idle (nothing done).
  bool step();
  void consume_batch(const QueueState& q);
  uint64_t now_ps() const;

  const Clock& clk_;
  CommandQueueConfig cfg_;
  MemoryRead read_;
  Drain drain_;
  CommandQueueVendor& vendor_;
  sc_core::sc_event kick_;
  std::function<void(const CommandTrace&)> probe_;
  std::array<uint64_t, kMaxBatch * kMaxEntryBytes / 8> words_{};
  Stats stats_;
  bool exec_failed_ = false;
  uint32_t exec_error_code_ = 0;
  uint64_t device_wait_ps_ = 0;
};

}  // namespace iommusim::common

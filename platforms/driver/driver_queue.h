// The driver's side of one command queue, shared by every vendor backend: the SMMUv3
// command queue, the VT-d invalidation queue and the AMD command buffer (and any later
// guest queue or virtqueue). DriverBase::submit writes a batch of entries plus the
// vendor's completion barrier at the producer pointer, rings the doorbell and polls for
// the barrier's completion, with a timeout, as Linux's submit paths do
// (arm_smmu_cmdq_issue_cmdlist, qi_submit_sync, iommu_completion_wait).
//
// What it models
// - The producer pointer and the software's view of the consumer (Linux's llq / free_cnt):
//   the consumer register is read only when the queue looks full; then the doorbell is
//   rung with what is queued and the driver polls for space.
// - The two pointer conventions of queue_ring.h: index plus wrap bit (every slot usable)
//   or plain index (one slot stays empty).
// - Per-entry traces from the model (trace()) for the latency breakdown of each batch,
//   and, with a timeline attached, each fetch and each command as slices on its track.
//
// - Several CPUs submitting at once (Linux's submit paths, one per vendor):
//   Serialised (VT-d qi_submit_sync's qi->q_lock, AMD's iommu->lock around building the
//   commands and iommu_completion_wait): one submitter at a time, from writing its first
//   entry until its barrier completed; the others wait in FIFO order (the kernel's queued
//   spinlock).
//   Concurrent (SMMUv3 arm_smmu_cmdq_issue_cmdlist): each CPU reserves its slots (its
//   commands and its own CMD_SYNC) at once and writes them while others write theirs;
//   the doorbell is batched: whichever CPU completes the written prefix of the queue
//   writes PROD for all of it, and a CPU whose slots follow a prefix still being written
//   waits for that doorbell (Linux: the owner waits for the earlier entries' valid bits,
//   then writes PROD for the gathered batch). Simplified: reservation is instantaneous
//   (no cmpxchg retries), a batch larger than the free space is reserved in pieces, and
//   one CPU writes the doorbell at a time and, like Linux's owner, rings again for what
//   others wrote meanwhile, so the producer register never moves back.
//
// The vendor supplies the register accesses, the barrier entry, the completion check and
// the error recovery (Hooks).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/command_trace.h"
#include "models/common/queue_ring.h"
#include "models/common/timeline.h"
#include "platforms/driver/driver.h"

namespace iommusim::driver {

class DriverQueue {
 public:
  static constexpr unsigned kMaxEntryBytes = 32;

  class Hooks {
   public:
    virtual ~Hooks() = default;
    // Writes the producer register (the doorbell).
    virtual void doorbell(uint32_t producer) = 0;
    // Reads the consumer register (the queue looked full), as a pointer.
    virtual uint32_t read_consumer() = 0;
    // The queue is still full after read_consumer(): a failure stops the submit.
    virtual Status still_full() { return {}; }
    // Fills `words` with the completion barrier that goes into slot `producer` at
    // `slot_address` (and prepares whatever completed() will poll).
    virtual void barrier_entry(uint32_t producer, uint64_t slot_address, uint64_t* words) = 0;
    // One completion poll (charges its own read). first: the batch's first pointer;
    // barrier: the barrier's.
    virtual bool completed(uint32_t first, uint32_t barrier) = 0;
    // After the n-th poll that found the barrier incomplete: detect and recover errors.
    virtual Status check_error(unsigned poll) = 0;
    // The barrier completed: errors it reports only in a log (AMD IOTLB_INV_TIMEOUT) fail
    // the submit here.
    virtual Status after_completion() { return {}; }
    // The registers a timeout message shows, e.g. "CMDQ_CONS=0x3, GERROR=0x0".
    virtual std::string registers() = 0;
    // The vendor's name of a command by its trace opcode (CommandTrace::opcode), for timelines.
    virtual const char* command_name(uint8_t opcode) const = 0;
  };

  // space_what / barrier_what name what a timeout waited for ("CMDQ space", "CMD_SYNC").
  // ring: size and pointer convention; entry_bytes: 16 or 32.
  enum class Submission { Serialised, Concurrent };

  DriverQueue(const common::IndexRing& ring, unsigned entry_bytes, Hooks& hooks, std::string space_what,
              std::string barrier_what, Submission submission = Submission::Serialised);

  // At init: the queue lives at `base` and is empty.
  void reset(uint64_t base);
  // The model's per-entry trace (its command probe).
  void trace(const common::CommandTrace& t) {
    traces_[ring_.index(t.queue_index)] = t;
    if (timeline_) record(t);
  }
  // Records each fetch and each command on `track` of `timeline` from here on.
  void set_timeline(common::Timeline& timeline, common::Timeline::Track track) {
    timeline_ = &timeline;
    track_ = track;
  }

  // The hardware reads this queue itself (a guest's VCMDQ): its doorbell does not trap, so
  // its records show the hardware queue's parts even on a driver with a trapping doorbell.
  void set_direct(bool direct) { direct_ = direct; }

  const common::IndexRing& ring() const { return ring_; }
  unsigned entry_bytes() const { return entry_bytes_; }
  uint64_t base() const { return base_; }
  uint64_t slot_address(uint32_t p) const { return base_ + uint64_t(ring_.index(p)) * entry_bytes_; }

 private:
  friend class DriverBase;   // submit() drives the pointers

  common::IndexRing ring_;
  bool direct_ = false;
  unsigned entry_bytes_;
  Hooks& hooks_;
  std::string space_what_, barrier_what_;
  uint64_t base_ = 0;
  uint32_t producer_ = 0, consumer_seen_ = 0;
  std::vector<common::CommandTrace> traces_;   // indexed by slot

  // The entry's fetch (when it paid it) and its decode + execution, on the timeline.
  void record(const common::CommandTrace& t);
  common::Timeline* timeline_ = nullptr;
  common::Timeline::Track track_ = 0;
  uint64_t last_exec_end_ps_ = 0;   // the previous entry's, where the next one's execution starts
  Submission submission_;
  // Serialised: a ticket lock, FIFO.
  uint64_t next_ticket_ = 0, serving_ = 0;
  sc_core::sc_event lock_released_;
  // Slots in software sequence numbers (never wrap): reserved, written as a prefix, and
  // covered by the last doorbell; each reservation waits in order until written.
  struct Reservation { uint64_t end_seq = 0; uint32_t end_ptr = 0; bool written = false; };
  std::deque<Reservation> reservations_;
  uint64_t reserved_seq_ = 0, written_seq_ = 0, rung_seq_ = 0;
  uint32_t written_ptr_ = 0;
  uint64_t rung_ps_ = 0;
  bool ringing_ = false;   // a CPU is writing the doorbell
  bool ring_again_ = false;   // asked for a ring even if rung while one was being written
  sc_core::sc_event doorbell_rung_;
  // Concurrent: CPUs between writing their CMD_SYNC and seeing it complete (Linux's
  // cmdq->lock held shared). While any is waiting, nobody refreshes the consumer view from
  // the hardware (the exclusive trylock fails): a completed sync's slot, which its owner
  // polls, must not be reused before the owner has seen it. The last to leave moves the
  // view past its own sync (arm_smmu_cmdq_shared_tryunlock).
  unsigned sync_waiters_ = 0;
};

}  // namespace iommusim::driver

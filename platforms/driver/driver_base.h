// What every vendor backend of the host driver shares: CPU-time charging, MMIO through a
// TLM socket, the host table pool, guest-owned tables reached through a stage-2 domain,
// domain bookkeeping with page tables, map/unmap, and the latency breakdown of an
// invalidation computed from the model's per-command traces.
//
// A backend supplies the vendor parts: its formats and hardware IDs (make_domain),
// attach, the invalidation commands, and its queue's hooks (DriverQueue::Hooks); the
// submit-and-wait path (submit_batch) is shared.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/bits.h"
#include "models/common/command_trace.h"
#include "models/common/correctness_oracle.h"
#include "models/common/payload_pool.h"
#include "models/common/timeline.h"
#include "models/memory/sparse_memory.h"
#include "models/pagetable/table_builder.h"
#include "platforms/driver/driver.h"
#include "platforms/driver/driver_queue.h"
#include "platforms/driver/memory_view.h"
#include "platforms/driver/trap_spans.h"

namespace iommusim::driver {

// Where a driver keeps its structures (addresses in its MemoryView).
struct DriverMemory {
  uint64_t table_pool_base = 0x100000000ull;   // host memory: config tables, queues, host page tables
  uint64_t table_pool_bytes = 256ull << 20;
  uint64_t guest_pool_ipa = 0x6000000ull;      // guest IPA/GPA range for nested stage-1 tables and guest config
  uint64_t guest_pool_bytes = 16ull << 20;
};
std::string validate(const DriverMemory& m);

class DriverBase : public sc_core::sc_module, public IommuDriver {
 public:
  tlm_utils::simple_initiator_socket<DriverBase> mmio;

  Status map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t page_bytes) override;
  // Strict unmap: clear the leaves, then the backend's invalidate_range(leaf) and wait.
  Status unmap(DomainId d, uint64_t iova, uint64_t bytes) override;
  Status protect(DomainId d, uint64_t iova, uint64_t bytes, Prot prot) override;
  Status remap(DomainId d, uint64_t iova, uint64_t new_out, uint64_t bytes, Prot prot) override;
  // Tell the oracle every change, then the backend's attach_device / detach_device.
  Status attach(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) final;
  Status detach(uint32_t rid, std::optional<uint32_t> pasid) final;
  // The lane's correctness oracle (nullptr: none), told every mapping and change; a
  // driver sharing it with others (a guest's, a second IOMMU's) reports through `scope`.
  void set_oracle(common::CorrectnessOracle* o, common::OracleScope scope = {}) {
    oracle_ = common::ScopedOracle(o, std::move(scope));
  }
  common::ScopedOracle& scoped_oracle() { return oracle_; }
  std::optional<DomainId> create_domain(DomainKind kind, std::optional<DomainId> parent, std::string* why) override;
  // Stage2 domain `d` was allocated as a nest parent (IOMMU_HWPT_ALLOC_NEST_PARENT): its
  // invalidations cover nested tags from then on, before any nested domain sits on it, as
  // Linux's smmu_domain->nest_parent does.
  void mark_nest_parent(DomainId d);

  // The DMA API's lazy unmap (Linux iommu_unmap_fast with a queued gather): clears the
  // PTEs with no invalidation; *change is the oracle's change, completed later by
  // complete_deferred() once a flush covering it has completed.
  virtual Status unmap_deferred(DomainId d, uint64_t iova, uint64_t bytes, common::CorrectnessOracle::ChangeId* change);
  // Completes `c` at the hardware time of the last barrier the calling thread waited for.
  void complete_deferred(common::CorrectnessOracle::ChangeId c) { complete_change(c); }
  // Completes `c` at `barrier_ps`, the hardware time of the barrier that covered it.
  void complete_deferred(common::CorrectnessOracle::ChangeId c, uint64_t barrier_ps) {
    oracle_.complete(c, barrier_ps);
  }
  // That time (0: none yet).
  uint64_t last_barrier_ps() { return op_state().last_barrier_ps; }
  // The calling thread's operation takes effect now, later than its last barrier (a VT-d
  // PASID entry written after the teardown's barrier): its changes complete now.
  void takes_effect_now() { op_state().last_barrier_ps = common::now_ps(); }

  // A guest driver's queues are emulated by `doorbell` (its VMM): each record shows the
  // doorbell's trap spans instead of the queue's fetch and execution.
  void set_trapping_doorbell(TrappingDoorbell* doorbell);
  // A guest driver whose invalidations reach the hardware without a trap (an accelerated
  // lane's): its records still carry the trapped parts, all zero, so paths compare part by part.
  void report_trapped_parts() { log_.set_trapped_parts(true); }
  // The last queue operation's record, set-up ones (init, attach) too.
  const InvalidationRecord& last_record() const { return last_record_; }
  // The time every queue operation so far spent after its doorbell (queueing, fetch,
  // execution, device waits, sync), set-up ones too: what a VMM's ioctl spent on the
  // host queue is the growth of this across the call.
  uint64_t queue_time_ps() const { return queue_time_ps_; }
  // Queue entries written so far (commands and barriers): what a VMM's trap cost the host
  // in commands is the growth of this across it.
  uint64_t commands_issued() const { return commands_issued_.value(); }

  // Registers the counters every backend has, plus the invalidation log.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  // One "queue" track per command queue the backend named with add_command_queue, and a
  // "cpu N" track per thread that invalidates (record_invalidation), in order of first use.
  void set_timeline(common::Timeline& timeline, uint32_t pid) override;

 protected:
  struct Domain {
    virtual ~Domain() = default;
    DomainKind kind = DomainKind::Stage1;
    DomainId parent = 0;       // Nested: its stage-2 domain
    bool nest_parent = false;  // a Nested domain sits on this Stage2 domain, or it was made to be one
    // A user-managed nested domain (iommufd HWPT_NESTED, platforms/driver/nesting.h): the
    // guest owns its stage-1 tables and reports them itself, so it has no tables here and
    // tells the oracle nothing; map/unmap on it fail.
    bool user_managed = false;
    std::unique_ptr<pagetable::Format> format;
    std::unique_ptr<pagetable::TableBuilder> tables;
    uint64_t min_leaf_bytes = 0;   // smallest leaf size mapped so far (0: none yet)
  };

  DriverBase(sc_core::sc_module_name name, const DriverTiming& timing, const DriverMemory& memory, DriverMemoryRef mem);
  ~DriverBase() override;

  // Backend: a new domain with its format and hardware IDs (tables are built here after;
  // none for a domain without a format, whose mappings the backend keeps elsewhere).
  // parent is the Stage2 domain of a Nested one. Return nullptr with *why set to refuse.
  virtual std::unique_ptr<Domain> make_domain(DomainKind kind, const Domain* parent, std::string* why) = 0;
  // Backend: point (rid, pasid) at the domain's tables (replacing an earlier attachment), or
  // block it, with the configuration invalidations that takes, and wait for them.
  virtual Status attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) = 0;
  virtual Status detach_device(uint32_t rid, std::optional<uint32_t> pasid) = 0;

  // A command queue whose fetches and commands go on the timeline (set_timeline).
  void add_command_queue(DriverQueue& q) { queues_.push_back(&q); }
  // A backend with its own submit path (not submit_batch) wrote its doorbell: the trap's
  // spans join the calling thread's operation, for its record_invalidation.
  void collect_doorbell_spans();
  // The calling thread's operation is not logged: its trap spans go nowhere.
  void drop_trap_spans();

  Domain* domain(DomainId d, Status& st);
  // A domain whose tables this driver builds: fails on a user-managed one.
  Domain* table_domain(DomainId d, Status& st);
  // Registers a user-managed nested domain over the Stage2 `parent` (checked by the
  // caller): no tables, no oracle space. Returns its ID.
  DomainId add_user_domain(std::unique_ptr<Domain> dom, DomainId parent);
  const Domain* domain(DomainId d) const;
  size_t domain_count() const { return domains_.size(); }

  void charge_cycles(uint64_t n);
  void charge_descriptor_writes(uint64_t n) { charge_cycles(n * timing_.descriptor_write_cycles); }
  void mmio_write32(uint64_t off, uint32_t v);
  void mmio_write64(uint64_t off, uint64_t v);
  uint32_t mmio_read32(uint64_t off);
  uint64_t mmio_read64(uint64_t off);
  // The driver's memory (its tables and queues) as its CPU sees it.
  MemoryView& memory_view() { return mem_; }
  // Host memory for tables and queues; 0 when the pool is exhausted.
  uint64_t alloc_host(uint64_t bytes, uint64_t align);
  // Guest memory (IPA/GPA) for guest-owned structures, reached through `stage2`.
  uint64_t alloc_guest(uint64_t bytes, uint64_t align);
  // Stores into guest memory through the stage-2 tables of `stage2` (as the guest's own
  // stores would land); false when the address is not mapped.
  bool guest_write(const Domain& stage2, uint64_t ipa, const void* src, unsigned len);
  bool guest_to_pa(const Domain& stage2, uint64_t ipa, uint64_t& pa) const;

  // Charges the descriptor writes; a failed edit names what was wrong (and the config key
  // that sizes the pool when one ran out).
  Status edit_result(const pagetable::EditResult& r, const Domain* dom = nullptr);
  // Time an operation began, so PTE edits before its invalidation count as software time.
  uint64_t take_op_start(uint64_t now_ps);
  std::string take_pending_op(const std::string& fallback);
  // The leaf size an invalidation of `d` plans by (Linux: the granule the unmap gathered):
  // the smallest leaf the pending unmap cleared, else the domain's smallest mapped leaf,
  // else 4 KB.
  uint64_t take_leaf_bytes(const Domain& d);

  // Writes `count` entries (`words`: count * entry_bytes / 8 of them) and the vendor's
  // completion barrier into `q`, rings the doorbell and polls until the barrier completes,
  // then logs the batch as `op`. Fails on a timeout (driver.sync_timeout_us) or an error
  // the vendor's hooks cannot recover.
  Status submit_batch(DriverQueue& q, const uint64_t* words, size_t count, const std::string& op);

  // Splits an invalidation into software / lock / queueing / fetch / execution / sync from
  // the traces of its queue entries (in queue order, barrier last) and logs it, except for
  // set-up operations. t0: operation start, t_doorbell: tail written (by this CPU or the
  // one that rang for it), t_done: completion seen; lock_ps: time spent waiting for other
  // CPUs between t0 and t_doorbell (the queue lock, or the shared doorbell); ahead_end_ps:
  // when the queue entry before the first trace finished executing (waiting behind it,
  // after the fetch, is queueing too).
  // With a timeline, every operation (set-up ones too) becomes a slice on the CPU track
  // whose parts, laid end to end in the order above, tile it.
  void record_invalidation(const std::string& op, uint64_t t0, uint64_t t_doorbell, uint64_t t_done,
                           const std::vector<common::CommandTrace>& traces, uint64_t lock_ps = 0,
                           uint64_t ahead_end_ps = 0, bool direct = false);

  static std::string hex(uint64_t v) { return common::hex(v); }
  // "<what> not complete after <sync_timeout_us> us (<registers>)", as Linux's poll timeouts say.
  Status barrier_timeout(const std::string& what, const std::string& registers) const;

  sc_core::sc_time poll_interval() const { return sc_core::sc_time(timing_.poll_interval_ns, sc_core::SC_NS); }
  sc_core::sc_time sync_deadline() const {
    return sc_core::sc_time_stamp() + sc_core::sc_time(timing_.sync_timeout_us, sc_core::SC_US);
  }

  DriverTiming timing_;
  DriverMemory memory_;
  common::ScopedOracle oracle_;

 private:
  std::unique_ptr<HostMemoryView> host_view_;   // when built on a host's physical memory

 protected:
  MemoryView& mem_;
  common::Counter commands_issued_, polls_, events_consumed_;
  // Writes q's doorbell again with its written prefix, serialised with the other CPUs'
  // doorbells: now, or right after the write in flight. For a doorbell whose other fields
  // changed (SMMUv3 ECMDQ_PROD.ERRACK), so no value built before the change lands after it.
  void ring_again(DriverQueue& q);

 private:
  class HostTables;
  class GuestTables;

  sc_core::sc_time cpu_cycle_;
  common::PayloadPool mmio_pool_;
  uint64_t host_next_, host_end_, guest_next_, guest_end_;
  std::unique_ptr<HostTables> host_tables_;
  std::vector<std::unique_ptr<GuestTables>> guest_tables_;   // one per nest parent
  std::vector<std::unique_ptr<Domain>> domains_;
  // One operation's state, per calling thread (CPU): several driver threads may be inside
  // the driver at once, each between its PTE edits and its invalidation.
  struct OpState {
    uint64_t op_start_ps = 0;
    std::string pending_op;
    uint64_t pending_leaf_bytes = 0;   // set by unmap for the invalidation it issues
    uint64_t last_barrier_ps = 0;      // when the hardware completed the last barrier this thread waited for
    TrapSpans trapped;                 // of the doorbells this thread wrote for its operation
    common::Timeline::Track track = 0;  // its CPU track on the timeline
    bool has_track = false;
  };
  std::map<const sc_core::sc_object*, OpState> op_states_;   // by SystemC process
  OpState& op_state();
  // Tells the oracle that change `c` is covered by the barrier just waited for.
  void complete_change(common::CorrectnessOracle::ChangeId c) { if (c) oracle_.complete(c, op_state().last_barrier_ps); }
  // Same-size in-place leaf edit + leaf invalidation (protect and remap).
  Status change_leaves(DomainId d, uint64_t iova, uint64_t bytes, std::optional<uint64_t> new_out, Prot prot);
  std::vector<DriverQueue*> queues_;   // add_command_queue
  TrappingDoorbell* trapping_ = nullptr;
  InvalidationRecord last_record_;
  uint64_t queue_time_ps_ = 0;
  common::Timeline* timeline_ = nullptr;
  uint32_t timeline_pid_ = 0;
  unsigned cpu_tracks_ = 0;
  common::Timeline::Track cpu_track();   // the calling thread's
  // Submit steps: reserve and write the entries (Concurrent: wait for space, Serialised:
  // the lock is held), then ring or wait for the doorbell that covers them.
  struct Written { std::vector<std::pair<uint32_t, uint32_t>> chunks; uint32_t barrier = 0; uint64_t end_seq = 0; };
  Status write_entries(DriverQueue& q, const uint64_t* words, size_t count, sc_core::sc_time deadline, Written& w);
  // Writes the doorbell for the written prefix (even_if_rung: also when nothing new was
  // written, as the wait for space does). *covered_ps: when a ring first covered cover_seq.
  void ring_written_prefix(DriverQueue& q, bool even_if_rung = false, uint64_t cover_seq = 0,
                           uint64_t* covered_ps = nullptr);
};

}  // namespace iommusim::driver

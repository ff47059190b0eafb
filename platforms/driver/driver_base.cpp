#include "platforms/driver/driver_base.h"

#include <algorithm>
#include <cstdio>

#include "models/common/clock.h"
#include "models/pagetable/walker.h"

namespace iommusim::driver {

using common::to_ps;
using sc_core::sc_time_stamp;

std::string validate(const DriverMemory& m) {
  if (m.table_pool_bytes < (1u << 20)) return "table_pool_bytes must be at least 1 MiB";
  if (m.table_pool_base % 4096 || m.guest_pool_ipa % 4096) return "pool bases must be 4 KiB aligned";
  return {};
}

// Host page tables: PA space, written straight into memory.
class DriverBase::HostTables : public pagetable::TableMemory {
 public:
  explicit HostTables(DriverBase& d) : d_(d) {}
  uint64_t read_descriptor(uint64_t a) override { return d_.mem_.read64(a); }
  void write_descriptor(uint64_t a, uint64_t v) override { d_.mem_.write64(a, v); }
  uint64_t allocate_table(uint64_t bytes) override { return d_.alloc_host(bytes, std::max<uint64_t>(bytes, 4096)); }
 private:
  DriverBase& d_;
};

// Guest-owned tables live at IPAs/GPAs; the guest's stores reach PA through the stage-2
// tables its VMM built.
class DriverBase::GuestTables : public pagetable::TableMemory {
 public:
  GuestTables(DriverBase& d, const Domain& s2) : d_(d), s2_(s2) {}
  uint64_t read_descriptor(uint64_t ipa) override {
    uint64_t pa;
    return d_.guest_to_pa(s2_, ipa, pa) ? d_.mem_.read64(pa) : 0;
  }
  void write_descriptor(uint64_t ipa, uint64_t v) override {
    if (!d_.guest_write(s2_, ipa, &v, 8)) ++unmapped;
  }
  uint64_t allocate_table(uint64_t bytes) override { return d_.alloc_guest(bytes, std::max<uint64_t>(bytes, 4096)); }
  uint64_t unmapped = 0;
 private:
  DriverBase& d_;
  const Domain& s2_;
};

DriverBase::DriverBase(sc_core::sc_module_name name, const DriverTiming& timing, const DriverMemory& memory,
                       DriverMemoryRef mem)
    : sc_module(name), mmio("mmio"), timing_(timing), memory_(memory),
      host_view_(mem.host() ? std::make_unique<HostMemoryView>(*mem.host()) : nullptr),
      mem_(host_view_ ? *host_view_ : *mem.view()),
      cpu_cycle_(sc_core::sc_time(1e6 / timing.cpu_mhz, sc_core::SC_PS)),
      host_next_(memory.table_pool_base), host_end_(memory.table_pool_base + memory.table_pool_bytes),
      guest_next_(memory.guest_pool_ipa), guest_end_(memory.guest_pool_ipa + memory.guest_pool_bytes),
      host_tables_(std::make_unique<HostTables>(*this)) {}

DriverBase::~DriverBase() = default;

uint64_t DriverBase::alloc_host(uint64_t bytes, uint64_t align) {
  const uint64_t a = (host_next_ + align - 1) & ~(align - 1);
  if (a + bytes > host_end_) return 0;
  host_next_ = a + bytes;
  return a;
}

uint64_t DriverBase::alloc_guest(uint64_t bytes, uint64_t align) {
  const uint64_t a = (guest_next_ + align - 1) & ~(align - 1);
  if (a + bytes > guest_end_) return 0;
  guest_next_ = a + bytes;
  return a;
}

bool DriverBase::guest_to_pa(const Domain& s2, uint64_t ipa, uint64_t& pa) const {
  pagetable::Access write;
  write.write = true;
  auto w = pagetable::walk(*s2.format, {s2.format->start_level(), s2.tables->root()}, ipa, write,
                           [&](uint64_t a, unsigned) { return pagetable::FetchResult{true, mem_.read64(a)}; });
  pa = w.output;
  return w.fault == pagetable::Fault::None;
}

bool DriverBase::guest_write(const Domain& s2, uint64_t ipa, const void* src, unsigned len) {
  // Structures never straddle a page: they are naturally aligned and at most 4 KiB.
  uint64_t pa;
  if (!guest_to_pa(s2, ipa, pa)) return false;
  mem_.write(pa, src, len);
  return true;
}

void DriverBase::charge_cycles(uint64_t n) {
  if (n) sc_core::wait(cpu_cycle_ * double(n));
}

void DriverBase::mmio_write32(uint64_t off, uint32_t v) {
  sc_core::wait(sc_core::sc_time(timing_.mmio_write_ns, sc_core::SC_NS));
  common::blocking_access(mmio, mmio_pool_, tlm::TLM_WRITE_COMMAND, off, &v, 4);
}
void DriverBase::mmio_write64(uint64_t off, uint64_t v) {
  sc_core::wait(sc_core::sc_time(timing_.mmio_write_ns, sc_core::SC_NS));
  common::blocking_access(mmio, mmio_pool_, tlm::TLM_WRITE_COMMAND, off, &v, 8);
}
uint32_t DriverBase::mmio_read32(uint64_t off) {
  uint32_t v = 0;
  sc_core::wait(sc_core::sc_time(timing_.mmio_read_ns, sc_core::SC_NS));
  common::blocking_access(mmio, mmio_pool_, tlm::TLM_READ_COMMAND, off, &v, 4);
  return v;
}
uint64_t DriverBase::mmio_read64(uint64_t off) {
  uint64_t v = 0;
  sc_core::wait(sc_core::sc_time(timing_.mmio_read_ns, sc_core::SC_NS));
  common::blocking_access(mmio, mmio_pool_, tlm::TLM_READ_COMMAND, off, &v, 8);
  return v;
}

DriverBase::Domain* DriverBase::domain(DomainId d, Status& st) {
  if (d == 0 || d > domains_.size()) { st = Status::fail("no domain " + std::to_string(d)); return nullptr; }
  return domains_[d - 1].get();
}

DriverBase::Domain* DriverBase::table_domain(DomainId d, Status& st) {
  Domain* dom = domain(d, st);
  if (dom && dom->user_managed) {
    st = Status::fail("domain " + std::to_string(d) + " is user-managed: its tables are the guest's");
    return nullptr;
  }
  if (dom && !dom->tables) {
    st = Status::fail("domain " + std::to_string(d) + " has no tables in this driver");
    return nullptr;
  }
  return dom;
}

DomainId DriverBase::add_user_domain(std::unique_ptr<Domain> dom, DomainId parent) {
  domains_[parent - 1]->nest_parent = true;
  dom->kind = DomainKind::Nested;
  dom->parent = parent;
  dom->user_managed = true;
  domains_.push_back(std::move(dom));
  return DomainId(domains_.size());
}

void DriverBase::mark_nest_parent(DomainId d) {
  if (d != 0 && d <= domains_.size() && domains_[d - 1]->kind == DomainKind::Stage2) domains_[d - 1]->nest_parent = true;
}

const DriverBase::Domain* DriverBase::domain(DomainId d) const {
  return d == 0 || d > domains_.size() ? nullptr : domains_[d - 1].get();
}

std::optional<DomainId> DriverBase::create_domain(DomainKind kind, std::optional<DomainId> parent, std::string* why) {
  Domain* p = nullptr;
  if (kind == DomainKind::Nested) {
    if (!parent || *parent == 0 || *parent > domains_.size() || domains_[*parent - 1]->kind != DomainKind::Stage2) {
      if (why) *why = "a nested domain needs a stage-2 parent domain";
      return std::nullopt;
    }
    p = domains_[*parent - 1].get();
  }
  std::unique_ptr<Domain> dom = make_domain(kind, p, why);
  if (!dom) return std::nullopt;
  dom->kind = kind;
  if (!dom->format) {
    // A para-virtual driver's domain (virtio-iommu): its mappings live in the host, no tables here.
  } else if (p) {
    p->nest_parent = true;
    dom->parent = *parent;
    guest_tables_.push_back(std::make_unique<GuestTables>(*this, *p));
    GuestTables& g = *guest_tables_.back();
    dom->tables = std::make_unique<pagetable::TableBuilder>(*dom->format, g);
    if (dom->tables->root() == 0 || g.unmapped) {
      if (why) *why = "guest table pool is not mapped by the parent stage 2 (map driver.guest_pool_ipa first)";
      return std::nullopt;
    }
  } else {
    dom->tables = std::make_unique<pagetable::TableBuilder>(*dom->format, *host_tables_);
  }
  if (dom->tables && dom->tables->root() == 0) {
    if (why) *why = p ? "guest table pool exhausted (platform.guest_table_pool_bytes)"
                      : "host table pool exhausted (platform.table_pool_bytes)";
    return std::nullopt;
  }
  domains_.push_back(std::move(dom));
  const DomainId id = DomainId(domains_.size());
  using K = common::CorrectnessOracle::SpaceKind;
  oracle_.add_space(id, kind == DomainKind::Stage1 ? K::Stage1 : kind == DomainKind::Stage2 ? K::Stage2 : K::Nested,
                    kind == DomainKind::Nested ? *parent : 0);
  return id;
}

Status DriverBase::edit_result(const pagetable::EditResult& r, const Domain* dom) {
  charge_descriptor_writes(r.descriptors_written);
  if (r.ok) return {};
  if (r.pool_exhausted)
    return Status::fail(dom && dom->kind == DomainKind::Nested
                            ? "guest table pool exhausted (raise platform.guest_table_pool_bytes)"
                            : "host table pool exhausted (raise platform.table_pool_bytes)");
  return Status::fail(r.error);
}

namespace {
common::Rights rights_of(const Prot& p) { return {p.read, p.write, p.exec, true}; }
pagetable::LeafAttributes leaf_attributes(const Prot& p) {
  pagetable::LeafAttributes a;
  a.read = p.read; a.write = p.write; a.exec = p.exec;
  return a;
}
}  // namespace

Status DriverBase::map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t page_bytes) {
  Status st;
  Domain* dom = table_domain(d, st);
  if (!dom) return st;
  charge_cycles(timing_.op_overhead_cycles);
  const pagetable::EditResult r = dom->tables->map(iova, pa, bytes, page_bytes, leaf_attributes(prot));
  if (r.ok && (dom->min_leaf_bytes == 0 || page_bytes < dom->min_leaf_bytes)) dom->min_leaf_bytes = page_bytes;
  // The mapping exists from the moment its descriptors are in memory: a walk may find it
  // while the CPU is still paying for the writes.
  if (r.ok) oracle_.map(d, iova, pa, bytes, rights_of(prot));
  return edit_result(r, dom);
}

Status DriverBase::unmap(DomainId d, uint64_t iova, uint64_t bytes) {
  Status st;
  Domain* dom = table_domain(d, st);
  if (!dom) return st;
  const uint64_t t0 = to_ps(sc_time_stamp());
  const common::CorrectnessOracle::ChangeId c = oracle_.unmap(d, iova, bytes);
  charge_cycles(timing_.op_overhead_cycles);
  const pagetable::EditResult r = dom->tables->unmap(iova, bytes);
  if (Status s = edit_result(r, dom); !s.ok) return s;
  // The PTE clearing is software time of the same operation.
  OpState& op = op_state();
  op.pending_leaf_bytes = r.leaf_bytes;
  op.op_start_ps = t0;
  op.pending_op = "unmap";
  if (Status s = invalidate_range(d, iova, bytes, true); !s.ok) return s;
  complete_change(c);
  return {};
}

Status DriverBase::unmap_deferred(DomainId d, uint64_t iova, uint64_t bytes, common::CorrectnessOracle::ChangeId* change) {
  Status st;
  Domain* dom = table_domain(d, st);
  if (!dom) return st;
  const common::CorrectnessOracle::ChangeId c = oracle_.unmap(d, iova, bytes);
  if (change) *change = c;
  charge_cycles(timing_.op_overhead_cycles);
  return edit_result(dom->tables->unmap(iova, bytes), dom);
}

Status DriverBase::change_leaves(DomainId d, uint64_t iova, uint64_t bytes, std::optional<uint64_t> new_out, Prot prot) {
  Status st;
  Domain* dom = table_domain(d, st);
  if (!dom) return st;
  if (bytes == 0) return Status::fail("empty range");
  const uint64_t t0 = to_ps(sc_time_stamp());
  const common::CorrectnessOracle::ChangeId c =
      new_out ? oracle_.change(d, iova, bytes, *new_out, rights_of(prot)) : oracle_.change_rights(d, iova, bytes, rights_of(prot));
  charge_cycles(timing_.op_overhead_cycles);
  const pagetable::EditResult r = dom->tables->change(iova, bytes, new_out, leaf_attributes(prot));
  if (Status s = edit_result(r, dom); !s.ok) return s;
  OpState& op = op_state();
  op.pending_leaf_bytes = r.leaf_bytes;
  op.op_start_ps = t0;
  op.pending_op = new_out ? "remap" : "protect";
  if (Status s = invalidate_range(d, iova, bytes, true); !s.ok) return s;
  complete_change(c);
  return {};
}

Status DriverBase::protect(DomainId d, uint64_t iova, uint64_t bytes, Prot prot) {
  return change_leaves(d, iova, bytes, std::nullopt, prot);
}

Status DriverBase::remap(DomainId d, uint64_t iova, uint64_t new_out, uint64_t bytes, Prot prot) {
  return change_leaves(d, iova, bytes, new_out, prot);
}

Status DriverBase::attach(uint32_t rid, std::optional<uint32_t> pasid, DomainId d) {
  Status st;
  const Domain* dom = domain(d, st);
  if (!dom) return st;
  // A user-managed domain's attachments are the guest's to report (through its scope).
  const common::CorrectnessOracle::ChangeId c = dom->user_managed ? 0 : oracle_.attach(rid, pasid, d);
  if (Status s = attach_device(rid, pasid, d); !s.ok) return s;
  complete_change(c);
  return {};
}

Status DriverBase::detach(uint32_t rid, std::optional<uint32_t> pasid) {
  const common::CorrectnessOracle::ChangeId c = oracle_.detach(rid, pasid);
  if (Status s = detach_device(rid, pasid); !s.ok) return s;
  complete_change(c);
  return {};
}

DriverBase::OpState& DriverBase::op_state() {
  const sc_core::sc_process_handle h = sc_core::sc_get_current_process_handle();
  return op_states_[h.valid() ? h.get_process_object() : nullptr];
}

common::Timeline::Track DriverBase::cpu_track() {
  OpState& op = op_state();
  if (!op.has_track) {   // "cpu 0", "cpu 1", ... in the order the threads first invalidate
    op.track = timeline_->track(timeline_pid_, "cpu " + std::to_string(cpu_tracks_++));
    op.has_track = true;
  }
  return op.track;
}

uint64_t DriverBase::take_op_start(uint64_t now_ps) {
  OpState& op = op_state();
  const uint64_t t = op.op_start_ps ? op.op_start_ps : now_ps;
  op.op_start_ps = 0;
  return t;
}

uint64_t DriverBase::take_leaf_bytes(const Domain& d) {
  OpState& op = op_state();
  const uint64_t pending = op.pending_leaf_bytes;
  op.pending_leaf_bytes = 0;
  if (pending) return pending;
  return d.min_leaf_bytes ? d.min_leaf_bytes : 4096;
}

std::string DriverBase::take_pending_op(const std::string& fallback) {
  OpState& st = op_state();
  std::string op = st.pending_op.empty() ? fallback : st.pending_op;
  st.pending_op.clear();
  st.pending_leaf_bytes = 0;   // backends that do not plan by leaf size leave it unread
  return op;
}

void DriverBase::ring_written_prefix(DriverQueue& q, bool even_if_rung, uint64_t cover_seq, uint64_t* covered_ps) {
  // One doorbell writer at a time, so the producer register never moves back; the writer
  // rings again for whatever other CPUs wrote meanwhile (Linux's CMDQ owner), and once more
  // if ring_again() was asked for while it wrote (the doorbell's value changed).
  if (q.ringing_) return;
  q.ringing_ = true;
  for (bool first = true; q.rung_seq_ < q.written_seq_ || (first && even_if_rung) || q.ring_again_; first = false) {
    q.ring_again_ = false;   // this ring's value is built now, after the request
    const uint64_t seq = q.written_seq_;
    q.hooks_.doorbell(q.written_ptr_);
    collect_doorbell_spans();
    q.rung_seq_ = std::max(q.rung_seq_, seq);
    q.rung_ps_ = to_ps(sc_time_stamp());
    if (covered_ps && !*covered_ps && q.rung_seq_ >= cover_seq) *covered_ps = q.rung_ps_;
    q.doorbell_rung_.notify(sc_core::SC_ZERO_TIME);
  }
  q.ringing_ = false;
}

void DriverBase::ring_again(DriverQueue& q) {
  if (q.ringing_) q.ring_again_ = true;   // the writer in flight rings once more
  else ring_written_prefix(q, true);
}

Status DriverBase::write_entries(DriverQueue& q, const uint64_t* words, size_t count, sc_core::sc_time deadline,
                                 Written& out) {   // deadline: for space, renewed while the queue drains
  DriverQueue::Hooks& h = q.hooks_;
  const common::IndexRing& ring = q.ring_;
  const unsigned entry_words = q.entry_bytes_ / 8;
  const uint32_t capacity = ring.wrap_bit ? ring.entries() : ring.entries() - 1;
  uint64_t barrier_words[DriverQueue::kMaxEntryBytes / 8];
  for (size_t i = 0; i <= count;) {
    // Space is tracked in software; the consumer register is read only when full. Then
    // ring what is written and wait for space.
    while (ring.full(q.producer_, q.consumer_seen_)) {
      ring_written_prefix(q, true);
      sc_core::wait(poll_interval());
      if (q.sync_waiters_) {   // the exclusive lock is not free: wait for the last sync waiter
        if (sc_time_stamp() > deadline) return barrier_timeout(q.space_what_, h.registers());
        continue;
      }
      // Like Linux's per-wait poll timeout: a queue that is still draining is not stuck.
      const uint32_t seen = q.consumer_seen_;
      q.consumer_seen_ = h.read_consumer();
      if (q.consumer_seen_ != seen) deadline = sync_deadline();
      if (ring.full(q.producer_, q.consumer_seen_))
        if (Status s = h.still_full(); !s.ok) return s;
      if (sc_time_stamp() > deadline) return barrier_timeout(q.space_what_, h.registers());
    }
    // Reserve what fits of the rest at once (Linux reserves a whole batch by cmpxchg).
    const uint32_t n = uint32_t(std::min<uint64_t>(count + 1 - i, capacity - ring.used(q.producer_, q.consumer_seen_)));
    uint32_t p = q.producer_;
    out.chunks.emplace_back(p, n);
    for (uint32_t k = 0; k < n; ++k) q.producer_ = ring.next(q.producer_);
    q.reserved_seq_ += n;
    q.reservations_.push_back({q.reserved_seq_, q.producer_, false});
    DriverQueue::Reservation* mine = &q.reservations_.back();
    const uint64_t end_seq = q.reserved_seq_;
    for (uint32_t k = 0; k < n; ++k, ++i, p = ring.next(p)) {
      const uint64_t slot = q.slot_address(p);
      const uint64_t* w = words + i * entry_words;
      if (i == count) {
        out.barrier = p;
        h.barrier_entry(p, slot, barrier_words);
        w = barrier_words;
      }
      mem_.write(slot, w, q.entry_bytes_);
      charge_cycles(timing_.command_write_cycles);
      commands_issued_.inc();
    }
    mine->written = true;   // deque elements stay put while others push behind them
    while (!q.reservations_.empty() && q.reservations_.front().written) {
      q.written_seq_ = q.reservations_.front().end_seq;
      q.written_ptr_ = q.reservations_.front().end_ptr;
      q.reservations_.pop_front();
    }
    out.end_seq = end_seq;
  }
  return {};
}

Status DriverBase::submit_batch(DriverQueue& q, const uint64_t* words, size_t count, const std::string& op) {
  DriverQueue::Hooks& h = q.hooks_;
  const common::IndexRing& ring = q.ring_;
  const uint64_t t0 = take_op_start(to_ps(sc_time_stamp()));
  charge_cycles(timing_.op_overhead_cycles);
  uint64_t lock_ps = 0;
  const bool serialised = q.submission_ == DriverQueue::Submission::Serialised;
  uint64_t ticket = 0;
  if (serialised) {
    const uint64_t asked = to_ps(sc_time_stamp());
    ticket = q.next_ticket_++;
    while (q.serving_ != ticket) sc_core::wait(q.lock_released_);
    lock_ps = to_ps(sc_time_stamp()) - asked;
  }
  // Serialised: the next ticket's turn, on every way out.
  struct Unlock {
    DriverQueue& q; bool on;
    ~Unlock() { if (on) { ++q.serving_; q.lock_released_.notify(sc_core::SC_ZERO_TIME); } }
  } unlock{q, serialised};

  // Like Linux's poll timeouts: a queue that never drains is an error, not a hang.
  const sc_core::sc_time deadline = sync_deadline();
  Written w;
  if (Status s = write_entries(q, words, count, deadline, w); !s.ok) return s;
  // Concurrent: from here until its sync is seen complete, this CPU holds the queue's
  // lock shared (DriverQueue::sync_waiters_), on every way out.
  struct SharedHold {
    DriverQueue& q; bool on;
    ~SharedHold() { if (on) --q.sync_waiters_; }
  } shared{q, !serialised};
  if (shared.on) ++q.sync_waiters_;
  // This CPU's entries are in the written prefix: ring for it, unless a CPU still writing
  // earlier slots will (then wait for that doorbell).
  // The doorbell time is when the ring that covered these entries was written, also when
  // this CPU, as the doorbell writer, went on to ring for others.
  uint64_t t_doorbell = 0;
  if (q.written_seq_ >= w.end_seq) ring_written_prefix(q, false, w.end_seq, &t_doorbell);
  // Waiting for another CPU's doorbell is time lost to the others, like a lock wait.
  if (!t_doorbell) {
    const uint64_t written_at = to_ps(sc_time_stamp());
    while (q.rung_seq_ < w.end_seq) sc_core::wait(q.doorbell_rung_);
    t_doorbell = to_ps(sc_time_stamp());
    lock_ps += t_doorbell - written_at;
  }

  const uint32_t first = w.chunks.front().first;
  const sc_core::sc_time sync_by = sync_deadline();   // the barrier's own timeout, from the doorbell
  for (unsigned poll = 1;; ++poll) {
    sc_core::wait(poll_interval());
    polls_.inc();
    if (h.completed(first, w.barrier)) break;
    if (sc_time_stamp() > sync_by) return barrier_timeout(q.barrier_what_, h.registers());
    if (Status s = h.check_error(poll); !s.ok) return s;
  }
  if (Status s = h.after_completion(); !s.ok) return s;
  const uint64_t t_done = to_ps(sc_time_stamp());
  // The barrier completed: everything up to it was consumed (unless the view is newer).
  // Concurrent: only the last sync waiter moves the view (the others' syncs may be
  // polled still).
  const uint32_t after = ring.next(w.barrier);
  if (serialised || q.sync_waiters_ == 1)
    if (ring.used(after, q.consumer_seen_) <= ring.used(q.producer_, q.consumer_seen_)) q.consumer_seen_ = after;

  std::vector<common::CommandTrace> traces;
  traces.reserve(count + 1);
  for (const auto& [start, n] : w.chunks)
    for (uint32_t k = 0, p = start; k < n; ++k, p = ring.next(p)) traces.push_back(q.traces_[ring.index(p)]);
  // The entry just ahead of this batch (another CPU's, on a shared queue): until it has
  // executed, this batch waits in the queue.
  const uint64_t ahead_end_ps = q.traces_[ring.index(first + ring.pointer_mask())].exec_end_ps;
  record_invalidation(op, t0, t_doorbell, t_done, traces, lock_ps, ahead_end_ps, q.direct_);
  return {};
}

void DriverBase::record_invalidation(const std::string& op, uint64_t t0, uint64_t t_doorbell, uint64_t t_done,
                                     const std::vector<common::CommandTrace>& traces, uint64_t lock_ps,
                                     uint64_t ahead_end_ps, bool direct) {
  // A queue the hardware reads (a guest's VCMDQ) took no trap, whatever emulates the others.
  TrappingDoorbell* const trapping = direct ? nullptr : trapping_;
  InvalidationRecord r;
  r.op = op;
  r.start_ps = t0;
  r.commands = unsigned(traces.size());
  r.total_ps = t_done - t0;
  r.lock_ps = lock_ps;
  r.software_ps = t_doorbell - t0 - lock_ps;
  uint64_t first_fetch = ~0ull, prev_end = ahead_end_ps;
  for (size_t i = 0; i < traces.size(); ++i) {
    const common::CommandTrace& t = traces[i];
    first_fetch = std::min(first_fetch, t.fetch_start_ps);
    if (t.first_of_fetch || i == 0) r.fetch_ps += t.fetch_end_ps - t.fetch_start_ps;
    // The barrier's own execution is sync time, not invalidation work.
    const uint64_t exec_start = std::max(t.fetch_end_ps, prev_end);
    if (i + 1 < traces.size() && t.exec_end_ps > exec_start) r.execution_ps += t.exec_end_ps - exec_start;
    prev_end = t.exec_end_ps;
  }
  r.queueing_ps = first_fetch > t_doorbell && first_fetch != ~0ull ? first_fetch - t_doorbell : 0;
  // Fetched, but behind entries still executing: waiting in the queue too.
  if (!traces.empty()) {
    const uint64_t from = std::max(traces.front().fetch_end_ps, t_doorbell);
    if (ahead_end_ps > from && ahead_end_ps <= t_done) r.queueing_ps += ahead_end_ps - from;
  }
  // A trapped doorbell: the emulated queue ran inside the doorbell write, whose time the
  // spans divide; what follows the write until the completion was seen is sync.
  TrapSpans& spans = op_state().trapped;
  if (trapping) {
    r.queueing_ps = r.fetch_ps = r.execution_ps = 0;
    r.software_ps -= std::min(r.software_ps, spans.total());
    r.trap_ps = spans.trap_ps; r.vmm_ps = spans.vmm_ps; r.host_kernel_ps = spans.host_kernel_ps;
    r.host_queue_ps = spans.host_queue_ps; r.return_ps = spans.return_ps;
  }
  spans = TrapSpans{};
  // Work the emulator did in the background while this CPU waited: taken out of the wait
  // (never more than the wait), so the parts still add up to the total.
  if (trapping) {
    const TrapSpans bg = trapping->take_background_spans();
    uint64_t wait = r.total_ps - std::min(r.total_ps, r.parts_ps());
    for (auto [part, add] : {std::pair{&r.vmm_ps, bg.vmm_ps}, {&r.host_kernel_ps, bg.host_kernel_ps},
                             {&r.host_queue_ps, bg.host_queue_ps}}) {
      const uint64_t taken = std::min(wait, add);
      *part += taken;
      wait -= taken;
    }
  }
  // The oracle's barrier time: when the hardware completed the barrier (not when the CPU noticed).
  uint64_t& barrier_ps = op_state().last_barrier_ps;
  barrier_ps = t_done;
  if (!traces.empty() && traces.back().exec_end_ps != 0 && traces.back().exec_end_ps <= t_done)
    barrier_ps = traces.back().exec_end_ps;
  else if (const uint64_t c = trapping ? trapping->last_completion_ps() : 0; traces.empty() && c && c <= t_done)
    barrier_ps = c;   // the emulator's completion write (a virtio used entry), not its poll
  const uint64_t accounted = r.parts_ps();
  const uint64_t rest = r.total_ps > accounted ? r.total_ps - accounted : 0;
  // The barrier's wait for device ATC completions is its own part, taken out of sync.
  uint64_t device_wait = 0;
  if (!trapping)
    for (const common::CommandTrace& t : traces) device_wait += t.device_wait_ps;
  r.atc_ps = std::min(rest, device_wait);
  r.sync_ps = rest - r.atc_ps;
  last_record_ = r;
  queue_time_ps_ += r.total_ps - r.software_ps - r.lock_ps;
  if (op != "init" && op != "attach") log_.add(r);
  if (timeline_) {
    char args[32];
    std::snprintf(args, sizeof args, "{\"commands\":%u}", r.commands);
    timeline_->nested(cpu_track(), "invalidation", op.c_str(), r.start_ps, r.total_ps, args,
                      {{"software", r.software_ps},
                       {"lock", r.lock_ps},
                       {"trap", r.trap_ps},   // the trapped parts, in the order they happen
                       {"vmm", r.vmm_ps},
                       {"host_kernel", r.host_kernel_ps},
                       {"host_queue", r.host_queue_ps},
                       {"return", r.return_ps},
                       {"queueing", r.queueing_ps},
                       {"fetch", r.fetch_ps},
                       {"execution", r.execution_ps},
                       {"atc", r.atc_ps},
                       {"sync", r.sync_ps}});
  }
}

void DriverBase::collect_doorbell_spans() {
  if (trapping_) op_state().trapped += trapping_->take_doorbell_spans();
}

void DriverBase::drop_trap_spans() {
  op_state().trapped = TrapSpans{};
  if (trapping_) trapping_->take_background_spans();
}

void DriverBase::set_trapping_doorbell(TrappingDoorbell* doorbell) {
  trapping_ = doorbell;
  log_.set_trapped_parts(doorbell != nullptr);
}

void DriverBase::set_timeline(common::Timeline& timeline, uint32_t pid) {
  timeline_ = &timeline;
  timeline_pid_ = pid;
  cpu_tracks_ = 0;
  for (size_t i = 0; i < queues_.size(); ++i)
    queues_[i]->set_timeline(timeline, timeline.track(pid, queues_.size() == 1 ? "queue" : "queue " + std::to_string(i)));
}

Status DriverBase::barrier_timeout(const std::string& what, const std::string& registers) const {
  return Status::fail(what + " not complete after " + std::to_string(timing_.sync_timeout_us) + " us (driver.sync_timeout_us; " + registers + ")");
}

void DriverBase::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".commands_issued", commands_issued_, "count", "queue entries written by the driver");
  reg.add(p + ".polls", polls_, "count", "completion polls");
  reg.add(p + ".events_consumed", events_consumed_, "count", "event / fault records read and acknowledged");
  log_.register_stats(reg, p + ".invalidation");
}

}  // namespace iommusim::driver

#include "models/common/correctness_oracle.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "models/common/bits.h"
#include "models/common/clock.h"

namespace iommusim::common {

namespace {
constexpr size_t kRetiredKept = 512;   // per space, before completed versions are forgotten
}  // namespace

CorrectnessOracle::Space* CorrectnessOracle::space(uint32_t id) {
  auto& slot = space_cache_[id % space_cache_.size()];
  if (slot.second && slot.first == id) return slot.second;
  auto it = spaces_.find(id);
  if (it == spaces_.end()) return nullptr;
  slot = {id, &it->second};
  return slot.second;
}

void CorrectnessOracle::add_space(uint32_t id, SpaceKind kind, uint32_t parent) {
  Space& s = spaces_[id];
  s.kind = kind;
  s.parent = parent;
}

void CorrectnessOracle::carve(Space& s, uint64_t in, uint64_t bytes, std::vector<Extent>& removed) {
  const uint64_t end = in + bytes;
  auto it = s.live.upper_bound(in);
  if (it != s.live.begin()) --it;
  while (it != s.live.end() && it->second.in < end) {
    Extent e = it->second;
    if (e.end <= in) { ++it; continue; }
    it = s.live.erase(it);
    if (e.in < in) {   // keep the part below
      Extent lo = e; lo.end = in;
      s.live.emplace(lo.in, lo);
    }
    if (e.end > end) {   // keep the part above
      Extent hi = e; hi.in = end; hi.out = e.out + (end - e.in);
      it = s.live.emplace(hi.in, hi).first;
      ++it;
    }
    Extent mid = e;
    mid.in = std::max(e.in, in);
    mid.end = std::min(e.end, end);
    mid.out = e.out + (mid.in - e.in);
    removed.push_back(mid);
  }
}

void CorrectnessOracle::map(uint32_t id, uint64_t in, uint64_t out, uint64_t bytes, Rights r) {
  Space* s = space(id);
  if (!s || bytes == 0) return;
  std::vector<Extent> removed;
  carve(*s, in, bytes, removed);   // the driver refuses to map over live leaves; be exact anyway
  const uint64_t t = now_ps();
  s->live.emplace(in, Extent{in, in + bytes, out, r, t});
  // IOVA reuse: an unmapped range mapped anew.
  for (auto it = s->retired.upper_bound(in); it != s->retired.end(); ++it) {
    Retired& v = it->second;
    if (v.e.in >= in + bytes && it->first > in + bytes + s->max_retired_bytes) break;
    if (v.by_unmap && v.e.in < in + bytes && v.e.end > in && v.reused == kPending) v.reused = t;
  }
}

void CorrectnessOracle::visible_from(uint32_t id, uint64_t in, uint64_t bytes, uint64_t visible_ps) {
  Space* s = space(id);
  if (!s || bytes == 0) return;
  auto it = s->live.upper_bound(in);
  if (it != s->live.begin() && std::prev(it)->second.end > in) --it;
  for (; it != s->live.end() && it->first < in + bytes; ++it) it->second.created = visible_ps;
}

CorrectnessOracle::ChangeId CorrectnessOracle::retire(uint32_t id, uint64_t in, uint64_t bytes, bool by_unmap,
                                                      const uint64_t* out, const Rights* r) {
  const ChangeId c = next_change_++;
  Space* s = space(id);
  if (!s || bytes == 0) return c;
  std::vector<Extent> removed;
  carve(*s, in, bytes, removed);
  const uint64_t t = now_ps();
  for (const Extent& e : removed) {
    s->retired.emplace(e.end, Retired{e, c, by_unmap, kPending});
    s->max_retired_bytes = std::max(s->max_retired_bytes, e.end - e.in);
    if (!by_unmap) {   // the same range, changed in place
      Extent n = e;
      if (out) n.out = *out + (e.in - in);
      if (r) n.rights = *r;
      n.created = t;
      s->live.emplace(n.in, n);
    }
  }
  if (s->retired.size() > kRetiredKept) prune(*s);
  return c;
}

CorrectnessOracle::ChangeId CorrectnessOracle::unmap(uint32_t id, uint64_t in, uint64_t bytes) {
  return retire(id, in, bytes, true, nullptr, nullptr);
}

CorrectnessOracle::ChangeId CorrectnessOracle::change(uint32_t id, uint64_t in, uint64_t bytes, uint64_t out,
                                                      Rights r) {
  return retire(id, in, bytes, false, &out, &r);
}

CorrectnessOracle::ChangeId CorrectnessOracle::change_rights(uint32_t id, uint64_t in, uint64_t bytes, Rights r) {
  return retire(id, in, bytes, false, nullptr, &r);
}

CorrectnessOracle::ChangeId CorrectnessOracle::attach(uint32_t rid, std::optional<uint32_t> pasid, uint32_t id) {
  const ChangeId c = next_change_++;
  const uint64_t k = key(rid, pasid);
  if (auto it = attached_.find(k); it != attached_.end()) {
    if (it->second.space == id) return c;   // re-attached to the same domain: nothing changes
    retired_attachments_.push_back({k, it->second, c});
  }
  attached_[k] = Attachment{id, now_ps()};
  attachment_cached_ = false;
  return c;
}

CorrectnessOracle::ChangeId CorrectnessOracle::detach(uint32_t rid, std::optional<uint32_t> pasid) {
  const ChangeId c = next_change_++;
  const uint64_t k = key(rid, pasid);
  if (auto it = attached_.find(k); it != attached_.end()) {
    retired_attachments_.push_back({k, it->second, c});
    attached_.erase(it);
    attachment_cached_ = false;
  }
  return c;
}

uint64_t CorrectnessOracle::done_time(ChangeId c) const {
  if (!c) return 0;
  auto it = change_done_.find(c);
  return it == change_done_.end() ? kPending : it->second;
}

void CorrectnessOracle::complete(ChangeId id, uint64_t barrier_ps) {
  change_done_[id] = barrier_ps;
  // Judge the DMAs that relied on this change.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    const Wait& w = *it;
    bool relies = false, all_done = true, late = false;
    for (ChangeId r : w.relies) {
      if (!r) continue;
      const uint64_t t = done_time(r);
      relies |= r == id;
      if (t == kPending) all_done = false;
      else if (w.done_ps > t) late = true;
    }
    if (!relies) { ++it; continue; }
    if (late) {
      violation(w.rq, w.done_ps, "no longer mapped: its invalidation's barrier completed at " + std::to_string(barrier_ps) + " ps",
                hex(w.got), "stale translation used after the covering barrier completed");
      it = waiting_.erase(it);
    } else if (all_done) {
      stale_.inc();
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  if (++completions_ % 64 == 0) forget_completed();
}

void CorrectnessOracle::forget_completed() {
  // Old attachments whose barrier completed: a DMA still using one is a violation either
  // way; a fault of a DMA issued before their barrier can no longer be judged.
  const uint64_t now = now_ps();
  if (retired_attachments_.size() > 64) {
    retired_attachments_.erase(
        std::remove_if(retired_attachments_.begin(), retired_attachments_.end(),
                       [&](const RetiredAttachment& r) {
                         const uint64_t t = done_time(r.change);
                         if (t == kPending || t >= now) return false;
                         pruned_horizon_ps_ = std::max(pruned_horizon_ps_, t);
                         return true;
                       }),
        retired_attachments_.end());
  }
  // Barrier times nothing refers to any more (change ids only grow).
  ChangeId oldest = next_change_;
  for (auto& [id, sp] : spaces_)
    for (auto& [end, v] : sp.retired) oldest = std::min(oldest, v.change);
  for (auto& r : retired_attachments_) oldest = std::min(oldest, r.change);
  for (auto& w : waiting_)
    for (ChangeId c : w.relies)
      if (c) oldest = std::min(oldest, c);
  change_done_.erase(change_done_.begin(), change_done_.lower_bound(oldest));
}

void CorrectnessOracle::prune(Space& s) {
  // Forget the completed versions; a DMA that still used one is a violation either way
  // (its output then matches no candidate), but a fault can no longer be judged for DMAs
  // issued before the newest forgotten barrier.
  const uint64_t now = now_ps();
  for (auto it = s.retired.begin(); it != s.retired.end();) {
    const uint64_t t = done_time(it->second.change);
    if (t != kPending && t < now) {
      pruned_horizon_ps_ = std::max(pruned_horizon_ps_, t);
      it = s.retired.erase(it);
    } else {
      ++it;
    }
  }
  s.max_retired_bytes = 0;
  for (auto& [end, v] : s.retired) s.max_retired_bytes = std::max(s.max_retired_bytes, v.e.end - v.e.in);
}

// Field by field: a whole-candidate copy read a candidate just written field by field with
// wider loads, which stalled on store forwarding (a tenth of the oracle's time).
CorrectnessOracle::Candidate& CorrectnessOracle::extend(std::vector<Candidate>& out, const Candidate& base,
                                                        uint64_t output, const Rights& rights) {
  static_assert(sizeof(Candidate) == 56, "extend() copies every field of Candidate: copy a new one here too");
  Candidate& c = out.emplace_back();
  c.out = output;
  c.rights = base.rights & rights;
  for (unsigned i = 0; i < 3; ++i) c.relies[i] = base.relies[i];
  c.reused = base.reused;
  c.created = base.created;
  return c;
}

void CorrectnessOracle::versions(uint32_t id, uint64_t addr, uint64_t issue_ps, const Candidate& base,
                                 std::vector<Candidate>& out) {
  Space* s = space(id);
  if (!s) return;
  auto it = s->live.upper_bound(addr);
  if (it != s->live.begin()) {
    const Extent& e = std::prev(it)->second;
    if (addr >= e.in && addr < e.end) {
      Candidate& c = extend(out, base, e.out + (addr - e.in), e.rights);
      c.created = std::max(base.created, e.created);
    }
  }
  if (s->retired.empty()) return;
  for (auto r = s->retired.upper_bound(addr); r != s->retired.end() && r->first <= addr + s->max_retired_bytes; ++r) {
    const Retired& v = r->second;
    if (addr < v.e.in) continue;
    Candidate& c = extend(out, base, v.e.out + (addr - v.e.in), v.e.rights);
    c.reused = base.reused || (v.by_unmap && v.reused <= issue_ps);
    if (!c.add(v.change)) out.pop_back();
  }
}

void CorrectnessOracle::candidates(uint32_t id, uint64_t addr, uint64_t issue_ps, const Candidate& base,
                                   std::vector<Candidate>& out) {
  const Space* s = space(id);
  if (!s) return;
  if (s->kind != SpaceKind::Nested) { versions(id, addr, issue_ps, base, out); return; }
  // Stage 1 gives IPAs; each goes through every version of the parent's stage 2.
  scratch2_.clear();
  versions(id, addr, issue_ps, base, scratch2_);
  for (const Candidate& ipa : scratch2_) versions(s->parent, ipa.out, issue_ps, ipa, out);
}

bool CorrectnessOracle::changing(uint32_t id, uint64_t addr, uint64_t issue_ps) const {
  auto pending_at = [&](ChangeId c) { const uint64_t t = done_time(c); return t == kPending || t >= issue_ps; };
  auto covers = [&](const Space& s, uint64_t a) {
    for (auto r = s.retired.upper_bound(a); r != s.retired.end() && r->first <= a + s.max_retired_bytes; ++r)
      if (a >= r->second.e.in && pending_at(r->second.change)) return true;
    return false;
  };
  auto sit = spaces_.find(id);
  if (sit == spaces_.end()) return false;
  const Space& s = sit->second;
  if (covers(s, addr)) return true;
  if (s.kind == SpaceKind::Nested) {
    auto pit = spaces_.find(s.parent);
    auto it = s.live.upper_bound(addr);
    if (pit != spaces_.end() && it != s.live.begin()) {
      const Extent& e = std::prev(it)->second;
      if (addr >= e.in && addr < e.end && covers(pit->second, e.out + (addr - e.in))) return true;
    }
  }
  return false;
}

void CorrectnessOracle::dma_completed(const DmaRequest& rq, const DmaOutcome& o, uint64_t issue_ps, uint64_t done) {
  checked_.inc();
  if (bypass_) {
    if (!o.ok || o.output != rq.input)
      violation(rq, done, hex(rq.input) + " (bypass)", o.ok ? hex(o.output) : std::string("fault"),
                "bypass must pass every request untranslated");
    return;
  }
  // Every way the device's context (attachment) and the mappings can explain the result.
  const uint64_t k = key(rq.requester_id, rq.pasid_valid ? std::optional<uint32_t>(rq.pasid) : std::nullopt);
  std::vector<Candidate>& cands = scratch_;
  cands.clear();
  if (!attachment_cached_ || cached_key_ != k) {
    cached_attachment_ = attached_.find(k);
    cached_key_ = k;
    attachment_cached_ = true;
  }
  const auto live = cached_attachment_;
  if (live != attached_.end()) candidates(live->second.space, rq.input, issue_ps, Candidate{}, cands);
  bool attach_changing = false;
  for (const RetiredAttachment& ra : retired_attachments_) {
    if (ra.key != k) continue;
    const uint64_t t = done_time(ra.change);
    if (t == kPending || t >= issue_ps) attach_changing = true;
    Candidate b;
    b.add(ra.change);
    candidates(ra.a.space, rq.input, issue_ps, b, cands);
  }

  if (!o.ok) {
    // A fault is wrong only if a live mapping permitting the access existed for the DMA's
    // whole lifetime (created before it was issued: one made at that very time may have
    // been written after the IOMMU looked) and no change about it was pending.
    if (live == attached_.end() || live->second.created >= issue_ps || attach_changing) return;
    if (issue_ps <= pruned_horizon_ps_) return;   // cannot be judged any more
    for (const Candidate& c : cands) {
      if (c.relies[0] || c.reused || c.created >= issue_ps || !c.rights.allows(rq.access)) continue;
      if (changing(live->second.space, rq.input, issue_ps)) { stale_.inc(); return; }
      violation(rq, done, hex(c.out), "fault", "faulted although a mapping permitting the access existed");
      return;
    }
    return;
  }

  // Best explanation: a live version; else one whose changes are pending; else a violation.
  const Candidate* waiting = nullptr;
  const Candidate* late = nullptr;
  bool wrong_rights = false, reused = false;
  for (const Candidate& c : cands) {
    if (c.out != o.output) continue;
    if (!c.rights.allows(rq.access)) { wrong_rights = true; continue; }
    if (c.reused) { reused = true; continue; }
    bool pending = false, too_late = false;
    for (ChangeId r : c.relies) {
      if (!r) continue;
      const uint64_t t = done_time(r);
      if (t == kPending) pending = true;
      else if (done > t) too_late = true;
    }
    if (!c.relies[0]) return;   // correct
    if (too_late) { late = &c; continue; }
    if (!pending) { stale_.inc(); return; }   // barrier reported, at or after this DMA's completion
    if (!waiting) waiting = &c;
  }
  if (waiting) {
    Wait w;
    w.done_ps = done;
    std::copy(std::begin(waiting->relies), std::end(waiting->relies), w.relies);
    w.rq = rq;
    w.got = o.output;
    waiting_.push_back(w);
    return;
  }
  std::string expected = "fault (nothing mapped)";
  for (const Candidate& c : cands)
    if (!c.relies[0]) { expected = hex(c.out); break; }
  if (live == attached_.end() && cands.empty()) expected = "fault (device not attached)";
  const char* why = late ? "stale translation used after the covering barrier completed"
                    : reused ? "IOVA unmapped and mapped anew before the DMA, but translated to the old mapping"
                    : wrong_rights ? "access beyond the rights of every mapping it may use"
                                   : "output matches no mapping of the device's domain (another device's or domain's tables?)";
  violation(rq, done, expected, hex(o.output), why);
}

void CorrectnessOracle::violation(const DmaRequest& rq, uint64_t done_ps, const std::string& expected,
                                  const std::string& got, const std::string& why) {
  violations_.inc();
  if (kept_.size() < kKeptViolations) kept_.push_back({rq, done_ps, expected, got, why});
}

void CorrectnessOracle::finish() {
  // No barrier completed for these: the architecture allows the stale use.
  stale_.inc(waiting_.size());
  waiting_.clear();
}

nlohmann::json CorrectnessOracle::violations_json() const {
  nlohmann::json all = nlohmann::json::array();
  for (const Record& r : kept_) {
    nlohmann::json j;
    j["vendor"] = vendor_;
    j["time_ns"] = double(r.done_ps) / 1000.0;
    j["requester_id"] = r.rq.requester_id;
    j["pasid"] = r.rq.pasid_valid ? nlohmann::json(r.rq.pasid) : nlohmann::json(nullptr);
    j["address"] = hex(r.rq.input);
    j["access"] = r.rq.access.write ? "write" : "read";
    j["expected"] = r.expected;
    j["got"] = r.got;
    j["why"] = r.why;
    all.push_back(std::move(j));
  }
  return all;
}

void CorrectnessOracle::register_stats(StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".checked", checked_, "count", "DMAs (per translated page) checked against the driver's mappings");
  reg.add(p + ".permitted_stale", stale_, "count",
          "DMAs that used a retired mapping before its invalidation's barrier completed (allowed)");
  reg.add(p + ".violations", violations_, "count",
          "DMAs that used a mapping they may not (after its barrier, reused IOVA, wrong rights or domain)");
}

void ScopedOracle::set_rid(uint32_t vrid, std::optional<uint32_t> prid) {
  if (prid) scope_.rid_map[vrid] = *prid;
  else scope_.rid_map.erase(vrid);
}

std::optional<uint32_t> ScopedOracle::rid(uint32_t local) const {
  if (!scope_.virtual_rids) return local;
  auto it = scope_.rid_map.find(local);
  if (it == scope_.rid_map.end()) return std::nullopt;
  return it->second;
}

void ScopedOracle::add_space(uint32_t local, SpaceKind kind, uint32_t local_parent) {
  if (!o_) return;
  if (kind == SpaceKind::Stage1 && scope_.stage1_parent) {
    o_->add_space(space(local), SpaceKind::Nested, scope_.stage1_parent);
    return;
  }
  o_->add_space(space(local), kind, kind == SpaceKind::Nested ? space(local_parent) : 0);
}

std::optional<uint32_t> ScopedOracle::pasid(uint32_t local, std::optional<uint32_t> pasid) const {
  if (pasid || !scope_.virtual_rids) return pasid;
  auto it = scope_.rid_pasid_map.find(local);
  return it == scope_.rid_pasid_map.end() ? pasid : std::optional<uint32_t>(it->second);
}

CorrectnessOracle::ChangeId ScopedOracle::attach(uint32_t r, std::optional<uint32_t> pasid, uint32_t local_space) {
  const std::optional<uint32_t> p = rid(r);
  return o_ && p ? o_->attach(*p, this->pasid(r, pasid), space(local_space)) : 0;
}

CorrectnessOracle::ChangeId ScopedOracle::detach(uint32_t r, std::optional<uint32_t> pasid) {
  const std::optional<uint32_t> p = rid(r);
  return o_ && p ? o_->detach(*p, this->pasid(r, pasid)) : 0;
}

}  // namespace iommusim::common

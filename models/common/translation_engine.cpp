#include "models/common/translation_engine.h"

#include <algorithm>

namespace iommusim::common {

using pagetable::Fault;
using sc_core::sc_time_stamp;

std::string validate(const TranslationEngineConfig& c) {
  if (c.walkers == 0) return "walkers must be at least 1";
  const std::pair<const char*, const CacheConfig*> caches[] = {
      {"iotlb", &c.iotlb}, {"s1_walk_cache", &c.s1_walk_cache}, {"s2_walk_cache", &c.s2_walk_cache},
      {"ipa_cache", &c.ipa_cache}};
  for (auto& [name, cc] : caches)
    if (auto e = validate(*cc); !e.empty()) return std::string(name) + ": " + e;
  return {};
}

// State of one walk (or one config-address translation) while it runs.
struct TranslationEngine::WalkContext {
  uint64_t epoch = 0;          // when the walk began (for the barrier's count)
  Ps t = 0;                    // annotated time: when the walk's next step begins
  uint64_t fill_epoch = 0;     // what its results may be cached under (the request's epoch)
  bool count_as_walk = true;   // false: config-structure reads, counted apart
  unsigned reads = 0;
  bool faulted = false;        // a nested stage-2 fault, already described in `fault`
  TranslationFault fault;
};

namespace {
uint8_t entry_kind(Stages s) {
  switch (s) {
    case Stages::Stage1: return kStage1Entries;
    case Stages::Stage2: return kStage2Entries;
    case Stages::Nested: return kNestedEntries;
  }
  return kStage1Entries;
}
bool overlaps(uint64_t lo, uint64_t bytes, const InvalidationScope& s) {
  return s.bytes == 0 || (lo < s.addr + s.bytes && s.addr < lo + bytes);
}
}  // namespace

TranslationEngine::TranslationEngine(const std::string& name, const TranslationEngineConfig& cfg, const Clock& clk,
                                     MemoryRead read, const TranslationCacheNames& names)
    : clk_(clk), read_(std::move(read)), names_(names), walkers_(name + ".walkers", cfg.walkers),
      iotlb_(names.iotlb, cfg.iotlb, clk), s1_walk_cache_(names.s1_walk_cache, cfg.s1_walk_cache, clk),
      s2_walk_cache_(names.s2_walk_cache, cfg.s2_walk_cache, clk), ipa_cache_(names.ipa_cache, cfg.ipa_cache, clk) {}

pagetable::WalkStart TranslationEngine::walk_start(WalkCache& wc, const pagetable::Format& f, uint32_t domain,
                                                   uint32_t space, uint64_t ia, uint64_t root, Ps& t) {
  if (wc.enabled()) {
    // One timed probe covers every level (the levels are looked up in parallel), and
    // counts as one hit or one miss.
    t = wc.port_lookup(t);
    for (unsigned level = f.last_level(); level > f.start_level(); --level) {
      const unsigned shift = f.level_shift(level - 1);
      if (auto hit = wc.probe(WalkKey{domain, space, uint8_t(shift), ia >> shift}, t)) {
        wc.count_lookup(true);
        return {hit->level, hit->table, hit->above};
      }
    }
    wc.count_lookup(false);
  }
  return {f.start_level(), root};
}

pagetable::WalkResult TranslationEngine::stage_walk(WalkCache& wc, const pagetable::Format& f, uint32_t domain,
                                                    uint32_t space, uint64_t root, uint64_t ia,
                                                    const pagetable::Access& a, WalkContext& w, bool via_stage2,
                                                    const Regime& r) {
  const bool stage1 = &wc == &s1_walk_cache_;
  const pagetable::WalkStart start = walk_start(wc, f, domain, space, ia, root, w.t);
  auto fetch = [&](uint64_t addr, unsigned) {
    pagetable::FetchResult fr;
    uint64_t pa = addr;
    if (via_stage2) {
      const pagetable::Access table_read;   // stage-1 table walks are stage-2 reads
      if (!stage2(r, addr, table_read, true, w, pa, nullptr)) { fr.ok = false; return fr; }
    }
    fr.ok = read_(pa, &fr.raw, 8, w.t);
    if (w.count_as_walk) { table_reads_.inc(); (stage1 ? s1_reads_ : s2_reads_).inc(); ++w.reads; }
    else config_reads_.inc();
    return fr;
  };
  // Nothing a walk read before an invalidation may be cached after it.
  uint64_t& shifts = stage1 ? s1_wc_shifts_ : s2_wc_shifts_;
  auto fill = [&](unsigned level, uint64_t table, const pagetable::TablePermissions& above) {
    if (w.fill_epoch != epoch_) return;
    const unsigned shift = f.level_shift(level - 1);
    shifts |= 1ull << shift;
    wc.insert(WalkKey{domain, space, uint8_t(shift), ia >> shift}, WalkEntry{table, uint8_t(level), above}, w.t);
  };
  return pagetable::walk(f, start, ia, a, fetch, fill);
}

bool TranslationEngine::stage2(const Regime& r, uint64_t ipa, const pagetable::Access& a, bool table_fetch,
                               WalkContext& w, uint64_t& pa, uint64_t* leaf_bytes, Rights* rights) {
  // Entries are keyed by the stage-2 leaf they cache (its size and its page number), so
  // an invalidation finds an entry by any address the leaf covers. One timed probe covers
  // every leaf size present.
  std::optional<IpaEntry> hit;
  if (!ipa_cache_.enabled()) {
    ipa_cache_.count_lookup(false);
  } else {
    w.t = ipa_cache_.port_lookup(w.t);
    for (uint64_t m = ipa_leaf_shifts_; m && !hit; m &= m - 1) {
      const unsigned shift = unsigned(__builtin_ctzll(m));
      hit = ipa_cache_.probe(IpaKey{r.domain, uint8_t(shift), ipa >> shift}, w.t);
    }
    ipa_cache_.count_lookup(hit.has_value());
  }
  if (hit) {
    const bool allowed = a.write ? hit->w : hit->r;
    if (allowed && !(a.exec && !hit->x)) {
      pa = (hit->pa_page << hit->leaf_shift) | (ipa & ((1ull << hit->leaf_shift) - 1));
      if (leaf_bytes) *leaf_bytes = 1ull << hit->leaf_shift;
      if (rights) *rights = Rights{hit->r, hit->w, hit->x};
      return true;
    }
  }
  const pagetable::WalkResult wr = stage_walk(s2_walk_cache_, *r.s2, r.domain, 0, r.s2_root, ipa, a, w, false, r);
  if (wr.fault != Fault::None) {
    w.faulted = true;
    w.fault = TranslationFault{wr.fault, 2, table_fetch, ipa, wr.descriptor_address, wr.level};
    return false;
  }
  // The entry covers the whole stage-2 leaf, so combined IOTLB entries can cover the
  // smaller of the two leaves.
  const uint8_t shift = uint8_t(__builtin_ctzll(wr.leaf_bytes));
  if (w.fill_epoch == epoch_ && ipa_cache_.enabled()) {
    ipa_leaf_shifts_ |= 1ull << shift;
    ipa_cache_.insert(IpaKey{r.domain, shift, ipa >> shift},
                      IpaEntry{wr.output >> shift, wr.leaf.readable, wr.leaf.writable, wr.leaf.exec_user, shift}, w.t);
  }
  pa = wr.output;
  if (leaf_bytes) *leaf_bytes = wr.leaf_bytes;
  if (rights) *rights = Rights{wr.leaf.readable, wr.leaf.writable, wr.leaf.exec_user};
  return true;
}

Translation TranslationEngine::translate_config_address(const Regime& r, uint64_t ipa, Ps& at) {
  Translation t;
  WalkContext w;
  w.epoch = w.fill_epoch = epoch_;
  w.count_as_walk = false;
  w.t = at;
  uint64_t leaf = 0;
  t.ok = stage2(r, ipa, pagetable::Access{}, true, w, t.output, &leaf);
  t.leaf_bytes = leaf;
  if (!t.ok) t.fault = w.fault;
  at = w.t;
  note_end(w.epoch, at);
  return t;
}

Translation TranslationEngine::translate_config_address(const Regime& r, uint64_t ipa) {
  Ps t = now_ps();
  const Translation tr = translate_config_address(r, ipa, t);
  wait_until(t);
  return tr;
}

Translation TranslationEngine::translate(const Regime& r, uint64_t input, const pagetable::Access& a,
                                         uint64_t begun) {
  Ps t = now_ps();
  const Translation tr = translate(r, input, a, begun, t);
  wait_until(t);
  return tr;
}

void TranslationEngine::note_end(uint64_t epoch, Ps end) {
  Ps& latest = epoch == epoch_ ? current_end_ : older_end_;
  latest = std::max(latest, end);
}

Translation TranslationEngine::translate(const Regime& r, uint64_t input, const pagetable::Access& a,
                                         uint64_t begun, Ps& at) {
  Translation t;
  const uint8_t kind = entry_kind(r.stages);

  // IOTLB: probe each page size that may be present; one lookup time covers them all,
  // and the lookup counts as one hit or one miss.
  if (iotlb_.enabled()) {
    at = iotlb_.port_lookup(at);
    std::optional<TlbEntry> e;
    uint8_t shift = 12;
    for (unsigned n = 0; n < 3 && !e; ++n) {
      if (!(tlb_page_shifts_ & (1u << n))) continue;
      shift = uint8_t(12 + 9 * n);
      e = iotlb_.probe(TlbKey{r.domain, r.space, kind, shift, input >> shift}, at);
    }
    iotlb_.count_lookup(e.has_value());
    if (e) {
      const bool user_ok = r.stages == Stages::Stage2 || a.privileged || e->user;
      if ((a.write ? e->w : e->r) && user_ok && !(a.exec && !e->x)) {
        t.ok = t.tlb_hit = true;
        t.output = (e->out_page << shift) | (input & ((1ull << shift) - 1));
        return t;
      }
      // permission problem: rewalk so the fault is reported from the tables
    }
  }

  // Miss: take a walker and walk.
  const BusyUnits::Hold walker = walkers_.begin(at);
  WalkContext w;
  w.t = walker.start;
  w.epoch = epoch_;
  // A regime read before the last invalidation began (a stale config) may be walked, but
  // nothing the walk finds may be cached.
  w.fill_epoch = begun == kNow ? epoch_ : begun;
  ++current_walks_;
  bool ok = true;
  uint64_t output = 0, leaf_bytes = 0, input_leaf_bytes = 0;
  bool rd = true, wr_ok = true, x = true, user = true, global = false;

  if (r.stages == Stages::Stage2) {
    const pagetable::WalkResult wr = stage_walk(s2_walk_cache_, *r.s2, r.domain, 0, r.s2_root, input, a, w, false, r);
    if (wr.fault != Fault::None) {
      t.fault = TranslationFault{wr.fault, 2, false, input, wr.descriptor_address, wr.level};
      ok = false;
    } else {
      output = wr.output; leaf_bytes = input_leaf_bytes = wr.leaf_bytes;
      rd = wr.leaf.readable; wr_ok = wr.leaf.writable; x = wr.leaf.exec_user;
    }
  } else {
    const bool nested = r.stages == Stages::Nested;
    const pagetable::WalkResult wr =
        stage_walk(s1_walk_cache_, *r.s1, r.domain, r.space, r.s1_root, input, a, w, nested, r);
    if (wr.fault != Fault::None) {
      t.fault = w.faulted ? w.fault : TranslationFault{wr.fault, 1, false, 0, wr.descriptor_address, wr.level};
      ok = false;
    } else {
      output = wr.output; leaf_bytes = input_leaf_bytes = wr.leaf_bytes;
      rd = wr.leaf.readable; wr_ok = wr.leaf.writable; user = wr.leaf.user; global = wr.leaf.global;
      x = a.privileged ? wr.leaf.exec_priv : wr.leaf.exec_user;
      if (nested) {
        // The final IPA goes through stage 2; the combined entry covers the smaller page
        // and holds the rights both stages grant (user comes from stage 1 alone).
        uint64_t pa = 0, s2_leaf = 0;
        Rights s2r;
        if (!stage2(r, output, a, false, w, pa, &s2_leaf, &s2r)) { t.fault = w.fault; ok = false; }
        else {
          output = pa; leaf_bytes = std::min(leaf_bytes, s2_leaf);
          rd = rd && s2r.r; wr_ok = wr_ok && s2r.w; x = x && s2r.x;
        }
      }
    }
  }
  walkers_.end(walker, w.t);
  walk_reads_.record(w.reads);
  walk_ps_.record(w.t - walker.start);
  at = w.t;
  note_end(w.epoch, at);
  const bool stale = w.epoch != epoch_;
  if (!stale) --current_walks_;
  else if (--older_walks_ == 0) drained_.notify(sc_core::SC_ZERO_TIME);
  if (!ok) return t;

  // A walk overtaken by an invalidation must not install what it read before it.
  if (w.fill_epoch != epoch_) stale_fills_dropped_.inc();
  else if (iotlb_.enabled()) {
    const unsigned shift = leaf_bytes >= (1ull << 30) ? 30 : leaf_bytes >= (1ull << 21) ? 21 : 12;
    tlb_page_shifts_ |= uint8_t(1u << ((shift - 12) / 9));
    const uint8_t block = uint8_t(std::max<unsigned>(shift, unsigned(__builtin_ctzll(input_leaf_bytes))));
    if (block > shift) splinter_shift_ = std::max(splinter_shift_, block);
    iotlb_.insert(TlbKey{r.domain, r.space, kind, uint8_t(shift), input >> shift},
                  TlbEntry{output >> shift, rd, wr_ok, x, user, global, block}, at);
  }
  t.ok = true;
  t.output = output;
  t.leaf_bytes = leaf_bytes;
  return t;
}

// ---------------------------------------------------------------- invalidation

InvalidationScan TranslationEngine::invalidate_walk_cache(WalkCache& wc, uint64_t shifts, const InvalidationScope& s,
                                              bool match_space) {
  auto tags = [&](const WalkKey& k) {
    return (!s.domain || k.domain == *s.domain) && (!match_space || !s.space || k.space == *s.space);
  };
  if (s.bytes == 0) return wc.invalidate_all_sets([&](const WalkKey& k, const WalkEntry&) { return tags(k); });
  // An entry of shift S covers 2^S bytes of input; visit each entry the range can touch.
  InvalidationScan total;
  for (unsigned shift = 12; shift < 64; ++shift) {
    if (!(shifts & (1ull << shift))) continue;
    const uint64_t first = s.addr >> shift, last = (s.addr + s.bytes - 1) >> shift;
    auto pred = [&](const WalkKey& k, const WalkEntry&) {
      return tags(k) && k.shift == shift && k.prefix >= first && k.prefix <= last;
    };
    auto hash = [&](uint64_t p) { return WalkKey{0, 0, uint8_t(shift), p}.set_hash(); };
    auto scan = wc.invalidate_span(first, last, hash, pred);
    total.sets_scanned += scan.sets_scanned;
    total.entries_removed += scan.entries_removed;
  }
  return total;
}

// Every entry an invalidation hits goes at once, when it begins; its cost (the scans) is
// paid after. Otherwise a walk in the meantime could resume from a walk-cache entry still
// waiting for its scan and cache a translation of the old tables under the new epoch.
void TranslationEngine::invalidate_by_input(const InvalidationScope& s, uint8_t kinds) {
  begin_epoch();
  Scans scans;
  remove_by_input(s, kinds, scans);
  charge(scans);
}

// The scans run one after another, each holding a port of its cache; the queue's thread
// waits until the last ends.
void TranslationEngine::charge(const Scans& scans) {
  Ps t = now_ps();
  t = iotlb_.charge_at(scans.iotlb, t);
  t = s1_walk_cache_.charge_at(scans.s1_walk, t);
  t = s2_walk_cache_.charge_at(scans.s2_walk, t);
  t = ipa_cache_.charge_at(scans.ipa, t);
  wait_until(t);
}

void TranslationEngine::remove_by_input(const InvalidationScope& s, uint8_t kinds, Scans& scans) {
  auto pred = [&](const TlbKey& k, const TlbEntry& e) {
    if (!(kinds & k.kind)) return false;
    if (s.domain && k.domain != *s.domain) return false;
    if (e.global && s.keep_global) return false;
    if (s.space && k.space != *s.space && !(e.global && s.global_matches_any_space)) return false;
    const uint64_t block_bytes = 1ull << e.block_shift;
    return overlaps((k.vpn << k.page_shift) & ~(block_bytes - 1), block_bytes, s);
  };
  if (s.bytes == 0) {
    scans.iotlb += iotlb_.invalidate_all_sets(pred);
  } else {
    InvalidationScan& total = scans.iotlb;
    // Splintered entries of a leaf that overlaps the range may lie outside it: widen the
    // sets visited to the largest such leaf.
    uint64_t lo = s.addr, hi = s.addr + s.bytes - 1;
    if (splinter_shift_) {
      const uint64_t block = 1ull << splinter_shift_;
      lo &= ~(block - 1);
      hi |= block - 1;
    }
    for (unsigned n = 0; n < 3; ++n) {
      if (!(tlb_page_shifts_ & (1u << n))) continue;
      const unsigned shift = 12 + 9 * n;
      const uint64_t first = lo >> shift, last = hi >> shift;
      auto scan = iotlb_.invalidate_span(first, last, [](uint64_t vpn) { return vpn; }, pred);   // hashes by vpn
      total.sets_scanned += scan.sets_scanned;
      total.entries_removed += scan.entries_removed;
    }
  }
  if (!s.leaf_only) scans.s1_walk += invalidate_walk_cache(s1_walk_cache_, s1_wc_shifts_, s, true);
}

void TranslationEngine::invalidate_by_ipa(const InvalidationScope& s, bool include_tlb) {
  begin_epoch();
  Scans scans;
  if (include_tlb) {
    InvalidationScope any_space = s;
    any_space.space.reset();
    any_space.leaf_only = true;   // the stage-1 walk cache is not indexed by IPA
    remove_by_input(any_space, kStage2Entries, scans);   // stage-2-only entries: input == IPA
  }
  // Each entry is matched by its own leaf size: a 2 MB leaf is hit by any address in it.
  auto pred = [&](const IpaKey& k, const IpaEntry&) {
    return (!s.domain || k.domain == *s.domain) && overlaps(k.ipa_page << k.shift, 1ull << k.shift, s);
  };
  if (s.bytes == 0) {
    scans.ipa += ipa_cache_.invalidate_all_sets(pred);
  } else {
    InvalidationScan& total = scans.ipa;
    for (uint64_t m = ipa_leaf_shifts_; m; m &= m - 1) {
      const unsigned shift = unsigned(__builtin_ctzll(m));
      auto scan = ipa_cache_.invalidate_span(s.addr >> shift, (s.addr + s.bytes - 1) >> shift,
                                             [](uint64_t page) { return page; }, pred);   // hashes by page
      total.sets_scanned += scan.sets_scanned;
      total.entries_removed += scan.entries_removed;
    }
  }
  if (!s.leaf_only) scans.s2_walk += invalidate_walk_cache(s2_walk_cache_, s2_wc_shifts_, s, false);
  charge(scans);
}

void TranslationEngine::end_request(uint64_t epoch, Ps end) {
  note_end(epoch, end);
  if (epoch == epoch_) --current_requests_;
  else if (--older_requests_ == 0) drained_.notify(sc_core::SC_ZERO_TIME);
}

void TranslationEngine::drain_older_requests() {
  while (older_walks_ > 0 || older_requests_ > 0) sc_core::wait(drained_);
  wait_until(older_end_);
}

void TranslationEngine::register_stats(StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".table_reads", table_reads_, "count", "page-table descriptor reads by translation walks (S1+S2)");
  reg.add(p + ".s1_table_reads", s1_reads_, "count", "stage-1 descriptor reads");
  reg.add(p + ".s2_table_reads", s2_reads_, "count", "stage-2 descriptor reads (incl. those nested in S1 walks)");
  reg.add(p + ".config_table_reads", config_reads_, "count",
          "stage-2 descriptor reads made to locate configuration structures at guest addresses "
          "(apart from config_reads, which counts the structures themselves)");
  reg.add(p + ".stale_fills_dropped", stale_fills_dropped_, "count",
          "walk results not cached because an invalidation overtook the walk");
  reg.add(p + ".walk_reads", walk_reads_, "reads", "page-table reads per IOTLB-miss walk");
  reg.add(p + ".walk_latency", walk_ps_, "ns", "IOTLB-miss walk time incl. walk-cache probes", 1e-3);
  iotlb_.stats().register_stats(reg, p + "." + names_.iotlb, names_.iotlb_what);
  s1_walk_cache_.stats().register_stats(reg, p + "." + names_.s1_walk_cache, names_.s1_walk_what);
  s2_walk_cache_.stats().register_stats(reg, p + "." + names_.s2_walk_cache, names_.s2_walk_what);
  ipa_cache_.stats().register_stats(reg, p + "." + names_.ipa_cache, names_.ipa_what);
  walkers_.register_stats(reg, p + ".walkers");
}

}  // namespace iommusim::common

// The one set-associative cache used by every cache of every vendor: config caches,
// IOTLBs, walk caches, IPA->PA caches.
//
// Models: entries/ways geometry (ways == 0 or ways == entries: fully associative), LRU,
// round-robin or random replacement, a lookup latency and a number of lookup ports (busy-
// until reservations, so concurrent lookups queue), and invalidation by predicate whose cost
// depends on how much it scans: a targeted invalidation scans only the set(s) its key maps
// to, a broad one (by ASID, VMID, all) walks every set. Cost = sets scanned x
// scan_cycles_per_set, holding one lookup port for that time. Lookups take the requester's
// annotated time and return it advanced (no process waits); an invalidation's charge, made
// by a queue's own thread, waits.
//
// An entry is visible from the annotated time its fill completed (`ready`): a lookup at
// an earlier time misses, as it would while the fill was still in flight, although the
// filling request ran earlier on the host. Entries filled without a time are visible at once.
//
// Does not model: banking, partial tag compares, ECC, or merging a miss into a fill in flight.
//
// Key needs operator== and `uint64_t set_hash() const`.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/common/clock.h"
#include "models/common/resource.h"
#include "models/common/stats.h"

namespace iommusim::common {

enum class Replacement { Lru, RoundRobin, Random };
std::optional<Replacement> parse_replacement(const std::string& s);
const char* to_string(Replacement r);

struct CacheConfig {
  unsigned entries = 0;        // 0 disables the cache (every lookup misses, inserts are dropped)
  unsigned ways = 0;           // 0 = fully associative
  Replacement replacement = Replacement::Lru;
  unsigned lookup_cycles = 1;
  unsigned ports = 1;
  unsigned scan_cycles_per_set = 1;
  uint64_t seed = 1;           // for Random replacement; runs stay deterministic

  // Named setters, so a default geometry reads as what it sets:
  // CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2).
  CacheConfig& set_entries(unsigned v) { entries = v; return *this; }
  CacheConfig& set_ways(unsigned v) { ways = v; return *this; }
  CacheConfig& set_lookup_cycles(unsigned v) { lookup_cycles = v; return *this; }
  CacheConfig& set_ports(unsigned v) { ports = v; return *this; }
};

// Returns an error naming the problem, or empty when the geometry is usable.
std::string validate(const CacheConfig& c);

struct InvalidationScan {
  uint64_t sets_scanned = 0;
  uint64_t entries_removed = 0;
  InvalidationScan& operator+=(const InvalidationScan& o) {
    sets_scanned += o.sets_scanned;
    entries_removed += o.entries_removed;
    return *this;
  }
};

class CacheStats {
 public:
  Counter hits, misses, inserts, evictions, invalidated, invalidation_scans, sets_scanned;
  void register_stats(StatRegistry& reg, const std::string& prefix, const std::string& what) const;
  double hit_rate() const {
    uint64_t n = hits.value() + misses.value();
    return n ? double(hits.value()) / double(n) : 0.0;
  }
};

template <class Key, class Value>
class SetAssocCache {
 public:
  SetAssocCache(std::string name, const CacheConfig& cfg, Clock clk)
      : name_(std::move(name)), cfg_(cfg), clk_(clk), ports_(name_ + ".ports", cfg.ports ? cfg.ports : 1),
        lookup_ps_(clk.cycles_ps(cfg.lookup_cycles)) {
    ways_ = (cfg.ways == 0 || cfg.ways > cfg.entries) ? cfg.entries : cfg.ways;
    sets_ = ways_ ? cfg.entries / ways_ : 0;
    set_mask_ = sets_ > 1 && (sets_ & (sets_ - 1)) == 0 ? uint64_t(sets_) - 1 : 0;
    lines_.resize(size_t(sets_) * ways_);
    rr_next_.assign(sets_, 0);
    rng_ = cfg.seed ? cfg.seed : 0x9E3779B97F4A7C15ull;
  }

  bool enabled() const { return sets_ != 0; }
  unsigned sets() const { return sets_; }
  unsigned ways() const { return ways_; }
  const std::string& name() const { return name_; }
  const CacheConfig& config() const { return cfg_; }
  CacheStats& stats() { return stats_; }
  const CacheStats& stats() const { return stats_; }
  BusyUnits& ports() { return ports_; }

  static constexpr Ps kAnyTime = ~Ps{0};

  // Functional lookup (no time) of the entries visible at `at`. Updates replacement state
  // and hit/miss counts.
  std::optional<Value> lookup(const Key& key, Ps at = kAnyTime) {
    auto v = probe(key, at);
    count_lookup(v.has_value());
    return v;
  }

  // Functional lookup that updates replacement state but counts nothing: for a lookup
  // made of several probes (one per page size or level), counted once with count_lookup.
  std::optional<Value> probe(const Key& key, Ps at = kAnyTime) {
    if (const Value* v = find(key, at)) return *v;
    return std::nullopt;
  }
  // The same without a copy: the entry itself, valid until the cache next changes.
  const Value* find(const Key& key, Ps at = kAnyTime) {
    if (!enabled()) return nullptr;
    Line* set = set_of(key.set_hash());
    for (unsigned w = 0; w < ways_; ++w) {
      if (set[w].valid && set[w].key == key && set[w].ready <= at) {
        set[w].stamp = ++clock_;
        return &set[w].value;
      }
    }
    return nullptr;
  }
  void count_lookup(bool hit) { (hit ? stats_.hits : stats_.misses).inc(); }

  // The time of one lookup begun at `t`: a port for lookup_cycles, from when one frees.
  Ps port_lookup(Ps t) { return ports_.reserve(t, lookup_ps_) + lookup_ps_; }

  // Timed lookup at the requester's annotated time `t`, which it advances.
  std::optional<Value> lookup_at(const Key& key, Ps& t) {
    if (const Value* v = find_at(key, t)) return *v;
    return std::nullopt;
  }
  // The same without a copy (see find).
  const Value* find_at(const Key& key, Ps& t) {
    if (enabled()) t = port_lookup(t);
    const Value* v = find(key, t);
    count_lookup(v != nullptr);
    return v;
  }

  // Inserts or refreshes an entry visible from annotated time `ready`. Never takes time:
  // fills happen off the lookup path.
  void insert(const Key& key, const Value& value, Ps ready = 0) {
    if (!enabled()) return;
    Line* set = set_of(key.set_hash());
    unsigned victim = ways_;
    for (unsigned w = 0; w < ways_; ++w) {
      if (set[w].valid && set[w].key == key) {
        victim = w;
        ready = std::min(ready, set[w].ready);   // a refresh does not hide what was visible
        break;
      }
    }
    if (victim == ways_) {
      for (unsigned w = 0; w < ways_; ++w)
        if (!set[w].valid) { victim = w; break; }
    }
    if (victim == ways_) {
      victim = choose_victim(set, key.set_hash());
      stats_.evictions.inc();
    }
    set[victim] = Line{true, key, value, ++clock_, ready};
    stats_.inserts.inc();
  }

  // Invalidates every entry matching pred(key, value), scanning every set.
  template <class Pred>
  InvalidationScan invalidate_all_sets(Pred&& pred) {
    InvalidationScan scan;
    for (unsigned s = 0; s < sets_; ++s) scan_set(s, pred, scan);
    account(scan);
    return scan;
  }

  // Invalidates matching entries in the one set that set_hash selects.
  template <class Pred>
  InvalidationScan invalidate_in_set(uint64_t set_hash, Pred&& pred) {
    InvalidationScan scan;
    if (sets_) scan_set(set_index(set_hash), pred, scan);
    account(scan);
    return scan;
  }

  // Invalidates matching entries among keys whose set hashes are hash_of(first..last),
  // e.g. the pages of an address range: visits those sets, or every set once the span is
  // at least as large as the cache.
  template <class HashOf, class Pred>
  InvalidationScan invalidate_span(uint64_t first, uint64_t last, HashOf&& hash_of, Pred&& pred) {
    if (last - first + 1 >= sets_) return invalidate_all_sets(pred);
    InvalidationScan scan;
    for (uint64_t v = first; v <= last; ++v) scan_set(set_index(hash_of(v)), pred, scan);
    account(scan);
    return scan;
  }

  // Time a scan costs: sets scanned x cycles per set, holding a lookup port. Begun at `t`,
  // returns when it ends.
  Ps charge_at(const InvalidationScan& scan, Ps t) {
    if (!enabled() || scan.sets_scanned == 0) return t;
    const Ps d = clk_.cycles_ps(scan.sets_scanned * cfg_.scan_cycles_per_set);
    return ports_.reserve(t, d) + d;
  }
  // The same from a queue's thread, which waits until the scan ends.
  void charge(const InvalidationScan& scan) { wait_until(charge_at(scan, now_ps())); }

  uint64_t valid_entries() const {
    uint64_t n = 0;
    for (auto& l : lines_) n += l.valid;
    return n;
  }

 private:
  struct Line { bool valid = false; Key key{}; Value value{}; uint64_t stamp = 0; Ps ready = 0; };

  // A mask when the set count is a power of two: the same set, without a divide per probe.
  unsigned set_index(uint64_t hash) const { return unsigned(set_mask_ ? hash & set_mask_ : hash % sets_); }
  Line* set_of(uint64_t hash) { return &lines_[size_t(set_index(hash)) * ways_]; }

  unsigned choose_victim(Line* set, uint64_t hash) {
    switch (cfg_.replacement) {
      case Replacement::Lru: {
        unsigned v = 0;
        for (unsigned w = 1; w < ways_; ++w)
          if (set[w].stamp < set[v].stamp) v = w;
        return v;
      }
      case Replacement::RoundRobin: {
        unsigned& next = rr_next_[set_index(hash)];
        unsigned v = next;
        next = (next + 1) % ways_;
        return v;
      }
      case Replacement::Random:
      default:
        rng_ ^= rng_ << 13; rng_ ^= rng_ >> 7; rng_ ^= rng_ << 17;   // xorshift64
        return unsigned(rng_ % ways_);
    }
  }

  template <class Pred>
  void scan_set(unsigned s, Pred& pred, InvalidationScan& scan) {
    Line* set = &lines_[size_t(s) * ways_];
    ++scan.sets_scanned;
    for (unsigned w = 0; w < ways_; ++w) {
      if (set[w].valid && pred(set[w].key, set[w].value)) {
        set[w].valid = false;
        ++scan.entries_removed;
      }
    }
  }

  void account(const InvalidationScan& scan) {
    stats_.invalidation_scans.inc();
    stats_.sets_scanned.inc(scan.sets_scanned);
    stats_.invalidated.inc(scan.entries_removed);
  }

  std::string name_;
  CacheConfig cfg_;
  Clock clk_;
  BusyUnits ports_;
  Ps lookup_ps_;
  unsigned ways_ = 0, sets_ = 0;
  uint64_t set_mask_ = 0;   // sets_ - 1 when sets_ is a power of two above 1, else 0
  std::vector<Line> lines_;
  std::vector<unsigned> rr_next_;
  uint64_t clock_ = 0, rng_ = 0;
  CacheStats stats_;
};

}  // namespace iommusim::common

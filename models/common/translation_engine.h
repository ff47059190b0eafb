// The translation engine every vendor model shares: IOTLB, stage-1 and stage-2 walk
// caches, the IPA/GPA->PA cache, walker slots, and the one-stage and nested (2D) walks.
//
// A vendor model resolves its own configuration structures (SMMU STE/CD, VT-d context and
// PASID entries, AMD DTE/GCR3) into a Regime: which stages apply, the page-table formats
// and roots, and the two tags every cache entry carries:
//   domain  - SMMU VMID, VT-d DID, AMD DomainID (tags every cache);
//   space   - SMMU ASID, VT-d PASID, AMD PASID (tags IOTLB and stage-1 walk-cache entries).
// The engine walks through the model's memory socket (descriptor reads cost memory time),
// and reports faults in neutral form; the vendor turns them into its records.
//
// Invalidation is by scope (domain, space, address range, leaf-only) and costs the scan
// time of the caches it touches (see SetAssocCache::charge). Each invalidation starts a new
// epoch: walks that began before it may not fill any cache when they finish, and a
// completion barrier (CMD_SYNC, inv_wait, COMPLETION_WAIT) calls drain_older_requests().
//
// Timing: a translation runs at the requester's annotated time and returns it advanced
// (cache ports, walkers and memory are busy-until reservations); nothing waits. The
// engine keeps the latest annotated end of the requests of each epoch, so a barrier
// waits until the older requests' end (docs/architecture.md, "Timing").
//
// What it models: IOTLB entries for 4 KB, 2 MB and 1 GB pages (a combined nested entry
// covers the smaller of the two leaves and holds the rights both stages grant; other leaf
// sizes are cached as 4 KB entries);
// walk caches keyed by the input bits above each table (so any format and level skipping
// fit); one timed probe for all IOTLB page sizes and one for all walk-cache levels.
// What it does not model: prefetch, speculative walks, hardware A/D updates.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "models/common/cache.h"
#include "models/common/clock.h"
#include "models/common/resource.h"
#include "models/common/stats.h"
#include "models/pagetable/format.h"
#include "models/pagetable/walker.h"

namespace iommusim::common {

struct TranslationEngineConfig {
  unsigned walkers = 16;   // concurrent table walks
  // The geometries iommusim's config declares (platforms/iommu_lane.cpp translation_keys;
  // a test checks they agree).
  CacheConfig iotlb = CacheConfig().set_entries(2048).set_ways(4).set_lookup_cycles(3).set_ports(4);
  CacheConfig s1_walk_cache = CacheConfig().set_entries(256).set_ways(4).set_lookup_cycles(4).set_ports(2);
  CacheConfig s2_walk_cache = CacheConfig().set_entries(128).set_ways(4).set_lookup_cycles(4).set_ports(2);
  CacheConfig ipa_cache = CacheConfig().set_entries(128).set_ways(4).set_lookup_cycles(3).set_ports(2);
};
std::string validate(const TranslationEngineConfig& c);   // "" or a message naming the field

// Stat names of the four caches; vendors use their own words (VT-d "PSC", AMD "PDC").
struct TranslationCacheNames {
  std::string iotlb = "iotlb", s1_walk_cache = "s1_walk_cache", s2_walk_cache = "s2_walk_cache",
              ipa_cache = "ipa_cache";
  std::string iotlb_what = "IOTLB", s1_walk_what = "stage-1 walk cache", s2_walk_what = "stage-2 walk cache",
              ipa_what = "IPA->PA cache";
};

enum class Stages : uint8_t { Stage1 = 1, Stage2 = 2, Nested = 3 };
// IOTLB entry kinds, as a mask for invalidation.
enum EntryKinds : uint8_t { kStage1Entries = 1, kStage2Entries = 2, kNestedEntries = 4, kAllEntries = 7 };

struct Regime {
  Stages stages = Stages::Stage1;
  uint32_t domain = 0;
  uint32_t space = 0;
  const pagetable::Format* s1 = nullptr;
  uint64_t s1_root = 0;   // an IPA/GPA when nested
  const pagetable::Format* s2 = nullptr;
  uint64_t s2_root = 0;
};

struct TranslationFault {
  pagetable::Fault fault = pagetable::Fault::None;
  unsigned stage = 1;               // stage whose tables faulted
  bool table_fetch = false;         // a stage-2 fault while translating a stage-1 table (or config) address
  uint64_t ipa = 0;                 // stage-2 input of the faulting access (stage 2 only)
  uint64_t descriptor_address = 0;  // last descriptor read (PA)
  unsigned level = 0;
};

struct Translation {
  bool ok = false;
  bool tlb_hit = false;
  uint64_t output = 0;
  uint64_t leaf_bytes = 0;   // 0 on an IOTLB hit
  TranslationFault fault;
};

// Which entries an invalidation hits. Unset optionals match everything.
struct InvalidationScope {
  std::optional<uint32_t> domain;
  std::optional<uint32_t> space;
  uint64_t addr = 0, bytes = 0;     // bytes == 0: every address
  bool leaf_only = false;           // walk caches survive (SMMU Leaf=1, VT-d IH=1, AMD PDE=0)
  // Global IOTLB entries (VMSA nG = 0): match whatever their space (SMMU TLBI_NH_VA), or
  // are not hit at all (TLBI_NH_ASID).
  bool global_matches_any_space = false;
  bool keep_global = false;
};

class TranslationEngine {
 public:
  // read: reads `len` bytes of simulated memory at annotated time `t`, which it advances.
  using MemoryRead = std::function<bool(uint64_t addr, void* dst, unsigned len, Ps& t)>;

  TranslationEngine(const std::string& name, const TranslationEngineConfig& cfg, const Clock& clk, MemoryRead read,
                    const TranslationCacheNames& names = {});

  // Translates `input` (IOVA/VA) under `r`, beginning at annotated time `t`, which it
  // advances. `begun` is the epoch at which the request began (DmaRequest::epoch): the
  // regime was read under it, so nothing is cached if an invalidation began since.
  static constexpr uint64_t kNow = ~0ull;
  Translation translate(const Regime& r, uint64_t input, const pagetable::Access& a, uint64_t begun, Ps& t);
  // The same from an SC_THREAD that waits for the result (tests, queue threads).
  Translation translate(const Regime& r, uint64_t input, const pagetable::Access& a, uint64_t begun = kNow);
  // The current invalidation epoch; begin_epoch() starts a new one (every invalidation
  // does, configuration invalidations included): fills read under an older epoch are
  // dropped, and the barrier waits for requests begun before it.
  uint64_t epoch() const { return epoch_; }
  // Stage-2 translation of a configuration structure the IOMMU reads at a guest address
  // (a CD, the GCR3 table): cached like table fetches, counted as config reads.
  Translation translate_config_address(const Regime& r, uint64_t ipa, Ps& t);
  Translation translate_config_address(const Regime& r, uint64_t ipa);   // waits

  // Entries found by the request's input address: IOTLB entries of `kinds`, and (unless
  // leaf_only) the stage-1 walk cache.
  void invalidate_by_input(const InvalidationScope& s, uint8_t kinds);
  // Entries found by IPA/GPA: stage-2-only IOTLB entries (if include_tlb), the IPA cache
  // and (unless leaf_only) the stage-2 walk cache. The space tag is ignored.
  void invalidate_by_ipa(const InvalidationScope& s, bool include_tlb = true);
  // DMAs in flight, so a barrier can order them (see InflightRequest): begin returns the
  // request's epoch, end takes it back with the request's annotated completion time.
  uint64_t begin_request() { ++current_requests_; return epoch_; }
  void end_request(uint64_t epoch, Ps end);
  // Completion barrier: returns once every DMA (and every walk or config fetch, which run
  // inside DMAs) that began before the last invalidation has completed: once none is still
  // running and the latest annotated end among them has passed. This orders all older
  // DMAs, not only those that used an invalidated entry: simpler, and never late.
  void drain_older_requests();
  // Starts a new invalidation epoch: every invalidation here does, and a vendor's
  // configuration invalidation calls it too. A fetch begun under an older epoch may finish
  // but may not fill any cache, and the barrier waits for requests begun before it.
  void begin_epoch() {
    ++epoch_;
    older_walks_ += current_walks_; current_walks_ = 0;
    older_requests_ += current_requests_; current_requests_ = 0;
    older_end_ = std::max(older_end_, current_end_);
  }

  void register_stats(StatRegistry& reg, const std::string& prefix) const;
  const CacheStats& iotlb_stats() const { return iotlb_.stats(); }
  const CacheStats& s1_walk_cache_stats() const { return s1_walk_cache_.stats(); }
  const CacheStats& s2_walk_cache_stats() const { return s2_walk_cache_.stats(); }
  const CacheStats& ipa_cache_stats() const { return ipa_cache_.stats(); }
  const Histogram& walk_reads() const { return walk_reads_; }
  const Histogram& walk_latency_ps() const { return walk_ps_; }
  uint64_t table_reads() const { return table_reads_.value(); }
  uint64_t config_table_reads() const { return config_reads_.value(); }
  uint64_t iotlb_entries() const { return iotlb_.valid_entries(); }

  // Cache keys (public so tests and vendors can name them).
  struct TlbKey {
    uint32_t domain = 0, space = 0; uint8_t kind = 0, page_shift = 12; uint64_t vpn = 0;
    bool operator==(const TlbKey& o) const {
      return vpn == o.vpn && domain == o.domain && space == o.space && kind == o.kind && page_shift == o.page_shift;
    }
    uint64_t set_hash() const { return vpn; }
  };
  // block_shift: the size of the leaf the input address was translated by (stage 1 when
  // nested). A larger leaf is cached as smaller entries ("splintered", nested over smaller
  // stage-2 pages); an invalidation of any address in the leaf drops all of them.
  struct TlbEntry {
    uint64_t out_page = 0; bool r = false, w = false, x = false, user = false, global = false;
    uint8_t block_shift = 12;
  };
  // A walk-cache entry holds the table that the input bits above `shift` select.
  struct WalkKey {
    uint32_t domain = 0, space = 0; uint8_t shift = 0; uint64_t prefix = 0;
    bool operator==(const WalkKey& o) const {
      return prefix == o.prefix && shift == o.shift && domain == o.domain && space == o.space;
    }
    uint64_t set_hash() const { return prefix * 4 + (shift >= 48 ? 0 : (48u - shift) / 9); }
  };
  // Remembers the permissions of the tables above (x86, VT-d SS and AMD AND them).
  struct WalkEntry { uint64_t table = 0; uint8_t level = 0; pagetable::TablePermissions above; };
  // An IPA-cache entry caches one stage-2 leaf: ipa_page is the IPA >> the leaf's shift.
  struct IpaKey {
    uint32_t domain = 0; uint8_t shift = 12; uint64_t ipa_page = 0;
    bool operator==(const IpaKey& o) const {
      return ipa_page == o.ipa_page && domain == o.domain && shift == o.shift;
    }
    uint64_t set_hash() const { return ipa_page; }
  };
  struct IpaEntry { uint64_t pa_page = 0; bool r = false, w = false, x = false; uint8_t leaf_shift = 12; };

 private:
  using WalkCache = SetAssocCache<WalkKey, WalkEntry>;
  struct WalkContext;

  pagetable::WalkStart walk_start(WalkCache& wc, const pagetable::Format& f, uint32_t domain, uint32_t space,
                                  uint64_t ia, uint64_t root, Ps& t);
  // Records when a request, walk or config fetch of `epoch` ends, for the barrier.
  void note_end(uint64_t epoch, Ps end);
  struct Rights { bool r = true, w = true, x = true; };   // a stage-2 leaf's rights
  bool stage2(const Regime& r, uint64_t ipa, const pagetable::Access& a, bool table_fetch, WalkContext& w,
              uint64_t& pa, uint64_t* leaf_bytes, Rights* rights = nullptr);
  pagetable::WalkResult stage_walk(WalkCache& wc, const pagetable::Format& f, uint32_t domain, uint32_t space,
                                   uint64_t root, uint64_t ia, const pagetable::Access& a, WalkContext& w,
                                   bool via_stage2, const Regime& r);
  // Removes what an invalidation hits at once; charge() then pays for the scans.
  struct Scans { InvalidationScan iotlb, s1_walk, s2_walk, ipa; };
  InvalidationScan invalidate_walk_cache(WalkCache& wc, uint64_t shifts, const InvalidationScope& s, bool match_space);
  void remove_by_input(const InvalidationScope& s, uint8_t kinds, Scans& scans);
  void charge(const Scans& scans);

  Clock clk_;
  MemoryRead read_;
  TranslationCacheNames names_;
  BusyUnits walkers_;
  SetAssocCache<TlbKey, TlbEntry> iotlb_;
  WalkCache s1_walk_cache_, s2_walk_cache_;
  SetAssocCache<IpaKey, IpaEntry> ipa_cache_;
  uint8_t tlb_page_shifts_ = 0;                 // bit n: the IOTLB may hold entries of shift 12 + 9n
  uint8_t splinter_shift_ = 0;                  // the largest block_shift of a splintered entry (0: none)
  uint64_t s1_wc_shifts_ = 0, s2_wc_shifts_ = 0;  // bit s: a walk-cache entry of shift s was filled
  uint64_t ipa_leaf_shifts_ = 0;                  // bit s: an IPA-cache entry for a 2^s-byte leaf was filled

  sc_core::sc_event drained_;
  uint64_t epoch_ = 0, current_walks_ = 0, older_walks_ = 0, current_requests_ = 0, older_requests_ = 0;
  Ps current_end_ = 0, older_end_ = 0;   // latest annotated end of this epoch's / older requests

  Counter table_reads_, s1_reads_, s2_reads_, config_reads_, stale_fills_dropped_;
  Histogram walk_reads_, walk_ps_;
};

// One DMA in flight through an IOMMU front end, for the engine's barrier.
class InflightRequest {
 public:
  explicit InflightRequest(TranslationEngine* e) : e_(e), epoch_(e ? e->begin_request() : 0) {}
  ~InflightRequest() { if (e_) e_->end_request(epoch_, end_); }
  uint64_t epoch() const { return epoch_; }
  // The request's annotated completion time (default: when it is destroyed).
  void set_end(Ps end) { end_ = end; }
  InflightRequest(const InflightRequest&) = delete;
  InflightRequest& operator=(const InflightRequest&) = delete;
 private:
  TranslationEngine* e_;
  uint64_t epoch_;
  Ps end_ = now_ps();
};

}  // namespace iommusim::common

// A PCIe device's Address Translation Cache (ATC, PCIe Base Spec 6.0 §10 "Address
// Translation Services"), one per device (requester ID) with ATS enabled: endpoints that
// share a RID as the work queues of one device, each with its own PASID, share one ATC.
//
// What it models
// - A set-associative cache (common::SetAssocCache) keyed by (PASID or none, 4 KB page),
//   holding the translated page and the rights the Translation Completion granted (R, W).
//   A lookup takes lookup_cycles of the endpoint clock on one port.
// - Invalidate Requests from the IOMMU (common::AtsDevice): the message travels down the
//   link (one rc latency, then the wire), the ATC drops the entries it covers at once, and
//   the device answers with an Invalidate Completion `invalidation_response_ns` after the
//   request arrived, and not before every Translated DMA it had in flight when the request
//   arrived has completed (§10.3.1: the completion orders behind the requests that used the
//   old translations). The completion travels up the link. With respond = false the device
//   never answers (the IOMMU's invalidation timeout then fires).
// - Translation Completions that an invalidation overtook (one covering the page arrived
//   while the request was outstanding) are discarded and the request is sent again
//   (§10.3.1).
// - One ATC per function, shared by its work queues (add_slots): its capacity and lookup
//   port are the device's, its entries are tagged by PASID, and one Invalidate Request
//   reaches it once and is answered once (§10.3.1: the completion is the function's),
//   after the Translated DMAs of every queue in flight at its arrival.
// - Stats: hits, misses, fills, evictions, invalidations received and entries dropped,
//   translation requests and their round trip, invalidation completion latency.
//
// What it does not model
// - Translations larger than 4 KB (the completion's S bit, §10.2.3.2): every completion
//   fills one 4 KB entry, so a large page costs one request per 4 KB page it is used in.
// - Both rights from one request: a read asks for R, a write for W (No Write = 0); an
//   entry keeps what was granted, and an access it does not grant misses.
// - Waiting only for the in-flight DMAs that used invalidated entries (it waits for all),
//   ITAG limits, PRI and page-request groups, the Invalidate Completion's count field.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/common/ats.h"
#include "models/common/cache.h"
#include "models/common/clock.h"
#include "models/common/stats.h"

namespace iommusim::pcie {
class Link;
}

namespace iommusim::traffic {

struct AtsConfig {
  bool enabled = false;
  unsigned entries = 64;                  // ATC entries (each one 4 KB translation)
  unsigned ways = 4;                      // 0: fully associative
  unsigned lookup_cycles = 1;             // endpoint clocks per ATC lookup
  double invalidation_response_ns = 500;  // Invalidate Request arrival to Invalidate Completion sent
  bool respond = true;                    // false: the device never answers an Invalidate Request
};
// "" when usable, else a message naming the field.
std::string validate(const AtsConfig& c);
// The settings that make an ATC what it is (all but `enabled`) are equal: work queues of one
// device share its ATC only with the same ones.
inline bool same_atc(const AtsConfig& a, const AtsConfig& b) {
  return a.entries == b.entries && a.ways == b.ways && a.lookup_cycles == b.lookup_cycles &&
         a.invalidation_response_ns == b.invalidation_response_ns && a.respond == b.respond;
}

class Atc : public common::AtsDevice {
 public:
  static constexpr uint32_t kNoPasid = ~0u;
  struct Key {
    uint32_t pasid = kNoPasid;
    uint64_t page = 0;   // IOVA >> 12
    bool operator==(const Key& o) const { return page == o.page && pasid == o.pasid; }
    uint64_t set_hash() const { return page; }
  };
  struct Entry {
    uint64_t pa_page = 0;   // translated address >> 12
    bool read = false, write = false;
  };

  // `slots`: the endpoint's DMA slots (each has at most one Translated DMA in flight).
  Atc(const std::string& name, const AtsConfig& cfg, const common::Clock& endpoint_clock, unsigned slots);
  // Another work queue of the device uses this ATC with `slots` slots of its own; returns
  // the index of its first (its slot i is the ATC's slot first + i). Before sc_start().
  unsigned add_slots(unsigned slots) {
    const unsigned first = unsigned(inflight_.size());
    inflight_.resize(first + slots);
    requests_.resize(first + slots);
    return first;
  }

  // The link the invalidation messages cross (nullptr: the device sits on the IOMMU).
  void set_link(pcie::Link* link) { link_ = link; }

  // Looks up `iova` for an access at annotated time `t`, which it advances by the lookup.
  // Hits only an entry granting the access.
  std::optional<Entry> lookup(const Key& k, bool write, common::Ps& t) {
    if (!cache_.enabled()) return std::nullopt;
    t = cache_.port_lookup(t);
    auto e = cache_.probe(k, t);
    const bool hit = e && (write ? e->write : e->read);   // present without this right: a miss
    cache_.count_lookup(hit);
    return hit ? e : std::nullopt;
  }
  // Fills from a Translation Completion, visible from `ready`; rights granted to the same
  // translation before are kept.
  void fill(const Key& k, Entry e, common::Ps ready);
  // A slot's Translation Request for `k` is outstanding; its completion is used only if no
  // Invalidate Request covering `k` arrived meanwhile (translation_overtaken).
  void translation_sent(unsigned slot, const Key& k) { requests_[slot] = {true, false, k}; }
  bool translation_overtaken(unsigned slot) {
    requests_[slot].busy = false;
    return requests_[slot].overtaken;
  }
  void count_translation_request(common::Ps round_trip_ps) {
    translation_requests_.inc();
    completion_ps_.record(round_trip_ps);
  }
  void count_discarded_completion() { discarded_.inc(); }

  // A slot's Translated DMA: issued at `issued`, completing at the annotated `end`.
  void dma_in_flight(unsigned slot, common::Ps issued, common::Ps end) { inflight_[slot] = {true, issued, end}; }
  void dma_done(unsigned slot) { inflight_[slot].busy = false; }

  common::AtcInvalidationResult invalidate(const common::AtcInvalidation& inv, common::Ps issued) override;

  const common::CacheStats& cache_stats() const { return cache_.stats(); }
  uint64_t translation_requests() const { return translation_requests_.value(); }
  uint64_t invalidations() const { return invalidations_.value(); }
  const common::Histogram& completion_latency_ps() const { return completion_ps_; }
  const common::Histogram& invalidation_latency_ps() const { return invalidation_ps_; }
  const AtsConfig& config() const { return cfg_; }
  // <prefix>.* : the cache's stats, translation requests and their latency, invalidations.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct InFlight { bool busy = false; common::Ps issued = 0, end = 0; };
  struct Request { bool busy = false, overtaken = false; Key key; };
  // Whether invalidation `inv` covers key `k`.
  static bool covers(const common::AtcInvalidation& inv, const Key& k);

  AtsConfig cfg_;
  common::SetAssocCache<Key, Entry> cache_;
  common::Ps response_ps_;
  pcie::Link* link_ = nullptr;
  std::vector<InFlight> inflight_;
  std::vector<Request> requests_;   // per slot: its outstanding Translation Request
  common::Counter translation_requests_, discarded_, invalidations_;
  common::Histogram completion_ps_, invalidation_ps_;
};

}  // namespace iommusim::traffic

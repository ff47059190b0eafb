#include "traffic/atc.h"

#include <algorithm>

#include "models/pcie/link.h"
#include "models/pcie/tlp.h"

namespace iommusim::traffic {

using common::Ps;

std::string validate(const AtsConfig& c) {
  if (!c.enabled) return "";
  if (c.entries == 0) return "ats.entries must be at least 1";
  if (c.ways > c.entries) return "ats.ways must not exceed ats.entries";
  if (c.ways && c.entries % c.ways) return "ats.entries must be a multiple of ats.ways";
  if (!(c.invalidation_response_ns >= 0)) return "ats.invalidation_response_ns must be >= 0";
  return "";
}

namespace {
common::CacheConfig cache_config(const AtsConfig& c) {
  common::CacheConfig cc;
  cc.entries = c.enabled ? c.entries : 0;
  cc.ways = c.ways;
  cc.lookup_cycles = c.lookup_cycles;
  cc.ports = 1;
  return cc;
}
}  // namespace

Atc::Atc(const std::string& name, const AtsConfig& cfg, const common::Clock& clk, unsigned slots)
    : cfg_(cfg), cache_(name, cache_config(cfg), clk), response_ps_(Ps(cfg.invalidation_response_ns * 1000.0 + 0.5)),
      inflight_(slots), requests_(slots) {}

bool Atc::covers(const common::AtcInvalidation& inv, const Key& k) {
  // PCIe Base Spec, ATS Invalidate Request (§10.3.1): without a PASID it drops every entry
  // in the range, requested with a PASID or without (Linux arm_smmu_atc_inv_to_cmd: "all
  // ATC entries within the address range are invalidated, including those that were
  // requested with a PASID"); with a PASID, that PASID's entries in the range, and with
  // Global set every PASID's global entries there (the ATC keeps no global flag: all
  // PASIDs' entries).
  if (inv.pasid_valid && !inv.global && k.pasid != inv.pasid) return false;
  if (inv.bytes == 0) return true;
  const uint64_t first = inv.addr >> 12, last = (inv.addr + inv.bytes - 1) >> 12;
  return k.page >= first && k.page <= last;
}

void Atc::fill(const Key& k, Entry e, Ps ready) {
  // The other right, granted to the same translation earlier, still holds.
  if (auto old = cache_.probe(k); old && old->pa_page == e.pa_page) {
    e.read |= old->read;
    e.write |= old->write;
  }
  cache_.insert(k, e, ready);
}

common::AtcInvalidationResult Atc::invalidate(const common::AtcInvalidation& inv, Ps issued) {
  invalidations_.inc();
  // The Invalidate Request leaves the root complex after its pipeline, down the link.
  Ps arrival = issued;
  if (link_)
    arrival = link_->send(pcie::Direction::Down, pcie::TlpType::Posted, pcie::invalidate_request(link_->config()),
                          issued + link_->rc_latency_ps()).arrived;
  auto covered = [&](const Key& k, const Entry&) { return covers(inv, k); };
  if (inv.bytes == 0) cache_.invalidate_all_sets(covered);
  else cache_.invalidate_span(inv.addr >> 12, (inv.addr + inv.bytes - 1) >> 12, [](uint64_t page) { return page; }, covered);
  for (Request& r : requests_)
    if (r.busy && covers(inv, r.key)) r.overtaken = true;
  if (!cfg_.respond) return {false, 0};
  // Answer after the response time, and after every Translated DMA in flight: each looked
  // its translation up before this request was handled, so each may have used an entry it
  // dropped, even one whose annotated issue time is past the request's arrival.
  Ps ready = arrival + response_ps_;
  for (const InFlight& f : inflight_)
    if (f.busy) ready = std::max(ready, f.end);
  Ps done = ready;
  if (link_)
    done = link_->send(pcie::Direction::Up, pcie::TlpType::Posted, pcie::invalidate_completion(link_->config()), ready)
               .arrived + link_->rc_latency_ps();
  invalidation_ps_.record(done - issued);
  return {true, done};
}

void Atc::register_stats(common::StatRegistry& reg, const std::string& p) const {
  cache_.stats().register_stats(reg, p, "device ATC");
  reg.add(p + ".translation_requests", translation_requests_, "count", "ATS Translation Requests sent (ATC misses)");
  reg.add(p + ".completion_latency", completion_ps_, "ns",
          "Translation Request to Translation Completion, over the link and through the IOMMU", 1e-3);
  reg.add(p + ".discarded_completions", discarded_, "count",
          "Translation Completions discarded because an invalidation arrived while they were outstanding");
  reg.add(p + ".invalidations", invalidations_, "count", "Invalidate Requests received");
  reg.add(p + ".invalidation_latency", invalidation_ps_, "ns",
          "Invalidate Request sent by the IOMMU to its Invalidate Completion back at the IOMMU", 1e-3);
}

}  // namespace iommusim::traffic

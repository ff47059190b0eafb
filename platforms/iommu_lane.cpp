#include "platforms/iommu_lane.h"

#include <algorithm>
#include <cctype>

namespace iommusim::platforms {

namespace {
// Bounded by what a run can hold and search: 2^16 entries (256 MiB of 4 KB reach, 32x the
// default IOTLB) per cache, at most 1024 ways searched per lookup.
constexpr uint64_t kMaxCacheEntries = 1u << 16;
constexpr unsigned kMaxCacheWays = 1024;

std::vector<LaneType>& registry() {
  static std::vector<LaneType> lanes;
  return lanes;
}
}  // namespace

CacheDefaults::CacheDefaults(unsigned entries) {
  c_.entries = entries;
  c_.ways = 4;
  c_.replacement = common::Replacement::Lru;
  c_.lookup_cycles = 3;
  c_.ports = 2;
  c_.scan_cycles_per_set = 1;
}

Section<common::CacheConfig> cache_keys(const std::string& what, const CacheDefaults& defaults) {
  using C = common::CacheConfig;
  using common::Replacement;
  const C& d = defaults.config();
  std::string doc = what + ".";
  doc[0] = char(std::toupper(static_cast<unsigned char>(doc[0])));
  return Section<C>(doc, StructDefaults::Own)   // a vendor's section checks its caches' member defaults
      .integer("entries", &C::entries, d.entries, 0, kMaxCacheEntries, "entries", "capacity; 0 disables the cache")
      .integer("ways", &C::ways, d.ways, 0, kMaxCacheEntries, "ways",
               "associativity; 0 (or ways >= entries) is fully associative, which may search at most 1024 ways")
      .choice("replacement", &C::replacement, d.replacement,
              {{"lru", Replacement::Lru}, {"round_robin", Replacement::RoundRobin}, {"random", Replacement::Random}},
              "victim choice within a set (random is seeded from sim.seed)")
      .integer("lookup_cycles", &C::lookup_cycles, d.lookup_cycles, 0, 1000, "cycles", "latency of one lookup")
      .integer("ports", &C::ports, d.ports, 1, 64, "ports", "concurrent lookups; more queue")
      .integer("scan_cycles_per_set", &C::scan_cycles_per_set, d.scan_cycles_per_set, 0, 1000, "cycles",
               "invalidation cost per set visited (a targeted invalidation visits one set, a broad one all)")
      .check("ways",
             [](const C& c) {
               return std::min(c.ways ? c.ways : c.entries, c.entries) > kMaxCacheWays
                          ? "at most " + std::to_string(kMaxCacheWays) +
                                " ways (0 or ways >= entries means fully associative)"
                          : std::string();
             })
      .check("entries", [](const C& c) { return common::validate(c); });
}

Section<common::TranslationEngineConfig> translation_keys(const common::TranslationCacheNames& n) {
  using T = common::TranslationEngineConfig;
  return Section<T>("", StructDefaults::Own)   // embedded: the vendor's section checks member defaults
      .integer("walkers", &T::walkers, 16, 1, 1024, "walks", "table walks in flight at once")
      .section(n.iotlb.c_str(), &T::iotlb, cache_keys(n.iotlb_what, CacheDefaults(2048).ports(4)))
      .section(n.s1_walk_cache.c_str(), &T::s1_walk_cache, cache_keys(n.s1_walk_what, CacheDefaults(256).lookup_cycles(4)))
      .section(n.s2_walk_cache.c_str(), &T::s2_walk_cache, cache_keys(n.s2_walk_what, CacheDefaults(128).lookup_cycles(4)))
      .section(n.ipa_cache.c_str(), &T::ipa_cache, cache_keys(n.ipa_what, CacheDefaults(128)));
}

void seed_caches(uint64_t base, std::initializer_list<common::CacheConfig*> caches) {
  uint64_t i = 0;
  for (common::CacheConfig* c : caches) c->seed = base + ++i;
}

driver::DriverMemory unit_pools(const driver::DriverMemory& pools, unsigned k, unsigned units) {
  constexpr uint64_t kPage = 4096;
  driver::DriverMemory m = pools;
  const uint64_t host = pools.table_pool_bytes / units / kPage * kPage;
  const uint64_t guest = pools.guest_pool_bytes / units / kPage * kPage;
  m.table_pool_base += k * host;
  m.table_pool_bytes = host;
  m.guest_pool_ipa += k * guest;
  m.guest_pool_bytes = guest;
  return m;
}

RegisterLane::RegisterLane(LaneType type) {
  auto& lanes = registry();
  lanes.insert(std::upper_bound(lanes.begin(), lanes.end(), type,
                                [](const LaneType& a, const LaneType& b) { return a.vendor < b.vendor; }),
               std::move(type));
}

const std::vector<LaneType>& lane_types() { return registry(); }

std::string trapped_vendors() {
  std::string list;
  for (const LaneType& t : lane_types())
    if (t.make_trapped) list += (list.empty() ? "" : ", ") + t.vendor;
  return list;
}

bool has_accelerated_path(const std::string& vendor) {
  for (const LaneType& t : lane_types())
    if (t.vendor == vendor) return t.make_accelerated != nullptr;
  return false;
}

std::vector<std::string> known_vendors() {
  std::vector<std::string> v;
  for (const LaneType& t : lane_types()) v.push_back(t.vendor);
  return v;
}

std::unique_ptr<IommuLane> make_lane(const std::string& vendor, const std::string& path, const ConfigReader& iommu,
                                     const ConfigReader& driver, const ConfigReader& traffic,
                                     const LaneSettings& settings) {
  for (const LaneType& t : lane_types()) {
    if (t.vendor != vendor) continue;
    if (path == kAcceleratedPath) {
      if (!t.make_accelerated)
        throw ConfigError(vendor == "vtd"
                              ? std::string("vmm.paths: VT-d has no architected guest-direct invalidation queue, so no "
                                            "accelerated path (docs/vmm.md, \"Guest invalidation without a trap\"): "
                                            "compare vtd@trapped")
                              : "vmm.paths: the accelerated path is not modelled for " + vendor + " yet");
      return t.make_accelerated(iommu.section(vendor), driver.section(vendor), traffic, settings);
    }
    if (path == kVirtioPath) {
      if (!t.make_virtio) throw ConfigError("vmm.paths: the virtio path is not modelled for " + vendor);
      return t.make_virtio(iommu.section(vendor), driver.section(vendor), traffic, settings);
    }
    if (path != kTrappedPath) return t.make(iommu.section(vendor), driver.section(vendor), traffic, settings);
    if (!t.make_trapped)
      throw ConfigError("vmm.paths: the trapped path is not modelled for " + vendor + " yet (only for " +
                        trapped_vendors() + ")");
    return t.make_trapped(iommu.section(vendor), driver.section(vendor), traffic, settings);
  }
  iommu.fail("vendor", "unknown vendor '" + vendor + "'");
}

}  // namespace iommusim::platforms

#include "models/common/cache.h"

namespace iommusim::common {

std::optional<Replacement> parse_replacement(const std::string& s) {
  if (s == "lru") return Replacement::Lru;
  if (s == "round_robin") return Replacement::RoundRobin;
  if (s == "random") return Replacement::Random;
  return std::nullopt;
}

const char* to_string(Replacement r) {
  switch (r) {
    case Replacement::Lru: return "lru";
    case Replacement::RoundRobin: return "round_robin";
    case Replacement::Random: return "random";
  }
  return "?";
}

std::string validate(const CacheConfig& c) {
  if (c.entries == 0) return {};
  if (c.ways != 0 && c.ways <= c.entries && c.entries % c.ways != 0)
    return "entries (" + std::to_string(c.entries) + ") must be a multiple of ways (" + std::to_string(c.ways) + ")";
  if (c.ports == 0) return "ports must be at least 1";
  return {};
}

void CacheStats::register_stats(StatRegistry& reg, const std::string& p, const std::string& what) const {
  reg.add(p + ".hits", hits, "count", what + " lookups that hit");
  reg.add(p + ".misses", misses, "count", what + " lookups that missed");
  reg.add(p + ".inserts", inserts, "count", what + " fills");
  reg.add(p + ".evictions", evictions, "count", what + " valid entries replaced by a fill");
  reg.add(p + ".invalidated", invalidated, "count", what + " entries removed by invalidation");
  reg.add(p + ".invalidation_scans", invalidation_scans, "count", what + " invalidation operations");
  reg.add(p + ".sets_scanned", sets_scanned, "count", what + " sets scanned by invalidations");
}

}  // namespace iommusim::common

#include "platforms/iommu_lane.h"

#include <algorithm>

namespace iommusim::platforms {

namespace {
constexpr uint64_t kMaxCacheEntries = 1u << 16;
constexpr unsigned kMaxCacheWays = 1024;
}  // namespace

common::CacheConfig read_cache(const ConfigReader& r, uint64_t seed) {
  common::CacheConfig c;
  // Bounded by what a run can hold and search: 2^16 entries (256 MiB of 4 KB reach, 32x
  // the default IOTLB) per cache, at most 1024 ways searched per lookup.
  c.entries = unsigned(r.integer("entries", 0, kMaxCacheEntries));
  c.ways = unsigned(r.integer("ways", 0, kMaxCacheEntries));
  if (std::min(c.ways ? c.ways : c.entries, c.entries) > kMaxCacheWays)
    r.fail("ways", "at most " + std::to_string(kMaxCacheWays) + " ways (0 or ways >= entries means fully associative)");
  c.replacement = *common::parse_replacement(r.choice("replacement", {"lru", "round_robin", "random"}));
  c.lookup_cycles = unsigned(r.integer("lookup_cycles", 0, 1000));
  c.ports = unsigned(r.integer("ports", 1, 64));
  c.scan_cycles_per_set = unsigned(r.integer("scan_cycles_per_set", 0, 1000));
  c.seed = seed;
  if (auto e = common::validate(c); !e.empty()) r.fail("entries", e);
  return c;
}

driver::DriverTiming read_driver_timing(const ConfigReader& d) {
  driver::DriverTiming t;
  t.cpu_mhz = d.number("cpu_mhz", 1, 100000);
  t.descriptor_write_cycles = unsigned(d.integer("descriptor_write_cycles", 0, 1000000));
  t.command_write_cycles = unsigned(d.integer("command_write_cycles", 0, 1000000));
  t.op_overhead_cycles = unsigned(d.integer("op_overhead_cycles", 0, 10000000));
  t.mmio_write_ns = d.number("mmio_write_ns", 0, 1e6);
  t.mmio_read_ns = d.number("mmio_read_ns", 0, 1e6);
  t.poll_interval_ns = d.number("poll_interval_ns", 1, 1e6);
  t.poll_read_cycles = unsigned(d.integer("poll_read_cycles", 0, 100000));
  t.sync_timeout_us = d.number("sync_timeout_us", 0.001, 1e7);
  if (auto e = driver::validate(t); !e.empty()) d.fail("cpu_mhz", e);
  return t;
}

const std::vector<std::string>& known_vendors() {
  static const std::vector<std::string> v{"smmuv3", "vtd", "amdvi"};
  return v;
}

std::unique_ptr<IommuLane> make_lane(const std::string& vendor, const ConfigReader& iommu, const ConfigReader& driver,
                                     const ConfigReader& traffic, const LaneSettings& settings) {
  if (vendor == "smmuv3") return make_smmuv3_lane(iommu.section("smmuv3"), driver.section("smmuv3"), traffic, settings);
  if (vendor == "vtd") return make_vtd_lane(iommu.section("vtd"), driver.section("vtd"), traffic, settings);
  if (vendor == "amdvi") return make_amdvi_lane(iommu.section("amdvi"), driver.section("amdvi"), traffic, settings);
  iommu.fail("vendor", "unknown vendor '" + vendor + "'");
}

}  // namespace iommusim::platforms

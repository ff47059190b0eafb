// Stat names carry the lane they belong to: `<lane>.<block>.<stat>`, the lane being
// `vendor` or `vendor@path` (docs/sweep.md, "Stat names"). The path is the invalidation
// path the lane's invalidations take (native, trapped, accelerated, virtio, ...); without
// `@path` it is native. Tools that group stats by vendor and path (the sweep's CSV, the
// report) split names here, so a new path needs no code of its own.
#pragma once
#include <string>

namespace iommusim::platforms {

inline constexpr const char* kNativePath = "native";

// The lane prefix for a vendor on a path: "smmuv3" for native, "smmuv3@trapped" otherwise.
std::string lane_name(const std::string& vendor, const std::string& path = kNativePath);

struct StatName {
  std::string vendor;   // "smmuv3"
  std::string path;     // "native" when the name has no @path
  std::string stat;     // the rest: "driver.invalidation.latency"
  bool valid = false;   // false when the name has no lane, or an empty or malformed path
};
// Splits "smmuv3@trapped.driver.invalidation.latency" into its vendor, path and stat.
StatName split_stat_name(const std::string& name);

}  // namespace iommusim::platforms

// Run configuration: JSON with comments, checked against the default config, which is also
// the schema; both come from the key declarations (platforms/config_keys.h). Errors name
// the key path ("iommu.smmuv3.iotlb.ways: ...").
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace iommusim::platforms {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Config files larger than this (or not regular files) are refused.
inline constexpr uintmax_t kMaxConfigFileBytes = 16u << 20;

// The default config, from the key declarations (configs/default.json is a copy that a
// test keeps equal).
const nlohmann::json& default_config();

// Loads `path` (or the default when empty), resolves sections given as file paths
// (relative to the including file), merges onto the default and applies `-p a.b=v`
// overrides. Throws ConfigError naming the key path.
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides);

// Typed access with path-naming errors.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {}
  ConfigReader section(const std::string& key) const;
  double number(const std::string& key, double min, double max) const;
  uint64_t integer(const std::string& key, uint64_t min, uint64_t max) const;
  int64_t signed_integer(const std::string& key, int64_t min, int64_t max) const;
  bool boolean(const std::string& key) const;
  std::string string(const std::string& key) const;
  std::string choice(const std::string& key, const std::vector<std::string>& allowed) const;
  // A list; its elements are read by the caller, with paths like "key[2]".
  const nlohmann::json& list(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  // An error about the section as a whole ("iommu.smmuv3: ...").
  [[noreturn]] void fail_here(const std::string& why) const;
  std::string path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  const nlohmann::json& at(const std::string& key) const;
  const nlohmann::json& j_;
  std::string path_;
};

}  // namespace iommusim::platforms

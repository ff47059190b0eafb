// Builds a platform from a resolved config, runs it and writes its outputs. One System
// per process: SystemC elaborates and runs one simulation per process.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "models/common/stats.h"

namespace iommusim::common {
class Timeline;
}

namespace iommusim::platforms {

struct RunResult {
  bool ok = true;
  std::string error;
  std::string summary;          // the human summary (also written to summary.txt)
  nlohmann::json stats;         // stats.json content
  uint64_t violations = 0;      // correctness-oracle violations, all lanes
  nlohmann::json violation_records;   // the first ones per lane (time, device, PASID, address, expected, got)
};

class System {
 public:
  // Validates the config and elaborates the modules. Throws ConfigError naming the key.
  // With a timeline, each lane is a process on it with its CPU, queue and device tracks
  // (docs/trace.md); the caller finishes it after run().
  explicit System(const nlohmann::json& resolved_config, common::Timeline* timeline = nullptr);
  ~System();
  // Runs to completion. Never throws for simulated faults; bad runtime conditions (a driver
  // operation that fails) end the run with ok=false and a message, keeping the stats so far.
  RunResult run();
  common::StatRegistry& stats();
  nlohmann::json invalidation_records() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes config.resolved.json, stats.json, invalidations.json and summary.txt into dir,
// and violations.json when the correctness oracle found any. Returns stats.json's document.
nlohmann::json write_outputs(const std::string& dir, const nlohmann::json& config, const RunResult& r,
                   const nlohmann::json& invalidations);

}  // namespace iommusim::platforms

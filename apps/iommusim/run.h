// `iommusim run`: one simulation from a config, its outputs written to a run folder.
// The sweep pool calls the same function in a forked child for each point.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/common/timeline.h"

namespace iommusim::app {

struct RunOptions {
  std::string config_path;               // "" = the embedded default
  std::vector<std::string> overrides;    // key.path=value
  std::string out_dir = "results/default";
  bool print_config = false;
  bool force = false;                    // overwrite a run already in out_dir
  std::string trace_path;                // --trace: a Chrome/Perfetto timeline ("" = none)
  double trace_limit_mb = common::Timeline::kDefaultLimitMb;   // --trace-limit
  // Called with stats.json's document once the outputs are written (the sweep keeps its
  // chosen stats from it); what it throws fails the run.
  std::function<void(const nlohmann::json&)> after_outputs;
};

// Exit status: 0 ok, 1 the run failed, 2 bad config or usage, 3 correctness violations.
// Elaborates and runs a SystemC simulation, so a process can call it once.
int run_simulation(const RunOptions& o);

}  // namespace iommusim::app

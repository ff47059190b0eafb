#include "apps/iommusim/run.h"

#include <cstdio>
#include <iostream>
#include <optional>

#include "models/common/timeline.h"

#include "platforms/config.h"
#include "platforms/run_folder.h"
#include "platforms/system.h"

namespace iommusim::app {

int run_simulation(const RunOptions& o) {
  nlohmann::json cfg;
  std::optional<common::Timeline> timeline;
  try {
    cfg = platforms::load_config(o.config_path, o.overrides);
    if (o.print_config) { std::cout << cfg.dump(2) << "\n"; return 0; }
    if (const auto held = platforms::existing_run_files(o.out_dir); !held.empty() && !o.force) {
      std::cerr << "iommusim: " << o.out_dir << " already holds a run (" << held.front()
                << "); pass --force to overwrite it, or -o another folder\n";
      return 2;
    }
    if (!o.trace_path.empty()) {
      try {
        timeline.emplace(o.trace_path, uint64_t(o.trace_limit_mb * 1e6));
      } catch (const common::TimelineError& e) {
        std::cerr << "iommusim: --trace: " << e.what() << "\n";
        return 2;
      }
    }
    platforms::System system(cfg, timeline ? &*timeline : nullptr);
    platforms::RunResult r = system.run();
    const nlohmann::json stats = platforms::write_outputs(o.out_dir, cfg, r, system.invalidation_records());
    if (o.after_outputs) o.after_outputs(stats);
    std::cout << r.summary << "  outputs in " << o.out_dir << "/ (config.resolved.json, stats.json, invalidations.json)\n";
    if (timeline) {
      timeline->finish();
      std::cout << "  trace in " << o.trace_path << " (" << timeline->events() << " events, " << timeline->bytes()
                << " bytes" << (timeline->truncated() ? "; truncated at --trace-limit" : "") << ")\n";
    }
    if (r.violations) {
      // Exit status 3: the simulator's own correctness check failed (2: config, 1: run).
      std::cerr << "iommusim: " << r.violations << " correctness violation(s); the first ones (also in " << o.out_dir
                << "/violations.json):\n";
      for (auto& v : r.violation_records) std::cerr << "  " << v.dump() << "\n";
      return 3;
    }
    return r.ok ? 0 : 1;
  } catch (const platforms::ConfigError& e) {
    std::cerr << "iommusim: config error: " << e.what() << "\n";
    if (timeline) {   // nothing was simulated: leave no trace file behind
      timeline.reset();
      std::remove(o.trace_path.c_str());
    }
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "iommusim: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace iommusim::app

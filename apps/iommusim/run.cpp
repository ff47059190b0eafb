#include "apps/iommusim/run.h"

#include <iostream>

#include "platforms/config.h"
#include "platforms/run_folder.h"
#include "platforms/system.h"

namespace iommusim::app {

int run_simulation(const RunOptions& o) {
  nlohmann::json cfg;
  try {
    cfg = platforms::load_config(o.config_path, o.overrides);
    if (o.print_config) { std::cout << cfg.dump(2) << "\n"; return 0; }
    if (const auto held = platforms::existing_run_files(o.out_dir); !held.empty() && !o.force) {
      std::cerr << "iommusim: " << o.out_dir << " already holds a run (" << held.front()
                << "); pass --force to overwrite it, or -o another folder\n";
      return 2;
    }
    platforms::System system(cfg);
    platforms::RunResult r = system.run();
    platforms::write_outputs(o.out_dir, cfg, r, system.invalidation_records());
    std::cout << r.summary << "  outputs in " << o.out_dir << "/ (config.resolved.json, stats.json, invalidations.json)\n";
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
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "iommusim: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace iommusim::app

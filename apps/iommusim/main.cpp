// iommusim command line: `iommusim run [CONFIG.json] [-p key.path=value]... [-o DIR] [--force]
// [--trace FILE [--trace-limit MB]]`,
// `iommusim compare [--bless] RUN GOLDEN`, `iommusim report DIR [-o FILE.html]`,
// `iommusim sweep SPEC.json ...` (docs/sweep.md) and `iommusim config-docs` (docs/config.md).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <systemc>

#include "apps/iommusim/compare.h"
#include "apps/iommusim/report.h"
#include "apps/iommusim/sweep.h"
#include "models/common/timeline.h"
#include "platforms/config.h"
#include "platforms/config_keys.h"
#include "platforms/run_folder.h"
#include "platforms/system.h"

namespace {
int g_argc;
char** g_argv;
}

int sc_main(int, char**) {
  CLI::App app{"iommusim: cycle-approximate SystemC/TLM-2.0 simulator of I/O MMUs"};
  app.require_subcommand(1);
  auto* run = app.add_subcommand("run", "run a simulation (the embedded default when no CONFIG is given)");
  std::string config_path, out_dir = "results/default";
  std::vector<std::string> overrides;
  bool print_config = false, force = false;
  run->add_option("config", config_path, "JSON config (comments allowed); sections may name files")->check(CLI::ExistingFile);
  run->add_option("-p,--param", overrides, "override a key: -p iommu.smmuv3.iotlb.entries=4096");
  run->add_option("-o,--out", out_dir, "output directory (created)")->capture_default_str();
  run->add_flag("--print-config", print_config, "print the resolved config and exit");
  run->add_flag("--force", force, "overwrite the run already in the output directory");
  std::string trace_path;
  double trace_limit_mb = iommusim::common::Timeline::kDefaultLimitMb;
  run->add_option("--trace", trace_path, "write a Chrome/Perfetto trace-event timeline to FILE (docs/trace.md)");
  run->add_option("--trace-limit", trace_limit_mb, "stop recording the trace when FILE would pass this many MB (10^6 bytes)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* config_docs = app.add_subcommand("config-docs", "print docs/config.md: every config key, from the declarations");
  iommusim::app::CompareCommand compare(app);
  iommusim::app::ReportCommand report(app);
  iommusim::app::SweepCommand sweep(app);
  try {
    app.parse(g_argc, g_argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; every usage error (CLI11's own codes 105, 106, ...) is
    // a bad-input error like a config error: exit status 2.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (compare.chosen()) return compare.exec();
  if (config_docs->parsed()) { std::cout << iommusim::platforms::config_docs_markdown(); return 0; }
  if (report.chosen()) return report.exec();
  if (sweep.chosen()) return sweep.exec();

  nlohmann::json cfg;
  std::optional<iommusim::common::Timeline> timeline;
  try {
    cfg = iommusim::platforms::load_config(config_path, overrides);
    if (print_config) { std::cout << cfg.dump(2) << "\n"; return 0; }
    if (const auto held = iommusim::platforms::existing_run_files(out_dir); !held.empty() && !force) {
      std::cerr << "iommusim: " << out_dir << " already holds a run (" << held.front()
                << "); pass --force to overwrite it, or -o another folder\n";
      return 2;
    }
    if (!trace_path.empty()) {
      try {
        timeline.emplace(trace_path, uint64_t(trace_limit_mb * 1e6));
      } catch (const iommusim::common::TimelineError& e) {
        std::cerr << "iommusim: --trace: " << e.what() << "\n";
        return 2;
      }
    }
    iommusim::platforms::System system(cfg, timeline ? &*timeline : nullptr);
    iommusim::platforms::RunResult r = system.run();
    iommusim::platforms::write_outputs(out_dir, cfg, r, system.invalidation_records());
    std::cout << r.summary << "  outputs in " << out_dir << "/ (config.resolved.json, stats.json, invalidations.json)\n";
    if (timeline) {
      timeline->finish();
      std::cout << "  trace in " << trace_path << " (" << timeline->events() << " events, " << timeline->bytes()
                << " bytes" << (timeline->truncated() ? "; truncated at --trace-limit" : "") << ")\n";
    }
    if (r.violations) {
      // Exit status 3: the simulator's own correctness check failed (2: config, 1: run).
      std::cerr << "iommusim: " << r.violations << " correctness violation(s); the first ones (also in " << out_dir
                << "/violations.json):\n";
      for (auto& v : r.violation_records) std::cerr << "  " << v.dump() << "\n";
      return 3;
    }
    return r.ok ? 0 : 1;
  } catch (const iommusim::platforms::ConfigError& e) {
    std::cerr << "iommusim: config error: " << e.what() << "\n";
    if (timeline) {   // nothing was simulated: leave no trace file behind
      timeline.reset();
      std::remove(trace_path.c_str());
    }
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "iommusim: " << e.what() << "\n";
    return 1;
  }
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
  g_argc = argc;
  g_argv = argv;
  return sc_core::sc_elab_and_sim(argc, argv);
}

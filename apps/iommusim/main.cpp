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
#include "apps/iommusim/run.h"
#include "apps/iommusim/sweep.h"
#include "platforms/config_keys.h"

namespace {
int g_argc;
char** g_argv;
}

int sc_main(int, char**) {
  CLI::App app{"iommusim: cycle-approximate SystemC/TLM-2.0 simulator of I/O MMUs"};
  app.require_subcommand(1);
  auto* run = app.add_subcommand("run", "run a simulation (the embedded default when no CONFIG is given)");
  iommusim::app::RunOptions run_options;
  run->add_option("config", run_options.config_path, "JSON config (comments allowed); sections may name files")->check(CLI::ExistingFile);
  run->add_option("-p,--param", run_options.overrides, "override a key: -p iommu.smmuv3.iotlb.entries=4096");
  run->add_option("-o,--out", run_options.out_dir, "output directory (created)")->capture_default_str();
  run->add_flag("--print-config", run_options.print_config, "print the resolved config and exit");
  run->add_flag("--force", run_options.force, "overwrite the run already in the output directory");
  run->add_option("--trace", run_options.trace_path, "write a Chrome/Perfetto trace-event timeline to FILE (docs/trace.md)");
  run->add_option("--trace-limit", run_options.trace_limit_mb, "stop recording the trace when FILE would pass this many MB (10^6 bytes)")
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

  return iommusim::app::run_simulation(run_options);
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
  g_argc = argc;
  g_argv = argv;
  return sc_core::sc_elab_and_sim(argc, argv);
}

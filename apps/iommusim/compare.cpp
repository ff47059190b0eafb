#include "apps/iommusim/compare.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "platforms/regression.h"

namespace iommusim::app {
namespace reg = iommusim::platforms::regression;
namespace fs = std::filesystem;

CompareCommand::CompareCommand(CLI::App& app) {
  sub_ = app.add_subcommand("compare", "compare a run folder's stats with a regression golden (docs/regression.md)");
  sub_->add_option("run", run_, "run folder (holding stats.json)")->required();
  sub_->add_option("golden", golden_, "golden file, for example results/golden/default.json")->required();
  sub_->add_flag("--bless", bless_, "write the golden from the run (keeping its tolerances) and print what changed");
  auto* config = sub_->add_option("--config", config_, "with --bless: the config the run used, recorded in the golden");
  auto* param = sub_->add_option("-p,--param", params_, "with --bless: an override the run used, recorded in the golden");
  config->needs("--bless");
  param->needs("--bless");
}

int CompareCommand::exec() const {
  try {
    const reg::RunStats run = reg::read_run(run_);
    std::error_code ec;
    const bool exists = fs::exists(golden_, ec);
    if (!bless_) {
      if (!exists) throw reg::RegressionError("no golden " + golden_ + " (iommusim compare --bless RUN GOLDEN creates it)");
      const reg::Golden golden = reg::read_golden(golden_);
      const reg::Verdict v = reg::compare(run, golden);
      if (v.pass()) {
        std::cout << "iommusim compare: " << run_ << " matches " << golden_ << ": " << v.compared
                  << " stats within tolerance\n";
        return 0;
      }
      size_t off = 0, missing = 0;
      for (const auto& f : v.findings) {
        if (f.kind == reg::Finding::kOutOfTolerance) ++off;
        if (f.kind == reg::Finding::kMissingInRun || f.kind == reg::Finding::kMissingInGolden) ++missing;
      }
      std::cout << "iommusim compare: " << run_ << " differs from " << golden_ << ": " << off << " of " << v.compared
                << " stats out of tolerance, " << missing << " missing\n";
      for (const auto& f : v.findings) std::cout << "  " << f.line() << "\n";
      const std::string cmd = reg::command_line(golden);
      if (!cmd.empty()) std::cout << "  the golden's run: " << cmd << "\n";
      std::cout << "  if the change is intended: iommusim compare --bless " << run_ << " " << golden_ << "\n";
      return 1;
    }

    reg::Golden existing;
    if (exists) existing = reg::read_golden(golden_);
    reg::RunCommand command;
    command.given = sub_->count("--config") > 0 || sub_->count("--param") > 0;
    command.config = config_;
    command.params = params_;
    const reg::Blessing b = reg::bless(run, exists ? &existing : nullptr, command);
    const std::string text = b.golden.dump(2) + "\n";
    std::string old_text;
    if (exists) {
      std::ifstream in(golden_);
      std::stringstream ss;
      ss << in.rdbuf();
      old_text = ss.str();
    }
    if (text != old_text) {
      const fs::path parent = fs::path(golden_).parent_path();
      if (!parent.empty()) fs::create_directories(parent, ec);
      std::ofstream out(golden_);
      out << text;
      out.close();
      if (!out) throw reg::RegressionError("cannot write " + golden_);
    }
    const size_t n = b.golden["stats"].size();
    if (!exists)
      std::cout << "iommusim compare --bless: created " << golden_ << " (" << n << " stats)\n";
    else if (b.changes.empty())
      std::cout << "iommusim compare --bless: " << golden_ << " unchanged (" << n << " stats)\n";
    else
      std::cout << "iommusim compare --bless: updated " << golden_ << ": " << b.changes.size() << " changes\n";
    for (const auto& c : b.changes) std::cout << "  " << c << "\n";
    if (!b.golden.contains("run") || b.golden["run"].empty())
      std::cout << "  note: the golden records no run command; pass --config/-p so the golden check can rerun it\n";
    return 0;
  } catch (const std::exception& e) {  // RegressionError, or a file or JSON error on the way
    std::cerr << "iommusim compare: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace iommusim::app

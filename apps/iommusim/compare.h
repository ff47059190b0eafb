// `iommusim compare [--bless] RUN GOLDEN`: checks a run folder against a regression golden,
// or writes the golden from the run. The logic lives in platforms/regression.h; this is the
// command line. Exit status: 0 within tolerance (or blessed), 1 out of tolerance, 2 bad input.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace iommusim::app {

class CompareCommand {
 public:
  // Registers the subcommand on app.
  explicit CompareCommand(CLI::App& app);
  // Whether the command line chose this subcommand.
  bool chosen() const { return sub_->parsed(); }
  // Runs it; returns the exit status.
  int exec() const;

 private:
  CLI::App* sub_;
  std::string run_, golden_, config_;
  std::vector<std::string> params_;
  bool bless_ = false;
};

}  // namespace iommusim::app

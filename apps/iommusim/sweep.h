// `iommusim sweep SPEC.json [-o DIR] [-j N] [--list] [--index I] [--merge] [--slurm [--submit]]
// [--force]`: runs a sweep's points on a local process pool or as a Slurm array, and merges
// results.csv (docs/sweep.md). The spec, folder and CSV logic live in platforms/sweep_*.h;
// this is the command line, the progress line and the Slurm script.
// Exit status: 0 all points done, 1 a point failed (or, for --merge, is not done), 2 bad
// input (spec, folder, options).
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace iommusim::app {

class SweepCommand {
 public:
  explicit SweepCommand(CLI::App& app);
  bool chosen() const { return sub_->parsed(); }
  int exec() const;

 private:
  CLI::App* sub_;
  std::string spec_, out_;
  std::vector<std::string> sbatch_options_;
  unsigned jobs_ = 0;
  long long index_ = -1;
  bool list_ = false, merge_ = false, slurm_ = false, submit_ = false, force_ = false;
};

}  // namespace iommusim::app

// Regression goldens: compare a run's stats.json with a golden file, and bless (write or
// update) a golden from a run. The golden format is described in docs/regression.md.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace iommusim::platforms::regression {

// Bad input: an unreadable or malformed run folder or golden. The CLI exits 2 on it.
class RegressionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A golden keeps its layout (about, run, select, tolerance, stats) in file order.
using Golden = nlohmann::ordered_json;

// One tolerance: |got - golden| <= max(abs, rel * |golden|). Both zero is an exact match.
struct Tolerance {
  double rel = 0, abs = 0;
  std::string from;  // where it came from: "default", "exact (integer)" or the matching pattern
  std::string describe() const;  // "rel 0.05 (*.walk_latency.p99)"
};

// Whether got is within the tolerance of golden (boundaries included).
bool within(double golden, double got, const Tolerance& t);

// A run's stats, flattened to name -> number: counters and values under their name;
// histograms as name.count, name.mean, name.p50, name.p90, name.p99 and name.max.
struct RunStats {
  bool ok = true;
  std::string error;
  nlohmann::json values = nlohmann::json::object();  // sorted by name
};
RunStats flatten_stats(const nlohmann::json& stats_json);
// Reads RUN/stats.json (RUN may also name the stats.json itself). Throws RegressionError.
RunStats read_run(const std::string& run);

// Reads and validates a golden. Throws RegressionError naming the file and the key.
Golden read_golden(const std::string& path);
void validate_golden(const Golden& g, const std::string& path);

// The tolerance that applies to one stat: an exact-name rule, else the longest matching
// glob rule, else exact for an integer golden value, else the default.
Tolerance tolerance_for(const Golden& g, const std::string& stat);

struct Finding {
  enum Kind { kOutOfTolerance, kMissingInRun, kMissingInGolden, kRunFailed } kind;
  std::string stat;
  nlohmann::json golden, got;  // null where absent
  std::string tolerance;
  std::string line() const;    // one human line naming all of the above
};
struct Verdict {
  size_t compared = 0;             // stats present on both sides
  std::vector<Finding> findings;   // every problem, in stat order
  bool pass() const { return findings.empty(); }
};
Verdict compare(const RunStats& run, const Golden& golden);

// The skeleton of a new golden: the default selection and tolerance block, no stats.
Golden default_golden();

// A command line to record in the golden's "run" block (config path, -p overrides).
struct RunCommand {
  bool given = false;
  std::string config;
  std::vector<std::string> params;
};

struct Blessing {
  Golden golden;                   // the updated golden
  std::vector<std::string> changes;  // "stat: old -> new" lines, in stat order
};
// Takes the stats the golden selects from the run (its "select" patterns; without them,
// the stats the golden already holds) and keeps everything else the golden declares.
// existing is null for a new golden. Throws RegressionError on a failed run.
Blessing bless(const RunStats& run, const Golden* existing, const RunCommand& command);

// The command line a golden's "run" block records, for messages ("" when it has none).
std::string command_line(const Golden& g);

}  // namespace iommusim::platforms::regression

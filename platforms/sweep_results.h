// A sweep's results.csv (docs/sweep.md, "results.csv"): one row per combination × vendor ×
// path, the swept values, then each chosen stat's mean across replicate seeds with its 95%
// Student-t interval. Built from the points' stats.json contents only, so it is
// byte-identical whenever the runs are, wherever they ran.
// What it does not do: read folders (platforms/sweep_folder.h does) or weight replicates.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platforms/sweep_spec.h"

namespace iommusim::platforms::sweep {

// The p-quantile of Student's t distribution with df degrees of freedom (0 < p < 1, df >= 1),
// from the regularized incomplete beta function; accurate to about 1e-12.
double student_t_quantile(double p, uint64_t df);

// The mean of replicate values and its 95% interval, mean ± t(0.975, n-1) · s / √n, with s
// the sample standard deviation (n - 1 in the denominator). No interval for n < 2.
struct Summary {
  size_t n = 0;
  double mean = 0, lo = 0, hi = 0;
  bool has_interval = false;
};
Summary summarize(const std::vector<double>& values);

// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string csv_cell(const std::string& text);

// Builds the CSV one point at a time, keeping from each point's stats.json only the values
// of the chosen stats, so a merge holds one parsed stats.json at a time.
class CsvMerger {
 public:
  CsvMerger(const Spec& spec, const std::vector<Point>& points);
  // Point i's stats.json content; points never added are not done. Throws SweepError when
  // it is not a stats.json.
  void add(size_t i, const nlohmann::json& stats);
  // The same from what chosen_stats() kept of it, when it was kept for this spec's stats
  // (returns false, adding nothing, otherwise: merge from stats.json then).
  bool add_chosen(size_t i, const nlohmann::json& kept);
  // The CSV text. Throws SweepError when a chosen stat matches nothing in any done point.
  std::string csv() const;

  // One point's kept stats for one lane.
  struct Lane {
    std::string vendor, path;
    std::map<std::string, double> values;   // stat name without the lane -> value
  };

 private:
  bool chosen(const std::string& stat) const;

  const Spec& spec_;
  const std::vector<Point>& points_;
  std::vector<std::vector<Lane>> lanes_;   // per point, the lanes in the order stats.json lists them
  std::set<std::string> known_;            // every stat name (without the lane) of a done point
  bool any_done_ = false;
};

// What a merge needs of one point's stats.json document: the values of the spec's chosen
// stats by lane, and every stat name (to expand globs and explain a name that matches
// nothing). A point keeps it beside stats.json, so a merge parses a few KB per point, not
// the whole stats.json. Throws SweepError when it is not a stats.json.
nlohmann::json chosen_stats(const Spec& spec, const nlohmann::json& stats, size_t index);

// The CSV text. stats[i] is point i's stats.json content, or null when the point is not done.
// Throws SweepError when a chosen stat matches nothing in any done point.
std::string merge_csv(const Spec& spec, const std::vector<Point>& points, const std::vector<nlohmann::json>& stats);

}  // namespace iommusim::platforms::sweep

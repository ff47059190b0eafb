// A sweep's results.csv (docs/sweep.md, "results.csv"): one row per combination × vendor ×
// path, the swept values, then each chosen stat's mean across replicate seeds with its 95%
// Student-t interval. Built from the points' stats.json contents only, so it is
// byte-identical whenever the runs are, wherever they ran.
// What it does not do: read folders (platforms/sweep_folder.h does) or weight replicates.
#pragma once
#include <cstdint>
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

// The CSV text. stats[i] is point i's stats.json content, or null when the point is not done.
// Throws SweepError when a chosen stat matches nothing in any done point.
std::string merge_csv(const Spec& spec, const std::vector<Point>& points, const std::vector<nlohmann::json>& stats);

}  // namespace iommusim::platforms::sweep

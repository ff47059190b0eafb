#include "platforms/sweep_results.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "platforms/regression.h"
#include "platforms/stat_names.h"

namespace iommusim::platforms::sweep {
namespace {

using json = nlohmann::json;

// Continued fraction of the incomplete beta function (modified Lentz's method; Press et al.,
// Numerical Recipes, 3rd ed., section 6.4).
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-16;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < kEps) break;
  }
  return h;
}

// The regularized incomplete beta function I_x(a, b).
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_continued_fraction(a, b, x) / a;
  return 1 - front * beta_continued_fraction(b, a, 1 - x) / b;
}

// Student's t CDF: P(T <= t) = 1 - I_{df/(df+t²)}(df/2, 1/2) / 2 for t >= 0.
double student_t_cdf(double t, double df) {
  const double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t));
  return t >= 0 ? 1 - tail : tail;
}

bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

bool is_chosen(const Spec& spec, const std::string& stat) {
  for (const auto& sel : spec.stats)
    if (is_glob(sel) ? fnmatch(sel.c_str(), stat.c_str(), 0) == 0 : sel == stat) return true;
  return false;
}

using Lane = CsvMerger::Lane;

// One point's stats by lane, the lanes in the order stats.json lists them; `keep` says
// which values to keep, `seen` hears every stat name.
template <class Keep, class Seen>
std::vector<Lane> lanes_of(const json& stats_json, size_t index, Keep keep, Seen seen) {
  regression::RunStats flat;
  try {
    flat = regression::flatten_stats(stats_json);
  } catch (const regression::RegressionError& e) {
    throw SweepError("point " + std::to_string(index) + ": stats.json: " + e.what());
  }
  std::vector<Lane> lanes;
  auto lane = [&](const std::string& name) -> Lane* {
    const StatName s = split_stat_name(name);
    if (!s.valid) return nullptr;
    for (auto& l : lanes)
      if (l.vendor == s.vendor && l.path == s.path) return &l;
    lanes.push_back({s.vendor, s.path, {}});
    return &lanes.back();
  };
  for (const auto& s : stats_json["stats"]) lane(s["name"].get<std::string>());
  for (auto it = flat.values.begin(); it != flat.values.end(); ++it)
    if (Lane* l = lane(it.key())) {
      std::string stat = split_stat_name(it.key()).stat;
      seen(stat);
      if (keep(stat)) l->values[std::move(stat)] = it.value().get<double>();
    }
  return lanes;
}

// The CSV's stat columns: the spec's names in order, each glob expanded to the names it
// matches (sorted), a name listed once.
std::vector<std::string> stat_columns(const Spec& spec, const std::set<std::string>& known, bool any_done) {
  std::vector<std::string> columns;
  std::set<std::string> taken;
  for (size_t i = 0; i < spec.stats.size(); ++i) {
    const std::string& sel = spec.stats[i];
    size_t matched = 0;
    if (is_glob(sel)) {
      for (const auto& name : known)
        if (fnmatch(sel.c_str(), name.c_str(), 0) == 0 && ++matched && taken.insert(name).second) columns.push_back(name);
    } else if (known.count(sel) || !any_done) {
      matched = 1;
      if (taken.insert(sel).second) columns.push_back(sel);
    }
    if (!matched && any_done) {
      const StatName lane = split_stat_name(sel);
      std::string hint = "no finished point has a stat \"" + sel + "\"";
      if (lane.valid && known.count(lane.stat)) hint += " (stat names leave out the lane: write \"" + lane.stat + "\")";
      throw SweepError((spec.file.empty() ? std::string("spec") : spec.file) + ": stats[" + std::to_string(i) + "]: " + hint);
    }
  }
  return columns;
}

}  // namespace

double student_t_quantile(double p, uint64_t df) {
  if (!(p > 0 && p < 1) || df == 0) return std::nan("");
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  // Bisection on the CDF, which rises monotonically: bracket, then halve to the last bit.
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, double(df)) < p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, double(df)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = values.size();
  if (s.n == 0) return s;
  // Offsets from the first value: equal replicates give exactly that value and width 0.
  double sum = 0;
  for (double v : values) sum += v - values[0];
  s.mean = values[0] + sum / double(s.n);
  s.lo = s.hi = s.mean;
  if (s.n < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  const double half = student_t_quantile(0.975, s.n - 1) * std::sqrt(sq / double(s.n - 1)) / std::sqrt(double(s.n));
  s.lo = s.mean - half;
  s.hi = s.mean + half;
  s.has_interval = true;
  return s;
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string q = "\"";
  for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

CsvMerger::CsvMerger(const Spec& spec, const std::vector<Point>& points)
    : spec_(spec), points_(points), lanes_(points.size()) {}

bool CsvMerger::chosen(const std::string& stat) const { return is_chosen(spec_, stat); }

bool CsvMerger::add_chosen(size_t i, const json& kept) {
  if (i >= points_.size() || !kept.is_object() || kept.value("stats", json()) != json(spec_.stats)) return false;
  std::vector<Lane> lanes;
  for (const auto& l : kept.at("lanes")) {
    Lane lane{l.at("vendor").get<std::string>(), l.at("path").get<std::string>(), {}};
    for (auto it = l.at("values").begin(); it != l.at("values").end(); ++it)
      lane.values[it.key()] = it.value().get<double>();
    lanes.push_back(std::move(lane));
  }
  const auto names = kept.at("names").get<std::vector<std::string>>();
  // Nothing is taken until all of it has been read.
  known_.insert(names.begin(), names.end());
  lanes_[i] = std::move(lanes);
  any_done_ = true;
  return true;
}

json chosen_stats(const Spec& spec, const json& stats, size_t index) {
  std::set<std::string> names;
  const std::vector<Lane> lanes = lanes_of(
      stats, index, [&spec](const std::string& s) { return is_chosen(spec, s); },
      [&names](const std::string& s) { names.insert(s); });
  json out = {{"stats", spec.stats}, {"names", names}, {"lanes", json::array()}};
  for (const Lane& l : lanes) out["lanes"].push_back({{"vendor", l.vendor}, {"path", l.path}, {"values", l.values}});
  return out;
}

void CsvMerger::add(size_t i, const json& stats) {
  if (i >= points_.size() || stats.is_null()) return;
  any_done_ = true;
  lanes_[i] = lanes_of(
      stats, points_[i].index, [this](const std::string& s) { return chosen(s); },
      [this](const std::string& s) { known_.insert(s); });
}

std::string merge_csv(const Spec& spec, const std::vector<Point>& points, const std::vector<json>& stats) {
  CsvMerger m(spec, points);
  for (size_t i = 0; i < points.size() && i < stats.size(); ++i) m.add(i, stats[i]);
  return m.csv();
}

std::string CsvMerger::csv() const {
  const Spec& spec = spec_;
  const std::vector<Point>& points = points_;
  const auto& lanes = lanes_;
  const std::vector<std::string> columns = stat_columns(spec, known_, any_done_);

  std::ostringstream out;
  auto row = [&out](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << csv_cell(cells[i]);
    out << "\n";
  };
  std::vector<std::string> header(spec.keys);
  for (const char* c : {"vendor", "path", "replicates"}) header.push_back(c);
  for (const auto& c : columns)
    for (const char* suffix : {"", ".ci95_lo", ".ci95_hi"}) header.push_back(c + suffix);
  row(header);

  // Points come combination by combination (the seeds innermost): one group per combination.
  for (size_t first = 0; first < points.size();) {
    size_t end = first;
    while (end < points.size() && points[end].combination == points[first].combination) ++end;
    std::vector<std::pair<std::string, std::string>> order;   // lanes, first appearance
    for (size_t i = first; i < end; ++i)
      for (auto& l : lanes[i])
        if (std::find(order.begin(), order.end(), std::make_pair(l.vendor, l.path)) == order.end())
          order.push_back({l.vendor, l.path});
    for (const auto& [vendor, path] : order) {
      std::vector<const Lane*> reps;
      for (size_t i = first; i < end; ++i)
        for (auto& l : lanes[i])
          if (l.vendor == vendor && l.path == path) reps.push_back(&l);
      std::vector<std::string> cells;
      for (const auto& v : points[first].values) cells.push_back(format_value(v));
      cells.insert(cells.end(), {vendor, path, std::to_string(reps.size())});
      for (const auto& c : columns) {
        std::vector<double> xs;
        for (const Lane* l : reps)
          if (auto it = l->values.find(c); it != l->values.end()) xs.push_back(it->second);
        const Summary s = summarize(xs);
        cells.push_back(s.n ? format_number(s.mean) : "");
        cells.push_back(s.has_interval ? format_number(s.lo) : "");
        cells.push_back(s.has_interval ? format_number(s.hi) : "");
      }
      row(cells);
    }
    first = end;
  }
  return out.str();
}

}  // namespace iommusim::platforms::sweep

#include "platforms/regression.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace iommusim::platforms::regression {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The parts of a histogram a golden can hold (min is left out: it rarely says anything).
constexpr const char* kHistogramParts[] = {"count", "mean", "p50", "p90", "p99", "max"};

// A number as JSON prints it: the shortest text that reads back to the same value.
std::string num(const json& v) { return v.is_null() ? std::string("(none)") : v.dump(); }

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}
bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }
// Specificity of a glob: its literal characters, so "*.walk_latency.p99" beats "*.p99".
size_t literal_chars(const std::string& s) {
  return size_t(std::count_if(s.begin(), s.end(), [](char c) { return c != '*' && c != '?'; }));
}

template <class J>
J parse_file(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw RegressionError("cannot read " + std::string(what) + " " + path);
  try {
    return J::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    throw RegressionError(path + ": not valid JSON: " + e.what());
  }
}

Tolerance parse_tolerance(const Golden& spec, const std::string& where, std::string from) {
  if (!spec.is_object()) throw RegressionError(where + ": a tolerance is an object {\"rel\": r, \"abs\": a}");
  Tolerance t;
  t.from = std::move(from);
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (it.key() != "rel" && it.key() != "abs")
      throw RegressionError(where + "." + it.key() + ": unknown key (a tolerance has rel and/or abs)");
    if (!it.value().is_number() || it.value().get<double>() < 0)
      throw RegressionError(where + "." + it.key() + ": must be a number >= 0");
    (it.key() == "rel" ? t.rel : t.abs) = it.value().get<double>();
  }
  return t;
}

bool selected(const Golden& g, const std::string& stat) {
  if (!g.contains("select")) return false;
  for (const auto& p : g["select"])
    if (glob_match(p.get<std::string>(), stat)) return true;
  return false;
}

}  // namespace

std::string Tolerance::describe() const {
  auto text = [](double x) {
    std::ostringstream o;
    o.precision(15);
    o << x;
    return o.str();
  };
  if (rel == 0 && abs == 0) return from.rfind("exact", 0) == 0 ? from : "exact (" + from + ")";
  std::string s;
  if (rel != 0) s += "rel " + text(rel);
  if (abs != 0) s += std::string(s.empty() ? "" : ", ") + "abs " + text(abs);
  return s + " (" + from + ")";
}

bool within(double golden, double got, const Tolerance& t) {
  if (std::isnan(golden) || std::isnan(got)) return false;
  const double allowed = std::max(t.abs, t.rel * std::fabs(golden));
  if (allowed == 0) return got == golden;
  // A little slack for the rounding in rel * |golden| and in the subtraction, so a value
  // exactly on the boundary passes; it is far below any tolerance a golden declares.
  const double slack = 1e-12 * std::max(1.0, std::fabs(golden));
  return std::fabs(got - golden) <= allowed + slack;
}

RunStats flatten_stats(const json& stats_json) {
  if (!stats_json.is_object() || !stats_json.contains("stats") || !stats_json["stats"].is_array())
    throw RegressionError("stats.json has no \"stats\" list");
  RunStats r;
  if (stats_json.contains("ok") && !stats_json["ok"].is_boolean()) throw RegressionError("ok: must be true or false");
  if (stats_json.contains("error") && !stats_json["error"].is_string()) throw RegressionError("error: must be a string");
  r.ok = stats_json.value("ok", true);
  r.error = stats_json.value("error", std::string());
  for (const auto& s : stats_json["stats"]) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string())
      throw RegressionError("stats.json: a stat without a name: " + s.dump());
    const std::string name = s["name"].get<std::string>();
    if (s.contains("value")) {
      if (s["value"].is_number()) r.values[name] = s["value"];
      continue;
    }
    for (const char* part : kHistogramParts)
      if (s.contains(part) && s[part].is_number()) r.values[name + "." + part] = s[part];
  }
  return r;
}

RunStats read_run(const std::string& run) {
  std::error_code ec;
  fs::path p(run);
  if (fs::is_directory(p, ec)) {
    p /= "stats.json";
    if (!fs::exists(p, ec)) throw RegressionError(run + " is not a run folder: it has no stats.json");
  } else if (!fs::exists(p, ec)) {
    throw RegressionError("no run folder " + run);
  }
  try {
    return flatten_stats(parse_file<json>(p.string(), "stats"));
  } catch (const RegressionError& e) {
    const std::string what = e.what();
    throw RegressionError(what.rfind(p.string(), 0) == 0 ? what : p.string() + ": " + what);
  }
}

void validate_golden(const Golden& g, const std::string& path) {
  if (!g.is_object()) throw RegressionError(path + ": a golden is a JSON object");
  static const std::set<std::string> kKeys = {"about", "run", "select", "tolerance", "stats"};
  for (auto it = g.begin(); it != g.end(); ++it)
    if (!kKeys.count(it.key()))
      throw RegressionError(path + ": " + it.key() + ": unknown key (about, run, select, tolerance, stats)");
  if (!g.contains("stats") || !g["stats"].is_object()) throw RegressionError(path + ": stats: missing or not an object");
  for (auto it = g["stats"].begin(); it != g["stats"].end(); ++it)
    if (!it.value().is_number()) throw RegressionError(path + ": stats." + it.key() + ": must be a number");
  if (g.contains("select")) {
    if (!g["select"].is_array()) throw RegressionError(path + ": select: must be a list of stat names or globs");
    for (const auto& p : g["select"])
      if (!p.is_string()) throw RegressionError(path + ": select: must be a list of stat names or globs");
  }
  if (g.contains("run")) {
    const auto& r = g["run"];
    if (!r.is_object()) throw RegressionError(path + ": run: must be an object {\"config\", \"params\"}");
    for (auto it = r.begin(); it != r.end(); ++it) {
      if (it.key() == "config") {
        if (!it.value().is_string()) throw RegressionError(path + ": run.config: must be a path (\"\" for the default)");
      } else if (it.key() == "params") {
        if (!it.value().is_array()) throw RegressionError(path + ": run.params: must be a list of key=value");
        for (const auto& p : it.value())
          if (!p.is_string()) throw RegressionError(path + ": run.params: must be a list of key=value");
      } else {
        throw RegressionError(path + ": run." + it.key() + ": unknown key (config, params)");
      }
    }
  }
  if (g.contains("tolerance")) {
    const auto& t = g["tolerance"];
    if (!t.is_object()) throw RegressionError(path + ": tolerance: must be an object {\"default\", \"overrides\"}");
    for (auto it = t.begin(); it != t.end(); ++it) {
      const std::string where = path + ": tolerance." + it.key();
      if (it.key() == "default") {
        parse_tolerance(it.value(), where, "default");
      } else if (it.key() == "overrides") {
        if (!it.value().is_object()) throw RegressionError(where + ": must map stat names or globs to tolerances");
        for (auto s = it.value().begin(); s != it.value().end(); ++s)
          parse_tolerance(s.value(), where + "." + s.key(), s.key());
      } else {
        throw RegressionError(where + ": unknown key (default, overrides)");
      }
    }
  }
}

Golden read_golden(const std::string& path) {
  Golden g = parse_file<Golden>(path, "golden");
  validate_golden(g, path);
  return g;
}

Tolerance tolerance_for(const Golden& g, const std::string& stat) {
  const Golden* rules = nullptr;
  if (g.contains("tolerance") && g["tolerance"].contains("overrides")) rules = &g["tolerance"]["overrides"];
  if (rules) {
    if (rules->contains(stat) && !is_glob(stat)) return parse_tolerance((*rules)[stat], "tolerance.overrides." + stat, stat);
    const Golden* best = nullptr;
    std::string best_key;
    for (auto it = rules->begin(); it != rules->end(); ++it) {
      if (!is_glob(it.key()) || !glob_match(it.key(), stat)) continue;
      if (!best || literal_chars(it.key()) > literal_chars(best_key)) {
        best = &it.value();
        best_key = it.key();
      }
    }
    if (best) return parse_tolerance(*best, "tolerance.overrides." + best_key, best_key);
  }
  const bool integer = g.contains("stats") && g["stats"].contains(stat) && g["stats"][stat].is_number_integer();
  if (integer) return Tolerance{0, 0, "exact (integer)"};
  if (g.contains("tolerance") && g["tolerance"].contains("default"))
    return parse_tolerance(g["tolerance"]["default"], "tolerance.default", "default");
  return Tolerance{0, 0, "no default declared"};
}

std::string Finding::line() const {
  switch (kind) {
    case kOutOfTolerance: {
      std::string s = stat + ": golden " + num(golden) + ", got " + num(got) + ", tolerance " + tolerance;
      const double g = golden.get<double>(), v = got.get<double>();
      if (g != 0) {
        std::ostringstream o;
        o.precision(3);
        o << " (" << (v >= g ? "+" : "") << 100.0 * (v - g) / std::fabs(g) << "%)";
        s += o.str();
      }
      return s;
    }
    case kMissingInRun:
      return stat + ": missing in the run (golden " + num(golden) + ")";
    case kMissingInGolden:
      return stat + ": missing in the golden (got " + num(got) + "; the golden selects it: bless to add it)";
    case kRunFailed:
      return "the run did not complete: " + tolerance;
  }
  return stat;
}

Verdict compare(const RunStats& run, const Golden& golden) {
  Verdict v;
  if (!run.ok) v.findings.push_back({Finding::kRunFailed, "", nullptr, nullptr, run.error.empty() ? "ok is false" : run.error});
  // Every stat either side knows of, in name order.
  std::set<std::string> names;
  for (auto it = golden["stats"].begin(); it != golden["stats"].end(); ++it) names.insert(it.key());
  for (auto it = run.values.begin(); it != run.values.end(); ++it)
    if (selected(golden, it.key())) names.insert(it.key());
  for (const std::string& name : names) {
    const bool in_golden = golden["stats"].contains(name), in_run = run.values.contains(name);
    if (!in_run) {
      v.findings.push_back({Finding::kMissingInRun, name, json(golden["stats"][name]), nullptr, ""});
      continue;
    }
    if (!in_golden) {
      v.findings.push_back({Finding::kMissingInGolden, name, nullptr, run.values[name], ""});
      continue;
    }
    ++v.compared;
    const json g = json(golden["stats"][name]);
    const Tolerance t = tolerance_for(golden, name);
    if (!within(g.get<double>(), run.values[name].get<double>(), t))
      v.findings.push_back({Finding::kOutOfTolerance, name, g, run.values[name], t.describe()});
  }
  return v;
}

Golden default_golden() {
  Golden g;
  g["about"] = "Regression golden (docs/regression.md): the stats a run of \"run\" must reproduce, within \"tolerance\".";
  // Per vendor lane, the stats that say whether the model still behaves: traffic done and
  // faults, IOTLB and walk figures, invalidation count, latency and its breakdown.
  g["select"] = {
      "*.endpoint.transactions", "*.endpoint.faults", "*.endpoint.errors", "*.iommu.faults",
      "*.endpoint.latency.mean", "*.run.simulated_traffic_time",
      "*.iommu.iotlb.hit_rate", "*.iommu.config_reads",
      "*.iommu.walk_reads.count", "*.iommu.walk_reads.mean", "*.iommu.walk_reads.p50", "*.iommu.walk_reads.p99",
      "*.iommu.walk_reads.max", "*.iommu.walk_latency.mean", "*.iommu.walk_latency.p99",
      "*.workload.unmaps", "*.workload.domain_flushes",
      "*.driver.invalidation.latency.count", "*.driver.invalidation.latency.mean",
      "*.driver.invalidation.latency.p50", "*.driver.invalidation.latency.p99",
      "*.driver.invalidation.software.mean", "*.driver.invalidation.queueing.mean",
      "*.driver.invalidation.fetch.mean", "*.driver.invalidation.execution.mean",
      "*.driver.invalidation.sync.mean",
  };
  // Integers (counters, histogram counts) are exact; means, rates and times may drift by
  // 1%; percentiles by 5% (a histogram bucket is about 3% wide, so one bucket's move
  // passes); the max by 10%; hit rates by 0.5 points.
  g["tolerance"] = {
      {"default", {{"rel", 0.01}}},
      {"overrides",
       {{"*.p50", {{"rel", 0.05}}}, {"*.p90", {{"rel", 0.05}}}, {"*.p99", {{"rel", 0.05}}}, {"*.max", {{"rel", 0.10}}},
        {"*.hit_rate", {{"abs", 0.005}}}}},
  };
  g["stats"] = Golden::object();
  return g;
}

Blessing bless(const RunStats& run, const Golden* existing, const RunCommand& command) {
  if (!run.ok) throw RegressionError("will not bless a run that did not complete: " + run.error);
  Blessing b;
  b.golden = existing ? *existing : default_golden();
  const Golden old_stats = existing ? (*existing)["stats"] : Golden::object();
  if (command.given) {
    Golden r;
    r["config"] = command.config;
    r["params"] = command.params;
    if (!existing || !existing->contains("run") || (*existing)["run"] != r) {
      const std::string old_line = command_line(b.golden);
      b.golden["run"] = r;
      b.changes.push_back("run: " + (old_line.empty() ? std::string("(none)") : old_line) + " -> " + command_line(b.golden));
    }
  }
  // The new stats, in name order: what the golden selects, else what it already holds.
  Golden stats = Golden::object();
  for (auto it = run.values.begin(); it != run.values.end(); ++it) {
    const bool keep = b.golden.contains("select") ? selected(b.golden, it.key()) : old_stats.contains(it.key());
    if (keep) stats[it.key()] = it.value();
  }
  std::set<std::string> names;
  for (auto it = old_stats.begin(); it != old_stats.end(); ++it) names.insert(it.key());
  for (auto it = stats.begin(); it != stats.end(); ++it) names.insert(it.key());
  for (const std::string& n : names) {
    const bool was = old_stats.contains(n), is = stats.contains(n);
    if (was && is && old_stats[n] == stats[n]) continue;
    b.changes.push_back(n + ": " + (was ? old_stats[n].dump() : "(none)") + " -> " + (is ? stats[n].dump() : "(removed)"));
  }
  // Rebuild in the usual layout: about, run, select, tolerance, stats.
  Golden out;
  for (const char* k : {"about", "run", "select", "tolerance"})
    if (b.golden.contains(k)) out[k] = b.golden[k];
  out["stats"] = stats;
  b.golden = out;
  return b;
}

std::string command_line(const Golden& g) {
  if (!g.contains("run") || !g["run"].is_object() || g["run"].empty()) return "";
  std::string s = "iommusim run";
  const std::string config = g["run"].value("config", std::string());
  if (!config.empty()) s += " " + config;
  if (g["run"].contains("params"))
    for (const auto& p : g["run"]["params"]) s += " -p " + p.get<std::string>();
  return s;
}

}  // namespace iommusim::platforms::regression

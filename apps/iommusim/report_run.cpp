// The report of one run folder (what `iommusim run` writes): invalidation latency CDFs per
// lane, the latency breakdown as stacked bars, walk cost, DMA latency, cache hit rates and
// the correctness oracle's counts. Distributions come from the histogram buckets in
// stats.json (complete, whatever invalidations.json kept); the breakdown per operation
// from invalidations.json.
//
// Lanes, vendors and paths are read from the stat names (docs/sweep.md), and the breakdown's
// parts from the records' *_ns fields, so a new path or phase needs no code here.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "apps/iommusim/report_page.h"

namespace iommusim::app::report {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct RunFolder {
  std::string dir;
  json config, stats, invalidations, violations;
  std::map<std::string, json> by_name;
  std::vector<Lane> lanes;
  std::string summary;

  const json* stat(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &it->second;
  }
  double number(const std::string& name, const char* field = "value") const {
    const json* s = stat(name);
    return s && s->contains(field) ? (*s)[field].get<double>() : 0.0;
  }
};

RunFolder read_run(const std::string& dir) {
  RunFolder r;
  r.dir = dir;
  r.stats = read_json_file((fs::path(dir) / "stats.json").string());
  if (!r.stats.is_object() || !r.stats.contains("stats") || !r.stats["stats"].is_array())
    throw ReportError(dir + "/stats.json: no \"stats\" list (not written by iommusim run?)");
  for (auto& s : r.stats["stats"]) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() || !s.contains("kind"))
      throw ReportError(dir + "/stats.json: a stat without a name or kind: " + s.dump());
    const std::string name = s["name"];
    r.by_name[name] = s;
    const Lane l = lane_of(name);
    if (std::none_of(r.lanes.begin(), r.lanes.end(), [&](const Lane& x) { return x.name == l.name; }))
      r.lanes.push_back(l);
  }
  if (r.lanes.empty()) throw ReportError(dir + "/stats.json: holds no stats");
  const fs::path config = fs::path(dir) / "config.resolved.json";
  if (fs::exists(config)) r.config = read_json_file(config.string());
  const fs::path inv = fs::path(dir) / "invalidations.json";
  if (fs::exists(inv)) r.invalidations = read_json_file(inv.string());
  const fs::path viol = fs::path(dir) / "violations.json";
  if (fs::exists(viol)) r.violations = read_json_file(viol.string());
  std::ifstream summary(fs::path(dir) / "summary.txt");
  std::stringstream ss;
  ss << summary.rdbuf();
  r.summary = ss.str();
  return r;
}

json lane_fields(const Lane& l) { return {{"lane", l.name}, {"vendor", l.vendor}, {"path", l.path}}; }

const json& buckets_of(const RunFolder& r, const json& h) {
  if (!h.contains("buckets") || !h["buckets"].is_array())
    throw ReportError(r.dir + "/stats.json: histogram " + h["name"].get<std::string>() +
                      " has no buckets (written by an iommusim before they were exported): rerun the run");
  return h["buckets"];
}

// The cumulative distribution at each bucket's upper edge, from 0 at the first bucket's
// lower edge: exact where the buckets are one unit wide, else known to a bucket.
void add_cdf_rows(const RunFolder& r, const json& h, const Lane& lane, json& rows) {
  const json& buckets = buckets_of(r, h);
  const double total = h["count"].get<double>();
  if (buckets.empty() || total <= 0) return;
  double seen = 0;
  json first = lane_fields(lane);
  first["x"] = buckets[0][0];
  first["fraction"] = 0.0;
  rows.push_back(first);
  for (auto& b : buckets) {
    seen += b[2].get<double>();
    json row = lane_fields(lane);
    row["x"] = b[1];
    row["fraction"] = seen / total;
    rows.push_back(row);
  }
}

// One CDF line per lane of the histogram `<lane>.<stat>`; lanes without samples are left out.
std::optional<Plot> cdf_plot(const RunFolder& r, const LaneStyle& c, const std::string& stat, const std::string& what,
                             const std::string& title, const std::string& note) {
  json rows = json::array();
  std::string unit;
  std::vector<std::string> empty;
  for (auto& lane : r.lanes) {
    const json* h = r.stat(lane.name + "." + stat);
    if (!h || h->value("kind", "") != "histogram") continue;
    unit = h->value("unit", "");
    if (h->value("count", 0.0) == 0) { empty.push_back(lane.name); continue; }
    add_cdf_rows(r, *h, lane, rows);
  }
  if (rows.empty()) return std::nullopt;
  json spec = vega_lite(rows);
  spec["mark"] = {{"type", "line"}, {"interpolate", "linear"}};
  spec["encoding"] = {
      {"x", {{"field", "x"}, {"type", "quantitative"}, {"title", what + " (" + unit + ")"}, {"scale", {{"zero", false}}}}},
      {"y", {{"field", "fraction"}, {"type", "quantitative"}, {"title", "fraction of samples at or below"},
             {"axis", {{"format", "%"}}}, {"scale", {{"domain", {0, 1}}}}}},
      {"detail", {{"field", "lane"}}},
      {"tooltip", {{{"field", "lane"}}, {{"field", "x"}, {"title", unit}}, {{"field", "fraction"}, {"format", ".1%"}}}}};
  c.apply(spec["encoding"]);
  std::string full_note = note;
  if (!empty.empty()) {
    full_note += " No samples in:";
    for (auto& e : empty) full_note += " " + e;
    full_note += ".";
  }
  return Plot{title, full_note, spec};
}

// The parts of an invalidation record, in the order the time is spent; phases a later
// model adds (any other *_ns field) follow in name order.
std::vector<std::string> record_parts(const json& records) {
  static const std::vector<std::string> known = {"software", "queueing", "fetch", "execution", "sync"};
  std::vector<std::string> others;
  for (auto& rec : records)
    for (auto& [key, value] : rec.items()) {
      if (key.size() < 4 || key.compare(key.size() - 3, 3, "_ns") != 0 || !value.is_number()) continue;
      const std::string part = key.substr(0, key.size() - 3);
      if (part == "start" || part == "total") continue;
      if (std::find(known.begin(), known.end(), part) == known.end() &&
          std::find(others.begin(), others.end(), part) == others.end())
        others.push_back(part);
    }
  std::sort(others.begin(), others.end());
  std::vector<std::string> parts = known;
  parts.insert(parts.end(), others.begin(), others.end());
  return parts;
}

// Mean time per part, per lane and operation, from invalidations.json; a lane without
// records there falls back to the means of its `driver.invalidation.<part>` histograms.
std::optional<Plot> breakdown_plot(const RunFolder& r) {
  json rows = json::array();
  std::vector<std::string> parts = {"software", "queueing", "fetch", "execution", "sync"};
  std::string note = "Mean time per invalidation in each phase; the phases add up to the end-to-end latency.";
  for (auto& lane : r.lanes) {
    const json* recs = r.invalidations.is_object() && r.invalidations.contains(lane.name) ? &r.invalidations[lane.name] : nullptr;
    if (recs && recs->is_array() && !recs->empty()) {
      parts = record_parts(*recs);
      std::map<std::string, std::pair<double, std::map<std::string, double>>> by_op;   // op -> (count, part -> sum)
      std::vector<std::string> ops;
      for (auto& rec : *recs) {
        const std::string op = rec.value("op", "invalidation");
        if (!by_op.count(op)) ops.push_back(op);
        auto& [n, sums] = by_op[op];
        n += 1;
        for (auto& p : parts) sums[p] += rec.value(p + "_ns", 0.0);
      }
      for (auto& op : ops) {
        auto& [n, sums] = by_op[op];
        for (size_t i = 0; i < parts.size(); ++i) {
          json row = lane_fields(lane);
          row["bar"] = lane.name + " " + op + " (" + format_number(n) + ")";
          row["part"] = parts[i];
          row["order"] = i;
          row["ns"] = sums[parts[i]] / n;
          rows.push_back(row);
        }
      }
      if (r.number(lane.name + ".driver.invalidation.records_dropped") > 0)
        note += " " + lane.name + ": over the records invalidations.json kept (driver.invalidation.records_dropped > 0).";
      continue;
    }
    const double n = r.number(lane.name + ".driver.invalidation.latency", "count");
    if (n == 0) continue;
    for (size_t i = 0; i < parts.size(); ++i) {
      json row = lane_fields(lane);
      row["bar"] = lane.name + " all (" + format_number(n) + ")";
      row["part"] = parts[i];
      row["order"] = i;
      row["ns"] = r.number(lane.name + ".driver.invalidation." + parts[i], "mean");
      rows.push_back(row);
    }
  }
  if (rows.empty()) return std::nullopt;
  json spec = vega_lite(rows);
  spec.erase("height");
  spec["mark"] = "bar";
  spec["encoding"] = {
      {"y", {{"field", "bar"}, {"type", "nominal"}, {"title", "lane, operation (invalidations)"}, {"sort", nullptr}}},
      {"x", {{"field", "ns"}, {"type", "quantitative"}, {"title", "mean latency (ns)"}, {"stack", "zero"}}},
      {"color", {{"field", "part"}, {"type", "nominal"}, {"title", "phase"},
                 {"scale", {{"domain", parts}, {"scheme", "set2"}}}}},
      {"order", {{"field", "order"}}},
      {"tooltip", {{{"field", "bar"}, {"title", "lane"}}, {{"field", "part"}}, {{"field", "ns"}, {"format", ".1f"}}}}};
  return Plot{"Invalidation latency breakdown", note, spec};
}

// Reads per walk: the share of walks that took each number of table reads.
std::optional<Plot> walk_reads_plot(const RunFolder& r, const LaneStyle& c) {
  json rows = json::array();
  for (auto& lane : r.lanes) {
    const json* h = r.stat(lane.name + ".iommu.walk_reads");
    if (!h || h->value("count", 0.0) == 0) continue;
    const double total = (*h)["count"].get<double>();
    for (auto& b : buckets_of(r, *h)) {
      json row = lane_fields(lane);
      row["reads"] = b[0];
      row["walks"] = b[2];
      row["fraction"] = b[2].get<double>() / total;
      rows.push_back(row);
    }
  }
  if (rows.empty()) return std::nullopt;
  json spec = vega_lite(rows);
  spec["mark"] = "bar";
  spec["encoding"] = {
      {"x", {{"field", "reads"}, {"type", "ordinal"}, {"title", "table reads per walk"}}},
      {"xOffset", {{"field", "lane"}}},
      {"y", {{"field", "fraction"}, {"type", "quantitative"}, {"title", "share of walks"}, {"axis", {{"format", "%"}}}}},
      {"tooltip", {{{"field", "lane"}}, {{"field", "reads"}}, {{"field", "walks"}}, {{"field", "fraction"}, {"format", ".1%"}}}}};
  c.apply(spec["encoding"]);
  spec["encoding"].erase("strokeDash");
  return Plot{"Table reads per walk", "Memory reads of one page walk (exact counts: the histogram is exact below 64).", spec};
}

std::optional<Plot> hit_rate_plot(const RunFolder& r, const LaneStyle& c) {
  json rows = json::array();
  std::vector<std::string> unused;
  const std::string suffix = ".hit_rate";
  for (auto& lane : r.lanes) {
    const std::string prefix = lane.name + ".iommu.";
    for (auto& [name, s] : r.by_name) {
      if (name.compare(0, prefix.size(), prefix) != 0 || name.size() <= prefix.size() + suffix.size() ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string cache = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
      const double lookups = r.number(prefix + cache + ".hits") + r.number(prefix + cache + ".misses");
      if (lookups == 0) { unused.push_back(lane.name + " " + cache); continue; }
      json row = lane_fields(lane);
      row["cache"] = cache;
      row["hit_rate"] = s["value"];
      row["lookups"] = lookups;
      rows.push_back(row);
    }
  }
  if (rows.empty()) return std::nullopt;
  // One panel per lane: the caches differ between vendors.
  json spec = vega_lite(rows);
  spec.erase("width");
  spec.erase("height");
  json bars = {{"width", 220}, {"mark", "bar"}};
  bars["encoding"] = {
      {"y", {{"field", "cache"}, {"type", "nominal"}, {"title", nullptr}, {"sort", nullptr}}},
      {"x", {{"field", "hit_rate"}, {"type", "quantitative"}, {"title", "hit rate (hits / lookups)"},
             {"scale", {{"domain", {0, 1}}}}, {"axis", {{"format", "%"}}}}},
      {"tooltip", {{{"field", "lane"}}, {{"field", "cache"}}, {{"field", "hit_rate"}, {"format", ".2%"}}, {{"field", "lookups"}}}}};
  c.apply(bars["encoding"]);
  bars["encoding"].erase("strokeDash");
  json order = json::array();
  for (auto& lane : r.lanes) order.push_back(lane.name);
  spec["facet"] = {{"field", "lane"}, {"type", "nominal"}, {"title", nullptr}, {"sort", order}};
  spec["columns"] = 3;
  spec["spec"] = bars;
  spec["resolve"] = {{"scale", {{"y", "independent"}}}};
  std::string note = "Each IOMMU cache's hits over lookups (the IOTLB, then configuration and walk caches).";
  if (!unused.empty()) {
    note += " Not looked up (left out):";
    for (auto& u : unused) note += " " + u + ",";
    note.back() = '.';
  }
  return Plot{"Cache hit rates", note, spec};
}

std::string config_text(const json& config, const std::string& dotted) {
  const json* at = &config;
  std::istringstream parts(dotted);
  for (std::string key; std::getline(parts, key, '.');) {
    if (!at->is_object() || !at->contains(key)) return "";
    at = &(*at)[key];
  }
  return at->is_string() ? at->get<std::string>() : at->dump();
}

Section overview(const RunFolder& r) {
  Section s;
  s.title = "Run";
  Table t;
  t.header = {"setting", "value"};
  for (const char* key : {"iommu.vendor", "iommu.translation", "sim.seed", "traffic.transactions",
                          "sim.warmup_transactions", "workload.mode"}) {
    const std::string v = config_text(r.config, key);
    if (!v.empty()) t.rows.push_back({key, v});
  }
  const bool ok = r.stats.value("ok", true);
  t.rows.push_back({"outcome", ok ? "completed" : "FAILED: " + r.stats.value("error", std::string())});
  s.tables.push_back(t);
  Table lanes;
  lanes.header = {"lane", "vendor", "path", "DMAs counted", "simulated time (us)", "warm-up ended at (us)"};
  for (auto& l : r.lanes) {
    const json* warm = r.stat(l.name + ".run.warmup_end");
    lanes.rows.push_back({l.name, l.vendor, l.path, format_number(r.number(l.name + ".endpoint.transactions")),
                          format_number(r.number(l.name + ".run.simulated_traffic_time") / 1000.0),
                          warm ? format_number((*warm)["value"].get<double>() / 1000.0) : "no warm-up"});
  }
  s.tables.push_back(lanes);
  s.text = "Figures count from the end of each lane's warm-up (sim.warmup_transactions) when there was one; the "
           "oracle's counts cover every DMA. Percentiles come from log-linear histograms, exact below 64 units and "
           "otherwise within a bucket 1/32 of a power of two wide.";
  s.preformatted = r.summary;
  return s;
}

Section oracle(const RunFolder& r) {
  Section s;
  s.title = "Correctness oracle";
  Table t;
  t.header = {"lane", "DMAs checked", "permitted stale", "violations"};
  double violations = 0;
  bool any = false;
  for (auto& l : r.lanes) {
    if (!r.stat(l.name + ".oracle.checked")) { t.rows.push_back({l.name, "off", "-", "-"}); continue; }
    any = true;
    violations += r.number(l.name + ".oracle.violations");
    t.rows.push_back({l.name, format_number(r.number(l.name + ".oracle.checked")),
                      format_number(r.number(l.name + ".oracle.permitted_stale")),
                      format_number(r.number(l.name + ".oracle.violations"))});
  }
  s.tables.push_back(t);
  if (!any) s.text = "The oracle was off (sim.oracle = false).";
  else if (violations == 0) s.text = "Every DMA was checked against the driver's mappings: no violations.";
  else s.text = format_number(violations) + " violation(s): the first ones, from violations.json, below.";
  if (r.violations.is_object() && r.violations.contains("first") && !r.violations["first"].empty()) {
    Table first;
    first.header = {"violation"};
    for (auto& v : r.violations["first"]) first.rows.push_back({v.dump()});
    s.tables.push_back(first);
  }
  return s;
}

template <class T>
void add(Section& s, std::optional<T> p) {
  if (p) s.plots.push_back(std::move(*p));
}

}  // namespace

Page run_page(const std::string& dir) {
  const RunFolder r = read_run(dir);
  const LaneStyle c(r.lanes);
  Page page;
  page.title = "iommusim run report";
  page.subtitle = dir;
  page.sections.push_back(overview(r));

  Section inv;
  inv.title = "Invalidations";
  add(inv, cdf_plot(r, c, "driver.invalidation.latency", "invalidation latency", "Invalidation latency (CDF)",
                    "End-to-end invalidation latency as the driver saw it, per lane (vendor and invalidation path)."));
  add(inv, breakdown_plot(r));
  if (inv.plots.empty()) inv.text = "No invalidations in this run.";
  page.sections.push_back(inv);

  Section walks;
  walks.title = "Page walks";
  add(walks, walk_reads_plot(r, c));
  add(walks, cdf_plot(r, c, "iommu.walk_latency", "walk latency", "Walk latency (CDF)", "Time of one page walk, per lane."));
  if (walks.plots.empty()) walks.text = "No page walks in this run.";
  page.sections.push_back(walks);

  Section dma;
  dma.title = "DMAs and caches";
  add(dma, cdf_plot(r, c, "endpoint.latency", "DMA latency", "DMA latency (CDF)", "Time from issue to completion of each DMA."));
  add(dma, hit_rate_plot(r, c));
  page.sections.push_back(dma);

  page.sections.push_back(oracle(r));
  return page;
}

}  // namespace iommusim::app::report

// The report of a sweep folder (docs/sweep.md): every stat of results.csv against every
// swept key, one line per vendor (dashed per invalidation path), with the 95% interval
// across replicate seeds as error bars. With several swept keys, the other keys' values
// split a plot into panels (or, past kMaxPanels combinations, a menu picks one).
//
// Only the folder layout is read here: sweep.json's "keys" (column order) and "points",
// and results.csv's columns <key>..., vendor, path, replicates, <stat>, <stat>.ci95_lo,
// <stat>.ci95_hi.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "apps/iommusim/report_page.h"

namespace iommusim::app::report {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxPanels = 12;

// RFC 4180: fields separated by commas, quoted when they hold a comma, quote or newline.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& file) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (ch == '"') quoted = false;
      else field += ch;
    } else if (ch == '"') {
      quoted = true;
      any = true;
    } else if (ch == ',') {
      row.push_back(std::move(field)), field.clear();
      any = true;
    } else if (ch == '\n' || ch == '\r') {
      if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) row.push_back(std::move(field));
      if (!row.empty()) rows.push_back(std::move(row));
      row.clear(), field.clear(), any = false;
    } else {
      field += ch;
    }
  }
  if (quoted) throw ReportError(file + ": a quoted field is not closed");
  if (any || !field.empty()) row.push_back(std::move(field));
  if (!row.empty()) rows.push_back(std::move(row));
  return rows;
}

// A CSV cell as JSON: a number when it reads as one, null when empty, else the text.
json cell(const std::string& text) {
  if (text.empty()) return nullptr;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() + text.size() && std::isfinite(v)) return v;
  return text;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string shown(const json& v) { return v.is_string() ? v.get<std::string>() : v.is_number() ? format_number(v.get<double>()) : ""; }

struct Sweep {
  std::string dir;
  json manifest;
  std::vector<std::string> keys, stats;
  std::vector<std::string> header;
  std::vector<std::vector<json>> rows;   // cells by column
  Lane lane(const std::vector<json>& row) const { return make_lane(shown(row[col("vendor")]), shown(row[col("path")])); }
  size_t col(const std::string& name) const {
    return size_t(std::find(header.begin(), header.end(), name) - header.begin());
  }
};

Sweep read_sweep(const std::string& dir) {
  Sweep s;
  s.dir = dir;
  s.manifest = read_json_file((fs::path(dir) / "sweep.json").string());
  if (!s.manifest.is_object() || !s.manifest.contains("keys") || !s.manifest["keys"].is_array())
    throw ReportError(dir + "/sweep.json: no \"keys\" list (not a sweep manifest?)");
  for (auto& k : s.manifest["keys"]) s.keys.push_back(k.get<std::string>());
  const fs::path csv = fs::path(dir) / "results.csv";
  std::ifstream in(csv);
  if (!in) throw ReportError(dir + ": no results.csv yet (iommusim sweep SPEC --merge writes it)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto table = parse_csv(ss.str(), csv.string());
  if (table.empty()) throw ReportError(csv.string() + ": empty");
  s.header = table[0];
  for (const std::string need : {"vendor", "path"})
    if (s.col(need) == s.header.size()) throw ReportError(csv.string() + ": no " + need + " column");
  for (auto& k : s.keys)
    if (s.col(k) == s.header.size()) throw ReportError(csv.string() + ": no column for the swept key " + k);
  for (auto& h : s.header) {
    const bool is_key = std::find(s.keys.begin(), s.keys.end(), h) != s.keys.end();
    if (!is_key && h != "vendor" && h != "path" && h != "replicates" && !ends_with(h, ".ci95_lo") && !ends_with(h, ".ci95_hi"))
      s.stats.push_back(h);
  }
  for (size_t i = 1; i < table.size(); ++i) {
    if (table[i].size() != s.header.size())
      throw ReportError(csv.string() + ": line " + std::to_string(i + 1) + " has " + std::to_string(table[i].size()) +
                        " fields, the header " + std::to_string(s.header.size()));
    std::vector<json> cells;
    for (auto& c : table[i]) cells.push_back(cell(c));
    s.rows.push_back(std::move(cells));
  }
  return s;
}

// stat against key: one row per CSV row, the other swept keys folded into a panel label.
Plot stat_against_key(const Sweep& s, const std::string& stat, const std::string& key, const LaneStyle& c) {
  const size_t kc = s.col(key), mc = s.col(stat), lo = s.col(stat + ".ci95_lo"), hi = s.col(stat + ".ci95_hi"),
               nc = s.col("replicates");
  json rows = json::array();
  std::vector<std::string> panels;
  bool numeric = true, positive = true;
  double smallest = HUGE_VAL, largest = -HUGE_VAL;
  for (auto& r : s.rows) {
    if (r[mc].is_null()) continue;
    std::string panel;
    for (auto& other : s.keys)
      if (other != key) panel += (panel.empty() ? "" : ", ") + other + " = " + shown(r[s.col(other)]);
    if (std::find(panels.begin(), panels.end(), panel) == panels.end()) panels.push_back(panel);
    const Lane lane = s.lane(r);
    json row = {{"lane", lane.name}, {"vendor", lane.vendor}, {"path", lane.path}, {"x", r[kc]}, {"panel", panel},
                {"mean", r[mc]}, {"lo", lo < r.size() ? r[lo] : json()}, {"hi", hi < r.size() ? r[hi] : json()},
                {"replicates", nc < r.size() ? r[nc] : json()}};
    rows.push_back(row);
    if (!r[kc].is_number()) { numeric = false; continue; }
    const double x = r[kc].get<double>();
    positive = positive && x > 0;
    smallest = std::min(smallest, x);
    largest = std::max(largest, x);
  }
  json x = {{"field", "x"}, {"type", numeric ? "quantitative" : "ordinal"}, {"title", key}};
  // Ranges made with a factor (powers of two, decades) read best on a log axis.
  if (numeric && positive && largest / smallest >= 10) x["scale"] = {{"type", "log"}};
  else if (numeric) x["scale"] = {{"zero", false}};
  const json y = {{"field", "mean"}, {"type", "quantitative"}, {"title", stat}, {"scale", {{"zero", false}}}};
  json line = {{"mark", {{"type", "line"}, {"point", true}}},
               {"encoding", {{"x", x}, {"y", y}, {"detail", {{"field", "lane"}}},
                             {"tooltip", {{{"field", "lane"}}, {{"field", "x"}, {"title", key}}, {{"field", "mean"}, {"title", stat}},
                                          {{"field", "lo"}, {"title", "95% low"}}, {{"field", "hi"}, {"title", "95% high"}},
                                          {{"field", "replicates"}}}}}}};
  json bars = {{"transform", {{{"filter", "isValid(datum.lo) && isValid(datum.hi)"}}}},
               {"mark", {{"type", "rule"}}},
               {"encoding", {{"x", x}, {"y", {{"field", "lo"}, {"type", "quantitative"}}}, {"y2", {{"field", "hi"}}},
                             {"detail", {{"field", "lane"}}}}}};
  c.apply(line["encoding"]);
  c.apply(bars["encoding"]);
  json layer = {{"layer", {line, bars}}};

  json spec;
  std::string note = "Mean across the replicate seeds, with the 95% interval of that mean (shown where two or more "
                     "seeds finished).";
  if (panels.size() <= 1) {
    spec = vega_lite(rows, 480, 240);
    spec.update(layer);
  } else if (panels.size() <= kMaxPanels) {
    spec = vega_lite(rows);
    spec.erase("width");
    spec.erase("height");
    spec["facet"] = {{"field", "panel"}, {"type", "nominal"}, {"title", nullptr}, {"sort", panels}};
    spec["columns"] = 3;
    spec["spec"] = layer;
    spec["spec"]["width"] = 300;
    spec["spec"]["height"] = 180;
    spec["resolve"] = {{"scale", {{"y", "shared"}}}};
    note += " One panel per value of the other swept keys.";
  } else {
    spec = vega_lite(rows, 480, 240);
    spec["params"] = {{{"name", "panel"}, {"value", panels.front()},
                       {"bind", {{"input", "select"}, {"options", panels}, {"name", "other swept keys: "}}}}};
    spec["transform"] = {{{"filter", "datum.panel == panel"}}};
    spec.update(layer);
    note += " The menu picks the values of the other swept keys.";
  }
  return Plot{stat + " against " + key, note, spec};
}

Section overview(const Sweep& s) {
  Section sec;
  sec.title = "Sweep";
  sec.text = s.manifest.value("about", std::string());
  Table t;
  t.header = {"", ""};
  t.rows.push_back({"spec", s.manifest.value("spec", std::string())});
  t.rows.push_back({"base config", s.manifest.value("base", std::string()).empty() ? "the embedded default"
                                                                                   : s.manifest.value("base", std::string())});
  std::string keys;
  for (auto& k : s.keys) keys += (keys.empty() ? "" : ", ") + k;
  t.rows.push_back({"swept keys", keys});
  if (s.manifest.contains("seeds")) t.rows.push_back({"replicate seeds", s.manifest["seeds"].dump()});
  if (s.manifest.contains("points") && s.manifest["points"].is_array()) {
    size_t done = 0, failed = 0;
    for (auto& p : s.manifest["points"]) {
      const fs::path d = fs::path(s.dir) / p.value("dir", std::string());
      done += fs::exists(d / "done.json");
      failed += fs::exists(d / "failed.json") && !fs::exists(d / "done.json");
    }
    t.rows.push_back({"points", std::to_string(s.manifest["points"].size()) + " (" + std::to_string(done) + " done, " +
                                    std::to_string(failed) + " failed)"});
  }
  t.rows.push_back({"results.csv rows", std::to_string(s.rows.size())});
  sec.tables.push_back(t);
  return sec;
}

}  // namespace

Page sweep_page(const std::string& dir) {
  const Sweep s = read_sweep(dir);
  std::vector<Lane> lanes;
  for (auto& r : s.rows) lanes.push_back(s.lane(r));
  const LaneStyle c(lanes);
  Page page;
  page.title = "iommusim sweep report";
  page.subtitle = dir;
  page.sections.push_back(overview(s));
  for (auto& stat : s.stats) {
    Section sec;
    sec.title = stat;
    for (auto& key : s.keys) sec.plots.push_back(stat_against_key(s, stat, key, c));
    page.sections.push_back(std::move(sec));
  }
  if (s.stats.empty()) page.sections.back().text += " results.csv has no stat columns.";
  return page;
}

}  // namespace iommusim::app::report

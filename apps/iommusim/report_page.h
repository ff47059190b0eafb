// What `iommusim report` puts on a page, independent of how it is drawn: sections of plots
// (Vega-Lite specs with their data inline), tables and text, built from a run folder
// (report_run.cpp) or a sweep folder (report_sweep.cpp), and rendered to one
// self-contained HTML file (report.cpp).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace iommusim::app::report {

// A folder or file that is not what a report needs (exit status 2).
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Plot {
  std::string title, note;
  nlohmann::json spec;   // a Vega-Lite spec, its data inline
};

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct Section {
  std::string title, text;
  std::vector<Table> tables;
  std::vector<Plot> plots;
  std::string preformatted;   // shown folded (a run's summary.txt)
};

struct Page {
  std::string title, subtitle;
  std::vector<Section> sections;
};

// The lane a stat belongs to: `<vendor>[@<path>].<block>.<stat>` (docs/sweep.md); a name
// without @path is on the native path.
struct Lane {
  std::string name, vendor, path;
};
Lane lane_of(const std::string& stat_name);
Lane make_lane(const std::string& vendor, const std::string& path);   // path "" or "native": native

// Pages for a run folder (stats.json, ...) and a sweep folder (sweep.json, results.csv).
Page run_page(const std::string& dir);
Page sweep_page(const std::string& dir);

// Helpers shared by both pages.
nlohmann::json read_json_file(const std::string& path);   // throws ReportError naming the file
std::string format_number(double v);                       // short, for tables
// The Vega-Lite spec skeleton every plot starts from: schema, size and inline rows.
nlohmann::json vega_lite(nlohmann::json rows, int width = 560, int height = 260);
// Colour by vendor, the same colour per vendor in every plot of a page, and, when the
// lanes take more than one invalidation path, a dash per path.
struct LaneStyle {
  std::vector<std::string> vendors, paths;   // each once, in the order the lanes come
  explicit LaneStyle(const std::vector<Lane>& lanes);
  void apply(nlohmann::json& encoding) const;   // sets color (and strokeDash)
};

}  // namespace iommusim::app::report

// `iommusim report DIR [-o FILE.html] [--vega-dir DIR]`: a self-contained HTML report of a
// run folder or a sweep folder (docs/report.md). The plots are Vega-Lite specs drawn by
// vega-embed; the three libraries (npm packages vega, vega-lite, vega-embed, installed by
// scripts/install-deps.sh) are inlined into the page, so it opens offline.
// Exit status: 0 written, 1 the plotting library is missing or the file cannot be written,
// 2 bad input (not a run or sweep folder, malformed files, usage).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/iommusim/report_page.h"

namespace iommusim::app {

namespace report {

// The browser bundles the page inlines, read from a node_modules folder.
struct PlotLibrary {
  std::string dir;
  std::vector<std::pair<std::string, std::string>> scripts;   // (package@version, code), in load order
};

// Thrown when the bundles are not where the report looks; its message says how to get them.
class LibraryMissing : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The node_modules folder to use: `given` if not empty, else $IOMMUSIM_VEGA_DIR, else the
// one configured at build time (third_party/vega/node_modules of the source tree).
std::string plot_library_dir(const std::string& given);
PlotLibrary load_plot_library(const std::string& dir);

// The whole page: styles, the libraries, the sections, and a script that draws every plot
// and sets #report-status to data-status="ok" once all are drawn (or "error", saying why).
std::string render_html(const Page& page, const PlotLibrary& library);

// A run folder holds stats.json, a sweep folder sweep.json; anything else is a ReportError.
Page page_for(const std::string& dir);

}  // namespace report

class ReportCommand {
 public:
  explicit ReportCommand(CLI::App& app);
  bool chosen() const { return sub_->parsed(); }
  int exec() const;

 private:
  CLI::App* sub_;
  std::string dir_, out_, vega_dir_;
};

}  // namespace iommusim::app

#include "apps/iommusim/report.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace iommusim::app {
namespace report {

using nlohmann::json;
namespace fs = std::filesystem;

std::string plot_library_dir(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("IOMMUSIM_VEGA_DIR"); env && *env) return env;
  return IOMMUSIM_VEGA_DIR;
}

PlotLibrary load_plot_library(const std::string& dir) {
  // The UMD bundles, which define the globals vega, vegaLite and vegaEmbed in this order.
  static const std::pair<const char*, const char*> bundles[] = {
      {"vega", "build/vega.min.js"}, {"vega-lite", "build/vega-lite.min.js"}, {"vega-embed", "build/vega-embed.min.js"}};
  PlotLibrary lib;
  lib.dir = dir;
  for (auto& [package, file] : bundles) {
    const fs::path path = fs::path(dir) / package / file;
    std::ifstream in(path);
    if (!in)
      throw LibraryMissing("the plotting library is missing: " + path.string() +
                           " not found.\n  iommusim report inlines Vega-Lite (the npm packages vega, vega-lite and "
                           "vega-embed) into its pages.\n  Run scripts/install-deps.sh, which installs them into "
                           "third_party/vega/node_modules, or point --vega-dir (or IOMMUSIM_VEGA_DIR) at a "
                           "node_modules folder that holds them.");
    std::stringstream code;
    code << in.rdbuf();
    std::string version = "?";
    try {
      version = json::parse(std::ifstream(fs::path(dir) / package / "package.json")).value("version", "?");
    } catch (const json::exception&) {
    }
    lib.scripts.emplace_back(std::string(package) + "@" + version, code.str());
  }
  return lib;
}

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Text inside <script> must not close it. In JSON, "</" can only be inside a string, where
// "<\/" means the same.
std::string json_in_script(const std::string& text) {
  std::string out = text;
  for (size_t at = out.find("</"); at != std::string::npos; at = out.find("</", at + 3)) out.replace(at, 2, "<\\/");
  return out;
}
// In code, only "</script" closes the element; "<\/script" means the same in a string or a
// regular expression (the bundles hold none today).
std::string code_in_script(const std::string& code) {
  std::string out = code, lower = code;
  for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (size_t at = lower.rfind("</script"); at != std::string::npos; at = at ? lower.rfind("</script", at - 1) : std::string::npos)
    out.insert(at + 1, "\\");
  return out;
}

const char* kStyle = R"(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0; } .subtitle { color: #666; margin-top: .2em; font-family: monospace; }
section { margin-top: 2em; border-top: 1px solid #ddd; }
figure { margin: 1.5em 0; } figcaption { color: #555; max-width: 60em; margin-top: .3em; }
figure h3 { margin: 0 0 .3em; font-size: 1.05em; }
table { border-collapse: collapse; margin: .8em 0; } td, th { border: 1px solid #ddd; padding: .2em .6em; text-align: left; }
th { background: #f4f4f4; } pre { background: #f8f8f8; padding: 1em; overflow-x: auto; }
.status { padding: .5em 1em; border-radius: 4px; margin: 1em 0; }
.status.loading { background: #eef; } .status.ok { background: #efe; } .status.error { background: #fdd; font-weight: bold; white-space: pre-wrap; }
.plot-error { color: #a00; font-weight: bold; }
)";

// Draws every plot; the status line tells the reader (and the browser test) how it went.
const char* kDrawScript = R"(
(function () {
  "use strict";
  const status = document.getElementById("report-status");
  const problems = window.iommusimReport.errors;
  const logger = {
    _level: 2,
    level(l) { if (l === undefined) return this._level; this._level = l; return this; },
    error(...a) { problems.push("error: " + a.join(" ")); return this; },
    warn(...a) { problems.push("warning: " + a.join(" ")); return this; },
    info() { return this; }, debug() { return this; }
  };
  const finish = (drawn, total) => {
    status.dataset.plots = String(total);
    status.dataset.drawn = String(drawn);
    if (drawn === total && problems.length === 0) {
      status.dataset.status = "ok";
      status.className = "status ok";
      status.textContent = total + " plots drawn.";
    } else {
      status.dataset.status = "error";
      status.className = "status error";
      status.textContent = (total - drawn) + " of " + total + " plots failed.\n" + problems.join("\n");
    }
  };
  const plots = JSON.parse(document.getElementById("report-plots").textContent);
  if (typeof vegaEmbed !== "function") {
    problems.unshift("The plotting library (vega-embed) did not load, so no plot can be drawn.");
    finish(0, plots.length);
    return;
  }
  const options = { renderer: "svg", logger: logger,
                    actions: { export: true, source: false, compiled: false, editor: false } };
  Promise.allSettled(plots.map(function (p) {
    const el = document.getElementById(p.id);
    return vegaEmbed(el, p.spec, options).then(function () { el.dataset.drawn = "yes"; }, function (err) {
      el.dataset.drawn = "no";
      el.innerHTML = "";
      const msg = document.createElement("p");
      msg.className = "plot-error";
      msg.textContent = "This plot could not be drawn: " + err;
      el.appendChild(msg);
      problems.push(p.title + ": " + err);
      throw err;
    });
  })).then(function (results) {
    finish(results.filter(function (r) { return r.status === "fulfilled"; }).length, plots.length);
  });
})();
)";

void write_table(std::ostringstream& o, const Table& t) {
  o << "<table>";
  bool header = false;
  for (auto& h : t.header) header |= !h.empty();
  if (header) {
    o << "<tr>";
    for (auto& h : t.header) o << "<th>" << escape(h) << "</th>";
    o << "</tr>";
  }
  for (auto& row : t.rows) {
    o << "<tr>";
    for (auto& cell : row) o << "<td>" << escape(cell) << "</td>";
    o << "</tr>";
  }
  o << "</table>\n";
}

}  // namespace

std::string render_html(const Page& page, const PlotLibrary& library) {
  std::ostringstream o;
  json plots = json::array();
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << escape(page.title) << ": "
    << escape(page.subtitle) << "</title>\n<style>" << kStyle << "</style>\n"
    // Collects errors from here on, the libraries' own included.
    << "<script>window.iommusimReport = { errors: [] };\n"
       "window.addEventListener(\"error\", function (e) { window.iommusimReport.errors.push(String(e.message)); });\n"
       "window.addEventListener(\"unhandledrejection\", function (e) { window.iommusimReport.errors.push(String(e.reason)); });\n"
       "</script>\n";
  for (auto& [name, code] : library.scripts) o << "<script>/* " << name << " */\n" << code_in_script(code) << "\n</script>\n";
  o << "</head>\n<body>\n<h1>" << escape(page.title) << "</h1>\n<p class=\"subtitle\">" << escape(page.subtitle) << "</p>\n"
    << "<div id=\"report-status\" class=\"status loading\" data-status=\"loading\">Drawing the plots... (this needs "
       "JavaScript)</div>\n";
  for (auto& s : page.sections) {
    o << "<section>\n<h2>" << escape(s.title) << "</h2>\n";
    if (!s.text.empty()) o << "<p>" << escape(s.text) << "</p>\n";
    for (auto& t : s.tables) write_table(o, t);
    for (auto& p : s.plots) {
      const std::string id = "plot-" + std::to_string(plots.size());
      o << "<figure>\n<h3>" << escape(p.title) << "</h3>\n<div class=\"plot\" id=\"" << id << "\"></div>\n";
      if (!p.note.empty()) o << "<figcaption>" << escape(p.note) << "</figcaption>\n";
      o << "</figure>\n";
      plots.push_back({{"id", id}, {"title", p.title}, {"spec", p.spec}});
    }
    if (!s.preformatted.empty())
      o << "<details><summary>summary.txt</summary><pre>" << escape(s.preformatted) << "</pre></details>\n";
    o << "</section>\n";
  }
  std::string made_with;
  for (auto& [name, code] : library.scripts) made_with += (made_with.empty() ? "" : ", ") + name;
  o << "<footer><p>Drawn with " << escape(made_with) << ", inlined in this file.</p></footer>\n"
    << "<script type=\"application/json\" id=\"report-plots\">" << json_in_script(plots.dump()) << "</script>\n"
    << "<script>" << kDrawScript << "</script>\n</body>\n</html>\n";
  return o.str();
}

Page page_for(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw ReportError(dir + ": no such folder");
  if (fs::exists(fs::path(dir) / "sweep.json", ec)) return sweep_page(dir);
  if (fs::exists(fs::path(dir) / "stats.json", ec)) return run_page(dir);
  throw ReportError(dir + ": neither a run folder (stats.json) nor a sweep folder (sweep.json)");
}

}  // namespace report

ReportCommand::ReportCommand(CLI::App& app) {
  sub_ = app.add_subcommand("report", "write a self-contained HTML report of a run or sweep folder (docs/report.md)");
  sub_->add_option("dir", dir_, "run folder (stats.json) or sweep folder (sweep.json)")->required();
  sub_->add_option("-o,--out", out_, "the HTML file to write (default: DIR/report.html)");
  sub_->add_option("--vega-dir", vega_dir_,
                   "node_modules folder holding vega, vega-lite and vega-embed (default: $IOMMUSIM_VEGA_DIR, else "
                   "the one scripts/install-deps.sh fills)");
}

int ReportCommand::exec() const {
  const std::string out = out_.empty() ? (std::filesystem::path(dir_) / "report.html").string() : out_;
  try {
    const report::Page page = report::page_for(dir_);
    const report::PlotLibrary library = report::load_plot_library(report::plot_library_dir(vega_dir_));
    const std::string html = report::render_html(page, library);
    std::ofstream file(out, std::ios::binary);
    file << html;
    file.close();
    if (!file) {
      std::cerr << "iommusim report: cannot write " << out << "\n";
      return 1;
    }
    size_t plots = 0;
    for (auto& s : page.sections) plots += s.plots.size();
    std::cout << "iommusim report: wrote " << out << " (" << plots << " plots, " << (html.size() + 1023) / 1024
              << " KiB; opens offline)\n";
    return 0;
  } catch (const report::LibraryMissing& e) {
    std::cerr << "iommusim report: " << e.what() << "\n";
    return 1;
  } catch (const report::ReportError& e) {
    std::cerr << "iommusim report: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace iommusim::app

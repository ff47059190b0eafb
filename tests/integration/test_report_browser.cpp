// Draws reports in headless Chromium (Debian's package, found at configure time) with the
// real plotting library, and checks the page as it stands once the scripts ran: no script
// error or Vega warning, and every plot drawn as an SVG. ctest label `browser`.
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/report_folders.h"
#include "tests/support/run_cli.h"

namespace {
namespace fs = std::filesystem;
using namespace iommusim::test;

// The DOM after the page's scripts ran (a virtual-time budget lets every promise settle).
std::string rendered_dom(const fs::path& html, const std::string& name) {
  const std::string chromium = IOMMUSIM_CHROMIUM;
  if (chromium.empty() || chromium.find("NOTFOUND") != std::string::npos) {
    ADD_FAILURE() << "chromium not found at configure time: scripts/install-deps.sh installs Debian's chromium";
    return "";
  }
  const fs::path profile = fs::path(::testing::TempDir()) / ("chromium_profile_" + name);
  const std::string cmd = chromium + " --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions"
                          " --disable-background-networking --user-data-dir=" + profile.string() +
                          " --virtual-time-budget=60000 --dump-dom file://" + fs::absolute(html).string() + " 2>/dev/null";
  std::string dom;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return dom;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) dom.append(buf, n);
  pclose(p);
  return dom;
}

// The report's status line: data-status, data-plots and data-drawn, and its text.
struct Status { std::string status, text; int plots = -1, drawn = -1; };
Status status_of(const std::string& dom) {
  Status s;
  std::smatch m;
  const std::regex div("<div id=\"report-status\"([^>]*)>([^<]*)");
  if (!std::regex_search(dom, m, div)) return s;
  const std::string attrs = m[1];
  s.text = m[2];
  std::smatch a;
  if (std::regex_search(attrs, a, std::regex("data-status=\"([a-z]+)\""))) s.status = a[1];
  if (std::regex_search(attrs, a, std::regex("data-plots=\"([0-9]+)\""))) s.plots = std::stoi(a[1]);
  if (std::regex_search(attrs, a, std::regex("data-drawn=\"([0-9]+)\""))) s.drawn = std::stoi(a[1]);
  return s;
}

// Every plot container holds a drawn SVG with data marks: from id="plot-N" to the next one.
void expect_every_plot_drawn(const std::string& dom, size_t plots) {
  for (size_t i = 0; i < plots; ++i) {
    const size_t at = dom.find("id=\"plot-" + std::to_string(i) + "\"");
    ASSERT_NE(at, std::string::npos) << "plot-" << i;
    const size_t next = dom.find("id=\"plot-" + std::to_string(i + 1) + "\"");
    const std::string chunk = dom.substr(at, next == std::string::npos ? std::string::npos : next - at);
    EXPECT_NE(chunk.find("data-drawn=\"yes\""), std::string::npos) << "plot-" << i;
    EXPECT_NE(chunk.find("<svg"), std::string::npos) << "plot-" << i << " has no SVG";
    // A data mark group with something in it (an empty plot has the group, empty).
    EXPECT_TRUE(std::regex_search(chunk, std::regex("role-mark[^\"]*\"[^>]*><(path|line|rect|g)")))
        << "plot-" << i << " draws no data";
  }
}

void expect_report_draws(const fs::path& dir, const std::string& name) {
  const fs::path out = fs::path(::testing::TempDir()) / (name + ".html");
  const CliRun r = run_cli("report " + dir.string() + " -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const size_t plots = plots_in(read_file(out)).size();
  ASSERT_GT(plots, 0u);
  const std::string dom = rendered_dom(out, name);
  ASSERT_FALSE(dom.empty());
  const Status s = status_of(dom);
  EXPECT_EQ(s.status, "ok") << s.text;
  EXPECT_EQ(s.plots, int(plots));
  EXPECT_EQ(s.drawn, int(plots)) << s.text;
  expect_every_plot_drawn(dom, plots);
}

// A real run of every vendor, with a warm-up.
TEST(Browser, RunReportDrawsEveryPlot) {
  const fs::path dir = fs::path(::testing::TempDir()) / "browser_run";
  const CliRun run = run_cli("run --force -o " + dir.string() +
                             " -p traffic.transactions=3000 -p sim.warmup_transactions=1000");
  ASSERT_EQ(run.exit_code, 0) << run.out;
  expect_report_draws(dir, "browser_run");
}

// The hand-made run folder: a trapped path (dashed lines) and a new phase.
TEST(Browser, RunReportWithPathsDrawsEveryPlot) {
  const fs::path dir = fs::path(::testing::TempDir()) / "browser_paths";
  fs::remove_all(dir);
  make_run_folder(dir);
  expect_report_draws(dir, "browser_paths");
}

TEST(Browser, SweepReportDrawsEveryPlot) {
  const fs::path dir = fs::path(::testing::TempDir()) / "browser_sweep";
  fs::remove_all(dir);
  make_sweep_folder(dir);
  expect_report_draws(dir, "browser_sweep");
}

// The check can fail: a library that throws leaves the page in error, saying so.
TEST(Browser, ABrokenLibraryShowsAsAnError) {
  const fs::path dir = fs::path(::testing::TempDir()) / "browser_broken";
  fs::remove_all(dir);
  make_run_folder(dir);
  const fs::path lib = fs::path(::testing::TempDir()) / "browser_broken_lib";
  make_fake_library(lib, "throw new Error('bundle broken');");
  const fs::path out = dir / "report.html";
  ASSERT_EQ(run_cli("report " + dir.string() + " --vega-dir " + lib.string()).exit_code, 0);
  const Status s = status_of(rendered_dom(out, "browser_broken"));
  EXPECT_EQ(s.status, "error");
  EXPECT_EQ(s.drawn, 0);
  EXPECT_NE(s.text.find("did not load"), std::string::npos) << s.text;
  EXPECT_NE(s.text.find("bundle broken"), std::string::npos) << s.text;
}

}  // namespace

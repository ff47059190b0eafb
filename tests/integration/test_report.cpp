// `iommusim report` as a user runs it, on folders built by hand (tests/support/
// report_folders.h), with a stand-in plotting library: what the plots hold, worked out from
// the folders' figures, and the errors. tests/integration/test_report_browser.cpp draws
// real reports in Chromium.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/report_folders.h"
#include "tests/support/run_cli.h"

namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace iommusim::test;

struct Report {
  CliRun cli;
  std::string html;
  json plots;
};

Report report(const fs::path& dir, const std::string& name) {
  const fs::path lib = fs::path(::testing::TempDir()) / "report_fake_lib";
  make_fake_library(lib, "/* stand-in */");
  const fs::path out = fs::path(::testing::TempDir()) / (name + ".html");
  Report r{run_cli("report " + dir.string() + " -o " + out.string() + " --vega-dir " + lib.string()), "", nullptr};
  r.html = read_file(out);
  r.plots = plots_in(r.html);
  return r;
}

const json& plot(const Report& r, const std::string& title) {
  for (auto& p : r.plots)
    if (p["title"] == title) return p["spec"];
  ADD_FAILURE() << "no plot " << title;
  static const json none;
  return none;
}

json rows_of(const json& spec, const std::string& lane) {
  json out = json::array();
  for (auto& row : spec["data"]["values"])
    if (row["lane"] == lane) out.push_back(row);
  return out;
}

fs::path run_folder(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  make_run_folder(dir);
  return dir;
}

// The CDF rises from 0 at the first bucket's lower edge to the share of samples at or
// below each bucket's upper edge: native 2 of 4 by 1016 ns, all 4 by 1056.
TEST(Report, InvalidationCdfFromTheBuckets) {
  const Report r = report(run_folder("report_run_cdf"), "cdf");
  ASSERT_EQ(r.cli.exit_code, 0) << r.cli.out;
  const json& spec = plot(r, "Invalidation latency (CDF)");
  const json native = rows_of(spec, "smmuv3");
  ASSERT_EQ(native.size(), 3u);
  EXPECT_EQ(native[0]["x"], 1000);
  EXPECT_EQ(native[0]["fraction"], 0.0);
  EXPECT_EQ(native[1]["x"], 1016);
  EXPECT_EQ(native[1]["fraction"], 0.5);
  EXPECT_EQ(native[2]["x"], 1056);
  EXPECT_EQ(native[2]["fraction"], 1.0);
  // The trapped lane is its own line: vendor smmuv3, path trapped, and paths are dashed.
  const json trapped = rows_of(spec, "smmuv3@trapped");
  ASSERT_EQ(trapped.size(), 2u);
  EXPECT_EQ(trapped[0]["vendor"], "smmuv3");
  EXPECT_EQ(trapped[0]["path"], "trapped");
  EXPECT_EQ(trapped[1]["x"], 5120);
  EXPECT_EQ(spec["encoding"]["strokeDash"]["field"], "path");
  EXPECT_EQ(spec["encoding"]["color"]["scale"]["domain"], json({"smmuv3"}));
}

// Means per operation: unmap software (100 + 300) / 2 = 200 ns, sync (70 + 90) / 2 = 80 ns;
// the domain flush's "atc" phase is stacked after the five known ones, and unmaps, which
// have none, get 0 there.
TEST(Report, BreakdownMeansPerOperationAndNewPhases) {
  const Report r = report(run_folder("report_run_breakdown"), "breakdown");
  ASSERT_EQ(r.cli.exit_code, 0) << r.cli.out;
  const json& spec = plot(r, "Invalidation latency breakdown");
  auto ns = [&](const std::string& bar, const std::string& part) {
    for (auto& row : spec["data"]["values"])
      if (row["bar"] == bar && row["part"] == part) return row["ns"].get<double>();
    ADD_FAILURE() << bar << " " << part;
    return -1.0;
  };
  EXPECT_EQ(ns("smmuv3 unmap (2)", "software"), 200);
  EXPECT_EQ(ns("smmuv3 unmap (2)", "sync"), 80);
  EXPECT_EQ(ns("smmuv3 unmap (2)", "atc"), 0);
  EXPECT_EQ(ns("smmuv3 invalidate_domain (1)", "atc"), 40);
  EXPECT_EQ(spec["encoding"]["color"]["scale"]["domain"],
            json({"software", "queueing", "fetch", "execution", "sync", "atc"}));
}

TEST(Report, WalkReadsAndHitRates) {
  const Report r = report(run_folder("report_run_walks"), "walks");
  ASSERT_EQ(r.cli.exit_code, 0) << r.cli.out;
  const json walks = rows_of(plot(r, "Table reads per walk"), "smmuv3");
  ASSERT_EQ(walks.size(), 2u);
  EXPECT_EQ(walks[0]["reads"], 2);
  EXPECT_EQ(walks[0]["fraction"], 0.75);
  EXPECT_EQ(walks[1]["reads"], 4);
  EXPECT_EQ(walks[1]["fraction"], 0.25);
  // iotlb: 3 of 4 lookups hit; the cache never looked up is left out.
  const json caches = rows_of(plot(r, "Cache hit rates"), "smmuv3");
  ASSERT_EQ(caches.size(), 1u);
  EXPECT_EQ(caches[0]["cache"], "iotlb");
  EXPECT_EQ(caches[0]["hit_rate"], 0.75);
  EXPECT_EQ(caches[0]["lookups"], 4);
  // The oracle's counts, and the summary, escaped.
  EXPECT_NE(r.html.find("<td>smmuv3</td><td>10</td><td>0</td><td>0</td>"), std::string::npos);
  EXPECT_NE(r.html.find("iommusim run: test &lt;summary&gt;"), std::string::npos);
  EXPECT_NE(r.html.find("/* stand-in */"), std::string::npos);   // the library is inlined
}

// x.mean against a.b: a.b spans 1..100, so a log axis; one panel per value of c; the
// single-replicate row has no interval; vtd's trapped lane keeps its path.
TEST(Report, SweepStatAgainstEachKey) {
  const fs::path dir = fs::path(::testing::TempDir()) / "report_sweep";
  fs::remove_all(dir);
  make_sweep_folder(dir);
  const Report r = report(dir, "sweep");
  ASSERT_EQ(r.cli.exit_code, 0) << r.cli.out;
  ASSERT_EQ(r.plots.size(), 2u);
  const json& by_ab = plot(r, "x.mean against a.b");
  const json& rows = by_ab["data"]["values"];
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["x"], 1.0);
  EXPECT_EQ(rows[0]["mean"], 10.0);
  EXPECT_EQ(rows[0]["lo"], 9.0);
  EXPECT_EQ(rows[0]["panel"], "c = p");
  EXPECT_TRUE(rows[1]["lo"].is_null());
  EXPECT_EQ(rows[2]["lane"], "vtd@trapped");
  EXPECT_EQ(rows[2]["path"], "trapped");
  EXPECT_EQ(rows[3]["panel"], "c = q");
  EXPECT_EQ(by_ab["facet"]["sort"], json({"c = p", "c = q"}));
  const json& line = by_ab["spec"]["layer"][0];
  EXPECT_EQ(line["encoding"]["x"]["scale"]["type"], "log");
  EXPECT_EQ(by_ab["spec"]["layer"][1]["encoding"]["y2"]["field"], "hi");
  // Against c (strings): an ordinal axis, one panel per a.b value.
  const json& by_c = plot(r, "x.mean against c");
  EXPECT_EQ(by_c["spec"]["layer"][0]["encoding"]["x"]["type"], "ordinal");
  EXPECT_EQ(by_c["facet"]["sort"], json({"a.b = 1", "a.b = 10", "a.b = 100"}));
  EXPECT_NE(r.html.find("report test"), std::string::npos);
}

TEST(Report, MissingLibrarySaysWhatToDo) {
  const CliRun r = run_cli("report " + run_folder("report_nolib").string() + " --vega-dir /nonexistent/node_modules");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("plotting library is missing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/node_modules/vega/build/vega.min.js"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scripts/install-deps.sh"), std::string::npos) << r.out;
}

TEST(Report, BadFoldersExitTwoSayingWhy) {
  const fs::path empty = fs::path(::testing::TempDir()) / "report_empty";
  fs::create_directories(empty);
  CliRun r = run_cli("report " + empty.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("neither a run folder (stats.json) nor a sweep folder (sweep.json)"), std::string::npos) << r.out;

  r = run_cli("report " + (empty / "nothing").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no such folder"), std::string::npos) << r.out;

  // A histogram without buckets (stats.json from before they were exported) is named.
  const fs::path old = run_folder("report_old_stats");
  write_file(old / "stats.json", R"({"ok": true, "stats": [{"name": "vtd.iommu.walk_reads", "kind": "histogram",
                                      "unit": "reads", "count": 3}]})");
  r = run_cli("report " + old.string() + " --vega-dir /nonexistent");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("vtd.iommu.walk_reads has no buckets"), std::string::npos) << r.out;

  write_file(old / "stats.json", "{ not json");
  r = run_cli("report " + old.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("stats.json: not valid JSON"), std::string::npos) << r.out;

  const fs::path sweep = fs::path(::testing::TempDir()) / "report_sweep_unmerged";
  fs::remove_all(sweep);
  make_sweep_folder(sweep);
  fs::remove(sweep / "results.csv");
  r = run_cli("report " + sweep.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no results.csv yet"), std::string::npos) << r.out;
}

}  // namespace

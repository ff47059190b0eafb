// `iommusim compare [--bless] RUN GOLDEN` and run folders, through the binary as a user
// runs them. The stats.json files and goldens are written by hand with known values, so
// every verdict below is worked out by hand (docs/regression.md gives the rules).
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

using iommusim::test::CliRun;
using iommusim::test::run_cli;

using iommusim::test::read_file;
using iommusim::test::write_file;
// A fresh folder under the test temp dir.
std::string fresh_dir(const std::string& name) { return iommusim::test::fresh_dir("cmp_" + name); }

json counter(const std::string& name, uint64_t v) {
  return {{"name", name}, {"kind", "counter"}, {"value", v}, {"unit", ""}, {"description", "d"}};
}
json value(const std::string& name, double v) {
  return {{"name", name}, {"kind", "value"}, {"value", v}, {"unit", ""}, {"description", "d"}};
}
json histogram(const std::string& name, uint64_t count, double mean, double p50, double p90, double p99, double max) {
  return {{"name", name}, {"kind", "histogram"}, {"unit", "ns"}, {"description", "d"}, {"count", count},
          {"mean", mean}, {"min", 1.0}, {"p50", p50}, {"p90", p90}, {"p99", p99}, {"max", max}};
}
// A run folder holding only stats.json, as `iommusim run` writes it.
std::string write_run(const std::string& name, const json& stats, bool ok = true) {
  const std::string d = fresh_dir(name);
  write_file(d + "/stats.json", json{{"ok", ok}, {"error", ok ? "" : "driver operation failed"}, {"stats", stats}}.dump(2));
  return d;
}
bool has(const std::string& out, const std::string& s) { return out.find(s) != std::string::npos; }

// The run the first tests compare: one counter, one value, one histogram (six parts).
json base_stats(uint64_t transactions, double mean, double p50, double p99, double max) {
  return json::array({counter("a.endpoint.transactions", transactions), value("a.iommu.iotlb.hit_rate", 0.25),
                      histogram("a.iommu.walk_latency", 10, mean, p50, 310.0, p99, max)});
}
// Its golden: default rel 1%, p99 rel 5%; the counter and the histogram count are exact.
const char* kBaseGolden = R"({
  "tolerance": { "default": { "rel": 0.01 }, "overrides": { "*.walk_latency.p99": { "rel": 0.05 } } },
  "stats": {
    "a.endpoint.transactions": 1000, "a.iommu.iotlb.hit_rate": 0.25,
    "a.iommu.walk_latency.count": 10, "a.iommu.walk_latency.mean": 300.5, "a.iommu.walk_latency.p50": 300.0,
    "a.iommu.walk_latency.p90": 310.0, "a.iommu.walk_latency.p99": 400.0, "a.iommu.walk_latency.max": 410.0
  }
})";
}  // namespace

TEST(Compare, IdenticalStatsExitZero) {
  const std::string run = write_run("same", base_stats(1000, 300.5, 300.0, 400.0, 410.0));
  const std::string golden = fresh_dir("same_golden") + "/g.json";
  write_file(golden, kBaseGolden);
  CliRun r = run_cli("compare " + run + " " + golden);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "8 stats within tolerance")) << r.out;
}

// Worked out by hand against kBaseGolden:
//   transactions 1001 vs 1000, exact (integer)          -> out
//   walk_latency.mean 304 vs 300.5, allowed 3.005        -> out
//   walk_latency.p50 303 vs 300, allowed 3.0 (boundary)  -> within
//   walk_latency.p99 419 vs 400, rel 5%: allowed 20      -> within
//   walk_latency.max 415 vs 410, allowed 4.1             -> out
TEST(Compare, NamesEveryStatOutOfTolerance) {
  const std::string run = write_run("off", base_stats(1001, 304.0, 303.0, 419.0, 415.0));
  const std::string golden = fresh_dir("off_golden") + "/g.json";
  write_file(golden, kBaseGolden);
  CliRun r = run_cli("compare " + run + " " + golden);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "3 of 8 stats out of tolerance")) << r.out;
  EXPECT_TRUE(has(r.out, "a.endpoint.transactions: golden 1000, got 1001, tolerance exact (integer)")) << r.out;
  EXPECT_TRUE(has(r.out, "a.iommu.walk_latency.mean: golden 300.5, got 304.0, tolerance rel 0.01 (default)")) << r.out;
  EXPECT_TRUE(has(r.out, "a.iommu.walk_latency.max: golden 410.0, got 415.0, tolerance rel 0.01 (default)")) << r.out;
  EXPECT_FALSE(has(r.out, "walk_latency.p50:")) << r.out;
  EXPECT_FALSE(has(r.out, "walk_latency.p99:")) << r.out;
  EXPECT_FALSE(has(r.out, "hit_rate:")) << r.out;
}

// Each stat sits exactly on its tolerance boundary in one run and just past it in the other.
//   v.rel      200   exact-name rule rel 0.05 (beats the glob *.rel rel 0.5): allowed 10
//   v.abs      0.5   *.abs abs 0.25 (4 literal characters, beats v.a* with 3): allowed 0.25
//   v.both     1000  rel 0.01 and abs 5: allowed max(5, 10) = 10
//   v.absbig   10    rel 0.01 and abs 2: allowed max(2, 0.1) = 2
//   v.count    7     integer, no rule: exact
//   v.loose    10    integer with rule abs 3: allowed 3
//   v.zero     0.0   default rel 0.01: allowed 0
TEST(Compare, RelAndAbsToleranceBoundaries) {
  const std::string golden = fresh_dir("bounds_golden") + "/g.json";
  write_file(golden, R"({
    "tolerance": {
      "default": { "rel": 0.01 },
      "overrides": {
        "*.rel": { "rel": 0.5 }, "v.rel": { "rel": 0.05 },
        "v.a*": { "abs": 1 }, "*.abs": { "abs": 0.25 },
        "v.both": { "rel": 0.01, "abs": 5 }, "v.absbig": { "rel": 0.01, "abs": 2 },
        "v.loose": { "abs": 3 }
      }
    },
    "stats": { "v.rel": 200.0, "v.abs": 0.5, "v.both": 1000.0, "v.absbig": 10.0, "v.count": 7, "v.loose": 10,
               "v.zero": 0.0 }
  })");
  auto stats = [](double rel, double abs, double both, double absbig, uint64_t count, uint64_t loose, double zero) {
    return json::array({value("v.rel", rel), value("v.abs", abs), value("v.both", both), value("v.absbig", absbig),
                        counter("v.count", count), counter("v.loose", loose), value("v.zero", zero)});
  };
  CliRun at = run_cli("compare " + write_run("bounds_at", stats(190.0, 0.75, 1010.0, 8.0, 7, 13, 0.0)) + " " + golden);
  EXPECT_EQ(at.exit_code, 0) << at.out;
  EXPECT_TRUE(has(at.out, "7 stats within tolerance")) << at.out;

  CliRun past = run_cli("compare " + write_run("bounds_past", stats(189.9, 0.76, 1010.5, 7.9, 8, 14, 1e-6)) + " " + golden);
  EXPECT_EQ(past.exit_code, 1) << past.out;
  EXPECT_TRUE(has(past.out, "7 of 7 stats out of tolerance")) << past.out;
  EXPECT_TRUE(has(past.out, "v.rel: golden 200.0, got 189.9, tolerance rel 0.05 (v.rel)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.abs: golden 0.5, got 0.76, tolerance abs 0.25 (*.abs)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.both: golden 1000.0, got 1010.5, tolerance rel 0.01, abs 5 (v.both)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.absbig: golden 10.0, got 7.9, tolerance rel 0.01, abs 2 (v.absbig)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.count: golden 7, got 8, tolerance exact (integer)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.loose: golden 10, got 14, tolerance abs 3 (v.loose)")) << past.out;
  EXPECT_TRUE(has(past.out, "v.zero: golden 0.0, got 1e-06, tolerance rel 0.01 (default)")) << past.out;
}

// A golden stat the run lacks, and a run stat the golden selects but lacks, are both named;
// a run stat outside the selection is not.
TEST(Compare, ReportsStatsMissingOnEitherSide) {
  const std::string golden = fresh_dir("missing_golden") + "/g.json";
  write_file(golden, R"({ "select": ["a.*"], "stats": { "a.x": 1, "a.y": 2 } })");
  const std::string run = write_run("missing", json::array({counter("a.x", 1), counter("a.z", 3), counter("b.w", 4)}));
  CliRun r = run_cli("compare " + run + " " + golden);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "0 of 1 stats out of tolerance, 2 missing")) << r.out;
  EXPECT_TRUE(has(r.out, "a.y: missing in the run (golden 2)")) << r.out;
  EXPECT_TRUE(has(r.out, "a.z: missing in the golden (got 3")) << r.out;
  EXPECT_FALSE(has(r.out, "b.w")) << r.out;
}

TEST(Compare, FailedRunIsAMismatch) {
  const std::string golden = fresh_dir("failed_golden") + "/g.json";
  write_file(golden, R"({ "stats": { "a.x": 1 } })");
  CliRun r = run_cli("compare " + write_run("failed", json::array({counter("a.x", 1)}), false) + " " + golden);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "the run did not complete: driver operation failed")) << r.out;
}

TEST(Compare, BadInputExitsTwo) {
  const std::string run = write_run("bad", json::array({counter("a.x", 1)}));
  const std::string d = fresh_dir("bad_golden");
  write_file(d + "/good.json", R"({ "stats": { "a.x": 1 } })");
  write_file(d + "/notjson.json", "{ stats: ");
  write_file(d + "/typo.json", R"({ "tolerance": { "default": { "rell": 0.1 } }, "stats": { "a.x": 1 } })");
  write_file(d + "/string.json", R"({ "stats": { "a.x": "1" } })");
  write_file(d + "/topkey.json", R"({ "stat": { "a.x": 1 } })");
  const std::string empty_dir = fresh_dir("bad_empty");
  const std::string bad_stats = fresh_dir("bad_stats");
  write_file(bad_stats + "/stats.json", "not json");
  const std::string no_list = fresh_dir("bad_no_list");
  write_file(no_list + "/stats.json", R"({ "ok": true, "stats": {} })");
  const std::string bad_ok = fresh_dir("bad_ok");
  write_file(bad_ok + "/stats.json", R"({ "ok": "yes", "stats": [] })");

  struct Case { std::string args, says; };
  for (const Case& c : std::vector<Case>{
           {"/nonexistent/run " + d + "/good.json", "no run folder /nonexistent/run"},
           {empty_dir + " " + d + "/good.json", "has no stats.json"},
           {bad_stats + " " + d + "/good.json", "not valid JSON"},
           {no_list + " " + d + "/good.json", "no \"stats\" list"},
           {bad_ok + " " + d + "/good.json", "stats.json: ok: must be true or false"},
           {run + " " + d + "/absent.json", "no golden " + d + "/absent.json"},
           {run + " " + d + "/notjson.json", "notjson.json: not valid JSON"},
           {run + " " + d + "/typo.json", "tolerance.default.rell: unknown key"},
           {run + " " + d + "/string.json", "stats.a.x: must be a number"},
           {run + " " + d + "/topkey.json", "stat: unknown key"},
       }) {
    CliRun r = run_cli("compare " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_TRUE(has(r.out, c.says)) << c.args << "\n" << r.out;
  }
  // A missing argument is a command-line (CLI11) error: never success or a verdict.
  CliRun r = run_cli("compare " + run);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "golden")) << r.out;
}

// From scratch: the default selection and tolerance block, the run command recorded, and
// the run then matches its own golden.
TEST(Bless, CreatesAGoldenFromScratch) {
  const std::string run = write_run("bless_new", json::array({counter("a.endpoint.transactions", 500),
                                                              counter("a.endpoint.faults", 0),
                                                              histogram("a.iommu.walk_latency", 10, 300.5, 300, 310, 400, 410),
                                                              counter("a.iommu.not_selected", 9)}));
  const std::string golden = fresh_dir("bless_new_golden") + "/sub/new.json";
  CliRun r = run_cli("compare --bless " + run + " " + golden + " --config configs/examples/x.json -p traffic.transactions=500");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "created " + golden)) << r.out;
  EXPECT_TRUE(has(r.out, "a.endpoint.transactions: (none) -> 500")) << r.out;
  const json g = json::parse(read_file(golden));
  EXPECT_EQ(g["run"]["config"], "configs/examples/x.json");
  EXPECT_EQ(g["run"]["params"], json::array({"traffic.transactions=500"}));
  EXPECT_TRUE(g["tolerance"].contains("default")) << g.dump();
  EXPECT_TRUE(g["select"].is_array()) << g.dump();
  EXPECT_EQ(g["stats"]["a.endpoint.transactions"], 500);
  EXPECT_EQ(g["stats"]["a.endpoint.faults"], 0);
  EXPECT_EQ(g["stats"]["a.iommu.walk_latency.mean"], 300.5);
  EXPECT_EQ(g["stats"]["a.iommu.walk_latency.p99"], 400.0);
  EXPECT_FALSE(g["stats"].contains("a.iommu.not_selected")) << g.dump();
  CliRun check = run_cli("compare " + run + " " + golden);
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

// An update keeps what the golden declares (tolerance, selection, run) and prints each
// stat that changed, appeared or went; a second bless changes nothing.
TEST(Bless, UpdatesAGoldenKeepingItsTolerancesAndPrintsChanges) {
  const std::string golden = fresh_dir("bless_upd_golden") + "/g.json";
  write_file(golden, R"({
    "about": "hand-written",
    "run": { "config": "", "params": ["traffic.transactions=10"] },
    "select": ["a.*"],
    "tolerance": { "default": { "rel": 0.2 }, "overrides": { "a.x": { "abs": 1 } } },
    "stats": { "a.x": 1, "a.gone": 5, "a.same": 2.5 }
  })");
  const std::string run = write_run("bless_upd", json::array({counter("a.x", 4), value("a.same", 2.5), counter("a.new", 7),
                                                              counter("b.other", 1)}));
  CliRun before = run_cli("compare " + run + " " + golden);
  EXPECT_EQ(before.exit_code, 1) << before.out;

  CliRun r = run_cli("compare --bless " + run + " " + golden);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "updated " + golden + ": 3 changes")) << r.out;
  EXPECT_TRUE(has(r.out, "a.x: 1 -> 4")) << r.out;
  EXPECT_TRUE(has(r.out, "a.new: (none) -> 7")) << r.out;
  EXPECT_TRUE(has(r.out, "a.gone: 5 -> (removed)")) << r.out;
  EXPECT_FALSE(has(r.out, "a.same")) << r.out;
  const json g = json::parse(read_file(golden));
  EXPECT_EQ(g["about"], "hand-written");
  EXPECT_EQ(g["run"]["params"], json::array({"traffic.transactions=10"}));
  EXPECT_EQ(g["select"], json::array({"a.*"}));
  EXPECT_EQ(g["tolerance"]["overrides"]["a.x"]["abs"], 1);
  EXPECT_EQ(g["stats"], json::parse(R"({ "a.x": 4, "a.same": 2.5, "a.new": 7 })"));

  const std::string text = read_file(golden);
  CliRun again = run_cli("compare --bless " + run + " " + golden);
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_TRUE(has(again.out, "unchanged (3 stats)")) << again.out;
  EXPECT_EQ(read_file(golden), text);
  EXPECT_EQ(run_cli("compare " + run + " " + golden).exit_code, 0);
}

TEST(Bless, RefusesAFailedRun) {
  const std::string golden = fresh_dir("bless_failed_golden") + "/g.json";
  CliRun r = run_cli("compare --bless " + write_run("bless_failed", json::array({counter("a.x", 1)}), false) + " " + golden);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_FALSE(fs::exists(golden));
}

// A run never overwrites an earlier run silently.
TEST(RunFolder, RefusesToOverwriteARunWithoutForce) {
  const std::string dir = fresh_dir("run_folder");
  write_file(dir + "/notes.txt", "a folder with other files is fine");
  const std::string args = "run -o " + dir + " -p iommu.vendor=smmuv3 -p traffic.transactions=500";
  ASSERT_EQ(run_cli(args).exit_code, 0);
  const std::string stats = read_file(dir + "/stats.json");
  ASSERT_FALSE(stats.empty());
  write_file(dir + "/stats.json", "the earlier run");

  CliRun again = run_cli(args);
  EXPECT_EQ(again.exit_code, 2) << again.out;
  EXPECT_TRUE(has(again.out, dir + " already holds a run")) << again.out;
  EXPECT_TRUE(has(again.out, "--force")) << again.out;
  EXPECT_EQ(read_file(dir + "/stats.json"), "the earlier run");

  CliRun forced = run_cli(args + " --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.out;
  EXPECT_EQ(read_file(dir + "/stats.json"), stats);
}

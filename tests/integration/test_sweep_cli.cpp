// `iommusim sweep` through the binary, as a user runs it: the local pool end to end,
// resuming, failures, folder guards, --index, --list, --merge and the Slurm script.
// Runs are tiny (a few hundred DMAs) so the whole file takes seconds.
#include <cmath>
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

using iommusim::test::csv_rows;
using iommusim::test::read_file;
using iommusim::test::write_file;
std::string fresh_dir(const std::string& name) { return iommusim::test::fresh_dir("sweep_" + name); }
json read_json(const std::string& path) { return json::parse(read_file(path)); }
bool has(const std::string& out, const std::string& s) { return out.find(s) != std::string::npos; }
double stat(const json& stats, const std::string& name, const char* field) {
  for (auto& s : stats["stats"])
    if (s["name"] == name) return s[field].get<double>();
  ADD_FAILURE() << "no stat " << name;
  return -1;
}

// A spec in `dir`; the runs are a few hundred DMAs on SMMUv3 and VT-d.
std::string write_spec(const std::string& dir, const std::string& name, const std::string& body) {
  const std::string path = dir + "/" + name + ".json";
  write_file(path, "{ \"set\": {\"traffic.transactions\": 300, \"iommu.vendor\": \"smmuv3,vtd\"}, " + body + " }");
  return path;
}

TEST(SweepCli, LocalPoolRunsEveryPointAndMergesReplicateMeans) {
  const std::string d = fresh_dir("pool");
  const std::string spec = write_spec(d, "lat", R"("sweep": {"memory.latency_cycles": [40, 80]}, "seeds": {"count": 2},
    "stats": ["driver.invalidation.latency.mean", "endpoint.transactions"])");
  const std::string out = d + "/out";
  CliRun r = run_cli("sweep " + spec + " -o " + out + " -j 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "4 points: 4 ran, 0 were done, 0 failed")) << r.out;
  EXPECT_FALSE(has(r.out, "\r")) << "a progress line although stderr is not a terminal";

  // Each point ran in its own folder with its own resolved config: point 3 is (80, seed 2).
  const json cfg = read_json(out + "/points/0003/config.resolved.json");
  EXPECT_EQ(cfg["memory"]["latency_cycles"], 80);
  EXPECT_EQ(cfg["sim"]["seed"], 2);
  EXPECT_EQ(cfg["traffic"]["transactions"], 300);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(fs::exists(out + "/points/000" + std::to_string(i) + "/done.json")) << i;
  const json manifest = read_json(out + "/sweep.json");
  EXPECT_EQ(manifest["points"].size(), 4u);
  EXPECT_EQ(manifest["points"][2]["values"]["memory.latency_cycles"], 80);
  EXPECT_EQ(manifest["points"][2]["dir"], "points/0002");

  // results.csv: 2 latencies × 2 vendors; each mean is the mean of the two seeds' stats.
  const auto rows = csv_rows(out + "/results.csv");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"memory.latency_cycles", "vendor", "path", "replicates",
                                               "driver.invalidation.latency.mean", "driver.invalidation.latency.mean.ci95_lo",
                                               "driver.invalidation.latency.mean.ci95_hi", "endpoint.transactions",
                                               "endpoint.transactions.ci95_lo", "endpoint.transactions.ci95_hi"}));
  const std::vector<std::pair<std::string, std::string>> want = {{"40", "smmuv3"}, {"40", "vtd"}, {"80", "smmuv3"}, {"80", "vtd"}};
  const double t1 = std::tan(M_PI * 0.475);   // t(0.975, 1 degree of freedom)
  for (size_t i = 0; i < 4; ++i) {
    const auto& row = rows[i + 1];
    ASSERT_EQ(row.size(), 10u) << i;
    EXPECT_EQ(row[0], want[i].first);
    EXPECT_EQ(row[1], want[i].second);
    EXPECT_EQ(row[2], "native");
    EXPECT_EQ(row[3], "2");
    const size_t first = i < 2 ? 0 : 2;   // the combination's two points
    const double a = stat(read_json(out + "/points/000" + std::to_string(first) + "/stats.json"),
                          want[i].second + ".driver.invalidation.latency", "mean");
    const double b = stat(read_json(out + "/points/000" + std::to_string(first + 1) + "/stats.json"),
                          want[i].second + ".driver.invalidation.latency", "mean");
    // Two values: mean (a+b)/2, s = |a-b|/sqrt(2), half-width t1 · s / sqrt(2) = t1 · |a-b| / 2.
    EXPECT_NEAR(std::stod(row[4]), (a + b) / 2, 1e-9 * (a + b));
    EXPECT_NEAR(std::stod(row[5]), (a + b) / 2 - t1 * std::fabs(a - b) / 2, 1e-9 * (a + b));
    EXPECT_NEAR(std::stod(row[6]), (a + b) / 2 + t1 * std::fabs(a - b) / 2, 1e-9 * (a + b));
    EXPECT_EQ(std::vector<std::string>(row.begin() + 7, row.end()), (std::vector<std::string>{"300", "300", "300"}));
  }
}

// Each point keeps its chosen stats beside stats.json, and --merge reads them; when the
// spec's stats change, or the kept file is damaged, --merge reads stats.json instead, so
// the CSV is the one a merge of the stats.json files alone gives.
TEST(SweepCli, MergeUsesTheKeptStatsOnlyWhileTheyMatchTheSpec) {
  const std::string d = fresh_dir("kept");
  const std::string spec = write_spec(d, "seeds", R"("seeds": {"count": 3}, "stats": ["endpoint.transactions"])");
  const std::string out = d + "/out";
  ASSERT_EQ(run_cli("sweep " + spec + " -o " + out + " -j 2").exit_code, 0);
  const json kept = read_json(out + "/points/0001/chosen_stats.json");
  EXPECT_EQ(kept["stats"], json({"endpoint.transactions"}));
  EXPECT_EQ(kept["lanes"][1]["vendor"], "vtd");
  EXPECT_EQ(kept["lanes"][1]["values"]["endpoint.transactions"], 300);
  const std::string csv = read_file(out + "/results.csv");

  // The kept files of every point say 299 DMAs: --merge believes them while they match.
  for (const char* p : {"0000", "0001", "0002"}) {
    std::string text = read_file(out + "/points/" + p + "/chosen_stats.json");
    const size_t at = text.find("\"endpoint.transactions\":300");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 27, "\"endpoint.transactions\":299");
    write_file(out + "/points/" + p + "/chosen_stats.json", text);
  }
  ASSERT_EQ(run_cli("sweep " + spec + " -o " + out + " --merge").exit_code, 0);
  EXPECT_TRUE(has(read_file(out + "/results.csv"), ",299,")) << read_file(out + "/results.csv");

  // Another stats selection: merged from stats.json (300, and the new column).
  const std::string spec2 =
      write_spec(d, "seeds", R"("seeds": {"count": 3}, "stats": ["endpoint.transactions", "iommu.iotlb.hits"])");
  ASSERT_EQ(run_cli("sweep " + spec2 + " -o " + out + " --merge").exit_code, 0);
  const auto rows = csv_rows(out + "/results.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][6], "iommu.iotlb.hits");
  EXPECT_EQ(rows[1][3], "300");
  // Back to the first spec, with damaged kept files: stats.json again, the CSV of the run.
  const std::string spec3 = write_spec(d, "seeds", R"("seeds": {"count": 3}, "stats": ["endpoint.transactions"])");
  for (const char* p : {"0000", "0001", "0002"}) write_file(out + "/points/" + p + "/chosen_stats.json", "{\"stats\": [");
  ASSERT_EQ(run_cli("sweep " + spec3 + " -o " + out + " --merge").exit_code, 0);
  EXPECT_EQ(read_file(out + "/results.csv"), csv);
}

TEST(SweepCli, ResumeSkipsDonePointsAndRerunsThoseWithoutAMarker) {
  const std::string d = fresh_dir("resume");
  const std::string spec = write_spec(d, "seeds", R"("seeds": {"count": 3})");
  const std::string out = d + "/out";
  ASSERT_EQ(run_cli("sweep " + spec + " -o " + out + " -j 2").exit_code, 0);
  CliRun r = run_cli("sweep " + spec + " -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "3 points: 0 ran, 3 were done")) << r.out;

  // Point 0 stays done (a note in its log shows whether it ran again); point 1 lost its
  // marker; point 2 was cut short while writing (half a stats.json, no marker).
  write_file(out + "/points/0000/run.log", "untouched\n");
  fs::remove(out + "/points/0001/done.json");
  fs::remove(out + "/points/0002/done.json");
  const std::string stats2 = read_file(out + "/points/0002/stats.json");
  write_file(out + "/points/0002/stats.json", stats2.substr(0, stats2.size() / 2));
  r = run_cli("sweep " + spec + " -o " + out + " --list");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "0  done  sim.seed=1\n1  todo  sim.seed=2\n2  todo  sim.seed=3\n")) << r.out;

  r = run_cli("sweep " + spec + " -o " + out + " -j 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "3 points: 2 ran, 1 were done")) << r.out;
  EXPECT_EQ(read_file(out + "/points/0000/run.log"), "untouched\n");
  EXPECT_EQ(read_file(out + "/points/0002/stats.json"), stats2);   // rerun whole, and deterministic
  for (const char* p : {"0001", "0002"}) EXPECT_TRUE(fs::exists(out + "/points/" + p + "/done.json")) << p;
}

TEST(SweepCli, AFailedPointIsReportedAndTheOthersFinish) {
  const std::string d = fresh_dir("fail");
  // 3 ways do not divide the IOTLB's 2048 entries: only the simulator knows, so the point fails.
  const std::string spec = write_spec(d, "ways", R"("sweep": {"iommu.smmuv3.iotlb.ways": [4, 3, 8]})");
  const std::string out = d + "/out";
  CliRun r = run_cli("sweep " + spec + " -o " + out + " -j 2");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.out, "point 1 failed (exit 2): iommu.smmuv3.iotlb.ways=3 sim.seed=1")) << r.out;
  EXPECT_TRUE(has(r.out, "must be a multiple of ways (3)")) << r.out;   // the tail of its output
  EXPECT_TRUE(has(r.out, "3 points: 2 ran, 0 were done, 1 failed")) << r.out;
  const json failed = read_json(out + "/points/0001/failed.json");
  EXPECT_EQ(failed["exit"], 2);
  EXPECT_FALSE(fs::exists(out + "/points/0001/done.json"));
  EXPECT_TRUE(fs::exists(out + "/points/0002/done.json"));
  // The CSV has the two good points (two vendors each); --merge says what is missing.
  EXPECT_EQ(csv_rows(out + "/results.csv").size(), 5u);
  r = run_cli("sweep " + spec + " -o " + out + " --merge");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.out, "from 2 of 3 points; not done: 1")) << r.out;
  // --index on the failing point returns the run's own exit status.
  EXPECT_EQ(run_cli("sweep " + spec + " -o " + out + " --index 1").exit_code, 2);
}

TEST(SweepCli, ABadSpecStopsBeforeAnythingRuns) {
  const std::string d = fresh_dir("bad");
  const std::string spec = write_spec(d, "typo", R"("sweep": {"memory.latency_cycles": [40], "memory.chanels": [1, 2]})");
  CliRun r = run_cli("sweep " + spec + " -o " + d + "/out");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.out, "typo.json: sweep.memory.chanels: unknown config key")) << r.out;
  EXPECT_FALSE(fs::exists(d + "/out"));
  write_file(d + "/broken.json", "{ \"sweep\": ");
  r = run_cli("sweep " + d + "/broken.json -o " + d + "/out");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.out, "broken.json: not valid JSON")) << r.out;
  EXPECT_EQ(run_cli("sweep " + d + "/missing.json").exit_code, 2);
  r = run_cli("sweep " + write_spec(d, "fine", "\"seeds\": [1]") + " -o " + d + "/never --merge");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.out, "never holds no sweep (no sweep.json): run the sweep first")) << r.out;
  EXPECT_EQ(run_cli("sweep " + spec + " --index 0 --merge").exit_code, 2);   // exclusive options
}

TEST(SweepCli, AnotherSweepInTheFolderNeedsForce) {
  const std::string d = fresh_dir("force");
  const std::string out = d + "/out";
  const std::string a = write_spec(d, "a", R"("seeds": [1])");
  ASSERT_EQ(run_cli("sweep " + a + " -o " + out).exit_code, 0);
  // Other stats are not another sweep: merge again without rerunning.
  const std::string a2 = write_spec(d, "a2", R"("seeds": [1], "stats": ["endpoint.transactions"])");
  CliRun r = run_cli("sweep " + a2 + " -o " + out + " --merge");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(read_file(out + "/results.csv"), "vendor,path,replicates,endpoint.transactions,")) << read_file(out + "/results.csv");
  // Another seed is.
  const std::string b = write_spec(d, "b", R"("seeds": [2])");
  r = run_cli("sweep " + b + " -o " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.out, "holds another sweep: its point 0 ran with")) << r.out;
  EXPECT_TRUE(has(r.out, "pass --force")) << r.out;
  EXPECT_EQ(run_cli("sweep " + b + " -o " + out + " --index 0 --force").exit_code, 2);   // never discards for one task
  r = run_cli("sweep " + b + " -o " + out + " --force");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "1 points: 1 ran, 0 were done")) << r.out;
  EXPECT_EQ(read_json(out + "/points/0000/config.resolved.json")["sim"]["seed"], 2);
}

TEST(SweepCli, IndexRunsOnePointAndSlurmScriptCoversTheRest) {
  const std::string d = fresh_dir("index");
  const std::string spec = write_spec(d, "idx", R"("sweep": {"traffic.outstanding": [4, 8, 16]})");
  const std::string out = d + "/out";
  CliRun r = run_cli("sweep " + spec + " -o " + out + " --list");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "0  todo  traffic.outstanding=4 sim.seed=1\n1  todo  traffic.outstanding=8 sim.seed=1\n"
                   "2  todo  traffic.outstanding=16 sim.seed=1\n");
  r = run_cli("sweep " + spec + " -o " + out + " --index 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "point 1 done: traffic.outstanding=8 sim.seed=1")) << r.out;
  EXPECT_EQ(read_json(out + "/points/0001/config.resolved.json")["traffic"]["outstanding"], 8);
  EXPECT_FALSE(fs::exists(out + "/points/0000/done.json"));
  r = run_cli("sweep " + spec + " -o " + out + " --index 1");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(has(r.out, "point 1 is done")) << r.out;
  r = run_cli("sweep " + spec + " -o " + out + " --index 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.out, "--index 3: the sweep has 3 points (0 to 2)")) << r.out;

  r = run_cli("sweep " + spec + " -o " + out + " --slurm --sbatch=--time=5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string script = read_file(out + "/sweep.sbatch");
  EXPECT_TRUE(has(script, "#SBATCH --array=0,2\n")) << script;   // point 1 is done
  EXPECT_TRUE(has(script, "#SBATCH --time=5\n")) << script;
  EXPECT_TRUE(has(script, "#SBATCH --output=" + fs::absolute(out).lexically_normal().string() + "/slurm/%A_%a.out\n")) << script;
  EXPECT_TRUE(has(script, " sweep '" + fs::absolute(spec).lexically_normal().string() + "' -o '" +
                              fs::absolute(out).lexically_normal().string() + "' --index \"$SLURM_ARRAY_TASK_ID\"\n"))
      << script;
  // The array task's command, run here by hand as Slurm would, finishes the sweep.
  for (const char* task : {"0", "2"}) {
    r = run_cli("sweep " + spec + " -o " + out + " --index " + task);
    EXPECT_EQ(r.exit_code, 0) << r.out;
  }
  r = run_cli("sweep " + spec + " -o " + out + " --merge");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(csv_rows(out + "/results.csv").size(), 7u);   // header + 3 combinations × 2 vendors
}

}  // namespace

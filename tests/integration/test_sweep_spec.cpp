// Sweep specs, point lists, stat names and results.csv (docs/sweep.md), through the library.
// Every expected list, mean and interval is worked out by hand in the comments; the t
// quantiles for 1 and 2 degrees of freedom have closed forms.
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platforms/stat_names.h"
#include "platforms/sweep_results.h"
#include "platforms/sweep_spec.h"

namespace {
namespace sw = iommusim::platforms::sweep;
using iommusim::platforms::split_stat_name;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

sw::Spec spec(const std::string& text) { return sw::parse_spec(ojson::parse(text), "spec.json", ""); }

// The error a spec gives ("" when it parses).
std::string spec_error(const std::string& text) {
  try {
    spec(text);
  } catch (const sw::SweepError& e) {
    return e.what();
  }
  return "";
}

std::vector<json> values(const std::string& range_or_list, const std::string& key = "memory.latency_cycles") {
  return spec("{\"sweep\": {\"" + key + "\": " + range_or_list + "}}").values.at(0);
}

TEST(SweepSpec, ParsesEveryField) {
  const sw::Spec s = spec(R"({
    "about": "a test", "set": {"traffic.transactions": 500, "iommu.vendor": "vtd"},
    "sweep": {"memory.latency_cycles": [40, 80], "iommu.translation": ["s1", "nested"]},
    "combine": "product", "seeds": [3, 9], "stats": ["iommu.iotlb.hit_rate"]})");
  EXPECT_EQ(s.about, "a test");
  EXPECT_EQ(s.set, (std::vector<std::string>{"traffic.transactions=500", "iommu.vendor=\"vtd\""}));
  EXPECT_EQ(s.base_config["traffic"]["transactions"], 500);
  EXPECT_EQ(s.keys, (std::vector<std::string>{"memory.latency_cycles", "iommu.translation"}));   // spec order
  EXPECT_EQ(s.values[1], (std::vector<json>{"s1", "nested"}));
  EXPECT_FALSE(s.zip);
  EXPECT_EQ(s.seeds, (std::vector<uint64_t>{3, 9}));
  EXPECT_EQ(s.stats, (std::vector<std::string>{"iommu.iotlb.hit_rate"}));
}

TEST(SweepSpec, DefaultsAreTheBaseSeedAndTheDefaultStats) {
  const sw::Spec s = spec("{}");
  EXPECT_EQ(s.seeds, (std::vector<uint64_t>{1}));   // configs/default.json: sim.seed 1
  EXPECT_EQ(s.stats, sw::default_stats());
  EXPECT_EQ(s.keys.size(), 0u);
  EXPECT_EQ(spec(R"({"seeds": {"first": 5, "count": 3}})").seeds, (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(spec(R"({"seeds": {"count": 2}})").seeds, (std::vector<uint64_t>{1, 2}));
}

TEST(SweepSpec, Ranges) {
  // step: 40, 80, 120, 160 (stop on the grid is included).
  EXPECT_EQ(values(R"({"start": 40, "stop": 160, "step": 40})"), (std::vector<json>{40, 80, 120, 160}));
  // stop off the grid: 40, 100 (160 would pass 150).
  EXPECT_EQ(values(R"({"start": 40, "stop": 150, "step": 60})"), (std::vector<json>{40, 100}));
  // A negative step walks down.
  EXPECT_EQ(values(R"({"start": 30, "stop": 10, "step": -10})"), (std::vector<json>{30, 20, 10}));
  // factor: 256 · 2^k up to 4096.
  EXPECT_EQ(values(R"({"start": 256, "stop": 4096, "factor": 2})", "iommu.smmuv3.iotlb.entries"),
            (std::vector<json>{256, 512, 1024, 2048, 4096}));
  // count on a log scale: 10, 100, 1000 (10^1, 10^2, 10^3).
  EXPECT_EQ(values(R"({"start": 10, "stop": 1000, "count": 3, "log": true})"), (std::vector<json>{10, 100, 1000}));
  // Integer key, linear count: 0, 2.5, 5, 7.5, 10 round to 0, 3, 5, 8, 10 (half away from zero).
  EXPECT_EQ(values(R"({"start": 0, "stop": 10, "count": 5})"), (std::vector<json>{0, 3, 5, 8, 10}));
  // A real-valued key keeps fractions, rounded to 12 digits: 0.1 * 3 is 0.3, not 0.30000000000000004.
  EXPECT_EQ(values(R"({"start": 0, "stop": 0.3, "step": 0.1})", "traffic.read_fraction"),
            (std::vector<json>{0.0, 0.1, 0.2, 0.3}));
  EXPECT_EQ(values(R"({"start": 0, "stop": 1, "count": 5})", "traffic.read_fraction"),
            (std::vector<json>{0.0, 0.25, 0.5, 0.75, 1.0}));
  // A list for an integer key: 64.0 is the integer 64.
  const auto v = values("[64.0, 128]");
  EXPECT_TRUE(v[0].is_number_integer());
  EXPECT_EQ(v, (std::vector<json>{64, 128}));
}

TEST(SweepSpec, ErrorsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([1])", "spec.json: a sweep spec is a JSON object"},
      {R"({"swep": {}})", "spec.json: swep: unknown field"},
      {R"({"about": 1})", "spec.json: about: must be a string"},
      {R"({"base": "no/such/base.json"})", "spec.json: base: no/such/base.json: cannot open"},
      {R"({"set": {"traffic.transactons": 5}})", "spec.json: set: traffic.transactons: unknown key"},
      {R"({"set": {"traffic.transactions": "many"}})", "spec.json: set: traffic.transactions: expected a number, got a string"},
      {R"({"sweep": {"memory.latncy_cycles": [1]}})", "spec.json: sweep.memory.latncy_cycles: unknown config key"},
      {R"({"sweep": {"iommu.vendor": [1]}})", "spec.json: sweep.iommu.vendor: expected a string, got a number"},
      {R"({"sweep": {"memory.latency_cycles": []}})", "sweep.memory.latency_cycles: an empty list of values"},
      {R"({"sweep": {"memory.latency_cycles": 5}})", "sweep.memory.latency_cycles: must be a list of values or a range"},
      {R"({"sweep": {"memory.latency_cycles": [1, 2, 1]}})", "sweep.memory.latency_cycles: the value 1 repeats"},
      {R"({"sweep": {"memory.latency_cycles": [2.5]}})", "sweep.memory.latency_cycles[0]: 2.5: the key takes integers"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 4}}})", "needs exactly one of step, factor, count"},
      {R"({"sweep": {"memory.latency_cycles": {"stop": 4, "step": 1}}})", "sweep.memory.latency_cycles: a range needs \"start\""},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 4, "step": 0}}})", "sweep.memory.latency_cycles.step: must be a number other than 0"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 4, "step": -1}}})", "sweep.memory.latency_cycles.step: moves away from stop"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 4, "step": 1, "lg": 1}}})", "sweep.memory.latency_cycles.lg: unknown field"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 4, "step": 1, "log": true}}})", "sweep.memory.latency_cycles.log: only goes with count"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 0, "stop": 4, "count": 3, "log": true}}})", "a log range needs start and stop > 0"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 2, "count": 4}}})", "the value 1 repeats after rounding to integers"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 8, "factor": 1}}})", "sweep.memory.latency_cycles.factor: must be a number > 0 other than 1"},
      {R"({"sweep": {"iommu.vendor": {"start": 1, "stop": 2, "step": 1}}})", "sweep.iommu.vendor: a range needs a numeric key"},
      {R"({"sweep": {"sim.seed": [1, 2]}})", "sweep.sim.seed: the seed is set by \"seeds\""},
      {R"({"set": {"sim": {"seed": 4}}})", "set.sim: the seed is set by \"seeds\""},
      {R"({"set": {"memory.channels": 2}, "sweep": {"memory": [{}]}})", "sweep.memory: overlaps set.memory.channels"},
      {R"({"combine": "cross"})", "spec.json: combine: must be \"product\" or \"zip\""},
      {R"({"sweep": {"memory.channels": [1, 2], "memory.latency_cycles": [40]}, "combine": "zip"})",
       "sweep.memory.latency_cycles: 1 value(s), but sweep.memory.channels has 2"},
      {R"({"seeds": []})", "spec.json: seeds: an empty list of seeds"},
      {R"({"seeds": [1, -2]})", "spec.json: seeds[1]: must be an integer >= 0"},
      {R"({"seeds": [4, 4]})", "spec.json: seeds[1]: the seed 4 repeats"},
      {R"({"seeds": {"count": 0}})", "spec.json: seeds.count: must be an integer from 1 to 100000"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 200001, "step": 1}}})",
       "spec.json: sweep.memory.latency_cycles: more than 100000 values"},
      {R"({"seeds": {"count": 2, "start": 1}})", "spec.json: seeds.start: unknown field"},
      {R"({"stats": []})", "spec.json: stats: must be a non-empty list"},
      {R"({"stats": ["a", "a"]})", "spec.json: stats[1]: \"a\" repeats"},
      {R"({"sweep": {"memory.latency_cycles": {"start": 1, "stop": 2000, "step": 1}, "memory.channels": {"start": 1, "stop": 1000, "step": 1}}})",
       "spec.json: sweep: 2000000 points, more than 100000"},
  };
  for (const auto& [text, want] : cases) {
    const std::string got = spec_error(text);
    EXPECT_NE(got.find(want), std::string::npos) << text << "\n  want: " << want << "\n  got:  " << got;
  }
}

// Keys swept together ("a+b": a list of tuples) are one dimension of the product: the path
// comparison pairs each path with the translation it needs.
TEST(SweepPoints, KeysSweptTogetherAreOneDimension) {
  const sw::Spec s = spec(R"({"sweep": {
    "iommu.translation+vmm.paths": [["s1", "native"], ["nested", "trapped,virtio"]],
    "dma_api.cpus": [1, 2, 4]}})");
  EXPECT_EQ(s.keys, (std::vector<std::string>{"iommu.translation", "vmm.paths", "dma_api.cpus"}));
  EXPECT_EQ(s.dims, 2u);
  const auto points = sw::expand(s);
  // 2 tuples × 3 CPU counts × 1 seed, the tuple outermost.
  ASSERT_EQ(points.size(), 6u);
  EXPECT_EQ(points[0].values, (std::vector<json>{"s1", "native", 1}));
  EXPECT_EQ(points[2].values, (std::vector<json>{"s1", "native", 4}));
  EXPECT_EQ(points[3].values, (std::vector<json>{"nested", "trapped,virtio", 1}));
  EXPECT_EQ(points[5].params, (std::vector<std::string>{"iommu.translation=\"nested\"", "vmm.paths=\"trapped,virtio\"",
                                                        "dma_api.cpus=4", "sim.seed=1"}));
  // A value may repeat across tuples; zip counts tuples.
  const sw::Spec z = spec(R"({"combine": "zip", "sweep": {
    "iommu.translation+dma_api.cpus": [["nested", 1], ["nested", 2]], "memory.channels": [1, 2]}})");
  ASSERT_EQ(sw::expand(z).size(), 2u);
  EXPECT_EQ(sw::expand(z)[1].values, (std::vector<json>{"nested", 2, 2}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"sweep": {"iommu.translation+vmm.paths": ["s1", "native"]}})",
       "sweep.iommu.translation+vmm.paths[0]: must be a list of 2 values, one per key"},
      {R"({"sweep": {"iommu.translation+vmm.paths": []}})", "sweep.iommu.translation+vmm.paths: keys swept together take"},
      {R"({"sweep": {"iommu.translation+": [["s1"]]}})", "an empty key in a group"},
      {R"({"sweep": {"iommu.translation+vmm.pahts": [["s1", "native"]]}})", "unknown config key vmm.pahts"},
      {R"({"sweep": {"iommu.translation+vmm.paths": [["s1", "native"], ["s1", "native"]]}})",
       "sweep.iommu.translation+vmm.paths[1]: repeats sweep.iommu.translation+vmm.paths[0]"},
      {R"({"sweep": {"dma_api.cpus+memory.channels": [[1.5, 1]]}})", "[0][0]: 1.5: the key takes integers"},
      {R"({"sweep": {"iommu.translation+vmm.paths": [["s1", 3]]}})",
       "sweep.iommu.translation+vmm.paths[0]: vmm.paths: expected a string"},
      {R"({"sweep": {"iommu.translation+vmm.paths": [["s1", "native"]], "vmm.paths": ["native"]}})",
       "sweep.vmm.paths: overlaps sweep.vmm.paths"},
  };
  for (const auto& [text, want] : cases) {
    const std::string got = spec_error(text);
    EXPECT_NE(got.find(want), std::string::npos) << text << "\n  want: " << want << "\n  got:  " << got;
  }
}

TEST(SweepPoints, ProductTakesEveryCombinationLastKeyFastestSeedsInnermost) {
  const sw::Spec s = spec(R"({"set": {"traffic.transactions": 100},
    "sweep": {"memory.channels": [1, 2], "iommu.translation": ["s1", "s2", "nested"]}, "seeds": [7, 8]})");
  const auto points = sw::expand(s);
  // 2 channels × 3 translations × 2 seeds.
  ASSERT_EQ(points.size(), 12u);
  // By hand: (1,s1,7) (1,s1,8) (1,s2,7) (1,s2,8) (1,nested,7) (1,nested,8) (2,s1,7) ...
  const std::vector<std::tuple<int, std::string, uint64_t>> want = {
      {1, "s1", 7}, {1, "s1", 8}, {1, "s2", 7}, {1, "s2", 8}, {1, "nested", 7}, {1, "nested", 8},
      {2, "s1", 7}, {2, "s1", 8}, {2, "s2", 7}, {2, "s2", 8}, {2, "nested", 7}, {2, "nested", 8}};
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].index, i);
    EXPECT_EQ(points[i].combination, i / 2);
    EXPECT_EQ(points[i].values[0], std::get<0>(want[i])) << i;
    EXPECT_EQ(points[i].values[1], std::get<1>(want[i])) << i;
    EXPECT_EQ(points[i].seed, std::get<2>(want[i])) << i;
  }
  // Overrides: set, then the swept values in key order, then the seed; strings as JSON.
  EXPECT_EQ(points[9].params, (std::vector<std::string>{"traffic.transactions=100", "memory.channels=2",
                                                        "iommu.translation=\"s2\"", "sim.seed=8"}));
}

TEST(SweepPoints, ZipPairsTheIthValues) {
  const sw::Spec s = spec(R"({"sweep": {"memory.channels": [1, 2, 4], "memory.latency_cycles": {"start": 40, "stop": 120, "step": 40}},
    "combine": "zip"})");
  const auto points = sw::expand(s);
  // (1, 40), (2, 80), (4, 120), one seed (the default's, 1).
  ASSERT_EQ(points.size(), 3u);
  const std::vector<std::pair<int, int>> want = {{1, 40}, {2, 80}, {4, 120}};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(points[i].values, (std::vector<json>{want[i].first, want[i].second}));
    EXPECT_EQ(points[i].seed, 1u);
    EXPECT_EQ(points[i].combination, i);
  }
}

TEST(SweepPoints, NoSweptKeysIsOneCombinationPerSeed) {
  const auto points = sw::expand(spec(R"({"seeds": {"count": 3}})"));
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[2].params, (std::vector<std::string>{"sim.seed=3"}));
  EXPECT_EQ(points[2].combination, 0u);
}

TEST(StatNames, LaneIsVendorAndPath) {
  auto s = split_stat_name("smmuv3.driver.invalidation.latency");
  EXPECT_TRUE(s.valid);
  EXPECT_EQ(s.vendor, "smmuv3");
  EXPECT_EQ(s.path, "native");
  EXPECT_EQ(s.stat, "driver.invalidation.latency");
  s = split_stat_name("amdvi@accelerated.driver.invalidation.latency.p99");
  EXPECT_TRUE(s.valid);
  EXPECT_EQ(s.vendor, "amdvi");
  EXPECT_EQ(s.path, "accelerated");
  EXPECT_EQ(s.stat, "driver.invalidation.latency.p99");
  EXPECT_FALSE(split_stat_name("nolane").valid);
  EXPECT_FALSE(split_stat_name("vtd@.x").valid);
  EXPECT_FALSE(split_stat_name("vtd@Trapped.x").valid);
  EXPECT_EQ(iommusim::platforms::lane_name("vtd"), "vtd");
  EXPECT_EQ(iommusim::platforms::lane_name("vtd", "native"), "vtd");
  EXPECT_EQ(iommusim::platforms::lane_name("vtd", "virtio"), "vtd@virtio");
}

TEST(SweepStats, StudentTQuantileMatchesClosedForms) {
  // df = 1 is the Cauchy distribution: t = tan(pi (p - 1/2)).
  EXPECT_NEAR(sw::student_t_quantile(0.975, 1), std::tan(M_PI * 0.475), 1e-9);
  // df = 2: t = (2p - 1) / sqrt(2 p (1 - p)).
  EXPECT_NEAR(sw::student_t_quantile(0.975, 2), 0.95 / std::sqrt(2 * 0.975 * 0.025), 1e-10);
  EXPECT_NEAR(sw::student_t_quantile(0.9, 2), 0.8 / std::sqrt(2 * 0.9 * 0.1), 1e-10);
  // Printed tables (3 decimals): df 4 -> 2.776, df 10 -> 2.228, df 30 -> 2.042; and the
  // normal limit 1.960 for a very large df.
  EXPECT_NEAR(sw::student_t_quantile(0.975, 4), 2.776, 5e-4);
  EXPECT_NEAR(sw::student_t_quantile(0.975, 10), 2.228, 5e-4);
  EXPECT_NEAR(sw::student_t_quantile(0.975, 30), 2.042, 5e-4);
  EXPECT_NEAR(sw::student_t_quantile(0.975, 1000000), 1.960, 5e-4);
  EXPECT_NEAR(sw::student_t_quantile(0.025, 2), -0.95 / std::sqrt(2 * 0.975 * 0.025), 1e-10);   // symmetry
}

TEST(SweepStats, MeanAndInterval) {
  // 10, 12, 14: mean 12, s = sqrt((4 + 0 + 4) / 2) = 2, half = t(0.975, 2) · 2 / sqrt(3).
  const double t2 = 0.95 / std::sqrt(2 * 0.975 * 0.025);   // 4.30265...
  sw::Summary s = sw::summarize({10, 12, 14});
  EXPECT_EQ(s.n, 3u);
  EXPECT_DOUBLE_EQ(s.mean, 12);
  EXPECT_TRUE(s.has_interval);
  EXPECT_NEAR(s.lo, 12 - t2 * 2 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(s.hi, 12 + t2 * 2 / std::sqrt(3.0), 1e-9);
  // Equal replicates: the value itself, width 0 (0.1 three times is 0.1, not 0.1000...02).
  s = sw::summarize({0.1, 0.1, 0.1});
  EXPECT_EQ(s.mean, 0.1);
  EXPECT_EQ(s.lo, 0.1);
  EXPECT_EQ(s.hi, 0.1);
  // One replicate: a mean, no interval.
  s = sw::summarize({5});
  EXPECT_EQ(s.mean, 5);
  EXPECT_FALSE(s.has_interval);
  EXPECT_EQ(sw::summarize({}).n, 0u);
}

// A stats.json as `iommusim run` writes it: counters, values and one histogram per lane.
json stats_json(const std::vector<std::pair<std::string, double>>& values, const std::string& hist_lane = "",
                double hist_p99 = 0) {
  json list = json::array();
  for (const auto& [name, v] : values)
    list.push_back({{"name", name}, {"kind", "value"}, {"value", v}, {"unit", ""}, {"description", ""}});
  if (!hist_lane.empty())
    list.push_back({{"name", hist_lane + ".driver.invalidation.latency"}, {"kind", "histogram"}, {"count", 4},
                    {"mean", 1.0}, {"min", 1.0}, {"p50", 1.0}, {"p90", 1.0}, {"p99", hist_p99}, {"max", 9.0}});
  return {{"ok", true}, {"error", ""}, {"stats", list}};
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') { cell += '"'; ++i; }
      else if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) { cells.push_back(cell); cell.clear(); }
      else cell += c;
    }
    cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

TEST(SweepCsv, OneRowPerCombinationVendorAndPathWithMeansAndIntervals) {
  const sw::Spec s = spec(R"({"sweep": {"iommu.vendor": ["smmuv3", "a,b"]}, "seeds": [1, 2, 3],
    "stats": ["iommu.iotlb.hit_rate", "driver.invalidation.latency.p99", "x.*"]})");
  // "a,b" is not a vendor the simulator knows, but parsing only checks the type: fine here,
  // and it shows that a cell with a comma gets quoted.
  const auto points = sw::expand(s);
  ASSERT_EQ(points.size(), 6u);
  std::vector<json> stats(6);
  // Combination 0: lanes smmuv3 (native) and smmuv3@trapped; hit rates 0.5, 0.6, 0.7 (mean 0.6,
  // s = 0.1); trapped 0.2 in every seed; p99 of the native histogram 100, 110, 120 (mean
  // 110, s = 10). Seed 3 lacks the trapped lane.
  stats[0] = stats_json({{"smmuv3.iommu.iotlb.hit_rate", 0.5}, {"smmuv3@trapped.iommu.iotlb.hit_rate", 0.2},
                         {"smmuv3.x.b", 1}, {"smmuv3.x.a", 2}}, "smmuv3", 100);
  stats[1] = stats_json({{"smmuv3.iommu.iotlb.hit_rate", 0.6}, {"smmuv3@trapped.iommu.iotlb.hit_rate", 0.2},
                         {"smmuv3.x.b", 1}, {"smmuv3.x.a", 2}}, "smmuv3", 110);
  stats[2] = stats_json({{"smmuv3.iommu.iotlb.hit_rate", 0.7}, {"smmuv3.x.b", 1}, {"smmuv3.x.a", 2}}, "smmuv3", 120);
  // Combination 1: only seed 2 is done (seeds 1 and 3 are not): one replicate, no interval.
  stats[4] = stats_json({{"vtd.iommu.iotlb.hit_rate", 0.25}});
  const auto rows = parse_csv(sw::merge_csv(s, points, stats));
  const double t2 = 0.95 / std::sqrt(2 * 0.975 * 0.025);
  ASSERT_EQ(rows.size(), 4u);   // header, smmuv3 native, smmuv3 trapped, vtd
  // The glob x.* expands to the names it matches, sorted: x.a, x.b.
  EXPECT_EQ(rows[0], (std::vector<std::string>{
                         "iommu.vendor", "vendor", "path", "replicates", "iommu.iotlb.hit_rate",
                         "iommu.iotlb.hit_rate.ci95_lo", "iommu.iotlb.hit_rate.ci95_hi", "driver.invalidation.latency.p99",
                         "driver.invalidation.latency.p99.ci95_lo", "driver.invalidation.latency.p99.ci95_hi", "x.a",
                         "x.a.ci95_lo", "x.a.ci95_hi", "x.b", "x.b.ci95_lo", "x.b.ci95_hi"}));
  auto num = [](const std::string& c) { return std::stod(c); };
  const auto& native = rows[1];
  EXPECT_EQ(std::vector<std::string>(native.begin(), native.begin() + 4), (std::vector<std::string>{"smmuv3", "smmuv3", "native", "3"}));
  EXPECT_NEAR(num(native[4]), 0.6, 1e-12);
  EXPECT_NEAR(num(native[5]), 0.6 - t2 * 0.1 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(num(native[6]), 0.6 + t2 * 0.1 / std::sqrt(3.0), 1e-9);
  EXPECT_EQ(native[7], "110");   // integral values are written without a decimal point
  EXPECT_NEAR(num(native[8]), 110 - t2 * 10 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(num(native[9]), 110 + t2 * 10 / std::sqrt(3.0), 1e-9);
  EXPECT_EQ(std::vector<std::string>(native.begin() + 10, native.end()),
            (std::vector<std::string>{"2", "2", "2", "1", "1", "1"}));
  // The trapped lane: 2 replicates, equal values, no p99 (its lane has no histogram).
  EXPECT_EQ(rows[2], (std::vector<std::string>{"smmuv3", "smmuv3", "trapped", "2", "0.2", "0.2", "0.2", "", "", "", "", "", "",
                                               "", "", ""}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"a,b", "vtd", "native", "1", "0.25", "", "", "", "", "", "", "", "", "", "",
                                               ""}));
  // The raw text quotes the comma.
  EXPECT_NE(sw::merge_csv(s, points, stats).find("\n\"a,b\",vtd,native,1,0.25,"), std::string::npos);
}

TEST(SweepCsv, AStatThatMatchesNothingIsAnError) {
  sw::Spec s = spec(R"({"stats": ["iommu.iotlb.hit_rat"]})");
  const auto points = sw::expand(s);
  const std::vector<json> stats = {stats_json({{"vtd.iommu.iotlb.hit_rate", 0.25}})};
  try {
    sw::merge_csv(s, points, stats);
    FAIL() << "no error";
  } catch (const sw::SweepError& e) {
    EXPECT_NE(std::string(e.what()).find("stats[0]: no finished point has a stat \"iommu.iotlb.hit_rat\""), std::string::npos)
        << e.what();
  }
  // Written with its lane: the hint says to leave it out.
  s = spec(R"({"stats": ["vtd.iommu.iotlb.hit_rate"]})");
  try {
    sw::merge_csv(s, points, stats);
    FAIL() << "no error";
  } catch (const sw::SweepError& e) {
    EXPECT_NE(std::string(e.what()).find("leave out the lane: write \"iommu.iotlb.hit_rate\""), std::string::npos) << e.what();
  }
  // With no point done there is nothing to check against: a header only.
  EXPECT_EQ(sw::merge_csv(s, points, {json()}),
            "vendor,path,replicates,vtd.iommu.iotlb.hit_rate,vtd.iommu.iotlb.hit_rate.ci95_lo,vtd.iommu.iotlb.hit_rate.ci95_hi\n");
}

// What a point keeps of its stats.json (chosen_stats) merges to the same CSV, text for text,
// as the stats.json itself; kept for another stats selection, it is refused.
TEST(SweepCsv, ChosenStatsMergeLikeTheirStatsJson) {
  const sw::Spec s = spec(R"({"seeds": [1, 2, 3], "stats": ["iommu.iotlb.hit_rate", "x.*"]})");
  const auto points = sw::expand(s);
  std::vector<json> stats(3);
  stats[0] = stats_json({{"smmuv3.iommu.iotlb.hit_rate", 0.1}, {"smmuv3@trapped.iommu.iotlb.hit_rate", 1.0 / 3},
                         {"smmuv3.x.b", 1}, {"smmuv3.y", 5}}, "smmuv3", 100);
  stats[2] = stats_json({{"smmuv3.iommu.iotlb.hit_rate", 0.7}, {"smmuv3.x.a", 2}});
  sw::CsvMerger from_kept(s, points);
  for (size_t i : {0u, 2u}) {
    const json kept = sw::chosen_stats(s, stats[i], i);
    // Only the chosen stats' values are kept (y and the histogram are not), but every name.
    EXPECT_FALSE(kept.dump().find("\"y\":") != std::string::npos) << kept.dump();
    EXPECT_EQ(kept["names"].dump().find("\"y\"") != std::string::npos, i == 0) << kept.dump();
    ASSERT_TRUE(from_kept.add_chosen(i, json::parse(kept.dump())));
  }
  EXPECT_EQ(from_kept.csv(), sw::merge_csv(s, points, stats));
  EXPECT_NE(from_kept.csv().find("\nsmmuv3,trapped,1,0.3333333333333333,"), std::string::npos) << from_kept.csv();

  const sw::Spec other = spec(R"({"seeds": [1, 2, 3], "stats": ["iommu.iotlb.hit_rate"]})");
  sw::CsvMerger m(other, points);
  EXPECT_FALSE(m.add_chosen(0, sw::chosen_stats(s, stats[0], 0)));
  EXPECT_FALSE(m.add_chosen(0, json::object()));
  // A name that matches nothing is still explained from the kept names.
  const sw::Spec lane_named = spec(R"({"seeds": [1, 2, 3], "stats": ["smmuv3.iommu.iotlb.hit_rate"]})");
  sw::CsvMerger e(lane_named, points);
  ASSERT_TRUE(e.add_chosen(0, sw::chosen_stats(lane_named, stats[0], 0)));
  try {
    e.csv();
    FAIL() << "no error";
  } catch (const sw::SweepError& err) {
    EXPECT_NE(std::string(err.what()).find("leave out the lane: write \"iommu.iotlb.hit_rate\""), std::string::npos)
        << err.what();
  }
}

TEST(SweepCsv, NumbersReadBackExactly) {
  EXPECT_EQ(sw::format_number(20000), "20000");
  EXPECT_EQ(sw::format_number(-3), "-3");
  EXPECT_EQ(sw::format_number(0.1), "0.1");
  EXPECT_EQ(std::stod(sw::format_number(1.0 / 3)), 1.0 / 3);
  EXPECT_EQ(sw::format_value(json("s1")), "s1");
  EXPECT_EQ(sw::format_value(json(true)), "true");
  EXPECT_EQ(sw::csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
}

}  // namespace

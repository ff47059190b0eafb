// Folders and files the report tests build by hand: a run folder whose figures are worked
// out below, a sweep folder laid out as docs/sweep.md says, a stand-in plotting library,
// and reading the plots back out of a report's HTML.
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace iommusim::test {

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// smmuv3 on the native path and on a trapped path (a lane named smmuv3@trapped):
// - invalidation latency: native 2 samples in [1000, 1016) ns and 2 in [1024, 1056);
//   trapped 1 in [5000, 5120);
// - walk reads: 3 walks of 2 reads, 1 of 4;
// - iotlb: 3 hits, 1 miss; a cache never looked up; the oracle: 10 DMAs checked;
// - invalidations.json: unmaps with software 100 and 300 ns, sync 70 and 90 ns; one
//   domain flush with an "atc" phase of 40 ns.
inline void make_run_folder(const std::filesystem::path& dir) {
  using nlohmann::json;
  auto counter = [](const std::string& name, double v) {
    return json{{"name", name}, {"kind", "counter"}, {"value", v}, {"unit", "count"}, {"description", "test"}};
  };
  auto hist = [](const std::string& name, const std::string& unit, double count, json buckets) {
    return json{{"name", name}, {"kind", "histogram"}, {"unit", unit}, {"description", "test"}, {"count", count},
                {"buckets", buckets}};
  };
  json stats = json::array({
      counter("smmuv3.endpoint.transactions", 10), counter("smmuv3.oracle.checked", 10),
      counter("smmuv3.oracle.permitted_stale", 0), counter("smmuv3.oracle.violations", 0),
      counter("smmuv3.iommu.iotlb.hits", 3), counter("smmuv3.iommu.iotlb.misses", 1),
      counter("smmuv3.iommu.spare_cache.hits", 0), counter("smmuv3.iommu.spare_cache.misses", 0),
      json{{"name", "smmuv3.iommu.iotlb.hit_rate"}, {"kind", "value"}, {"value", 0.75}, {"unit", "ratio"}, {"description", "t"}},
      json{{"name", "smmuv3.iommu.spare_cache.hit_rate"}, {"kind", "value"}, {"value", 0}, {"unit", "ratio"}, {"description", "t"}},
      hist("smmuv3.driver.invalidation.latency", "ns", 4, json::array({{1000, 1016, 2}, {1024, 1056, 2}})),
      hist("smmuv3.iommu.walk_reads", "reads", 4, json::array({{2, 3, 3}, {4, 5, 1}})),
      hist("smmuv3@trapped.driver.invalidation.latency", "ns", 1, json::array({{5000, 5120, 1}})),
  });
  write_file(dir / "stats.json", json{{"ok", true}, {"error", ""}, {"stats", stats}}.dump(2));
  json unmap1 = {{"op", "unmap"}, {"start_ns", 1}, {"commands", 2}, {"software_ns", 100}, {"queueing_ns", 0},
                 {"fetch_ns", 10}, {"execution_ns", 20}, {"sync_ns", 70}, {"total_ns", 200}};
  json unmap2 = unmap1;
  unmap2["software_ns"] = 300;
  unmap2["sync_ns"] = 90;
  json flush = {{"op", "invalidate_domain"}, {"start_ns", 2}, {"software_ns", 50}, {"queueing_ns", 0}, {"fetch_ns", 10},
                {"execution_ns", 20}, {"sync_ns", 30}, {"atc_ns", 40}, {"total_ns", 150}};
  write_file(dir / "invalidations.json", json{{"smmuv3", {unmap1, unmap2, flush}}}.dump(1));
  write_file(dir / "config.resolved.json", json{{"iommu", {{"vendor", "smmuv3"}}}, {"sim", {{"seed", 1}}}}.dump());
  write_file(dir / "summary.txt", "iommusim run: test <summary>\n");
}

// Two swept keys; "c" takes strings. vtd runs on the trapped path; one row has a single
// replicate, so no interval.
inline void make_sweep_folder(const std::filesystem::path& dir) {
  write_file(dir / "sweep.json",
             R"({"format": 1, "about": "report test", "spec": "/x/spec.json", "base": "", "keys": ["a.b", "c"],
                 "seeds": [1, 2], "stats": ["x.mean"], "points": []})");
  write_file(dir / "results.csv",
             "a.b,c,vendor,path,replicates,\"x.mean\",x.mean.ci95_lo,x.mean.ci95_hi\n"
             "1,p,smmuv3,native,2,10,9,11\n"
             "10,p,smmuv3,native,1,20,,\n"
             "100,p,vtd,trapped,2,30,28,32\n"
             "1,q,smmuv3,native,2,12,11,13\r\n");
}

// A node_modules folder whose three bundles are the given code.
inline void make_fake_library(const std::filesystem::path& dir, const std::string& code) {
  for (const char* p : {"vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"})
    write_file(dir / p, code);
}

// The plots a report's HTML carries: [{id, title, spec}].
inline nlohmann::json plots_in(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-plots\">";
  const size_t start = html.find(open);
  if (start == std::string::npos) return nullptr;
  const size_t end = html.find("</script>", start);
  return nlohmann::json::parse(html.substr(start + open.size(), end - start - open.size()));
}

}  // namespace iommusim::test

// The path comparison (issue 13 item 5, docs/vmm.md "Comparing the paths"): the shipped sweep
// spec configs/presets/path_comparison.sweep.json, run small, through the binary. Checks what
// the comparison promises: every path of every vendor ran on the same guest traffic, each
// record's parts add up to its latency, the accelerated paths have no trap component, and the
// guest invalidation latency orders native < accelerated < trapped.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"

namespace {
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using iommusim::test::run_cli;

// One CSV line, with quoted cells ("trapped,accelerated,virtio").
std::vector<std::string> csv_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') cells.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) cells.emplace_back();
    else cells.back() += c;
  }
  return cells;
}

// results.csv as one map per row, by column name.
std::vector<std::map<std::string, std::string>> read_results(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::map<std::string, std::string>> rows;
  if (!std::getline(in, line)) return rows;
  const std::vector<std::string> header = csv_line(line);
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = csv_line(line);
    EXPECT_EQ(cells.size(), header.size()) << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < std::min(cells.size(), header.size()); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

double num(const std::map<std::string, std::string>& row, const std::string& col) {
  const auto it = row.find(col);
  if (it == row.end() || it->second.empty()) {
    ADD_FAILURE() << "no value for " << col;
    return NAN;
  }
  return std::stod(it->second);
}

const char* const kParts[] = {"software", "lock", "trap", "vmm", "host_kernel", "host_queue", "return",
                              "queueing", "fetch", "execution", "atc", "sync"};

TEST(PathComparison, EveryPathRunsAndItsBreakdownAddsUp) {
  // The shipped spec, with fewer DMAs and CPUs so it runs in seconds.
  std::ifstream in(std::string(IOMMUSIM_SOURCE_DIR) + "/configs/presets/path_comparison.sweep.json");
  ojson spec = ojson::parse(in, nullptr, true, /*ignore_comments=*/true);
  spec["set"]["traffic.transactions"] = 3000;
  spec["sweep"]["dma_api.cpus"] = {1, 4};
  const std::string dir = iommusim::test::fresh_dir("path_comparison");
  iommusim::test::write_file(dir + "/spec.json", spec.dump(2));
  const auto r = run_cli("sweep " + dir + "/spec.json -o " + dir + "/out -j 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;

  const auto rows = read_results(dir + "/out/results.csv");
  // Per CPU count: native and virtio on three vendors, trapped on three, accelerated on two
  // (VT-d has none): 3 + 3 + 2 + 3 = 11 lanes.
  ASSERT_EQ(rows.size(), 2u * 11u);
  std::map<std::string, double> p50;   // "vendor path cpus"
  for (const auto& row : rows) {
    const std::string lane = row.at("vendor") + "@" + row.at("path") + " cpus " + row.at("dma_api.cpus");
    SCOPED_TRACE(lane);
    EXPECT_FALSE(row.at("vendor") == "vtd" && row.at("path") == "accelerated");
    // The parts' means add up to the latency's mean (each record's parts add up to it).
    // A native lane has no VMM parts (no column value); every guest path reports them.
    const bool native = row.at("path") == "native";
    auto part = [&](const std::string& name) {
      const std::string col = "driver.invalidation." + name + ".mean";
      return native && row.at(col).empty() ? 0.0 : num(row, col);
    };
    double sum = 0;
    for (const char* p : kParts) sum += part(p);
    const double mean = num(row, "driver.invalidation.latency.mean");
    EXPECT_GT(mean, 0);
    EXPECT_NEAR(sum, mean, mean * 1e-6);
    // Only the trapped and virtio paths leave the guest for the VMM (a virtio doorbell is an
    // ioeventfd: its exit and resume are one trap part, with no VM entry of the VMM's own).
    const std::string path = row.at("path");
    for (const char* p : {"trap", "vmm", "host_kernel", "return"}) {
      if (path == "native" || path == "accelerated") {
        EXPECT_EQ(part(p), 0) << p;
      } else if (path == "trapped" || std::string(p) != "return") {
        EXPECT_GT(part(p), 0) << p;
      }
    }
    EXPECT_GT(num(row, "run.map_unmap_throughput"), 0);
    p50[row.at("vendor") + " " + row.at("path") + " " + row.at("dma_api.cpus")] =
        num(row, "driver.invalidation.latency.p50");
  }
  // Guest invalidation latency: native below accelerated below trapped (VT-d: below trapped).
  for (const char* cpus : {"1", "4"})
    for (const std::string v : {"smmuv3", "vtd", "amdvi"}) {
      SCOPED_TRACE(v + " cpus " + cpus);
      const double native = p50[v + " native " + cpus], trapped = p50[v + " trapped " + cpus];
      EXPECT_LT(native, trapped);
      if (v == "vtd") continue;
      const double accelerated = p50[v + " accelerated " + cpus];
      EXPECT_LT(native, accelerated);
      EXPECT_LT(accelerated, trapped);
    }
}

}  // namespace

// `iommusim run --trace`: the timeline of a real run (docs/trace.md). In process: the file
// is valid trace-event JSON; each invalidation's phases tile its slice and equal the
// driver's InvalidationRecord; each DMA's issue, translation and memory tile its slice; a
// hand-worked SMMUv3 unmap. Through the CLI: the size limit, a bad path, identical bytes
// from identical runs, and stats unchanged by tracing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/common/timeline.h"
#include "platforms/config.h"
#include "platforms/system.h"
#include "tests/support/run_cli.h"
#include "tests/support/test_files.h"
#include "tests/support/trace_events.h"

namespace {

using iommusim::test::fresh_dir;
using iommusim::test::read_file;
using iommusim::test::read_trace;
using iommusim::test::run_cli;
using iommusim::test::TraceSlice;

constexpr uint64_t kDmas = 600;   // per lane: about 5 unmap loops of 5 us each

// Runs the config (with `overrides`) in this process with a timeline; returns the trace
// and the invalidation records of the run.
struct TracedRun {
  nlohmann::json trace, records, stats;
};
TracedRun traced_run(const std::string& name, std::vector<std::string> overrides) {
  overrides.push_back("traffic.transactions=" + std::to_string(kDmas));
  const std::string path = fresh_dir("trace_" + name) + "/trace.json";
  iommusim::common::Timeline timeline(path, 1ull << 30);
  iommusim::platforms::System system(iommusim::platforms::load_config("", overrides), &timeline);
  const iommusim::platforms::RunResult r = system.run();
  EXPECT_TRUE(r.ok) << r.error;
  timeline.finish();
  EXPECT_FALSE(timeline.truncated());
  return {read_trace(path), system.invalidation_records(), r.stats};
}

// pid of each lane, by vendor.
std::map<std::string, uint64_t> lanes(const nlohmann::json& trace) {
  std::map<std::string, uint64_t> pids;
  for (const nlohmann::json& e : trace["traceEvents"])
    if (e.value("ph", "") == "M" && e.value("name", "") == "process_name") pids[e["args"]["name"]] = e["pid"];
  return pids;
}

uint64_t ps_of_ns(const nlohmann::json& ns) { return uint64_t(std::llround(ns.get<double>() * 1000)); }

// The run's invalidation records, each found on the lane's CPU track: a slice at its start
// named by its op, as long as its total, whose phases are its non-zero parts in order.
void expect_invalidations_match_records(const TracedRun& run) {
  for (const auto& [vendor, pid] : lanes(run.trace)) {
    SCOPED_TRACE(vendor);
    const auto groups = iommusim::test::tiled_groups(iommusim::test::trace_slices(run.trace, pid, "cpu 0"));
    std::map<uint64_t, const std::pair<TraceSlice, std::vector<TraceSlice>>*> by_start;
    for (const auto& g : groups) by_start[g.first.start_ps] = &g;
    const nlohmann::json& records = run.records.at(vendor);
    ASSERT_GT(records.size(), 2u);
    for (const nlohmann::json& rec : records) {
      const uint64_t start = ps_of_ns(rec["start_ns"]);
      ASSERT_TRUE(by_start.count(start)) << "no slice for " << rec.dump();
      const auto& [slice, phases] = *by_start[start];
      EXPECT_EQ(slice.name, rec["op"].get<std::string>());
      EXPECT_EQ(slice.dur_ps, ps_of_ns(rec["total_ns"]));
      EXPECT_EQ(slice.args["commands"], rec["commands"]);
      std::vector<std::pair<std::string, uint64_t>> expected;
      for (const char* part : {"software", "queueing", "fetch", "execution", "sync"})
        if (const uint64_t ps = ps_of_ns(rec[std::string(part) + "_ns"])) expected.emplace_back(part, ps);
      ASSERT_EQ(phases.size(), expected.size()) << rec.dump();
      for (size_t i = 0; i < phases.size(); ++i) {
        EXPECT_EQ(phases[i].name, expected[i].first);
        EXPECT_EQ(phases[i].dur_ps, expected[i].second) << phases[i].name;
      }
    }
  }
}

// Every DMA is a slice on its slot's track, tiled by issue, translation and memory.
void expect_dmas_tiled(const TracedRun& run, unsigned slots) {
  for (const auto& [vendor, pid] : lanes(run.trace)) {
    SCOPED_TRACE(vendor);
    uint64_t dmas = 0;
    for (unsigned slot = 0; slot < slots; ++slot) {
      const auto groups =
          iommusim::test::tiled_groups(iommusim::test::trace_slices(run.trace, pid, "device ep0 / slot " + std::to_string(slot)));
      for (const auto& [dma, phases] : groups) {
        ++dmas;
        EXPECT_TRUE(dma.name == "DMA read" || dma.name == "DMA write") << dma.name;
        EXPECT_EQ(dma.args["access"], dma.name == "DMA read" ? "read" : "write");
        EXPECT_EQ(dma.args["rid"], 16);
        EXPECT_EQ(dma.args["pasid"], -1);
        EXPECT_EQ(dma.args["result"], "ok");
        EXPECT_EQ(dma.args["address"].get<std::string>().rfind("0x", 0), 0u);
        ASSERT_EQ(phases.size(), 3u) << dma.start_ps;
        // traffic.clock_mhz 250, one issue cycle: 4 ns. A 64-byte access: 80 memory cycles
        // of latency and 2 of transfer at 1 GHz, or more behind another access.
        EXPECT_EQ(phases[0].name, "issue");
        EXPECT_EQ(phases[0].dur_ps, 4000u);
        EXPECT_EQ(phases[1].name, "translation");
        EXPECT_EQ(phases[2].name, "memory");
        EXPECT_GE(phases[2].dur_ps, 82000u);
      }
    }
    EXPECT_EQ(dmas, kDmas);
  }
}

TEST(Trace, EveryVendorsTimelineIsValidAndTilesItsInvalidationsAndDmas) {
  const TracedRun run = traced_run("vendors", {});
  iommusim::test::expect_valid_trace_events(run.trace);
  EXPECT_EQ(lanes(run.trace).size(), 3u);
  expect_invalidations_match_records(run);
  expect_dmas_tiled(run, 8);
  // The queue executes one thing at a time: its slices never overlap.
  for (const auto& [vendor, pid] : lanes(run.trace)) {
    std::vector<TraceSlice> q = iommusim::test::trace_slices(run.trace, pid, "queue");
    ASSERT_GT(q.size(), 6u) << vendor;
    std::sort(q.begin(), q.end(), [](const TraceSlice& a, const TraceSlice& b) { return a.start_ps < b.start_ps; });
    for (size_t i = 1; i < q.size(); ++i) EXPECT_LE(q[i - 1].end_ps(), q[i].start_ps) << vendor << " " << q[i].name;
  }
}

// The first unmap of an SMMUv3 lane, worked from the default config: software = the
// unmap's op_overhead_cycles (400 at 2000 MHz: 200 ns) + one leaf descriptor cleared (20
// cycles: 10 ns) + submit's op_overhead_cycles (200 ns) + two queue entries, CMD_TLBI_NH_VA
// and CMD_SYNC (2 x 30 cycles: 30 ns) + the CMDQ_PROD write (mmio_write_ns 150 ns + one
// SMMU cycle at 1000 MHz: 1 ns) = 591 ns; no queueing (the SMMU fetches at the doorbell);
// fetch = one read of 2 x 16 bytes: 80 cycles of latency + 1 of transfer (32 bytes per
// cycle) at 1000 MHz = 81 ns. Execution and sync take the rest of the slice.
TEST(Trace, SmmuUnmapPhasesWorkedByHand) {
  const TracedRun run = traced_run("smmu_unmap", {"iommu.vendor=smmuv3"});
  const auto groups = iommusim::test::tiled_groups(iommusim::test::trace_slices(run.trace, 1, "cpu 0"));
  const std::pair<TraceSlice, std::vector<TraceSlice>>* unmap = nullptr;
  for (const auto& g : groups)
    if (g.first.name == "unmap" && !unmap) unmap = &g;
  ASSERT_NE(unmap, nullptr);
  const auto& phases = unmap->second;
  ASSERT_EQ(phases.size(), 4u);
  EXPECT_EQ(phases[0].name, "software");
  EXPECT_EQ(phases[0].dur_ps, 591000u);
  EXPECT_EQ(phases[1].name, "fetch");
  EXPECT_EQ(phases[1].dur_ps, 81000u);
  EXPECT_EQ(phases[2].name, "execution");
  EXPECT_EQ(phases[3].name, "sync");
  EXPECT_EQ(phases[1].start_ps, unmap->first.start_ps + 591000u);
  EXPECT_EQ(phases[3].end_ps(), unmap->first.end_ps());
}

// ---------------------------------------------------------------------------------------
// Through the command line.

std::string cli_run(const std::string& dir, const std::string& extra) {
  return "run --force -o " + dir + " -p traffic.transactions=" + std::to_string(kDmas) + " " + extra;
}

TEST(TraceCli, IdenticalRunsGiveIdenticalBytesAndTracingLeavesStatsAlone) {
  const std::string dir = fresh_dir("trace_cli_same");
  const auto a = run_cli(cli_run(dir + "/a", "--trace " + dir + "/a.json"));
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_NE(a.out.find("trace in " + dir + "/a.json ("), std::string::npos) << a.out;
  ASSERT_EQ(run_cli(cli_run(dir + "/b", "--trace " + dir + "/b.json")).exit_code, 0);
  ASSERT_EQ(run_cli(cli_run(dir + "/plain", "")).exit_code, 0);
  const std::string trace = read_file(dir + "/a.json");
  EXPECT_GT(trace.size(), 1000u);
  EXPECT_EQ(trace, read_file(dir + "/b.json"));
  for (const char* f : {"stats.json", "invalidations.json"}) {
    EXPECT_EQ(read_file(dir + "/a/" + f), read_file(dir + "/plain/" + f)) << f;
    EXPECT_FALSE(read_file(dir + "/a/" + f).empty()) << f;
  }
}

TEST(TraceCli, SizeLimitSaysSoOnceAndLeavesValidJson) {
  const std::string dir = fresh_dir("trace_cli_limit");
  const auto r = run_cli(cli_run(dir + "/run", "--trace " + dir + "/t.json --trace-limit 0.1"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string msg = "trace: size limit 0.1 MB reached at t=";
  const size_t at = r.out.find(msg);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(msg, at + 1), std::string::npos) << "said twice:\n" << r.out;
  EXPECT_NE(r.out.find(" us; later events are not recorded", at), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated at --trace-limit"), std::string::npos) << r.out;
  EXPECT_LE(read_file(dir + "/t.json").size(), 100000u);
  const nlohmann::json j = read_trace(dir + "/t.json");
  iommusim::test::expect_valid_trace_events(j);
  EXPECT_EQ(j["traceEvents"].back()["ph"], "i");
  EXPECT_GT(j["traceEvents"].size(), 100u);
}

TEST(TraceCli, UnwritableFileIsAUsageErrorBeforeSimulating) {
  const std::string dir = fresh_dir("trace_cli_bad");
  const auto r = run_cli(cli_run(dir + "/run", "--trace " + dir + "/missing/t.json"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--trace: cannot write the trace file " + dir + "/missing/t.json: No such file or directory"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/run/stats.json"));
  const auto limit = run_cli(cli_run(dir + "/run", "--trace " + dir + "/t.json --trace-limit 0"));
  EXPECT_EQ(limit.exit_code, 2) << limit.out;
  EXPECT_NE(limit.out.find("--trace-limit"), std::string::npos) << limit.out;
}

}  // namespace

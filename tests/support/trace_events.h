// Reading back a trace-event file (models/common/timeline.h) in tests: the fields each
// event type must carry ("Trace Event Format", Google: complete events "X", metadata "M",
// instant "i"), times back to integer picoseconds, and slices grouped by track.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_files.h"

namespace iommusim::test {

// A microsecond time written with six decimals, back in picoseconds.
inline uint64_t trace_ps(const nlohmann::json& us) { return uint64_t(std::llround(us.get<double>() * 1e6)); }

// The file as JSON; a parse error fails the test and gives an empty object.
inline nlohmann::json read_trace(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << path << " is not JSON: " << e.what();
    return nlohmann::json::object();
  }
}

// Fails the test for each event that lacks what its phase type needs.
inline void expect_valid_trace_events(const nlohmann::json& trace) {
  ASSERT_TRUE(trace.is_object());
  ASSERT_TRUE(trace.contains("traceEvents") && trace["traceEvents"].is_array());
  EXPECT_EQ(trace.value("displayTimeUnit", ""), "ns");
  for (const nlohmann::json& e : trace["traceEvents"]) {
    ASSERT_TRUE(e.is_object()) << e.dump();
    const std::string ph = e.value("ph", "");
    EXPECT_TRUE(e.contains("name") && e["name"].is_string()) << e.dump();
    EXPECT_TRUE(e.contains("pid") && e["pid"].is_number_unsigned()) << e.dump();
    EXPECT_TRUE(e.contains("tid") && e["tid"].is_number_unsigned()) << e.dump();
    if (ph == "X") {
      EXPECT_TRUE(e.contains("ts") && e["ts"].is_number() && e["ts"].get<double>() >= 0) << e.dump();
      EXPECT_TRUE(e.contains("dur") && e["dur"].is_number() && e["dur"].get<double>() >= 0) << e.dump();
      EXPECT_TRUE(e.contains("cat") && e["cat"].is_string()) << e.dump();
      if (e.contains("args")) {
        EXPECT_TRUE(e["args"].is_object()) << e.dump();
      }
    } else if (ph == "M") {
      const std::string name = e.value("name", "");
      EXPECT_TRUE(name == "process_name" || name == "thread_name" || name == "process_sort_index" ||
                  name == "thread_sort_index")
          << e.dump();
      ASSERT_TRUE(e.contains("args") && e["args"].is_object()) << e.dump();
      const char* value = name.find("_name") != std::string::npos ? "name" : "sort_index";
      EXPECT_TRUE(value[0] == 'n' ? e["args"][value].is_string() : e["args"][value].is_number_integer()) << e.dump();
    } else if (ph == "i") {
      EXPECT_TRUE(e.contains("ts") && e["ts"].is_number()) << e.dump();
      EXPECT_EQ(e.value("s", ""), "g") << e.dump();
    } else {
      ADD_FAILURE() << "unexpected phase type: " << e.dump();
    }
  }
}

struct TraceSlice {
  std::string name;
  uint64_t start_ps, dur_ps;
  nlohmann::json args;
  uint64_t end_ps() const { return start_ps + dur_ps; }
};

// Track names by (pid, tid), from the thread_name metadata.
inline std::map<std::pair<uint64_t, uint64_t>, std::string> trace_track_names(const nlohmann::json& trace) {
  std::map<std::pair<uint64_t, uint64_t>, std::string> names;
  for (const nlohmann::json& e : trace["traceEvents"])
    if (e.value("ph", "") == "M" && e.value("name", "") == "thread_name")
      names[{e["pid"].get<uint64_t>(), e["tid"].get<uint64_t>()}] = e["args"]["name"].get<std::string>();
  return names;
}

// The complete events of the track named `track` in process `pid`, in file order.
inline std::vector<TraceSlice> trace_slices(const nlohmann::json& trace, uint64_t pid, const std::string& track) {
  uint64_t tid = ~0ull;
  for (const auto& [key, name] : trace_track_names(trace))
    if (key.first == pid && name == track) tid = key.second;
  EXPECT_NE(tid, ~0ull) << "no track " << track << " in process " << pid;
  std::vector<TraceSlice> out;
  for (const nlohmann::json& e : trace["traceEvents"])
    if (e.value("ph", "") == "X" && e["pid"] == pid && e["tid"] == tid)
      out.push_back({e["name"], trace_ps(e["ts"]), trace_ps(e["dur"]), e.value("args", nlohmann::json::object())});
  return out;
}

// Splits a track's slices into each top-level slice and the slices inside it, checking
// that the children tile the parent: contiguous, from its start to its end. The timeline
// writes a parent before its phases, and a track's top-level slices one after another,
// so a slice that starts before the last parent's end is one of its phases.
inline std::vector<std::pair<TraceSlice, std::vector<TraceSlice>>> tiled_groups(const std::vector<TraceSlice>& slices) {
  std::vector<std::pair<TraceSlice, std::vector<TraceSlice>>> groups;
  for (const TraceSlice& s : slices) {
    if (!groups.empty() && s.start_ps < groups.back().first.end_ps()) {
      EXPECT_GE(s.start_ps, groups.back().first.start_ps) << s.name << " starts before the slice it is in";
      EXPECT_LE(s.end_ps(), groups.back().first.end_ps()) << s.name << " ends after the slice it is in";
      groups.back().second.push_back(s);
    } else {
      groups.push_back({s, {}});
    }
  }
  for (const auto& [parent, children] : groups) {
    if (children.empty()) continue;
    uint64_t at = parent.start_ps;
    for (const TraceSlice& c : children) {
      EXPECT_EQ(c.start_ps, at) << parent.name << " at " << parent.start_ps << " ps: " << c.name << " is not contiguous";
      at = c.end_ps();
    }
    EXPECT_EQ(at, parent.end_ps()) << parent.name << " at " << parent.start_ps << " ps: its phases do not reach its end";
  }
  return groups;
}

}  // namespace iommusim::test

// The trace-event writer on its own (no simulation: the time of a truncation is 0): the
// exact microsecond text of picosecond times, metadata, nested phases that tile their
// slice (cut at its end, empty ones left out), escaping, the size limit and a bad path.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/common/timeline.h"
#include "tests/support/test_files.h"
#include "tests/support/trace_events.h"

namespace iommusim::common {
namespace {

using test::read_file;
using test::read_trace;

std::string temp_file(const std::string& name) { return test::fresh_dir("timeline_" + name) + "/trace.json"; }

TEST(Timeline, TimesAreExactMicrosecondsWithSixDecimals) {
  const std::string path = temp_file("times");
  {
    Timeline t(path, 1 << 20);
    const Timeline::Track track = t.track(t.process("lane"), "cpu 0");
    t.slice(track, "c", "a", 0, 1);                                   // 0 ps, 1 ps
    t.slice(track, "c", "b", 1234567, 999999);                        // 1.234567 us, 0.999999 us
    t.slice(track, "c", "c", 12345678901234567ull, 1000000, "{\"k\":1}");   // past 2^53 ps as a double
    t.finish();
  }
  const std::string text = read_file(path);
  EXPECT_NE(text.find("\"name\":\"a\",\"ts\":0.000000,\"dur\":0.000001}"), std::string::npos) << text;
  EXPECT_NE(text.find("\"name\":\"b\",\"ts\":1.234567,\"dur\":0.999999}"), std::string::npos) << text;
  EXPECT_NE(text.find("\"ts\":12345678901.234567,\"dur\":1.000000,\"args\":{\"k\":1}}"), std::string::npos) << text;
  const nlohmann::json j = read_trace(path);
  test::expect_valid_trace_events(j);
  ASSERT_EQ(j["traceEvents"].size(), 7u);   // process name + sort, track name + sort, 3 slices
}

TEST(Timeline, ProcessesAndTracksAreNamedInCreationOrder) {
  const std::string path = temp_file("names");
  {
    Timeline t(path, 1 << 20);
    const uint32_t a = t.process("smmuv3"), b = t.process("vt\"d\n");   // escaped
    EXPECT_EQ(a, 1u);
    EXPECT_EQ(b, 2u);
    t.track(a, "cpu 0");
    t.track(b, "cpu 0");
    t.track(a, "queue");
  }   // the destructor finishes the file
  const nlohmann::json j = read_trace(path);
  test::expect_valid_trace_events(j);
  const auto names = test::trace_track_names(j);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names.at({1, 1}), "cpu 0");
  EXPECT_EQ(names.at({2, 2}), "cpu 0");   // tids are unique across processes
  EXPECT_EQ(names.at({1, 3}), "queue");
  bool found = false;
  for (auto& e : j["traceEvents"])
    if (e["name"] == "process_name" && e["pid"] == 2) found = e["args"]["name"] == "vt\"d\n";
  EXPECT_TRUE(found);
}

// Phases of 3, 0 and 5 ps in a 10 ps slice: 3 + 5 laid end to end, the empty one left out
// (they do not tile it: 2 ps are left); in a 6 ps slice the 5 ps phase is cut to 3 ps.
TEST(Timeline, NestedPhasesAreLaidEndToEndAndCutAtTheEnd) {
  const std::string path = temp_file("nested");
  {
    Timeline t(path, 1 << 20);
    const Timeline::Track track = t.track(t.process("lane"), "cpu 0");
    t.nested(track, "c", "long", 100, 10, nullptr, {{"a", 3}, {"b", 0}, {"c", 5}});
    t.nested(track, "c", "short", 200, 6, "{}", {{"a", 3}, {"b", 0}, {"c", 5}});
    t.nested(track, "c", "exact", 300, 8, nullptr, {{"a", 3}, {"c", 5}});
  }
  const nlohmann::json j = read_trace(path);
  test::expect_valid_trace_events(j);
  const std::vector<test::TraceSlice> s = test::trace_slices(j, 1, "cpu 0");
  ASSERT_EQ(s.size(), 9u);
  const std::pair<uint64_t, uint64_t> expected[] = {{100, 10}, {100, 3}, {103, 5}, {200, 6}, {200, 3},
                                                    {203, 3},  {300, 8}, {300, 3}, {303, 5}};
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].start_ps, expected[i].first) << i;
    EXPECT_EQ(s[i].dur_ps, expected[i].second) << i;
  }
  EXPECT_EQ(s[2].name, "c");
  // Only the last one tiles its slice.
  EXPECT_EQ(s[7].start_ps, s[6].start_ps);
  EXPECT_EQ(s[8].end_ps(), s[6].end_ps());
}

// 30 groups of 3 events (~80 bytes each) cannot fit in 4000 bytes: the recording stops at
// a group boundary with one message, the file ends with the truncation event, stays under
// the limit and is valid JSON.
TEST(Timeline, SizeLimitStopsRecordingWholeGroupsAndKeepsTheFileValid) {
  const std::string path = temp_file("limit");
  testing::internal::CaptureStderr();
  uint64_t bytes = 0;
  {
    Timeline t(path, 4000);
    const Timeline::Track track = t.track(t.process("lane"), "device ep0 / slot 0");
    for (int i = 0; i < 30; ++i) t.nested(track, "dma", "DMA read", 1000 * i, 900, nullptr, {{"issue", 100}, {"memory", 800}});
    EXPECT_TRUE(t.truncated());
    t.finish();
    bytes = t.bytes();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "trace: size limit 0.004 MB reached at t=0.000000 us; later events are not recorded (--trace-limit)\n");
  EXPECT_EQ(read_file(path).size(), bytes);
  EXPECT_LE(bytes, 4000u);
  const nlohmann::json j = read_trace(path);
  test::expect_valid_trace_events(j);
  const auto& events = j["traceEvents"];
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["ph"], "i");
  EXPECT_EQ(events.back()["args"]["limit_bytes"], 4000);
  const std::vector<test::TraceSlice> s = test::trace_slices(j, 1, "device ep0 / slot 0");
  EXPECT_EQ(s.size() % 3, 0u);
  EXPECT_GT(s.size(), 3u);
  EXPECT_LT(s.size(), 90u);
  for (const auto& [parent, phases] : test::tiled_groups(s)) EXPECT_EQ(phases.size(), 2u) << parent.start_ps;
}

TEST(Timeline, AnUnwritablePathIsAnErrorNamingIt) {
  const std::string path = test::fresh_dir("timeline_bad") + "/no/such/folder/trace.json";
  try {
    Timeline t(path, 1 << 20);
    ADD_FAILURE() << "opened " << path;
  } catch (const TimelineError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace iommusim::common

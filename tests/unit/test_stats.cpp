#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "models/common/stats.h"

using namespace iommusim::common;

TEST(Histogram, ExactBelowLinearRange) {
  Histogram h;
  for (uint64_t v = 1; v <= 50; ++v) h.record(v);
  EXPECT_EQ(h.count(), 50u);
  EXPECT_EQ(h.percentile(0.5), 25u);
  EXPECT_EQ(h.percentile(0.9), 45u);
  EXPECT_EQ(h.percentile(0.99), 50u);
  EXPECT_EQ(h.max(), 50u);
  EXPECT_DOUBLE_EQ(h.mean(), 25.5);
}

TEST(Histogram, BoundedRelativeErrorForLargeValues) {
  Histogram h;
  for (uint64_t v = 1000; v < 101000; v += 1000) h.record(v);   // 100 samples
  const uint64_t p50 = h.percentile(0.5);                        // true value 50000
  EXPECT_GE(p50, 50000u);
  EXPECT_LE(p50, 50000u * 1.04);
  EXPECT_EQ(h.percentile(1.0), 100000u);                         // clamped to max
}

TEST(Histogram, BucketBoundariesAreContiguous) {
  for (unsigned b = 0; b + 1 < Histogram::kBuckets; ++b)
    ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_upper(b) + 1), b + 1) << b;
  EXPECT_EQ(Histogram::bucket_of(~0ull), Histogram::kBuckets - 1);
}

TEST(StatRegistry, JsonCarriesUnitsAndPercentiles) {
  StatRegistry reg;
  Counter c; c.inc(3);
  Histogram h; h.record(2000); h.record(4000);
  reg.add("a.count", c, "count", "things");
  reg.add("a.lat", h, "ns", "latency", 1e-3);
  auto j = reg.to_json();
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["value"], 3);
  EXPECT_EQ(j[0]["unit"], "count");
  EXPECT_EQ(j[1]["unit"], "ns");
  EXPECT_DOUBLE_EQ(j[1]["max"].get<double>(), 4.0);
  EXPECT_TRUE(j[1].contains("p99"));
}

// Bucket edges worked by hand from the layout (exact below 64; then per power of two 2^m,
// 32 buckets 2^(m-5) wide): 64..65 is bucket 64, 126..127 bucket 95 (the last of the
// 64-127 octave), 128..131 bucket 96, and 1000 = 62 * 16 + 8 lies in 992..1007, bucket
// 64 + 3 * 32 + 30 = 190.
TEST(Histogram, BucketEdgesByHand) {
  EXPECT_EQ(Histogram::bucket_of(63), 63u);
  EXPECT_EQ(Histogram::bucket_lower(63), 63u);
  EXPECT_EQ(Histogram::bucket_upper(63), 63u);
  EXPECT_EQ(Histogram::bucket_of(64), 64u);
  EXPECT_EQ(Histogram::bucket_of(65), 64u);
  EXPECT_EQ(Histogram::bucket_lower(64), 64u);
  EXPECT_EQ(Histogram::bucket_upper(64), 65u);
  EXPECT_EQ(Histogram::bucket_of(66), 65u);
  EXPECT_EQ(Histogram::bucket_of(127), 95u);
  EXPECT_EQ(Histogram::bucket_lower(95), 126u);
  EXPECT_EQ(Histogram::bucket_of(128), 96u);
  EXPECT_EQ(Histogram::bucket_upper(96), 131u);
  EXPECT_EQ(Histogram::bucket_of(1000), 190u);
  EXPECT_EQ(Histogram::bucket_lower(190), 992u);
  EXPECT_EQ(Histogram::bucket_upper(190), 1007u);
  EXPECT_EQ(Histogram::bucket_upper(Histogram::kBuckets - 1), ~0ull);
}

// {5, 5, 1000}: p50 is rank 2, the value 5, exact; p90 and p99 are rank 3, in bucket
// 992..1007 clamped to the max 1000, so reported as 1000 and known to [992, 1000]: 8 wide.
TEST(Histogram, PercentileBoundsAndResolution) {
  Histogram h;
  h.record(5); h.record(5); h.record(1000);
  EXPECT_EQ(h.percentile(0.5), 5u);
  EXPECT_EQ(h.percentile_bounds(0.5).width(), 0u);
  EXPECT_EQ(h.percentile(0.9), 1000u);
  EXPECT_EQ(h.percentile_bounds(0.9).lo, 992u);
  EXPECT_EQ(h.percentile_bounds(0.99).hi, 1000u);
  EXPECT_EQ(h.resolution({0.5}), 0u);          // min and max are exact
  EXPECT_EQ(h.resolution({0.5, 0.99}), 8u);
}

TEST(Histogram, ResolutionIsZeroBelowTheLinearRange) {
  Histogram h;
  for (uint64_t v = 1; v <= 63; ++v) h.record(v);
  EXPECT_EQ(h.resolution({0.5, 0.9, 0.99}), 0u);
}

TEST(StatRegistry, JsonCarriesBucketsAndResolution) {
  StatRegistry reg;
  Histogram h;
  h.record(5); h.record(5); h.record(1000);
  reg.add("a.lat", h, "ns", "latency", 1e-3);   // recorded in ps
  const auto j = reg.to_json().at(0);
  // [lo, hi, count], lo included and hi excluded, in ns: 5 ps and 992..1007 ps.
  ASSERT_EQ(j["buckets"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["buckets"][0][0].get<double>(), 0.005);
  EXPECT_DOUBLE_EQ(j["buckets"][0][1].get<double>(), 0.006);
  EXPECT_EQ(j["buckets"][0][2], 2);
  EXPECT_DOUBLE_EQ(j["buckets"][1][0].get<double>(), 0.992);
  EXPECT_DOUBLE_EQ(j["buckets"][1][1].get<double>(), 1.008);
  EXPECT_EQ(j["buckets"][1][2], 1);
  EXPECT_DOUBLE_EQ(j["exact_below"].get<double>(), 0.064);
  EXPECT_DOUBLE_EQ(j["resolution"].get<double>(), 0.008);
  EXPECT_DOUBLE_EQ(j["p50"].get<double>(), 0.005);
  EXPECT_DOUBLE_EQ(j["p99"].get<double>(), 1.0);
}

TEST(StatRegistry, EmptyHistogramHasNoBuckets) {
  StatRegistry reg;
  Histogram h;
  reg.add("a.lat", h, "ns", "latency");
  const auto j = reg.to_json().at(0);
  EXPECT_EQ(j["count"], 0);
  EXPECT_TRUE(j["buckets"].empty());
  EXPECT_EQ(j["resolution"], 0.0);
}

// A reset counts afresh under its prefix, spares the kept prefixes and other lanes, and
// leaves the models' own stats untouched.
TEST(StatRegistry, ResetStartsAWindowWithoutTouchingTheModels) {
  StatRegistry reg;
  Counter dmas, checked, other;
  Histogram lat;
  reg.add("a.endpoint.transactions", dmas, "count", "");
  reg.add("a.oracle.checked", checked, "count", "");
  reg.add("b.endpoint.transactions", other, "count", "");
  reg.add("a.lat", lat, "ps", "");
  dmas.inc(10); checked.inc(10); other.inc(7);
  lat.record(1); lat.record(5000);
  reg.reset("a.", {"a.oracle."});
  dmas.inc(4); checked.inc(4); other.inc(1);
  lat.record(30); lat.record(3000);

  EXPECT_EQ(reg.counter("a.endpoint.transactions"), 4u);
  EXPECT_EQ(reg.counter("a.oracle.checked"), 14u);
  EXPECT_EQ(reg.counter("b.endpoint.transactions"), 8u);
  EXPECT_EQ(dmas.value(), 14u);          // the model still sees its whole count
  EXPECT_EQ(lat.count(), 4u);

  // Window {30, 3000}: 30 is exact; 3000 lies in 2944..3007 (46 * 64 + 56), and the
  // whole-life max 5000 does not narrow it, so the max is known to 63.
  const Histogram w = reg.histogram("a.lat");
  EXPECT_EQ(w.count(), 2u);
  EXPECT_EQ(w.sum(), 3030u);
  EXPECT_EQ(w.min(), 30u);
  EXPECT_EQ(w.max(), 3007u);
  EXPECT_EQ(w.max_bounds().lo, 2944u);
  EXPECT_EQ(w.percentile(0.5), 30u);
  EXPECT_EQ(w.percentile(1.0), 3007u);
  EXPECT_FALSE(w.bounds_exact());
  EXPECT_EQ(w.resolution({0.5}), 63u);

  const auto j = reg.to_json();
  EXPECT_EQ(j[0]["value"], 4);
  EXPECT_EQ(j[1]["value"], 14);
  ASSERT_EQ(j[3]["buckets"].size(), 2u);
  EXPECT_EQ(j[3]["buckets"][1][0], 2944.0);
  EXPECT_EQ(j[3]["buckets"][1][1], 3008.0);
  EXPECT_EQ(j[3]["count"], 2);
  EXPECT_THROW(reg.counter("a.nothing"), std::out_of_range);
}

// The window's max is narrowed by the whole-life max when that came after the reset.
TEST(StatRegistry, ResetWindowUsesTheLifetimeMaxWhenItIsNew) {
  StatRegistry reg;
  Histogram lat;
  reg.add("a.lat", lat, "ps", "");
  lat.record(10);
  reg.reset("a.");
  lat.record(3000);
  const Histogram w = reg.histogram("a.lat");
  EXPECT_EQ(w.max(), 3000u);
  EXPECT_EQ(w.min(), 2944u);             // known to its bucket only: 2944..3000
  EXPECT_EQ(w.resolution({}), 56u);
}

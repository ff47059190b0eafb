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

#include <gtest/gtest.h>

#include "models/common/queue_ring.h"

using namespace iommusim::common;

TEST(WrapRing, EmptyFullAndWrap) {
  WrapRing r{2};                  // 4 entries; pointers carry a wrap bit at [2]
  EXPECT_TRUE(r.empty(0, 0));
  EXPECT_TRUE(r.full(0b100, 0b000));   // same index, wrap differs
  EXPECT_FALSE(r.full(0b011, 0b000));
  EXPECT_EQ(r.used(0b001, 0b110), 3u); // prod wrapped past cons
  EXPECT_EQ(r.next(0b111), 0u);
  EXPECT_EQ(r.next(0b011), 0b100u);
}

TEST(OffsetRing, KeepsOneSlotFree) {
  OffsetRing r{64, 16};
  EXPECT_TRUE(r.empty(16, 16));
  EXPECT_TRUE(r.full(0, 48));
  EXPECT_EQ(r.next(48), 0u);
}

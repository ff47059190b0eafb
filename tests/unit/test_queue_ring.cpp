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

TEST(IndexRing, BothConventions) {
  const IndexRing wrap{2, true};   // as WrapRing{2}
  EXPECT_EQ(wrap.pointer_mask(), 0b111u);
  EXPECT_TRUE(wrap.full(0b100, 0b000));
  EXPECT_TRUE(wrap.full(0b001, 0b101));
  EXPECT_FALSE(wrap.full(0b011, 0b000));
  EXPECT_EQ(wrap.used(0b001, 0b110), 3u);
  EXPECT_EQ(wrap.next(0b111), 0u);
  EXPECT_EQ(wrap.index(0b110), 0b10u);
  const IndexRing plain{2, false};   // 4 slots, 3 usable
  EXPECT_EQ(plain.pointer_mask(), 0b11u);
  EXPECT_TRUE(plain.empty(1, 1));
  EXPECT_TRUE(plain.full(3, 0));     // next(3) == 0
  EXPECT_TRUE(plain.full(1, 2));
  EXPECT_FALSE(plain.full(2, 0));
  EXPECT_EQ(plain.used(1, 3), 2u);
  EXPECT_EQ(plain.next(3), 0u);
}

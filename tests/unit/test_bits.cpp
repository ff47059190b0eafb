#include <gtest/gtest.h>

#include "models/common/bits.h"

using namespace iommusim::common;

TEST(Bits, ExtractDepositLiterals) {
  EXPECT_EQ(mask(7, 0), 0xFFull);
  EXPECT_EQ(mask(63, 0), ~0ull);
  EXPECT_EQ(mask(51, 6), 0x000FFFFFFFFFFFC0ull);
  EXPECT_EQ(extract(0xABCD000000000000ull, 63, 48), 0xABCDull);
  EXPECT_EQ(deposit(0, 3, 1, 7), 0xEull);
  EXPECT_EQ(deposit(0xFFFF, 7, 4, 0), 0xFF0Full);
  EXPECT_EQ((Field<63, 59>::set(0, 0x1F)), 0xF800000000000000ull);
  EXPECT_TRUE(overflows(4, 0, 32));
  EXPECT_FALSE(overflows(4, 0, 31));
}

// BusyUnits: reservations on per-unit timelines, worked by hand.
#include <cstdint>

#include <gtest/gtest.h>
#include <systemc>

#include "models/common/resource.h"

namespace iommusim::common {
namespace {

TEST(Resource, OneUnitServesRequestsBackToBack) {
  BusyUnits u("unit", 1);
  EXPECT_EQ(u.reserve(0, 10), 0u);
  EXPECT_EQ(u.reserve(0, 10), 10u);    // behind [0,10)
  EXPECT_EQ(u.reserve(5, 10), 20u);    // behind [10,20)
  EXPECT_EQ(u.contended().value(), 2u);
  EXPECT_EQ(u.wait_ps().count(), 3u);
  EXPECT_EQ(u.wait_ps().sum(), 0u + 10u + 15u);
}

// A request made later on the host but earlier in time takes a gap that fits it.
TEST(Resource, RequestsFillGapsBeforeLaterReservations) {
  BusyUnits u("unit", 1);
  EXPECT_EQ(u.reserve(100, 10), 100u);   // [100,110)
  EXPECT_EQ(u.reserve(0, 50), 0u);       // [0,50) fits before it
  EXPECT_EQ(u.reserve(60, 50), 110u);    // [60,100) is only 40 long: after [100,110)
  EXPECT_EQ(u.reserve(50, 50), 50u);     // [50,100) is exactly 50 long
  EXPECT_EQ(u.reserve(0, 1), 160u);      // nothing free until the end of [110,160)
}

TEST(Resource, RequestsTakeTheUnitFreeSoonest) {
  BusyUnits u("unit", 2);
  EXPECT_EQ(u.reserve(0, 100), 0u);
  EXPECT_EQ(u.reserve(0, 30), 0u);     // the second unit
  EXPECT_EQ(u.reserve(10, 5), 30u);    // the second unit frees first
  EXPECT_EQ(u.reserve(0, 200), 35u);   // after [30,35) on the second unit
}

TEST(Resource, AHoldKeepsItsUnitUntilItEnds) {
  BusyUnits u("walkers", 1);
  const BusyUnits::Hold h = u.begin(0);
  EXPECT_EQ(h.start, 0u);
  u.end(h, 40);
  EXPECT_EQ(u.reserve(10, 5), 40u);
  // A hold starts after the unit's last reservation, never in a gap before it.
  const BusyUnits::Hold h2 = u.begin(0);
  EXPECT_EQ(h2.start, 45u);
  u.end(h2, 45);   // ended at once: the unit is free again at 45
  EXPECT_EQ(u.reserve(0, 1), 45u);
}

// Every unit held by an unfinished hold: a request is served at once and counted, never
// placed at the end of time.
TEST(Resource, RequestsWhileEveryUnitIsHeldOpenAreCountedNotLost) {
  BusyUnits u("walkers", 1);
  StatRegistry reg;
  u.register_stats(reg, "w");
  const BusyUnits::Hold h = u.begin(0);
  EXPECT_EQ(u.reserve(10, 5), 10u);
  EXPECT_EQ(u.begin(20).start, 20u);
  EXPECT_EQ(reg.find_counter("w.overflowed")->value(), 2u);
  u.end(h, 30);
}

}  // namespace
}  // namespace iommusim::common

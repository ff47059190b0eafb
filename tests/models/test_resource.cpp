// CountedResource: FIFO hand-over and contention counting.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>

#include "models/common/clock.h"
#include "models/common/resource.h"

namespace iommusim::common {
namespace {

struct Grant { int id; uint64_t at_ps; };

struct Contenders : sc_core::sc_module {
  SC_HAS_PROCESS(Contenders);
  CountedResource res{"unit", 1};
  std::vector<int> requested;
  std::vector<Grant> granted;
  unsigned released = 0;

  explicit Contenders(sc_core::sc_module_name n) : sc_module(n) {
    SC_THREAD(a);
    SC_THREAD(b);
    SC_THREAD(c);
  }
  void use(int id) {
    requested.push_back(id);
    res.acquire();
    granted.push_back({id, to_ps(sc_core::sc_time_stamp())});
    EXPECT_EQ(res.in_use(), 1u);
    sc_core::wait(10, sc_core::SC_NS);
    res.release();
    ++released;
  }
  void a() { use(0); }
  void b() { use(1); }
  void c() { use(2); }
};

TEST(Resource, CapacityOneServesWaitersFifo) {
  Contenders m("m");
  sc_core::sc_start();
  ASSERT_EQ(m.requested.size(), 3u);
  ASSERT_EQ(m.granted.size(), 3u);
  EXPECT_EQ(m.released, 3u);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(m.granted[i].id, m.requested[i]) << "grant " << i << " out of request order";
    EXPECT_EQ(m.granted[i].at_ps, i * 10'000u);
  }
  EXPECT_EQ(m.res.contended().value(), 2u);
  EXPECT_EQ(m.res.in_use(), 0u);
  EXPECT_EQ(m.res.wait_ps().count(), 3u);
  EXPECT_EQ(m.res.wait_ps().sum(), 10'000u + 20'000u);
  EXPECT_EQ(sc_core::sc_time_stamp(), sc_core::sc_time(30, sc_core::SC_NS));
}

// A released unit goes to the oldest waiter, not to a newcomer's try_acquire.
TEST(Resource, TryAcquireDoesNotJumpTheQueue) {
  struct M : sc_core::sc_module {
    SC_HAS_PROCESS(M);
    CountedResource res{"unit", 1};
    std::vector<int> order;
    bool newcomer_refused = false;
    explicit M(sc_core::sc_module_name n) : sc_module(n) { SC_THREAD(holder); SC_THREAD(waiter); }
    void holder() {
      res.acquire();
      order.push_back(0);
      sc_core::wait(5, sc_core::SC_NS);
      res.release();
      // The unit was handed to the waiter; a newcomer in the same delta is refused.
      newcomer_refused = !res.try_acquire();
    }
    void waiter() {
      sc_core::wait(1, sc_core::SC_NS);
      res.acquire();
      order.push_back(1);
      EXPECT_EQ(sc_core::sc_time_stamp(), sc_core::sc_time(5, sc_core::SC_NS));
      res.release();
    }
  } m("m");
  sc_core::sc_start();
  EXPECT_TRUE(m.newcomer_refused);
  EXPECT_EQ(m.order, (std::vector<int>{0, 1}));
  EXPECT_EQ(m.res.contended().value(), 1u);
  EXPECT_EQ(m.res.in_use(), 0u);
}

}  // namespace
}  // namespace iommusim::common

#include <gtest/gtest.h>

#include "models/common/cache.h"

using namespace iommusim::common;

namespace {
struct Key {
  uint32_t tag = 0;
  uint64_t page = 0;
  bool operator==(const Key& o) const { return tag == o.tag && page == o.page; }
  uint64_t set_hash() const { return page; }
};
CacheConfig geometry(unsigned entries, unsigned ways, Replacement r) {
  CacheConfig c;
  c.entries = entries; c.ways = ways; c.replacement = r;
  return c;
}
}  // namespace

TEST(Cache, LruEvictsLeastRecentlyUsedInTheSet) {
  SetAssocCache<Key, int> c("c", geometry(8, 2, Replacement::Lru), Clock{});
  ASSERT_EQ(c.sets(), 4u);
  c.insert({1, 0}, 10);           // set 0
  c.insert({1, 4}, 14);           // set 0
  ASSERT_TRUE(c.lookup({1, 0}));  // 0 becomes most recent
  c.insert({1, 8}, 18);           // set 0: evicts page 4
  EXPECT_TRUE(c.lookup({1, 0}));
  EXPECT_FALSE(c.lookup({1, 4}));
  EXPECT_EQ(*c.lookup({1, 8}), 18);
  EXPECT_EQ(c.stats().evictions.value(), 1u);
}

TEST(Cache, RoundRobinIgnoresUse) {
  SetAssocCache<Key, int> c("c", geometry(2, 2, Replacement::RoundRobin), Clock{});
  c.insert({1, 0}, 0);
  c.insert({1, 1}, 1);
  c.lookup({1, 0});
  c.insert({1, 2}, 2);            // evicts way 0 (page 0) regardless of use
  EXPECT_FALSE(c.lookup({1, 0}));
  EXPECT_TRUE(c.lookup({1, 1}));
}

TEST(Cache, RandomIsDeterministicForASeed) {
  auto run = [] {
    CacheConfig cfg = geometry(4, 4, Replacement::Random);
    cfg.seed = 42;
    SetAssocCache<Key, int> c("c", cfg, Clock{});
    for (uint64_t p = 0; p < 64; ++p) c.insert({1, p}, int(p));
    std::vector<bool> present;
    for (uint64_t p = 0; p < 64; ++p) present.push_back(c.lookup({1, p}).has_value());
    return present;
  };
  EXPECT_EQ(run(), run());
}

TEST(Cache, TargetedInvalidationScansOneSetBroadScansAll) {
  SetAssocCache<Key, int> c("c", geometry(16, 4, Replacement::Lru), Clock{});
  for (uint64_t p = 0; p < 8; ++p) c.insert({p % 2 ? 2u : 1u, p}, 0);
  auto one = c.invalidate_in_set(3, [](const Key& k, int) { return k.page == 3; });
  EXPECT_EQ(one.sets_scanned, 1u);
  EXPECT_EQ(one.entries_removed, 1u);
  auto all = c.invalidate_all_sets([](const Key& k, int) { return k.tag == 1; });
  EXPECT_EQ(all.sets_scanned, 4u);
  EXPECT_EQ(all.entries_removed, 4u);       // pages 0,2,4,6
  EXPECT_EQ(c.valid_entries(), 3u);         // pages 1,5,7 remain
}

TEST(Cache, DisabledCacheAlwaysMisses) {
  SetAssocCache<Key, int> c("c", geometry(0, 0, Replacement::Lru), Clock{});
  c.insert({1, 1}, 1);
  EXPECT_FALSE(c.lookup({1, 1}));
  EXPECT_FALSE(c.enabled());
}

TEST(Cache, ValidateRejectsBadGeometry) {
  EXPECT_NE(validate(geometry(10, 4, Replacement::Lru)), "");
  EXPECT_EQ(validate(geometry(12, 4, Replacement::Lru)), "");
}

TEST(Cache, SpanInvalidationVisitsOnlyItsSetsUntilItCoversTheCache) {
  SetAssocCache<Key, int> c("c", geometry(16, 4, Replacement::Lru), Clock{});   // 4 sets
  for (uint64_t p = 0; p < 8; ++p) c.insert({1, p}, 0);
  auto pages = [](uint64_t p) { return p; };
  auto in = [](uint64_t lo, uint64_t hi) { return [=](const Key& k, int) { return k.page >= lo && k.page <= hi; }; };
  auto two = c.invalidate_span(2, 3, pages, in(2, 3));
  EXPECT_EQ(two.sets_scanned, 2u);
  EXPECT_EQ(two.entries_removed, 2u);
  auto wide = c.invalidate_span(0, 5, pages, in(0, 5));   // 6 pages >= 4 sets: one pass over all
  EXPECT_EQ(wide.sets_scanned, 4u);
  EXPECT_EQ(wide.entries_removed, 4u);                   // pages 0, 1, 4, 5
  EXPECT_EQ(c.valid_entries(), 2u);                      // pages 6, 7
}

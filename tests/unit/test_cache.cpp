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

// The set is the key's hash modulo the set count, whether the count is a power of two
// (a mask is used) or not (a divide): worked out by hand from that rule.
TEST(Cache, SetIsTheHashModuloTheSetCount) {
  SetAssocCache<Key, int> three("c", geometry(3, 1, Replacement::Lru), Clock{});   // 3 sets, direct-mapped
  for (uint64_t p = 0; p < 3; ++p) three.insert({1, p}, int(p));
  three.insert({1, 3}, 3);   // 3 mod 3 = set 0: evicts page 0 only
  three.insert({1, 7}, 7);   // 7 mod 3 = set 1: evicts page 1 only
  EXPECT_FALSE(three.lookup({1, 0}));
  EXPECT_FALSE(three.lookup({1, 1}));
  EXPECT_EQ(*three.lookup({1, 2}), 2);
  EXPECT_EQ(*three.lookup({1, 3}), 3);
  EXPECT_EQ(*three.lookup({1, 7}), 7);

  SetAssocCache<Key, int> four("c", geometry(4, 1, Replacement::Lru), Clock{});   // 4 sets
  for (uint64_t p = 0; p < 4; ++p) four.insert({1, p}, int(p));
  four.insert({1, 6}, 6);    // 6 mod 4 = set 2: evicts page 2 only
  EXPECT_FALSE(four.lookup({1, 2}));
  for (uint64_t p : {0u, 1u, 3u, 6u}) EXPECT_TRUE(four.lookup({1, p})) << p;

  // Round-robin keeps a pointer per set: set 0 of 3 turning over leaves set 1's alone.
  SetAssocCache<Key, int> rr("c", geometry(6, 2, Replacement::RoundRobin), Clock{});   // 3 sets of 2
  rr.insert({1, 0}, 0); rr.insert({1, 3}, 3);   // set 0, ways 0 and 1
  rr.insert({1, 1}, 1); rr.insert({1, 4}, 4);   // set 1, ways 0 and 1
  rr.insert({1, 6}, 6);                         // set 0: evicts way 0 (page 0)
  rr.insert({1, 9}, 9);                         // set 0: evicts way 1 (page 3)
  rr.insert({1, 7}, 7);                         // set 1: its own pointer, way 0 (page 1)
  EXPECT_FALSE(rr.lookup({1, 0}));
  EXPECT_FALSE(rr.lookup({1, 3}));
  EXPECT_FALSE(rr.lookup({1, 1}));
  for (uint64_t p : {4u, 6u, 7u, 9u}) EXPECT_TRUE(rr.lookup({1, p})) << p;
}

// find_at: one lookup's time on a free port (3 cycles of 1 ns), one hit or miss counted,
// and the cached entry itself; an entry is not visible before its ready time.
TEST(Cache, FindAtTakesALookupCountsOnceAndReturnsTheEntry) {
  CacheConfig cfg = geometry(8, 2, Replacement::Lru);
  cfg.lookup_cycles = 3;
  SetAssocCache<Key, int> c("c", cfg, Clock{});
  Ps t = 1000;
  EXPECT_EQ(c.find_at({1, 5}, t), nullptr);
  EXPECT_EQ(t, 4000u);
  EXPECT_EQ(c.stats().misses.value(), 1u);
  EXPECT_EQ(c.stats().hits.value(), 0u);

  c.insert({1, 5}, 55, 20000);
  t = 10000;
  EXPECT_EQ(c.find_at({1, 5}, t), nullptr);   // looked up at 13000, before it is ready
  EXPECT_EQ(t, 13000u);
  t = 20000;
  const int* v = c.find_at({1, 5}, t);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 55);
  EXPECT_EQ(t, 23000u);
  EXPECT_EQ(c.stats().hits.value(), 1u);
  EXPECT_EQ(c.stats().misses.value(), 2u);
  EXPECT_EQ(c.find({1, 5}), v);   // the same entry, not a copy; find counts nothing
  EXPECT_EQ(c.stats().hits.value() + c.stats().misses.value(), 3u);
}

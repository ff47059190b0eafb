#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn in the barrier test
// The shared translation engine on its own: tags, invalidation scopes, the 2D walk count
// and the barrier, with x86 stage-1 tables over VT-d second-stage tables in a plain map.
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <systemc>

#include "models/common/translation_engine.h"
#include "models/pagetable/table_builder.h"
#include "models/pagetable/vtd_ss.h"
#include "models/pagetable/x86.h"

namespace iommusim {
namespace {

using common::InvalidationScope;
using common::Regime;
using common::Stages;
using common::TranslationEngine;

// Descriptor memory: a map of 8-byte words, PA-addressed; tables are bump-allocated.
struct MapMemory : pagetable::TableMemory {
  std::map<uint64_t, uint64_t> words;
  uint64_t next = 0x100000;
  uint64_t read_descriptor(uint64_t a) override { auto it = words.find(a); return it == words.end() ? 0 : it->second; }
  void write_descriptor(uint64_t a, uint64_t v) override { words[a] = v; }
  uint64_t allocate_table(uint64_t bytes) override { uint64_t a = next; next += std::max<uint64_t>(bytes, 4096); return a; }
};

// Guest tables at GPAs: GPA g lives at PA g + kGuestBase (an identity-plus-offset stage 2).
constexpr uint64_t kGuestBase = 0x40000000;
struct GuestMemory : pagetable::TableMemory {
  MapMemory& host;
  uint64_t next = 0x200000;
  explicit GuestMemory(MapMemory& h) : host(h) {}
  uint64_t read_descriptor(uint64_t a) override { return host.read_descriptor(a + kGuestBase); }
  void write_descriptor(uint64_t a, uint64_t v) override { host.write_descriptor(a + kGuestBase, v); }
  uint64_t allocate_table(uint64_t bytes) override { uint64_t a = next; next += std::max<uint64_t>(bytes, 4096); return a; }
};

struct EngineHarness : sc_core::sc_module {
  SC_HAS_PROCESS(EngineHarness);
  MapMemory mem;
  GuestMemory guest{mem};
  pagetable::X86Format s1f{pagetable::X86PagingConfig{}};
  pagetable::VtdSecondStageFormat s2f{pagetable::VtdSecondStageConfig{}};
  pagetable::TableBuilder s2{s2f, mem};
  pagetable::TableBuilder s1a{s1f, guest}, s1b{s1f, guest};
  TranslationEngine engine;
  std::function<void()> body;

  explicit EngineHarness(common::TranslationEngineConfig cfg = {}) : EngineHarness("harness", cfg) {}
  EngineHarness(sc_core::sc_module_name name, common::TranslationEngineConfig cfg)
      : sc_module(name),
        engine("engine", cfg, common::Clock::from_mhz(1000), [this](uint64_t a, void* dst, unsigned len, common::Ps& t) {
          if (len != 8) return false;
          t += 10'000;   // each descriptor read costs 10 ns of memory time
          *static_cast<uint64_t*>(dst) = mem.read_descriptor(a);
          return true;
        }) {
    // Stage 2: GPA [0, 1 GB) -> PA kGuestBase, 4 KB pages. Two stage-1 tables over it.
    EXPECT_TRUE(s2.map(0, kGuestBase, 1ull << 30, 4096, {}).ok);
    EXPECT_TRUE(s1a.map(0x10000000, 0x1000000, 0x10000, 4096, {}).ok);
    EXPECT_TRUE(s1b.map(0x10000000, 0x2000000, 0x10000, 4096, {}).ok);
    SC_THREAD(thread);
  }
  void thread() { body(); }
  void run(std::function<void()> b) { body = std::move(b); sc_core::sc_start(sc_core::sc_time(10, sc_core::SC_MS)); }

  Regime nested(uint32_t domain, uint32_t space, const pagetable::TableBuilder& s1) const {
    return Regime{Stages::Nested, domain, space, &s1f, s1.root(), &s2f, s2.root()};
  }
  uint64_t reads_for(const Regime& r, uint64_t va) {
    const uint64_t before = engine.table_reads();
    const auto t = engine.translate(r, va, pagetable::Access{});
    EXPECT_TRUE(t.ok);
    return engine.table_reads() - before;
  }
};

common::TranslationEngineConfig caches_off_but_iotlb() {
  common::TranslationEngineConfig c;
  c.s1_walk_cache.entries = c.s2_walk_cache.entries = c.ipa_cache.entries = 0;
  return c;
}

TEST(TranslationEngine, ColdNestedWalkIsTwentyFourReadsAndTranslates) {
  EngineHarness h(caches_off_but_iotlb());
  h.run([&] {
    const Regime r = h.nested(5, 1, h.s1a);
    const auto t = h.engine.translate(r, 0x10003123, pagetable::Access{});
    ASSERT_TRUE(t.ok);
    EXPECT_EQ(t.output, kGuestBase + 0x1003123);   // S1: -> GPA 0x1003123; S2: + kGuestBase
    EXPECT_EQ(h.engine.table_reads(), 24u);
    EXPECT_EQ(h.engine.walk_reads().max(), 24u);
    EXPECT_EQ(h.reads_for(r, 0x10003456), 0u);      // same page: IOTLB hit
  });
}

TEST(TranslationEngine, SpacesAreSeparateAndScopesHitOnlyTheirTags) {
  EngineHarness h(caches_off_but_iotlb());
  h.run([&] {
    const Regime a = h.nested(5, 1, h.s1a), b = h.nested(5, 2, h.s1b), other = h.nested(6, 1, h.s1a);
    // Same VA, same domain, different space: different tables, different answers.
    EXPECT_EQ(h.engine.translate(a, 0x10000000, {}).output, kGuestBase + 0x1000000);
    EXPECT_EQ(h.engine.translate(b, 0x10000000, {}).output, kGuestBase + 0x2000000);
    h.reads_for(other, 0x10000000);
    // Space-scoped (VT-d P_IOTLB, AMD GN=1): only space 1 of domain 5 walks again.
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    EXPECT_EQ(h.reads_for(a, 0x10000000), 24u);
    EXPECT_EQ(h.reads_for(b, 0x10000000), 0u);
    EXPECT_EQ(h.reads_for(other, 0x10000000), 0u);
    // Domain-scoped (VT-d DSI, SMMU by VMID): every space of domain 5, not domain 6.
    h.engine.invalidate_by_input(InvalidationScope{5u, std::nullopt, 0, 0, false}, common::kAllEntries);
    EXPECT_EQ(h.reads_for(a, 0x10000000), 24u);
    EXPECT_EQ(h.reads_for(b, 0x10000000), 24u);
    EXPECT_EQ(h.reads_for(other, 0x10000000), 0u);
    // A range misses entries outside it.
    h.engine.invalidate_by_input(InvalidationScope{5u, std::nullopt, 0x10001000, 0x1000, false}, common::kAllEntries);
    EXPECT_EQ(h.reads_for(a, 0x10000000), 0u);
    // Stage-2 (by IPA) does not reach combined nested entries (indexed by VA).
    h.engine.invalidate_by_ipa(InvalidationScope{5u, std::nullopt, 0, 0, false});
    EXPECT_EQ(h.reads_for(a, 0x10000000), 0u);
  });
}

TEST(TranslationEngine, WalkCachesCutTheWalkAndLeafOnlyKeepsThem) {
  EngineHarness h;   // every cache on
  h.run([&] {
    const Regime a = h.nested(5, 1, h.s1a);
    EXPECT_GT(h.reads_for(a, 0x10000000), 2u);
    // Next page in the same 2 MB: stage-1 walk cache gives the leaf table; its GPA is in the
    // GPA cache only if it shares a page, so expect the leaf read plus its final S2 walk at most.
    const uint64_t warm = h.reads_for(a, 0x10001000);
    EXPECT_LE(warm, 2u);
    // Leaf-only invalidation keeps the walk caches: the next miss is as short.
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0x10002000, 0x1000, true}, common::kAllEntries);
    EXPECT_LE(h.reads_for(a, 0x10002000), 2u);
    // A non-leaf invalidation of the whole space drops the stage-1 walk cache as well.
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    h.engine.invalidate_by_ipa(InvalidationScope{5u, std::nullopt, 0, 0, false});
    EXPECT_GT(h.reads_for(a, 0x10003000), 2u);
  });
}

TEST(TranslationEngine, BarrierWaitsForWalksOlderThanTheInvalidationAndDropsTheirFills) {
  common::TranslationEngineConfig cfg = caches_off_but_iotlb();
  cfg.iotlb.entries = 16;   // a 4-set scan: the invalidation finishes well before the 240 ns walk
  EngineHarness h(cfg);
  h.run([&] {
    const Regime a = h.nested(5, 1, h.s1a);
    // A walk begun at 0: the IOTLB lookup (3 cycles at 1 GHz), then 24 reads of 10 ns.
    common::Ps walk_end = 0;
    h.engine.translate(a, 0x10000000, {}, TranslationEngine::kNow, walk_end);
    EXPECT_EQ(walk_end, 3'000u + 24 * 10'000u);
    sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));   // the walk is under way
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    // The barrier completes when the older walk does, not before.
    h.engine.drain_older_requests();
    EXPECT_EQ(common::to_ps(sc_core::sc_time_stamp()), walk_end);
    // What the overtaken walk read was not cached: the same VA walks again.
    EXPECT_EQ(h.reads_for(a, 0x10000000), 24u);
  });
}


// Defect: a combined nested IOTLB entry kept only the stage-1 rights, so once a read filled
// it a write went through to a page stage 2 maps read-only.
TEST(TranslationEngine, NestedEntryHoldsTheIntersectionOfBothStagesRights) {
  EngineHarness h(caches_off_but_iotlb());
  h.run([&] {
    // GPA 0x1003000 (where s1a maps VA 0x10003000, read-write) becomes read-only at stage 2.
    pagetable::LeafAttributes ro;
    ro.write = false;
    ASSERT_TRUE(h.s2.change(0x1003000, 0x1000, std::nullopt, ro).ok);
    const Regime r = h.nested(5, 1, h.s1a);
    pagetable::Access write;
    write.write = true;
    const auto rd = h.engine.translate(r, 0x10003000, pagetable::Access{});
    ASSERT_TRUE(rd.ok);
    EXPECT_FALSE(rd.tlb_hit);
    const auto wr = h.engine.translate(r, 0x10003000, write);
    EXPECT_FALSE(wr.ok);   // stage 2 forbids the write, cached or not
    EXPECT_EQ(wr.fault.fault, pagetable::Fault::Permission);
    EXPECT_EQ(wr.fault.stage, 2u);
    // Reads still hit the entry.
    EXPECT_TRUE(h.engine.translate(r, 0x10003000, pagetable::Access{}).tlb_hit);
  });
}

// Defect: the IPA/GPA cache was matched as 4 KB when invalidated by address although it
// records the stage-2 leaf size; an invalidation at a 2 MB block's base left the rest cached.
TEST(TranslationEngine, IpaInvalidationMatchesTheEntrysOwnLeafSize) {
  common::TranslationEngineConfig cfg = caches_off_but_iotlb();
  cfg.ipa_cache.entries = 128;   // the IPA cache on, the walk caches off
  EngineHarness h(cfg);
  // A second stage 2: GPA [0, 64 MB) -> PA kGuestBase, 2 MB blocks.
  pagetable::TableBuilder s2big(h.s2f, h.mem);
  ASSERT_TRUE(s2big.map(0, kGuestBase, 64ull << 20, 2ull << 20, {}).ok);
  h.run([&] {
    const Regime r{Stages::Nested, 5, 1, &h.s1f, h.s1a.root(), &h.s2f, s2big.root()};
    // VA 0x10001000 -> GPA 0x1001000 (s1a), inside the block [0x1000000, 0x1200000).
    EXPECT_EQ(h.engine.translate(r, 0x10001000, {}).output, kGuestBase + 0x1001000);
    // The VMM moves that block, then invalidates stage 2 at the block's base (one 4 KB
    // page, as SMMU TLBI_S2_IPA does) and drops the domain's combined entries.
    ASSERT_TRUE(s2big.change(0x1000000, 2ull << 20, kGuestBase + 0x8000000, {}).ok);
    h.engine.invalidate_by_ipa(InvalidationScope{5u, std::nullopt, 0x1000000, 0x1000, true});
    h.engine.invalidate_by_input(InvalidationScope{5u, std::nullopt, 0, 0, true}, common::kNestedEntries);
    // The cached 2 MB leaf covered 0x1000000, so it is gone: the new block is used.
    EXPECT_EQ(h.engine.translate(r, 0x10001000, {}).output, kGuestBase + 0x8001000);
  });
}

// Defect: one lookup counted one miss per IOTLB page size probed, and one walk-cache miss
// per level probed. One lookup is one hit or one miss.
TEST(TranslationEngine, OneLookupCountsOneHitOrOneMiss) {
  EngineHarness h;   // every cache on
  // Stage-1-only tables in host memory: a 4 KB page and a 2 MB page.
  pagetable::TableBuilder s1(h.s1f, h.mem);
  ASSERT_TRUE(s1.map(0x10000000, 0x3000000, 0x1000, 4096, {}).ok);
  ASSERT_TRUE(s1.map(0x20000000, 0x4000000, 2ull << 20, 2ull << 20, {}).ok);
  h.run([&] {
    const Regime r{Stages::Stage1, 5, 1, &h.s1f, s1.root(), nullptr, 0};
    ASSERT_TRUE(h.engine.translate(r, 0x10000000, {}).ok);   // IOTLB miss; walk-cache miss (cold)
    ASSERT_TRUE(h.engine.translate(r, 0x20000000, {}).ok);   // IOTLB miss; walk cache hits the 1 GB table
    for (unsigned i = 0; i < 10; ++i) {
      const auto t = h.engine.translate(r, 0x20000000 + i * 0x1000, {});
      ASSERT_TRUE(t.tlb_hit);
      EXPECT_EQ(t.output, 0x4000000 + i * 0x1000);
    }
    EXPECT_EQ(h.engine.iotlb_stats().hits.value(), 10u);
    EXPECT_EQ(h.engine.iotlb_stats().misses.value(), 2u);
    EXPECT_EQ(h.engine.s1_walk_cache_stats().misses.value(), 1u);
    EXPECT_EQ(h.engine.s1_walk_cache_stats().hits.value(), 1u);
  });
}

}  // namespace
}  // namespace iommusim

namespace iommusim {
namespace {

// A DMA that translated (an IOTLB hit, say) and is still waiting for memory when the
// invalidation executes must complete before the barrier does; one issued after the
// invalidation does not hold the barrier up.
TEST(TranslationEngine, BarrierWaitsForOlderDmasStillInFlight) {
  EngineHarness h;
  h.run([&] {
    uint64_t old_done = 0, young_done = 0;
    sc_core::sc_spawn([&] {
      const common::InflightRequest dma(&h.engine);   // begins at 0 ns
      sc_core::wait(sc_core::sc_time(1000, sc_core::SC_NS));   // "queueing for memory"
      old_done = common::to_ps(sc_core::sc_time_stamp());
    });
    sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    const uint64_t inv_done = common::to_ps(sc_core::sc_time_stamp());
    sc_core::sc_spawn([&] {
      const common::InflightRequest dma(&h.engine);   // begins after the invalidation
      sc_core::wait(sc_core::sc_time(5000, sc_core::SC_NS));
      young_done = common::to_ps(sc_core::sc_time_stamp());
    });
    h.engine.drain_older_requests();
    const uint64_t barrier = common::to_ps(sc_core::sc_time_stamp());
    EXPECT_GT(inv_done, 100000u);
    EXPECT_EQ(old_done, 1000000u);
    EXPECT_EQ(barrier, 1000000u) << "the barrier completes exactly when the older DMA does";
    EXPECT_EQ(young_done, 0u) << "and does not wait for the DMA issued after the invalidation";
    // With nothing older in flight, a second barrier returns at once.
    h.engine.drain_older_requests();
    EXPECT_EQ(common::to_ps(sc_core::sc_time_stamp()), 1000000u);
  });
}

}  // namespace
}  // namespace iommusim

namespace iommusim {
namespace {

// A request that read its configuration (here: the stage-1 root) before an invalidation
// began, and walks after it, may use what it read but must not cache it: otherwise a later
// request under the new configuration but the same tags (AMD's per-device DomainID over two
// v2 domains) hits the old domain's translation.
TEST(TranslationEngine, RequestBegunBeforeAnInvalidationCachesNothing) {
  EngineHarness h(caches_off_but_iotlb());   // every walk is the full 24 reads
  h.run([&] {
    const Regime a = h.nested(5, 1, h.s1a);
    const uint64_t begun = h.engine.epoch();
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    ASSERT_NE(h.engine.epoch(), begun);
    const uint64_t r0 = h.engine.table_reads();
    EXPECT_TRUE(h.engine.translate(a, 0x10000000, {}, begun).ok);
    EXPECT_EQ(h.engine.table_reads() - r0, 24u) << "cold 2D walk";
    // The IOTLB was not filled: the same walk again.
    EXPECT_EQ(h.reads_for(a, 0x10000000), 24u);
    // Begun under the current epoch, it is cached.
    EXPECT_EQ(h.reads_for(a, 0x10000000), 0u);
  });
}

}  // namespace
}  // namespace iommusim

namespace iommusim {
namespace {

// Found by the oracle's stress matrix (SMMUv3 nested, 2 MB stage-1 leaves over 4 KB stage-2
// pages, range invalidation off): a 2 MB stage-1 leaf is cached as 4 KB combined entries,
// and one TLBI_NH_VA at the leaf's base must drop every one of them (they are all copies
// of the stage-1 entry that translates that address).
TEST(TranslationEngine, InvalidatingAnAddressOfASplinteredLeafDropsEverySplinter) {
  EngineHarness h(caches_off_but_iotlb());
  h.run([&] {
    pagetable::TableBuilder s1big(h.s1f, h.guest);
    ASSERT_TRUE(s1big.map(0x40000000, 0x1000000, 2ull << 20, 2ull << 20, {}).ok);   // one 2 MB leaf
    const Regime r{Stages::Nested, 5, 1, &h.s1f, s1big.root(), &h.s2f, h.s2.root()};
    // 3 stage-1 levels above the 2 MB leaf: (3+1)*(4+1)-1 = 19 reads cold.
    EXPECT_EQ(h.reads_for(r, 0x40000000), 19u);
    EXPECT_EQ(h.reads_for(r, 0x40005000), 19u);   // another 4 KB splinter of the same leaf
    EXPECT_EQ(h.reads_for(r, 0x40005000), 0u);
    h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0x40000000, 0x1000, true}, common::kAllEntries);
    EXPECT_EQ(h.reads_for(r, 0x40005000), 19u) << "the splinter at +20 KB survived a TLBI of the leaf's base";
    // An address outside the leaf keeps its entry.
  });
}

// Found by the oracle's stress matrix (AMD v2, a device moved between two domains that share
// its DomainID): an invalidation removed the IOTLB entries, then spent its scan time before
// removing the walk-cache entries, and a walk in between resumed from the old tables and
// cached the old translation under the new epoch. Everything now goes at once.
TEST(TranslationEngine, AnInvalidationRemovesEveryCacheAtOnceBeforeItsScanTime) {
  common::TranslationEngineConfig cfg = caches_off_but_iotlb();
  cfg.s1_walk_cache.entries = 256;   // only the stage-1 walk cache and the IOTLB
  EngineHarness h(cfg);
  h.run([&] {
    const Regime a = h.nested(5, 1, h.s1a);
    EXPECT_EQ(h.reads_for(a, 0x10000000), 24u);
    EXPECT_LT(h.reads_for(a, 0x10001000), 24u);   // resumed from the stage-1 walk cache
    sc_core::sc_spawn([&] {   // the IOTLB scan of a whole-space invalidation takes 512 ns
      h.engine.invalidate_by_input(InvalidationScope{5u, 1u, 0, 0, false}, common::kAllEntries);
    });
    sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));
    EXPECT_EQ(h.reads_for(a, 0x10002000), 24u) << "a walk during the scan resumed from a walk-cache entry";
  });
}

}  // namespace
}  // namespace iommusim

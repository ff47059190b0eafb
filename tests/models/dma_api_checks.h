// The DMA API checks every vendor runs (test_<vendor>_dma_api.cpp instantiates them with
// its harness through DMA_API_TESTS): lazy flushes at the ring-full point and at 10 ms,
// no IOVA reuse before its flush (and the allocator's own check on a forced misuse),
// strict vs lazy invalidations per unmap, four CPUs unmapping at once, and a randomized
// multi-CPU run with the correctness oracle. Expected values are worked out from
// dma-iommu.c's rules in the comments, not taken from a run.
//
// The including file defines SC_INCLUDE_DYNAMIC_PROCESSES before any SystemC header.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <systemc>

#include "models/common/clock.h"
#include "models/common/correctness_oracle.h"
#include "platforms/driver/dma_api.h"
#include "tests/support/on_cpus.h"

namespace iommusim::test {

constexpr uint32_t kDmaRid = 3;
constexpr uint64_t kBufferPa = 0x40000000ull;   // buffers live from 1 GB on

// One stage-1 domain attached to kDmaRid, an oracle watching it, and the DMA API over it.
template <class H>
struct DmaApiRig {
  H& h;
  common::CorrectnessOracle oracle;
  driver::DomainId domain = 0;
  std::unique_ptr<driver::DmaApi> api;

  DmaApiRig(H& harness, const std::string& vendor, bool strict, unsigned cpus) : h(harness), oracle(vendor) {
    h.iommu.set_observer(&oracle);
    h.drv.set_oracle(&oracle);
    H::expect_ok(h.drv.init());
    domain = h.make_domain(driver::DomainKind::Stage1);
    H::expect_ok(h.drv.attach(kDmaRid, std::nullopt, domain));
    driver::DmaApiConfig c;
    c.strict = strict;
    c.cpus = cpus;
    api = std::make_unique<driver::DmaApi>(c, h.drv, domain);
  }
  uint64_t map(unsigned cpu, uint64_t pa, uint64_t bytes) {
    uint64_t dma = 0;
    const driver::Status s = api->map(cpu, pa, bytes, {}, &dma);
    EXPECT_TRUE(s.ok) << s.error;
    return dma;
  }
  void unmap(unsigned cpu, uint64_t dma, uint64_t bytes) { H::expect_ok(api->unmap(cpu, dma, bytes)); }
  size_t records(const std::string& op) const {
    size_t n = 0;
    for (const auto& r : h.drv.invalidations().records()) n += r.op == op;
    return n;
  }
  void expect_no_violations() {
    oracle.finish();
    EXPECT_EQ(oracle.violations(), 0u) << oracle.violations_json().dump(1);
    EXPECT_EQ(api->iovas().refused(), 0u);
  }
};

inline void wait_until_ps(uint64_t t) {
  const uint64_t n = common::to_ps(sc_core::sc_time_stamp());
  if (t > n) sc_core::wait(sc_core::sc_time(double(t - n), sc_core::SC_PS));
}



template <class H>
void check_lazy_flush_at_ring_full(H& h, const std::string& vendor) {
  DmaApiRig<H> r(h, vendor, false, 1);
  // fq_full is tail + 1 == head (mod 256): the ring holds 255 entries, and the 256th
  // queue_iova flushes them before adding itself.
  std::set<uint64_t> seen;
  std::vector<uint64_t> iovas;
  for (unsigned i = 0; i < 256; ++i) {
    const uint64_t dma = r.map(0, kBufferPa + i * kPage, kPage);
    EXPECT_TRUE(seen.insert(dma).second) << "IOVA " << dma << " handed out again before its flush";
    iovas.push_back(dma);
    if (i == 255) {
      EXPECT_EQ(r.api->flushes_full(), 0u);
      EXPECT_EQ(r.api->queued(0), 255u);
      EXPECT_EQ(r.api->invalidations(), 0u);
    }
    r.unmap(0, dma, kPage);
  }
  EXPECT_EQ(r.api->flushes_full(), 1u);
  EXPECT_EQ(r.api->flushes_timer(), 0u);
  EXPECT_EQ(r.api->invalidations(), 1u);
  EXPECT_EQ(r.records("invalidate_domain"), 1u);
  EXPECT_EQ(r.api->queued(0), 1u);   // the 256th waits for the next flush
  // The 255 flushed IOVAs went into CPU 0's rcache in queue order (127 fill `loaded`, the
  // next 127 fill it again after a swap with `prev`, the 255th starts a new magazine after
  // the full one went to the depot): the next map gets the 255th one back (LIFO), and
  // never the 256th, still queued.
  EXPECT_EQ(r.map(0, kBufferPa, kPage), iovas[254]);
  r.expect_no_violations();
}

template <class H>
void check_lazy_flush_at_timeout(H& h, const std::string& vendor) {
  DmaApiRig<H> r(h, vendor, false, 1);
  r.unmap(0, r.map(0, kBufferPa, kPage), kPage);
  const uint64_t armed = common::to_ps(sc_core::sc_time_stamp());   // queue_iova armed the timer as it returned
  sc_core::wait(sc_core::sc_time(5, sc_core::SC_MS));
  // A second unmap 5 ms later does not push the timer back (it is on already).
  r.unmap(0, r.map(0, kBufferPa + kPage, kPage), kPage);
  const uint64_t ten_ms = 10ull * 1000 * 1000 * 1000;
  wait_until_ps(armed + ten_ms - 1000);
  EXPECT_EQ(r.api->flushes_timer(), 0u);
  EXPECT_EQ(r.api->queued(0), 2u);
  wait_until_ps(armed + ten_ms + 100ull * 1000 * 1000);   // + 100 us for the flush
  EXPECT_EQ(r.api->flushes_timer(), 1u);
  EXPECT_EQ(r.api->flushes_full(), 0u);
  EXPECT_EQ(r.api->queued(0), 0u);
  ASSERT_EQ(r.records("invalidate_domain"), 1u);
  for (const auto& rec : h.drv.invalidations().records())
    if (rec.op == "invalidate_domain") {
      EXPECT_EQ(rec.start_ps, armed + ten_ms) << "the timer fires 10 ms after it was armed";
    }
  EXPECT_TRUE(r.api->timer_error().empty()) << r.api->timer_error();
  r.expect_no_violations();
}

template <class H>
void check_no_reuse_before_flush(H& h, const std::string& vendor) {
  DmaApiRig<H> r(h, vendor, false, 1);
  const uint64_t a = r.map(0, kBufferPa, kPage);
  EXPECT_TRUE(h.dma(kDmaRid, std::nullopt, a, true, 1).ok());
  r.unmap(0, a, kPage);
  // Queued, not freed: a new buffer gets another IOVA, and the old one still translates
  // until the flush (a permitted-stale DMA, or a fault: never a violation).
  const uint64_t b = r.map(0, kBufferPa + kPage, kPage);
  EXPECT_NE(b, a);
  h.dma(kDmaRid, std::nullopt, a, false);
  EXPECT_TRUE(h.dma(kDmaRid, std::nullopt, b, true, 2).ok());
  // Forced misuse: IOVA `a` freed behind the flush queue's back lands in the rcache; the
  // allocator refuses to hand it out, counts it and says why.
  r.api->iovas().free(0, a / kPage, 1);
  uint64_t c = 0;
  const driver::Status s = r.api->map(0, kBufferPa + 2 * kPage, kPage, {}, &c);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("still queued for a flush"), std::string::npos) << s.error;
  EXPECT_EQ(r.api->iovas().refused(), 1u);
  r.oracle.finish();
  EXPECT_EQ(r.oracle.violations(), 0u) << r.oracle.violations_json().dump(1);
}

template <class H>
void check_strict_vs_lazy(H& h, const std::string& vendor, bool strict) {
  DmaApiRig<H> r(h, vendor, strict, 1);
  for (unsigned i = 0; i < 8; ++i) {
    const uint64_t dma = r.map(0, kBufferPa + i * kPage, 2 * kPage);
    EXPECT_TRUE(h.dma(kDmaRid, std::nullopt, dma + kPage, true, i).ok());
    r.unmap(0, dma, 2 * kPage);
  }
  // Strict: one range invalidation + sync per unmap. Lazy: none until the timer's one
  // domain-wide flush, 10 ms after the first unmap.
  EXPECT_EQ(r.api->invalidations(), strict ? 8u : 0u);
  EXPECT_EQ(r.records("unmap"), strict ? 8u : 0u);
  if (!strict) {
    sc_core::wait(sc_core::sc_time(11, sc_core::SC_MS));
    EXPECT_EQ(r.api->invalidations(), 1u);
    EXPECT_EQ(r.records("invalidate_domain"), 1u);
  }
  r.expect_no_violations();
}

// Each record's parts add up to its total (the breakdown's attribution rule, driver.h).
inline void expect_parts_add_up(const driver::InvalidationLog& log) {
  for (const auto& x : log.records())
    EXPECT_EQ(x.software_ps + x.lock_ps + x.queueing_ps + x.fetch_ps + x.execution_ps + x.sync_ps, x.total_ps)
        << x.op << " at " << x.start_ps << ": software " << x.software_ps << ", lock " << x.lock_ps << ", queueing "
        << x.queueing_ps << ", fetch " << x.fetch_ps << ", execution " << x.execution_ps << ", sync " << x.sync_ps;
}

template <class H>
void check_four_cpus_unmap_at_once(H& h, const std::string& vendor) {
  DmaApiRig<H> r(h, vendor, true, 4);
  std::vector<uint64_t> dma(4);
  for (unsigned cpu = 0; cpu < 4; ++cpu) dma[cpu] = r.map(cpu, kBufferPa + cpu * 16 * kPage, 4 * kPage);
  const size_t before = h.drv.invalidations().records().size();
  on_cpus(4, [&](unsigned cpu) { r.unmap(cpu, dma[cpu], 4 * kPage); });
  const auto& recs = h.drv.invalidations().records();
  ASSERT_EQ(recs.size(), before + 4);
  uint64_t waited = 0;
  for (size_t i = before; i < recs.size(); ++i) waited += recs[i].lock_ps + recs[i].queueing_ps;
  EXPECT_GT(waited, 0u) << "four CPUs submitting at once must wait for each other";
  expect_parts_add_up(h.drv.invalidations());
  r.expect_no_violations();
}

// CPUs map a buffer of 1..40 pages, DMA into it, unmap it, again and again; after each
// unmap the device touches the old address once more (stale or fault, never a violation).
template <class H>
void check_random_multi_cpu(H& h, const std::string& vendor, bool strict, uint64_t seed, unsigned rounds) {
  DmaApiRig<H> r(h, vendor, strict, 4);
  on_cpus(4, [&](unsigned cpu) {
    std::mt19937_64 rng(seed * 131 + cpu);
    for (unsigned i = 0; i < rounds; ++i) {
      const uint64_t pages = 1 + rng() % 40;
      const uint64_t pa = kBufferPa + (cpu * 4096 + rng() % 4000) * kPage + (rng() % 2 ? 64 : 0);
      const uint64_t bytes = pages * kPage - 128;
      uint64_t dma = 0;
      const driver::Status s = r.api->map(cpu, pa, bytes, {}, &dma);
      ASSERT_TRUE(s.ok) << s.error;
      for (unsigned k = 0; k < 3; ++k)
        EXPECT_TRUE(h.dma(kDmaRid, std::nullopt, dma + (rng() % bytes & ~7ull), rng() % 2, i).ok());
      H::expect_ok(r.api->unmap(cpu, dma, bytes));
      h.dma(kDmaRid, std::nullopt, dma, false);
      sc_core::wait(sc_core::sc_time(double(rng() % 2000), sc_core::SC_NS));
    }
  });
  EXPECT_EQ(r.api->unmaps(), 4u * rounds);
  // Strict: one invalidation per unmap. Lazy: each CPU queued more than a ring holds.
  if (strict) {
    EXPECT_EQ(r.api->invalidations(), 4u * rounds);
  } else {
    // A flush is domain-wide: one CPU's full ring frees every CPU's older entries.
    EXPECT_GE(r.api->flushes_full(), 1u);
    EXPECT_EQ(r.api->invalidations(), r.api->flushes_full() + r.api->flushes_timer());
  }
  expect_parts_add_up(h.drv.invalidations());
  EXPECT_GT(r.oracle.checked(), 0u);
  r.expect_no_violations();
}

// The checks as gtest TESTs of `Suite` for one vendor's harness `H`.
#define DMA_API_TESTS(Suite, H, vendor)                                                                       \
  TEST(Suite, LazyFlushesAtTheRingFullPoint) { H h; h.run([](H& x) { ::iommusim::test::check_lazy_flush_at_ring_full(x, vendor); }); } \
  TEST(Suite, LazyFlushesTenMsAfterTheFirstQueuedUnmap) {                                                     \
    H h;                                                                                                       \
    h.run([](H& x) { ::iommusim::test::check_lazy_flush_at_timeout(x, vendor); }, sc_core::sc_time(50, sc_core::SC_MS));        \
  }                                                                                                            \
  TEST(Suite, NoIovaReuseBeforeItsFlush) { H h; h.run([](H& x) { ::iommusim::test::check_no_reuse_before_flush(x, vendor); }); } \
  TEST(Suite, StrictInvalidatesEveryUnmap) { H h; h.run([](H& x) { ::iommusim::test::check_strict_vs_lazy(x, vendor, true); }); } \
  TEST(Suite, LazyInvalidatesOncePerFlush) { H h; h.run([](H& x) { ::iommusim::test::check_strict_vs_lazy(x, vendor, false); }); } \
  TEST(Suite, FourCpusUnmappingAtOnceWaitAndAddUp) {                                                          \
    H h;                                                                                                       \
    h.run([](H& x) { ::iommusim::test::check_four_cpus_unmap_at_once(x, vendor); });                                           \
  }                                                                                                            \
  TEST(Suite, RandomFourCpusLazy) {                                                                            \
    H h;                                                                                                       \
    h.run([](H& x) { ::iommusim::test::check_random_multi_cpu(x, vendor, false, 1, 300); }, sc_core::sc_time(1, sc_core::SC_SEC)); \
  }                                                                                                            \
  TEST(Suite, RandomFourCpusStrict) {                                                                          \
    H h;                                                                                                       \
    h.run([](H& x) { ::iommusim::test::check_random_multi_cpu(x, vendor, true, 2, 100); }, sc_core::sc_time(1, sc_core::SC_SEC)); \
  }                                                                                                            \
  TEST(Long##Suite, RandomFourCpusLazyLongRun) {                                                             \
    H h;                                                                                                       \
    h.run([](H& x) { ::iommusim::test::check_random_multi_cpu(x, vendor, false, 7, 20000); }, sc_core::sc_time(10, sc_core::SC_SEC)); \
  }

}  // namespace iommusim::test

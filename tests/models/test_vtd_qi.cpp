// VT-d model: queued invalidation. Scope of IOTLB DSI (every PASID of the DID) and
// P_IOTLB (only its PASID), PSI on a nest parent, inv_wait ordering (after earlier
// descriptors and after walks an invalidation overtook), invalid-descriptor handling
// (IQE, IQER, queue stopped, recovery), invalidation cost and the driver's commands.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

using vtd::DescType;
using common::CommandTrace;
constexpr uint32_t kRid = 0x08;
constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;

// One first-stage domain attached to PASIDs 1 and 2 of kRid (one DID, two PASIDs), and a
// second domain on PASID 3. Each DMA once, so the IOTLB holds three entries.
struct TwoPasids {
  DomainId d = 0, other = 0;
  uint16_t did = 0;
};
TwoPasids two_pasids(Harness& h) {
  TwoPasids t;
  t.d = h.make_domain(DomainKind::Stage1);
  t.other = h.make_domain(DomainKind::Stage1);
  Harness::expect_ok(h.drv.map(t.d, kIova, kPa, kPage, {}, kPage));
  Harness::expect_ok(h.drv.map(t.other, kIova, kPa, kPage, {}, kPage));
  Harness::expect_ok(h.drv.attach(kRid, 1u, t.d));
  Harness::expect_ok(h.drv.attach(kRid, 2u, t.d));
  Harness::expect_ok(h.drv.attach(kRid, 3u, t.other));
  t.did = h.drv.did_of(t.d);
  for (uint32_t p : {1u, 2u, 3u}) EXPECT_TRUE(h.dma(kRid, p, kIova, false).ok());
  return t;
}
// True when a DMA on `pasid` hit the IOTLB.
bool hits(Harness& h, uint32_t pasid) {
  const uint64_t before = h.iommu.iotlb_stats().hits.value();
  EXPECT_TRUE(h.dma(kRid, pasid, kIova, false).ok());
  return h.iommu.iotlb_stats().hits.value() == before + 1;
}

bool hits_rid(Harness& h, uint64_t iova) {
  const uint64_t before = h.iommu.iotlb_stats().hits.value();
  EXPECT_TRUE(h.read(kRid, iova).ok());
  return h.iommu.iotlb_stats().hits.value() == before + 1;
}

TEST(VtdQi, DomainSelectiveIotlbHitsEveryPasidOfTheDid) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const TwoPasids t = two_pasids(h);
    ASSERT_EQ(h.iommu.iotlb_entries(), 3u);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_iotlb(vtd::IotlbGran::Domain, t.did)}, "test"));
    EXPECT_EQ(h.iommu.iotlb_entries(), 1u);
    EXPECT_FALSE(hits(h, 1));
    EXPECT_FALSE(hits(h, 2));
    EXPECT_TRUE(hits(h, 3));   // another DID
  });
}

TEST(VtdQi, PasidBasedInvalidationHitsOnlyItsPasid) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const TwoPasids t = two_pasids(h);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, t.did, 1)}, "test"));
    EXPECT_EQ(h.iommu.iotlb_entries(), 2u);
    EXPECT_FALSE(hits(h, 1));
    EXPECT_TRUE(hits(h, 2));
    EXPECT_TRUE(hits(h, 3));
    // Page-selective: only that page of that PASID.
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_iotlb(vtd::PiotlbGran::Page, t.did, 2, kIova + kPage, 0)}, "t"));
    EXPECT_TRUE(hits(h, 2));
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_iotlb(vtd::PiotlbGran::Page, t.did, 2, kIova, 0)}, "t"));
    EXPECT_FALSE(hits(h, 2));
    EXPECT_TRUE(hits(h, 1));
  });
}

TEST(VtdQi, DriverDomainFlushIsPiotlbPerPasidThenWait) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const TwoPasids t = two_pasids(h);
    h.iommu.set_command_probe([&](const CommandTrace& c) { traces.push_back(c); });
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(t.d));
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_EQ(traces[0].opcode, uint8_t(DescType::PasidIotlb));
    EXPECT_EQ(traces[1].opcode, uint8_t(DescType::PasidIotlb));
    EXPECT_EQ(traces[2].opcode, uint8_t(DescType::InvWait));
    EXPECT_FALSE(hits(h, 1));
    EXPECT_FALSE(hits(h, 2));
    EXPECT_TRUE(hits(h, 3));
  });
}

TEST(VtdQi, PsiOnANestParentDropsNestedEntries) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    ASSERT_EQ(h.iommu.iotlb_entries(), 1u);
    h.iommu.set_command_probe([&](const CommandTrace& c) { traces.push_back(c); });
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(s2, kBufferIpa, kPage, true));
    // IOTLB PSI on the parent DID and on the nested DID, then the wait.
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_EQ(traces[0].opcode, uint8_t(DescType::Iotlb));
    EXPECT_EQ(traces[1].opcode, uint8_t(DescType::Iotlb));
    EXPECT_EQ(h.iommu.iotlb_entries(), 0u);
  });
}

TEST(VtdQi, InvWaitCompletesAfterEarlierDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    h.iommu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });
    const uint64_t status = 0x7000000;
    h.memory.write32(status, 0);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_iotlb(vtd::IotlbGran::Global, 0),
                                     vtd::desc_inv_wait({true, true, false, false}, 0xCAFE, status),
                                     vtd::desc_context_cache(vtd::CcGran::Global)}, "test"));
    ASSERT_EQ(traces.size(), 4u);
    EXPECT_EQ(traces[1].opcode, uint8_t(DescType::InvWait));
    for (unsigned i = 1; i < 4; ++i) EXPECT_GT(traces[i].exec_end_ps, traces[i - 1].exec_end_ps);
    // The global IOTLB scan (512 sets) ran before the wait's status write.
    EXPECT_GT(traces[0].exec_end_ps - traces[0].fetch_end_ps, 512'000u);
    EXPECT_EQ(h.memory.read32(status), 0xCAFEu);
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::ICS, 4), 1u);   // IF set ICS.IWC
    EXPECT_EQ(vtd::reg::iq_index(h.iommu.peek_register(vtd::reg::IQH), true),
              vtd::reg::iq_index(h.iommu.peek_register(vtd::reg::IQT), true));
  });
}

// A walk that began before an invalidation holds back the next inv_wait, and its result
// is not installed in the IOTLB.
TEST(VtdQi, InvWaitWaitsForWalksOvertakenByAnInvalidation) {
  Harness h(vtd_config(/*walk_caches=*/false));
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, s1));
    ASSERT_TRUE(h.read(1, kIova).ok());   // warms the context and PASID caches
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(s1));
    h.iommu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });

    uint64_t dma_done_ps = 0;
    DmaResult r;
    sc_core::sc_spawn([&] {
      r = h.read(1, kIova);
      dma_done_ps = common::to_ps(sc_core::sc_time_stamp());
    });
    const uint64_t t0 = h.iommu.table_reads();
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_iotlb(vtd::IotlbGran::Global, 0)}, "overtake"));
    ASSERT_EQ(traces.size(), 2u);
    ASSERT_EQ(traces[1].opcode, uint8_t(DescType::InvWait));
    ASSERT_NE(dma_done_ps, 0u) << "the inv_wait completed before the overtaken walk";
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(h.iommu.table_reads() - t0, 24u);
    EXPECT_LT(traces[0].exec_end_ps, dma_done_ps) << "the invalidation must overtake the walk";
    EXPECT_GE(traces[1].exec_end_ps + 81'000, dma_done_ps);
    // The stale walk result was not cached.
    const uint64_t t1 = h.iommu.table_reads();
    ASSERT_TRUE(h.read(1, kIova).ok());
    EXPECT_EQ(h.iommu.table_reads() - t1, 24u);
  });
}

TEST(VtdQi, InvalidDescriptorSetsIqeStopsTheQueueAndRecovers) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    h.iommu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });
    const uint64_t iqh0 = vtd::reg::iq_index(h.iommu.peek_register(vtd::reg::IQH), true);
    // Type 0xB does not exist; write it by hand, then an inv_wait, and ring the doorbell.
    const uint64_t q = h.drv.queue_base();
    const uint64_t status = 0x7000000;
    h.memory.write32(status, 0);
    const vtd::DescWords bad{0xB, 0, 0, 0};
    const vtd::DescWords wait = vtd::desc_inv_wait({false, true, false, false}, 5, status);
    h.memory.write(q + iqh0 * 32, bad.data(), 32);
    h.memory.write(q + (iqh0 + 1) * 32, wait.data(), 32);
    sc_core::wait(sc_core::sc_time(10, sc_core::SC_US));
    EXPECT_TRUE(traces.empty());
    h.mmio_write(vtd::reg::IQT, vtd::reg::iq_reg_value(iqh0 + 2, true), 8);   // doorbell
    sc_core::wait(sc_core::sc_time(10, sc_core::SC_US));
    ASSERT_EQ(traces.size(), 1u);
    EXPECT_TRUE(traces[0].illegal);
    EXPECT_EQ(h.fsts() & 0x10u, 0x10u);   // IQE
    EXPECT_EQ(vtd::reg::IQER_IQEI::get(h.iommu.peek_register(vtd::reg::IQER)), uint64_t(vtd::reg::Iqei::InvalidType));
    EXPECT_EQ(vtd::reg::iq_index(h.iommu.peek_register(vtd::reg::IQH), true), iqh0) << "IQH stays at the bad one";
    EXPECT_EQ(h.memory.read32(status), 0u) << "the queue stopped";
    // Software replaces the descriptor and clears IQE (write 1): the queue resumes.
    const vtd::DescWords nop = vtd::desc_inv_wait({}, 0, 0);
    h.memory.write(q + iqh0 * 32, nop.data(), 32);
    h.mmio_write(vtd::reg::FSTS, 0x10, 4);
    sc_core::wait(sc_core::sc_time(10, sc_core::SC_US));
    EXPECT_EQ(h.fsts() & 0x10u, 0u);
    EXPECT_EQ(h.memory.read32(status), 5u);
    EXPECT_EQ(traces.size(), 3u);
  });
}

TEST(VtdQi, LegacyWidthQueueRuns128BitDescriptorsAndRejects256BitTypes) {
  Harness h;
  h.run([](Harness& h) {
    // Queue set up by hand: IQA.DW=0, QS=0 (256 x 16 B), no driver.
    const uint64_t q = 0x9000000, status = 0x7000000;
    h.mmio_write(vtd::reg::IQA, q, 8);
    h.mmio_write(vtd::reg::IQT, 0, 8);
    h.mmio_write(vtd::reg::GCMD, 1u << 26, 4);   // QIE
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::GSTS, 4), 1u << 26);
    const vtd::DescWords cc = vtd::desc_context_cache(vtd::CcGran::Global);
    const vtd::DescWords wait = vtd::desc_inv_wait({false, true, false, false}, 0x77, status);
    h.memory.write(q, cc.data(), 16);
    h.memory.write(q + 16, wait.data(), 16);
    h.mmio_write(vtd::reg::IQT, 2 * 16, 8);
    sc_core::wait(sc_core::sc_time(5, sc_core::SC_US));
    EXPECT_EQ(h.memory.read32(status), 0x77u);
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::IQH), 0x20u);   // byte offset, 16 B each
    // A P_IOTLB (a 256-bit type) in a 128-bit queue is an invalid type.
    const vtd::DescWords piotlb = vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, 2, 1);
    h.memory.write(q + 32, piotlb.data(), 16);
    h.mmio_write(vtd::reg::IQT, 3 * 16, 8);
    sc_core::wait(sc_core::sc_time(5, sc_core::SC_US));
    EXPECT_EQ(h.fsts() & 0x10u, 0x10u);
    EXPECT_EQ(vtd::reg::IQER_IQEI::get(h.iommu.peek_register(vtd::reg::IQER)), uint64_t(vtd::reg::Iqei::InvalidType));
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::IQH), 0x20u);
    // A tail beyond the queue is an invalid tail.
    h.memory.write(q + 32, wait.data(), 16);
    h.mmio_write(vtd::reg::FSTS, 0x10, 4);
    h.mmio_write(vtd::reg::IQT, 4096 + 16, 8);
    sc_core::wait(sc_core::sc_time(5, sc_core::SC_US));
    EXPECT_EQ(vtd::reg::IQER_IQEI::get(h.iommu.peek_register(vtd::reg::IQER)), uint64_t(vtd::reg::Iqei::InvalidTail));
  });
}

// With 256-bit descriptors (IQA.DW=1) IQT must be 32-byte aligned: bit 4 set is IQE with
// IQEI 6 (VT-d spec, IQERCD_REG: "queue tail not aligned to 256-bit descriptors"), not 1.
TEST(VtdQi, MisalignedTailOfA256BitQueueIsIqei6) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const uint64_t iqh = h.iommu.peek_register(vtd::reg::IQH);
    h.mmio_write(vtd::reg::IQT, iqh + 0x10, 8);   // half a descriptor further
    sc_core::wait(sc_core::sc_time(5, sc_core::SC_US));
    EXPECT_EQ(h.fsts() & 0x10u, 0x10u);           // FSTS.IQE
    EXPECT_EQ(vtd::reg::IQER_IQEI::get(h.iommu.peek_register(vtd::reg::IQER)), 6u);
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::IQH), iqh);
  });
}

TEST(VtdQi, DriverRecoversFromAnInvalidDescriptorLikeQiCheckFault) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    // A P_IOTLB with a reserved granularity (G=0), then a valid IOTLB global.
    vtd::DescWords bad = vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, 2, 0);
    bad[0] &= ~uint64_t(0x30);
    IOMMUSIM_ASSERT_OK(h.drv.submit({bad, vtd::desc_iotlb(vtd::IotlbGran::Global, 0)}, "test"));
    EXPECT_EQ(h.drv.queue_errors_recovered(), 1u);
    EXPECT_EQ(h.fsts() & 0x10u, 0u);
    EXPECT_EQ(h.iommu.iotlb_entries(), 0u) << "descriptors after the bad one ran";
    // The queue keeps working.
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d));
  });
}

// The queue engine's stats, by hand: init queues cc, pc and IOTLB global plus inv_wait (one
// fetch); [bad, IOTLB global, inv_wait] is one fetch, the retry after qi_check_fault's
// recovery (the bad descriptor replaced by an inv_wait) another.
TEST(VtdQi, QueueStatsCountFetchesErrorsAndDescriptorsByType) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    vtd::DescWords bad = vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, 2, 0);
    bad[0] &= ~uint64_t(0x30);   // reserved granularity G=0
    IOMMUSIM_ASSERT_OK(h.drv.submit({bad, vtd::desc_iotlb(vtd::IotlbGran::Global, 0)}, "test"));
    common::StatRegistry reg;
    h.iommu.register_stats(reg, "vtd");
    auto count = [&](const char* name) {
      const common::Counter* c = reg.find_counter(std::string("vtd.") + name);
      EXPECT_NE(c, nullptr) << name;
      return c ? c->value() : ~0ull;
    };
    EXPECT_EQ(count("iq.fetches"), 3u);
    EXPECT_EQ(count("iq.executed.cc_inv_dsc"), 1u);
    EXPECT_EQ(count("iq.executed.pc_inv_dsc"), 1u);
    EXPECT_EQ(count("iq.executed.iotlb_inv_dsc"), 2u);
    EXPECT_EQ(count("iq.executed.inv_wait_dsc"), 3u);
    EXPECT_EQ(count("iq.executed.p_iotlb_inv_dsc"), 0u);
    EXPECT_EQ(count("descriptors"), 7u);
    EXPECT_EQ(count("inv_waits"), 3u);
    EXPECT_EQ(count("invalid_descriptors"), 1u);
  });
}

TEST(VtdQi, BroadInvalidationCostsEverySetTargetedOneDoesNot) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    const auto& cfg = h.iommu.config();
    const uint64_t iotlb_sets = cfg.translation.iotlb.entries / cfg.translation.iotlb.ways;
    const uint64_t psc_sets = cfg.translation.s1_walk_cache.entries / cfg.translation.s1_walk_cache.ways;
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d));   // P_IOTLB(DID, PASID, all): every set
    const driver::InvalidationRecord all = h.drv.invalidations().records().back();
    EXPECT_EQ(all.commands, 2u);
    EXPECT_EQ(all.execution_ps, (cfg.desc_decode_cycles + cfg.desc_exec_cycles +
                                 iotlb_sets * cfg.translation.iotlb.scan_cycles_per_set +
                                 psc_sets * cfg.translation.s1_walk_cache.scan_cycles_per_set) * 1000);
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, true));   // P_IOTLB page, IH=1: one set
    const driver::InvalidationRecord page = h.drv.invalidations().records().back();
    EXPECT_EQ(page.commands, 2u);
    EXPECT_EQ(page.execution_ps, (cfg.desc_decode_cycles + cfg.desc_exec_cycles +
                                  cfg.translation.iotlb.scan_cycles_per_set) * 1000);
    for (const auto& r : {all, page})
      EXPECT_EQ(r.total_ps, r.software_ps + r.queueing_ps + r.fetch_ps + r.execution_ps + r.sync_ps);
    // Strict unmap: the page faults afterwards.
    IOMMUSIM_ASSERT_OK(h.drv.unmap(d, kIova, kPage));
    EXPECT_EQ(h.drv.invalidations().records().back().op, "unmap");
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
  });
}

TEST(VtdQi, SecondStagePsiScansOnlyItsSetsWithoutNestedEntries) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    ASSERT_TRUE(h.read(kRid, kIova + kPage).ok());
    IOMMUSIM_ASSERT_OK(h.drv.unmap(d, kIova, kPage));   // IOTLB PSI, IH=1
    const driver::InvalidationRecord r = h.drv.invalidations().records().back();
    EXPECT_EQ(r.commands, 2u);
    EXPECT_LT(r.execution_ps, 20'000u) << "no sweep of all 512 IOTLB sets";
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
    EXPECT_TRUE(hits_rid(h, kIova + kPage));
  });
}

TEST(VtdQi, ContextCacheDeviceSelectiveHonoursFunctionMask) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    for (uint32_t rid : {0x08u, 0x0Cu, 0x10u}) IOMMUSIM_ASSERT_OK(h.drv.attach(rid, std::nullopt, d));
    for (uint32_t rid : {0x08u, 0x0Cu, 0x10u}) ASSERT_TRUE(h.read(rid, kIova).ok());
    ASSERT_EQ(h.iommu.context_cache_stats().inserts.value(), 3u);
    // Device 1 function 0 with FM=1 (function bit 2 masked): drops 00:01.0 and 00:01.4.
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_context_cache(vtd::CcGran::Device, 0, 0x08, 1)}, "test"));
    EXPECT_EQ(h.iommu.context_cache_stats().invalidated.value(), 2u);
    // Register-based (CCMD, global) and IOTLB register (global) act at once.
    h.mmio_write(vtd::reg::CCMD, (1ull << 63) | (1ull << 61), 8);
    EXPECT_EQ(h.iommu.context_cache_stats().invalidated.value(), 3u);
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::CCMD) >> 63, 0u) << "ICC clears on completion";
    EXPECT_EQ((h.iommu.peek_register(vtd::reg::CCMD) >> 59) & 3, 1u) << "CAIG reports global";
    ASSERT_GT(h.iommu.iotlb_entries(), 0u);
    h.mmio_write(vtd::reg::IOTLB, (1ull << 63) | (1ull << 60), 8);
    EXPECT_EQ(h.iommu.iotlb_entries(), 0u);
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::IOTLB) >> 63, 0u);
  });
}

// Defect: an IOTLB PSI hit only second-stage entries (and nested ones on a nest parent).
// VT-d 4.x 6.5.2.3 (page-selective-within-domain): IOTLB entries caching first-stage
// (PGTT=001b) or nested (PGTT=011b) mappings of the DID are invalidated too, whatever their
// address (QEMU "intel_iommu: Flush stage-1 cache in iotlb invalidation").
TEST(VtdQi, PsiAlsoDropsFirstStageEntriesOfTheDid) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const TwoPasids t = two_pasids(h);   // first-stage (PGTT=001b) on PASIDs 1, 2 (one DID) and 3
    ASSERT_EQ(h.iommu.iotlb_entries(), 3u);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_iotlb(vtd::IotlbGran::Page, t.did, kIova, 0)}, "test"));
    EXPECT_EQ(h.iommu.iotlb_entries(), 1u);
    EXPECT_FALSE(hits(h, 1));
    EXPECT_FALSE(hits(h, 2));
    EXPECT_TRUE(hits(h, 3));   // another DID
  });
}

// Defect: a PASID-selective P_IOTLB (G=2, "all mappings in the PASID") kept second-stage
// entries of that DID and PASID. VT-d 6.5.2.4 and QEMU vtd_piotlb_pasid_invalidate drop
// every IOTLB entry tagged with the DID and PASID.
TEST(VtdQi, PasidSelectivePiotlbDropsSecondStageEntriesOfThePasid) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));   // requests without PASID use RID_PASID 0
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    ASSERT_TRUE(hits_rid(h, kIova));
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_iotlb(vtd::PiotlbGran::Pasid, h.drv.did_of(d), 0)}, "test"));
    EXPECT_EQ(h.iommu.iotlb_entries(), 0u);
    EXPECT_FALSE(hits_rid(h, kIova));
  });
}

// Defect: register-based invalidation never checked IVA.AM against CAP.MAMV, and
// psi_bytes(am) shifted out of range for AM >= 52. An AM above MAMV is an incorrect
// request: hardware ignores it and reports IOTLB_REG.IAIG = 00b (VT-d 11.4.8.1).
TEST(VtdQi, RegisterPsiWithAmAboveMamvIsIgnoredWithIaigZero) {
  Harness h;   // CAP.MAMV = 18
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    const uint64_t did = h.drv.did_of(d);
    const uint64_t psi = (1ull << 63) | (3ull << 60) | (did << 32);   // IVT, IIRG = page, DID
    for (const uint64_t am : {19ull, 52ull, 63ull}) {
      h.mmio_write(vtd::reg::IVA, am, 8);   // ADDR 0, AM
      h.mmio_write(vtd::reg::IOTLB, psi, 8);
      EXPECT_EQ(h.iommu.peek_register(vtd::reg::IOTLB) >> 63, 0u) << "AM " << am << ": IVT clears";
      EXPECT_EQ((h.iommu.peek_register(vtd::reg::IOTLB) >> 57) & 3, 0u) << "AM " << am << ": IAIG 00b";
      EXPECT_EQ(h.iommu.iotlb_entries(), 1u) << "AM " << am << ": the request is ignored";
    }
    // AM = MAMV is carried out: 2^18 pages from 0 cover kIova.
    h.mmio_write(vtd::reg::IVA, 18, 8);
    h.mmio_write(vtd::reg::IOTLB, psi, 8);
    EXPECT_EQ((h.iommu.peek_register(vtd::reg::IOTLB) >> 57) & 3, 3u);
    EXPECT_EQ(h.iommu.iotlb_entries(), 0u);
  });
}

// Defect: an IOTLB invalidation with DR/DW set (Linux sets them when CAP.DRD/DWD
// advertise draining, qi_flush_iotlb) completed at once; it must complete only after the
// DMAs in flight on the old entries have drained, so the following inv_wait waits for it.
TEST(VtdQi, IotlbInvalidationWithDrainCompletesAfterTheDmasInFlight) {
  Harness h(vtd_config(/*walk_caches=*/false));
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const auto cap = vtd::reg::decode_cap(h.iommu.peek_register(vtd::reg::CAP));
    EXPECT_TRUE(cap.drd);
    EXPECT_TRUE(cap.dwd);
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, s1));
    ASSERT_TRUE(h.read(1, kIova).ok());   // warms the context and PASID caches
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(s1));
    h.iommu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });

    uint64_t dma_done_ps = 0;
    sc_core::sc_spawn([&] {
      EXPECT_TRUE(h.read(1, kIova).ok());   // a cold 24-read nested walk, then the access
      dma_done_ps = common::to_ps(sc_core::sc_time_stamp());
    });
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_iotlb(vtd::IotlbGran::Global, 0, 0, 0, false, true, true)}, "drain"));
    ASSERT_EQ(traces.size(), 2u);
    ASSERT_EQ(traces[0].opcode, uint8_t(DescType::Iotlb));
    ASSERT_NE(dma_done_ps, 0u);
    // The descriptor itself ends only once the walk is done: at most the DMA's own 8-byte
    // memory access (80 + 1 cycles at 1 GHz) before the DMA completes.
    EXPECT_GE(traces[0].exec_end_ps + 81'000, dma_done_ps);
    EXPECT_LE(traces[0].exec_end_ps, traces[1].exec_end_ps);
  });
}

}  // namespace
}  // namespace iommusim::vtdtest

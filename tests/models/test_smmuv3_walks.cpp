// SMMUv3 model: table walks (S1, S2, nested), their exact descriptor-read counts with
// and without walk caches, block mappings, faults and their event records, and the
// 2-level stream table. Tables are built by the SMMUv3 driver; DMA comes from the
// fixture's initiator. Values stored at the expected PA prove the translation.
#include <cstdint>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x12;
constexpr uint64_t kIova = 0x10000000ull;          // 2 MB aligned
constexpr uint64_t kPa = 0x40200000ull;            // S1/S2-only targets (2 MB aligned)
constexpr uint64_t kMagic = 0x1122334455667788ull;

TEST(SmmuWalks, Stage1OnlyColdWalkReadsFourDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    h.memory.write64(kPa + 0x18, kMagic);
    const uint64_t t0 = h.smmu.table_reads(), c0 = h.smmu.config_reads();
    const DmaResult r = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    EXPECT_EQ(h.smmu.config_reads() - c0, 2u);   // STE + CD
    // Warm: IOTLB and config cache hit.
    const uint64_t t1 = h.smmu.table_reads(), hits = h.smmu.iotlb_stats().hits.value();
    const DmaResult r2 = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads(), t1);
    EXPECT_EQ(h.smmu.config_reads() - c0, 2u);
    EXPECT_EQ(h.smmu.iotlb_stats().hits.value(), hits + 1);
  });
}

TEST(SmmuWalks, Stage2OnlyColdWalkReadsFourDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa + 0x100, kMagic);
    const uint64_t t0 = h.smmu.table_reads(), c0 = h.smmu.config_reads();
    const DmaResult r = h.read(kRid, kIova + 0x100);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    EXPECT_EQ(h.smmu.config_reads() - c0, 1u);   // STE only
    // A DMA write lands at the PA.
    ASSERT_TRUE(h.dma(kRid, std::nullopt, kIova + 0x200, true, ~kMagic).ok());
    EXPECT_EQ(h.memory.read64(kPa + 0x200), ~kMagic);
  });
}

TEST(SmmuWalks, NestedColdWalkWithoutWalkCachesReads24Descriptors) {
  Harness h(smmu_config(/*walk_caches=*/false));
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferIpa + 0x40, kMagic);
    const uint64_t t0 = h.smmu.table_reads(), c0 = h.smmu.config_reads(), l0 = h.smmu.config_locate_reads();
    const DmaResult r = h.read(kRid, kIova + 0x40);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    // 4 S1 levels x (4 S2 reads + 1 S1 read) + 4 S2 reads for the output IPA. The CD's own
    // stage-2 translation is a config fetch, not a table walk.
    EXPECT_EQ(h.smmu.table_reads() - t0, 24u);
    EXPECT_EQ(h.smmu.config_reads() - c0, 2u);   // STE + CD
    // Apart: the 4-level stage-2 walk that locates the CD at its IPA (the same count AMD
    // gives for locating a nested GCR3 entry).
    EXPECT_EQ(h.smmu.config_locate_reads() - l0, 4u);
    EXPECT_EQ(h.smmu.walk_reads().max(), 24u);
    // Same page again: IOTLB hit, no reads.
    const uint64_t t1 = h.smmu.table_reads();
    const DmaResult r2 = h.read(kRid, kIova + 0x48);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(h.smmu.table_reads(), t1);
    EXPECT_EQ(h.smmu.config_reads() - c0, 2u);
    (void)s2;
  });
}

TEST(SmmuWalks, NestedWalkCachesCutTheSecondWalkToTwoReads) {
  Harness h;   // every cache on
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferIpa + kPage, kMagic);
    const uint64_t t0 = h.smmu.table_reads();
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    // Cold, with caches: the CD fetch's stage-2 walk left the guest pool's L3 S2 table in
    // the S2 walk cache, so each S1 table IPA costs 1 S2 read (4 x 2), and the output
    // IPA (another 2 MB region of the same 1 GB) starts at the S2 L2 table: 2 reads.
    EXPECT_EQ(h.smmu.table_reads() - t0, 10u);
    // Next page of the same 2 MB: S1 walk cache -> L3 table IPA, IPA cache hit for it ->
    // 1 S1 read; output IPA misses the IPA cache, S2 walk cache gives L3 -> 1 S2 read.
    const uint64_t t1 = h.smmu.table_reads();
    const DmaResult r = h.read(kRid, kIova + kPage);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t1, 2u);
    (void)s2;
  });
}

TEST(SmmuWalks, Stage1WalkCacheCutsTheSecondWalkToOneRead) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa + kPage, kMagic);
    const uint64_t t0 = h.smmu.table_reads();
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    const uint64_t t1 = h.smmu.table_reads(), wc_hits = h.smmu.s1_walk_cache_stats().hits.value();
    const DmaResult r = h.read(kRid, kIova + kPage);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t1, 1u);
    EXPECT_EQ(h.smmu.s1_walk_cache_stats().hits.value(), wc_hits + 1);
  });
}

TEST(SmmuWalks, Stage1BlockMappingWalksThreeLevels) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, k2M, {}, k2M));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa + 0x123008, kMagic);
    const uint64_t t0 = h.smmu.table_reads();
    const DmaResult r = h.read(kRid, kIova + 0x123008);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t0, 3u);
    // The IOTLB holds a 2 MB entry: another 4 KB page of the block hits.
    h.memory.write64(kPa + 0x1FF000, ~kMagic);
    const uint64_t t1 = h.smmu.table_reads();
    const DmaResult r2 = h.read(kRid, kIova + 0x1FF000);
    ASSERT_TRUE(r2.ok());
    EXPECT_EQ(r2.data, ~kMagic);
    EXPECT_EQ(h.smmu.table_reads(), t1);
  });
}

// Nested, walk caches and IPA cache off, stage 2 with blocks: each S2 walk is 3 reads
// (2 MB) or 2 reads (1 GB) instead of 4.
void nested_over_s2_blocks(uint64_t s2_page, uint64_t s1_page, uint64_t expected_reads) {
  Harness h(smmu_config(/*walk_caches=*/false));
  h.run([=](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(s2_page);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, s1_page, {}, s1_page));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    const uint64_t off = s1_page - 0x18;   // last bytes of the S1 page or block
    h.memory.write64(kGuestRamPa + kBufferIpa + off, kMagic);
    const uint64_t t0 = h.smmu.table_reads();
    const DmaResult r = h.read(kRid, kIova + off);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.table_reads() - t0, expected_reads);
    if (s1_page == k2M) {
      // Both stages map 2 MB, so the combined IOTLB entry covers the whole block: another
      // 4 KB page in it hits without a walk.
      const uint64_t t1 = h.smmu.table_reads();
      ASSERT_TRUE(h.read(kRid, kIova + 0x1000).ok());
      EXPECT_EQ(h.smmu.table_reads(), t1);
    }
    (void)s2;
  });
}

TEST(SmmuWalks, NestedOverStage2Blocks2M) { nested_over_s2_blocks(k2M, kPage, 4 * (3 + 1) + 3); }
TEST(SmmuWalks, NestedOverStage2Blocks1G) { nested_over_s2_blocks(k1G, kPage, 4 * (2 + 1) + 2); }
TEST(SmmuWalks, NestedS1BlockOverStage2Blocks2M) { nested_over_s2_blocks(k2M, k2M, 3 * (3 + 1) + 3); }

TEST(SmmuWalks, UnmappedIovaRaisesTranslationFault) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    ASSERT_TRUE(h.events().empty());
    const uint64_t bad = kIova + 5 * kPage + 0x10;
    const DmaResult r = h.read(kRid, bad);
    EXPECT_EQ(r.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::F_TRANSLATION);
    EXPECT_EQ(ev[0].sid, kRid);
    EXPECT_EQ(ev[0].input_addr, bad);
    EXPECT_FALSE(ev[0].s2);
    EXPECT_TRUE(ev[0].rnw);
    EXPECT_EQ(h.smmu.events_written(), 1u);
  });
}

TEST(SmmuWalks, WriteToReadOnlyPageRaisesPermissionFault) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    Prot ro; ro.read = true; ro.write = false;
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, ro, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa, kMagic);
    ASSERT_TRUE(h.read(kRid, kIova).ok());   // reads are allowed (and fill the IOTLB)
    const DmaResult w = h.dma(kRid, std::nullopt, kIova + 8, true, 0xDEAD);
    EXPECT_EQ(w.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    EXPECT_EQ(w.response, IommuResponse::Fault);
    EXPECT_EQ(h.memory.read64(kPa + 8), 0u) << "a faulting write must not reach memory";
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::F_PERMISSION);
    EXPECT_EQ(ev[0].sid, kRid);
    EXPECT_EQ(ev[0].input_addr, kIova + 8);
    EXPECT_FALSE(ev[0].rnw);
  });
}

TEST(SmmuWalks, StreamWithoutSteRaisesBadSte) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DmaResult r = h.read(7, kIova);
    EXPECT_EQ(r.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::C_BAD_STE);
    EXPECT_EQ(ev[0].sid, 7u);
  });
}

TEST(SmmuWalks, StreamIdBeyondStreamTableRaisesBadStreamId) {
  Harness h;   // driver default: stream_table_log2 = 8
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DmaResult r = h.read(256, kIova);
    EXPECT_EQ(r.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const DmaResult ok_sid = h.read(255, kIova);   // inside the table, but no STE
    EXPECT_EQ(ok_sid.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].id, EventId::C_BAD_STREAMID);
    EXPECT_EQ(ev[0].sid, 256u);
    EXPECT_EQ(ev[1].id, EventId::C_BAD_STE);
    EXPECT_EQ(ev[1].sid, 255u);
  });
}

TEST(SmmuWalks, NestedStage2FaultOnOutputIpa) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    const uint64_t unmapped_ipa = 0x20000000ull;   // not mapped by the 4 KB stage 2
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, unmapped_ipa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    const DmaResult r = h.read(kRid, kIova + 0x30);
    EXPECT_EQ(r.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::F_TRANSLATION);
    EXPECT_TRUE(ev[0].s2);
    EXPECT_EQ(ev[0].sid, kRid);
    EXPECT_EQ(ev[0].input_addr, kIova + 0x30);
    EXPECT_EQ(ev[0].ipa_or_fetch_addr, unmapped_ipa);
    EXPECT_EQ(ev[0].cls, 2u);   // input address, not a table fetch
    (void)s2;
  });
}

// The CD of a nested stream lives at an IPA. When stage 2 does not map it, the stage-2
// fault on the CD fetch reports CLASS=CD (0b00), not TT: QEMU smmu_get_cd.
TEST(SmmuWalks, Stage2FaultOnCdFetchReportsClassCd) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    // The STE (linear stream table, 64 bytes per SID) names the CD table's IPA.
    smmuv3::SteWords ste{};
    const uint64_t strtab = h.smmu.peek_register(smmuv3::reg::STRTAB_BASE) & 0x000FFFFFFFFFFFC0ull;
    h.memory.read(strtab + uint64_t(kRid) * 64, ste.data(), 64);
    const uint64_t cd_ipa = smmuv3::decode_ste(ste, nullptr)->s1_context_ptr;   // SSID 0's CD
    // Take the CD's page out of stage 2 before the first DMA (nothing is cached yet).
    IOMMUSIM_ASSERT_OK(h.drv.unmap(s2, cd_ipa & ~(kPage - 1), kPage));
    const DmaResult r = h.read(kRid, kIova + 0x18);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::F_TRANSLATION);
    EXPECT_TRUE(ev[0].s2);
    EXPECT_EQ(ev[0].cls, 0u);                       // CLASS=CD
    EXPECT_EQ(ev[0].input_addr, kIova + 0x18);
    EXPECT_EQ(ev[0].ipa_or_fetch_addr, cd_ipa & ~(kPage - 1));   // IPA[51:12] of the CD
  });
}

TEST(SmmuWalks, TwoLevelStreamTableTranslates) {
  driver::Smmuv3DriverConfig dc;
  dc.two_level_stream_table = true;
  dc.stream_table_log2 = 12;
  Harness h(smmu_config(), dc);
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    const uint32_t sid = 0x345;   // L1 index 3
    IOMMUSIM_ASSERT_OK(h.drv.attach(sid, std::nullopt, d));
    h.memory.write64(kPa + 0x20, kMagic);
    const uint64_t c0 = h.smmu.config_reads(), t0 = h.smmu.table_reads();
    const DmaResult r = h.read(sid, kIova + 0x20);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.smmu.config_reads() - c0, 3u);   // L1 descriptor + STE + CD
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    // A SID whose L1 descriptor is invalid (SPAN 0) is a bad StreamID.
    const DmaResult bad = h.read(0x145, kIova);
    EXPECT_EQ(bad.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].id, EventId::C_BAD_STREAMID);
    EXPECT_EQ(ev[0].sid, 0x145u);
  });
}


TEST(SmmuRegisters, IdRegistersDescribeWhatTheModelSupports) {
  Harness h(smmu_config(/*walk_caches=*/true));
  h.run([](Harness& h) {
    using namespace iommusim::smmuv3::reg;
    const uint64_t idr0 = h.smmu.peek_register(IDR0), idr1 = h.smmu.peek_register(IDR1);
    const uint64_t idr3 = h.smmu.peek_register(IDR3), idr5 = h.smmu.peek_register(IDR5);
    EXPECT_EQ(IDR0_S1P::get(idr0), 1u);
    EXPECT_EQ(IDR0_S2P::get(idr0), 1u);
    EXPECT_EQ(IDR0_TTF::get(idr0), 2u);          // AArch64 tables only
    EXPECT_EQ(IDR0_ST_LEVEL::get(idr0), 1u);     // 2-level stream tables
    EXPECT_EQ(IDR0_STALL_MODEL::get(idr0), 1u);  // no stall mode: CD.S, STE.S2S are C_BAD_*
    EXPECT_EQ(IDR0_TERM_MODEL::get(idr0), 1u);   // always abort: CD.A=0 is C_BAD_CD
    EXPECT_EQ(IDR0_HTTU::get(idr0), 0u);         // no HW A/D update: CD.HA/HD are C_BAD_CD
    EXPECT_EQ(IDR0_TTENDIAN::get(idr0), 2u);     // little-endian: CD.ENDI, STE.S2ENDI are C_BAD_*
    EXPECT_EQ(IDR0_MSI::get(idr0), 1u);
    // AIDR: ArchMajorRev=0, ArchMinorRev=2 (SMMUv3.2, which IDR3.RIL needs) => 0x02.
    EXPECT_EQ(h.smmu.peek_register(AIDR, 4), 0x02u);
    EXPECT_EQ(IDR1_SIDSIZE::get(idr1), 16u);
    EXPECT_EQ(IDR3_RIL::get(idr3), 1u);
    EXPECT_EQ(IDR5_OAS::get(idr5), 5u);          // 48 bits
    EXPECT_EQ(IDR5_GRAN4K::get(idr5), 1u);
    EXPECT_EQ(IDR5_GRAN16K::get(idr5), 0u);      // the STE/CD checks reject other granules
    EXPECT_EQ(IDR5_GRAN64K::get(idr5), 0u);
  });
}

// The driver drains the event queue as Linux does; a full queue overflows (OVFLG) and
// records are lost until the driver catches up and acknowledges.
TEST(SmmuEvents, DriverDrainsQueueAndAcknowledgesOverflow) {
  Harness h;   // driver default: evtq_log2 = 7 (128 records)
  h.run([](Harness& h) {
    using namespace iommusim::smmuv3::reg;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(h.read(kRid, kIova + 8 * kPage).ok());
    EXPECT_EQ(h.drv.drain_events(), 3u);
    EXPECT_EQ(h.drv.events_seen(EventId::F_TRANSLATION), 3u);
    EXPECT_EQ(h.drv.drain_events(), 0u);
    // 130 more faults into a 128-entry queue: 128 recorded, then OVFLG toggles.
    for (int i = 0; i < 130; ++i) ASSERT_FALSE(h.read(kRid, kIova + 8 * kPage).ok());
    EXPECT_EQ(EVTQ_PROD_OVFLG::get(h.smmu.peek_register(EVTQ_PROD)), 1u);
    EXPECT_EQ(h.drv.drain_events(), 128u);
    EXPECT_EQ(h.drv.events_seen(EventId::F_TRANSLATION), 131u);
    EXPECT_EQ(h.smmu.peek_register(EVTQ_CONS) >> 31, 1u);   // overflow acknowledged
    // Recording resumes once there is room.
    ASSERT_FALSE(h.read(kRid, kIova + 8 * kPage).ok());
    EXPECT_EQ(h.drv.drain_events(), 1u);
  });
}

}  // namespace
}  // namespace iommusim::test

namespace iommusim::test {
namespace {

// A 4- or 8-byte register access straight into the model (as the driver's socket would).
tlm::tlm_response_status smmu_mmio(Harness& h, uint64_t offset, unsigned len, uint64_t value) {
  tlm::tlm_generic_payload p;
  p.set_command(tlm::TLM_WRITE_COMMAND);
  p.set_address(offset);
  p.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
  p.set_data_length(len);
  p.set_streaming_width(len);
  sc_core::sc_time d = sc_core::SC_ZERO_TIME;
  h.smmu.mmio.get_base_interface().b_transport(p, d);
  return p.get_response_status();
}

// IDR0.MSI=1, so the MSI configuration registers exist (Linux arm_smmu_setup_msis writes
// them): GERROR_IRQ_CFG0/1/2 at 0x68/0x70/0x74, EVTQ_IRQ_CFG0/1/2 at 0xB0/0xB8/0xBC
// (IHI 0070, 6.3). CFG0 keeps ADDR[51:2], CFG1 the 32-bit data, CFG2 SH[5:4] and MemAttr[3:0].
TEST(SmmuRegisters, MsiConfigurationRegistersAreStored) {
  Harness h;
  h.run([](Harness& h) {
    using namespace iommusim::smmuv3::reg;
    EXPECT_EQ(smmu_mmio(h, GERROR_IRQ_CFG1, 4, 0xDEADBEEF), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(smmu_mmio(h, GERROR_IRQ_CFG2, 4, 0xFF), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(smmu_mmio(h, EVTQ_IRQ_CFG0, 8, 0xFFFF123456789ABFull), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(smmu_mmio(h, EVTQ_IRQ_CFG1, 4, 0x1234), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(smmu_mmio(h, EVTQ_IRQ_CFG2, 4, 0x31), tlm::TLM_OK_RESPONSE);   // SH=3 (inner), MemAttr=1 (nGnRE)
    EXPECT_EQ(h.smmu.peek_register(GERROR_IRQ_CFG1, 4), 0xDEADBEEFu);
    EXPECT_EQ(h.smmu.peek_register(GERROR_IRQ_CFG2, 4), 0x3Fu);               // bits [31:6] RES0
    // ADDR[51:2]: 0xFFFF_1234_5678_9ABF & 0x000F_FFFF_FFFF_FFFC = 0x000F_1234_5678_9ABC
    EXPECT_EQ(h.smmu.peek_register(EVTQ_IRQ_CFG0), 0x000F123456789ABCull);
    EXPECT_EQ(h.smmu.peek_register(EVTQ_IRQ_CFG1, 4), 0x1234u);
    EXPECT_EQ(h.smmu.peek_register(EVTQ_IRQ_CFG2, 4), 0x31u);
  });
}

// CMDQ_CONS and EVTQ_PROD are writable while their queue is disabled (Linux writes them at
// reset) and ignore writes while it is enabled.
TEST(SmmuRegisters, QueuePointersWritableOnlyWhileTheQueueIsDisabled) {
  Harness h;
  h.run([](Harness& h) {
    using namespace iommusim::smmuv3::reg;
    // Before init: both queues are disabled (CR0ACK = 0).
    EXPECT_EQ(smmu_mmio(h, CMDQ_CONS, 4, 0x7F000025), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(h.smmu.peek_register(CMDQ_CONS, 4), 0x25u);                     // ERR[30:24] is read-only
    EXPECT_EQ(smmu_mmio(h, EVTQ_PROD, 4, 0x80000011), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(h.smmu.peek_register(EVTQ_PROD, 4), 0x80000011u);               // OVFLG | index 0x11
    EXPECT_EQ(smmu_mmio(h, EVTQ_PROD_PAGE0, 4, 0x3), tlm::TLM_OK_RESPONSE);    // the page-0 alias
    EXPECT_EQ(h.smmu.peek_register(EVTQ_PROD, 4), 0x3u);
    IOMMUSIM_ASSERT_OK(h.drv.init());   // resets the pointers and enables both queues
    const uint64_t cons = h.smmu.peek_register(CMDQ_CONS, 4), prod = h.smmu.peek_register(EVTQ_PROD, 4);
    EXPECT_EQ(smmu_mmio(h, CMDQ_CONS, 4, cons + 5), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(smmu_mmio(h, EVTQ_PROD, 4, prod + 5), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(h.smmu.peek_register(CMDQ_CONS, 4), cons);
    EXPECT_EQ(h.smmu.peek_register(EVTQ_PROD, 4), prod);
  });
}

}  // namespace
}  // namespace iommusim::test

// VT-d model: scalable-mode translation. First-stage (4- and 5-level), second-stage,
// nested and pass-through walks with their exact read counts, RID vs RID+PASID, the
// registers, and fault records with the architected reason codes. Tables are built by
// the VT-d driver (the 5-level table by hand); values stored at the expected PA prove the
// translation.
#include <cstdint>

#include <gtest/gtest.h>

#include "models/pagetable/x86.h"
#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

constexpr uint32_t kRid = 0x12;                    // bus 0, devfn 0x12
constexpr uint64_t kIova = 0x10000000ull;          // 2 MB aligned
constexpr uint64_t kPa = 0x40200000ull;
constexpr uint64_t kMagic = 0x1122334455667788ull;

TEST(VtdWalks, FirstStageColdWalkReadsFourDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(kRid, kIova, kPa);
    ASSERT_NE(d, 0u);
    h.memory.write64(kPa + 0x18, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads();
    const DmaResult r = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u);
    EXPECT_EQ(h.iommu.config_reads() - c0, 4u);   // root, context, PASID dir, PASID entry
    const uint64_t t1 = h.iommu.table_reads(), hits = h.iommu.iotlb_stats().hits.value();
    ASSERT_TRUE(h.read(kRid, kIova + 0x18).ok());
    EXPECT_EQ(h.iommu.table_reads(), t1);
    EXPECT_EQ(h.iommu.config_reads() - c0, 4u);   // context and PASID caches hit
    EXPECT_EQ(h.iommu.iotlb_stats().hits.value(), hits + 1);
  });
}

// A source-id is 16 bits and a PASID 20: wider values must be refused, not truncated onto
// another device's (or PASID's) tables.
TEST(VtdWalks, RequesterIdOrPasidWiderThanTheWireIsRefusedNotAliased) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    h.memory.write64(kPa, kMagic);
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    const DmaResult wide_rid = h.read(kRid | 0x10000, kIova);   // truncates to kRid
    EXPECT_FALSE(wide_rid.ok());
    EXPECT_EQ(wide_rid.response, IommuResponse::Aborted);
    const DmaResult wide_pasid = h.dma(kRid, 1u << 20, kIova, false);
    EXPECT_FALSE(wide_pasid.ok());
    EXPECT_EQ(h.iommu.malformed_requests(), 2u);
    EXPECT_EQ(h.iommu.faults_recorded(), 0u);   // not a translation fault: nothing to record
  });
}

TEST(VtdWalks, FirstStageFiveLevelWalkReadsFiveDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_TRUE(h.drv.cap().fl5lp);
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    // A 5-level table for an IOVA above 2^48 (index 2 in the PML5), built by hand.
    const pagetable::X86Format f5(pagetable::X86PagingConfig{5, true, 48});
    const uint64_t iova = (2ull << 48) | (3ull << 39) | 0x5000;
    const uint64_t tables = 0x80000000ull;
    for (unsigned level = 0; level < 4; ++level) {
      const uint64_t idx = (iova >> f5.level_shift(level)) & 511;
      h.memory.write64(tables + level * kPage + idx * 8, f5.encode_table(level, tables + (level + 1) * kPage));
    }
    pagetable::LeafAttributes a;
    h.memory.write64(tables + 4 * kPage + ((iova >> 12) & 511) * 8, f5.encode_leaf(4, kPa, a));
    vtd::PasidEntry pe;
    pe.present = true; pe.did = h.drv.did_of(d); pe.aw = 2; pe.pgtt = vtd::Pgtt::FirstStage; pe.sre = true;
    pe.fspm = 1; pe.fsptptr = tables;
    const auto w = vtd::encode_pasid_entry(pe);
    h.memory.write(h.drv.pasid_entry_address(kRid, 0), w.data(), 64);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_cache(vtd::PcGran::Pasid, pe.did, 0)}, "test"));
    h.memory.write64(kPa + 0x20, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const DmaResult r = h.read(kRid, iova + 0x20);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 5u);
    EXPECT_TRUE(h.faults().empty());
    // The same IOVA is beyond a 4-level first stage: non-canonical (0x80).
    ASSERT_NE(h.stage1_device(kRid + 1, kIova, kPa), 0u);
    EXPECT_EQ(h.read(kRid + 1, iova + 0x20).response, IommuResponse::Fault);
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].reason, 0x80u);
  });
}

TEST(VtdWalks, SecondStageColdWalkReadsFourDescriptors) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa + 0x100, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const DmaResult r = h.read(kRid, kIova + 0x100);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u);
    ASSERT_TRUE(h.dma(kRid, std::nullopt, kIova + 0x200, true, ~kMagic).ok());
    EXPECT_EQ(h.memory.read64(kPa + 0x200), ~kMagic);
  });
}

TEST(VtdWalks, NestedColdWalkWithoutCachesReads24Descriptors) {
  Harness h(vtd_config(/*walk_caches=*/false));
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    EXPECT_NE(h.drv.did_of(s1), h.drv.did_of(s2));   // the nested domain has its own DID
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferIpa + 0x40, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads();
    const DmaResult r = h.read(kRid, kIova + 0x40);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    // 4 FS levels x (4 SS reads + 1 FS read) + 4 SS reads for the output GPA.
    EXPECT_EQ(h.iommu.table_reads() - t0, 24u);
    EXPECT_EQ(h.iommu.config_reads() - c0, 4u);   // counted apart
    EXPECT_EQ(h.iommu.walk_reads().max(), 24u);
  });
}

TEST(VtdWalks, NestedWalkCachesShortenTheSecondWalk) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, 2 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    ASSERT_TRUE(h.read(kRid, kIova).ok());
    const uint64_t t0 = h.iommu.table_reads();
    ASSERT_TRUE(h.read(kRid, kIova + kPage).ok());
    EXPECT_LT(h.iommu.table_reads() - t0, 24u);
    EXPECT_GT(h.iommu.fs_psc_stats().hits.value(), 0u);
  });
}

TEST(VtdWalks, PassThroughNeedsNoTables) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    IOMMUSIM_ASSERT_OK(h.drv.attach_pass_through(kRid, std::nullopt));
    h.memory.write64(kPa + 8, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const DmaResult r = h.read(kRid, kPa + 8);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads(), t0);
  });
}

TEST(VtdWalks, RidAndRidPasidUseTheirOwnTables) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId a = h.make_domain(DomainKind::Stage1), b = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(a, kIova, kPa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.map(b, kIova, kPa + k2M, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, a));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, 7u, b));
    h.memory.write64(kPa, 0xAAAA);
    h.memory.write64(kPa + k2M, 0xBBBB);
    const DmaResult ra = h.dma(kRid, std::nullopt, kIova, false);
    const DmaResult rb = h.dma(kRid, 7u, kIova, false);
    ASSERT_TRUE(ra.ok());
    ASSERT_TRUE(rb.ok());
    EXPECT_EQ(ra.data, 0xAAAAu);
    EXPECT_EQ(rb.data, 0xBBBBu);
    // A PASID nobody attached: its PASID-table entry is not present.
    EXPECT_EQ(h.dma(kRid, 8u, kIova, false).response, IommuResponse::Fault);
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].reason, uint8_t(FaultReason::SM_PASID_ENTRY_NOT_PRESENT));
    EXPECT_TRUE(f[0].pasid_present);
    EXPECT_EQ(f[0].pasid, 8u);
  });
}

TEST(VtdRegisters, CapAndEcapDescribeTheModel) {
  Harness h;
  h.run([](Harness& h) {
    const auto cap = vtd::reg::decode_cap(h.iommu.peek_register(vtd::reg::CAP));
    const auto ecap = vtd::reg::decode_ecap(h.iommu.peek_register(vtd::reg::ECAP));
    EXPECT_TRUE(ecap.smts);
    EXPECT_TRUE(ecap.qi);
    EXPECT_TRUE(ecap.pasid);
    EXPECT_TRUE(ecap.nest);
    EXPECT_TRUE(ecap.fsts);
    EXPECT_TRUE(ecap.ssts);
    EXPECT_TRUE(ecap.pt);
    EXPECT_EQ(ecap.pasid_bits(), 20u);
    // SRS (ECAP bit 31): the model checks SRE and the driver sets it (Linux refuses SRE
    // without SRS). SMPWCS (bit 48): scalable-mode walks are coherent.
    const uint64_t raw = h.iommu.peek_register(vtd::reg::ECAP);
    EXPECT_EQ((raw >> 31) & 1, 1u);
    EXPECT_EQ((raw >> 48) & 1, 1u);
    EXPECT_EQ(cap.sagaw, 0xEu);
    EXPECT_EQ(cap.did_bits(), 16u);
    EXPECT_EQ(cap.mgaw_bits, 48u);
    EXPECT_EQ(cap.fault_record_offset(), 0x220u);
    EXPECT_EQ(cap.num_fault_records, 8u);
    EXPECT_EQ(ecap.iotlb_reg_offset(), 0xF0u);
    EXPECT_TRUE(cap.psi);
    EXPECT_EQ(cap.mamv, 18u);
    // GSTS before and after init: QIES, RTPS and TES.
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::GSTS, 4), 0u);
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const uint64_t gsts = h.iommu.peek_register(vtd::reg::GSTS, 4);
    EXPECT_EQ(gsts, (1u << 31) | (1u << 30) | (1u << 26));
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::RTADDR), h.drv.root_table() | (1u << 10));
  });
}

TEST(VtdFaults, UnmappedIovaRecordsFirstStageNotPresent) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    const DmaResult r = h.read(kRid, kIova + k2M);
    EXPECT_EQ(r.response, IommuResponse::Fault);
    EXPECT_EQ(r.status, tlm::TLM_GENERIC_ERROR_RESPONSE);
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].reason, 0x71u);
    EXPECT_EQ(f[0].sid, kRid);
    EXPECT_EQ(f[0].fault_info, kIova + k2M);
    EXPECT_EQ(f[0].type, vtd::FaultType::Read);
    EXPECT_FALSE(f[0].pasid_present);
    EXPECT_EQ(h.fsts() & 0xFF03u, 0x0002u);   // PPF, FRI 0
    // The driver drains it as dmar_fault does.
    EXPECT_EQ(h.drv.drain_faults(), 1u);
    EXPECT_EQ(h.drv.faults_seen(FaultReason::SM_FS_ENTRY_NOT_PRESENT), 1u);
    EXPECT_TRUE(h.faults().empty());
    EXPECT_EQ(h.fsts() & 0x3u, 0u);
  });
}

// FSTS.PPF is read-only, the OR of the F bits (VT-d spec, Fault Status Register): writing
// PFO|PPF back (as Linux dmar_fault does at the end of its drain) while a record is still
// pending leaves it set, so the next drain still finds the record. Two faults, FRCD 0 and 1.
TEST(VtdFaults, WritingPpfBackLeavesItSetWhileARecordIsPending) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    EXPECT_FALSE(h.read(kRid, kIova + k2M).ok());
    EXPECT_FALSE(h.read(kRid, kIova + 2 * k2M).ok());
    EXPECT_EQ(h.fsts() & 0xFF03u, 0x0002u);   // PPF, FRI 0
    h.mmio_write(vtd::reg::FSTS, 0x3, 4);
    EXPECT_EQ(h.fsts() & 0x3u, 0x2u) << "PPF is not write-1-to-clear";
    EXPECT_EQ(h.drv.drain_faults(), 2u);
    EXPECT_EQ(h.fsts() & 0x3u, 0u) << "no F bit left: PPF reads 0";
  });
}

// A present paging entry with a reserved bit set is fault reason 0x72 (first stage) or
// 0x7A (second stage), not "not present" 0x71 / 0x79 (VT-d spec, scalable-mode
// non-recoverable fault conditions table). Hand-built 4-level tables for kIova
// 0x1000_0000: PML4 index 0, PDPT index 0, PD index 0x80 (byte 0x400), PT index 0. The PTE
// sets address bit 50, beyond the 48-bit HAW: 0x0004_0000_4020_0000 | flags.
TEST(VtdFaults, ReservedBitsInPagingEntriesAreReasons72And7A) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid + 1, std::nullopt, d));
    const uint64_t fs = 0x80000000ull, ss = 0x80100000ull;
    // First stage (x86): tables P|R/W|U/S = 0x7.
    h.memory.write64(fs + 0x0000, 0x80001007ull);
    h.memory.write64(fs + 0x1000, 0x80002007ull);
    h.memory.write64(fs + 0x2400, 0x80003007ull);
    h.memory.write64(fs + 0x3000, 0x0004000040200007ull);
    // Second stage: tables R|W = 0x3.
    h.memory.write64(ss + 0x0000, 0x80101003ull);
    h.memory.write64(ss + 0x1000, 0x80102003ull);
    h.memory.write64(ss + 0x2400, 0x80103003ull);
    h.memory.write64(ss + 0x3000, 0x0004000040200003ull);
    vtd::PasidEntry pe;
    pe.present = true; pe.did = h.drv.did_of(d); pe.aw = 2; pe.pgtt = vtd::Pgtt::FirstStage; pe.sre = true;
    pe.fsptptr = fs;
    auto w = vtd::encode_pasid_entry(pe);
    h.memory.write(h.drv.pasid_entry_address(kRid, 0), w.data(), 64);
    pe.pgtt = vtd::Pgtt::SecondStage; pe.fsptptr = 0; pe.ssptptr = ss; pe.sre = false;
    w = vtd::encode_pasid_entry(pe);
    h.memory.write(h.drv.pasid_entry_address(kRid + 1, 0), w.data(), 64);
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_cache(vtd::PcGran::Domain, pe.did, 0)}, "test"));
    EXPECT_EQ(h.read(kRid, kIova + 0x20).response, IommuResponse::Fault);
    EXPECT_EQ(h.read(kRid + 1, kIova + 0x20).response, IommuResponse::Fault);
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].reason, 0x72u);   // SM: non-zero reserved field in a first-stage entry
    EXPECT_EQ(f[0].sid, kRid);
    EXPECT_EQ(f[0].fault_info, kIova);
    EXPECT_EQ(f[1].reason, 0x7Au);   // SM: non-zero reserved field in a second-stage entry
    EXPECT_EQ(f[1].sid, kRid + 1);
    EXPECT_EQ(f[1].fault_info, kIova);
  });
}

TEST(VtdFaults, WriteToReadOnlyPageRecordsWriteDenied) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, Prot{true, false, false}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    EXPECT_TRUE(h.read(kRid, kIova).ok());
    EXPECT_EQ(h.dma(kRid, std::nullopt, kIova, true, 1).response, IommuResponse::Fault);
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].reason, 0x85u);
    EXPECT_EQ(f[0].type, vtd::FaultType::Write);
  });
}

TEST(VtdFaults, MissingRootContextAndPasidEntriesHaveTheirOwnReasons) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    EXPECT_FALSE(h.read(0x0300, kIova).ok());   // bus 3: root entry not present
    EXPECT_FALSE(h.read(0x0013, kIova).ok());   // same context table, devfn not set up
    EXPECT_FALSE(h.read(0x0090, kIova).ok());   // devfn 0x90: upper half not present
    EXPECT_FALSE(h.dma(kRid, 100u, kIova, false).ok());   // PASID 100: directory entry 1 absent
    const auto f = h.faults();
    ASSERT_EQ(f.size(), 4u);
    EXPECT_EQ(f[0].reason, 0x39u);
    EXPECT_EQ(f[1].reason, 0x41u);
    EXPECT_EQ(f[2].reason, 0x39u);
    EXPECT_EQ(f[3].reason, 0x51u);
    EXPECT_EQ(f[0].sid, 0x0300u);
    // A reserved PGTT in the PASID entry: invalid entry (0x5B).
    const uint64_t pe = h.drv.pasid_entry_address(kRid, 0);
    h.memory.write64(pe, (h.memory.read64(pe) & ~0x1C0ull) | (6ull << 6));
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_pasid_cache(vtd::PcGran::Global, 0)}, "test"));
    EXPECT_FALSE(h.read(kRid, kIova).ok());
    const auto g = h.faults();
    ASSERT_EQ(g.size(), 5u);
    EXPECT_EQ(g[4].reason, 0x5Bu);
  });
}

TEST(VtdFaults, RecordsOverflowSetsPfoAndFpdSuppresses) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    for (unsigned i = 0; i < 9; ++i) EXPECT_FALSE(h.read(kRid, kIova + k2M * (i + 1)).ok());
    EXPECT_EQ(h.faults().size(), 8u);
    EXPECT_EQ(h.fsts() & 0x3u, 0x3u);   // PPF and PFO
    EXPECT_EQ(h.drv.drain_faults(), 8u);
    EXPECT_EQ(h.fsts() & 0x3u, 0u);
    // FPD in the context entry: faults are not recorded, the DMA still fails.
    const uint64_t ctx = vtd::reg::RTADDR_RTA::get(h.iommu.peek_register(vtd::reg::RTADDR)) << 12;
    const uint64_t ctp = h.memory.read64(ctx) & ~0xFFFull;
    const uint64_t ce = ctp + vtd::sm_context_entry_offset(kRid);
    h.memory.write64(ce, h.memory.read64(ce) | 2);   // FPD
    IOMMUSIM_ASSERT_OK(h.drv.submit({vtd::desc_context_cache(vtd::CcGran::Device, 0, kRid),
                                     vtd::desc_pasid_cache(vtd::PcGran::Global, 0)}, "test"));
    EXPECT_EQ(h.read(kRid, kIova + k2M).response, IommuResponse::Fault);
    EXPECT_TRUE(h.faults().empty());
  });
}

}  // namespace
}  // namespace iommusim::vtdtest

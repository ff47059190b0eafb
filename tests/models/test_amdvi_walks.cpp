// AMD IOMMU model: walks through real tables (v1 at every Mode, v2 through the GCR3 table,
// nested v2 over v1), their exact read counts, level skipping and NextLevel-7 large pages,
// DTE V/TV/Mode handling, and the event records of faults and bad DTEs.
#include <cstdint>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "models/pagetable/amd_v1.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x12;
constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;
constexpr uint64_t kMagic = 0x1122334455667788ull;
constexpr uint64_t kRawTables = 0x300000000ull;   // tests' own tables, apart from the driver pool

amdvi::DeviceTableEntry v1_dte(unsigned mode, uint64_t root, uint16_t domid) {
  amdvi::DeviceTableEntry e;
  e.valid = e.tv = e.ir = e.iw = true;
  e.mode = uint8_t(mode);
  e.host_pt_root = root;
  e.domain_id = domid;
  return e;
}

// A DeviceID is 16 bits and a PASID 20: wider values are refused, never truncated onto
// another device's DTE.
TEST(AmdViWalks, DeviceIdOrPasidWiderThanTheWireIsRefusedNotAliased) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    constexpr uint32_t kDev = 0x21;
    constexpr uint64_t kVa = 0x10000000ull, kPhys = 0x40200000ull;
    ASSERT_NE(h.stage1_device(kDev, kVa, kPhys), 0u);
    h.memory.write64(kPhys, 0x5A5A5A5A5A5A5A5Aull);
    ASSERT_TRUE(h.read(kDev, kVa).ok());
    const uint64_t events = h.iommu.events_written();
    EXPECT_FALSE(h.read(kDev | 0x10000, kVa).ok());
    EXPECT_FALSE(h.dma(kDev, 1u << 20, kVa, false).ok());
    EXPECT_EQ(h.iommu.malformed_requests(), 2u);
    EXPECT_EQ(h.iommu.events_written(), events);
  });
}

TEST(AmdViWalks, V1EveryModeWalksModeLevels) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    RawTables raw(h.memory, kRawTables);
    for (unsigned mode = 1; mode <= 6; ++mode) {
      SCOPED_TRACE("Mode " + std::to_string(mode));
      const pagetable::AmdV1Format fmt(pagetable::AmdV1Config{mode, 52});
      pagetable::TableBuilder tb(fmt, raw);
      // The highest index bit the mode covers, so every level's index is non-trivial.
      const uint64_t iova = (mode < 6 ? (1ull << (10 + 9 * mode)) : (1ull << 60)) | 0x5000;
      const uint64_t pa = kPa + mode * kPage;
      ASSERT_TRUE(tb.map(iova, pa, kPage, kPage, {}).ok);
      const uint32_t rid = kRid + mode;
      h.write_dte(rid, v1_dte(mode, tb.root(), uint16_t(100 + mode)));
      h.memory.write64(pa + 0x28, kMagic + mode);
      const uint64_t t0 = h.iommu.table_reads();
      const AmdDmaResult r = h.read(rid, iova + 0x28);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r.data, kMagic + mode);
      EXPECT_EQ(h.iommu.table_reads() - t0, mode) << "a Mode-m table has m levels";
      if (mode < 6) {   // beyond the mode's input range: an I/O page fault
        const AmdDmaResult bad = h.read(rid, 1ull << (12 + 9 * mode));
        EXPECT_EQ(bad.response, IommuResponse::Fault);
      }
    }
  });
}

TEST(AmdViWalks, V1LevelSkipReadsOnlyThePresentLevels) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    RawTables raw(h.memory, kRawTables);
    const pagetable::AmdV1Format fmt(pagetable::AmdV1Config{4, 52});
    // AMD level 4 -> (skip level 3) -> level 2 -> level 1 -> 4 KB page.
    const uint64_t l4 = raw.allocate_table(4096), l2 = raw.allocate_table(4096), l1 = raw.allocate_table(4096);
    const uint64_t iova = (5ull << 39) | (7ull << 21) | (9ull << 12);   // bits 38:30 zero
    h.memory.write64(l4 + 5 * 8, fmt.encode_table_to(pagetable::AmdV1Format::walk_level(4), l2, 2));
    h.memory.write64(l2 + 7 * 8, fmt.encode_table(pagetable::AmdV1Format::walk_level(2), l1));
    h.memory.write64(l1 + 9 * 8, fmt.encode_leaf(pagetable::AmdV1Format::walk_level(1), kPa, {}));
    // Literal PDE: PR, NextLevel=2 ([11:9] = 0x400), IR/IW (bits 61/62), address.
    EXPECT_EQ(h.memory.read64(l4 + 5 * 8), 0x6000000000000401ull | l2);
    h.write_dte(kRid, v1_dte(4, l4, 3));
    h.memory.write64(kPa + 0x10, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const AmdDmaResult r = h.read(kRid, iova + 0x10);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 3u);
    // A skipped level's index bits must be zero: else an I/O page fault on a present,
    // malformed entry: PR=1, RZ=1.
    const AmdDmaResult bad = h.read(kRid, iova | (1ull << 30));
    EXPECT_EQ(bad.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev.back().code, EventCode::IoPageFault);
    EXPECT_EQ(ev.back().address, iova | (1ull << 30));
    EXPECT_TRUE(ev.back().pr);
    EXPECT_TRUE(ev.back().rz);
    EXPECT_FALSE(ev.back().pe);
  });
}

// A present entry that is malformed is an IO_PAGE_FAULT with PR=1 (RZ=1), not PR=0: a PDE
// whose NextLevel does not go down, a NextLevel-7 PTE whose size is not between its
// level's and its parent's, and a PTE with a reserved bit (58:52) set.
TEST(AmdViWalks, MalformedPageTableEntriesArePresentFaults) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    RawTables raw(h.memory, kRawTables);
    const uint64_t l3 = raw.allocate_table(4096), l2 = raw.allocate_table(4096), l1 = raw.allocate_table(4096);
    // Mode 3, IOVA 0: index 0 at every level.
    // AMD level-3 PDE naming NextLevel 3 (itself): PR | NextLevel=3<<9 (0x600) | IR|IW.
    h.memory.write64(l3, 0x6000000000000601ull | l2);
    h.write_dte(kRid, v1_dte(3, l3, 5));
    // Mode 3 again on another device: good PDEs, then a level-1 PTE with NextLevel 7
    // (0xE00) and ones in address bits 20:12 (0x1F_F000): size 2^(1 + 21) = 4 MB, not below
    // its parent's 2 MB. PR | IR | IW => 0x6000_0000_001F_FE01.
    const uint64_t l3b = raw.allocate_table(4096);
    h.memory.write64(l3b, 0x6000000000000401ull | l2);   // NextLevel 2
    h.memory.write64(l2, 0x6000000000000201ull | l1);    // NextLevel 1
    h.memory.write64(l1, 0x60000000001FFE01ull);
    h.write_dte(kRid + 1, v1_dte(3, l3b, 6));
    // A third device: the same PDEs down to a natural PTE (NextLevel 0) with bit 52 set:
    // 0x6010_0000_0000_0001 | kPa.
    const uint64_t l3c = raw.allocate_table(4096), l2c = raw.allocate_table(4096), l1c = raw.allocate_table(4096);
    h.memory.write64(l3c, 0x6000000000000401ull | l2c);
    h.memory.write64(l2c, 0x6000000000000201ull | l1c);
    h.memory.write64(l1c, 0x6010000000000001ull | kPa);
    h.write_dte(kRid + 2, v1_dte(3, l3c, 7));
    // Every DTE before any fault: the driver consumes records while it waits on a submit.
    EXPECT_EQ(h.read(kRid, 0x10).response, IommuResponse::Fault);
    EXPECT_EQ(h.read(kRid + 1, 0x10).response, IommuResponse::Fault);
    EXPECT_EQ(h.read(kRid + 2, 0x10).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 3u);
    for (const auto& e : ev) {
      EXPECT_EQ(e.code, EventCode::IoPageFault);
      EXPECT_TRUE(e.pr);
      EXPECT_TRUE(e.rz);
      EXPECT_FALSE(e.pe);
      EXPECT_EQ(e.address, 0x10u);
    }
    EXPECT_EQ(ev[0].domain_or_pasid, 5u);
    EXPECT_EQ(ev[1].domain_or_pasid, 6u);
    EXPECT_EQ(ev[2].domain_or_pasid, 7u);
  });
}

// A DeviceID beyond the device table has no DTE: an IO_PAGE_FAULT (VirtualBox
// kIoPageFaultType_DevId_Invalid), not ILLEGAL_DEV_TABLE_ENTRY. The driver's table holds
// 256 DTEs (DeviceIDs 0..255).
TEST(AmdViWalks, DeviceIdBeyondTheDeviceTableIsAnIoPageFault) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    EXPECT_EQ(h.read(0x100, kIova).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].code, EventCode::IoPageFault);
    EXPECT_EQ(ev[0].device_id, 0x100u);
    EXPECT_FALSE(ev[0].pr);
    EXPECT_EQ(ev[0].domain_or_pasid, 0u);
    EXPECT_EQ(ev[0].address, kIova);
  });
}

TEST(AmdViWalks, V1NextLevel7LargePage) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    RawTables raw(h.memory, kRawTables);
    const pagetable::AmdV1Format fmt(pagetable::AmdV1Config{3, 52});
    // Mode 3: AMD level 3 -> level 2 entries holding an 8 MB page (NextLevel 7), replicated
    // over the four 2 MB slots it covers.
    const uint64_t l3 = raw.allocate_table(4096), l2 = raw.allocate_table(4096);
    constexpr uint64_t k8M = 8ull << 20;
    const uint64_t iova = 0x40800000ull;   // 1 GB slot 1, 8 MB aligned: L2 index 4..7
    const uint64_t out = 0x80000000ull;    // 8 MB aligned
    h.memory.write64(l3 + 1 * 8, fmt.encode_table(pagetable::AmdV1Format::walk_level(3), l2));
    const uint64_t pte = fmt.encode_large_leaf(pagetable::AmdV1Format::walk_level(2), out, k8M, {});
    // Literal: PR, NextLevel=7 (0xE00), address bits 21:12 = ones below the size bit 22
    // (8 MB = 2^(1 + 22)), FC (bit 60, as Linux), IR/IW.
    EXPECT_EQ(pte, 0x70000000803FFE01ull);
    for (unsigned i = 4; i < 8; ++i) h.memory.write64(l2 + i * 8, pte);
    h.write_dte(kRid, v1_dte(3, l3, 4));
    h.memory.write64(out + 3 * k2M + 0x5018, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const AmdDmaResult r = h.read(kRid, iova + 3 * k2M + 0x5018);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 2u);
  });
}

TEST(AmdViWalks, V1DriverDomainColdAndWarm) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    h.memory.write64(kPa + 0x100, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads();
    const AmdDmaResult r = h.read(kRid, kIova + 0x100);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u);
    EXPECT_EQ(h.iommu.config_reads() - c0, 1u);   // the DTE
    ASSERT_TRUE(h.read(kRid, kIova + 0x100).ok());
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u) << "warm: IOTLB hit";
    ASSERT_TRUE(h.dma(kRid, std::nullopt, kIova + 0x200, true, ~kMagic).ok());
    EXPECT_EQ(h.memory.read64(kPa + 0x200), ~kMagic);
  });
}

TEST(AmdViWalks, V2ThroughGcr3Table) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    AMD_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, 5u, d));
    h.memory.write64(kPa + 0x18, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads();
    const AmdDmaResult r = h.read(kRid, 5u, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u);
    EXPECT_EQ(h.iommu.config_reads() - c0, 2u);   // DTE + GCR3 entry
    // The DTE the driver wrote: GV=1, Mode 0, GLX=0 (literal bit positions).
    const uint64_t dte0 = h.memory.read64(h.drv.dte_address(kRid));
    EXPECT_EQ(dte0 & 0x3ull, 0x3ull);            // V, TV
    EXPECT_EQ((dte0 >> 9) & 7, 0u);              // Mode 0: no host translation
    EXPECT_EQ((dte0 >> 55) & 1, 1u);             // GV
    EXPECT_EQ((dte0 >> 54) & 1, 0u);             // GIOV: only PASIDs attached
    // No PASID and GIOV=0: GV=1 with Mode 0 passes untranslated.
    h.memory.write64(kIova + 0x18, 0x77);
    const AmdDmaResult np = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(np.ok());
    EXPECT_EQ(np.data, 0x77u);
    // Another PASID has no valid GCR3 entry: I/O page fault with GN=1, D/P = PASID.
    EXPECT_EQ(h.read(kRid, 6u, kIova + 0x18).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].code, EventCode::IoPageFault);
    EXPECT_TRUE(ev[0].gn);
    EXPECT_EQ(ev[0].domain_or_pasid, 6u);
  });
}

TEST(AmdViWalks, V2WithoutPasidUsesPasid0WithGiov) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    AMD_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    EXPECT_EQ((h.memory.read64(h.drv.dte_address(kRid)) >> 54) & 1, 1u) << "GIOV";
    h.memory.write64(kPa + 0x18, kMagic);
    const uint64_t t0 = h.iommu.table_reads();
    const AmdDmaResult r = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 4u);
  });
}

TEST(AmdViWalks, NestedColdWalkMakesExactly24Reads) {
  AmdHarness h(amd_config(false));
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferGpa + 0x18, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads(), l0 = h.iommu.config_locate_reads();
    const AmdDmaResult r = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 24u) << "(4+1)(4+1)-1";
    // Counted apart: the DTE and the GCR3 entry (config reads), and in their own count the
    // 4 host reads that locate the GCR3 entry at its GPA.
    EXPECT_EQ(h.iommu.config_reads() - c0, 2u);
    EXPECT_EQ(h.iommu.config_locate_reads() - l0, 4u);
    const uint64_t t1 = h.iommu.table_reads();
    ASSERT_TRUE(h.read(kRid, kIova + 0x18).ok());
    EXPECT_EQ(h.iommu.table_reads(), t1) << "warm: a combined IOTLB entry";
  });
}

// Defect: the model always treated the DTE's GCR3 table root pointer as a GPA in nested
// mode. Only with Control.GCR3TRPMode (bit 58; advertised in EFR2 bit 3, Linux
// CONTROL_GCR3TRPMODE / FEATURE_GCR3TRPMODE) is it a GPA; otherwise it is an SPA.
TEST(AmdViWalks, Gcr3RootIsAGpaOnlyInGcr3TrpMode) {
  AmdHarness h(amd_config(false));
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::EFR2) >> 3) & 1, 1u) << "EFR2.GCR3TRPMode advertised";
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::CONTROL) >> 58) & 1, 1u) << "the driver sets it for nesting";
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferGpa + 0x18, kMagic);
    uint64_t c0 = h.iommu.config_reads(), l0 = h.iommu.config_locate_reads();
    ASSERT_EQ(h.read(kRid, kIova + 0x18).data, kMagic);
    EXPECT_EQ(h.iommu.config_reads() - c0, 2u);          // DTE, GCR3 entry
    EXPECT_EQ(h.iommu.config_locate_reads() - l0, 4u);   // 4 host reads for the GCR3 entry's GPA

    // GCR3TRPMode off: the root pointer is an SPA. Point the DTE at the table's SPA (guest
    // RAM GPA g is PA kGuestRamPa + g) and drop every cached translation.
    uint64_t ctrl = h.iommu.peek_register(amdvi::reg::CONTROL) & ~(1ull << 58);
    tlm::tlm_generic_payload p;
    p.set_command(tlm::TLM_WRITE_COMMAND);
    p.set_address(amdvi::reg::CONTROL);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&ctrl));
    p.set_data_length(8);
    p.set_streaming_width(8);
    p.set_byte_enable_ptr(nullptr);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    h.drv.mmio->b_transport(p, d);
    ASSERT_EQ((h.iommu.peek_register(amdvi::reg::CONTROL) >> 58) & 1, 0u);
    amdvi::DteWords w{};
    h.memory.read(h.drv.dte_address(kRid), w.data(), 32);
    std::string why;
    auto dte = amdvi::decode_dte(w, &why);
    ASSERT_TRUE(dte.has_value()) << why;
    dte->gcr3_root += kGuestRamPa;
    h.write_dte(kRid, *dte);
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_iommu_all()}, "test"));
    c0 = h.iommu.config_reads();
    l0 = h.iommu.config_locate_reads();
    const AmdDmaResult r = h.read(kRid, kIova + 0x18);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.config_reads() - c0, 2u);   // DTE and GCR3 entry, read at their SPAs
    EXPECT_EQ(h.iommu.config_locate_reads() - l0, 0u);
  });
}

TEST(AmdViWalks, NestedWithPasidAndLargeHostPages) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(k2M);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, k2M, {}, k2M));
    AMD_ASSERT_OK(h.drv.attach(kRid, 9u, s1));
    h.memory.write64(kGuestRamPa + kBufferGpa + 0x1234 * 8, kMagic);
    const AmdDmaResult r = h.read(kRid, 9u, kIova + 0x1234 * 8);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    const uint64_t dte0 = h.memory.read64(h.drv.dte_address(kRid));
    EXPECT_EQ((dte0 >> 9) & 7, 4u);   // Mode 4 host table under GV=1
    EXPECT_EQ((dte0 >> 55) & 1, 1u);
  });
}

TEST(AmdViWalks, IoPageFaultEventFields) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(d, kIova, kPa, kPage, Prot{true, false, false}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, d));
    const uint16_t domid = h.drv.domain_id_of(d);
    // Not present: PR=0.
    const AmdDmaResult miss = h.read(kRid, kIova + kPage);
    EXPECT_FALSE(miss.ok());
    EXPECT_EQ(miss.response, IommuResponse::Fault);
    // Present, read-only, written: PR=1, PE=1, RW=1.
    EXPECT_EQ(h.dma(kRid, std::nullopt, kIova + 8, true, 1).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].code, EventCode::IoPageFault);
    EXPECT_EQ(ev[0].device_id, kRid);
    EXPECT_EQ(ev[0].domain_or_pasid, domid);
    EXPECT_FALSE(ev[0].gn);
    EXPECT_FALSE(ev[0].pr);
    EXPECT_FALSE(ev[0].rw);
    EXPECT_EQ(ev[0].address, kIova + kPage);
    EXPECT_EQ(ev[1].code, EventCode::IoPageFault);
    EXPECT_TRUE(ev[1].pr);
    EXPECT_TRUE(ev[1].pe);
    EXPECT_TRUE(ev[1].rw);
    EXPECT_EQ(ev[1].address, kIova + 8);
    // The raw record: code 2 in [63:60] of the first quadword, DeviceID in [15:0].
    amdvi::EventWords w;
    h.memory.read(h.drv.evt_log_base(), w.data(), 16);
    EXPECT_EQ(w[0] >> 60, 0x2u);
    EXPECT_EQ(w[0] & 0xFFFF, kRid);
    EXPECT_EQ((w[0] >> 32) & 0xFFFF, domid);
    EXPECT_EQ(w[1], kIova + kPage);
    // The driver consumes both and advances EvtLogHead.
    EXPECT_EQ(h.drv.drain_events(), 2u);
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::EVT_LOG_HEAD), 32u);
  });
}

TEST(AmdViWalks, DteValidAndTranslationValid) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // The driver's initial DTEs (V=1 TV=1 Mode 0 IR=IW=0) block DMA with an I/O page fault.
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
    // V=0: untranslated.
    h.write_dte(kRid, amdvi::DeviceTableEntry{});
    h.memory.write64(kPa, kMagic);
    const AmdDmaResult pass = h.read(kRid, kPa);
    ASSERT_TRUE(pass.ok());
    EXPECT_EQ(pass.data, kMagic);
    // V=1 TV=0: no page-table information; aborted, no event.
    amdvi::DeviceTableEntry tv0;
    tv0.valid = true;
    h.write_dte(kRid, tv0);
    const size_t n = h.events().size();
    EXPECT_EQ(h.read(kRid, kPa).response, IommuResponse::Aborted);
    EXPECT_EQ(h.events().size(), n);
    // Mode 0 with IR=IW=1: pass-through.
    amdvi::DeviceTableEntry pt;
    pt.valid = pt.tv = pt.ir = pt.iw = true;
    h.write_dte(kRid, pt);
    EXPECT_EQ(h.read(kRid, kPa).data, kMagic);
  });
}

TEST(AmdViWalks, BadDteAndTableReadErrorsWriteEvents) {
  memory::MemoryConfig mc;
  mc.size_bytes = 1ull << 36;
  AmdHarness h(amd_config(), driver::AmdViDriverConfig{}, mc);
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // A reserved bit (data[0] bit 2): ILLEGAL_DEV_TABLE_ENTRY, DMA gets an error.
    amdvi::DteWords w = amdvi::encode_dte(v1_dte(4, kRawTables, 1));
    w[0] |= 1ull << 2;
    h.memory.write(h.drv.dte_address(kRid), w.data(), 32);
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_devtab_entry(kRid)}, "test"));
    // A host root beyond memory: PAGE_TAB_HW_ERROR at the entry's address. (Set up before
    // any fault: the driver consumes and zeroes records while it waits on a submit.)
    const uint64_t root = 1ull << 37;
    h.write_dte(kRid + 1, v1_dte(4, root, 2));
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
    EXPECT_EQ(h.read(kRid + 1, kIova).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].code, EventCode::IllegalDevTableEntry);
    EXPECT_EQ(ev[0].device_id, kRid);
    EXPECT_EQ(ev[0].address, kIova);
    EXPECT_EQ(ev[1].code, EventCode::PageTabHwError);
    EXPECT_EQ(ev[1].device_id, kRid + 1);
    EXPECT_EQ(ev[1].address, root + ((kIova >> 39) & 0x1FF) * 8);
  });
}

TEST(AmdViWalks, EventLogOverflowStopsLoggingUntilRestarted) {
  driver::AmdViDriverConfig dc;
  dc.evt_log_log2 = 8;   // 256 entries, 255 usable
  AmdHarness h(amd_config(), dc);
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // The driver's initial DTEs block DMA: every read is an I/O page fault.
    for (unsigned i = 0; i < 260; ++i) EXPECT_EQ(h.read(kRid, kIova + i * kPage).response, IommuResponse::Fault);
    const uint64_t status = h.iommu.peek_register(amdvi::reg::STATUS);
    EXPECT_EQ(status & 1, 1u) << "EvtOverflow";
    EXPECT_EQ((status >> 3) & 1, 0u) << "EvtLogRun stops";
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::EVT_LOG_TAIL), 255u * 16);
    EXPECT_EQ(h.drv.drain_events(), 255u);
    const uint64_t after = h.iommu.peek_register(amdvi::reg::STATUS);
    EXPECT_EQ(after & 1, 0u);
    EXPECT_EQ((after >> 3) & 1, 1u) << "restarted";
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::EVT_LOG_TAIL), 0u) << "logged again, the tail wrapped";
    EXPECT_EQ(h.drv.drain_events(), 1u);
  });
}

TEST(AmdViWalks, NestedTwoLevelGcr3TableThroughTheHostTable) {
  driver::AmdViDriverConfig dc;
  dc.glx = 1;   // 2-level GCR3 table: PASID[17:9] then PASID[8:0]
  AmdHarness h(amd_config(false), dc);
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    constexpr uint32_t kPasid = 1000;   // index 1 at level 1, 488 at level 0
    AMD_ASSERT_OK(h.drv.attach(kRid, kPasid, s1));
    EXPECT_EQ((h.memory.read64(h.drv.dte_address(kRid)) >> 56) & 3, 1u) << "GLX";
    h.memory.write64(kGuestRamPa + kBufferGpa + 0x40, kMagic);
    const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads(), l0 = h.iommu.config_locate_reads();
    const AmdDmaResult r = h.read(kRid, kPasid, kIova + 0x40);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
    EXPECT_EQ(h.iommu.table_reads() - t0, 24u);
    // DTE + 2 GCR3 entries; apart, each GCR3 entry located by a 4-level host walk.
    EXPECT_EQ(h.iommu.config_reads() - c0, 1u + 2u);
    EXPECT_EQ(h.iommu.config_locate_reads() - l0, 2u * 4u);
    // PASID 1001 shares the level-1 entry but has no leaf entry: I/O page fault, GN=1.
    EXPECT_EQ(h.read(kRid, 1001u, kIova).response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_TRUE(ev[0].gn);
    EXPECT_EQ(ev[0].domain_or_pasid, 1001u);
  });
}

}  // namespace
}  // namespace iommusim::test

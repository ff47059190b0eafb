// AMD IOMMU model: the command buffer. Scope of INVALIDATE_IOMMU_PAGES (GN, S, PDE),
// COMPLETION_WAIT ordering (after earlier commands and after walks older than the last
// invalidation), ILLEGAL_COMMAND_ERROR and restart, the registers at their offsets, and
// the commands the driver issues for a domain flush.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;
constexpr uint32_t kRidA = 0x10, kRidB = 0x20;
using amdvi::cmd_inv_iommu_pages;
using amdvi::kInvAllPagesSize;

// Page-table reads one DMA costs: 0 means an IOTLB hit.
uint64_t reads_for(AmdHarness& h, uint32_t rid, std::optional<uint32_t> pasid, uint64_t iova) {
  const uint64_t t0 = h.iommu.table_reads();
  const AmdDmaResult r = h.dma(rid, pasid, iova, false);
  EXPECT_TRUE(r.ok()) << "rid " << rid << " iova " << iova;
  return h.iommu.table_reads() - t0;
}

TEST(AmdViCmd, RegistersAtTheirOffsets) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    // EFR of the default caps: GTSup[4], IASup[6], HATS=2 [11:10], GLXSup=1 [15:14],
    // PASmax=15 [36:32], GIoSup[48].
    EXPECT_EQ(h.iommu.peek_register(0x30), 0x0001000F00004850ull);
    AMD_ASSERT_OK(h.drv.init());
    const uint64_t ctrl = h.iommu.peek_register(0x18);
    EXPECT_EQ(ctrl & 1, 1u);                  // IommuEn
    EXPECT_EQ((ctrl >> 2) & 1, 1u);           // EventLogEn
    EXPECT_EQ((ctrl >> 12) & 1, 1u);          // CmdBufEn
    EXPECT_EQ((ctrl >> 16) & 1, 1u);          // GTEn
    EXPECT_EQ(h.iommu.peek_register(0x08), h.drv.cmd_buf_base() | (9ull << 56));   // ComLen 9
    EXPECT_EQ(h.iommu.peek_register(0x0000) & 0x1FF, 1u);   // 256 DTEs = 8 KB: Size = 1
    const uint64_t status = h.iommu.peek_register(0x2020);
    EXPECT_EQ((status >> 3) & 1, 1u);         // EvtLogRun
    EXPECT_EQ((status >> 4) & 1, 1u);         // CmdBufRun
    // init: INVALIDATE_IOMMU_ALL + COMPLETION_WAIT consumed; head == tail == 32.
    EXPECT_EQ(h.iommu.peek_register(0x2000), 32u);
    EXPECT_EQ(h.iommu.peek_register(0x2008), 32u);
  });
}

TEST(AmdViCmd, InvalidatePagesScopeGnAndS) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // Device A: v1 domain. Device B: v2 domain through PASIDs 1 and 2.
    const DomainId a = h.make_domain(DomainKind::Stage2);
    const DomainId b = h.make_domain(DomainKind::Stage1);
    AMD_ASSERT_OK(h.drv.map(a, kIova, kPa, 2 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.map(b, kIova, kPa, 2 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, a));
    AMD_ASSERT_OK(h.drv.attach(kRidB, 1u, b));
    AMD_ASSERT_OK(h.drv.attach(kRidB, 2u, b));
    const uint16_t dom_a = h.drv.domain_id_of(a), dom_b = h.drv.device_domain_id(kRidB);
    ASSERT_NE(dom_a, dom_b);
    const uint64_t p0 = kIova, p1 = kIova + kPage;
    for (uint64_t p : {p0, p1}) {
      reads_for(h, kRidA, std::nullopt, p);
      reads_for(h, kRidB, 1u, p);
      reads_for(h, kRidB, 2u, p);
    }
    ASSERT_EQ(reads_for(h, kRidB, 1u, p0), 0u);

    // GN=1, S=0: one page of DomainID+PASID 1 only.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom_b, p0, kPage, true, true, 1)}, "t"));
    EXPECT_EQ(reads_for(h, kRidB, 2u, p0), 0u) << "other PASID kept";
    EXPECT_EQ(reads_for(h, kRidB, 1u, p1), 0u) << "other page kept";
    EXPECT_EQ(reads_for(h, kRidA, std::nullopt, p0), 0u) << "v1 domain kept";
    EXPECT_GT(reads_for(h, kRidB, 1u, p0), 0u) << "the page itself dropped";

    // GN=1, S=1: an 8 KB range of PASID 2.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom_b, p0, 2 * kPage, true, true, 2)}, "t"));
    EXPECT_EQ(reads_for(h, kRidB, 1u, p0), 0u);
    EXPECT_GT(reads_for(h, kRidB, 2u, p0), 0u);
    EXPECT_GT(reads_for(h, kRidB, 2u, p1), 0u);

    // GN=0 on the v2 device's DomainID: host translations only, guest entries kept.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom_b, 0, kInvAllPagesSize)}, "t"));
    EXPECT_EQ(reads_for(h, kRidB, 1u, p0), 0u);

    // GN=0, S=0: one page of the v1 domain.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom_a, p0, kPage)}, "t"));
    EXPECT_EQ(reads_for(h, kRidA, std::nullopt, p1), 0u);
    EXPECT_EQ(reads_for(h, kRidB, 1u, p0), 0u) << "GN=0 does not touch PASID entries";
    EXPECT_GT(reads_for(h, kRidA, std::nullopt, p0), 0u);

    // GN=0, S=1 all: the whole v1 domain.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom_a, 0, kInvAllPagesSize)}, "t"));
    EXPECT_GT(reads_for(h, kRidA, std::nullopt, p0), 0u);
    EXPECT_GT(reads_for(h, kRidA, std::nullopt, p1), 0u);
  });
}

TEST(AmdViCmd, PdeKeepsOrDropsPageDirectoryCache) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId a = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(a, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, a));
    const uint16_t dom = h.drv.domain_id_of(a);
    EXPECT_EQ(reads_for(h, kRidA, std::nullopt, kIova), 4u);
    // PDE=0: only the leaf is re-read (the host PDC still holds the level-1 table).
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom, kIova, kPage, false)}, "t"));
    EXPECT_EQ(reads_for(h, kRidA, std::nullopt, kIova), 1u);
    // PDE=1: the cached directory entries covering the page go too.
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom, kIova, kPage, true)}, "t"));
    EXPECT_EQ(reads_for(h, kRidA, std::nullopt, kIova), 4u);
  });
}

TEST(AmdViCmd, HostInvalidationDropsEveryNestedEntryOfTheDomain) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, s1));
    const uint16_t dom = h.drv.device_domain_id(kRidA);
    reads_for(h, kRidA, std::nullopt, kIova);
    ASSERT_EQ(reads_for(h, kRidA, std::nullopt, kIova), 0u);
    // GN=0 at a GPA the entry does not use: combined entries cannot be found by GPA, so
    // every nested entry of the DomainID goes (over-invalidation, by design).
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom, 0x3000000, kPage)}, "t"));
    EXPECT_GT(reads_for(h, kRidA, std::nullopt, kIova), 0u);
    // The driver's range invalidation of the host domain reaches the device's DomainID.
    ASSERT_EQ(reads_for(h, kRidA, std::nullopt, kIova), 0u);
    AMD_ASSERT_OK(h.drv.invalidate_range(s2, kBufferGpa, kPage, true));
    EXPECT_GT(reads_for(h, kRidA, std::nullopt, kIova), 0u);
  });
}

TEST(AmdViCmd, CompletionWaitStoresAfterEarlierCommands) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId a = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(a, kIova, kPa, 16 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, a));
    for (unsigned i = 0; i < 16; ++i) reads_for(h, kRidA, std::nullopt, kIova + i * kPage);
    ASSERT_GE(h.iommu.iotlb_entries(), 16u);
    // A watcher samples the IOTLB the moment our own COMPLETION_WAIT's store lands.
    const uint64_t store_addr = 0x7000000ull, data = 0xC0FFEE0012345678ull;
    h.memory.write64(store_addr, 0);
    uint64_t entries_at_store = ~0ull, store_ps = 0;
    sc_core::sc_spawn([&] {
      while (h.memory.read64(store_addr) != data) sc_core::wait(sc_core::sc_time(1, sc_core::SC_NS));
      entries_at_store = h.iommu.iotlb_entries();
      store_ps = common::to_ps(sc_core::sc_time_stamp());
    });
    std::vector<common::CommandTrace> traces;
    h.iommu.set_command_probe([&](const common::CommandTrace& t) { traces.push_back(t); });
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_iommu_all(), amdvi::cmd_completion_wait(true, false, store_addr, data)},
                               "t"));
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_EQ(traces[1].opcode, 0x1u);
    EXPECT_EQ(entries_at_store, 0u) << "the store must follow the invalidation's effect";
    EXPECT_GE(store_ps + 1000, traces[1].exec_end_ps);
    EXPECT_LE(traces[0].exec_end_ps, store_ps);
    // I=1 sets Status.ComWaitInt (write 1 to clear).
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_completion_wait(false, true)}, "t"));
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::STATUS) >> 2) & 1, 1u);
  });
}

TEST(AmdViCmd, CompletionWaitWaitsForOlderWalks) {
  AmdHarness h(amd_config(false));
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, s1));
    // Warm the DTE and GCR3 caches, then drop the translation so the DMA walks.
    ASSERT_TRUE(h.read(kRidA, kIova).ok());
    const uint16_t dom = h.drv.device_domain_id(kRidA);
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom, 0, kInvAllPagesSize, true, true, 0)}, "t"));
    std::vector<common::CommandTrace> traces;
    h.iommu.set_command_probe([&](const common::CommandTrace& t) { traces.push_back(t); });

    uint64_t dma_done_ps = 0;
    AmdDmaResult r;
    sc_core::sc_spawn([&] {
      r = h.read(kRidA, kIova);
      dma_done_ps = common::to_ps(sc_core::sc_time_stamp());
    });
    const uint64_t t0 = h.iommu.table_reads();
    AMD_ASSERT_OK(h.drv.submit({cmd_inv_iommu_pages(dom, 0, kInvAllPagesSize, true, true, 0)}, "overtake"));
    ASSERT_EQ(traces.size(), 2u);
    ASSERT_NE(dma_done_ps, 0u) << "COMPLETION_WAIT completed before the overtaken walk";
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(h.iommu.table_reads() - t0, 24u);
    EXPECT_LT(traces[0].exec_end_ps, dma_done_ps) << "the invalidation must overtake the walk";
    // The walk ends, then its data access completes the DMA (81 memory cycles).
    EXPECT_GE(traces[1].exec_end_ps + 81'000, dma_done_ps);
    // The stale walk result was not cached: the same page walks again.
    const uint64_t t1 = h.iommu.table_reads();
    ASSERT_TRUE(h.read(kRidA, kIova).ok());
    EXPECT_EQ(h.iommu.table_reads() - t1, 24u);
  });
}

TEST(AmdViCmd, IllegalCommandLogsEventStopsAndRestarts) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // Queue by hand: an unknown opcode (0xF) at the tail, then ring the doorbell.
    const uint64_t tail = h.iommu.peek_register(amdvi::reg::CMD_BUF_TAIL);
    const amdvi::CmdWords bad{0xF000000000000000ull, 0};
    h.memory.write(h.drv.cmd_buf_base() + tail, bad.data(), 16);
    const amdvi::CmdWords cw = amdvi::cmd_completion_wait(true, false, 0x7000000ull, 0x55);
    h.memory.write(h.drv.cmd_buf_base() + tail + 16, cw.data(), 16);
    // A raw MMIO write through the model's register file (as the driver's socket would).
    tlm::tlm_generic_payload p;
    uint64_t v = tail + 32;
    p.set_command(tlm::TLM_WRITE_COMMAND);
    p.set_address(amdvi::reg::CMD_BUF_TAIL);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    p.set_data_length(8);
    p.set_streaming_width(8);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    h.iommu.mmio.get_base_interface().b_transport(p, d);
    sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
    // Stopped at the bad command: CmdBufRun=0, head on it, nothing after it ran.
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::STATUS) >> 4) & 1, 0u);
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::CMD_BUF_HEAD), tail);
    EXPECT_EQ(h.memory.read64(0x7000000ull), 0u);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].code, EventCode::IllegalCommandError);
    EXPECT_EQ(ev[0].address, h.drv.cmd_buf_base() + tail);
    amdvi::EventWords w;
    h.memory.read(h.drv.evt_log_base(), w.data(), 16);
    EXPECT_EQ(w[0] >> 60, 0x5u);
    // Software restarts it (CmdBufEn 0 -> 1) after fixing the entry: processing resumes.
    const amdvi::CmdWords nop = amdvi::cmd_completion_wait(false, false);
    h.memory.write(h.drv.cmd_buf_base() + tail, nop.data(), 16);
    const uint64_t ctrl = h.iommu.peek_register(amdvi::reg::CONTROL);
    for (uint64_t c : {ctrl & ~uint64_t{1ull << 12}, ctrl}) {
      uint64_t cv = c;
      p.set_address(amdvi::reg::CONTROL);
      p.set_data_ptr(reinterpret_cast<unsigned char*>(&cv));
      h.iommu.mmio.get_base_interface().b_transport(p, d);
    }
    sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
    EXPECT_EQ(h.memory.read64(0x7000000ull), 0x55u);
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::CMD_BUF_HEAD), tail + 32);
    EXPECT_EQ((h.iommu.peek_register(amdvi::reg::STATUS) >> 4) & 1, 1u);
  });
}

TEST(AmdViCmd, DriverRecoversFromIllegalCommand) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    // A reserved bit in INVALIDATE_DEVTAB_ENTRY (data[2] bit 0) is illegal too.
    amdvi::CmdWords bad = amdvi::cmd_inv_devtab_entry(3);
    bad[1] |= 1;
    AMD_ASSERT_OK(h.drv.submit({bad}, "bad"));
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
    EXPECT_EQ(h.drv.events_seen(EventCode::IllegalCommandError), 1u);
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_iommu_all()}, "after"));
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
  });
}

// The queue engine's stats, by hand: init queues INVALIDATE_IOMMU_ALL and COMPLETION_WAIT
// (one fetch); [bad, COMPLETION_WAIT] is one fetch, the retry after the driver's recovery
// (the bad command replaced by a COMPLETION_WAIT) another.
TEST(AmdViCmd, QueueStatsCountFetchesErrorsAndCommandsByType) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    amdvi::CmdWords bad = amdvi::cmd_inv_devtab_entry(3);
    bad[1] |= 1;   // reserved bit
    AMD_ASSERT_OK(h.drv.submit({bad}, "bad"));
    common::StatRegistry reg;
    h.iommu.register_stats(reg, "amd");
    auto count = [&](const char* name) {
      const common::Counter* c = reg.find_counter(std::string("amd.") + name);
      EXPECT_NE(c, nullptr) << name;
      return c ? c->value() : ~0ull;
    };
    EXPECT_EQ(count("cmdbuf.fetches"), 3u);
    EXPECT_EQ(count("cmdbuf.executed.invalidate_iommu_all"), 1u);
    EXPECT_EQ(count("cmdbuf.executed.completion_wait"), 3u);
    EXPECT_EQ(count("cmdbuf.executed.invalidate_devtab_entry"), 0u);
    EXPECT_EQ(count("commands"), 4u);
    EXPECT_EQ(count("completion_waits"), 3u);
    EXPECT_EQ(count("illegal_commands"), 1u);
  });
}

TEST(AmdViCmd, DomainFlushIssuesOneCommandPerPasid) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId b = h.make_domain(DomainKind::Stage1);
    AMD_ASSERT_OK(h.drv.map(b, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidB, std::nullopt, b));
    for (uint32_t pasid = 1; pasid <= 3; ++pasid) AMD_ASSERT_OK(h.drv.attach(kRidB, pasid, b));
    const DomainId a = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, a));
    const size_t n0 = h.drv.invalidations().records().size();
    AMD_ASSERT_OK(h.drv.invalidate_domain(b));
    AMD_ASSERT_OK(h.drv.invalidate_domain(a));
    const auto& recs = h.drv.invalidations().records();
    ASSERT_EQ(recs.size(), n0 + 2);
    EXPECT_EQ(recs[n0].commands, 5u) << "PASIDs 0..3 + COMPLETION_WAIT";
    EXPECT_EQ(recs[n0 + 1].commands, 2u) << "v1: one all-pages command + COMPLETION_WAIT";
    EXPECT_GT(recs[n0].total_ps, recs[n0 + 1].total_ps);
    // The v1 flush command in the buffer: opcode 3, DomainID, S=1 PDE=1, the "all" address.
    const uint64_t tail = h.iommu.peek_register(amdvi::reg::CMD_BUF_TAIL);
    amdvi::CmdWords w;
    h.memory.read(h.drv.cmd_buf_base() + tail - 32, w.data(), 16);
    EXPECT_EQ(w[0], (0x3ull << 60) | (uint64_t(h.drv.domain_id_of(a)) << 32));
    EXPECT_EQ(w[1], 0x7FFFFFFFFFFFF003ull);
  });
}

TEST(AmdViCmd, IotlbAndInterruptTableInvalidationsAreAcceptedAndTimed) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    std::vector<common::CommandTrace> traces;
    h.iommu.set_command_probe([&](const common::CommandTrace& t) { traces.push_back(t); });
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_iotlb_pages(kRidA, 0, kIova, kPage),
                                amdvi::cmd_inv_interrupt_table(kRidA)}, "t"));
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_EQ(traces[0].opcode, 0x4u);
    EXPECT_EQ(traces[1].opcode, 0x5u);
    EXPECT_FALSE(traces[0].illegal);
    const auto& c = h.iommu.config();
    const uint64_t cycle_ps = 1000;   // 1 GHz
    // INVALIDATE_IOTLB_PAGES: decode + exec + the message to the device.
    EXPECT_GE(traces[0].exec_end_ps - traces[0].fetch_end_ps,
              (c.cmd_decode_cycles + c.cmd_exec_cycles + c.iotlb_inv_cycles) * cycle_ps);
    EXPECT_LT(traces[1].exec_end_ps - traces[0].exec_end_ps, 50 * cycle_ps);
    EXPECT_EQ(h.drv.command_errors_recovered(), 0u);
  });
}

// Register writes straight into the model (as the driver's socket would), for set-ups the
// driver never makes.
void mmio_write(AmdHarness& h, uint64_t offset, uint64_t value) {
  tlm::tlm_generic_payload p;
  p.set_command(tlm::TLM_WRITE_COMMAND);
  p.set_address(offset);
  p.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
  p.set_data_length(8);
  p.set_streaming_width(8);
  sc_core::sc_time d = sc_core::SC_ZERO_TIME;
  h.iommu.mmio.get_base_interface().b_transport(p, d);
  EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE);
}

TEST(AmdViCmd, UnreadableTablesRaiseHardwareErrorEvents) {
  memory::MemoryConfig mc;
  mc.size_bytes = 1ull << 36;
  AmdHarness h(amd_config(), driver::AmdViDriverConfig{}, mc);
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    namespace reg = amdvi::reg;
    const uint64_t bad = 1ull << 37;   // beyond memory: reads get an address error
    // Device table: DEV_TAB_HW_ERROR at the DTE's address; the DMA gets an error.
    mmio_write(h, reg::DEV_TABLE_BASE, bad | 1);
    EXPECT_EQ(h.read(7, kIova).response, IommuResponse::Fault);
    // Command buffer: COMMAND_HW_ERROR at the fetch address; the buffer stops.
    const uint64_t ctrl = h.iommu.peek_register(reg::CONTROL);
    mmio_write(h, reg::CONTROL, ctrl & ~uint64_t{1ull << 12});
    mmio_write(h, reg::CMD_BUF_BASE, bad | (9ull << 56));
    mmio_write(h, reg::CMD_BUF_HEAD, 0);
    mmio_write(h, reg::CMD_BUF_TAIL, 0);
    mmio_write(h, reg::CONTROL, ctrl);
    mmio_write(h, reg::CMD_BUF_TAIL, 16);
    sc_core::wait(sc_core::sc_time(2, sc_core::SC_US));
    EXPECT_EQ((h.iommu.peek_register(reg::STATUS) >> 4) & 1, 0u) << "CmdBufRun";
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].code, EventCode::DevTabHwError);
    EXPECT_EQ(ev[0].device_id, 7u);
    EXPECT_EQ(ev[0].address, bad + 7 * 32);
    EXPECT_EQ(ev[0].type, amdvi::kHwErrMasterAbort);
    EXPECT_EQ(ev[1].code, EventCode::CommandHwError);
    EXPECT_EQ(ev[1].address, bad);
  });
}

TEST(AmdViCmd, InvalidateDevtabEntryDropsOnlyThatDevice) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId a = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(a, kIova, kPa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidA, std::nullopt, a));
    AMD_ASSERT_OK(h.drv.attach(kRidB, std::nullopt, a));
    ASSERT_TRUE(h.read(kRidA, kIova).ok());
    ASSERT_TRUE(h.read(kRidB, kIova).ok());
    // Both DTEs now say "blocked" in memory; the cached copies still translate.
    amdvi::DeviceTableEntry blocked;
    blocked.valid = blocked.tv = true;
    const amdvi::DteWords w = amdvi::encode_dte(blocked);
    h.memory.write(h.drv.dte_address(kRidA), w.data(), 32);
    h.memory.write(h.drv.dte_address(kRidB), w.data(), 32);
    EXPECT_TRUE(h.read(kRidA, kIova).ok());
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_devtab_entry(kRidA)}, "t"));
    EXPECT_EQ(h.read(kRidA, kIova).response, IommuResponse::Fault);
    EXPECT_TRUE(h.read(kRidB, kIova).ok()) << "the other device's DTE stays cached";
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_iommu_all()}, "t"));
    EXPECT_EQ(h.read(kRidB, kIova).response, IommuResponse::Fault);
  });
}

}  // namespace
}  // namespace iommusim::test

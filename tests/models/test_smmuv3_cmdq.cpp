// SMMUv3 model: the command queue. CMD_SYNC ordering (after earlier commands and after
// walks that an invalidation overtook), invalidation cost, illegal-command recovery,
// CS=SEV completion and range invalidation. Some tests install their own command probe,
// which replaces the driver's (only submit's status is used there, not its records).
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"
#include "tests/support/on_cpus.h"

namespace iommusim::test {
namespace {

using smmuv3::CommandTrace;
using smmuv3::Opcode;

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;
constexpr uint8_t kSync = uint8_t(Opcode::Sync);

TEST(SmmuCmdq, SyncCompletesAfterEarlierCommandsInQueueOrder) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    h.smmu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });
    IOMMUSIM_ASSERT_OK(h.drv.init());
    traces.clear();
    const uint32_t cons0 = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS));
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_all(1), smmuv3::cmd_tlbi_nsnh_all()}, "test"));
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_EQ(traces[0].opcode, uint8_t(Opcode::TlbiNhAll));
    EXPECT_EQ(traces[1].opcode, uint8_t(Opcode::TlbiNsnhAll));
    EXPECT_EQ(traces[2].opcode, kSync);
    for (unsigned i = 0; i < 3; ++i) {
      EXPECT_FALSE(traces[i].illegal);
      EXPECT_EQ(traces[i].queue_index, cons0 + i) << "commands run in queue order";
      EXPECT_GE(traces[i].exec_end_ps, traces[i].fetch_end_ps);
      if (i) { EXPECT_GT(traces[i].exec_end_ps, traces[i - 1].exec_end_ps); }
    }
    // The full-table scans take real time; the sync ends after them.
    EXPECT_GT(traces[1].exec_end_ps - traces[0].exec_end_ps, 512'000u);
    EXPECT_GE(traces[2].exec_end_ps, traces[1].exec_end_ps);
    // CONS moved past the sync, with no error.
    const uint32_t cons = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS));
    EXPECT_EQ(cons, cons0 + 3);
    EXPECT_EQ(smmuv3::reg::CMDQ_CONS_ERR::get(cons), 0u);
    EXPECT_GE(common::to_ps(sc_core::sc_time_stamp()), traces[2].exec_end_ps);
  });
}

// A walk that began before an invalidation holds back the next CMD_SYNC, and its result
// is not installed in the IOTLB.
TEST(SmmuCmdq, SyncWaitsForWalksOvertakenByAnInvalidation) {
  Harness h(smmu_config(/*walk_caches=*/false));   // a long (24-read) nested walk
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, s1));
    h.smmu.set_command_probe([&](const CommandTrace& t) { traces.push_back(t); });
    // Warm the config cache so the DMA goes straight to its walk.
    ASSERT_EQ(h.read(1, kIova).status, tlm::TLM_OK_RESPONSE);
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(s2));   // drop what that DMA cached
    traces.clear();

    uint64_t dma_done_ps = 0;
    DmaResult r;
    sc_core::sc_spawn([&] {
      r = h.read(1, kIova);
      dma_done_ps = common::to_ps(sc_core::sc_time_stamp());
    });
    const uint64_t t0 = h.smmu.table_reads();
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nsnh_all()}, "overtake"));
    ASSERT_EQ(traces.size(), 2u);
    ASSERT_EQ(traces[1].opcode, kSync);
    ASSERT_NE(dma_done_ps, 0u) << "the sync completed before the overtaken walk";
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(h.smmu.table_reads() - t0, 24u);
    EXPECT_LT(traces[0].exec_end_ps, dma_done_ps) << "the invalidation must overtake the walk";
    // The walk ends, then its data access (81 memory cycles) completes the DMA; the sync
    // finished after the walk ended.
    EXPECT_GE(traces[1].exec_end_ps + 81'000, dma_done_ps);
    EXPECT_GT(traces[1].exec_end_ps - traces[0].exec_end_ps, 100'000u);
    // The stale walk result was not cached: the same page walks again.
    const uint64_t t1 = h.smmu.table_reads();
    ASSERT_TRUE(h.read(1, kIova).ok());
    EXPECT_EQ(h.smmu.table_reads() - t1, 24u);
    const uint64_t t2 = h.smmu.table_reads();
    ASSERT_TRUE(h.read(1, kIova).ok());
    EXPECT_EQ(h.smmu.table_reads(), t2);
  });
}

TEST(SmmuCmdq, BroadInvalidationCostsEverySetTargetedOneDoesNot) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    ASSERT_TRUE(h.read(1, kIova).ok());
    const auto& cfg = h.smmu.config();
    const uint64_t iotlb_sets = cfg.translation.iotlb.entries / cfg.translation.iotlb.ways;                // 512
    const uint64_t wc_sets = cfg.translation.s1_walk_cache.entries / cfg.translation.s1_walk_cache.ways;  // 64
    ASSERT_EQ(iotlb_sets, 512u);

    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d));   // TLBI_NH_ASID: scans every set
    ASSERT_FALSE(h.drv.invalidations().records().empty());
    const driver::InvalidationRecord asid = h.drv.invalidations().records().back();
    EXPECT_EQ(asid.commands, 2u);
    EXPECT_GE(asid.execution_ps, iotlb_sets * cfg.translation.iotlb.scan_cycles_per_set * 1000);
    // decode + fixed execution + IOTLB scan + S1 walk-cache scan, at 1 GHz.
    EXPECT_EQ(asid.execution_ps, (cfg.cmd_decode_cycles + cfg.cmd_exec_cycles + iotlb_sets * cfg.translation.iotlb.scan_cycles_per_set +
                                  wc_sets * cfg.translation.s1_walk_cache.scan_cycles_per_set) * 1000);

    ASSERT_TRUE(h.read(1, kIova).ok());
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, true));   // TLBI_NH_VA: one set
    const driver::InvalidationRecord va = h.drv.invalidations().records().back();
    EXPECT_EQ(va.commands, 2u);
    EXPECT_EQ(va.execution_ps, (cfg.cmd_decode_cycles + cfg.cmd_exec_cycles + cfg.translation.iotlb.scan_cycles_per_set) * 1000);
    EXPECT_LT(va.execution_ps * 50, asid.execution_ps);
    // The parts add up.
    for (const auto& r : {asid, va})
      EXPECT_EQ(r.total_ps, r.software_ps + r.queueing_ps + r.fetch_ps + r.execution_ps + r.sync_ps);
  });
}

// The queue engine's stats, by hand: init queues CFGI_ALL, TLBI_NSNH_ALL and CMD_SYNC (one
// fetch); a bad command and its CMD_SYNC are one fetch, the retry after Linux's recovery
// (the bad entry replaced by a CMD_SYNC) another.
TEST(SmmuCmdq, QueueStatsCountFetchesErrorsAndCommandsByType) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    IOMMUSIM_ASSERT_OK(h.drv.submit({{0x7F, 0}}, "bad"));
    common::StatRegistry reg;
    h.smmu.register_stats(reg, "smmu");
    auto count = [&](const char* name) {
      const common::Counter* c = reg.find_counter(std::string("smmu.") + name);
      EXPECT_NE(c, nullptr) << name;
      return c ? c->value() : ~0ull;
    };
    EXPECT_EQ(count("cmdq.fetches"), 3u);
    EXPECT_EQ(count("cmdq.executed.cmd_cfgi_ste_range"), 1u);
    EXPECT_EQ(count("cmdq.executed.cmd_tlbi_nsnh_all"), 1u);
    EXPECT_EQ(count("cmdq.executed.cmd_sync"), 3u);
    EXPECT_EQ(count("cmdq.executed.cmd_tlbi_nh_va"), 0u);
    EXPECT_EQ(count("commands"), 5u);
    EXPECT_EQ(count("syncs"), 3u);
    EXPECT_EQ(count("illegal_commands"), 1u);
    ASSERT_NE(reg.find_histogram("smmu.sync_exec"), nullptr);
    EXPECT_EQ(reg.find_histogram("smmu.sync_exec")->count(), 3u);
  });
}

TEST(SmmuCmdq, IllegalCommandIsRecoveredLikeLinux) {
  Harness h;
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    std::vector<uint32_t> cons_at_error;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    h.smmu.set_command_probe([&](const CommandTrace& t) {
      traces.push_back(t);
      if (t.illegal) cons_at_error.push_back(uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS)));
    });
    const uint32_t cons0 = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS));
    IOMMUSIM_ASSERT_OK(h.drv.submit({{0x7F, 0}}, "bad"));
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
    ASSERT_EQ(cons_at_error.size(), 1u);
    EXPECT_EQ(smmuv3::reg::CMDQ_CONS_ERR::get(cons_at_error[0]), smmuv3::reg::CERROR_ILL);
    EXPECT_EQ(cons_at_error[0] & 0xFFFFFFu, cons0) << "CONS points at the illegal command";
    // Trace: the illegal command, then the driver's replacement CMD_SYNC at the same slot
    // (CONS did not move while the error was pending), then the submit's own CMD_SYNC.
    ASSERT_EQ(traces.size(), 3u);
    EXPECT_TRUE(traces[0].illegal);
    EXPECT_EQ(traces[0].opcode, 0x7F);
    EXPECT_EQ(traces[0].queue_index, cons0);
    EXPECT_FALSE(traces[1].illegal);
    EXPECT_EQ(traces[1].opcode, kSync);
    EXPECT_EQ(traces[1].queue_index, cons0);
    // It waited for the driver to notice (16 polls of 50 ns) and acknowledge.
    EXPECT_GT(traces[1].fetch_start_ps, traces[0].exec_end_ps + 16 * 50'000);
    EXPECT_EQ(traces[2].opcode, kSync);
    EXPECT_EQ(traces[2].queue_index, cons0 + 1);
    // The error is acknowledged and the queue runs again.
    const uint64_t gerror = h.smmu.peek_register(smmuv3::reg::GERROR);
    EXPECT_EQ(gerror & 1, 1u) << "GERROR.CMDQ_ERR toggled once";
    EXPECT_EQ(gerror, h.smmu.peek_register(smmuv3::reg::GERRORN));
    const uint32_t cons = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS));
    EXPECT_EQ(cons, cons0 + 2);
    EXPECT_EQ(smmuv3::reg::CMDQ_CONS_ERR::get(cons), 0u);

    h.memory.write64(kPa, 0xABCD);
    ASSERT_TRUE(h.read(1, kIova).ok());
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_domain(d));
    const uint64_t t0 = h.smmu.table_reads();
    const DmaResult r = h.read(1, kIova);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, 0xABCDu);
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
  });
}

// Four CPUs submit at once; one batch holds an illegal command. Every CPU polls its sync
// and checks GERROR, but the error is recovered once: the bad slot alone becomes a
// CMD_SYNC. (A second CPU recovering after the queue resumed would read the new CONS and
// overwrite a good command: one TLBI lost.)
TEST(SmmuCmdq, ConcurrentPollersRecoverAnErrorOnce) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(1, kIova, kPa), 0u);
    unsigned illegal = 0, tlbis = 0;
    h.smmu.set_command_probe([&](const CommandTrace& t) {
      illegal += t.illegal;
      tlbis += t.opcode == uint8_t(Opcode::TlbiNhVa);
    });
    test::on_cpus(4, [&](unsigned cpu) {
      if (cpu == 0) {
        IOMMUSIM_EXPECT_OK(h.drv.submit({{0x7F, 0}}, "bad"));
      } else {
        const auto c = smmuv3::cmd_tlbi_nh_va(0, 1, kIova + cpu * 4096, true);
        IOMMUSIM_EXPECT_OK(h.drv.submit({{c[0], c[1]}}, "tlbi"));
      }
    });
    EXPECT_EQ(illegal, 1u);
    EXPECT_EQ(tlbis, 3u) << "every good command executed";
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
  });
}

TEST(SmmuCmdq, SyncWithSevCompletes) {
  driver::Smmuv3DriverConfig dc;
  dc.sync_mode = driver::SmmuSyncMode::SevPoll;
  Harness h(smmu_config(), dc);
  h.run([](Harness& h) {
    std::vector<CommandTrace> traces;
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    h.memory.write64(kPa, 77);
    ASSERT_TRUE(h.read(1, kIova).ok());
    const uint32_t cons0 = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS));
    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPage, false));
    EXPECT_EQ(uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS)), cons0 + 2);
    const driver::InvalidationRecord rec = h.drv.invalidations().records().back();
    EXPECT_EQ(rec.commands, 2u);
    EXPECT_GT(rec.sync_ps, 0u);
    // The CMD_SYNC slot keeps its first word (no MSI write in SEV mode).
    const uint64_t t0 = h.smmu.table_reads();
    const DmaResult r = h.read(1, kIova);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, 77u);
    EXPECT_EQ(h.smmu.table_reads() - t0, 4u);
    EXPECT_EQ(h.drv.command_errors_recovered(), 0u);
  });
}

void range_invalidation(bool ril) {
  smmuv3::Smmuv3Config sc = smmu_config();
  sc.range_invalidation = ril;
  Harness h(sc);
  h.run([=](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    constexpr unsigned kPages = 33;
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kIova, kPa, (kPages + 1) * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
    for (unsigned i = 0; i <= kPages; ++i) ASSERT_TRUE(h.read(1, kIova + i * kPage).ok());
    const uint64_t warm = h.smmu.table_reads();
    for (unsigned i = 0; i <= kPages; ++i) ASSERT_TRUE(h.read(1, kIova + i * kPage).ok());
    ASSERT_EQ(h.smmu.table_reads(), warm) << "all 34 pages should be in the IOTLB";

    IOMMUSIM_ASSERT_OK(h.drv.invalidate_range(d, kIova, kPages * kPage, true));
    const auto pieces = smmuv3::plan_tlbi_range(kIova, kPages * kPage, kPage, true, ril);
    EXPECT_EQ(pieces.size(), ril ? 2u : size_t(kPages));   // RIL: 1 page + 32 pages
    EXPECT_EQ(h.drv.invalidations().records().back().commands, pieces.size() + 1);

    // Every page of the range re-walks (1 read each: walk cache kept, leaf);
    // the page after it still hits.
    const uint64_t t0 = h.smmu.table_reads();
    ASSERT_TRUE(h.read(1, kIova + kPages * kPage).ok());
    EXPECT_EQ(h.smmu.table_reads(), t0);
    for (unsigned i = 0; i < kPages; ++i) ASSERT_TRUE(h.read(1, kIova + i * kPage).ok());
    EXPECT_EQ(h.smmu.table_reads() - t0, uint64_t(kPages));
  });
}

TEST(SmmuCmdq, RangeInvalidationWithRil) { range_invalidation(true); }
TEST(SmmuCmdq, RangeInvalidationWithoutRil) { range_invalidation(false); }

// Defect: the driver planned TLBIs with 4 KB pages whatever the leaf size. Linux
// (arm_smmu_tlb_inv_range_cmd / __arm_smmu_tlb_inv_range) plans by the leaf size: without
// RIL one command per leaf (per 2 MB block), with RIL the range form in 4 KB granules
// (TG = 1) with TTL = 2 (a level-2 leaf).
void block_unmap(bool ril) {
  smmuv3::Smmuv3Config sc = smmu_config();
  sc.range_invalidation = ril;
  Harness h(sc);
  h.run([=](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, 0x40000000, 0x80000000, 2 * k2M, {}, k2M));   // two 2 MB blocks
    IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
    // Each executed entry, decoded from the queue slot the trace names.
    std::vector<smmuv3::Command> cmds;
    const uint64_t qbase = smmuv3::reg::Q_BASE_ADDR::get(h.smmu.peek_register(smmuv3::reg::CMDQ_BASE)) << 5;
    const uint64_t qmask = (1ull << smmuv3::reg::Q_BASE_LOG2SIZE::get(h.smmu.peek_register(smmuv3::reg::CMDQ_BASE))) - 1;
    h.smmu.set_command_probe([&](const CommandTrace& t) {
      smmuv3::CmdWords w{};
      h.memory.read(qbase + (t.queue_index & qmask) * 16, w.data(), 16);
      smmuv3::DecodeCaps caps;
      caps.range_invalidation = true;
      std::string why;
      const auto c = smmuv3::decode_command(w, caps, &why);
      if (c) { cmds.push_back(*c); return; }
      // CMD_SYNC with CS=IRQ (MSI polling) has overwritten its own slot by now.
      EXPECT_EQ(t.opcode, uint8_t(smmuv3::Opcode::Sync)) << why;
      smmuv3::Command sync;
      sync.op = smmuv3::Opcode::Sync;
      cmds.push_back(sync);
    });
    IOMMUSIM_ASSERT_OK(h.drv.unmap(d, 0x40000000, 2 * k2M));
    ASSERT_EQ(cmds.size(), ril ? 2u : 3u);   // the TLBIs and the CMD_SYNC
    if (ril) {
      // 4 MB = 1024 pages of 4 KB: SCALE = ffs(1024) = 10, one chunk (NUM field 0): one command.
      EXPECT_EQ(cmds[0].op, smmuv3::Opcode::TlbiS2Ipa);
      EXPECT_EQ(cmds[0].addr, 0x40000000u);
      EXPECT_EQ(cmds[0].tg, 1u);
      EXPECT_EQ(cmds[0].ttl, 2u);
      EXPECT_EQ(cmds[0].scale, 10u);
      EXPECT_EQ(cmds[0].num, 0u);
    } else {
      for (unsigned i = 0; i < 2; ++i) {
        EXPECT_EQ(cmds[i].op, smmuv3::Opcode::TlbiS2Ipa);
        EXPECT_EQ(cmds[i].addr, 0x40000000u + i * k2M);
        EXPECT_EQ(cmds[i].tg, 0u);
      }
    }
    EXPECT_EQ(cmds.back().op, smmuv3::Opcode::Sync);
    EXPECT_EQ(h.read(1, 0x40000000 + k2M + 0x1000).response, IommuResponse::Fault);
  });
}

TEST(SmmuCmdq, BlockUnmapPlansByTheLeafSizeWithRil) { block_unmap(true); }
TEST(SmmuCmdq, BlockUnmapPlansOneCommandPerBlockWithoutRil) { block_unmap(false); }


// A command queue in memory the SMMU cannot read keeps raising CERROR_ABT; the driver must
// give up with a message after its timeout rather than poll forever.
TEST(SmmuCmdq, UnreadableQueueTimesOutWithAMessage) {
  driver::Smmuv3DriverConfig dc;
  dc.memory.table_pool_base = 1ull << 41;   // beyond the 1 TiB memory: every queue fetch aborts
  dc.timing.sync_timeout_us = 5;
  Harness h(smmu_config(), dc);
  h.run([](Harness& h) {
    const driver::Status s = h.drv.init();
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.error.find("CMD_SYNC not complete after"), std::string::npos) << s.error;
    EXPECT_NE(s.error.find("CMDQ_CONS=0x2000000"), std::string::npos) << s.error;   // ERR = CERROR_ABT (2)
    EXPECT_GE(sc_core::sc_time_stamp(), sc_core::sc_time(5, sc_core::SC_US));
  });
}

}  // namespace
}  // namespace iommusim::test

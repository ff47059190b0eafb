// SMMUv3 model: SMMUv3.3 ECMDQs (models/smmuv3/ecmdq.h) and the host driver's use of them
// (the Linux ECMDQ series, platforms/driver/smmuv3_driver.h). Register values are worked
// out by hand from the field positions of IHI 0070 / the series' macros (registers.h);
// commands written by the tests themselves are hand-encoded words.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"   // before dma_api_checks.h (kPage)
#include "dma_api_checks.h"
#include "fuzz_support.h"
#include "models/common/ats.h"
#include "models/common/correctness_oracle.h"
#include "tests/support/on_cpus.h"

namespace iommusim::test {
namespace {

namespace reg = smmuv3::reg;

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;
// Hand-encoded commands (IHI 0070 §4; Linux CMDQ_0_OP [7:0], CMDQ_SYNC_0_CS [13:12] (IRQ = 1),
// CMDQ_SYNC_0_MSIDATA [63:32], CMDQ_SYNC_1_MSIADDR [51:2], CMDQ_ATC_1_SIZE [5:0]).
constexpr smmuv3::CmdWords kIllegal{0x7F, 0};   // opcode 0x7F: none
constexpr smmuv3::CmdWords kSyncNone{0x46, 0};
// CMD_SYNC, CS = IRQ, MSIData `data`, MSIAddr `addr`: dw0 = 0x46 | 1 << 12 | data << 32.
constexpr smmuv3::CmdWords sync_msi(uint64_t addr, uint32_t data) { return {0x1046ull | uint64_t(data) << 32, addr}; }
// CMD_ATC_INV of SID 1, everything (Size = 52): dw0 = 0x40 | 1 << 32, dw1 = 52.
constexpr smmuv3::CmdWords kAtcInvSid1{0x0000'0001'0000'0040ull, 52};
constexpr uint32_t kEn = 1u << 31, kErrack = 1u << 23;   // ECMDQ_PROD.EN, .ERRACK

smmuv3::Smmuv3Config with_ecmdqs(unsigned n) {
  smmuv3::Smmuv3Config c = smmu_config();
  c.ecmdqs = n;
  return c;
}

// Register accesses as software makes them (through the driver's MMIO socket).
void w32(Harness& h, uint64_t off, uint32_t v) { fuzz::mmio_write(h.drv.mmio, off, v, 4); }
void w64(Harness& h, uint64_t off, uint64_t v) { fuzz::mmio_write(h.drv.mmio, off, v, 8); }
uint32_t r32(Harness& h, uint64_t off) {
  uint64_t v = 0;
  EXPECT_EQ(fuzz::mmio_access(h.drv.mmio, false, off, v, 4), tlm::TLM_OK_RESPONSE) << "MMIO read at " << off;
  return uint32_t(v);
}
// The ring the driver gave ECMDQ n (its BASE.ADDR).
uint64_t ring_of(Harness& h, unsigned n) {
  return h.smmu.peek_register(smmuv3::ecmdq_offset(n, h.smmu.config().ecmdqs) + reg::ECMDQ_BASE) & common::mask(51, 5);
}
void put(Harness& h, uint64_t ring, unsigned slot, const smmuv3::CmdWords& c) { h.memory.write(ring + slot * 16ull, c.data(), 16); }

// IDR1 of the defaults: SIDSIZE 16 [5:0] = 0x10, SSIDSIZE 20 [10:6] = 0x500, EVTQS 19
// [20:16] = 0x130000, CMDQS 19 [25:21] = 0x2600000: 0x2730510; ECMDQ [31] adds 0x80000000.
TEST(SmmuEcmdq, NoEcmdqIdRegisters) {
  Harness h(with_ecmdqs(0));
  EXPECT_EQ(h.smmu.peek_register(reg::IDR1, 4), 0x02730510u);
  EXPECT_EQ(h.smmu.peek_register(reg::IDR6, 4), 0u);
  EXPECT_EQ(h.smmu.peek_register(reg::AIDR, 4), 0x02u) << "SMMUv3.2";
  EXPECT_EQ(h.smmu.ecmdq_interface(), nullptr);
}

TEST(SmmuEcmdq, IdRegistersSayHowManyAndWhere) {
  Harness h(with_ecmdqs(4));
  EXPECT_EQ(h.smmu.peek_register(reg::IDR1, 4), 0x82730510u);
  // IDR6: LOG2NUMQ = log2(4) = 2 at [19:16], LOG2NUMP = 0: 0x20000.
  EXPECT_EQ(h.smmu.peek_register(reg::IDR6, 4), 0x00020000u);
  EXPECT_EQ(h.smmu.peek_register(reg::AIDR, 4), 0x03u) << "SMMUv3.3";
  // CMDQ_CONTROL_PAGE_BASE0 at 0x4000 (IHI 0070 §6.3.49): ADDR[55:16] = 0x20000 >> 16 = 2
  // (0x20000), CMDQGS[2:1] = 0b01 for 64 KB (0x2), PRESET[0] = 1: 0x20003.
  EXPECT_EQ(h.smmu.peek_register(0x4000, 8), 0x20003u);
}

TEST(SmmuEcmdq, QueueRegistersAtTheirOffsets) {
  // 4 ECMDQs: 64 KB >> 2 = 0x4000 apart from 0x20000, so ECMDQ 3 at 0x2C000, its PROD at
  // 0x2C008 and CONS at 0x2C00C. 128 ECMDQs (Odyssey): 0x200 apart, ECMDQ 1 at 0x20200.
  EXPECT_EQ(smmuv3::ecmdq_offset(3, 4), 0x2C000u);
  EXPECT_EQ(smmuv3::ecmdq_offset(1, 128), 0x20200u);
  Harness h(with_ecmdqs(4));
  h.run([](Harness& h) {
    w64(h, 0x2C000, 0x7000'0000ull | 4);   // BASE of ECMDQ 3: a 16-entry ring
    EXPECT_EQ(h.smmu.peek_register(0x2C000, 8), 0x7000'0004u);
    w32(h, 0x2C008, kEn);
    EXPECT_EQ(r32(h, 0x2C00C), 0x80000000u) << "ECMDQ 3's CONS.ENACK answers its PROD.EN";
    EXPECT_EQ(r32(h, 0x2800C), 0u) << "ECMDQ 2 stays disabled";
  });
}

TEST(SmmuEcmdq, EnableHandshakeAndWhatIsWritableWhenEnabled) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& h) {
    const uint64_t q0 = smmuv3::ecmdq_offset(0, 4);
    EXPECT_EQ(r32(h, q0 + reg::ECMDQ_CONS), 0u) << "disabled at reset";
    w64(h, q0 + reg::ECMDQ_BASE, 0x7000'0000ull | 4);
    w32(h, q0 + reg::ECMDQ_CONS, 3);   // RD is writable while disabled
    EXPECT_EQ(r32(h, q0 + reg::ECMDQ_CONS), 3u);
    w32(h, q0 + reg::ECMDQ_PROD, kEn | 3);
    // ENACK [31] | RD 3 = 0x80000003.
    EXPECT_EQ(r32(h, q0 + reg::ECMDQ_CONS), 0x80000003u);
    w32(h, q0 + reg::ECMDQ_CONS, 0);
    EXPECT_EQ(r32(h, q0 + reg::ECMDQ_CONS), 0x80000003u) << "CONS ignores writes while enabled";
    w64(h, q0 + reg::ECMDQ_BASE, 0x7100'0000ull | 4);
    EXPECT_EQ(h.smmu.peek_register(q0 + reg::ECMDQ_BASE, 8), 0x7000'0004u) << "so does BASE";
    w32(h, q0 + reg::ECMDQ_PROD, 3);   // EN = 0
    EXPECT_EQ(r32(h, q0 + reg::ECMDQ_CONS), 3u) << "ENACK follows EN back to 0";
  });
}

// IHI 0070 §3.5.6.2: once ENACK reads 0 the ECMDQ has stopped consuming and CONS is stable.
// EN = 0 written while the queue executes a fetched batch (SMMU cmd_batch = 8 entries per
// read): ENACK stays 1 until that batch has executed, then drops with RD = 8; the next batch
// (entries 8-15) is not fetched and RD stays 8.
TEST(SmmuEcmdq, EnackDropsOnlyWhenTheFetchedBatchHasExecuted) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& h) {
    const uint64_t q0 = smmuv3::ecmdq_offset(0, 4), ring = 0x7000'0000ull;
    const smmuv3::CmdWords tlbi_nsnh_all{0x30, 0};   // CMD_TLBI_NSNH_ALL, opcode 0x30
    for (unsigned i = 0; i < 16; ++i) put(h, ring, i, tlbi_nsnh_all);
    w64(h, q0 + reg::ECMDQ_BASE, ring | 4);   // LOG2SIZE 4: 16 entries
    w32(h, q0 + reg::ECMDQ_PROD, kEn | 16);
    auto cons = [&h, q0] { return uint32_t(h.smmu.peek_register(q0 + reg::ECMDQ_CONS, 4)); };
    while ((cons() & 0xFFFFF) == 0) sc_core::wait(1, sc_core::SC_NS);   // the first entry executed
    ASSERT_LT(cons() & 0xFFFFF, 8u) << "the first batch ended before the test could disable the queue";
    fuzz::mmio_write(h.drv.mmio, q0 + reg::ECMDQ_PROD, 16, 4);   // EN = 0
    const uint32_t after_write = cons();
    EXPECT_TRUE(after_write & kEn) << "ENACK dropped with RD = " << (after_write & 0xFFFFF) << " mid-batch";
    while (cons() & kEn) sc_core::wait(1, sc_core::SC_NS);
    EXPECT_EQ(cons(), 8u) << "ENACK 0 with RD at the end of the first batch";
    sc_core::wait(10, sc_core::SC_US);
    EXPECT_EQ(cons(), 8u) << "CONS stable with ENACK = 0";
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(0).stats().executed.value(), 8u);
  });
}

// An illegal command on ECMDQ 1 stops ECMDQ 1 alone: ECMDQ 0 and the CMDQ keep executing,
// and nothing after the bad entry on ECMDQ 1 executes until PROD.ERRACK acknowledges it.
TEST(SmmuEcmdq, IllegalCommandStopsOnlyItsQueueUntilErrack) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_EQ(h.drv.ecmdqs_in_use(), 4u);
    ASSERT_EQ(h.drv.ecmdq_of_calling_cpu(), 0u) << "the test thread is CPU 0: the driver uses ECMDQ 0";
    const uint64_t q1 = smmuv3::ecmdq_offset(1, 4), ring1 = ring_of(h, 1);
    const uint64_t msi_a = 0x7100'0000ull, msi_b = 0x7100'0010ull;
    h.memory.write32(msi_a, 0xFFFFFFFF);
    h.memory.write32(msi_b, 0xFFFFFFFF);
    put(h, ring1, 0, kIllegal);
    put(h, ring1, 1, sync_msi(msi_a, 1));
    w32(h, q1 + reg::ECMDQ_PROD, kEn | 2);
    sc_core::wait(5, sc_core::SC_US);
    // CONS: ENACK 0x80000000 | ERR toggled to 1 (bit 23) 0x800000 | ERR_REASON CERROR_ILL = 1
    // at [26:24] 0x1000000 | RD 0 (on the bad entry) = 0x81800000.
    EXPECT_EQ(r32(h, q1 + reg::ECMDQ_CONS), 0x81800000u);
    EXPECT_EQ(h.smmu.peek_register(reg::GERROR, 4), 0x200u) << "GERROR.CMDQP_ERR [9] toggled, CMDQ_ERR not";
    EXPECT_EQ(h.smmu.peek_register(reg::GERRORN, 4), 0u);
    EXPECT_EQ(h.memory.read32(msi_a), 0xFFFFFFFFu) << "the CMD_SYNC after the bad entry did not run";
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(1).stats().errors.value(), 1u);

    // ECMDQ 0 (the driver's, this CPU's) still executes ...
    const uint64_t q0_done = h.smmu.ecmdq_interface()->queue(0).stats().executed.value();
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nsnh_all()}, "tlbi"));
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(0).stats().executed.value(), q0_done + 2) << "TLBI + CMD_SYNC";
    // ... and so does the CMDQ (which the driver leaves alone once it has ECMDQs).
    const uint64_t cmdq_ring = h.smmu.peek_register(reg::CMDQ_BASE) & common::mask(51, 5);
    ASSERT_EQ(h.smmu.peek_register(reg::CMDQ_PROD, 4), 0u);
    put(h, cmdq_ring, 0, sync_msi(msi_b, 2));
    w32(h, reg::CMDQ_PROD, 1);
    sc_core::wait(5, sc_core::SC_US);
    EXPECT_EQ(h.memory.read32(msi_b), 2u);
    EXPECT_EQ(r32(h, q1 + reg::ECMDQ_CONS), 0x81800000u) << "ECMDQ 1 still stopped";

    // Software skips the entry (a CMD_SYNC in its place, as __arm_smmu_cmdq_skip_err) and
    // acknowledges: ERRACK = CONS.ERR = 1. Both entries run; RD reaches 2, ERR stays 1.
    put(h, ring1, 0, kSyncNone);
    w32(h, q1 + reg::ECMDQ_PROD, kEn | kErrack | 2);
    sc_core::wait(5, sc_core::SC_US);
    EXPECT_EQ(r32(h, q1 + reg::ECMDQ_CONS), 0x81800002u);
    EXPECT_EQ(h.memory.read32(msi_a), 1u);
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(1).stats().executed.value(), 2u);
  });
}

// A device whose Invalidate Completions take 20 us.
struct SlowAtc : common::AtsDevice {
  unsigned got = 0;
  common::AtcInvalidationResult invalidate(const common::AtcInvalidation&, common::Ps issued) override {
    ++got;
    return {true, issued + 20'000'000};
  }
};

// IHI 0070 §3.5.7: no ordering between queues. A CMD_SYNC on ECMDQ 3 completes at once
// while ECMDQ 2's CMD_SYNC waits for its ATC_INV's completion (20 us).
TEST(SmmuEcmdq, SyncDoesNotWaitForAnotherQueuesAtcInvalidation) {
  Harness h(with_ecmdqs(4));
  SlowAtc atc;
  h.smmu.attach_ats_device(1, &atc);
  h.run([&atc](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const uint64_t msi_2 = 0x7100'0000ull, msi_3 = 0x7100'0010ull;
    put(h, ring_of(h, 2), 0, kAtcInvSid1);
    put(h, ring_of(h, 2), 1, sync_msi(msi_2, 1));
    put(h, ring_of(h, 3), 0, sync_msi(msi_3, 1));
    const double t0 = sc_core::sc_time_stamp().to_seconds();
    w32(h, smmuv3::ecmdq_offset(2, 4) + reg::ECMDQ_PROD, kEn | 2);
    w32(h, smmuv3::ecmdq_offset(3, 4) + reg::ECMDQ_PROD, kEn | 1);
    double t2 = -1, t3 = -1;
    for (int i = 0; i < 1000 && t2 < 0; ++i) {
      sc_core::wait(100, sc_core::SC_NS);
      const double now = sc_core::sc_time_stamp().to_seconds() - t0;
      if (t3 < 0 && h.memory.read32(msi_3) == 1) t3 = now;
      if (h.memory.read32(msi_2) == 1) t2 = now;
    }
    EXPECT_EQ(atc.got, 1u);
    ASSERT_GE(t3, 0) << "ECMDQ 3's CMD_SYNC never completed";
    EXPECT_LT(t3, 2e-6) << "ECMDQ 3's CMD_SYNC waited for ECMDQ 2's ATC invalidation";
    EXPECT_GE(t2, 20e-6) << "ECMDQ 2's CMD_SYNC completed before its ATC_INV did";
  });
}

// The driver puts CPU i's commands on ECMDQ i % n (the series' v1 4/4 layout on one node):
// with 2 ECMDQs four CPUs share them two by two; with 4 each has its own. The CMDQ gets none.
void spread(unsigned queues) {
  Harness h(with_ecmdqs(queues));
  h.run([queues](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());   // this thread is CPU 0
    ASSERT_NE(h.stage1_device(1, kIova, kPa), 0u);
    std::vector<uint64_t> before(queues);
    for (unsigned q = 0; q < queues; ++q) before[q] = h.smmu.ecmdq_interface()->queue(q).stats().executed.value();
    on_cpus(4, [&h](unsigned cpu) {   // CPUs 1..4
      IOMMUSIM_EXPECT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_va(0, 1, kIova + cpu * 4096, true)}, "tlbi"));
    });
    // Each CPU's batch is a TLBI_NH_VA and its CMD_SYNC: 2 commands.
    for (unsigned q = 0; q < queues; ++q)
      EXPECT_EQ(h.smmu.ecmdq_interface()->queue(q).stats().executed.value() - before[q], 2u * (4 / queues))
          << "ECMDQ " << q;
    EXPECT_EQ(h.smmu.peek_register(reg::CMDQ_PROD, 4), 0u) << "nothing on the CMDQ";
  });
}
TEST(SmmuEcmdq, DriverSharesTwoQueuesAmongFourCpus) { spread(2); }
TEST(SmmuEcmdq, DriverGivesEachOfFourCpusItsOwnQueue) { spread(4); }

// An illegal command on the driver's ECMDQ: recovered as the series does (the entry
// replaced by a CMD_SYNC, PROD.ERRACK := CONS.ERR, GERRORN.CMDQP_ERR acknowledged), and
// the next doorbell keeps ERRACK (else the queue would stop again).
TEST(SmmuEcmdq, DriverRecoversAnIllegalCommandWithErrack) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const uint64_t q0 = smmuv3::ecmdq_offset(0, 4);
    IOMMUSIM_ASSERT_OK(h.drv.submit({kIllegal}, "bad"));
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(0).stats().illegal.value(), 1u);
    const uint32_t cons = uint32_t(h.smmu.peek_register(q0 + reg::ECMDQ_CONS, 4));
    EXPECT_EQ(cons & 0xFF800000u, 0x81800000u) << "ENACK, ERR = 1, ERR_REASON = CERROR_ILL";
    EXPECT_EQ(h.smmu.peek_register(q0 + reg::ECMDQ_PROD, 4) & (kEn | kErrack), kEn | kErrack);
    EXPECT_EQ(h.smmu.peek_register(reg::GERROR, 4), 0x200u);
    EXPECT_EQ(h.smmu.peek_register(reg::GERRORN, 4), 0x200u) << "acknowledged";
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_tlbi_nsnh_all()}, "after"));
    EXPECT_EQ(h.drv.command_errors_recovered(), 1u);
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(0).stats().errors.value(), 1u);
  });
}

// A shared ECMDQ (1 ECMDQ, 2 CPUs): CPU 0's illegal command is recovered through ERRACK
// while CPU 1 rings the same queue's doorbell d ns later. The ERRACK write must neither
// overwrite CPU 1's doorbell with an older PROD.WR (its entries would never be consumed and
// its CMD_SYNC would time out) nor be undone by a doorbell value built before it (the queue
// would stop again on ERR != ERRACK). The series' v1 serialises them (ecmdq_lock: ERRACK
// under write_lock, each doorbell under read_lock). Swept over d so that CPU 1's doorbell
// lands before, during and after the recovery's register accesses.
TEST(SmmuEcmdq, ErrackOnASharedEcmdqKeepsAnotherCpusDoorbell) {
  Harness h(with_ecmdqs(1));
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(1, kIova, kPa), 0u);
    uint64_t rounds = 0;
    for (unsigned d = 0; d <= 1500; d += 5) {
      ++rounds;
      on_cpus(2, [&h, d](unsigned cpu) {
        SCOPED_TRACE("d = " + std::to_string(d) + " ns, CPU " + std::to_string(cpu));
        if (cpu == 0) {
          IOMMUSIM_EXPECT_OK(h.drv.submit({kIllegal}, "bad"));
        } else {
          sc_core::wait(sc_core::sc_time(d, sc_core::SC_NS));
          IOMMUSIM_EXPECT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_va(0, 1, kIova, true)}, "tlbi"));
        }
      });
      if (::testing::Test::HasFailure()) break;
    }
    EXPECT_EQ(h.drv.command_errors_recovered(), rounds);
    EXPECT_EQ(h.smmu.ecmdq_interface()->queue(0).stats().illegal.value(), rounds);
  }, sc_core::sc_time(1, sc_core::SC_SEC));
}

// The DMA API's randomized multi-CPU run (dma_api_checks.h) with the correctness oracle on
// ECMDQs: four CPUs sharing two ECMDQs, and each on its own; strict and lazy. No violation.
TEST(SmmuEcmdq, DmaApiOnSharedEcmdqsStrict) {
  Harness h(with_ecmdqs(2));
  h.run([](Harness& x) { check_random_multi_cpu(x, "smmuv3", true, 7, 100); }, sc_core::sc_time(1, sc_core::SC_SEC));
}
TEST(SmmuEcmdq, DmaApiOnOwnEcmdqsStrict) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& x) { check_random_multi_cpu(x, "smmuv3", true, 8, 100); }, sc_core::sc_time(1, sc_core::SC_SEC));
}
TEST(SmmuEcmdq, DmaApiOnOwnEcmdqsLazy) {
  Harness h(with_ecmdqs(4));
  h.run([](Harness& x) { check_random_multi_cpu(x, "smmuv3", false, 9, 300); }, sc_core::sc_time(1, sc_core::SC_SEC));
}

// What the oracle sees of an ECMDQ-specific bug: a driver that waits for a CMD_SYNC on one
// ECMDQ for a TLBI it put on another (on the shared CMDQ that CMD_SYNC would have covered
// it). Here the TLBI sits on ECMDQ 1 behind an illegal entry, so it never runs; the
// driver's CMD_SYNC on ECMDQ 0 completes, the unmap is reported complete at it, and the
// next DMA still translates through the IOTLB: a violation. (The same change invalidated
// on its own queue, as the driver does, is the DmaApi tests above: none.)
TEST(SmmuEcmdq, OracleCatchesASyncOnTheWrongEcmdq) {
  Harness h(with_ecmdqs(4));
  common::CorrectnessOracle oracle("smmuv3");
  h.smmu.set_observer(&oracle);
  h.drv.set_oracle(&oracle);
  h.run([&oracle](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.stage1_device(1, kIova, kPa);
    ASSERT_NE(d, 0u);
    ASSERT_TRUE(h.read(1, kIova).ok());   // cached in the IOTLB
    common::CorrectnessOracle::ChangeId change = 0;
    IOMMUSIM_ASSERT_OK(h.drv.unmap_deferred(d, kIova, kPage, &change));
    const uint64_t ring1 = ring_of(h, 1);
    put(h, ring1, 0, kIllegal);
    put(h, ring1, 1, smmuv3::cmd_tlbi_nh_va(0, h.drv.asid_of(d), kIova, true));
    w32(h, smmuv3::ecmdq_offset(1, 4) + reg::ECMDQ_PROD, kEn | 2);
    IOMMUSIM_ASSERT_OK(h.drv.sync());   // CMD_SYNC on ECMDQ 0 (this CPU's)
    h.drv.complete_deferred(change);
    h.read(1, kIova);
    oracle.finish();
    EXPECT_GT(oracle.violations(), 0u) << "the oracle missed a translation surviving its unmap";
  });
}

}  // namespace
}  // namespace iommusim::test

// SMMUv3 model: the Tegra241 CMDQV's VCMDQs as further command queues of the SMMU
// (models/smmuv3/cmdqv.h). The host driver builds a nested stream (SID 1) and fills the
// IOTLB with one DMA; the test then programs the CMDQV as a hypervisor does (a guest VINTF
// with the stream's VMID and HYP_OWN = 0, a SID_MATCH / SID_REPLACE pair, a VCMDQ allocated
// to it) and writes guest commands, as hand-encoded words, into the VCMDQ's ring.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "models/smmuv3/cmdqv.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

using namespace smmuv3::cmdqv;
using smmuv3::Opcode;

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint32_t kSid = 1, kVsid = 7;
constexpr unsigned kGuestVintf = 1;
// The VCMDQ rings: 16 entries each (LOG2SIZE 4, 256 bytes), host PAs aligned to their size.
constexpr uint64_t kRing0 = 0x7000'0000ull, kRing1 = 0x7000'1000ull;
constexpr unsigned kLog2Entries = 4;

// Hand-encoded commands (IHI 0070 §4.4, §4.7; dword 0 OPCODE[7:0], VMID[47:32], ASID[63:48],
// SID[63:32]; dword 1 Leaf[0], Address[63:12]).
// TLBI_NH_VA, ASID 1, VMID 0x3333 (whatever a guest writes: the VINTF's replaces it),
// VA 0x10000000, Leaf = 1: dw0 = 0x12 | 0x3333 << 32 | 1 << 48, dw1 = 0x10000000 | 1.
constexpr smmuv3::CmdWords kGuestTlbiNhVa{0x0001'3333'0000'0012ull, 0x0000'0000'1000'0001ull};
// CMD_SYNC, CS = none: dw0 = 0x46.
constexpr smmuv3::CmdWords kSyncNone{0x46, 0};
// CFGI_STE of SID 7: dw0 = 0x03 | 7 << 32, Leaf = 1.
constexpr smmuv3::CmdWords kCfgiSte{0x0000'0007'0000'0003ull, 1};
// TLBI_NH_ASID, ASID 1, VMID 0: dw0 = 0x11 | 1 << 48.
constexpr smmuv3::CmdWords kGuestTlbiNhAsid{0x0001'0000'0000'0011ull, 0};
// ATC_INV of (v)SID s, everything (Size = 52): dw0 = 0x40 | s << 32, dw1 = 52.
constexpr smmuv3::CmdWords atc_inv_all(uint32_t s) { return {0x40ull | uint64_t(s) << 32, 52}; }

struct CmdqvHarness : Harness {
  smmuv3::Cmdqv cmdqv{"cmdqv", smmuv3::CmdqvConfig{}, smmu};

  void run_body(std::function<void(CmdqvHarness&)> body) {
    run([this, body](Harness&) { body(*this); });
  }

  // The stream the guest owns: SID 1 nested (its VMID the stage 2's, ASID the stage 1's),
  // one page at kIova, cached by one DMA.
  struct Stream { uint16_t vmid = 0, asid = 0; };
  Stream nested_stream() {
    EXPECT_TRUE(drv.init().ok);
    auto [s2, s1] = make_nested(kPage);
    EXPECT_TRUE(drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage).ok);
    EXPECT_TRUE(drv.attach(kSid, std::nullopt, s1).ok);
    EXPECT_TRUE(read(kSid, kIova).ok());
    return {drv.vmid_of(s2), drv.asid_of(s1)};
  }
  // What the host does for a guest VINTF (tegra241_vintf_hw_init with hyp_own = false,
  // tegra241_vintf_init_vsid, tegra241_vintf_alloc_lvcmdq_user): the VMID, a vSID pair,
  // global VCMDQ q allocated as its LVCMDQ lidx with its ring at `ring`.
  void host_setup(unsigned vintf, uint16_t vmid, unsigned q, unsigned lidx, uint64_t ring) {
    cmdqv.write32(CONFIG, 1);
    cmdqv.write32(CMDQ_ALLOC(q), uint32_t(CMDQV_CMDQ_ALLOC_VINTF::set(0, vintf) | CMDQV_CMDQ_ALLOC_LVCMDQ::set(0, lidx) |
                                          CMDQV_CMDQ_ALLOCATED::set(0, 1)));
    cmdqv.write32(VINTF(vintf) + VINTF_CONFIG, uint32_t(VINTF_VMID::set(0, vmid) | VINTF_EN::set(0, 1)));
    cmdqv.write32(VINTF(vintf) + VINTF_SID_REPLACE(0), kSid);
    cmdqv.write32(VINTF(vintf) + VINTF_SID_MATCH(0), kVsid << 1 | 1);
    cmdqv.write64(VCMDQ_PAGE1(q) + VCMDQ_BASE, ring | kLog2Entries);
  }
  // The guest, through its VINTF's logical page 0: enables the queue (user space does,
  // tegra241_vcmdq_hw_init_user leaves it disabled).
  void guest_enable(unsigned vintf, unsigned lidx) {
    cmdqv.write32(VINTFi_LVCMDQ_PAGE0(vintf, lidx) + VCMDQ_CONFIG, 1);
  }
  // The guest writes `cmds` at PROD and rings PROD; returns the new PROD.
  uint32_t guest_submit(unsigned vintf, unsigned lidx, uint64_t ring, const std::vector<smmuv3::CmdWords>& cmds) {
    const uint64_t page = VINTFi_LVCMDQ_PAGE0(vintf, lidx);
    uint32_t prod = cmdqv.read32(page + VCMDQ_PROD);
    for (const auto& c : cmds) {
      memory.write(ring + (prod & 0xF) * 16ull, c.data(), 16);
      prod = (prod + 1) & 0x1F;   // index and wrap bit of a 16-entry ring
    }
    cmdqv.write32(page + VCMDQ_PROD, prod);
    return prod;
  }
  uint32_t cons(unsigned vintf, unsigned lidx) { return cmdqv.read32(VINTFi_LVCMDQ_PAGE0(vintf, lidx) + VCMDQ_CONS); }
  // Waits (simulated time) until the queue is idle: CONS reached `prod` or, unless
  // `resumed` (an acknowledged error leaves CONS.ERR as it was), stopped on an error.
  void wait_idle(unsigned vintf, unsigned lidx, uint32_t prod, bool resumed = false) {
    for (int i = 0; i < 100000; ++i) {
      const uint32_t c = cons(vintf, lidx);
      if ((c & 0x1F) == prod || (!resumed && VCMDQ_CONS_ERR::get(c))) return;
      sc_core::wait(1, sc_core::SC_NS);
    }
    ADD_FAILURE() << "VCMDQ never idle";
  }
};

TEST(SmmuCmdqv, ParamAndLogicalPagesAtTheirOffsets) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    // PARAM: NUM_SID_PER_VM_LOG2 4 [15:12], NUM_VINTF_LOG2 2 [11:8], NUM_VCMDQ_LOG2 4 [7:4], VER 1.
    EXPECT_EQ(h.cmdqv.read32(PARAM), 0x4241u);
    EXPECT_EQ(h.cmdqv.lvcmdqs_per_vintf(), 4u);
    // Global VCMDQ 5 allocated as VINTF 1's LVCMDQ 2: its logical page 0 is
    // 0x30000 + 128K * 1 + 0x80 * 2 = 0x50100; its page 1 0x60100.
    h.cmdqv.write32(CMDQ_ALLOC(5), uint32_t(1u << 15 | 2u << 1 | 1u));
    EXPECT_EQ(VINTFi_LVCMDQ_PAGE0(1, 2), 0x50100u);
    h.cmdqv.write64(0x60100, 0x7000'0000ull | 4);
    EXPECT_EQ(h.cmdqv.read64(VCMDQ_PAGE1(5) + VCMDQ_BASE), 0x7000'0004ull) << "the logical page 1 reaches VCMDQ 5's BASE";
    h.cmdqv.write32(0x50100 + VCMDQ_PROD, 3);
    EXPECT_EQ(h.cmdqv.read32(0x10000 + 0x80 * 5 + 4), 3u) << "the logical page 0 reaches VCMDQ 5's PROD";
    // LVCMDQ 3 of VINTF 1 has no VCMDQ allocated: reads 0, a write goes nowhere.
    h.cmdqv.write32(VINTFi_LVCMDQ_PAGE0(1, 3) + VCMDQ_PROD, 9);
    EXPECT_EQ(h.cmdqv.read32(VINTFi_LVCMDQ_PAGE0(1, 3) + VCMDQ_PROD), 0u);
  });
}

TEST(SmmuCmdqv, GuestTlbiGetsTheVintfVmid) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    ASSERT_NE(st.vmid, 0x3333u);
    EXPECT_EQ(st.asid, 1u) << "the hand-encoded TLBI names ASID 1";
    h.host_setup(kGuestVintf, st.vmid, 0, 0, kRing0);
    h.guest_enable(kGuestVintf, 0);
    const uint64_t iotlb = h.smmu.iotlb_entries();
    ASSERT_EQ(iotlb, 1u);
    const uint64_t host_commands = h.smmu.peek_register(smmuv3::reg::CMDQ_CONS, 4);
    const uint32_t prod = h.guest_submit(kGuestVintf, 0, kRing0, {kGuestTlbiNhVa, kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    EXPECT_EQ(h.cons(kGuestVintf, 0), 2u) << "both executed, no error";
    // The guest wrote VMID 0x3333; the hardware used the VINTF's, so the entry is gone.
    EXPECT_EQ(h.smmu.iotlb_entries(), 0u);
    EXPECT_EQ(h.cmdqv.queue(0).stats().by_type[uint8_t(Opcode::TlbiNhVa)].value(), 1u);
    EXPECT_EQ(h.smmu.peek_register(smmuv3::reg::CMDQ_CONS, 4), host_commands) << "nothing went through the main CMDQ";
  });
}

TEST(SmmuCmdqv, AnotherVintfVmidLeavesTheEntry) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    h.host_setup(kGuestVintf, uint16_t(st.vmid + 100), 0, 0, kRing0);   // another VM's VINTF
    h.guest_enable(kGuestVintf, 0);
    const uint32_t prod = h.guest_submit(kGuestVintf, 0, kRing0, {kGuestTlbiNhVa, kGuestTlbiNhAsid, kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    EXPECT_EQ(h.cons(kGuestVintf, 0), 3u);
    EXPECT_EQ(h.smmu.iotlb_entries(), 1u) << "a guest can only invalidate its own VMID";
  });
}

TEST(SmmuCmdqv, DisallowedCommandIsThatQueuesErrorOnly) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    h.host_setup(kGuestVintf, st.vmid, 0, 0, kRing0);
    h.host_setup(2, st.vmid, 1, 0, kRing1);   // a second VINTF (another VM) with its own queue
    h.guest_enable(kGuestVintf, 0);
    h.guest_enable(2, 0);
    const uint32_t prod = h.guest_submit(kGuestVintf, 0, kRing0, {kCfgiSte, kGuestTlbiNhVa, kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    const uint32_t cons = h.cons(kGuestVintf, 0);
    EXPECT_EQ(VCMDQ_CONS_ERR::get(cons), smmuv3::reg::CERROR_ILL);
    EXPECT_EQ(cons & 0x1F, 0u) << "CONS stays on the CFGI_STE";
    EXPECT_EQ(h.cmdqv.read32(VCMDQ_PAGE0(0) + VCMDQ_GERROR) & 1, 1u);
    // The error maps: LVCMDQ 0 of VINTF 1, global VCMDQ 0, VINTF 1.
    EXPECT_EQ(h.cmdqv.read64(VINTF(kGuestVintf) + VINTF_LVCMDQ_ERR_MAP_64(0)), 1u);
    EXPECT_EQ(h.cmdqv.read32(CMDQ_ERR_MAP(0)), 1u);
    EXPECT_EQ(h.cmdqv.read32(VINTF_ERR_MAP), 1u << kGuestVintf);
    EXPECT_EQ(h.smmu.iotlb_entries(), 1u) << "nothing after the bad command executed";
    EXPECT_EQ(h.cmdqv.queue(0).stats().executed.value(), 0u);
    // The other VM's queue and the main CMDQ keep working.
    const uint32_t prod1 = h.guest_submit(2, 0, kRing1, {kGuestTlbiNhVa, kSyncNone});
    h.wait_idle(2, 0, prod1);
    EXPECT_EQ(h.cons(2, 0), 2u);
    EXPECT_EQ(h.smmu.iotlb_entries(), 0u);
    IOMMUSIM_EXPECT_OK(h.drv.submit({smmuv3::cmd_tlbi_nh_all(st.vmid)}, "main CMDQ"));
    // Acknowledged (GERRORN = GERROR) with the bad entry skipped as Linux's
    // __arm_smmu_cmdq_skip_err does (replaced by a CMD_SYNC): the queue resumes, the maps clear.
    h.memory.write(kRing0, kSyncNone.data(), 16);
    h.cmdqv.write32(VINTFi_LVCMDQ_PAGE0(kGuestVintf, 0) + VCMDQ_GERRORN,
                    h.cmdqv.read32(VINTFi_LVCMDQ_PAGE0(kGuestVintf, 0) + VCMDQ_GERROR));
    h.wait_idle(kGuestVintf, 0, prod, true);
    EXPECT_EQ(h.cons(kGuestVintf, 0), 3u);
    EXPECT_EQ(h.cmdqv.read32(VINTF_ERR_MAP), 0u);
    EXPECT_EQ(h.cmdqv.read64(VINTF(kGuestVintf) + VINTF_LVCMDQ_ERR_MAP_64(0)), 0u);
  });
}

// Each command a guest-owned VINTF refuses (Linux tegra241_guest_vcmdq_supports_cmd admits
// TLBI_NH_ASID, TLBI_NH_VA, ATC_INV; CMD_SYNC is every queue's).
constexpr uint64_t kMsiTrapPa = 0x70003000;   // memory nothing else writes

TEST(SmmuCmdqv, GuestSubsetOnly) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    h.host_setup(kGuestVintf, st.vmid, 0, 0, kRing0);
    h.guest_enable(kGuestVintf, 0);
    const std::vector<smmuv3::CmdWords> refused = {
        smmuv3::cmd_tlbi_s2_ipa(1, 0x1000, true), smmuv3::cmd_tlbi_s12_vmall(1), smmuv3::cmd_tlbi_nsnh_all(),
        smmuv3::cmd_tlbi_nh_all(1), smmuv3::cmd_cfgi_cd(kVsid, 0, true), {0x20, 0} /* TLBI_EL2_ALL */,
        // CMD_SYNC with CS = IRQ would store its MSI data at a host PA the guest chose;
        // a guest queue takes CS = NONE only (and SEV is refused with it).
        smmuv3::cmd_sync(smmuv3::SyncCs::Irq, kMsiTrapPa, 0xDEADBEEF), smmuv3::cmd_sync(smmuv3::SyncCs::Sev)};
    for (const auto& bad : refused) {
      const uint32_t prod = h.guest_submit(kGuestVintf, 0, kRing0, {bad});
      h.wait_idle(kGuestVintf, 0, prod);
      const uint32_t cons = h.cons(kGuestVintf, 0);
      EXPECT_EQ(VCMDQ_CONS_ERR::get(cons), smmuv3::reg::CERROR_ILL) << "opcode 0x" << std::hex << (bad[0] & 0xFF);
      // Skip it and acknowledge, as the guest's driver does.
      h.memory.write(kRing0 + (cons & 0xF) * 16ull, kSyncNone.data(), 16);
      h.cmdqv.write32(VCMDQ_PAGE0(0) + VCMDQ_GERRORN, h.cmdqv.read32(VCMDQ_PAGE0(0) + VCMDQ_GERROR));
      h.wait_idle(kGuestVintf, 0, prod, true);
      EXPECT_EQ(h.cons(kGuestVintf, 0), prod);
    }
    EXPECT_EQ(h.smmu.iotlb_entries(), 1u) << "none of them executed";
    EXPECT_EQ(h.cmdqv.queue(0).stats().errors.value(), refused.size());
    uint32_t msi = 0;
    h.memory.read(kMsiTrapPa, &msi, 4);
    EXPECT_EQ(msi, 0u) << "no MSI write from a guest queue";
  });
}

// A device's ATC: records the Invalidate Requests it gets.
struct RecordingAtc : common::AtsDevice {
  std::vector<common::AtcInvalidation> got;
  common::AtcInvalidationResult invalidate(const common::AtcInvalidation& inv, common::Ps issued) override {
    got.push_back(inv);
    return {true, issued + 1000};
  }
};

TEST(SmmuCmdqv, AtcInvVsidReplacedOrError) {
  CmdqvHarness h;
  RecordingAtc atc;
  h.smmu.attach_ats_device(kSid, &atc);
  h.run_body([&atc](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    h.host_setup(kGuestVintf, st.vmid, 0, 0, kRing0);
    h.guest_enable(kGuestVintf, 0);
    // vSID 7 matches SID_MATCH(0): the request reaches physical SID 1's ATC.
    uint32_t prod = h.guest_submit(kGuestVintf, 0, kRing0, {atc_inv_all(kVsid), kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    EXPECT_EQ(h.cons(kGuestVintf, 0), 2u);
    ASSERT_EQ(atc.got.size(), 1u);
    EXPECT_EQ(atc.got[0].bytes, 0u) << "Size 52: everything";
    EXPECT_EQ(h.cmdqv.sids_replaced(0), 1u);
    // vSID 9 has no SID_MATCH: that queue's error, no request sent.
    prod = h.guest_submit(kGuestVintf, 0, kRing0, {atc_inv_all(9), kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    EXPECT_EQ(VCMDQ_CONS_ERR::get(h.cons(kGuestVintf, 0)), smmuv3::reg::CERROR_ILL);
    EXPECT_EQ(atc.got.size(), 1u);
    // Skip it and acknowledge, as the guest's driver does.
    uint32_t cons = h.cons(kGuestVintf, 0);
    h.memory.write(kRing0 + (cons & 0xF) * 16ull, kSyncNone.data(), 16);
    h.cmdqv.write32(VCMDQ_PAGE0(0) + VCMDQ_GERRORN, h.cmdqv.read32(VCMDQ_PAGE0(0) + VCMDQ_GERROR));
    h.wait_idle(kGuestVintf, 0, prod, true);
    ASSERT_EQ(h.cons(kGuestVintf, 0), prod);
    // The physical SID itself is not a vSID either (the guest cannot name it): an error too.
    prod = h.guest_submit(kGuestVintf, 0, kRing0, {atc_inv_all(kSid), kSyncNone});
    h.wait_idle(kGuestVintf, 0, prod);
    EXPECT_EQ(VCMDQ_CONS_ERR::get(h.cons(kGuestVintf, 0)), smmuv3::reg::CERROR_ILL);
    EXPECT_EQ(atc.got.size(), 1u);
    EXPECT_EQ(h.cmdqv.sids_replaced(0), 1u);
  });
}

// A hypervisor-owned VINTF (the host's VINTF0) runs any command as written.
TEST(SmmuCmdqv, HypOwnVintfRunsEverything) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    h.host_setup(0, st.vmid, 0, 0, kRing0);
    h.cmdqv.write32(VINTF(0) + VINTF_CONFIG, uint32_t(VINTF_HYP_OWN::set(0, 1) | VINTF_EN::set(0, 1)));
    h.guest_enable(0, 0);
    const uint32_t prod = h.guest_submit(0, 0, kRing0, {smmuv3::cmd_cfgi_ste(kSid, true), smmuv3::cmd_tlbi_nh_all(st.vmid), kSyncNone});
    h.wait_idle(0, 0, prod);
    EXPECT_EQ(h.cons(0, 0), 3u);
    EXPECT_EQ(h.smmu.iotlb_entries(), 0u) << "TLBI_NH_ALL with the host's VMID as written";
  });
}

// Two queues execute at once: eight full-IOTLB scans (TLBI_NH_ASID) and a CMD_SYNC on each
// of two VCMDQs take far less than twice one queue's time (the scans meet only on the
// IOTLB's lookup ports).
TEST(SmmuCmdqv, TwoQueuesDoNotSerialise) {
  CmdqvHarness h;
  h.run_body([](CmdqvHarness& h) {
    const auto st = h.nested_stream();
    for (unsigned l = 0; l < 2; ++l) {
      h.host_setup(kGuestVintf, st.vmid, l, l, l ? kRing1 : kRing0);
      h.guest_enable(kGuestVintf, l);
    }
    std::vector<smmuv3::CmdWords> batch(8, kGuestTlbiNhAsid);
    batch.push_back(kSyncNone);
    auto run_on = [&](unsigned queues) {
      const uint64_t t0 = common::to_ps(sc_core::sc_time_stamp());
      std::vector<uint32_t> prod(queues);
      for (unsigned l = 0; l < queues; ++l) prod[l] = h.guest_submit(kGuestVintf, l, l ? kRing1 : kRing0, batch);
      for (unsigned l = 0; l < queues; ++l) h.wait_idle(kGuestVintf, l, prod[l]);
      return common::to_ps(sc_core::sc_time_stamp()) - t0;
    };
    const uint64_t one = run_on(1);
    const uint64_t two = run_on(2);
    EXPECT_EQ(h.cons(kGuestVintf, 0), 18u);
    EXPECT_EQ(h.cons(kGuestVintf, 1), 9u);
    EXPECT_GT(one, 8 * 512'000u) << "each scan takes real time";
    EXPECT_LT(two, one * 3 / 2) << "one queue alone: " << one << " ps, two at once: " << two << " ps";
  });
}

}  // namespace
}  // namespace iommusim::test

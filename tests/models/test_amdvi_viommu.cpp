// AMD IOMMU model: the hardware vIOMMU (models/amdvi/viommu.h, the unmerged HW-vIOMMU
// RFC). A guest's command buffer in "guest RAM" (a GPA range the translation DeviceID's v1
// table maps), read by the IOMMU itself; guest DomainIDs / DeviceIDs rewritten through map
// tables in the IOMMU-private address space (through the IOMMU's own DTE, DeviceID 2).
// The host side is laid out by hand here (the host driver's own vIOMMU support is tested
// with iommufd); every address below is worked out from viommu.h's RFC constants.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "models/amdvi/viommu.h"

namespace iommusim::test {
namespace {

namespace vi = amdvi::viommu;
using amdvi::cmd_completion_wait;
using amdvi::cmd_inv_iommu_pages;
using amdvi::cmd_inv_iotlb_pages;

constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;
constexpr uint32_t kRidA = 0x10, kRidB = 0x20;
constexpr uint16_t kIommuDevid = 2;          // AmdViConfig::viommu_devid
constexpr uint16_t kTransDevid = 0xF0;       // the guests' translation DeviceID
// Guest RAM: GPA [0, 2 MiB) at PA 0x50000000 (the translation DeviceID's v1 table).
constexpr uint64_t kGuestRamPa = 0x50000000ull;
constexpr uint64_t kCmdGpa = 0x10000, kEvtGpa = 0x20000, kSemGpa = 0x30000;
// Private space: each map table region of gids 0 and 1 backed at kPrivPa + its offset.
constexpr uint64_t kPrivPa = 0x60000000ull;

amdvi::AmdViConfig viommu_config() {
  amdvi::AmdViConfig c = amd_config();
  c.caps.viommu = true;
  c.viommu_guests = 2;
  return c;
}

struct ViommuTest {
  AmdHarness& h;
  DomainId guest_ram = 0, priv = 0;

  uint64_t mmio(uint64_t offset, bool write, uint64_t value = 0) { return h.register_access(offset, write, value); }
  void vfctrl(unsigned gid, uint64_t reg, uint64_t v) { mmio(vi::vf_cntl_offset(gid, reg), true, v); }

  // The host's part (RFC iommu_init_viommu, viommu_init_one, viommu_set_translate_dte):
  // the private space mapped through the IOMMU's DTE, guest RAM through the translation
  // DeviceID's, both gids' queues pointing at their buffers; VCmdEn / vIommuEn as asked.
  void setup(bool enable = true) {
    AMD_ASSERT_OK(h.drv.init());
    priv = h.make_domain(DomainKind::Stage2);
    for (unsigned gid = 0; gid < 2; ++gid)
      for (auto t : {vi::MapTable::DomainId, vi::MapTable::DeviceId}) {
        const uint64_t base = vi::map_table_base(t, gid);
        AMD_ASSERT_OK(h.drv.map(priv, base, kPrivPa + (base & 0xFFFFFFFull) + (t == vi::MapTable::DeviceId ? 0x8000000 : 0),
                                vi::map_table_bytes(t), {}, kPage));
      }
    AMD_ASSERT_OK(h.drv.attach(kIommuDevid, std::nullopt, priv));
    guest_ram = h.make_domain(DomainKind::Stage2);
    AMD_ASSERT_OK(h.drv.map(guest_ram, 0, kGuestRamPa, k2M, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kTransDevid, std::nullopt, guest_ram));
    for (unsigned gid = 0; gid < 2; ++gid) {
      const uint64_t off = gid * 0x100000;   // each gid's buffers 1 MiB apart in guest RAM
      vfctrl(gid, vi::VFCTRL_MISC, uint64_t(kTransDevid) << 16);
      vfctrl(gid, vi::VFCTRL_CMD, (kCmdGpa + off) | (1u << 8) | 8);   // Base, En, Len 8 (256 entries)
      vfctrl(gid, vi::VFCTRL_EVT, (kEvtGpa + off) | (1u << 8) | 8);
    }
    if (enable) set_enables(true);
  }
  void set_enables(bool on) {
    uint64_t ctrl = h.iommu.peek_register(amdvi::reg::CONTROL);
    ctrl = amdvi::reg::CTRL_VCMD_EN::set(ctrl, on);
    ctrl = amdvi::reg::CTRL_VIOMMU_EN::set(ctrl, on);
    mmio(amdvi::reg::CONTROL, true, ctrl);
  }
  // Writes commands at the guest's tail in guest RAM and rings the VF tail (no trap).
  uint32_t tail[2] = {0, 0};
  void submit(unsigned gid, const std::vector<amdvi::CmdWords>& cmds) {
    const uint64_t off = gid * 0x100000;
    for (const auto& c : cmds) {
      h.memory.write(kGuestRamPa + off + kCmdGpa + tail[gid] * 16, c.data(), 16);
      ++tail[gid];
    }
    mmio(vi::vf_offset(gid, vi::VF_CMD_TAIL), true, uint64_t(tail[gid]) * 16);
  }
  uint64_t head(unsigned gid) { return h.iommu.peek_register(vi::vf_offset(gid, vi::VF_CMD_HEAD)); }
  void wait_idle(unsigned gid) {
    for (int i = 0; i < 10000 && (head(gid) != uint64_t(tail[gid]) * 16 && !h.iommu.guest_buffer_stopped(gid)); ++i)
      sc_core::wait(10, sc_core::SC_NS);
  }
  uint64_t sem(unsigned gid) { return h.memory.read64(kGuestRamPa + gid * 0x100000 + kSemGpa); }
  amdvi::CmdWords wait_cmd(unsigned gid, uint64_t value) {
    return cmd_completion_wait(true, false, kSemGpa + gid * 0x100000, value);
  }
};

uint64_t reads_for(AmdHarness& h, uint32_t rid, uint64_t iova) {
  const uint64_t t0 = h.iommu.table_reads();
  const AmdDmaResult r = h.dma(rid, std::nullopt, iova, false);
  EXPECT_TRUE(r.ok()) << "rid " << rid;
  return h.iommu.table_reads() - t0;
}

TEST(AmdViViommu, RegistersAndEfr) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    // EFR: the default caps (0x0001000F00004850) plus FEATURE_VIOMMU, bit 55 (0x0080 << 48).
    EXPECT_EQ(h.iommu.peek_register(amdvi::reg::EFR), 0x0081000F00004850ull);
    // VF_CNTL of gid 1 at 0x10000 + 64; a map control reads back 0 (a command, not state).
    v.vfctrl(1, vi::VFCTRL_MISC, 0xF00000ull);
    EXPECT_EQ(h.iommu.peek_register(0x10050), 0xF00000ull);
    // set_domain_mapping(gid 1, hDomID 3, gDomID 5): 5 << 46 | 3 << 14 | bit 63 | bit 0.
    EXPECT_EQ(vi::map_control(5, 3), 0x8001400000000000ull | 0xC001ull);
  });
}

// A guest INVALIDATE_IOMMU_PAGES naming gDomID 5 runs against hDomID (device A's
// DomainID); the DomainID map entry is fetched once (then the map cache hits) from
// 0x20_0000_0000 + 0 * 512 KiB + 5 * 8 = 0x20_0000_0028, whose system address is
// kPrivPa + 0x28, holding V [0] | hDomID << 14.
TEST(AmdViViommu, GuestDomainIdIsRewrittenThroughTheMapTable) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    const DomainId a = h.stage1_device(kRidA, kIova, kPa);
    (void)a;
    const uint16_t hdom = h.drv.device_domain_id(kRidA);
    ASSERT_NE(hdom, 0);
    v.vfctrl(0, vi::VFCTRL_DOMID_MAP, vi::map_control(5, hdom));
    EXPECT_EQ(vi::map_entry_address(vi::MapTable::DomainId, 0, 5), 0x2000000028ull);
    EXPECT_EQ(h.memory.read64(kPrivPa + 0x28), 1ull | (uint64_t(hdom) << 14));
    reads_for(h, kRidA, kIova);
    ASSERT_EQ(reads_for(h, kRidA, kIova), 0u) << "warm";

    v.submit(0, {cmd_inv_iommu_pages(5, kIova, kPage, true, true, 0), v.wait_cmd(0, 1)});
    v.wait_idle(0);
    EXPECT_EQ(v.sem(0), 1u) << "COMPLETION_WAIT stored in guest RAM";
    EXPECT_EQ(h.iommu.map_fetches(), 1u);
    EXPECT_GT(reads_for(h, kRidA, kIova), 0u) << "hDomID's page invalidated";
    // Again: the map cache hits, no fetch.
    reads_for(h, kRidA, kIova);
    v.submit(0, {cmd_inv_iommu_pages(5, kIova, kPage, true, true, 0), v.wait_cmd(0, 2)});
    v.wait_idle(0);
    EXPECT_EQ(v.sem(0), 2u);
    EXPECT_EQ(h.iommu.map_fetches(), 1u);
    EXPECT_EQ(h.iommu.map_cache_stats().hits.value(), 1u);
    EXPECT_GT(reads_for(h, kRidA, kIova), 0u);
    EXPECT_EQ(h.iommu.guest_buffer(0).queue_stats().executed.value(), 4u);
  });
}

// An unmapped gDomID: ILLEGAL_COMMAND_ERROR in that guest's log (at its GPA), the guest
// buffer stops on it, and nothing is invalidated: neither this guest's device nor the
// other guest's (whose gDomID 5 is mapped) loses its IOTLB entry.
TEST(AmdViViommu, UnmappedGuestDomainIdIsAnErrorAndInvalidatesNothing) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    h.stage1_device(kRidA, kIova, kPa);
    h.stage1_device(kRidB, kIova, kPa);
    v.vfctrl(0, vi::VFCTRL_DOMID_MAP, vi::map_control(4, h.drv.device_domain_id(kRidA)));
    v.vfctrl(1, vi::VFCTRL_DOMID_MAP, vi::map_control(5, h.drv.device_domain_id(kRidB)));
    for (uint32_t rid : {kRidA, kRidB}) reads_for(h, rid, kIova);
    // Guest 0 names gDomID 5, mapped for guest 1 only.
    v.submit(0, {cmd_inv_iommu_pages(5, 0, amdvi::kInvAllPagesSize, true, true, 0), v.wait_cmd(0, 1)});
    v.wait_idle(0);
    EXPECT_TRUE(h.iommu.guest_buffer_stopped(0));
    EXPECT_EQ(v.head(0), 0u) << "head left on the bad command";
    EXPECT_EQ(v.sem(0), 0u) << "the COMPLETION_WAIT after it did not run";
    EXPECT_EQ(h.iommu.guest_buffer(0).stats().unmapped_ids.value(), 1u);
    amdvi::EventWords w;
    h.memory.read(kGuestRamPa + kEvtGpa, w.data(), 16);
    const amdvi::EventRecord e = amdvi::decode_event(w);
    EXPECT_EQ(e.code, amdvi::EventCode::IllegalCommandError);
    EXPECT_EQ(e.address, kCmdGpa) << "the command's guest address";
    EXPECT_EQ(h.iommu.peek_register(vi::vf_offset(0, vi::VF_EVT_TAIL)), 16u);
    EXPECT_EQ(reads_for(h, kRidA, kIova), 0u) << "guest 0's own device kept";
    EXPECT_EQ(reads_for(h, kRidB, kIova), 0u) << "the other guest's device kept";
    // The guest fixes the entry and restarts (En 0 then 1): the rest runs.
    h.memory.write(kGuestRamPa + kCmdGpa, v.wait_cmd(0, 7).data(), 16);
    const uint64_t ctl = (kCmdGpa) | 8;
    v.vfctrl(0, vi::VFCTRL_CMD, ctl);
    v.vfctrl(0, vi::VFCTRL_CMD, ctl | (1u << 8));
    v.wait_idle(0);
    EXPECT_FALSE(h.iommu.guest_buffer_stopped(0));
    EXPECT_EQ(v.sem(0), 1u);
  });
}

// VCmdEn / vIommuEn off: the hardware does not read the guest's buffer (no fetch), however
// the tail moves; turning them on runs it.
TEST(AmdViViommu, VcmdEnOffMeansTheBufferIsNotRead) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup(false);
    v.submit(0, {v.wait_cmd(0, 9)});
    sc_core::wait(10, sc_core::SC_US);
    EXPECT_EQ(h.iommu.guest_buffer(0).queue_stats().fetches.value(), 0u);
    EXPECT_EQ(v.head(0), 0u);
    EXPECT_EQ(v.sem(0), 0u);
    v.set_enables(true);
    v.wait_idle(0);
    EXPECT_EQ(h.iommu.guest_buffer(0).queue_stats().fetches.value(), 1u);
    EXPECT_EQ(v.sem(0), 9u);
  });
}

// INVALIDATE_DEVTAB_ENTRY goes to the hypervisor: the queue waits for the handler.
TEST(AmdViViommu, DevtabInvalidationIsHandedToTheHypervisor) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    std::vector<amdvi::CmdWords> seen;
    h.iommu.set_hypervisor(0, [&](const amdvi::CmdWords& c) {
      seen.push_back(c);
      sc_core::wait(1, sc_core::SC_US);   // the VMM's work
    });
    const sc_core::sc_time t0 = sc_core::sc_time_stamp();
    v.submit(0, {amdvi::cmd_inv_devtab_entry(3), v.wait_cmd(0, 1)});
    v.wait_idle(0);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], amdvi::cmd_inv_devtab_entry(3));
    EXPECT_EQ(v.sem(0), 1u);
    EXPECT_GE(sc_core::sc_time_stamp() - t0, sc_core::sc_time(1, sc_core::SC_US));
    EXPECT_EQ(h.iommu.guest_buffer(0).stats().handed_to_hypervisor.value(), 1u);
  });
}

// Known answer: one guest INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT, warm (the translation
// DeviceID's DTE, the two guest pages and the map entry cached), from the config: IOMMU
// clock 1000 MHz (1 ns a cycle), DTE / GPA / map caches 3 lookup cycles, memory 80 ns +
// 1 ns per 32 bytes, cmd decode 2, exec 4, completion_wait 4 cycles; cache scans free here
// (scan_cycles_per_set 0: their cost has tests of its own).
//   fetch (2 entries, 32 B): DTE lookup 3 + GPA lookup 3 + read 81        =  87 ns
//   INVALIDATE_IOMMU_PAGES: decode 2 + exec 4 + map lookup 3              =   9 ns ->  96
//   COMPLETION_WAIT: decode 2 + exec 4 + barrier 4 + store (3 + 3 + 81)   =  97 ns -> 193
TEST(AmdViViommu, GuestInvalidationKnownAnswerLatency) {
  amdvi::AmdViConfig cfg = viommu_config();
  for (common::CacheConfig* c : {&cfg.translation.iotlb, &cfg.translation.s1_walk_cache, &cfg.translation.s2_walk_cache,
                                 &cfg.translation.ipa_cache, &cfg.dte_cache, &cfg.gcr3_cache, &cfg.map_cache})
    c->scan_cycles_per_set = 0;
  AmdHarness h(cfg);
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    h.stage1_device(kRidA, kIova, kPa);
    v.vfctrl(0, vi::VFCTRL_DOMID_MAP, vi::map_control(5, h.drv.device_domain_id(kRidA)));
    std::vector<common::CommandTrace> traces;
    h.iommu.set_guest_command_probe(0, [&](const common::CommandTrace& t) { traces.push_back(t); });
    v.submit(0, {cmd_inv_iommu_pages(5, kIova, kPage, true, true, 0), v.wait_cmd(0, 1)});   // warm-up
    v.wait_idle(0);
    sc_core::wait(1, sc_core::SC_US);
    traces.clear();
    v.submit(0, {cmd_inv_iommu_pages(5, kIova, kPage, true, true, 0), v.wait_cmd(0, 2)});
    const uint64_t t0 = common::now_ps();   // the VF tail write has returned: the doorbell
    v.wait_idle(0);
    sc_core::wait(1, sc_core::SC_US);
    ASSERT_EQ(traces.size(), 2u);
    EXPECT_EQ(traces[0].fetch_start_ps - t0, 0u);
    EXPECT_EQ(traces[0].fetch_end_ps - t0, 87000u);
    EXPECT_EQ(traces[0].exec_end_ps - t0, 96000u);
    EXPECT_EQ(traces[1].exec_end_ps - t0, 193000u);
    EXPECT_EQ(v.sem(0), 2u);
    EXPECT_EQ(h.iommu.map_fetches(), 1u);
  });
}

// Bad guest input: an unknown opcode is ILLEGAL_COMMAND_ERROR, a buffer at a GPA the
// translation DeviceID does not map is COMMAND_HW_ERROR (the fetch aborts); each in the
// guest's log (48882 §2.5 records), the guest buffer stopped, nothing else run.
TEST(AmdViViommu, BadGuestCommandsAndBuffersAreArchitectedErrors) {
  AmdHarness h(viommu_config());
  h.run([](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    v.submit(0, {amdvi::CmdWords{0xF000000000000000ull, 0}, v.wait_cmd(0, 1)});   // opcode 0xF
    v.wait_idle(0);
    EXPECT_TRUE(h.iommu.guest_buffer_stopped(0));
    EXPECT_EQ(v.sem(0), 0u);
    amdvi::EventWords w;
    h.memory.read(kGuestRamPa + kEvtGpa, w.data(), 16);
    EXPECT_EQ(amdvi::decode_event(w).code, amdvi::EventCode::IllegalCommandError);
    EXPECT_EQ(h.iommu.guest_buffer(0).queue_stats().illegal.value(), 1u);
    // Guest 1's buffer at GPA 4 MiB, beyond its 2 MiB of RAM: the fetch aborts.
    v.vfctrl(1, vi::VFCTRL_CMD, 0x400000 | (1u << 8) | 8);
    v.submit(1, {v.wait_cmd(1, 1)});
    v.wait_idle(1);
    EXPECT_TRUE(h.iommu.guest_buffer_stopped(1));
    h.memory.read(kGuestRamPa + 0x100000 + kEvtGpa, w.data(), 16);
    const amdvi::EventRecord e = amdvi::decode_event(w);
    EXPECT_EQ(e.code, amdvi::EventCode::CommandHwError);
    EXPECT_EQ(e.address, 0x400000u);
    EXPECT_EQ(v.sem(1), 0u);
  });
}

// A device whose ATC answers an Invalidate Request `answer_ps` after it was sent.
struct SlowAtc : common::AtsDevice {
  common::Ps answer_ps = 5'000'000;
  common::Ps last_done = 0;
  unsigned requests = 0;
  common::AtcInvalidationResult invalidate(const common::AtcInvalidation&, common::Ps issued) override {
    ++requests;
    last_done = issued + answer_ps;
    return {true, last_done};
  }
};

// Each guest's COMPLETION_WAIT waits for its own INVALIDATE_IOTLB_PAGES' completion. Two
// guests submit an IOTLB invalidation of their gDevID 1 (guest 0's is host DeviceID 0x10,
// guest 1's 0x20, each answering 5 us after its request) and a COMPLETION_WAIT at once:
// whichever barrier runs first must neither wait for nor consume the other guest's request,
// so each store lands at or after its own device's answer.
TEST(AmdViViommu, GuestCompletionWaitWaitsForItsOwnDeviceInvalidation) {
  AmdHarness h(viommu_config());
  SlowAtc atc_a, atc_b;
  h.iommu.attach_ats_device(kRidA, &atc_a);
  h.iommu.attach_ats_device(kRidB, &atc_b);
  h.run([&](AmdHarness& h) {
    ViommuTest v{h};
    v.setup();
    v.vfctrl(0, vi::VFCTRL_DEVID_MAP, vi::map_control(1, kRidA));
    v.vfctrl(1, vi::VFCTRL_DEVID_MAP, vi::map_control(1, kRidB));
    v.submit(0, {cmd_inv_iotlb_pages(1, 0, 0, amdvi::kInvAllPagesSize), v.wait_cmd(0, 1)});
    v.submit(1, {cmd_inv_iotlb_pages(1, 0, 0, amdvi::kInvAllPagesSize), v.wait_cmd(1, 1)});
    common::Ps stored[2] = {0, 0};
    for (int i = 0; i < 100000 && (!stored[0] || !stored[1]); ++i) {
      for (unsigned g = 0; g < 2; ++g)
        if (!stored[g] && v.sem(g) == 1) stored[g] = common::now_ps();
      sc_core::wait(1, sc_core::SC_NS);
    }
    ASSERT_EQ(atc_a.requests, 1u) << "guest 0's gDevID 1 is DeviceID 0x10";
    ASSERT_EQ(atc_b.requests, 1u) << "guest 1's gDevID 1 is DeviceID 0x20";
    ASSERT_TRUE(stored[0] && stored[1]);
    EXPECT_GE(stored[0], atc_a.last_done);
    EXPECT_GE(stored[1], atc_b.last_done);
    EXPECT_FALSE(h.iommu.guest_buffer_stopped(0));
    EXPECT_FALSE(h.iommu.guest_buffer_stopped(1));
  });
}

}  // namespace
}  // namespace iommusim::test

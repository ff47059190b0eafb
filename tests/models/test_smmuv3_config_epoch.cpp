// SMMUv3 model: a configuration fetch that a CFGI overtakes must not fill the config
// cache. The memory is slow (500-cycle latency) so a nested STE+CD fetch (the STE, then
// the CD's IPA through a stage-2 walk, then the CD) outlasts a whole CFGI_STE + CMD_SYNC.
// The fetch runs on the host when its DMA begins and its fill becomes visible only at its
// annotated completion; the CFGI, made in the meantime, removes it.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x12;
constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kNewPa = 0x40400000ull;

// Defect: a fetch that began before CFGI_STE + CMD_SYNC could still fill the config
// cache after the sync completed, so a later DMA used the old STE.
TEST(SmmuConfigEpoch, FetchOvertakenByCfgiDoesNotFillTheConfigCache) {
  memory::MemoryConfig mem;
  mem.latency_cycles = 500;
  driver::Smmuv3DriverConfig dc;
  dc.timing.sync_timeout_us = 1000;
  Harness h(smmu_config(), dc, mem);
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    // Old configuration: nested, IOVA -> IPA kBufferIpa -> PA kGuestRamPa + kBufferIpa.
    auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(s1, kIova, kBufferIpa, kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    h.memory.write64(kGuestRamPa + kBufferIpa, 111);
    // New configuration, set up on another stream first: a stage-1 domain mapping the
    // same IOVA to kNewPa. Its STE words become kRid's STE below.
    const DomainId d = h.stage1_device(kRid + 1, kIova, kNewPa);
    ASSERT_NE(d, 0u);
    h.memory.write64(kNewPa, 222);
    smmuv3::SteWords new_ste{};
    h.memory.read(h.drv.ste_address(kRid + 1), new_ste.data(), 64);

    bool first_done = false;
    sc_core::sc_spawn([&] {
      h.read(kRid, kIova);   // config miss: reads the old STE first
      first_done = true;
    });
    // The STE read is done after ~500 ns; the CD fetch needs several more 500 ns reads.
    sc_core::wait(sc_core::sc_time(600, sc_core::SC_NS));
    ASSERT_FALSE(first_done) << "the first DMA's fetch is still under way";
    // It read the STE and the CD when it began (annotated time); its fill is visible only
    // from its completion, and the CFGI below removes it.
    ASSERT_EQ(h.smmu.config_reads(), 2u);
    // Software rewrites kRid's STE, then CFGI_STE + CMD_SYNC, and waits for completion.
    h.memory.write(h.drv.ste_address(kRid), new_ste.data(), 64);
    IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_cfgi_ste(kRid, true)}, "test"));
    // The invalidation overtook the fetch; the barrier after it orders the DMA that began
    // before it, so that DMA has completed (without filling the cache) when the wait ends.
    ASSERT_TRUE(first_done) << "the barrier must wait for the DMA begun before the invalidation";
    // After the sync, the old STE is gone: this DMA must use the new one.
    const DmaResult r = h.read(kRid, kIova);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, 222u) << "111: the old (nested) STE was used";
  });
}

}  // namespace
}  // namespace iommusim::test

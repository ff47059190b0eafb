// AMD model: a GCR3 fetch that INVALIDATE_DEVTAB_ENTRY overtakes must not fill the GCR3
// cache. The memory is slow (500-cycle latency), so the nested GCR3 fetch (a host walk
// for the GCR3 entry's GPA, then the entry) outlasts a whole INVALIDATE_DEVTAB_ENTRY +
// COMPLETION_WAIT.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x10, kOtherRid = 0x18;
constexpr uint64_t kIova = 0x10000000ull;

// Defect: INVALIDATE_DEVTAB_ENTRY started no epoch, so a GCR3 fetch that began before it
// filled the GCR3 cache after the COMPLETION_WAIT, and a later DMA used the old table.
TEST(AmdConfigEpoch, Gcr3FetchOvertakenByDevtabInvalidationDoesNotFill) {
  memory::MemoryConfig mem;
  mem.latency_cycles = 500;
  driver::AmdViDriverConfig dc;
  dc.timing.sync_timeout_us = 1000;
  AmdHarness h(amd_config(), dc, mem);
  h.run([](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    const auto [s2, s1] = h.make_nested(kPage);
    ASSERT_NE(s1, 0u);
    std::string why;
    const auto s1b = h.drv.create_domain(DomainKind::Nested, s2, &why);
    ASSERT_TRUE(s1b.has_value()) << why;
    // Old: kIova -> GPA kBufferGpa (111). New, set up on another device: kIova -> GPA
    // kBufferGpa + 4 KB (222). Guest RAM GPA g is PA kGuestRamPa + g.
    AMD_ASSERT_OK(h.drv.map(s1, kIova, kBufferGpa, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.map(*s1b, kIova, kBufferGpa + kPage, kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRid, std::nullopt, s1));
    AMD_ASSERT_OK(h.drv.attach(kOtherRid, std::nullopt, *s1b));
    h.memory.write64(kGuestRamPa + kBufferGpa, 111);
    h.memory.write64(kGuestRamPa + kBufferGpa + kPage, 222);
    amdvi::DteWords new_dte{};
    h.memory.read(h.drv.dte_address(kOtherRid), new_dte.data(), 32);

    bool first_done = false;
    sc_core::sc_spawn([&] {
      h.read(kRid, kIova);   // DTE miss, then the GCR3 entry through the host table
      first_done = true;
    });
    // The DTE is read after ~500 ns; the GCR3 fetch needs several more 500 ns reads.
    sc_core::wait(sc_core::sc_time(600, sc_core::SC_NS));
    // Software rewrites kRid's DTE, then INVALIDATE_DEVTAB_ENTRY + COMPLETION_WAIT.
    h.memory.write(h.drv.dte_address(kRid), new_dte.data(), 32);
    AMD_ASSERT_OK(h.drv.submit({amdvi::cmd_inv_devtab_entry(uint16_t(kRid))}, "test"));
    // The invalidation overtook the fetch; the barrier after it orders the DMA that began
    // before it, so that DMA has completed (without filling the cache) when the wait ends.
    ASSERT_TRUE(first_done) << "the barrier must wait for the DMA begun before the invalidation";
    // After the wait, the new DTE and its GCR3 table must be used.
    const AmdDmaResult r = h.read(kRid, kIova);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, 222u) << "111: the GCR3 entry of the old DTE was used";
  });
}

}  // namespace
}  // namespace iommusim::test

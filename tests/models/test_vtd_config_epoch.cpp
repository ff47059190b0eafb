// VT-d model: a context fetch that a context-cache invalidation overtakes must not fill
// the context cache. The memory is slow (500-cycle latency), so the register-based
// invalidation (CCMD, which acts at once) lands between the root-entry read and the
// context-entry read.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <cstdint>

#include <gtest/gtest.h>

#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

constexpr uint32_t kRid = 0x08;   // bus 0, device 1, function 0
constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;

// Defect: a context fetch that began before a context-cache invalidation could fill the
// cache afterwards, so a later DMA used the old root/context entry.
TEST(VtdConfigEpoch, ContextFetchOvertakenByAnInvalidationDoesNotFill) {
  memory::MemoryConfig mem;
  mem.latency_cycles = 500;
  driver::VtdDriverConfig dc;
  dc.timing.sync_timeout_us = 1000;
  Harness h(vtd_config(), dc, mem);
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    const uint64_t root_table = h.iommu.peek_register(vtd::reg::RTADDR) & ~0xFFFull;
    bool first_done = false;
    sc_core::sc_event first_finished;
    sc_core::sc_spawn([&] {
      h.read(kRid, kIova);   // context miss: reads the root entry, then the context entry
      first_done = true;
      first_finished.notify(sc_core::SC_ZERO_TIME);
    });
    // The root entry is read after ~500 ns; the context entry ~500 ns later.
    sc_core::wait(sc_core::sc_time(600, sc_core::SC_NS));
    ASSERT_FALSE(first_done) << "root entry read, context entry under way";
    // It read the root, context, PASID-directory and PASID entries when it began.
    ASSERT_EQ(h.iommu.config_reads(), 4u);
    // Software clears bus 0's root entry and invalidates the context cache globally.
    const uint8_t zero[16] = {};
    h.memory.write(root_table, zero, 16);
    h.mmio_write(vtd::reg::CCMD, (1ull << 63) | (1ull << 61), 8);   // ICC, CIRG = global
    ASSERT_EQ(h.iommu.peek_register(vtd::reg::CCMD) >> 63, 0u);
    ASSERT_FALSE(first_done) << "the invalidation must overtake the fetch";
    sc_core::wait(first_finished);
    // The root entry is not present now: the next DMA must fault, not use the old context.
    EXPECT_EQ(h.read(kRid, kIova).response, IommuResponse::Fault);
    const auto f = h.faults();
    ASSERT_FALSE(f.empty());
    EXPECT_EQ(f.back().reason, uint8_t(FaultReason::SM_ROOT_ENTRY_NOT_PRESENT));
  });
}

}  // namespace
}  // namespace iommusim::vtdtest

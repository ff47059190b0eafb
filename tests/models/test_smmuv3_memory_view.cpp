// The driver's memory view (platforms/driver/memory_view.h): a driver built on a view other
// than the host's physical memory does every load and store of its tables, queues and
// completion words through that view, so a guest driver can run on guest-physical memory.
#include <cstdint>
#include <set>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x10;
constexpr uint64_t kIova = 0x10000000ull;
constexpr uint64_t kPa = 0x40200000ull;

// Passes every access on to the memory, recording where it wrote.
struct RecordingView : driver::MemoryView {
  memory::SparseMemory* mem = nullptr;
  mutable uint64_t reads = 0;
  std::set<uint64_t> written;
  void read(uint64_t addr, void* dst, uint64_t len) const override {
    ++reads;
    mem->read(addr, dst, len);
  }
  void write(uint64_t addr, const void* src, uint64_t len) override {
    written.insert(addr);
    mem->write(addr, src, len);
  }
};

TEST(SmmuMemoryView, TablesQueuesAndPollsGoThroughTheDriversView) {
  RecordingView view;
  Harness h(smmu_config(), driver::Smmuv3DriverConfig{}, memory::MemoryConfig{}, "harness", &view);
  view.mem = &h.memory;
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const uint64_t cmdq = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & ~0x1Full & ((1ull << 52) - 1);
    // init's CFGI_ALL, TLBI_NSNH_ALL and CMD_SYNC went into queue slots 0..2 through the
    // view, and the CMD_SYNC's completion (MSI polling) was read back through it.
    for (uint64_t slot = 0; slot < 3; ++slot) EXPECT_TRUE(view.written.count(cmdq + slot * 16)) << "slot " << slot;
    EXPECT_GT(view.reads, 0u);
    ASSERT_NE(h.stage1_device(kRid, kIova, kPa), 0u);
    EXPECT_TRUE(view.written.count(h.drv.ste_address(kRid))) << "the STE";
    // The SMMU found what the view stored: the DMA translates.
    const DmaResult r = h.read(kRid, kIova + 0x40);
    EXPECT_TRUE(r.ok());
  });
}

}  // namespace
}  // namespace iommusim::test

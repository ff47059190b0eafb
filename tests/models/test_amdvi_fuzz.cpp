// AMD IOMMU model: random-command fuzzing (fuzz_support.h). Random, bit-flipped and valid
// command-buffer entries, corrupted DTEs, GCR3 tables and page tables (v1 host, v2 guest)
// while DMAs run, random register writes. After each batch the command buffer's head
// reaches its tail, or it has stopped with an architected error (ILLEGAL_COMMAND_ERROR or
// COMMAND_HW_ERROR logged, Status.CmdBufRun cleared), within a simulated-time deadline.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn (the DMA thread)
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "fuzz_support.h"

namespace iommusim::test {
namespace {

using fuzz::DmaTarget;
using fuzz::Region;
using fuzz::Rng;
namespace reg = amdvi::reg;

constexpr uint32_t kRidV1 = 0x08, kRidPasid = 0x10, kRidNested = 0x18, kRidV2 = 0x20;

struct AmdOps {
  driver::AmdViDriverConfig dcfg;
  uint64_t cmd_base = 0, cmd_bytes = 0, tail = 0;
  uint64_t control = 0, dev_table = 0, cmd_buf = 0, evt_log = 0, excl_base = 0, excl_limit = 0;
  std::vector<uint16_t> domain_ids{0};

  void setup(AmdHarness& h, std::vector<DmaTarget>& targets) {
    AMD_ASSERT_OK(h.drv.init());
    const DomainId a = h.make_domain(DomainKind::Stage2);   // v1 host table
    AMD_ASSERT_OK(h.drv.map(a, 0x10000, 0x2000000, 4 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidV1, std::nullopt, a));
    const DomainId b = h.make_domain(DomainKind::Stage1);   // v2 guest table, GCR3
    AMD_ASSERT_OK(h.drv.map(b, 0x20000, 0x2100000, 4 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidPasid, std::nullopt, b));
    AMD_ASSERT_OK(h.drv.attach(kRidPasid, 1u, b));
    auto [s2, nested] = h.make_nested(kPage);
    AMD_ASSERT_OK(h.drv.map(nested, 0x30000, kBufferGpa, 4 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidNested, std::nullopt, nested));
    const DomainId c = h.make_domain(DomainKind::Stage1);
    AMD_ASSERT_OK(h.drv.map(c, 0x40000, 0x2200000, 4 * kPage, {}, kPage));
    AMD_ASSERT_OK(h.drv.attach(kRidV2, std::nullopt, c));
    for (uint32_t rid : {kRidV1, kRidPasid, kRidNested, kRidV2}) domain_ids.push_back(h.drv.device_domain_id(rid));
    domain_ids.push_back(h.drv.domain_id_of(s2));
    targets = {{kRidV1, std::nullopt, 0x10000}, {kRidPasid, 1, 0x20000}, {kRidPasid, std::nullopt, 0x20000},
               {kRidNested, std::nullopt, 0x30000}, {kRidV2, std::nullopt, 0x40000}};
    for (const DmaTarget& t : targets) EXPECT_TRUE(h.dma(t.rid, t.pasid, t.iova, false).ok()) << t.rid;
  }

  std::vector<Region> table_regions(AmdHarness&) {
    return {{dcfg.memory.table_pool_base, 1ull << 20}, {kGuestRamPa + dcfg.memory.guest_pool_ipa, 1ull << 20}};
  }
  std::vector<Region> queue_regions(AmdHarness& h) {
    return {{h.drv.cmd_buf_base(), 16ull << dcfg.cmd_buf_log2}, {h.drv.evt_log_base(), 16ull << dcfg.evt_log_log2},
            {h.drv.semaphore_address(), 8}};
  }

  void snapshot(AmdHarness& h) {
    control = h.iommu.peek_register(reg::CONTROL);
    dev_table = h.iommu.peek_register(reg::DEV_TABLE_BASE);
    cmd_buf = h.iommu.peek_register(reg::CMD_BUF_BASE);
    evt_log = h.iommu.peek_register(reg::EVT_LOG_BASE);
    excl_base = h.iommu.peek_register(reg::EXCL_BASE);
    excl_limit = h.iommu.peek_register(reg::EXCL_LIMIT);
    cmd_base = reg::CMD_BUF_BASE_ADDR::get_address(cmd_buf);
    cmd_bytes = reg::log_entries(unsigned(reg::CMD_BUF_LEN::get(cmd_buf))) * reg::kEntryBytes;
  }

  // As Linux's amd_iommu_reset_cmd_buffer / event-log restart: disable, reprogram, zero the
  // pointers, clear the status bits, enable.
  void restore(AmdHarness& h) {
    auto& s = h.drv.mmio;
    fuzz::mmio_write(s, reg::CONTROL, 0, 8);
    fuzz::mmio_write(s, reg::DEV_TABLE_BASE, dev_table, 8);
    fuzz::mmio_write(s, reg::CMD_BUF_BASE, cmd_buf, 8);
    fuzz::mmio_write(s, reg::EVT_LOG_BASE, evt_log, 8);
    fuzz::mmio_write(s, reg::EXCL_BASE, excl_base, 8);
    fuzz::mmio_write(s, reg::EXCL_LIMIT, excl_limit, 8);
    for (uint64_t r : {reg::CMD_BUF_HEAD, reg::CMD_BUF_TAIL, reg::EVT_LOG_HEAD, reg::EVT_LOG_TAIL})
      fuzz::mmio_write(s, r, 0, 8);
    fuzz::mmio_write(s, reg::STATUS, ~0ull, 8);
    fuzz::mmio_write(s, reg::CONTROL, control, 8);
    tail = 0;
  }

  std::vector<uint64_t> registers() {
    using namespace reg;
    return {DEV_TABLE_BASE, CMD_BUF_BASE, EVT_LOG_BASE, CONTROL, CONTROL, EXCL_BASE, EXCL_LIMIT, EFR, PPR_LOG_BASE,
            CMD_BUF_HEAD, CMD_BUF_TAIL, CMD_BUF_TAIL, EVT_LOG_HEAD, EVT_LOG_TAIL, STATUS, PPR_LOG_HEAD, PPR_LOG_TAIL};
  }
  uint64_t mmio_bytes() { return reg::kMmioBytes; }
  uint64_t opcode_mask() { return 0xFull << 60; }

  std::vector<uint64_t> valid_command(Rng& r) {
    using namespace amdvi;
    const uint16_t dev = r.chance(70) ? uint16_t(0x08 * (1 + r.below(4))) : uint16_t(r.bits(16));
    const uint16_t domid = r.chance(80) ? r.pick(domain_ids) : uint16_t(r.bits(16));
    const uint32_t pasid = uint32_t(r.chance(70) ? r.below(2) : r.bits(20));
    const uint64_t addr = r.chance(60) ? (0x10000 + r.below(0x40) * kPage) : r.bits(r.chance(50) ? 48 : 64);
    uint64_t size = r.chance(50) ? kPage * (1 + r.below(16)) : 1 + r.bits(unsigned(r.below(64)));
    if (size == 0) size = 1;
    CmdWords c;
    switch (r.below(9)) {
      case 0: case 1: {
        const uint64_t sa = r.chance(80) ? 0x3000000 + r.below(512) * 8 : r.bits(52) & ~7ull;
        c = cmd_completion_wait(r.chance(60), r.chance(30), sa, r.next(), r.chance(20));
        break;
      }
      case 2: c = cmd_inv_devtab_entry(dev); break;
      case 3: case 4: c = cmd_inv_iommu_pages(domid, addr, size, r.chance(50), r.chance(40), pasid); break;
      case 5: c = cmd_inv_iotlb_pages(dev, uint8_t(r.bits(5)), addr, size, r.chance(40), pasid); break;
      case 6: c = cmd_inv_interrupt_table(dev); break;
      case 7: c = cmd_complete_ppr(dev, pasid, uint8_t(r.bits(4)), uint16_t(r.bits(9)), r.chance(50)); break;
      default: c = cmd_inv_iommu_all(); break;
    }
    if (r.chance(5))
      c = cmd_prefetch_iommu_pages(dev, uint8_t(r.bits(8)), addr & ~0xFFFull, r.chance(50), r.chance(50), r.chance(50),
                                   pasid);
    return {c[0], c[1]};
  }
  std::vector<std::vector<uint64_t>> flush_all() {
    const auto a = amdvi::cmd_inv_iommu_all(), b = amdvi::cmd_completion_wait(false, false);
    return {{a[0], a[1]}, {b[0], b[1]}};
  }

  void push(AmdHarness& h, const std::vector<uint64_t>& w) {
    h.memory.write(cmd_base + tail, w.data(), 16);
    tail = (tail + 16) % cmd_bytes;
  }
  void doorbell(AmdHarness& h) { fuzz::mmio_write(h.drv.mmio, reg::CMD_BUF_TAIL, tail, 8); }
  uint64_t head(AmdHarness& h) { return reg::RING_PTR::get_address(h.iommu.peek_register(reg::CMD_BUF_HEAD)); }
  bool consumed(AmdHarness& h) { return head(h) == tail; }
  // The buffer stopped: CmdBufEn set but CmdBufRun clear (the model logged why).
  bool error(AmdHarness& h, std::string*) {
    return reg::CTRL_CMD_BUF_EN::get(h.iommu.peek_register(reg::CONTROL)) &&
           !reg::STS_CMD_BUF_RUN::get(h.iommu.peek_register(reg::STATUS));
  }
  // The bad command becomes a COMPLETION_WAIT; CmdBufEn 1 -> 0 -> 1 restarts the buffer at
  // its head.
  void recover(AmdHarness& h) {
    const amdvi::CmdWords c = amdvi::cmd_completion_wait(false, false);
    h.memory.write(cmd_base + head(h), c.data(), 16);
    const uint64_t ctrl = h.iommu.peek_register(reg::CONTROL);
    fuzz::mmio_write(h.drv.mmio, reg::CONTROL, reg::CTRL_CMD_BUF_EN::set(ctrl, 0), 8);
    fuzz::mmio_write(h.drv.mmio, reg::CONTROL, ctrl, 8);
  }
  std::string state(AmdHarness& h) {
    return "CMD_BUF_HEAD=" + common::hex(h.iommu.peek_register(reg::CMD_BUF_HEAD)) + " CMD_BUF_TAIL=" +
           common::hex(h.iommu.peek_register(reg::CMD_BUF_TAIL)) + " CONTROL=" +
           common::hex(h.iommu.peek_register(reg::CONTROL)) + " STATUS=" +
           common::hex(h.iommu.peek_register(reg::STATUS)) + " CMD_BUF_BASE=" +
           common::hex(h.iommu.peek_register(reg::CMD_BUF_BASE));
  }
};

class AmdFuzz : public ::testing::TestWithParam<fuzz::FuzzParams> {};

TEST_P(AmdFuzz, QueueNeverStuckModelNeverCrashes) {
  const fuzz::FuzzParams p = GetParam();
  AmdHarness h;
  h.run([&](AmdHarness& h) {
    AmdOps ops;
    fuzz::Fuzzer<AmdHarness, AmdOps> f(h, ops, p, "amdvi");
    f.run();
  }, fuzz::fuzz_limit(p));
}

INSTANTIATE_TEST_SUITE_P(Short, AmdFuzz, ::testing::ValuesIn(fuzz::short_seeds()), fuzz::seed_name);
INSTANTIATE_TEST_SUITE_P(Long, AmdFuzz, ::testing::ValuesIn(fuzz::long_seeds()), fuzz::seed_name);

}  // namespace
}  // namespace iommusim::test

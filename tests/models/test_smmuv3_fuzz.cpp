// SMMUv3 model: random-command fuzzing (fuzz_support.h). Random, bit-flipped and valid
// CMDQ entries, corrupted STEs, CDs and page tables while DMAs run, random register
// writes. After each batch CMDQ_CONS reaches CMDQ_PROD, or GERROR.CMDQ_ERR is active with
// CMDQ_CONS.ERR set, within a simulated-time deadline. SmmuEcmdqFuzz does the same on an
// SMMUv3.3 ECMDQ (ECMDQ 1 of 4): ECMDQ_CONS reaches ECMDQ_PROD, or its CONS.ERR differs
// from PROD.ERRACK with ERR_REASON set; the random register writes reach the ECMDQ
// registers and the control page too.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn (the DMA thread)
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuzz_support.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

using fuzz::DmaTarget;
using fuzz::Region;
using fuzz::Rng;
namespace reg = smmuv3::reg;

constexpr uint32_t kSidS1 = 1, kSidPasid = 2, kSidNested = 3, kSidS2 = 4;

struct SmmuOps {
  driver::Smmuv3DriverConfig dcfg;
  common::WrapRing ring{dcfg.cmdq_log2};
  uint64_t cmdq_base = 0;
  uint32_t prod = 0;
  uint64_t cr0 = 0, cr1 = 0, cr2 = 0, gbpa = 0, strtab = 0, strtab_cfg = 0, cmdq = 0, evtq = 0;
  std::vector<uint16_t> vmids{0}, asids{0};

  void setup(Harness& h, std::vector<DmaTarget>& targets) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId a = h.stage1_device(kSidS1, 0x10000, 0x2000000);
    const DomainId b = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(b, 0x20000, 0x2100000, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSidPasid, 1, b));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSidPasid, std::nullopt, a));
    auto [s2, nested] = h.make_nested(kPage);
    IOMMUSIM_ASSERT_OK(h.drv.map(nested, 0x30000, kBufferIpa, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSidNested, std::nullopt, nested));
    const DomainId c = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(c, 0x40000, 0x2200000, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSidS2, std::nullopt, c));
    for (DomainId d : {a, b, nested, s2, c}) { vmids.push_back(h.drv.vmid_of(d)); asids.push_back(h.drv.asid_of(d)); }
    targets = {{kSidS1, std::nullopt, 0x10000}, {kSidPasid, 1, 0x20000}, {kSidPasid, std::nullopt, 0x10000},
               {kSidNested, std::nullopt, 0x30000}, {kSidS2, std::nullopt, 0x40000}};
    for (const DmaTarget& t : targets) EXPECT_TRUE(h.dma(t.rid, t.pasid, t.iova, false).ok()) << t.rid;
  }

  std::vector<Region> table_regions(Harness&) {
    return {{dcfg.memory.table_pool_base, 1ull << 20}, {kGuestRamPa + dcfg.memory.guest_pool_ipa, 1ull << 20}};
  }
  std::vector<Region> queue_regions(Harness& h) {
    return {{cmdq_base, 16ull << dcfg.cmdq_log2}, {h.drv.evtq_base(), 32ull << dcfg.evtq_log2}};
  }

  void snapshot(Harness& h) {
    cr0 = h.smmu.peek_register(reg::CR0, 4);
    cr1 = h.smmu.peek_register(reg::CR1, 4);
    cr2 = h.smmu.peek_register(reg::CR2, 4);
    gbpa = h.smmu.peek_register(reg::GBPA, 4);
    strtab = h.smmu.peek_register(reg::STRTAB_BASE);
    strtab_cfg = h.smmu.peek_register(reg::STRTAB_BASE_CFG, 4);
    cmdq = h.smmu.peek_register(reg::CMDQ_BASE);
    evtq = h.smmu.peek_register(reg::EVTQ_BASE);
    cmdq_base = reg::Q_BASE_ADDR::get(cmdq) << 5;
  }

  // As a driver resetting the SMMU: disable, reprogram, acknowledge GERROR, empty queues.
  void restore(Harness& h) {
    auto& s = h.drv.mmio;
    fuzz::mmio_write(s, reg::CR0, 0, 4);
    fuzz::mmio_write(s, reg::CR1, cr1, 4);
    fuzz::mmio_write(s, reg::CR2, cr2, 4);
    fuzz::mmio_write(s, reg::GBPA, gbpa | reg::GBPA_UPDATE::set(0, 1), 4);
    fuzz::mmio_write(s, reg::STRTAB_BASE, strtab, 8);
    fuzz::mmio_write(s, reg::STRTAB_BASE_CFG, strtab_cfg, 4);
    fuzz::mmio_write(s, reg::CMDQ_BASE, cmdq, 8);
    fuzz::mmio_write(s, reg::EVTQ_BASE, evtq, 8);
    fuzz::mmio_write(s, reg::GERRORN, h.smmu.peek_register(reg::GERROR, 4), 4);
    prod = uint32_t(h.smmu.peek_register(reg::CMDQ_CONS, 4)) & ring.pointer_mask();
    fuzz::mmio_write(s, reg::CMDQ_PROD, prod, 4);
    const uint64_t evt_prod = h.smmu.peek_register(reg::EVTQ_PROD, 4);
    fuzz::mmio_write(s, reg::EVTQ_CONS, evt_prod, 4);   // drop every event, acknowledge overflow
    fuzz::mmio_write(s, reg::CR0, cr0, 4);
  }

  std::vector<uint64_t> registers() {
    using namespace reg;
    return {IDR0, IDR1, IDR3, IDR5, CR0, CR1, CR2, GBPA, IRQ_CTRL, GERROR, GERRORN, GERROR_IRQ_CFG0, STRTAB_BASE,
            STRTAB_BASE_CFG, CMDQ_BASE, CMDQ_PROD, CMDQ_CONS, EVTQ_BASE, EVTQ_PROD, EVTQ_CONS, EVTQ_PROD_PAGE0,
            EVTQ_CONS_PAGE0};
  }
  uint64_t mmio_bytes() { return reg::kMmioBytes; }
  uint64_t opcode_mask() { return 0xFF; }

  std::vector<uint64_t> valid_command(Rng& r) {
    using namespace smmuv3;
    const uint32_t sid = r.chance(70) ? uint32_t(1 + r.below(4)) : uint32_t(r.bits(r.chance(50) ? 8 : 32));
    const uint32_t ssid = uint32_t(r.chance(70) ? r.below(2) : r.bits(20));
    const uint16_t vmid = r.chance(80) ? r.pick(vmids) : uint16_t(r.bits(16));
    const uint16_t asid = r.chance(80) ? r.pick(asids) : uint16_t(r.bits(16));
    const uint64_t va = r.chance(60) ? (0x10000 + r.below(0x40) * kPage) : r.bits(48) & ~0xFFFull;
    TlbiRange range;
    if (r.chance(40)) { range.num = uint8_t(r.bits(5)); range.scale = uint8_t(r.bits(5)); range.ttl = uint8_t(r.bits(2));
                        range.tg = uint8_t(r.bits(2)); }
    CmdWords c;
    switch (r.below(14)) {
      case 0: c = cmd_cfgi_ste(sid, r.chance(50)); break;
      case 1: c = cmd_cfgi_all(); break;
      case 2: c = cmd_cfgi_ste_range(sid, uint8_t(r.bits(5))); break;
      case 3: c = cmd_cfgi_cd(sid, ssid, r.chance(50)); break;
      case 4: c = cmd_cfgi_cd_all(sid); break;
      case 5: c = cmd_tlbi_nh_all(vmid); break;
      case 6: c = cmd_tlbi_nh_asid(vmid, asid); break;
      case 7: c = cmd_tlbi_nh_va(vmid, asid, va, r.chance(50), range); break;
      case 8: c = cmd_tlbi_nh_vaa(vmid, va, r.chance(50), range); break;
      case 9: c = cmd_tlbi_s12_vmall(vmid); break;
      case 10: c = cmd_tlbi_s2_ipa(vmid, va & ((1ull << 52) - 1), r.chance(50), range); break;
      case 11: c = cmd_tlbi_nsnh_all(); break;
      case 12: c = cmd_prefetch_config(sid); break;
      default: {
        // CMD_SYNC; with CS=IRQ its MSI write lands in a scratch page (or anywhere).
        const uint64_t msi = r.chance(80) ? 0x3000000 + r.below(512) * 4 : r.bits(52) & ~3ull;
        c = cmd_sync(SyncCs(r.below(3)), msi, uint32_t(r.next()));
        break;
      }
    }
    if (r.chance(5)) c = cmd_atc_inv(sid, r.chance(50), ssid, va, uint8_t(r.bits(6)), r.chance(50));
    return {c[0], c[1]};
  }
  std::vector<std::vector<uint64_t>> flush_all() {
    const auto a = smmuv3::cmd_cfgi_all(), b = smmuv3::cmd_tlbi_nsnh_all(), c = smmuv3::cmd_sync(smmuv3::SyncCs::None);
    return {{a[0], a[1]}, {b[0], b[1]}, {c[0], c[1]}};
  }

  void push(Harness& h, const std::vector<uint64_t>& w) {
    h.memory.write(cmdq_base + uint64_t(ring.index(prod)) * 16, w.data(), 16);
    prod = ring.next(prod);
  }
  void doorbell(Harness& h) { fuzz::mmio_write(h.drv.mmio, reg::CMDQ_PROD, prod, 4); }
  uint32_t cons(Harness& h) { return uint32_t(h.smmu.peek_register(reg::CMDQ_CONS, 4)); }
  bool consumed(Harness& h) { return (cons(h) & ring.pointer_mask()) == prod; }
  bool error(Harness& h, std::string*) {
    const bool gerror = (h.smmu.peek_register(reg::GERROR, 4) ^ h.smmu.peek_register(reg::GERRORN, 4)) &
                        reg::GERROR_CMDQ_ERR::set(0, 1);
    return gerror && reg::CMDQ_CONS_ERR::get(cons(h)) != reg::CERROR_NONE;
  }
  // Linux's recovery: the bad entry becomes a CMD_SYNC, then GERRORN acknowledges.
  void recover(Harness& h) {
    const auto sync = smmuv3::cmd_sync(smmuv3::SyncCs::None);
    h.memory.write(cmdq_base + uint64_t(ring.index(cons(h) & ring.pointer_mask())) * 16, sync.data(), 16);
    fuzz::mmio_write(h.drv.mmio, reg::GERRORN, h.smmu.peek_register(reg::GERROR, 4), 4);
  }
  std::string state(Harness& h) {
    return "CMDQ_PROD=" + common::hex(h.smmu.peek_register(reg::CMDQ_PROD, 4)) + " CMDQ_CONS=" + common::hex(cons(h)) +
           " GERROR=" + common::hex(h.smmu.peek_register(reg::GERROR, 4)) +
           " GERRORN=" + common::hex(h.smmu.peek_register(reg::GERRORN, 4)) +
           " CR0=" + common::hex(h.smmu.peek_register(reg::CR0, 4));
  }
};

// The same fuzzing on ECMDQ 1 (the driver, on this thread's CPU 0, uses ECMDQ 0).
struct EcmdqOps : SmmuOps {
  static constexpr unsigned kQueues = 4;
  const uint64_t q = smmuv3::ecmdq_offset(1, kQueues);
  uint64_t ecmdq = 0, ecmdq_ring = 0;

  void snapshot(Harness& h) {
    SmmuOps::snapshot(h);
    ecmdq = h.smmu.peek_register(q + reg::ECMDQ_BASE);
    ecmdq_ring = reg::Q_BASE_ADDR::get(ecmdq) << 5;
  }
  std::vector<Region> queue_regions(Harness& h) {
    std::vector<Region> r = SmmuOps::queue_regions(h);
    r.push_back({h.smmu.peek_register(q + reg::ECMDQ_BASE) & common::mask(51, 5), 16ull << dcfg.cmdq_log2});
    return r;
  }
  // As the series' reset: disabled, BASE and CONS rewritten, the error acknowledged, enabled.
  void restore(Harness& h) {
    SmmuOps::restore(h);
    auto& s = h.drv.mmio;
    const uint32_t c = cons(h);
    const uint32_t errack = uint32_t(reg::ECMDQ_PROD_ERRACK::set(0, reg::ECMDQ_CONS_ERR::get(c)));
    fuzz::mmio_write(s, q + reg::ECMDQ_PROD, errack, 4);
    fuzz::mmio_write(s, q + reg::ECMDQ_BASE, ecmdq, 8);
    prod = c & ring.pointer_mask();
    fuzz::mmio_write(s, q + reg::ECMDQ_CONS, prod, 4);
    fuzz::mmio_write(s, q + reg::ECMDQ_PROD, prod | errack | reg::ECMDQ_PROD_EN::set(0, 1), 4);
  }
  std::vector<uint64_t> registers() {
    std::vector<uint64_t> r = SmmuOps::registers();
    for (uint64_t o : {q + reg::ECMDQ_BASE, q + reg::ECMDQ_PROD, q + reg::ECMDQ_CONS}) r.push_back(o);
    r.push_back(reg::CMDQ_CONTROL_PAGE_BASE(0));
    r.push_back(reg::IDR6);
    return r;
  }
  uint64_t mmio_bytes() { return reg::kMmioBytes + reg::kControlPageBytes; }
  void push(Harness& h, const std::vector<uint64_t>& w) {
    h.memory.write(ecmdq_ring + uint64_t(ring.index(prod)) * 16, w.data(), 16);
    prod = ring.next(prod);
  }
  uint32_t errack(Harness& h) {
    return uint32_t(h.smmu.peek_register(q + reg::ECMDQ_PROD, 4)) & reg::ECMDQ_PROD_ERRACK::set(0, 1);
  }
  void doorbell(Harness& h) {
    fuzz::mmio_write(h.drv.mmio, q + reg::ECMDQ_PROD, prod | errack(h) | reg::ECMDQ_PROD_EN::set(0, 1), 4);
  }
  uint32_t cons(Harness& h) { return uint32_t(h.smmu.peek_register(q + reg::ECMDQ_CONS, 4)); }
  bool consumed(Harness& h) { return (cons(h) & ring.pointer_mask()) == prod; }
  bool error(Harness& h, std::string*) {
    const uint32_t c = cons(h);
    return reg::ECMDQ_CONS_ERR::get(c) != reg::ECMDQ_PROD_ERRACK::get(errack(h)) &&
           reg::ECMDQ_CONS_ERR_REASON::get(c) != reg::CERROR_NONE;
  }
  // The series' recovery: the bad entry becomes a CMD_SYNC, then ERRACK := CONS.ERR.
  void recover(Harness& h) {
    const auto sync = smmuv3::cmd_sync(smmuv3::SyncCs::None);
    const uint32_t c = cons(h);
    h.memory.write(ecmdq_ring + uint64_t(ring.index(c & ring.pointer_mask())) * 16, sync.data(), 16);
    const uint32_t ack = uint32_t(reg::ECMDQ_PROD_ERRACK::set(0, reg::ECMDQ_CONS_ERR::get(c)));
    fuzz::mmio_write(h.drv.mmio, q + reg::ECMDQ_PROD, prod | ack | reg::ECMDQ_PROD_EN::set(0, 1), 4);
  }
  std::string state(Harness& h) {
    return "ECMDQ1_PROD=" + common::hex(h.smmu.peek_register(q + reg::ECMDQ_PROD, 4)) +
           " ECMDQ1_CONS=" + common::hex(cons(h)) + " " + SmmuOps::state(h);
  }
};

// One fuzz run of `Ops` on an SMMU configured as `cfg`.
template <class Ops>
void fuzz_run(const smmuv3::Smmuv3Config& cfg, const char* name, const fuzz::FuzzParams& p) {
  Harness h(cfg);
  h.run([&](Harness& h) {
    Ops ops;
    fuzz::Fuzzer<Harness, Ops> f(h, ops, p, name);
    f.run();
  }, fuzz::fuzz_limit(p));
}

class SmmuFuzz : public ::testing::TestWithParam<fuzz::FuzzParams> {};

TEST_P(SmmuFuzz, QueueNeverStuckModelNeverCrashes) { fuzz_run<SmmuOps>(smmu_config(), "smmuv3", GetParam()); }

INSTANTIATE_TEST_SUITE_P(Short, SmmuFuzz, ::testing::ValuesIn(fuzz::short_seeds()), fuzz::seed_name);
INSTANTIATE_TEST_SUITE_P(Long, SmmuFuzz, ::testing::ValuesIn(fuzz::long_seeds()), fuzz::seed_name);

class SmmuEcmdqFuzz : public ::testing::TestWithParam<fuzz::FuzzParams> {};

TEST_P(SmmuEcmdqFuzz, QueueNeverStuckModelNeverCrashes) {
  smmuv3::Smmuv3Config cfg = smmu_config();
  cfg.ecmdqs = EcmdqOps::kQueues;
  fuzz_run<EcmdqOps>(cfg, "smmuv3 ECMDQ", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Short, SmmuEcmdqFuzz, ::testing::ValuesIn(fuzz::short_seeds()), fuzz::seed_name);
INSTANTIATE_TEST_SUITE_P(Long, SmmuEcmdqFuzz, ::testing::ValuesIn(fuzz::long_seeds()), fuzz::seed_name);

}  // namespace
}  // namespace iommusim::test

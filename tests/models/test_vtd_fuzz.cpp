// VT-d model: random-command fuzzing (fuzz_support.h). Random, bit-flipped and valid
// invalidation-queue descriptors (256-bit queue), corrupted root, context, PASID-directory,
// PASID and page-table entries while DMAs run, random register writes (including the
// register-based CCMD and IOTLB invalidations). After each batch IQH reaches IQT, or
// FSTS.IQE is set, within a simulated-time deadline.
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn (the DMA thread)
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuzz_support.h"
#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

using fuzz::DmaTarget;
using fuzz::Region;
using fuzz::Rng;
namespace reg = vtd::reg;

constexpr uint32_t kRidS1 = 0x08, kRidPasid = 0x10, kRidNested = 0x18, kRidS2 = 0x20;

struct VtdOps {
  driver::VtdDriverConfig dcfg;
  uint64_t iq_base = 0, iq_entries = 0, tail = 0;
  uint64_t iqa = 0, rtaddr = 0, fectl = 0, iectl = 0;
  unsigned fault_records = 0;
  std::vector<uint16_t> dids{0, 1};

  void setup(Harness& h, std::vector<DmaTarget>& targets) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId a = h.stage1_device(kRidS1, 0x10000, 0x2000000);
    const DomainId b = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(b, 0x20000, 0x2100000, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRidPasid, 1u, b));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRidPasid, std::nullopt, a));
    auto [s2, nested] = h.make_nested(kPage);
    IOMMUSIM_ASSERT_OK(h.drv.map(nested, 0x30000, kBufferIpa, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRidNested, std::nullopt, nested));
    const DomainId c = h.make_domain(DomainKind::Stage2);
    IOMMUSIM_ASSERT_OK(h.drv.map(c, 0x40000, 0x2200000, 4 * kPage, {}, kPage));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRidS2, std::nullopt, c));
    for (DomainId d : {a, b, nested, s2, c}) dids.push_back(h.drv.did_of(d));
    targets = {{kRidS1, std::nullopt, 0x10000}, {kRidPasid, 1, 0x20000}, {kRidPasid, std::nullopt, 0x10000},
               {kRidNested, std::nullopt, 0x30000}, {kRidS2, std::nullopt, 0x40000}};
    for (const DmaTarget& t : targets) EXPECT_TRUE(h.dma(t.rid, t.pasid, t.iova, false).ok()) << t.rid;
  }

  std::vector<Region> table_regions(Harness&) {
    return {{dcfg.memory.table_pool_base, 1ull << 20}, {kGuestRamPa + dcfg.memory.guest_pool_ipa, 1ull << 20}};
  }
  std::vector<Region> queue_regions(Harness&) {
    // The queue, then the driver's wait-status words right after it.
    return {{iq_base, (4096ull << dcfg.qi_qs) + 4096}};
  }

  void snapshot(Harness& h) {
    iqa = h.iommu.peek_register(reg::IQA);
    rtaddr = h.iommu.peek_register(reg::RTADDR);
    fectl = h.iommu.peek_register(reg::FECTL, 4);
    iectl = h.iommu.peek_register(reg::IECTL, 4);
    iq_base = reg::IQA_IQA::get(iqa) << 12;
    iq_entries = reg::iq_entries(unsigned(reg::IQA_QS::get(iqa)), reg::IQA_DW::get(iqa));
    fault_records = reg::decode_cap(h.iommu.peek_register(reg::CAP)).num_fault_records;
  }

  // As a driver re-enabling QI and translation: disable, reprogram, clear errors and faults.
  void restore(Harness& h) {
    auto& s = h.drv.mmio;
    const uint64_t qie = reg::GCMD_QIE::set(0, 1), te = reg::GCMD_TE::set(0, 1), srtp = reg::GCMD_SRTP::set(0, 1);
    fuzz::mmio_write(s, reg::GCMD, 0, 4);
    fuzz::mmio_write(s, reg::IQT, 0, 8);
    fuzz::mmio_write(s, reg::IQA, iqa, 8);
    fuzz::mmio_write(s, reg::FECTL, fectl, 4);
    fuzz::mmio_write(s, reg::IECTL, iectl, 4);
    for (unsigned i = 0; i < fault_records; ++i) fuzz::mmio_write(s, reg::frcd(i) + 8, ~0ull, 8);
    fuzz::mmio_write(s, reg::FSTS, ~0ull, 4);
    fuzz::mmio_write(s, reg::RTADDR, rtaddr, 8);
    fuzz::mmio_write(s, reg::GCMD, qie, 4);   // QIE 0 -> 1 resets IQH
    fuzz::mmio_write(s, reg::GCMD, qie | srtp, 4);
    fuzz::mmio_write(s, reg::GCMD, qie | te, 4);
    tail = 0;
  }

  std::vector<uint64_t> registers() {
    using namespace reg;
    std::vector<uint64_t> v{VER, CAP, ECAP, GCMD, GSTS, RTADDR, CCMD, FSTS, FECTL, FEDATA, FEADDR, FEUADDR, IQH,
                            IQT, IQA, ICS, IECTL, IEDATA, IEADDR, IEUADDR, IQER, IVA, IOTLB, IVA, IOTLB, CCMD};
    for (unsigned i = 0; i < fault_records; ++i) { v.push_back(frcd(i)); v.push_back(frcd(i) + 8); }
    return v;
  }
  uint64_t mmio_bytes() { return reg::kMmioBytes; }
  uint64_t opcode_mask() { return 0xE0F; }   // type: qw0[11:9]:qw0[3:0]

  std::vector<uint64_t> valid_command(Rng& r) {
    using namespace vtd;
    const uint16_t did = r.chance(80) ? r.pick(dids) : uint16_t(r.bits(16));
    const uint16_t sid = r.chance(70) ? uint16_t(0x08 * (1 + r.below(4))) : uint16_t(r.bits(16));
    const uint32_t pasid = uint32_t(r.chance(70) ? r.below(2) : r.bits(20));
    const uint8_t am = uint8_t(r.chance(80) ? r.below(10) : r.bits(6));
    uint64_t addr = r.chance(60) ? (0x10000 + r.below(0x40) * kPage) : (r.bits(52) & ~0xFFFull);
    addr = 12 + am >= 64 ? 0 : addr & ~(psi_bytes(am) - 1);
    DescWords d;
    switch (r.below(9)) {
      case 0: d = desc_context_cache(CcGran(1 + r.below(3)), did, sid, uint8_t(r.bits(2))); break;
      case 1: d = desc_iotlb(IotlbGran(1 + r.below(3)), did, addr, am, r.chance(50), r.chance(50), r.chance(50)); break;
      case 2: {
        const unsigned order = unsigned(r.below(53));
        const uint64_t a = order + 12 >= 64 ? 0 : (addr & ~((uint64_t{1} << (12 + order)) - 1));
        d = desc_dev_tlb(sid, sid, uint8_t(r.bits(5)), a, order);
        break;
      }
      case 3: d = desc_iec(IecGran(r.below(2)), uint16_t(r.bits(16)), uint8_t(r.bits(5))); break;
      case 4: case 5: {
        WaitFlags f;
        f.iflag = r.chance(50); f.sw = r.chance(50); f.fn = r.chance(50); f.pd = r.chance(10);
        const uint64_t sa = r.chance(80) ? 0x3000000 + r.below(512) * 4 : r.bits(62) & ~3ull;
        d = desc_inv_wait(f, uint32_t(r.next()), sa);
        break;
      }
      case 6: d = desc_pasid_iotlb(r.chance(50) ? PiotlbGran::Pasid : PiotlbGran::Page, did, pasid, addr, am,
                                   r.chance(50)); break;
      case 7: d = desc_pasid_cache(PcGran(r.chance(34) ? 0 : r.chance(50) ? 1 : 3), did, pasid); break;
      default: {
        const unsigned order = unsigned(r.below(53));
        const uint64_t a = order + 12 >= 64 ? 0 : (addr & ~((uint64_t{1} << (12 + order)) - 1));
        d = desc_pasid_dev_tlb(sid, sid, pasid, uint8_t(r.bits(5)), a, order, r.chance(50));
        break;
      }
    }
    return {d[0], d[1], d[2], d[3]};
  }
  std::vector<std::vector<uint64_t>> flush_all() {
    using namespace vtd;
    std::vector<std::vector<uint64_t>> v;
    for (const DescWords& d : {desc_context_cache(CcGran::Global), desc_pasid_cache(PcGran::Global, 0),
                               desc_iotlb(IotlbGran::Global, 0), desc_inv_wait(WaitFlags{})})
      v.push_back({d[0], d[1], d[2], d[3]});
    return v;
  }

  void push(Harness& h, const std::vector<uint64_t>& w) {
    h.memory.write(iq_base + tail * 32, w.data(), 32);
    tail = (tail + 1) % iq_entries;
  }
  void doorbell(Harness& h) { fuzz::mmio_write(h.drv.mmio, reg::IQT, reg::iq_reg_value(tail, true), 8); }
  uint64_t head(Harness& h) { return reg::iq_index(h.iommu.peek_register(reg::IQH), true); }
  bool consumed(Harness& h) { return head(h) == tail; }
  bool error(Harness& h, std::string*) { return reg::FSTS_IQE::get(h.fsts()); }
  // The bad descriptor becomes a plain wait, then FSTS.IQE is cleared (the queue restarts).
  void recover(Harness& h) {
    const vtd::DescWords d = vtd::desc_inv_wait(vtd::WaitFlags{});
    h.memory.write(iq_base + head(h) * 32, d.data(), 32);
    fuzz::mmio_write(h.drv.mmio, reg::FSTS, reg::FSTS_IQE::set(0, 1), 4);
  }
  std::string state(Harness& h) {
    return "IQH=" + common::hex(h.iommu.peek_register(reg::IQH)) + " IQT=" +
           common::hex(h.iommu.peek_register(reg::IQT)) + " IQA=" + common::hex(h.iommu.peek_register(reg::IQA)) +
           " FSTS=" + common::hex(h.fsts()) + " GSTS=" + common::hex(h.iommu.peek_register(reg::GSTS, 4)) +
           " IQER=" + common::hex(h.iommu.peek_register(reg::IQER));
  }
};

class VtdFuzz : public ::testing::TestWithParam<fuzz::FuzzParams> {};

TEST_P(VtdFuzz, QueueNeverStuckModelNeverCrashes) {
  const fuzz::FuzzParams p = GetParam();
  Harness h;
  h.run([&](Harness& h) {
    VtdOps ops;
    fuzz::Fuzzer<Harness, VtdOps> f(h, ops, p, "vtd");
    f.run();
  }, fuzz::fuzz_limit(p));
}

INSTANTIATE_TEST_SUITE_P(Short, VtdFuzz, ::testing::ValuesIn(fuzz::short_seeds()), fuzz::seed_name);
INSTANTIATE_TEST_SUITE_P(Long, VtdFuzz, ::testing::ValuesIn(fuzz::long_seeds()), fuzz::seed_name);

}  // namespace
}  // namespace iommusim::vtdtest

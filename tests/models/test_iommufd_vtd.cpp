// iommufd objects over the VT-d host driver (platforms/vmm/iommufd.h, VtdDriver as
// NestingOps): each call's errno as Linux's drivers/iommu/iommufd, intel/nested.c and
// intel/pasid.c return it, the PASID entry a nested attach writes, the descriptors a
// guest invalidation becomes, and one DMA through guest-built first-stage tables.
// Expected words are worked out by hand from the VT-d spec (Intel D51397 rev 4.x: §9.6
// scalable-mode PASID table entry, §6.5.2.4 PASID-based IOTLB invalidate, §6.5.2.5
// device-TLB invalidate) and the driver's documented choices (DIDs from 2 in creation
// order; AW 2 = 48-bit four-level second stage).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "platforms/vmm/iommufd.h"
#include "vtd_fixture.h"

namespace iommusim::vtdtest {
namespace {

using driver::HwptArmSmmuv3;
using driver::HwptDataType;
using driver::HwptInvalidateVtdS1;
using driver::HwptVtdS1;
using driver::InvalidateDataType;
using driver::UserData;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;
using Call = vmm::Iommufd::Call;

constexpr uint32_t kRid = 0x10;        // bus 0, devfn 0x10
constexpr uint32_t kOtherRid = 0x11;
constexpr uint64_t kGpaBytes = 2ull << 20;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;
constexpr uint64_t kGuestPml4 = 0x80000;   // GPA of the guest's first-stage root
constexpr uint64_t kAllPages = ~0ull;      // npages of "everything"

HwptVtdS1 s1_config(uint64_t flags, uint32_t addr_width = 48, uint64_t pgtbl = kGuestPml4) {
  HwptVtdS1 s;
  s.flags = flags;
  s.pgtbl_addr = pgtbl;
  s.addr_width = addr_width;
  return s;
}

// One VM on the harness's VT-d unit: a nest-parent HWPT (DID 2) of an IOAS mapping GPA
// [0, 2 MB) at guest RAM, and two devices bound.
struct Vm {
  Iommufd fd;
  uint32_t dev = 0, other = 0, ioas = 0, parent = 0;
  explicit Vm(Harness& h) : fd({vmm::HostIommu{&h.drv, &h.drv}}) {}
  void build() {
    ASSERT_EQ(fd.bind_device(kRid, 0, &dev), Errno::Ok);
    ASSERT_EQ(fd.bind_device(kOtherRid, 0, &other), Errno::Ok);
    ASSERT_EQ(fd.ioas_alloc(0, &ioas), Errno::Ok);
    ASSERT_EQ(fd.ioas_map(ioas, kMapRw, 0, test::kGuestRamPa, kGpaBytes), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, dev, ioas, UserData{}, &parent), Errno::Ok);
  }
  Errno nested(const HwptVtdS1& s, uint32_t* out) {
    return fd.hwpt_alloc(0, dev, parent, UserData{HwptDataType::VtdS1, &s, sizeof(s)}, out);
  }
  Errno invalidate(uint32_t hwpt, std::vector<HwptInvalidateVtdS1> entries, uint32_t* n) {
    *n = uint32_t(entries.size());
    return fd.hwpt_invalidate(hwpt, InvalidateDataType::VtdS1, entries.data(), sizeof(HwptInvalidateVtdS1), n);
  }
};

// Runs `body` in the simulation with the unit up and one VM built on it; `before` runs
// after init and before the VM (to enable ATS before the context entries are written).
void run_with_vm(const std::function<void(Harness&, Vm&)>& body, const vtd::VtdConfig& cfg = vtd_config(),
                 const std::function<void(Harness&)>& before = nullptr) {
  Harness h(cfg);
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    if (before) before(h);
    Vm vm(h);
    vm.build();
    if (!::testing::Test::HasFatalFailure()) body(h, vm);
  });
}

vtd::PasidEntryWords pasid_entry(Harness& h, uint32_t rid) {
  vtd::PasidEntryWords w{};
  h.memory.read(h.drv.pasid_entry_address(rid, 0), w.data(), 64);
  return w;
}

// Catches the descriptors the unit executes, with their words read back from the queue.
struct Probe {
  std::vector<common::CommandTrace> traces;
  explicit Probe(Harness& h) { h.iommu.set_command_probe([this](const common::CommandTrace& t) { traces.push_back(t); }); }
  vtd::DescWords words(Harness& h, size_t i) const {
    const uint32_t slots = (4096u << driver::VtdDriverConfig{}.qi_qs) / 32;
    vtd::DescWords w{};
    h.memory.read(h.drv.queue_base() + uint64_t(traces.at(i).queue_index % slots) * 32, w.data(), 32);
    return w;
  }
  std::vector<uint8_t> types() const {
    std::vector<uint8_t> v;
    for (const auto& t : traces) v.push_back(t.opcode);
    return v;
  }
};

constexpr uint8_t kIotlb = 0x2, kDevTlb = 0x3, kInvWait = 0x5, kPasidIotlb = 0x6, kPasidCache = 0x7;

TEST(IommufdVtd, CallsReturnLinuxErrnos) {
  run_with_vm([](Harness& h, Vm& vm) {
    Iommufd& fd = vm.fd;
    uint32_t id = 0;
    const HwptVtdS1 s1 = s1_config(driver::kVtdS1Sre);
    const UserData vtd{HwptDataType::VtdS1, &s1, sizeof(s1)};
    // No vIOMMU type on VT-d (no get_viommu_size).
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::ArmSmmuv3, vm.dev, vm.parent, &id), Errno::OpNotSupp);
    // iommufd_hwpt_alloc / iommufd_hwpt_nested_alloc.
    EXPECT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, vm.dev, vm.parent, vtd, &id), Errno::Inval)
        << "NEST_PARENT with data";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{HwptDataType::VtdS1, &s1, 0}, &id), Errno::Inval)
        << "a data type without data";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{}, &id), Errno::OpNotSupp) << "no data on a parent";
    uint32_t plain = 0;
    ASSERT_EQ(fd.hwpt_alloc(0, vm.dev, vm.ioas, UserData{}, &plain), Errno::Ok);
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, plain, vtd, &id), Errno::Inval) << "parent not a nest parent";
    // intel_iommu_domain_alloc_nested: another vendor's type EOPNOTSUPP; the copy of a
    // struct shorter than iommu_hwpt_vtd_s1 EINVAL, of a longer one with non-zero bytes
    // past it E2BIG, with zero bytes past it fine.
    HwptArmSmmuv3 arm;
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{HwptDataType::ArmSmmuv3, &arm, sizeof(arm)}, &id),
              Errno::OpNotSupp);
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{HwptDataType::VtdS1, &s1, 20}, &id), Errno::Inval);
    uint8_t longer[32] = {};
    std::copy_n(reinterpret_cast<const uint8_t*>(&s1), sizeof(s1), longer);
    longer[28] = 1;
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{HwptDataType::VtdS1, longer, 32}, &id), Errno::TooBig);
    longer[28] = 0;
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, UserData{HwptDataType::VtdS1, longer, 32}, &id), Errno::Ok);
    // The driver's own flag check (iommufd passes no flag through: its core refuses them).
    driver::DomainId d = 0;
    EXPECT_EQ(h.drv.alloc_nested_on_parent(fd.domain_of(vm.parent), 1, vtd, &d), Errno::OpNotSupp);
    EXPECT_EQ(h.drv.alloc_nested_on_parent(fd.domain_of(plain) + 100, 0, vtd, &d), Errno::Inval) << "no such parent";
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(s1, &nested), Errno::Ok);
    EXPECT_EQ(fd.type_of(nested), vmm::ObjType::HwptNested);

    // IOMMU_HWPT_INVALIDATE (iommufd_hwpt_invalidate, intel_nested_cache_invalidate_user).
    ASSERT_EQ(fd.attach(vm.dev, nested), Errno::Ok);
    uint32_t n = 0;
    const HwptInvalidateVtdS1 page{0x1000, 1, driver::kVtdInvFlagsLeaf, 0};
    EXPECT_EQ(fd.hwpt_invalidate(nested, InvalidateDataType::VtdS1, &page, sizeof(page), &n), Errno::Ok);
    EXPECT_EQ(n, 0u) << "entry_num 0 only checks the type";
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(nested, InvalidateDataType::ArmSmmuv3, &page, sizeof(page), &n), Errno::Inval);
    EXPECT_EQ(n, 0u);
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(nested, InvalidateDataType::VtdS1, &page, 16, &n), Errno::Inval) << "short entry";
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(vm.parent, InvalidateDataType::VtdS1, &page, sizeof(page), &n), Errno::Inval)
        << "a HWPT_PAGING";
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(99, InvalidateDataType::VtdS1, &page, sizeof(page), &n), Errno::NoEnt);
    EXPECT_EQ(vm.invalidate(nested, {{0x1000, 1, 2, 0}}, &n), Errno::OpNotSupp) << "a flag other than LEAF";
    EXPECT_EQ(vm.invalidate(nested, {{0x1000, 1, 0, 1}}, &n), Errno::OpNotSupp) << "__reserved";
    EXPECT_EQ(vm.invalidate(nested, {{0x1800, 1, 0, 0}}, &n), Errno::Inval) << "addr not 4 KiB aligned";
    EXPECT_EQ(vm.invalidate(nested, {{0x1000, kAllPages, 0, 0}}, &n), Errno::Inval) << "everything from addr != 0";
    // The handled count stops at the bad entry; each good one had its own inv_wait.
    Probe probe(h);
    EXPECT_EQ(vm.invalidate(nested, {page, page, {0x1800, 1, 0, 0}, page}, &n), Errno::Inval);
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(probe.types(), (std::vector<uint8_t>{kPasidIotlb, kInvWait, kPasidIotlb, kInvWait}));
    EXPECT_EQ(fd.errors(Call::HwptInvalidate, Errno::Inval), 6u);
    EXPECT_EQ(fd.errors(Call::HwptInvalidate, Errno::OpNotSupp), 2u);
    EXPECT_EQ(fd.destroy(nested), Errno::Busy) << "attached";
  });
}

// intel_pasid_setup_nested's checks, made at attach: address width, and flags the unit
// cannot honour.
TEST(IommufdVtd, AttachChecksAddressWidthAndFlags) {
  vtd::VtdConfig cfg = vtd_config();
  cfg.fs_5level = false;   // CAP.FL5LP clear
  run_with_vm(
      [](Harness& h, Vm& vm) {
        ASSERT_EQ(vm.fd.attach(vm.dev, vm.parent), Errno::Ok);
        const vtd::PasidEntryWords before = pasid_entry(h, kRid);
        uint32_t w39 = 0, w57 = 0, eafe = 0;
        ASSERT_EQ(vm.nested(s1_config(0, 39), &w39), Errno::Ok) << "checked at attach, not at allocation";
        ASSERT_EQ(vm.nested(s1_config(0, 57), &w57), Errno::Ok);
        ASSERT_EQ(vm.nested(s1_config(driver::kVtdS1Eafe), &eafe), Errno::Ok);
        EXPECT_EQ(vm.fd.attach(vm.dev, w39), Errno::Inval);
        EXPECT_EQ(vm.fd.attach(vm.dev, w57), Errno::Inval) << "5-level without CAP.FL5LP";
        EXPECT_EQ(vm.fd.attach(vm.dev, eafe), Errno::Inval) << "EAFE without ECAP.EAFS";
        EXPECT_EQ(pasid_entry(h, kRid), before) << "a refused attach leaves the old entry";
        EXPECT_EQ(vm.fd.users(vm.parent), 4u) << "three nested HWPTs and the attachment";
        // The host may not map or invalidate the guest's domain itself.
        const driver::DomainId d = vm.fd.domain_of(w39);
        EXPECT_FALSE(h.drv.map(d, 0, test::kGuestRamPa, 4096, {}, 4096).ok);
        EXPECT_FALSE(h.drv.invalidate_domain(d).ok);
        EXPECT_FALSE(h.drv.invalidate_range(d, 0, 4096, true).ok);
      },
      cfg);
}

TEST(IommufdVtd, NestedAttachWritesThePasidEntry) {
  run_with_vm([](Harness& h, Vm& vm) {
    // The parent alone on the other device: PGTT 2 (second stage), DID 2.
    ASSERT_EQ(vm.fd.attach(vm.other, vm.parent), Errno::Ok);
    const vtd::PasidEntryWords s2 = pasid_entry(h, kOtherRid);
    // val[0]: P [0], AW 2 [4:2] = 0x8, PGTT 2 [8:6] = 0x80, SSPTPTR [63:12].
    EXPECT_EQ(s2[0] & 0xFFF, 0x089u);
    const uint64_t ssptptr = s2[0] & ~0xFFFull;
    EXPECT_NE(ssptptr, 0u);
    EXPECT_EQ(s2[1], 0x2u);
    // The device on the parent first, so the nested attach replaces a present entry.
    ASSERT_EQ(vm.fd.attach(vm.dev, vm.parent), Errno::Ok);
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(s1_config(driver::kVtdS1Sre | driver::kVtdS1Wpe), &nested), Errno::Ok);
    EXPECT_EQ(h.drv.did_of(vm.fd.domain_of(nested)), 3u) << "its own DID, next after the parent's";
    Probe probe(h);
    ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    // intel_pasid_tear_down_entry of the second-stage entry (DID 2): PASID-selective
    // PASID-cache, domain-selective IOTLB, then the wait; the new entry needs none (CM=0).
    ASSERT_EQ(probe.types(), (std::vector<uint8_t>{kPasidCache, kIotlb, kInvWait}));
    // PASID-cache: type 7, G 1 (PASID-selective) [5:4], DID [31:16], PASID 0 [51:32].
    EXPECT_EQ(probe.words(h, 0)[0], 0x7u | (1u << 4) | (2u << 16));
    // IOTLB: type 2, G 2 (domain-selective) [5:4], DR [7] and DW [6] (CAP.DRD/DWD), DID [31:16].
    EXPECT_EQ(probe.words(h, 1)[0], 0x2u | (2u << 4) | 0xC0u | (2u << 16));
    const vtd::PasidEntryWords w = pasid_entry(h, kRid);
    // val[0]: P, AW 2, PGTT 3 (nested) [8:6] = 0xC0, the parent's SSPTPTR.
    EXPECT_EQ(w[0], ssptptr | 0x0C9u);
    // val[1]: DID 3, PWSNP [23] (ECAP.SMPWCS).
    EXPECT_EQ(w[1], 0x800003u);
    // val[2]: SRE [0], FSPM 0 (4-level) [3:2], WPE [4], FSPTPTR = the guest's GPA.
    EXPECT_EQ(w[2], kGuestPml4 | 0x11u);
    for (unsigned i = 3; i < 8; ++i) EXPECT_EQ(w[i], 0u) << "val[" << i << "]";

    // A 5-level table with WPE but no SRE (WPE only with SRE) replaces it: the teardown
    // now flushes the nested entry's DID 3 (PGTT nested: domain-selective IOTLB).
    uint32_t five = 0;
    ASSERT_EQ(vm.nested(s1_config(driver::kVtdS1Wpe, 57, 0x90000), &five), Errno::Ok);
    probe.traces.clear();
    ASSERT_EQ(vm.fd.attach(vm.dev, five), Errno::Ok);
    ASSERT_EQ(probe.types(), (std::vector<uint8_t>{kPasidCache, kIotlb, kInvWait}));
    EXPECT_EQ(probe.words(h, 0)[0], 0x7u | (1u << 4) | (3u << 16));
    EXPECT_EQ(probe.words(h, 1)[0], 0x2u | (2u << 4) | 0xC0u | (3u << 16));
    const vtd::PasidEntryWords v = pasid_entry(h, kRid);
    EXPECT_EQ(v[1], 0x800004u);
    EXPECT_EQ(v[2], 0x90000u | 0x4u) << "FSPM 1 [3:2]";
    EXPECT_EQ(vm.fd.destroy(nested), Errno::Ok) << "detached by the new attach";
  });
}

TEST(IommufdVtd, GuestRangeBecomesPasidIotlbAndDevTlb) {
  run_with_vm(
      [](Harness& h, Vm& vm) {
        uint32_t nested = 0;
        ASSERT_EQ(vm.nested(s1_config(driver::kVtdS1Sre), &nested), Errno::Ok);
        Probe probe(h);
        ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
        EXPECT_TRUE(probe.traces.empty()) << "a new entry needs no invalidation (CAP.CM=0)";
        uint32_t n = 0;
        ASSERT_EQ(vm.invalidate(nested, {{0x200000, 8, driver::kVtdInvFlagsLeaf, 0}, {0, kAllPages, 0, 0}}, &n),
                  Errno::Ok);
        EXPECT_EQ(n, 2u);
        ASSERT_EQ(probe.types(),
                  (std::vector<uint8_t>{kPasidIotlb, kDevTlb, kInvWait, kPasidIotlb, kDevTlb, kInvWait}));
        // P_IOTLB: type 6, G 3 (page-selective-within-PASID) [5:4], DID 3 [31:16], PASID 0
        // [51:32]; qw1: ADDR [63:12], IH [6] (LEAF), AM 3 [5:0] (8 pages).
        EXPECT_EQ(probe.words(h, 0)[0], 0x30036u);
        EXPECT_EQ(probe.words(h, 0)[1], 0x200043u);
        // Device-TLB (RID_PASID): type 3, SID 0x10 [47:32]; qw1: ADDR with bits 13:12 set
        // (S = 1, 2^3 pages from 0x200000), S [0].
        EXPECT_EQ(probe.words(h, 1)[0], 0x0000001000000003ull);
        EXPECT_EQ(probe.words(h, 1)[1], 0x203001u);
        // Everything: P_IOTLB G 2 (all of the PASID), qw1 0; the device's whole ATC
        // (ADDR bits 62:12 set, S).
        EXPECT_EQ(probe.words(h, 3)[0], 0x30026u);
        EXPECT_EQ(probe.words(h, 3)[1], 0u);
        EXPECT_EQ(probe.words(h, 4)[1], 0x7FFFFFFFFFFFF001ull);
      },
      vtd_config(), [](Harness& h) { h.drv.enable_ats(kRid); });
}

// The guest builds x86 four-level first-stage tables in its RAM; a DMA through the nested
// attachment walks them through the parent's stage 2 (GPA [0, 2 MB) in one 2 MB leaf).
TEST(IommufdVtd, DmaWalksTheGuestTablesThroughStage2) {
  run_with_vm(
      [](Harness& h, Vm& vm) {
        // IOVA 0x80_4020_3000: PML4 index [47:39] 1, PDPT [38:30] 1, PD [29:21] 1, PT [20:12] 3.
        constexpr uint64_t kIova = 0x8040203000ull;
        constexpr uint64_t kPte = 0x7;   // P, R/W, U/S
        auto guest_store = [&](uint64_t gpa, uint64_t v) { h.memory.write64(test::kGuestRamPa + gpa, v); };
        guest_store(kGuestPml4 + 1 * 8, 0x81000 | kPte);
        guest_store(0x81000 + 1 * 8, 0x82000 | kPte);
        guest_store(0x82000 + 1 * 8, 0x83000 | kPte);
        guest_store(0x83000 + 3 * 8, 0x100000 | kPte);
        constexpr uint64_t kMagic = 0x0123456789ABCDEFull;
        guest_store(0x100000 + 0x48, kMagic);
        guest_store(0x101000 + 0x48, ~kMagic);
        uint32_t nested = 0;
        ASSERT_EQ(vm.nested(s1_config(0), &nested), Errno::Ok);
        ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
        const uint64_t t0 = h.iommu.table_reads(), c0 = h.iommu.config_reads();
        DmaResult r = h.read(kRid, kIova + 0x48);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r.data, kMagic) << "GPA 0x100048 = PA 0x40100048";
        // No walk caches: 4 first-stage levels x (3 second-stage reads for the table's GPA,
        // 2 MB leaf + 1 first-stage read) + 3 second-stage reads for the output GPA.
        EXPECT_EQ(h.iommu.table_reads() - t0, 19u);
        EXPECT_EQ(h.iommu.config_reads() - c0, 4u) << "root, context, PASID directory, PASID entry";
        const uint64_t t1 = h.iommu.table_reads();
        ASSERT_TRUE(h.read(kRid, kIova + 0x48).ok());
        EXPECT_EQ(h.iommu.table_reads(), t1) << "an IOTLB hit";
        // The guest remaps the page and invalidates it: the P_IOTLB of DID 3 drops the
        // cached translation, so the next DMA walks again and sees the new page.
        guest_store(0x83000 + 3 * 8, 0x101000 | kPte);
        uint32_t n = 0;
        ASSERT_EQ(vm.invalidate(nested, {{kIova, 1, driver::kVtdInvFlagsLeaf, 0}}, &n), Errno::Ok);
        r = h.read(kRid, kIova + 0x48);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r.data, ~kMagic);
        EXPECT_EQ(h.iommu.table_reads() - t1, 19u);
      },
      vtd_config(/*walk_caches=*/false));
}

}  // namespace
}  // namespace iommusim::vtdtest

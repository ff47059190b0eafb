// iommufd objects over the AMD host driver (platforms/vmm/iommufd.h, AmdViDriver as
// NestingOps): each call's errno as Linux's drivers/iommu/iommufd, amd/iommufd.c and
// amd/nested.c return it, the physical DTE a guest DTE becomes, the commands a guest
// invalidation becomes (the MODEL EXTENSION InvalidateDataType::AmdViommuExt), the host's
// stage-2 fan-out to every hDomID, and one DMA through guest-built v2 tables. Expected
// words are worked out by hand from AMD 48882 field positions (§2.2.2.1 DTE, §2.4.3
// INVALIDATE_IOMMU_PAGES, §2.4.4 INVALIDATE_IOTLB_PAGES) and the driver's documented
// choices (DomainIDs from 1 in allocation order; host tables Mode 4).
#include <cstdint>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "platforms/vmm/iommufd.h"

namespace iommusim::test {
namespace {

using driver::HwptAmdGuest;
using driver::HwptArmSmmuv3;
using driver::HwptDataType;
using driver::InvalidateDataType;
using driver::UserData;
using driver::ViommuAmdInvalidateExt;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;
using Call = vmm::Iommufd::Call;

constexpr uint32_t kRid = 0x10;        // the assigned device's DeviceID
constexpr uint32_t kOtherRid = 0x11;   // a second device
constexpr uint64_t kGdevId = 3;        // the guest's DeviceID for kRid
constexpr uint64_t kGpaBytes = 2ull << 20;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;
constexpr uint64_t kGcr3Gpa = 0x81000;   // the guest's GCR3 table
constexpr uint64_t kPml4Gpa = 0x82000;   // the guest's v2 root (PASID 0's guest CR3)

// The guest's DTE for a v2-only device, gDomID 5 (48882 §2.2.2.1):
// data[0]: V [0], TV [1], GIOV [54], GV [55], GLX 0 [57:56], GCR3[14:12] = 1 [60:58]
//          (0x81000 has bit 12 set), IR [61], IW [62];
// data[1]: DomainID 5 [15:0], GCR3[30:15] = 0x81000 >> 15 = 0x10 [31:16];
// data[2]: GuestPagingMode 0 (4-level) [55:54].
constexpr uint64_t kGdte0 = 0x64C0000000000003ull;
constexpr uint64_t kGdte1 = 0x0000000000100005ull;

HwptAmdGuest gdte(uint64_t d0 = kGdte0, uint64_t d1 = kGdte1, uint64_t d2 = 0) {
  HwptAmdGuest g;
  g.dte[0] = d0;
  g.dte[1] = d1;
  g.dte[2] = d2;
  return g;
}

// One VM on the harness's AMD IOMMU: a nest-parent HWPT (DomainID 1) of an IOAS mapping
// GPA [0, 2 MB) at guest RAM, a vIOMMU on it, both devices bound, kRid's vDEVICE kGdevId.
struct Vm {
  Iommufd fd;
  uint32_t dev = 0, other = 0, ioas = 0, parent = 0, viommu = 0, vdev = 0;
  explicit Vm(AmdHarness& h) : fd({vmm::HostIommu{&h.drv, &h.drv}}) {}
  void build() {
    ASSERT_EQ(fd.bind_device(kRid, 0, &dev), Errno::Ok);
    ASSERT_EQ(fd.bind_device(kOtherRid, 0, &other), Errno::Ok);
    ASSERT_EQ(fd.ioas_alloc(0, &ioas), Errno::Ok);
    ASSERT_EQ(fd.ioas_map(ioas, kMapRw, 0, kGuestRamPa, kGpaBytes), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, dev, ioas, UserData{}, &parent), Errno::Ok);
    ASSERT_EQ(fd.viommu_alloc(0, ViommuType::Amd, dev, parent, &viommu), Errno::Ok);
    ASSERT_EQ(fd.vdevice_alloc(viommu, dev, kGdevId, &vdev), Errno::Ok);
  }
  Errno nested(const HwptAmdGuest& g, uint32_t* out) {
    return fd.hwpt_alloc(0, dev, viommu, UserData{HwptDataType::AmdGuest, &g, sizeof(g)}, out);
  }
  Errno invalidate(std::vector<amdvi::CmdWords> cmds, uint32_t* n) {
    std::vector<ViommuAmdInvalidateExt> e;
    for (const auto& c : cmds) e.push_back(ViommuAmdInvalidateExt{{c[0], c[1]}});
    *n = uint32_t(e.size());
    return fd.hwpt_invalidate(viommu, InvalidateDataType::AmdViommuExt, e.data(), sizeof(ViommuAmdInvalidateExt), n);
  }
};

void run_with_vm(const std::function<void(AmdHarness&, Vm&)>& body, const amdvi::AmdViConfig& cfg = amd_config()) {
  AmdHarness h(cfg);
  h.run([&](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    Vm vm(h);
    vm.build();
    if (!::testing::Test::HasFatalFailure()) body(h, vm);
  });
}

amdvi::DteWords dte_of(AmdHarness& h, uint32_t rid) {
  amdvi::DteWords w{};
  h.memory.read(h.drv.dte_address(rid), w.data(), 32);
  return w;
}

// Catches the commands the IOMMU executes, with their words read back from the buffer.
struct Probe {
  std::vector<common::CommandTrace> traces;
  explicit Probe(AmdHarness& h) { h.iommu.set_command_probe([this](const common::CommandTrace& t) { traces.push_back(t); }); }
  amdvi::CmdWords words(AmdHarness& h, size_t i) const {
    const uint32_t slots = 1u << driver::AmdViDriverConfig{}.cmd_buf_log2;
    amdvi::CmdWords w{};
    h.memory.read(h.drv.cmd_buf_base() + uint64_t(traces.at(i).queue_index % slots) * 16, w.data(), 16);
    return w;
  }
  std::vector<uint8_t> ops() const {
    std::vector<uint8_t> v;
    for (const auto& t : traces) v.push_back(t.opcode);
    return v;
  }
};

constexpr uint8_t kCw = 0x1, kInvDte = 0x2, kInvPages = 0x3, kInvIotlb = 0x4;

// Guest commands (48882 §2.4): INVALIDATE_IOMMU_PAGES of one page, GN=1 PASID 0, PDE;
// u64[0] = opcode [63:60] | DomainID [47:32] | PASID [19:0]; u64[1] = address | GN [2] | PDE [1].
amdvi::CmdWords guest_inv_pages(uint16_t gdom, uint64_t addr) {
  return {(0x3ull << 60) | (uint64_t(gdom) << 32), addr | 0x6};
}

TEST(IommufdAmd, CallsReturnLinuxErrnos) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    Iommufd& fd = vm.fd;
    uint32_t id = 0;
    const HwptAmdGuest g = gdte();
    const UserData amd{HwptDataType::AmdGuest, &g, sizeof(g)};
    // amd_iommufd_get_viommu_size: only IOMMU_VIOMMU_TYPE_AMD (3).
    EXPECT_EQ(static_cast<uint32_t>(ViommuType::Amd), 3u);
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::ArmSmmuv3, vm.dev, vm.parent, &id), Errno::OpNotSupp);
    uint32_t plain = 0;
    ASSERT_EQ(fd.hwpt_alloc(0, vm.dev, vm.ioas, UserData{}, &plain), Errno::Ok);
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::Amd, vm.dev, plain, &id), Errno::Inval) << "not a nest parent";
    // No domain_alloc_nested on AMD: a nested HWPT straight on the parent is EOPNOTSUPP.
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, amd, &id), Errno::OpNotSupp);
    // amd_iommu_alloc_domain_nested: another type EOPNOTSUPP; a short copy EINVAL, a longer
    // one with non-zero bytes past iommu_hwpt_amd_guest E2BIG.
    HwptArmSmmuv3 arm;
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.viommu, UserData{HwptDataType::ArmSmmuv3, &arm, sizeof(arm)}, &id),
              Errno::OpNotSupp);
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.viommu, UserData{HwptDataType::AmdGuest, &g, 24}, &id), Errno::Inval);
    uint8_t longer[40] = {};
    std::copy_n(reinterpret_cast<const uint8_t*>(&g), sizeof(g), longer);
    longer[36] = 1;
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.viommu, UserData{HwptDataType::AmdGuest, longer, 40}, &id), Errno::TooBig);
    driver::DomainId d = 0;
    EXPECT_EQ(h.drv.alloc_nested(1, 1, amd, &d), Errno::OpNotSupp) << "a flag";
    EXPECT_EQ(h.drv.alloc_nested(9, 0, amd, &d), Errno::Inval) << "no such vIOMMU";
    // validate_gdte_nested, field by field.
    EXPECT_EQ(vm.nested(gdte(kGdte0 | (4ull << 9)), &id), Errno::Inval) << "Mode != 0";
    EXPECT_EQ(vm.nested(gdte(kGdte0 | 0x5000), &id), Errno::Inval) << "Host TRP != 0";
    const uint64_t no_gcr3_0 = kGdte0 & ~(7ull << 58), no_gcr3_1 = kGdte1 & ~0xFFFF0000ull;
    EXPECT_EQ(vm.nested(gdte(no_gcr3_0, no_gcr3_1), &id), Errno::Inval) << "V and GV with GCR3 TRP 0";
    EXPECT_EQ(vm.nested(gdte(no_gcr3_0 & ~1ull, no_gcr3_1), &id), Errno::Ok) << "V = 0: no GCR3 needed";
    EXPECT_EQ(vm.nested(gdte(kGdte0, kGdte1, 2ull << 54), &id), Errno::Inval) << "GuestPagingMode 2";
    EXPECT_EQ(vm.nested(gdte(kGdte0 | (3ull << 56)), &id), Errno::Inval) << "GLX 3";
    EXPECT_EQ(vm.nested(gdte(kGdte0, kGdte1, 1ull << 54), &id), Errno::OpNotSupp) << "5-level, EFR.GATS 4-level";
    EXPECT_EQ(fd.errors(Call::HwptAlloc, Errno::Inval), 6u);
    EXPECT_EQ(fd.errors(Call::HwptAlloc, Errno::OpNotSupp), 3u);

    // The MODEL EXTENSION's errnos: wrong type EINVAL; zero entries only probe the type;
    // a short entry EINVAL; an unknown gDomID, a gDevID without vDEVICE or a command a
    // guest may not forward EIO, with nothing handled.
    uint32_t n = 0;
    ViommuAmdInvalidateExt e{};
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, &e, sizeof(e), &n), Errno::Inval);
    n = 0;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::AmdViommuExt, &e, sizeof(e), &n), Errno::Ok);
    n = 1;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::AmdViommuExt, &e, 8, &n), Errno::Inval);
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(gdte(), &nested), Errno::Ok);
    Probe probe(h);
    EXPECT_EQ(vm.invalidate({guest_inv_pages(6, 0x1000)}, &n), Errno::Io) << "gDomID 6 has no hDomID";
    EXPECT_EQ(vm.invalidate({guest_inv_pages(5, 0x1000), amdvi::cmd_inv_iotlb_pages(4, 0, 0x1000, 4096)}, &n),
              Errno::Io) << "gDevID 4 has no vDEVICE: the good first command is not issued either";
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(vm.invalidate({amdvi::cmd_completion_wait(true, false, 0x1000, 1)}, &n), Errno::Io);
    EXPECT_EQ(vm.invalidate({amdvi::cmd_inv_devtab_entry(uint16_t(kGdevId))}, &n), Errno::Io);
    EXPECT_EQ(vm.invalidate({{guest_inv_pages(5, 0x1000)[0] | (1ull << 31), 0x1006}}, &n), Errno::Io)
        << "a reserved bit";
    EXPECT_TRUE(probe.traces.empty()) << "nothing reached the hardware";
    EXPECT_EQ(fd.errors(Call::HwptInvalidate, Errno::Io), 5u);
    // Nested attach: not a nested HWPT EINVAL (iommufd), a PASID-enabled device EINVAL.
    EXPECT_EQ(h.drv.attach_nested(kRid, fd.domain_of(vm.parent)), Errno::Inval);
    EXPECT_EQ(fd.destroy(vm.viommu), Errno::Busy) << "its vDEVICE and nested HWPTs";
  });
}

TEST(IommufdAmd, PasidEnabledDeviceRefusesNestedAttach) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    std::string why;
    const auto v2 = h.drv.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(v2) << why;
    AMD_ASSERT_OK(h.drv.attach(kRid, 7, *v2));   // PASID 7 on a host-built GCR3 table
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(gdte(), &nested), Errno::Ok);
    EXPECT_EQ(vm.fd.attach(vm.dev, nested), Errno::Inval);
  });
}

TEST(IommufdAmd, NestedAttachWritesTheDte) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    // The parent alone on the other device: V, TV, Mode 4 [11:9] = 0x800, IR, IW;
    // DomainID 1 (the first DomainID).
    ASSERT_EQ(vm.fd.attach(vm.other, vm.parent), Errno::Ok);
    const amdvi::DteWords s2 = dte_of(h, kOtherRid);
    const uint64_t host_root = s2[0] & 0x000FFFFFFFFFF000ull;
    EXPECT_NE(host_root, 0u);
    EXPECT_EQ(s2[0], host_root | 0x6000000000000803ull);
    EXPECT_EQ(s2[1], 0x1u);
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(gdte(), &nested), Errno::Ok);
    EXPECT_EQ(h.drv.host_domain_id(1, 5), std::optional<uint16_t>(2)) << "gDomID 5 -> the next DomainID";
    Probe probe(h);
    ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    // amd_iommu_update_dte: INVALIDATE_DEVTAB_ENTRY (DeviceID 0x10 [15:0]), COMPLETION_WAIT.
    ASSERT_EQ(probe.ops(), (std::vector<uint8_t>{kInvDte, kCw}));
    EXPECT_EQ(probe.words(h, 0)[0], (0x2ull << 60) | kRid);
    const amdvi::DteWords w = dte_of(h, kRid);
    // data[0]: V, TV, Mode 4, the parent's host root, GIOV [54], GV [55], GLX 0,
    // GCR3[14:12] = 1 [60:58], IR [61], IW [62].
    EXPECT_EQ(w[0], host_root | 0x64C0000000000803ull);
    // data[1]: DomainID = hDomID 2 [15:0], GCR3[30:15] = 0x10 [31:16].
    EXPECT_EQ(w[1], 0x0000000000100002ull);
    EXPECT_EQ(w[2], 0u) << "GuestPagingMode 0";
    EXPECT_EQ(w[3], 0u);
    EXPECT_EQ(h.drv.device_domain_id(kRid), 2u);

    // A second nested HWPT with the same gDomID shares hDomID 2 (gdomid_array refcount);
    // another gDomID gets the next DomainID.
    uint32_t same = 0, other = 0;
    ASSERT_EQ(vm.nested(gdte(), &same), Errno::Ok);
    ASSERT_EQ(vm.nested(gdte(kGdte0, (kGdte1 & ~0xFFFFull) | 9), &other), Errno::Ok);
    EXPECT_EQ(h.drv.host_domain_id(1, 9), std::optional<uint16_t>(3));
    ASSERT_EQ(vm.fd.attach(vm.dev, same), Errno::Ok);
    EXPECT_EQ(dte_of(h, kRid)[1], 0x0000000000100002ull);
    // Freeing a HWPT drops one reference; the last one drops the gDomID's mapping.
    EXPECT_EQ(vm.fd.destroy(nested), Errno::Ok);
    EXPECT_EQ(h.drv.host_domain_id(1, 5), std::optional<uint16_t>(2)) << "still held by `same`";
    EXPECT_EQ(vm.fd.destroy(other), Errno::Ok);
    EXPECT_EQ(h.drv.host_domain_id(1, 9), std::nullopt);
  });
}

TEST(IommufdAmd, GuestInvalidationsReachTheBufferWithHostIds) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    uint32_t nested = 0, nested9 = 0;
    ASSERT_EQ(vm.nested(gdte(), &nested), Errno::Ok);                                   // gDomID 5 -> 2
    ASSERT_EQ(vm.nested(gdte(kGdte0, (kGdte1 & ~0xFFFFull) | 9), &nested9), Errno::Ok);  // gDomID 9 -> 3
    ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    Probe probe(h);
    uint32_t n = 0;
    // INVALIDATE_IOTLB_PAGES of gDevID 3, one page at 0x5000: u64[0] = opcode 4 [63:60] |
    // QueueID [47:32] | DeviceID [15:0] (both the guest's 3), u64[1] = address.
    const amdvi::CmdWords iotlb{(0x4ull << 60) | (3ull << 32) | 3, 0x5000};
    const amdvi::CmdWords all{0x8ull << 60, 0};   // INVALIDATE_IOMMU_ALL
    ASSERT_EQ(vm.invalidate({guest_inv_pages(5, 0x200000), iotlb, all}, &n), Errno::Ok);
    EXPECT_EQ(n, 3u);
    ASSERT_EQ(probe.ops(), (std::vector<uint8_t>{kInvPages, kInvIotlb, kInvDte, kInvPages, kInvPages, kCw}));
    // gDomID 5 -> hDomID 2 in [47:32]; the rest (address, GN, PDE) as the guest wrote it.
    EXPECT_EQ(probe.words(h, 0)[0], 0x3000000200000000ull);
    EXPECT_EQ(probe.words(h, 0)[1], 0x200006ull);
    // gDevID 3 -> DeviceID 0x10 in DeviceID and QueueID.
    EXPECT_EQ(probe.words(h, 1)[0], 0x4000001000000010ull);
    EXPECT_EQ(probe.words(h, 1)[1], 0x5000ull);
    // INVALIDATE_IOMMU_ALL -> the device-table entry of its vDEVICE (DeviceID 0x10: the
    // cached DTE and GCR3 entries), then every hDomID of the vIOMMU in full: address
    // 0x7FFFFFFFFFFFF000 | S [0] | PDE [1], DomainID 2 then 3.
    EXPECT_EQ(probe.words(h, 2)[0], (0x2ull << 60) | kRid);
    EXPECT_EQ(probe.words(h, 3)[0], 0x3000000200000000ull);
    EXPECT_EQ(probe.words(h, 3)[1], 0x7FFFFFFFFFFFF003ull);
    EXPECT_EQ(probe.words(h, 4)[0], 0x3000000300000000ull);

    // The host unmaps guest memory (a stage-2 change): the parent's DomainID 1 and every
    // hDomID on it (iommu_flush_pages_v1_hdom_ids), GN = 0.
    probe.traces.clear();
    uint64_t unmapped = 0;
    ASSERT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, kGpaBytes, &unmapped), Errno::Ok);
    ASSERT_EQ(probe.ops(), (std::vector<uint8_t>{kInvPages, kInvPages, kInvPages, kCw}));
    EXPECT_EQ(probe.words(h, 0)[0], 0x3000000100000000ull);
    EXPECT_EQ(probe.words(h, 1)[0], 0x3000000200000000ull);
    EXPECT_EQ(probe.words(h, 2)[0], 0x3000000300000000ull);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(probe.words(h, i)[1] & 0x4, 0u) << "GN = 0";
  });
}

// INVALIDATE_IOMMU_ALL on a vIOMMU with no gDomID yet: its vDEVICE's device-table entry
// only (DeviceID 0x10), then the COMPLETION_WAIT; no INVALIDATE_IOMMU_PAGES.
TEST(IommufdAmd, IommuAllBeforeAnyHostDomainDropsOnlyTheDeviceEntries) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    Probe probe(h);
    uint32_t n = 0;
    EXPECT_EQ(vm.invalidate({{0x8ull << 60, 0}}, &n), Errno::Ok);
    EXPECT_EQ(n, 1u);
    ASSERT_EQ(probe.ops(), (std::vector<uint8_t>{kInvDte, kCw}));
    EXPECT_EQ(probe.words(h, 0)[0], (0x2ull << 60) | kRid);
  });
}

// The guest builds its GCR3 table and x86 four-level v2 tables in its RAM; a DMA through
// the nested attachment reads the GCR3 table at its GPA through the host v1 table
// (Control.GCR3TRPMode) and walks the guest tables through stage 2 (GPA [0, 2 MB) at
// kGuestRamPa). Were the GCR3 root taken as a system address, PA 0x81000 holds nothing and
// the DMA would fault.
TEST(IommufdAmd, DmaWalksTheGuestTablesThroughStage2) {
  run_with_vm([](AmdHarness& h, Vm& vm) {
    // IOVA 0x80_4020_3000: PML4 index [47:39] 1, PDPT [38:30] 1, PD [29:21] 1, PT [20:12] 3.
    constexpr uint64_t kIova = 0x8040203000ull;
    constexpr uint64_t kPte = 0x7;   // P, R/W, U/S
    auto guest_store = [&](uint64_t gpa, uint64_t v) { h.memory.write64(kGuestRamPa + gpa, v); };
    guest_store(kGcr3Gpa + 0 * 8, kPml4Gpa | 1);   // PASID 0: GCR3 valid [0], guest CR3
    guest_store(kPml4Gpa + 1 * 8, 0x83000 | kPte);
    guest_store(0x83000 + 1 * 8, 0x84000 | kPte);
    guest_store(0x84000 + 1 * 8, 0x85000 | kPte);
    guest_store(0x85000 + 3 * 8, 0x100000 | kPte);
    constexpr uint64_t kMagic = 0x0123456789ABCDEFull;
    guest_store(0x100000 + 0x48, kMagic);
    guest_store(0x101000 + 0x48, ~kMagic);
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(gdte(), &nested), Errno::Ok);
    ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    AmdDmaResult r = h.read(kRid, kIova + 0x48);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic) << "GPA 0x100048 = PA 0x40100048";
    // The guest remaps the page and invalidates it with gDomID 5: the command reaches the
    // IOMMU as hDomID 2, so the next DMA walks again and sees the new page.
    guest_store(0x85000 + 3 * 8, 0x101000 | kPte);
    ASSERT_TRUE(h.read(kRid, kIova + 0x48).ok());
    EXPECT_EQ(h.read(kRid, kIova + 0x48).data, kMagic) << "cached until invalidated";
    uint32_t n = 0;
    ASSERT_EQ(vm.invalidate({guest_inv_pages(5, kIova)}, &n), Errno::Ok);
    r = h.read(kRid, kIova + 0x48);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, ~kMagic);
    // The guest points PASID 0's GCR3 entry at a second table tree (IOVA -> GPA 0x100000
    // again) and flushes with INVALIDATE_IOMMU_ALL alone (Linux amd_iommu_flush_all_caches):
    // the host's conversion must drop the cached GCR3 entry too, or the walk would resume
    // from the old root and read ~kMagic.
    guest_store(0x86000 + 1 * 8, 0x87000 | kPte);
    guest_store(0x87000 + 1 * 8, 0x88000 | kPte);
    guest_store(0x88000 + 1 * 8, 0x89000 | kPte);
    guest_store(0x89000 + 3 * 8, 0x100000 | kPte);
    guest_store(kGcr3Gpa + 0 * 8, 0x86000 | 1);
    ASSERT_EQ(vm.invalidate({{0x8ull << 60, 0}}, &n), Errno::Ok);
    r = h.read(kRid, kIova + 0x48);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.data, kMagic);
  });
}

}  // namespace
}  // namespace iommusim::test

// The attach topology (topology_fixture.h) on AMD: one DTE holds one host table for all
// PASIDs, so the device whose PASIDs serve two VMs cannot nest (nested_attach_device:
// EINVAL) and gets v2 paging HWPTs on PASIDs 1 and 2 of its GCR3 table. Field positions:
// AMD 48882 §2.2.2.1 DTE, §2.2.6 GCR3 table, §2.4 commands; the counts follow the
// driver's rules (amdvi_driver.h).
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "topology_fixture.h"

namespace iommusim::test {
namespace {

using namespace topology;
using driver::HwptAmdGuest;
using driver::HwptDataType;
using driver::InvalidateDataType;
using driver::ViommuAmdInvalidateExt;

// ---- AMD: D0's PASIDs get paging (v2) HWPTs ----

// The guest's DTE (AMD 48882 §2.2.2.1) for a v2-only device of gDomID `gdom`: V, TV,
// GIOV, GV, GCR3[14:12] = 1, IR, IW; DomainID; GCR3[30:15] = 0x81000 >> 15.
HwptAmdGuest guest_dte(uint16_t gdom) {
  HwptAmdGuest g;
  g.dte[0] = 0x64C0000000000003ull;
  g.dte[1] = 0x0000000000100000ull | gdom;
  return g;
}

void amd_topology(bool ats) {
  AmdHarness h(amd_config());
  h.run([&](AmdHarness& h) {
    AMD_ASSERT_OK(h.drv.init());
    if (ats) {
      h.drv.enable_ats(kD0);
      h.drv.enable_ats(kD1);
    }
    VmCtx a(h), b(h);
    a.build(kRamA, true, ViommuType::Amd);
    b.build(kRamB, false, ViommuType::Amd);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    put_buffers(h);
    // D1 nests in A: gDevID 1, the guest's DTE of gDomID 5 (its PASIDs are in its GCR3 table).
    const HwptAmdGuest g5 = guest_dte(5), g6 = guest_dte(6);
    uint32_t vdev = 0, d1_nested = 0;
    ASSERT_EQ(a.fd.vdevice_alloc(a.viommu, a.d1, 1, &vdev), Errno::Ok);
    ASSERT_EQ(a.fd.hwpt_alloc(0, a.d1, a.viommu, UserData{HwptDataType::AmdGuest, &g5, sizeof(g5)}, &d1_nested),
              Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d1, d1_nested), Errno::Ok);
    // B's work queue: D0/PASID 2 on a v2 paging HWPT of B's IOAS.
    uint32_t pg_a = 0, pg_b = 0, d0_nested = 0;
    b.paging_on_d0(kPasidB, &pg_b);
    // A cannot nest D0: PASID-enabled, its nested attach is EINVAL; a nested domain has no
    // set_dev_pasid, even one allocated with ALLOC_PASID (which the driver does not check).
    ASSERT_EQ(a.fd.vdevice_alloc(a.viommu, a.d0, 2, &vdev), Errno::Ok);
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.viommu,
                              UserData{HwptDataType::AmdGuest, &g6, sizeof(g6)}, &d0_nested),
              Errno::Ok);
    EXPECT_EQ(a.fd.attach(a.d0, d0_nested), Errno::Inval);
    EXPECT_EQ(a.fd.attach(a.d0, d0_nested, kPasidA), Errno::OpNotSupp);
    a.paging_on_d0(kPasidA, &pg_a);

    // D0's DTE: GV with no host table (Mode 0), its GCR3 table holding PASIDs 1 and 2.
    amdvi::DteWords dw{};
    h.memory.read(h.drv.dte_address(kD0), dw.data(), 32);
    const auto dte = amdvi::decode_dte(dw, nullptr);
    ASSERT_TRUE(dte.has_value());
    EXPECT_TRUE(dte->gv);
    EXPECT_EQ(dte->mode, 0u);
    EXPECT_EQ(dte->glx, 0u);
    // One-level GCR3 table (GLX 0): 8-byte entries, GCR3 Base Pointer [51:12], V [0].
    const uint64_t e0 = h.memory.read64(dte->gcr3_root), e1 = h.memory.read64(dte->gcr3_root + 8 * kPasidA),
                   e2 = h.memory.read64(dte->gcr3_root + 8 * kPasidB);
    EXPECT_EQ(e0 & 1, 0u) << "no RID attachment";
    EXPECT_EQ(e1 & 1, 1u);
    EXPECT_EQ(e2 & 1, 1u);
    EXPECT_NE(e1 & ~0xFFFull, e2 & ~0xFFFull);

    expect_pasids_see_their_vm(h, kBufGpa);

    // The guest invalidates a page of D1's domain (gDomID 5, and with ATS its device's
    // IOTLB by gDevID): each converted (hDomID, DeviceID), then COMPLETION_WAIT.
    std::vector<ViommuAmdInvalidateExt> cmds;
    const amdvi::CmdWords pages = amdvi::cmd_inv_iommu_pages(5, 0x1000, 4096, false, true, 0);
    cmds.push_back({{pages[0], pages[1]}});
    if (ats) {
      const amdvi::CmdWords iotlb = amdvi::cmd_inv_iotlb_pages(1, 0, 0x1000, 4096, true, 0);
      cmds.push_back({{iotlb[0], iotlb[1]}});
    }
    Counter<AmdHarness> c(h);
    uint32_t n = uint32_t(cmds.size());
    ASSERT_EQ(a.fd.hwpt_invalidate(a.viommu, InvalidateDataType::AmdViommuExt, cmds.data(), sizeof(cmds[0]), &n),
              Errno::Ok);
    EXPECT_EQ(c.take(), 1u + (ats ? 1 : 0) + 1);
    // IOAS_UNMAP of B, per paging HWPT of B's IOAS: the parent (INVALIDATE_IOMMU_PAGES of
    // its DomainID; vIOMMU B has no hDomIDs, no device sits on the table; COMPLETION_WAIT),
    // then D0/PASID 2's v2 domain (INVALIDATE_IOMMU_PAGES of D0's GCR3 DomainID with PASID
    // 2, INVALIDATE_IOTLB_PAGES of D0/PASID 2 with ATS, COMPLETION_WAIT).
    EXPECT_EQ(unmap_b(h, b, kBufGpa), 2u + 1u + (ats ? 1 : 0) + 1);
  });
}

TEST(IommufdTopology, AmdFallsBackToPagingForSharedDevice) { amd_topology(false); }
TEST(IommufdTopology, AmdFallsBackToPagingForSharedDeviceWithAts) { amd_topology(true); }

}  // namespace
}  // namespace iommusim::test

// The attach topology (topology_fixture.h) on SMMUv3: one STE per StreamID holds one stage
// 2, so the device whose PASIDs serve two VMs cannot nest (arm_smmu_attach_dev_nested:
// EBUSY) and gets paging HWPTs on SSIDs 1 and 2. Field positions: IHI 0070 §5.2 STE, §5.4
// CD, §4 commands; the counts follow the driver's rules (smmuv3_driver.h).
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"
#include "topology_fixture.h"

namespace iommusim::test {
namespace {

using namespace topology;
using driver::HwptArmSmmuv3;
using driver::HwptDataType;
using driver::InvalidateDataType;
using driver::ViommuArmSmmuv3Invalidate;

// ---- SMMUv3: D0's PASIDs get paging HWPTs ----

// A guest's S1 vSTE (IHI 0070 §5.2): V, Config = S1 translate, S1ContextPtr GPA 0x80000,
// S1CDMax 4; dword 1 S1DSS 2, S1CIR/S1COR 1, S1CSH 3, and EATS 1 (full ATS) when asked.
HwptArmSmmuv3 vste(bool ats) {
  HwptArmSmmuv3 v;
  v.ste[0] = 0x1 | (5u << 1) | 0x80000 | (4ull << 59);
  v.ste[1] = 0x2 | (1u << 2) | (1u << 4) | (3u << 6) | (ats ? 1ull << 28 : 0);
  return v;
}

smmuv3::ContextDescriptor cd_of(Harness& h, uint64_t cd_table, uint32_t ssid) {
  smmuv3::CdWords w{};
  h.memory.read(cd_table + uint64_t(ssid) * 64, w.data(), 64);
  const auto cd = smmuv3::decode_cd(w, nullptr);
  return cd ? *cd : smmuv3::ContextDescriptor{};
}

void smmu_topology(bool ats) {
  Harness h;
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    if (ats) {
      h.drv.enable_ats(kD0);
      h.drv.enable_ats(kD1);
    }
    VmCtx a(h), b(h);
    a.build(kRamA, true, ViommuType::ArmSmmuv3);
    b.build(kRamB, false, ViommuType::ArmSmmuv3);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    put_buffers(h);
    const HwptArmSmmuv3 v = vste(ats);
    const UserData data{HwptDataType::ArmSmmuv3, &v, sizeof(v)};
    // D1 nests in A: vSID 1, the guest's vSTE (its guest PASIDs are CDs in its own table).
    uint32_t vdev = 0, d1_nested = 0;
    ASSERT_EQ(a.fd.vdevice_alloc(a.viommu, a.d1, 1, &vdev), Errno::Ok);
    ASSERT_EQ(a.fd.hwpt_alloc(0, a.d1, a.viommu, data, &d1_nested), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d1, d1_nested), Errno::Ok);
    // B's work queue: D0/PASID 2 on a paging HWPT of B's IOAS.
    uint32_t pg_a = 0, pg_b = 0, d0_nested = 0, id = 0;
    b.paging_on_d0(kPasidB, &pg_b);
    // A cannot nest D0: no PASID-capable nested HWPT, and D0's STE serves B's SSID.
    EXPECT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.viommu, data, &id), Errno::OpNotSupp);
    ASSERT_EQ(a.fd.vdevice_alloc(a.viommu, a.d0, 2, &vdev), Errno::Ok);
    ASSERT_EQ(a.fd.hwpt_alloc(0, a.d0, a.viommu, data, &d0_nested), Errno::Ok);
    EXPECT_EQ(a.fd.attach(a.d0, d0_nested), Errno::Busy);
    // The fallback: D0/PASID 1 on a paging HWPT of A's IOAS. Now A's own context refuses
    // the nested RID before the driver sees it (iommufd_hwpt_pasid_compat).
    a.paging_on_d0(kPasidA, &pg_a);
    EXPECT_EQ(a.fd.attach(a.d0, d0_nested), Errno::Inval);

    // D0's STE: stage 1 only (no VMID), a host CD table whose SSIDs 1 and 2 hold the two
    // paging domains' ASIDs and tables; SSID 0 (the RID) has none.
    smmuv3::SteWords sw{};
    h.memory.read(h.drv.ste_address(kD0), sw.data(), 64);
    const auto ste = smmuv3::decode_ste(sw, nullptr);
    ASSERT_TRUE(ste.has_value());
    EXPECT_EQ(ste->config, smmuv3::SteConfig::S1Trans);
    const smmuv3::ContextDescriptor cd0 = cd_of(h, ste->s1_context_ptr, 0), cd1 = cd_of(h, ste->s1_context_ptr, kPasidA),
                                    cd2 = cd_of(h, ste->s1_context_ptr, kPasidB);
    EXPECT_FALSE(cd0.valid);
    ASSERT_TRUE(cd1.valid && cd2.valid);
    EXPECT_EQ(cd1.asid, h.drv.asid_of(a.fd.domain_of(pg_a)));
    EXPECT_EQ(cd2.asid, h.drv.asid_of(b.fd.domain_of(pg_b)));
    EXPECT_NE(cd1.asid, cd2.asid);
    EXPECT_NE(cd1.ttb0, cd2.ttb0);

    // A paging HWPT mirrors its IOAS: IOVA = GPA.
    expect_pasids_see_their_vm(h, kBufGpa);

    // The guest invalidates a page of D1's domain (and, with ATS, its ATC): the host queue
    // gets the converted commands and one CMD_SYNC (arm_vsmmu_cache_invalidate).
    std::vector<ViommuArmSmmuv3Invalidate> cmds;
    const smmuv3::CmdWords tlbi = smmuv3::cmd_tlbi_nh_va(0, 7, 0x1000, true);
    cmds.push_back({{tlbi[0], tlbi[1]}});
    if (ats) {
      const smmuv3::CmdWords atc = smmuv3::cmd_atc_inv(1, false, 0, 0x1000, 0, false);
      cmds.push_back({{atc[0], atc[1]}});
    }
    Counter<Harness> c(h);
    uint32_t n = uint32_t(cmds.size());
    ASSERT_EQ(a.fd.hwpt_invalidate(a.viommu, InvalidateDataType::ArmSmmuv3, cmds.data(), sizeof(cmds[0]), &n),
              Errno::Ok);
    EXPECT_EQ(c.take(), 1u + (ats ? 1 : 0) + 1);
    // IOAS_UNMAP of B, per paging HWPT of B's IOAS: the parent (TLBI_S2_IPA of the 2 MB
    // leaf, TLBI_NH_ALL of B's VMID for the combined entries, no ATS master on it,
    // CMD_SYNC), then D0/PASID 2's (TLBI_NH_VA of its ASID, CMD_ATC_INV of D0 SSID 2 with
    // ATS, CMD_SYNC).
    EXPECT_EQ(unmap_b(h, b, kBufGpa), 3u + 1u + (ats ? 1 : 0) + 1);
  });
}

TEST(IommufdTopology, SmmuFallsBackToPagingForSharedDevice) { smmu_topology(false); }
TEST(IommufdTopology, SmmuFallsBackToPagingForSharedDeviceWithAts) { smmu_topology(true); }

}  // namespace
}  // namespace iommusim::test

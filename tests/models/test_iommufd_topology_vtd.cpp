// The attach topology (topology_fixture.h) on VT-d: every PASID entry has its own PGTT, DID
// and stage-2 pointer, so everything nests (intel_nested_set_dev_pasid). Field positions:
// VT-d spec (Intel D51397 rev 4.x) §9.6 scalable-mode PASID table entry; the counts follow
// the driver's rules (vtd_driver.h, Linux cache.c).
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "vtd_fixture.h"
#include "topology_fixture.h"

namespace iommusim::test {
namespace {

using namespace topology;
using driver::HwptDataType;
using driver::HwptInvalidateVtdS1;
using driver::HwptVtdS1;
using driver::InvalidateDataType;

// ---- VT-d: everything nests ----

// A guest's x86 four-level first-stage table at GPA 0x80000 of `ram` mapping IOVA
// kVtdIova to GPA kBufGpa (PML4 [47:39] 1, PDPT [38:30] 1, PD [29:21] 1, PT [20:12] 3).
constexpr uint64_t kVtdIova = 0x8040203000ull, kGuestPml4 = 0x80000;
template <class H>
void guest_first_stage(H& h, uint64_t ram) {
  constexpr uint64_t kPte = 0x7;   // P, R/W, U/S
  h.memory.write64(ram + kGuestPml4 + 1 * 8, 0x81000 | kPte);
  h.memory.write64(ram + 0x81000 + 1 * 8, 0x82000 | kPte);
  h.memory.write64(ram + 0x82000 + 1 * 8, 0x83000 | kPte);
  h.memory.write64(ram + 0x83000 + 3 * 8, kBufGpa | kPte);
}

// The fields of a scalable-mode PASID entry (VT-d spec §9.6) the topology sets apart.
struct PasidFields {
  unsigned pgtt = 0;
  uint64_t ssptptr = 0, fsptptr = 0;
  uint16_t did = 0;
};
PasidFields pasid_fields(vtdtest::Harness& h, uint32_t rid, uint32_t pasid) {
  vtd::PasidEntryWords w{};
  h.memory.read(h.drv.pasid_entry_address(rid, pasid), w.data(), 64);
  // val[0]: PGTT [8:6], SSPTPTR [63:12]; val[1]: DID [15:0]; val[2]: FSPTPTR [63:12].
  return {unsigned((w[0] >> 6) & 7), w[0] & ~0xFFFull, w[2] & ~0xFFFull, uint16_t(w[1] & 0xFFFF)};
}

void vtd_topology(bool ats) {
  vtdtest::Harness h(vtdtest::vtd_config());
  h.run([&](vtdtest::Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    if (ats) {
      h.drv.enable_ats(kD0);
      h.drv.enable_ats(kD1);
    }
    VmCtx a(h), b(h);
    a.build(kRamA, true, std::nullopt);
    b.build(kRamB, false, std::nullopt);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    guest_first_stage(h, kRamA);
    guest_first_stage(h, kRamB);
    put_buffers(h);
    HwptVtdS1 s1;
    s1.pgtbl_addr = kGuestPml4;
    s1.addr_width = 48;
    const UserData data{HwptDataType::VtdS1, &s1, sizeof(s1)};

    // D1's RID on a nested HWPT made without IOMMU_HWPT_ALLOC_PASID: a PASID of D1 is then
    // refused (iommufd_hwpt_pasid_compat), so the VMM makes the RID's HWPT PASID-capable.
    uint32_t d1_plain = 0, d1_rid = 0, d1_proc = 0, d0_a = 0, d0_b = 0;
    ASSERT_EQ(a.fd.hwpt_alloc(0, a.d1, a.parent, data, &d1_plain), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d1, d1_plain), Errno::Ok);
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d1, a.parent, data, &d1_proc), Errno::Ok);
    EXPECT_EQ(a.fd.attach(a.d1, d1_proc, kGuestPasid), Errno::Inval) << "the RID's HWPT is not PASID-capable";
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d1, a.parent, data, &d1_rid), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d1, d1_rid), Errno::Ok) << "replaces the RID's HWPT";
    ASSERT_EQ(a.fd.attach(a.d1, d1_proc, kGuestPasid), Errno::Ok);
    EXPECT_EQ(a.fd.users(d1_plain), 0u);
    EXPECT_EQ(a.fd.attached_to(a.d1), d1_rid);
    EXPECT_EQ(a.fd.attached_to(a.d1, kGuestPasid), d1_proc);
    // A PASID entry takes paging HWPTs too: first stage (PGTT 1) for a plain one, second
    // stage (PGTT 2) for a nest parent, each with its domain's DID; each attach replaces
    // the PASID's entry.
    uint32_t fs = 0, ss = 0;
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.ioas, UserData{}, &fs), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d0, fs, kPasidA), Errno::Ok);
    EXPECT_EQ(pasid_fields(h, kD0, kPasidA).pgtt, 1u);
    EXPECT_EQ(pasid_fields(h, kD0, kPasidA).did, h.drv.did_of(a.fd.domain_of(fs)));
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocNestParent | vmm::kHwptAllocPasid, a.d0, a.ioas, UserData{}, &ss),
              Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d0, ss, kPasidA), Errno::Ok);
    EXPECT_EQ(pasid_fields(h, kD0, kPasidA).pgtt, 2u);
    EXPECT_EQ(pasid_fields(h, kD0, kPasidA).did, h.drv.did_of(a.fd.domain_of(ss)));
    EXPECT_EQ(a.fd.users(fs), 0u);
    // D0's work queues: PASID 1 nested over A's parent, PASID 2 over B's.
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.parent, data, &d0_a), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d0, d0_a, kPasidA), Errno::Ok);
    ASSERT_EQ(b.fd.hwpt_alloc(vmm::kHwptAllocPasid, b.d0, b.parent, data, &d0_b), Errno::Ok);
    ASSERT_EQ(b.fd.attach(b.d0, d0_b, kPasidB), Errno::Ok);

    // Every entry nests (PGTT 3) with its HWPT's own DID; A's three share A's stage 2,
    // D0/PASID 2 has B's.
    const PasidFields e_d1 = pasid_fields(h, kD1, 0), e_proc = pasid_fields(h, kD1, kGuestPasid),
                      e_a = pasid_fields(h, kD0, kPasidA), e_b = pasid_fields(h, kD0, kPasidB);
    for (const PasidFields* e : {&e_d1, &e_proc, &e_a, &e_b}) {
      EXPECT_EQ(e->pgtt, 3u);
      EXPECT_EQ(e->fsptptr, kGuestPml4);
    }
    EXPECT_EQ(e_d1.did, h.drv.did_of(a.fd.domain_of(d1_rid)));
    EXPECT_EQ(e_proc.did, h.drv.did_of(a.fd.domain_of(d1_proc)));
    EXPECT_EQ(e_a.did, h.drv.did_of(a.fd.domain_of(d0_a)));
    EXPECT_EQ(e_b.did, h.drv.did_of(b.fd.domain_of(d0_b)));
    EXPECT_EQ(std::set<uint16_t>({e_d1.did, e_proc.did, e_a.did, e_b.did}).size(), 4u);
    EXPECT_EQ(e_proc.ssptptr, e_d1.ssptptr);
    EXPECT_EQ(e_a.ssptptr, e_d1.ssptptr);
    EXPECT_NE(e_b.ssptptr, e_a.ssptptr);
    // D0 has no RID attachment: its RID_PASID entry is not present.
    vtd::PasidEntryWords rid_entry{};
    h.memory.read(h.drv.pasid_entry_address(kD0, 0), rid_entry.data(), 64);
    EXPECT_EQ(rid_entry[0] & 1, 0u);

    expect_pasids_see_their_vm(h, kVtdIova);

    // The guest invalidates one page of D1's RID domain: P_IOTLB of that nested DID for
    // its one attachment (D1, RID_PASID), the dev-TLB of (D1, RID_PASID) with ATS, the
    // inv_wait.
    Counter<vtdtest::Harness> c(h);
    HwptInvalidateVtdS1 inv{kVtdIova, 1, driver::kVtdInvFlagsLeaf, 0};
    uint32_t n = 1;
    ASSERT_EQ(a.fd.hwpt_invalidate(d1_rid, InvalidateDataType::VtdS1, &inv, sizeof(inv), &n), Errno::Ok);
    EXPECT_EQ(c.take(), 1u + (ats ? 1 : 0) + 1);
    // IOAS_UNMAP of B: B's only paging HWPT is its parent: IOTLB PSI of the parent's DID, of
    // the one nested DID on it that is attached (D0/PASID 2), D0/PASID 2's dev-TLB with
    // ATS, the inv_wait.
    EXPECT_EQ(unmap_b(h, b, kVtdIova), 2u + (ats ? 1 : 0) + 1);
  });
}

TEST(IommufdTopology, VtdNestsEveryPasid) { vtd_topology(false); }
TEST(IommufdTopology, VtdNestsEveryPasidWithAts) { vtd_topology(true); }

// With driver.vtd.rid_pasid = 3 the RID's requests use PASID entry 3, so a PASID attach of
// PASID 3 would replace the RID's attachment: the host driver refuses it (EINVAL through
// iommufd) and the RID's entry keeps its DID; PASID 4 is an ordinary PASID.
TEST(IommufdTopology, VtdRefusesAPasidThatIsTheRidPasid) {
  driver::VtdDriverConfig dc;
  dc.rid_pasid = 3;
  vtdtest::Harness h(vtdtest::vtd_config(), dc);
  h.run([&](vtdtest::Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    VmCtx a(h);
    a.build(kRamA, false, std::nullopt);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    uint32_t rid_hwpt = 0, other = 0;
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.ioas, UserData{}, &rid_hwpt), Errno::Ok);
    ASSERT_EQ(a.fd.attach(a.d0, rid_hwpt), Errno::Ok);
    const PasidFields rid_entry = pasid_fields(h, kD0, 3);
    EXPECT_EQ(rid_entry.pgtt, 1u) << "the RID's entry is PASID 3's, first-stage (001b)";
    ASSERT_EQ(a.fd.hwpt_alloc(vmm::kHwptAllocPasid, a.d0, a.ioas, UserData{}, &other), Errno::Ok);
    EXPECT_EQ(a.fd.attach(a.d0, other, 3), Errno::Inval);
    EXPECT_EQ(pasid_fields(h, kD0, 3).did, rid_entry.did) << "the RID's attachment is untouched";
    EXPECT_EQ(a.fd.attach(a.d0, other, 4), Errno::Ok);
    EXPECT_NE(pasid_fields(h, kD0, 4).did, rid_entry.did);
  });
}

}  // namespace
}  // namespace iommusim::test

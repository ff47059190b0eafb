// What the attach-topology tests (test_iommufd_topology_*.cpp) share. The topology of the
// iommufd design (issue 12 item 4), built through iommufd (platforms/vmm/iommufd.h) on one
// vendor's host driver: device D0's PASID 1 serves VM A and
// its PASID 2 VM B (work queues), VM A also owns device D1 (its RID), and each VM's
// guest-process PASIDs nest over its GPA domain where the vendor allows it.
//
// - VT-d: every PASID entry has its own PGTT, DID and stage-2 pointer, so everything
//   nests: D0/PASID 1 over A's parent, D0/PASID 2 over B's, D1's RID and its guest PASID 5
//   over A's (intel_nested_set_dev_pasid).
// - SMMUv3: one STE per StreamID holds one stage 2 (one VMID), so D0 cannot nest for two
//   VMs: its nested attach is EBUSY while B uses an SSID (arm_smmu_attach_dev_nested), a
//   nested HWPT cannot be made PASID-attachable (arm_vsmmu_alloc_domain_nested: EOPNOTSUPP);
//   the VMM gives D0's PASIDs paging HWPTs of A's and B's IOAS (host stage 1, SSID > 0).
// - AMD: one DTE holds one host table for all PASIDs: D0's nested attach is EINVAL while
//   its PASIDs are in use (nested_attach_device), a nested domain has no set_dev_pasid
//   (EOPNOTSUPP); same fallback (v2 paging domains on D0's GCR3 table: a MODEL EXTENSION,
//   see amdvi_driver.h).
// D1's guest PASIDs on SMMUv3 and AMD live in the guest's own CD / GCR3 table: nothing of
// them reaches the host.
//
// Each VM has its own iommufd context; D0 is bound in both (the PASID-granular assignable
// interfaces that iommufd.h describes). The expected command counts below are derived by
// hand, in each vendor's test, from this topology and that driver's invalidation rules.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include <gtest/gtest.h>

#include "iommu_fixture.h"
#include "models/common/command_trace.h"
#include "platforms/vmm/iommufd.h"

namespace iommusim::test::topology {

using driver::UserData;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;

constexpr uint32_t kD0 = 0x20, kD1 = 0x21;        // RIDs (StreamIDs, DeviceIDs)
constexpr uint32_t kPasidA = 1, kPasidB = 2;      // D0's work queues: A's, B's
constexpr uint32_t kGuestPasid = 5;               // a guest process on D1 (VM A)
constexpr uint64_t kRamA = kGuestRamPa;           // VM A: GPA [0, 2 MB) here
constexpr uint64_t kRamB = kGuestRamPa + 0x8000000;   // VM B: GPA [0, 2 MB) here
constexpr uint64_t kGpaBytes = 2ull << 20;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;
constexpr uint64_t kBufGpa = 0x100000;            // a guest buffer, one per VM
constexpr uint64_t kMagicA = 0xA0A0A0A0A0A0A0A0ull, kMagicB = 0xB0B0B0B0B0B0B0B0ull;

// One VM's iommufd context: D0 (and D1 for A) bound, an IOAS of GPA [0, 2 MB) at `ram`
// and its nest parent; a vIOMMU on it where the vendor has one.
struct VmCtx {
  Iommufd fd;
  uint32_t d0 = 0, d1 = 0, ioas = 0, parent = 0, viommu = 0;
  template <class H>
  explicit VmCtx(H& h) : fd({vmm::HostIommu{&h.drv, &h.drv}}) {}
  void build(uint64_t ram, bool owns_d1, std::optional<ViommuType> type) {
    ASSERT_EQ(fd.bind_device(kD0, 0, &d0), Errno::Ok);
    if (owns_d1) {
      ASSERT_EQ(fd.bind_device(kD1, 0, &d1), Errno::Ok);
    }
    ASSERT_EQ(fd.ioas_alloc(0, &ioas), Errno::Ok);
    ASSERT_EQ(fd.ioas_map(ioas, kMapRw, 0, ram, kGpaBytes), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, d0, ioas, UserData{}, &parent), Errno::Ok);
    if (type) {
      ASSERT_EQ(fd.viommu_alloc(0, *type, d0, parent, &viommu), Errno::Ok);
    }
  }
  // A paging HWPT of the IOAS that PASIDs may use, attached to D0's `pasid`.
  void paging_on_d0(uint32_t pasid, uint32_t* hwpt) {
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocPasid, d0, ioas, UserData{}, hwpt), Errno::Ok);
    ASSERT_EQ(fd.attach(d0, *hwpt, pasid), Errno::Ok);
  }
};

// Counts the queue entries the unit executes (commands and barriers).
template <class H>
struct Counter {
  uint64_t n = 0;
  explicit Counter(H& h) { h.iommu.set_command_probe([this](const common::CommandTrace&) { ++n; }); }
  uint64_t take() { return std::exchange(n, 0); }
};

// The guest buffers, and a DMA of D0 through each VM's PASID at `iova`: A's sees A's RAM,
// B's sees B's.
template <class H>
void put_buffers(H& h) {
  h.memory.write64(kRamA + kBufGpa, kMagicA);
  h.memory.write64(kRamB + kBufGpa, kMagicB);
}
template <class H>
void expect_pasids_see_their_vm(H& h, uint64_t iova) {
  DmaResult a = h.dma(kD0, kPasidA, iova, false);
  ASSERT_TRUE(a.ok()) << "D0/PASID 1";
  EXPECT_EQ(a.data, kMagicA) << "D0/PASID 1 reads VM A's memory";
  DmaResult b = h.dma(kD0, kPasidB, iova, false);
  ASSERT_TRUE(b.ok()) << "D0/PASID 2";
  EXPECT_EQ(b.data, kMagicB) << "D0/PASID 2 reads VM B's memory";
}

// IOMMU_IOAS_UNMAP of all of B's memory: returns the queue entries it cost; afterwards
// D0/PASID 2 faults while D0/PASID 1 still reads A's memory.
template <class H>
uint64_t unmap_b(H& h, VmCtx& b, uint64_t iova) {
  Counter<H> c(h);
  uint64_t unmapped = 0;
  EXPECT_EQ(b.fd.ioas_unmap(b.ioas, 0, kGpaBytes, &unmapped), Errno::Ok);
  EXPECT_EQ(unmapped, kGpaBytes);
  const uint64_t n = c.take();
  EXPECT_FALSE(h.dma(kD0, kPasidB, iova, false).ok()) << "B's memory is gone from D0/PASID 2";
  DmaResult a = h.dma(kD0, kPasidA, iova, false);
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(a.data, kMagicA);
  return n;
}

}  // namespace iommusim::test::topology

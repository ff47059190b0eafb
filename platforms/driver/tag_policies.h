// Cache-tag policies: which tag a host driver gives the translations of a VM's nested
// domains, and how a guest's AMD driver lays out its GCR3 tables (docs/vmm.md, "Cache-tag
// policies"). The tag decides what a guest invalidation and a host stage-2 change must
// name, so each policy changes the commands issued, not only their count.
//
// What it models: the upstream choices (Linux amd/nested.c gdomid_array, arm_vsmmu_init's
// VMID, amd/iommu.c gcr3_info per device) and the alternatives the issue compares. What it
// does not: a policy's cost of its own bookkeeping (IDs are taken at allocation, never
// reused, as elsewhere in the drivers).
#pragma once
#include <cstdint>

namespace iommusim::driver {

// AMD: the host DomainID (hDomID) of a vIOMMU's nested domains (vmm.amd_domid).
enum class AmdNestedDomainIds : uint8_t {
  PerGuestDomain,   // one per guest DomainID (upstream amd_iommu_alloc_domain_nested, gdomid_array)
  PerDevice,        // one per assigned device: a guest domain over two devices is split over two
  PerGroup,         // one for every device of the vIOMMU (a shared IOMMU group): aliasing hazard
};

// ARM: the VMID of a vIOMMU's nested domains (vmm.arm_vmid).
enum class ArmNestedVmids : uint8_t {
  PerViommu,      // the nest parent's VMID for all (upstream arm_vsmmu_init)
  PerNestedHwpt,  // one per nested HWPT over the same stage 2
};

// AMD: a driver's GCR3 tables (guest.amd_gcr3 for a guest's driver).
enum class AmdGcr3Tables : uint8_t {
  PerDevice,   // one table and DomainID per device (Linux gcr3_info in iommu_dev_data)
  Shared,      // devices whose only GCR3 entry is the same domain's (no PASID) share one
};

}  // namespace iommusim::driver

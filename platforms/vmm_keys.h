// The `vmm` section: which invalidation paths each vendor runs (docs/vmm.md), and what the
// trapped path's steps cost on each host architecture. Apart from system.cpp so the cost
// keys stay next to their sources.
#pragma once
#include <string>

#include "platforms/config_keys.h"
#include "platforms/driver/tag_policies.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::platforms {

inline constexpr const char* kTrappedPath = "trapped";

struct VmmSettings {
  std::string paths = "native";   // or "trapped", "native,trapped"
  vmm::VmmCosts arm64;        // SMMUv3 hosts
  vmm::VmmCosts x86_intel;    // VT-d hosts
  vmm::VmmCosts x86_amd;      // AMD-Vi hosts
  vmm::VmmFault inject = vmm::VmmFault::None;
  vmm::VmmCompletion completion = vmm::VmmCompletion::Synchronous;
  // Cache-tag policies of the host's nesting (docs/vmm.md, "Cache-tag policies").
  driver::AmdNestedDomainIds amd_domid = driver::AmdNestedDomainIds::PerGuestDomain;
  driver::ArmNestedVmids arm_vmid = driver::ArmNestedVmids::PerViommu;
};

// The `guest` section: what a trapped lane's guest driver does differently from the host's.
struct GuestSettings {
  driver::AmdGcr3Tables amd_gcr3 = driver::AmdGcr3Tables::PerDevice;
};

// Its keys; VmmSettings's zeros are placeholders (StructDefaults::Own).
Section<VmmSettings> vmm_keys();
Section<GuestSettings> guest_keys();

}  // namespace iommusim::platforms

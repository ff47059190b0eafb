// The `vmm` section: which invalidation paths each vendor runs (docs/vmm.md), and what the
// trapped path's steps cost on each host architecture. Apart from system.cpp so the cost
// keys stay next to their sources.
#pragma once
#include <string>

#include "platforms/config_keys.h"
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
};

// Its keys; VmmSettings's zeros are placeholders (StructDefaults::Own).
Section<VmmSettings> vmm_keys();

}  // namespace iommusim::platforms

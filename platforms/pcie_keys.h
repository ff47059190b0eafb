// The declarations of the `pcie` section's link keys (models/pcie/link_config.h), apart
// from system.cpp so the link's many keys stay next to their meaning.
#pragma once
#include "models/pcie/link_config.h"
#include "platforms/config_keys.h"

namespace iommusim::platforms {

// The `pcie` section: whether the lane's devices reach the IOMMU through a root complex
// and its link, and the link.
struct PcieSettings {
  bool enabled = false;
  pcie::LinkConfig link;
};

// Its keys; the structs' member defaults are the declared ones (a test checks).
Section<PcieSettings> pcie_keys();

}  // namespace iommusim::platforms

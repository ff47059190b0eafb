// What an IOMMU and a PCIe device with an Address Translation Cache (ATC, PCIe Base Spec
// 6.0 §10 "ATS") say to each other besides DMA: the IOMMU's Invalidate Request to the
// device, and when the device's Invalidate Completion comes back. Translation requests
// and translated DMAs travel as ordinary DMAs, marked by DmaAttributes::ats.
//
// Models: one Invalidate Request per invalidation command (a page range of one PASID, or
// every PASID; bytes == 0: every address), answered by one completion (the spec's
// Completion Count of 1). The device side (traffic/atc.h) times the messages on its link
// and decides when, or whether, it answers.
// Does not model: ITAG flow control (32 outstanding invalidations per device), the
// Invalidate Completion's Completion Count above 1, PRI.
#pragma once
#include <cstdint>

#include "models/common/clock.h"

namespace iommusim::common {

struct AtcInvalidation {
  bool pasid_valid = false;   // false with global: every PASID; false alone: requests without PASID
  uint32_t pasid = 0;
  bool global = false;        // SMMU CMD_ATC_INV.Global, VT-d/AMD: every PASID
  uint64_t addr = 0;          // first byte (page aligned)
  uint64_t bytes = 0;         // 0: every address
};

struct AtcInvalidationResult {
  bool answered = true;   // false: no Invalidate Completion will ever arrive
  Ps done = 0;            // when the completion reaches the IOMMU (annotated)
};

// A device with an ATC, as its IOMMU sees it.
class AtsDevice {
 public:
  virtual ~AtsDevice() = default;
  // The IOMMU sends an Invalidate Request at annotated time `issued`. The device drops what
  // it covers and answers once the DMAs that used those entries are done.
  virtual AtcInvalidationResult invalidate(const AtcInvalidation& inv, Ps issued) = 0;
};

}  // namespace iommusim::common

// virtio-iommu over an AMD-Vi host (virtio_guest_fixture.h): a full-range UNMAP of a domain
// with [0x1000, 0x1FFF] and [0x3000, 0x5FFF] mapped is 3 IOAS_UNMAPs (4K, 4K, 8K), each the
// host driver's strict unmap of its v1 domain: INVALIDATE_IOMMU_PAGES (S = 1 for the 8K
// chunk, AMD IOMMU spec §2.4.3) and a COMPLETION_WAIT.
#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "virtio_guest_fixture.h"

namespace iommusim::test {
namespace {

TEST(VirtioIommuDevice, FullRangeUnmapOnAmdVi) { expect_full_range_unmap<AmdHarness>(1, 3, 6); }
// host_flush = domain: the unmaps clear PTEs only, then INVALIDATE_IOMMU_PAGES of the whole
// DomainID (S = 1, address all ones) + COMPLETION_WAIT.
TEST(VirtioIommuDevice, DomainFlushOnAmdVi) { expect_full_range_unmap<AmdHarness>(1, 4, 2, true); }

}  // namespace
}  // namespace iommusim::test

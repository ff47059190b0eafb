// Linux's DMA API (platforms/driver/dma_api.*) over the AMD IOMMU model: the shared checks
// of dma_api_checks.h.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "amdvi_fixture.h"
#include "dma_api_checks.h"

namespace iommusim::test {
DMA_API_TESTS(AmdDmaApi, AmdHarness, "amdvi")
}  // namespace iommusim::test

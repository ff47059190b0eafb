// Linux's DMA API (platforms/driver/dma_api.*) over the SMMUv3 model: the shared checks of
// dma_api_checks.h.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "smmuv3_fixture.h"
#include "dma_api_checks.h"

namespace iommusim::test {
DMA_API_TESTS(SmmuDmaApi, Harness, "smmuv3")
}  // namespace iommusim::test

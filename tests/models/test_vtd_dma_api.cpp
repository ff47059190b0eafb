// Linux's DMA API (platforms/driver/dma_api.*) over the VT-d model: the shared checks of
// dma_api_checks.h.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "vtd_fixture.h"
#include "dma_api_checks.h"

namespace iommusim::vtdtest {
DMA_API_TESTS(VtdDmaApi, Harness, "vtd")
}  // namespace iommusim::vtdtest

// Fixture of the SMMUv3 model tests: the shared harness of iommu_fixture.h (sparse memory,
// the model, its driver and a test initiator on the DMA port) around the SMMU and the
// SMMUv3 driver, plus the SMMU's event queue and the command queue its driver wrote.
#pragma once
#include <cstdint>
#include <vector>

#include <systemc>

#include "iommu_fixture.h"
#include "models/common/bits.h"
#include "models/smmuv3/commands.h"
#include "models/smmuv3/events.h"
#include "models/smmuv3/registers.h"
#include "models/smmuv3/smmuv3.h"
#include "platforms/driver/smmuv3_driver.h"

namespace iommusim::test {

using smmuv3::EventId;
using smmuv3::EventRecord;

// An SMMU config with every cache on (the defaults) or with the walk caches and the IPA
// cache off (entries = 0).
inline smmuv3::Smmuv3Config smmu_config(bool walk_caches = true) {
  return iommu_config<smmuv3::Smmuv3Config>(walk_caches);
}

struct Harness : IommuHarness<Harness, smmuv3::Smmuv3, smmuv3::Smmuv3Config, driver::Smmuv3Driver,
                              driver::Smmuv3DriverConfig> {
  smmuv3::Smmuv3& smmu = iommu;   // the tests' name for the model

  explicit Harness(const smmuv3::Smmuv3Config& smmu_cfg = smmu_config(),
                   const driver::Smmuv3DriverConfig& drv_cfg = driver::Smmuv3DriverConfig{},
                   const memory::MemoryConfig& mem_cfg = memory::MemoryConfig{},
                   sc_core::sc_module_name name = "harness", driver::MemoryView* view = nullptr)
      : IommuHarness(smmu_cfg, drv_cfg, mem_cfg, name, "smmu", view) {}

  // Event records the SMMU has written (the driver never consumes them).
  std::vector<EventRecord> events() {
    const uint32_t prod = uint32_t(smmu.peek_register(smmuv3::reg::EVTQ_PROD));
    const uint32_t n = prod & 0xFFFFu;   // far fewer than the queue's 128 entries
    std::vector<EventRecord> out;
    for (uint32_t i = 0; i < n; ++i) {
      smmuv3::EventWords w;
      memory.read(drv.evtq_base() + uint64_t(i) * 32, w.data(), 32);
      out.push_back(smmuv3::decode_event(w));
    }
    return out;
  }
};

// The physical command queue of `h`'s SMMU so far, as its driver wrote it (256 entries:
// the tests never wrap it).
inline std::vector<smmuv3::CmdWords> host_commands(Harness& h) {
  const uint64_t base = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & common::mask(51, 5);
  const uint32_t prod = uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_PROD, 4)) & 0xFF;
  std::vector<smmuv3::CmdWords> out(prod);
  for (uint32_t i = 0; i < prod; ++i) h.memory.read(base + i * 16ull, out[i].data(), 16);
  return out;
}

}  // namespace iommusim::test

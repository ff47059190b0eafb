// One vendor's IOMMU model and its host driver, as the System drives them. A run holds one
// lane per vendor in `iommu.vendor`; each lane has its own memory and endpoint, and every
// lane gets identical traffic, so vendors compare side by side in one simulation.
//
// A vendor adds a lane by implementing IommuLane and a factory registered in
// make_lane() (platforms/iommu_lane.cpp); its factory reads `iommu.<vendor>` and
// `driver.<vendor>` and checks that it can serve the configured traffic.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/common/cache.h"
#include "models/common/correctness_oracle.h"
#include "models/common/stats.h"
#include "models/memory/sparse_memory.h"
#include "platforms/config.h"
#include "platforms/driver/driver_base.h"
#include "traffic/endpoint.h"

namespace iommusim::platforms {

// What every lane's factory is given besides its own config sections.
struct LaneSettings {
  std::string name;                 // SystemC name prefix of the lane's modules
  memory::SparseMemory* sim_memory = nullptr;   // the lane's own memory (tables, queues, DMA)
  uint64_t seed = 1;
  driver::DriverTiming timing;      // driver.* (shared keys)
  driver::DriverMemory pools;       // where the driver keeps tables, computed by the System
  traffic::EndpointConfig traffic;  // what the lane's endpoint will send
  bool oracle = true;               // sim.oracle: check every DMA against the driver's mappings
};

// Reads a cache geometry section ({entries, ways, replacement, ...}); `seed` keeps random
// replacement deterministic.
common::CacheConfig read_cache(const ConfigReader& r, uint64_t seed);
// The timing keys every driver shares (driver.cpu_mhz, ...).
driver::DriverTiming read_driver_timing(const ConfigReader& d);

class IommuLane {
 public:
  virtual ~IommuLane() = default;
  virtual std::string vendor() const = 0;
  virtual driver::IommuDriver& driver() = 0;
  virtual const driver::IommuDriver& driver() const = 0;
  // Connects the model's memory initiator to the lane's memory and the endpoint to the model.
  virtual void bind(traffic::Endpoint& endpoint) = 0;
  virtual void register_stats(common::StatRegistry& reg, const std::string& prefix) const = 0;
  // Translation "bypass": let every request through untranslated, the vendor's way.
  virtual driver::Status bypass_all() = 0;
  // The driver's fault/event handler; the workload calls it when records have arrived.
  virtual void drain_events() = 0;
  virtual uint64_t events_recorded() const = 0;

  // For the summary.
  struct CacheView { std::string name; const common::CacheStats* stats; };
  virtual std::vector<CacheView> caches() const = 0;   // the IOTLB first
  virtual const common::Histogram& walk_reads() const = 0;
  virtual const common::Histogram& walk_latency_ps() const = 0;
  // Reads of configuration structures themselves (STE/CD, root/context/PASID-dir/PASID
  // entries, DTE/GCR3 entries), the same definition for every vendor.
  virtual uint64_t config_reads() const = 0;
  // The lane's correctness oracle; nullptr when sim.oracle is off.
  virtual common::CorrectnessOracle* oracle() = 0;
  // Stage-2 reads made to locate configuration structures at guest addresses (nested).
  virtual uint64_t config_locate_reads() const = 0;
};

// What every lane does the same way: owns the model and its driver (built on the lane's
// memory), wires endpoint -> model -> memory and driver -> model registers, and reports
// the engine figures. A vendor's lane adds vendor(), caches(), bypass_all() and its event
// handling.
template <class Model, class Driver>
class ModelLane : public IommuLane {
 public:
  template <class ModelConfig, class DriverConfig>
  ModelLane(const LaneSettings& s, const ModelConfig& mc, const DriverConfig& dc)
      : memory_(*s.sim_memory), iommu_((s.name + "iommu").c_str(), mc),
        drv_((s.name + "driver").c_str(), dc, iommu_, *s.sim_memory), oracle_(s.name.substr(0, s.name.find('_'))), oracle_on_(s.oracle) {
    if (oracle_on_) { iommu_.set_observer(&oracle_); drv_.set_oracle(&oracle_); }
  }

  driver::IommuDriver& driver() override { return drv_; }
  const driver::IommuDriver& driver() const override { return drv_; }
  void bind(traffic::Endpoint& endpoint) override {
    endpoint.socket.bind(iommu_.dma);
    iommu_.mem.bind(memory_.socket);
    iommu_.set_direct_memory(&memory_);   // DMI-style: the same memory, without payloads
    drv_.mmio.bind(iommu_.mmio);
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    iommu_.register_stats(reg, p + ".iommu");
    drv_.register_stats(reg, p + ".driver");
    if (oracle_on_) oracle_.register_stats(reg, p + ".oracle");
  }
  common::CorrectnessOracle* oracle() override { return oracle_on_ ? &oracle_ : nullptr; }
  const common::Histogram& walk_reads() const override { return iommu_.walk_reads(); }
  const common::Histogram& walk_latency_ps() const override { return iommu_.walk_latency_ps(); }
  uint64_t config_reads() const override { return iommu_.config_reads(); }
  uint64_t config_locate_reads() const override { return iommu_.config_locate_reads(); }

 protected:
  memory::SparseMemory& memory_;
  Model iommu_;
  Driver drv_;
  common::CorrectnessOracle oracle_;
  bool oracle_on_;
};

// Builds the lane for `vendor` ("smmuv3", "vtd", "amdvi"). Throws ConfigError naming the key.
std::unique_ptr<IommuLane> make_lane(const std::string& vendor, const ConfigReader& iommu,
                                     const ConfigReader& driver, const ConfigReader& traffic,
                                     const LaneSettings& settings);
// The vendors this build has lanes for, in the order a side-by-side summary shows them.
const std::vector<std::string>& known_vendors();

// Per-vendor factories (platforms/<vendor>_lane.cpp).
std::unique_ptr<IommuLane> make_smmuv3_lane(const ConfigReader& iommu, const ConfigReader& driver,
                                            const ConfigReader& traffic, const LaneSettings& settings);
std::unique_ptr<IommuLane> make_vtd_lane(const ConfigReader& iommu, const ConfigReader& driver,
                                         const ConfigReader& traffic, const LaneSettings& settings);
std::unique_ptr<IommuLane> make_amdvi_lane(const ConfigReader& iommu, const ConfigReader& driver,
                                           const ConfigReader& traffic, const LaneSettings& settings);

}  // namespace iommusim::platforms

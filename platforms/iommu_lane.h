// One vendor's IOMMU model and its host driver, as the System drives them. A run holds one
// lane per vendor in `iommu.vendor`; each lane has its own memory and endpoint, and every
// lane gets identical traffic, so vendors compare side by side in one simulation.
//
// A lane holds platform.iommus physical IOMMUs ("units"), each its own model and host
// driver on the lane's memory; every endpoint's DMAs go to the unit it sits behind
// (traffic.endpoints[i].iommu), and the lane's one oracle observes them all.
//
// A vendor adds a lane in its own file, platforms/<vendor>_lane.cpp: an IommuLane, the
// declarations of its `iommu.<vendor>` and `driver.<vendor>` keys, and a factory that reads
// them and checks that it can serve the configured traffic, registered with RegisterLane.
// No shared list names the vendors.
#pragma once
#include <algorithm>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/cache.h"
#include "models/common/correctness_oracle.h"
#include "models/common/stats.h"
#include "models/memory/sparse_memory.h"
#include "models/common/translation_engine.h"
#include "platforms/config.h"
#include "platforms/config_keys.h"
#include "platforms/driver/driver_base.h"
#include "platforms/vmm_keys.h"
#include "traffic/endpoint.h"

namespace iommusim::platforms {

// One endpoint of a lane: its traffic and where its keys are ("traffic", or
// "traffic.endpoints[2]" for the third of several), for messages.
struct EndpointSettings {
  traffic::EndpointConfig config;
  std::string path;
  unsigned iommu = 0;   // the unit it sits behind (traffic.endpoints[i].iommu)
  // A ConfigError naming <path>.<key>.
  [[noreturn]] void fail(const std::string& key, const std::string& why) const { throw ConfigError(path + "." + key + ": " + why); }
};

// What every lane's factory is given besides its own config sections.
struct LaneSettings {
  std::string name;                 // SystemC name prefix of the lane's modules
  memory::SparseMemory* sim_memory = nullptr;   // the lane's own memory (tables, queues, DMA)
  uint64_t seed = 1;
  driver::DriverTiming timing;      // driver.* (shared keys)
  driver::DriverMemory pools;       // where the driver keeps tables, computed by the System
  std::vector<EndpointSettings> endpoints;   // what the lane's endpoints will send (at least one)
  unsigned iommus = 1;              // platform.iommus: physical IOMMUs on the lane
  bool oracle = true;               // sim.oracle: check every DMA against the driver's mappings
  // A trapped lane's VM: guest RAM (GPA 0 at guest_ram_pa), the host pages behind it (the
  // stage-2 leaf size), and the VMM's costs.
  uint64_t guest_ram_pa = 0, guest_ram_bytes = 0, stage2_page_bytes = 4096;
  uint64_t movable_gpa = 0, movable_bytes = 0;   // guest pages the VMM may move (stress)
  uint64_t vm_ram_stride = 0;   // vmm.vms: host PA from one VM's guest RAM to the next's
  VmmSettings vmm;
  GuestSettings guest;
};

// The declared defaults of one cache section: 4-way sets, LRU, 3-cycle lookups on 2 ports
// and one cycle per set an invalidation scans (gem5-like), changed by name:
// CacheDefaults(2048).ports(4).
class CacheDefaults {
 public:
  explicit CacheDefaults(unsigned entries);
  CacheDefaults& lookup_cycles(unsigned v) { c_.lookup_cycles = v; return *this; }
  CacheDefaults& ports(unsigned v) { c_.ports = v; return *this; }
  const common::CacheConfig& config() const { return c_; }
 private:
  common::CacheConfig c_;
};

// The keys of one cache ({entries, ways, replacement, ...}); `what` describes the cache.
Section<common::CacheConfig> cache_keys(const std::string& what, const CacheDefaults& d);
// `walkers` and the four caches of the translation engine, under the vendor's names.
Section<common::TranslationEngineConfig> translation_keys(const common::TranslationCacheNames& names);
// A vendor's driver config: the shared timing and pools from `settings`, then its own keys
// (driver.<vendor>) read by `keys` from `d`.
template <class DriverConfig>
DriverConfig read_driver_config(const Section<DriverConfig>& keys, const ConfigReader& d, const LaneSettings& settings) {
  DriverConfig dc;
  dc.timing = settings.timing;
  dc.memory = settings.pools;
  keys.read(d, dc);
  return dc;
}
// Seeds for random replacement, so runs stay deterministic: caches[i]->seed = base + i + 1.
void seed_caches(uint64_t base, std::initializer_list<common::CacheConfig*> caches);

// Unit k's stats prefix: `base` alone when the lane has one unit (so single-IOMMU stats keep
// their names), base<k> when it has several.
inline std::string unit_name(const std::string& base, unsigned k, unsigned units) {
  return units > 1 ? base + std::to_string(k) : base;
}
// Unit k's share of the drivers' table pools: each pool split in `units` page-aligned
// slices, so the units' drivers never allocate the same frames.
driver::DriverMemory unit_pools(const driver::DriverMemory& pools, unsigned k, unsigned units);
// The oracle space IDs host driver k reports under (unit 0: the driver's own IDs).
inline uint32_t unit_space_base(unsigned k) { return k << 20; }

class IommuLane {
 public:
  virtual ~IommuLane() = default;
  virtual std::string vendor() const = 0;
  // The physical IOMMUs (platform.iommus) and, for unit k, the driver the workload programs:
  // the host's, or on a trapped lane the guest's instance behind that unit's vIOMMU.
  virtual unsigned units() const { return 1; }
  virtual driver::IommuDriver& unit_driver(unsigned k) = 0;
  // The unit physical device `rid` sits behind, and the driver that programs it.
  virtual unsigned unit_of(uint32_t) const { return 0; }
  driver::IommuDriver& driver_for(uint32_t rid) { return unit_driver(unit_of(rid)); }
  // Unit 0's driver: the only one when the lane has one unit.
  driver::IommuDriver& driver() { return unit_driver(0); }
  // Every driver the workload programs, by index: unit k's (k < units()), or on a trapped
  // lane with several VMs, VM v's guest driver of unit k at v * units() + k; its stats
  // name (below the lane), and the one programming endpoint `ep` (LaneSettings::endpoints).
  virtual unsigned drivers() const { return units(); }
  virtual driver::IommuDriver& nth_driver(unsigned i) { return unit_driver(i); }
  virtual std::string driver_stats_name(unsigned i) const { return unit_name("driver", i, units()); }
  virtual unsigned endpoint_driver(size_t ep) const = 0;
  // The device ID and PASID that driver knows endpoint `ep` (RID `rid`, PASID `pasid`) by:
  // a trapped lane's guest, its virtual ID, and for a device that is one PASID of a
  // physical one (vmm.assign with a pasid), no PASID (the guest sees a whole device).
  virtual uint32_t endpoint_driver_rid(size_t, uint32_t rid) const { return driver_rid(rid); }
  virtual std::optional<uint32_t> endpoint_driver_pasid(size_t, std::optional<uint32_t> pasid) const { return pasid; }
  // Endpoint `ep` is a trapped lane's work queue that its guest sees with no vIOMMU
  // translation (SMMUv3, AMD: docs/vmm.md, "The topology as a run"): no driver programs it,
  // its DMAs address guest-physical memory.
  virtual bool endpoint_untranslated(size_t) const { return false; }
  // Brings the lane up in simulated time: every unit's driver init, and on a trapped lane
  // the host drivers, the VM's iommufd objects and the guest drivers.
  virtual driver::Status boot() = 0;
  // The ID driver() knows physical device `rid` by (a trapped lane's guest: its vSID/vRID).
  virtual uint32_t driver_rid(uint32_t rid) const { return rid; }
  // driver() is a guest's that owns stage 1 only, over the stage 2 its VMM set up: a
  // nested translation is a stage-1 domain of driver().
  virtual bool guest_stage1() const { return false; }
  // A trapped lane's VMM moves guest pages [gpa, gpa + bytes) to host `pa` (IOAS unmap and
  // map): host stage-2 changes while the guest runs.
  virtual driver::Status move_guest_page(uint64_t, uint64_t, uint64_t) {
    return driver::Status::fail("no VMM on this lane");
  }
  // A trapped lane's VMM unmaps all of VM `vm`'s memory (IOMMU_IOAS_UNMAP of everything).
  virtual driver::Status teardown_vm(unsigned) { return driver::Status::fail("no VMM on this lane"); }
  // Connects the model's memory initiator to the lane's memory and the driver to the model.
  virtual void bind() = 0;
  // Connects a requester (an endpoint, or the root complex in front of the model) to unit
  // `unit`'s DMA port; several may be.
  virtual void bind_requester(tlm::tlm_initiator_socket<>& requester, unsigned unit) = 0;
  virtual void register_stats(common::StatRegistry& reg, const std::string& prefix) const = 0;
  // Figures read once at the end of the run (StatRegistry::set_value): what the caches and
  // tags hold then.
  virtual void set_end_values(common::StatRegistry& reg, const std::string& prefix) const = 0;
  // Translation "bypass": let every request through untranslated, the vendor's way.
  virtual driver::Status bypass_all() = 0;
  // The driver's fault/event handler, run in the caller's thread until every record so far
  // is handled (the end of a run calls it).
  virtual void drain_events() = 0;
  // The event interrupt while the workload runs (records have arrived): the handler runs in
  // the caller's thread, or in a thread of its own where the lane models one.
  virtual void raise_event_interrupt() { drain_events(); }
  // Event / fault records unit k has written, and all units' together.
  virtual uint64_t unit_events_recorded(unsigned k) const = 0;
  uint64_t events_recorded() const {
    uint64_t n = 0;
    for (unsigned k = 0; k < units(); ++k) n += unit_events_recorded(k);
    return n;
  }

  // For the summary: the names of each unit's caches (<unit>.<name>.hits, .misses).
  struct CacheView { std::string name; const common::CacheStats* stats; };
  virtual std::vector<CacheView> caches() const = 0;   // the IOTLB first
  // The lane's correctness oracle; nullptr when sim.oracle is off.
  virtual common::CorrectnessOracle* oracle() = 0;
  // ATS (docs/ats.md): the device `rid` has an ATC; its unit's ATC invalidations reach it.
  virtual void attach_ats_device(uint32_t rid, common::AtsDevice* device) = 0;
  // The driver(s) that program the device `rid` enable its ATS (Linux: pci_enable_ats).
  virtual void enable_ats(uint32_t rid) { driver_for(rid).enable_ats(rid); }
  // The models' ATS stats under <prefix>.iommu (<prefix>.iommu<k> with several units;
  // lanes with an ATS device only).
  virtual void register_ats_stats(common::StatRegistry& reg, const std::string& prefix) const = 0;
};

// What every lane does the same way: owns the units (each a model and its driver, built on
// the lane's memory with its own slice of the table pools and its own register window),
// wires endpoint -> its unit's model -> memory and driver -> model registers, and reports
// the engine figures. A vendor's lane adds vendor(), caches(), bypass_all() and its event
// handling.
template <class Model, class Driver>
class ModelLane : public IommuLane {
 public:
  template <class ModelConfig, class DriverConfig>
  ModelLane(const LaneSettings& s, const ModelConfig& mc, const DriverConfig& dc)
      : memory_(*s.sim_memory), oracle_(s.name.substr(0, s.name.find('_'))), oracle_on_(s.oracle) {
    for (unsigned k = 0; k < s.iommus; ++k) {
      DriverConfig unit_dc = dc;
      unit_dc.memory = unit_pools(dc.memory, k, s.iommus);
      units_.push_back(std::make_unique<Unit>(s.name, unit_name("", k, s.iommus), mc, unit_dc, *s.sim_memory));
      if (oracle_on_) {
        iommu(k).set_observer(&oracle_);
        common::OracleScope scope;
        scope.space_base = unit_space_base(k);
        drv(k).set_oracle(&oracle_, scope);
      }
    }
    for (const EndpointSettings& e : s.endpoints) {
      rid_unit_[e.config.requester_id] = e.iommu;
      endpoint_unit_.push_back(e.iommu);
    }
    // A unit no endpoint sits behind: an unbound DMA port fails elaboration, so a requester
    // that never sends takes its place.
    for (unsigned k = 0; k < s.iommus; ++k)
      if (std::none_of(s.endpoints.begin(), s.endpoints.end(), [k](const EndpointSettings& e) { return e.iommu == k; }))
        idle_requesters_.push_back({k, std::make_unique<IdleRequester>((s.name + "idle_requester" + std::to_string(k)).c_str())});
  }

  unsigned units() const override { return unsigned(units_.size()); }
  driver::IommuDriver& unit_driver(unsigned k) override { return drv(k); }
  unsigned unit_of(uint32_t rid) const override {
    auto it = rid_unit_.find(rid);
    return it == rid_unit_.end() ? 0 : it->second;
  }
  unsigned endpoint_driver(size_t ep) const override { return endpoint_unit_.at(ep); }
  driver::Status boot() override {
    for (auto& u : units_)
      if (driver::Status st = u->drv.init(); !st.ok) return st;
    return {};
  }
  void bind() override {
    for (auto& [k, r] : idle_requesters_) r->bind(iommu(k).dma);
    for (auto& u : units_) {
      u->iommu.mem.bind(memory_.socket);
      u->iommu.set_direct_memory(&memory_);   // DMI-style: the same memory, without payloads
      u->drv.mmio.bind(u->iommu.mmio);
    }
  }
  void bind_requester(tlm::tlm_initiator_socket<>& requester, unsigned unit) override {
    requester.bind(iommu(unit).dma);
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    for (unsigned k = 0; k < units(); ++k) {
      iommu(k).register_stats(reg, p + "." + unit_name("iommu", k, units()));
      drv(k).register_stats(reg, p + "." + unit_name("driver", k, units()));
    }
    if (oracle_on_) oracle_.register_stats(reg, p + ".oracle");
  }
  void set_end_values(common::StatRegistry& reg, const std::string& p) const override {
    for (unsigned k = 0; k < units(); ++k)
      reg.set_value(p + "." + unit_name("iommu", k, units()) + "." + caches().front().name + ".valid_entries",
                    double(iommu(k).iotlb_entries()), "count", "valid IOTLB entries at the end of the run");
  }
  common::CorrectnessOracle* oracle() override { return oracle_on_ ? &oracle_ : nullptr; }
  void attach_ats_device(uint32_t rid, common::AtsDevice* device) override {
    iommu(unit_of(rid)).attach_ats_device(rid, device);
  }
  void register_ats_stats(common::StatRegistry& reg, const std::string& p) const override {
    for (unsigned k = 0; k < units(); ++k) iommu(k).register_ats_stats(reg, p + "." + unit_name("iommu", k, units()));
  }

 protected:
  struct Unit {
    template <class ModelConfig, class DriverConfig>
    Unit(const std::string& lane, const std::string& k, const ModelConfig& mc, const DriverConfig& dc,
         memory::SparseMemory& mem)
        : iommu((lane + "iommu" + k).c_str(), mc), drv((lane + "driver" + k).c_str(), dc, iommu, mem) {}
    Model iommu;
    Driver drv;
  };
  Model& iommu(unsigned k) { return units_[k]->iommu; }
  const Model& iommu(unsigned k) const { return units_[k]->iommu; }
  Driver& drv(unsigned k) { return units_[k]->drv; }
  const Driver& drv(unsigned k) const { return units_[k]->drv; }
  using IdleRequester = tlm_utils::simple_initiator_socket<ModelLane>;

  memory::SparseMemory& memory_;
  std::vector<std::unique_ptr<Unit>> units_;
  std::vector<std::pair<unsigned, std::unique_ptr<IdleRequester>>> idle_requesters_;
  std::map<uint32_t, unsigned> rid_unit_;   // endpoint RID -> its unit
  std::vector<unsigned> endpoint_unit_;     // by endpoint
  common::CorrectnessOracle oracle_;
  bool oracle_on_;
};

// A vendor's lane: its config sections and its factory. Each platforms/<vendor>_lane.cpp
// registers its own with a static RegisterLane.
struct LaneType {
  std::string vendor;
  KeyInfo (*iommu_keys)();    // the declarations of iommu.<vendor>
  KeyInfo (*driver_keys)();   // the declarations of driver.<vendor>
  // Reads iommu.<vendor> and driver.<vendor>; throws ConfigError naming the key.
  std::unique_ptr<IommuLane> (*make)(const ConfigReader& iommu, const ConfigReader& driver,
                                     const ConfigReader& traffic, const LaneSettings& settings);
  // The same for vmm.paths "trapped" (a guest behind the vendor's vIOMMU); nullptr: the
  // vendor has no trapped path yet.
  std::unique_ptr<IommuLane> (*make_trapped)(const ConfigReader& iommu, const ConfigReader& driver,
                                             const ConfigReader& traffic, const LaneSettings& settings) = nullptr;
  // The same for vmm.paths "virtio" (a guest behind a virtio-iommu device, platforms/virtio_lane.h).
  std::unique_ptr<IommuLane> (*make_virtio)(const ConfigReader& iommu, const ConfigReader& driver,
                                            const ConfigReader& traffic, const LaneSettings& settings) = nullptr;
  // The same for vmm.paths "accelerated" (the trapped lane's guest, its invalidations on a queue
  // the hardware reads itself); nullptr: the vendor has none (VT-d) or it is not modelled yet.
  std::unique_ptr<IommuLane> (*make_accelerated)(const ConfigReader& iommu, const ConfigReader& driver,
                                                 const ConfigReader& traffic, const LaneSettings& settings) = nullptr;
};
struct RegisterLane {
  explicit RegisterLane(LaneType type);
};
// Every registered lane, by vendor name.
const std::vector<LaneType>& lane_types();

// Builds the lane for `vendor` on invalidation `path` from the `iommu` and `driver`
// sections (which hold each vendor's own). Throws ConfigError naming the key.
std::unique_ptr<IommuLane> make_lane(const std::string& vendor, const std::string& path, const ConfigReader& iommu,
                                     const ConfigReader& driver, const ConfigReader& traffic,
                                     const LaneSettings& settings);
// The vendors this build has lanes for, by name.
std::vector<std::string> known_vendors();
// Those with a trapped path, comma-separated.
std::string trapped_vendors();
// Whether `vendor` has a lane for vmm.paths "accelerated" (VT-d has no guest-direct queue).
bool has_accelerated_path(const std::string& vendor);

}  // namespace iommusim::platforms

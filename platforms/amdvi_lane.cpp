// The AMD IOMMU lane: iommu.amdvi and driver.amdvi into an AmdVi and its Linux-like driver.
#include "models/amdvi/amdvi.h"
#include "platforms/driver/amdvi_driver.h"
#include "platforms/iommu_lane.h"

namespace iommusim::platforms {

namespace {

class AmdViLane : public ModelLane<amdvi::AmdVi, driver::AmdViDriver> {
 public:
  AmdViLane(const LaneSettings& s, const amdvi::AmdViConfig& mc, const driver::AmdViDriverConfig& dc)
      : ModelLane(s, mc, dc) {}

  std::string vendor() const override { return "amdvi"; }
  driver::Status bypass_all() override { return drv_.bypass_all(); }
  void drain_events() override { drv_.drain_events(); }
  uint64_t events_recorded() const override { return iommu_.events_written(); }
  std::vector<CacheView> caches() const override {
    return {{"iotlb", &iommu_.iotlb_stats()},         {"dte_cache", &iommu_.dte_cache_stats()},
            {"gcr3_cache", &iommu_.gcr3_cache_stats()}, {"guest_pdc", &iommu_.guest_pdc_stats()},
            {"host_pdc", &iommu_.host_pdc_stats()},   {"gpa_cache", &iommu_.gpa_cache_stats()}};
  }

 private:
};

}  // namespace

std::unique_ptr<IommuLane> make_amdvi_lane(const ConfigReader& s, const ConfigReader& d, const ConfigReader& t,
                                           const LaneSettings& settings) {
  amdvi::AmdViConfig m;
  const uint64_t seed = settings.seed;
  m.clock_mhz = s.number("clock_mhz", 1, 100000);
  m.caps.hats = uint8_t(s.integer("hats", 0, 2));
  m.caps.gats = uint8_t(s.integer("gats", 0, 1));
  m.caps.glx_sup = uint8_t(s.integer("glx_sup", 0, 2));
  m.caps.pasmax = uint8_t(s.integer("pasmax", 0, 19));
  m.translation.walkers = unsigned(s.integer("walkers", 1, 1024));
  m.translation_cycles = unsigned(s.integer("translation_cycles", 0, 10000));
  m.cmd_batch = unsigned(s.integer("cmd_batch", 1, 64));
  m.cmd_decode_cycles = unsigned(s.integer("cmd_decode_cycles", 0, 10000));
  m.cmd_exec_cycles = unsigned(s.integer("cmd_exec_cycles", 0, 10000));
  m.completion_wait_cycles = unsigned(s.integer("completion_wait_cycles", 0, 10000));
  m.iotlb_inv_cycles = unsigned(s.integer("iotlb_inv_cycles", 0, 1000000));
  m.dte_cache = read_cache(s.section("dte_cache"), seed * 13 + 1);
  m.gcr3_cache = read_cache(s.section("gcr3_cache"), seed * 13 + 2);
  m.translation.iotlb = read_cache(s.section("iotlb"), seed * 13 + 3);
  m.translation.s1_walk_cache = read_cache(s.section("guest_pdc"), seed * 13 + 4);
  m.translation.s2_walk_cache = read_cache(s.section("host_pdc"), seed * 13 + 5);
  m.translation.ipa_cache = read_cache(s.section("gpa_cache"), seed * 13 + 6);
  if (auto e = amdvi::validate(m); !e.empty()) s.fail("clock_mhz", e);

  driver::AmdViDriverConfig dc;
  dc.timing = settings.timing;
  dc.memory = settings.pools;
  dc.cmd_buf_log2 = unsigned(d.integer("cmd_buf_log2", 8, 15));
  dc.evt_log_log2 = unsigned(d.integer("evt_log_log2", 8, 15));
  dc.device_table_entries = unsigned(d.integer("device_table_entries", 1, 65536));
  dc.glx = unsigned(d.integer("glx", 0, 2));
  if (dc.glx > m.caps.glx_sup) d.fail("glx", "exceeds iommu.amdvi.glx_sup");
  if (auto e = driver::validate(dc); !e.empty()) d.fail("cmd_buf_log2", e);

  if (settings.traffic.requester_id >= dc.device_table_entries)
    t.fail("requester_id", "beyond the AMD device table (driver.amdvi.device_table_entries)");
  if (settings.traffic.pasid_valid &&
      (!amdvi::gcr3_pasid_fits(settings.traffic.pasid, dc.glx) || (settings.traffic.pasid >> m.caps.pasid_bits())))
    t.fail("pasid", "beyond the AMD GCR3 table (driver.amdvi.glx) or EFR.PASmax");
  return std::make_unique<AmdViLane>(settings, m, dc);
}

}  // namespace iommusim::platforms

// The SMMUv3 lane: iommu.smmuv3 and driver.smmuv3 into an Smmuv3 and its Linux-like driver.
#include "models/smmuv3/smmuv3.h"
#include "platforms/driver/smmuv3_driver.h"
#include "platforms/iommu_lane.h"

namespace iommusim::platforms {

namespace {

class Smmuv3Lane : public ModelLane<smmuv3::Smmuv3, driver::Smmuv3Driver> {
 public:
  Smmuv3Lane(const LaneSettings& s, const smmuv3::Smmuv3Config& mc, const driver::Smmuv3DriverConfig& dc)
      : ModelLane(s, mc, dc) {}

  std::string vendor() const override { return "smmuv3"; }
  driver::Status bypass_all() override { drv_.global_bypass(); return {}; }
  void drain_events() override { drv_.drain_events(); }
  uint64_t events_recorded() const override { return iommu_.events_written(); }
  std::vector<CacheView> caches() const override {
    return {{"iotlb", &iommu_.iotlb_stats()}, {"config_cache", &iommu_.config_cache_stats()},
            {"s1_walk_cache", &iommu_.s1_walk_cache_stats()}, {"s2_walk_cache", &iommu_.s2_walk_cache_stats()},
            {"ipa_cache", &iommu_.ipa_cache_stats()}};
  }

 private:
};

}  // namespace

std::unique_ptr<IommuLane> make_smmuv3_lane(const ConfigReader& s, const ConfigReader& d, const ConfigReader& t,
                                            const LaneSettings& settings) {
  smmuv3::Smmuv3Config m;
  const uint64_t seed = settings.seed;
  m.clock_mhz = s.number("clock_mhz", 1, 100000);
  m.sid_bits = unsigned(s.integer("sid_bits", 1, 32));
  m.ssid_bits = unsigned(s.integer("ssid_bits", 0, 20));
  m.range_invalidation = s.boolean("range_invalidation");
  m.translation.walkers = unsigned(s.integer("walkers", 1, 1024));
  m.translation_cycles = unsigned(s.integer("translation_cycles", 0, 10000));
  m.cmd_batch = unsigned(s.integer("cmd_batch", 1, 64));
  m.cmd_decode_cycles = unsigned(s.integer("cmd_decode_cycles", 0, 10000));
  m.cmd_exec_cycles = unsigned(s.integer("cmd_exec_cycles", 0, 10000));
  m.sync_cycles = unsigned(s.integer("sync_cycles", 0, 10000));
  m.atc_inv_cycles = unsigned(s.integer("atc_inv_cycles", 0, 1000000));
  m.config_cache = read_cache(s.section("config_cache"), seed * 11 + 1);
  m.translation.iotlb = read_cache(s.section("iotlb"), seed * 11 + 2);
  m.translation.s1_walk_cache = read_cache(s.section("s1_walk_cache"), seed * 11 + 3);
  m.translation.s2_walk_cache = read_cache(s.section("s2_walk_cache"), seed * 11 + 4);
  m.translation.ipa_cache = read_cache(s.section("ipa_cache"), seed * 11 + 5);
  if (auto e = smmuv3::validate(m); !e.empty()) s.fail("clock_mhz", e);

  driver::Smmuv3DriverConfig dc;
  dc.timing = settings.timing;
  dc.memory = settings.pools;
  dc.sync_mode = d.choice("sync_mode", {"msi_poll", "sev_poll"}) == "msi_poll" ? driver::SmmuSyncMode::MsiPoll
                                                                               : driver::SmmuSyncMode::SevPoll;
  dc.cmdq_log2 = unsigned(d.integer("cmdq_log2", 2, 19));
  dc.evtq_log2 = unsigned(d.integer("evtq_log2", 1, 19));
  dc.two_level_stream_table = d.boolean("two_level_stream_table");
  dc.stream_table_log2 = unsigned(d.integer("stream_table_log2", 1, 24));
  if (dc.stream_table_log2 > m.sid_bits) d.fail("stream_table_log2", "exceeds iommu.smmuv3.sid_bits");
  if (auto e = driver::validate(dc); !e.empty()) d.fail("cmdq_log2", e);

  if (settings.traffic.requester_id >> dc.stream_table_log2)
    t.fail("requester_id", "beyond the SMMUv3 stream table (driver.smmuv3.stream_table_log2)");
  if (settings.traffic.pasid_valid && settings.traffic.pasid >> dc.cd_table_log2)
    t.fail("pasid", "beyond the SMMUv3 CD table (" + std::to_string(1u << dc.cd_table_log2) + " SubstreamIDs)");
  return std::make_unique<Smmuv3Lane>(settings, m, dc);
}

}  // namespace iommusim::platforms

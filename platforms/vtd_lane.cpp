// The VT-d lane: iommu.vtd and driver.vtd into a Vtd (scalable mode) and its Linux-like
// driver.
#include "models/vtd/vtd.h"
#include "platforms/driver/vtd_driver.h"
#include "platforms/iommu_lane.h"

namespace iommusim::platforms {

namespace {

class VtdLane : public ModelLane<vtd::Vtd, driver::VtdDriver> {
 public:
  VtdLane(const LaneSettings& s, const vtd::VtdConfig& mc, const driver::VtdDriverConfig& dc)
      : ModelLane(s, mc, dc), traffic_(s.traffic) {}

  std::string vendor() const override { return "vtd"; }
  // Linux's identity domain: the device's PASID entry with PGTT=pass-through (DID 1).
  driver::Status bypass_all() override {
    std::optional<uint32_t> pasid;
    if (traffic_.pasid_valid) pasid = traffic_.pasid;
    return drv_.attach_pass_through(traffic_.requester_id, pasid);
  }
  void drain_events() override { drv_.drain_faults(); }
  uint64_t events_recorded() const override { return iommu_.faults_recorded(); }
  std::vector<CacheView> caches() const override {
    return {{"iotlb", &iommu_.iotlb_stats()},       {"context_cache", &iommu_.context_cache_stats()},
            {"pasid_cache", &iommu_.pasid_cache_stats()}, {"fs_psc", &iommu_.fs_psc_stats()},
            {"ss_psc", &iommu_.ss_psc_stats()},     {"gpa_cache", &iommu_.gpa_cache_stats()}};
  }

 private:
  traffic::EndpointConfig traffic_;
};

}  // namespace

std::unique_ptr<IommuLane> make_vtd_lane(const ConfigReader& s, const ConfigReader& d, const ConfigReader& t,
                                         const LaneSettings& settings) {
  vtd::VtdConfig m;
  const uint64_t seed = settings.seed;
  m.clock_mhz = s.number("clock_mhz", 1, 100000);
  m.haw = unsigned(s.integer("haw", 39, 52));
  m.pasid_bits = unsigned(s.integer("pasid_bits", 1, 20));
  m.fault_records = unsigned(s.integer("fault_records", 1, vtd::reg::kMaxFaultRecords));
  m.fs_5level = s.boolean("fs_5level");
  m.fs_1g = s.boolean("fs_1g");
  m.ss_2m = s.boolean("ss_2m");
  m.ss_1g = s.boolean("ss_1g");
  m.mamv = unsigned(s.integer("mamv", 0, vtd::kMaxAddressMask));
  m.translation.walkers = unsigned(s.integer("walkers", 1, 1024));
  m.translation_cycles = unsigned(s.integer("translation_cycles", 0, 10000));
  m.desc_batch = unsigned(s.integer("desc_batch", 1, 64));
  m.desc_decode_cycles = unsigned(s.integer("desc_decode_cycles", 0, 10000));
  m.desc_exec_cycles = unsigned(s.integer("desc_exec_cycles", 0, 10000));
  m.wait_cycles = unsigned(s.integer("wait_cycles", 0, 10000));
  m.devtlb_inv_cycles = unsigned(s.integer("devtlb_inv_cycles", 0, 1000000));
  m.context_cache = read_cache(s.section("context_cache"), seed * 13 + 1);
  m.pasid_cache = read_cache(s.section("pasid_cache"), seed * 13 + 2);
  m.translation.iotlb = read_cache(s.section("iotlb"), seed * 13 + 3);
  m.translation.s1_walk_cache = read_cache(s.section("fs_psc"), seed * 13 + 4);
  m.translation.s2_walk_cache = read_cache(s.section("ss_psc"), seed * 13 + 5);
  m.translation.ipa_cache = read_cache(s.section("gpa_cache"), seed * 13 + 6);
  if (auto e = vtd::validate(m); !e.empty()) s.fail("clock_mhz", e);

  driver::VtdDriverConfig dc;
  dc.timing = settings.timing;
  dc.memory = settings.pools;
  dc.qi_qs = unsigned(d.integer("qi_qs", 0, 7));
  dc.pdts = unsigned(d.integer("pdts", 0, 7));
  dc.rid_pasid = uint32_t(d.integer("rid_pasid", 0, (1 << 20) - 1));
  if (dc.rid_pasid >> m.pasid_bits) d.fail("rid_pasid", "beyond iommu.vtd.pasid_bits");
  // The context entry's PASID directory has 2^(PDTS+7) entries of 64 PASIDs each.
  if (!vtd::pasid_within_dir(dc.rid_pasid, uint8_t(dc.pdts)))
    d.fail("rid_pasid", "beyond the PASID directory (driver.vtd.pdts = " + std::to_string(dc.pdts) + ": PASIDs below " +
                            std::to_string(1u << (dc.pdts + 13)) + ")");
  if (auto e = driver::validate(dc); !e.empty()) d.fail("qi_qs", e);

  if (settings.traffic.requester_id > 0xFFFF) t.fail("requester_id", "VT-d requester IDs are 16-bit bus:devfn");
  if (settings.traffic.pasid_valid) {
    if (settings.traffic.pasid >> m.pasid_bits) t.fail("pasid", "beyond iommu.vtd.pasid_bits");
    if (!vtd::pasid_within_dir(settings.traffic.pasid, uint8_t(dc.pdts)))
      t.fail("pasid", "beyond the PASID directory (driver.vtd.pdts)");
  }
  return std::make_unique<VtdLane>(settings, m, dc);
}

}  // namespace iommusim::platforms

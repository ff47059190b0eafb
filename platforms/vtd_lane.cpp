// The VT-d lane: the keys of iommu.vtd and driver.vtd, read into a Vtd (scalable mode) and
// its Linux-like driver.
#include "models/vtd/vtd.h"
#include "platforms/driver/vtd_driver.h"
#include "platforms/iommu_lane.h"
#include "platforms/trapped_lane.h"
#include "platforms/virtio_lane.h"
#include "platforms/vmm/vvtd.h"

namespace iommusim::platforms {

namespace {

class VtdLane : public ModelLane<vtd::Vtd, driver::VtdDriver> {
 public:
  VtdLane(const LaneSettings& s, const vtd::VtdConfig& mc, const driver::VtdDriverConfig& dc)
      : ModelLane(s, mc, dc), endpoints_(s.endpoints) {}

  std::string vendor() const override { return "vtd"; }
  // Linux's identity domain: the device's PASID entry with PGTT=pass-through (DID 1).
  driver::Status bypass_all() override {
    for (const EndpointSettings& e : endpoints_) {
      std::optional<uint32_t> pasid;
      if (e.config.pasid_valid) pasid = e.config.pasid;
      const driver::Status st = drv(e.iommu).attach_pass_through(e.config.requester_id, pasid);
      if (!st.ok) return st;
    }
    return driver::Status{};
  }
  void drain_events() override {
    for (unsigned k = 0; k < units(); ++k) drv(k).drain_faults();
  }
  uint64_t unit_events_recorded(unsigned k) const override { return iommu(k).faults_recorded(); }
  std::vector<CacheView> caches() const override {
    const vtd::Vtd& m = iommu(0);
    return {{"iotlb", &m.iotlb_stats()},       {"context_cache", &m.context_cache_stats()},
            {"pasid_cache", &m.pasid_cache_stats()}, {"fs_psc", &m.fs_psc_stats()},
            {"ss_psc", &m.ss_psc_stats()},     {"gpa_cache", &m.gpa_cache_stats()}};
  }

 private:
  std::vector<EndpointSettings> endpoints_;
};

// vmm.paths = trapped: the guest's VT-d driver behind the VMM's vVT-d
// (platforms/vmm/vvtd.h). VT-d has no vIOMMU object upstream: the VM gets none, and the
// vVT-d keeps the guest's vRID -> device table and the nest parent its HWPTs nest on.
class VtdTrappedLane : public TrappedLane<VtdLane, vmm::VVtd, driver::VtdDriver> {
 public:
  using TrappedLane::TrappedLane;

 protected:
  std::optional<driver::ViommuType> viommu_type() const override { return std::nullopt; }
  driver::Status connect_viommu(vmm::VVtd& viommu, const vmm::Vm& vm, const std::vector<vmm::AssignedDevice>& devices,
                                unsigned k) override {
    viommu.set_parent(vm.parent_id(k));
    for (const vmm::AssignedDevice& d : devices)
      if (d.unit == k) viommu.add_device(uint16_t(d.virt_id), d.dev_id, d.host_pasid());
    return {};
  }
  void drain_guest_events(driver::VtdDriver& guest) override { guest.drain_faults(); }
};

// iommu.vtd: the model (models/vtd/vtd.h).
const Section<vtd::VtdConfig>& model_keys() {
  using C = vtd::VtdConfig;
  common::TranslationCacheNames names;
  names.iotlb = "iotlb"; names.s1_walk_cache = "fs_psc"; names.s2_walk_cache = "ss_psc"; names.ipa_cache = "gpa_cache";
  names.iotlb_what = "IOTLB (DID+PASID tagged)"; names.s1_walk_what = "First-stage paging-structure cache";
  names.s2_walk_what = "Second-stage paging-structure cache"; names.ipa_what = "GPA->HPA cache (nested)";
  static const Section<C> keys =
      Section<C>("The Intel VT-d model in scalable mode (Intel VT-d spec rev 4.x): its capabilities, "
                 "invalidation-queue timing and caches.")
          .number("clock_mhz", &C::clock_mhz, 1000, 1, 100000, "MHz", "remapping-unit clock")
          .integer("haw", &C::haw, 48, 39, 52, "bits", "host address width (CAP.MGAW)")
          .integer("pasid_bits", &C::pasid_bits, 20, 1, 20, "bits", "PASID width (ECAP.PSS + 1)")
          .integer("fault_records", &C::fault_records, 8, 1, vtd::reg::kMaxFaultRecords, "records",
                   "fault recording registers (CAP.NFR + 1)")
          .boolean("fs_5level", &C::fs_5level, true, "5-level first-stage tables (CAP.FL5LP)")
          .boolean("fs_1g", &C::fs_1g, true, "1 GB first-stage pages (CAP.FL1GP)")
          .boolean("ss_2m", &C::ss_2m, true, "2 MB second-stage pages (CAP.SLLPS bit 0)")
          .boolean("ss_1g", &C::ss_1g, true, "1 GB second-stage pages (CAP.SLLPS bit 1)")
          .integer("mamv", &C::mamv, 18, 0, vtd::kMaxAddressMask, "log2 pages",
                   "largest page-selective invalidation, 2^MAMV pages (CAP.MAMV)")
          .integer("translation_cycles", &C::translation_cycles, 2, 0, 10000, "cycles", "request pipeline before the caches")
          .integer("desc_batch", &C::desc_batch, 8, 1, 64, "descriptors", "descriptors fetched per invalidation-queue read")
          .integer("desc_decode_cycles", &C::desc_decode_cycles, 2, 0, 10000, "cycles", "decode of one descriptor")
          .integer("desc_exec_cycles", &C::desc_exec_cycles, 4, 0, 10000, "cycles", "fixed part of every descriptor's execution")
          .integer("wait_cycles", &C::wait_cycles, 4, 0, 10000, "cycles", "inv_wait completion once older descriptors are done")
          .integer("devtlb_inv_cycles", &C::devtlb_inv_cycles, 4, 0, 1000000, "cycles",
                   "device-TLB invalidation: building the Invalidate Request (its trip to the device is the link's)")
          .number("devtlb_inv_timeout_ns", &C::devtlb_inv_timeout_ns, 50000, 1, 1e9, "ns",
                  "inv_wait sets FSTS.ITE when a device-TLB invalidation is not completed within this")
          .section("context_cache", &C::context_cache, cache_keys("Scalable-mode context-entry cache", CacheDefaults(64)))
          .section("pasid_cache", &C::pasid_cache, cache_keys("PASID-entry cache", CacheDefaults(64)))
          .embed(&C::translation, translation_keys(names))
          .check("", [](const C& m) { return vtd::validate(m); });
  return keys;
}

// driver.vtd: the Linux-like driver (platforms/driver/vtd_driver.h).
const Section<driver::VtdDriverConfig>& driver_keys() {
  using D = driver::VtdDriverConfig;
  static const Section<D> keys =
      Section<D>("The VT-d driver: invalidation-queue and PASID-directory sizes.")
          .integer("qi_qs", &D::qi_qs, 1, 0, 7, "log2 pages",
                   "IQA.QS: 2^QS 4 KiB pages of 256-bit descriptors (Linux: 1 = 256 entries)")
          .integer("pdts", &D::pdts, 2, 0, 7, "", "context PDTS: 2^(PDTS+7) PASID-directory entries of 64 PASIDs each")
          .integer("rid_pasid", &D::rid_pasid, 0, 0, (1u << 20) - 1, "", "PASID for requests without one (Linux IOMMU_NO_PASID)")
          .check("rid_pasid",
                 [](const D& d) {
                   return vtd::pasid_within_dir(d.rid_pasid, uint8_t(d.pdts))
                              ? std::string()
                              : "beyond the PASID directory (driver.vtd.pdts = " + std::to_string(d.pdts) +
                                    ": PASIDs below " + std::to_string(1u << (d.pdts + 13)) + ")";
                 })
          .check("", [](const D& d) { return driver::validate(d); });
  return keys;
}

// Reads iommu.vtd and driver.vtd and checks them against the lane's endpoints.
void read_configs(const ConfigReader& s, const ConfigReader& d, const LaneSettings& settings, vtd::VtdConfig& m,
                  driver::VtdDriverConfig& dc) {
  m = model_keys().read(s);
  seed_caches(settings.seed * 13, {&m.context_cache, &m.pasid_cache, &m.translation.iotlb, &m.translation.s1_walk_cache,
                                   &m.translation.s2_walk_cache, &m.translation.ipa_cache});

  dc = read_driver_config(driver_keys(), d, settings);
  if (dc.rid_pasid >> m.pasid_bits) d.fail("rid_pasid", "beyond iommu.vtd.pasid_bits");

  for (const EndpointSettings& e : settings.endpoints) {
    if (e.config.requester_id > 0xFFFF) e.fail("requester_id", "VT-d requester IDs are 16-bit bus:devfn");
    if (e.config.pasid_valid) {
      if (e.config.pasid >> m.pasid_bits) e.fail("pasid", "beyond iommu.vtd.pasid_bits");
      if (!vtd::pasid_within_dir(e.config.pasid, uint8_t(dc.pdts)))
        e.fail("pasid", "beyond the PASID directory (driver.vtd.pdts)");
    }
  }
}

std::unique_ptr<IommuLane> make(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                const LaneSettings& settings) {
  vtd::VtdConfig m;
  driver::VtdDriverConfig dc;
  read_configs(s, d, settings, m, dc);
  return std::make_unique<VtdLane>(settings, m, dc);
}

std::unique_ptr<IommuLane> make_trapped(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                        const LaneSettings& settings) {
  vtd::VtdConfig m;
  driver::VtdDriverConfig host;
  read_configs(s, d, settings, m, host);
  // QEMU's accelerated vVT-d installs the RID_PASID entry only (intel_iommu_accel.c), and
  // the host attaches nested HWPTs to the RID only: a DMA with a PASID would fault, unless
  // the guest's device is that PASID of the physical one (vmm.assign with a pasid).
  const std::vector<VmAssignment> assign = vm_assignment(settings.vmm, settings.endpoints.size());
  for (size_t i = 0; i < settings.endpoints.size(); ++i) {
    const EndpointSettings& e = settings.endpoints[i];
    const bool pasid_assigned = std::any_of(assign.begin(), assign.end(), [i](const VmAssignment& a) {
      return a.endpoint == i && a.pasid;
    });
    if (e.config.pasid_valid && !pasid_assigned)
      e.fail("pasid", "vtd@trapped nests the RID_PASID entry only (QEMU propagates PASID 0): use -1, or assign "
                      "the PASID to a VM (vmm.assign pasid)");
  }
  const driver::VtdDriverConfig guest = guest_driver_config(host, settings);
  auto vc = viommu_config<vmm::VVtdConfig>(settings, settings.vmm.x86_intel, false);
  vc.haw = m.haw;
  vc.pasid_bits = m.pasid_bits;
  vc.mamv = m.mamv;
  vc.fault_records = m.fault_records;
  vc.fs_5level = m.fs_5level;
  vc.fs_1g = m.fs_1g;
  return std::make_unique<VtdTrappedLane>(settings, m, host, guest, vc, "vvtd");
}

// vmm.paths = virtio: the host driver as native, a guest behind a virtio-iommu device.
std::unique_ptr<IommuLane> make_virtio(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                       const LaneSettings& settings) {
  vtd::VtdConfig m;
  driver::VtdDriverConfig host;
  read_configs(s, d, settings, m, host);
  return make_virtio_lane<VtdLane>(settings, m, host, settings.vmm.x86_intel);
}

const RegisterLane kLane{
    {"vtd", [] { return model_keys().info("vtd"); }, [] { return driver_keys().info("vtd"); }, make, make_trapped,
     make_virtio}};

}  // namespace

}  // namespace iommusim::platforms

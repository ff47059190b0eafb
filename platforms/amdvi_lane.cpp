// The AMD IOMMU lane: the keys of iommu.amdvi and driver.amdvi, read into an AmdVi and its
// Linux-like driver; and its trapped lane (a guest's driver behind the VMM's vAMD).
#include <utility>

#include "models/amdvi/amdvi.h"
#include "platforms/driver/amdvi_driver.h"
#include "platforms/iommu_lane.h"
#include "platforms/trapped_lane.h"
#include "platforms/virtio_lane.h"
#include "platforms/vmm/vamdvi.h"

namespace iommusim::platforms {

namespace {

class AmdViLane : public ModelLane<amdvi::AmdVi, driver::AmdViDriver> {
 public:
  AmdViLane(const LaneSettings& s, const amdvi::AmdViConfig& mc, const driver::AmdViDriverConfig& dc)
      : ModelLane(s, mc, dc) {}

  std::string vendor() const override { return "amdvi"; }
  driver::Status bypass_all() override {
    for (unsigned k = 0; k < units(); ++k)
      if (driver::Status st = drv(k).bypass_all(); !st.ok) return st;
    return {};
  }
  void drain_events() override {
    for (unsigned k = 0; k < units(); ++k) drv(k).drain_events();
  }
  uint64_t unit_events_recorded(unsigned k) const override { return iommu(k).events_written(); }
  std::vector<CacheView> caches() const override {
    const amdvi::AmdVi& m = iommu(0);
    return {{"iotlb", &m.iotlb_stats()},         {"dte_cache", &m.dte_cache_stats()},
            {"gcr3_cache", &m.gcr3_cache_stats()}, {"guest_pdc", &m.guest_pdc_stats()},
            {"host_pdc", &m.host_pdc_stats()},   {"gpa_cache", &m.gpa_cache_stats()}};
  }
};

// vmm.paths = trapped: the guest's AMD driver behind the VMM's vAMD
// (platforms/vmm/vamdvi.h), with an IOMMU_VIOMMU_TYPE_AMD vIOMMU; the guest's DeviceIDs
// are its vDEVICEs' virtual IDs.
class AmdViTrappedLane : public TrappedLane<AmdViLane, vmm::VAmdVi, driver::AmdViDriver> {
 public:
  using TrappedLane::TrappedLane;

 protected:
  std::optional<driver::ViommuType> viommu_type() const override { return driver::ViommuType::Amd; }
  driver::Status connect_viommu(vmm::VAmdVi& viommu, const vmm::Vm& vm, const std::vector<vmm::AssignedDevice>& devices,
                                unsigned k) override {
    viommu.set_viommu(vm.viommu_id(k));
    for (const vmm::AssignedDevice& d : devices)
      if (d.unit == k) viommu.add_device(uint16_t(d.virt_id), d.dev_id);
    return {};
  }
  void drain_guest_events(driver::AmdViDriver& guest) override { guest.drain_events(); }
};

// vmm.paths = accelerated: the trapped lane's VM and guest driver over the AMD hardware
// vIOMMU (models/amdvi/viommu.h, the unmerged HW-vIOMMU RFC). Each VM's vIOMMU takes a
// gid on its unit; the guest's command buffer is the hardware's (its head and tail in the
// VF page, no trap), so its records show the hardware queue's parts, not trapped ones.
class AmdViAcceleratedLane : public AmdViTrappedLane {
 public:
  template <class... Args>
  explicit AmdViAcceleratedLane(Args&&... args) : AmdViTrappedLane(std::forward<Args>(args)...) {
    // No trapping doorbell: the guest driver's records take the hardware queue's traces.
    for (auto& vm : vms_)
      for (auto& g : vm->guests)
        if (g) {
          g->drv.set_trapping_doorbell(nullptr);
          g->drv.report_trapped_parts();
        }
  }

 protected:
  driver::Status connect_viommu(vmm::VAmdVi& viommu, const vmm::Vm& vm, const std::vector<vmm::AssignedDevice>& devices,
                                unsigned k) override {
    if (driver::Status st = AmdViTrappedLane::connect_viommu(viommu, vm, devices, k); !st.ok) return st;
    const driver::ViommuHandle h = vm.iommufd().viommu_handle(vm.viommu_id(k));
    const std::optional<unsigned> gid = drv(k).viommu_gid(h);
    if (!gid) return driver::Status::fail("amdvi@accelerated: the vIOMMU got no hardware guest ID");
    viommu.accelerate(iommu(k), drv(k), h, *gid);
    return {};
  }
};

// iommu.amdvi: the model (models/amdvi/amdvi.h).
const Section<amdvi::AmdViConfig>& model_keys() {
  using C = amdvi::AmdViConfig;
  using amdvi::Caps;
  common::TranslationCacheNames names;
  names.iotlb = "iotlb"; names.s1_walk_cache = "guest_pdc"; names.s2_walk_cache = "host_pdc"; names.ipa_cache = "gpa_cache";
  names.iotlb_what = "IOTLB (DomainID+PASID tagged)"; names.s1_walk_what = "Guest (v2) page-directory cache";
  names.s2_walk_what = "Host (v1) page-directory cache"; names.ipa_what = "GPA->SPA cache (nested)";
  // What the Extended Feature Register advertises (AMD IOMMU spec 48882, section 3.4: EFR at MMIO 0x30).
  const Section<Caps> caps =
      Section<Caps>("")
          .integer("hats", &Caps::hats, 2, 0, 2, "", "EFR.HATS: host table levels, 0/1/2 = 4/5/6")
          .integer("gats", &Caps::gats, 0, 0, 1, "", "EFR.GATS: guest table levels, 0/1 = 4/5")
          .integer("glx_sup", &Caps::glx_sup, 1, 0, 2, "", "EFR.GLXSup: the largest DTE.GLX (GCR3 table levels - 1)")
          .integer("pasmax", &Caps::pasmax, 15, 0, 19, "bits - 1", "EFR.PASmax: PASID width - 1");
  static const Section<C> keys =
      Section<C>("The AMD IOMMU model (AMD IOMMU spec 48882): its EFR, command-buffer timing and caches.")
          .number("clock_mhz", &C::clock_mhz, 1000, 1, 100000, "MHz", "IOMMU clock")
          .embed(&C::caps, caps)
          .integer("translation_cycles", &C::translation_cycles, 2, 0, 10000, "cycles", "request pipeline before the IOTLB")
          .integer("cmd_batch", &C::cmd_batch, 8, 1, 64, "commands", "commands fetched per command-buffer read")
          .integer("cmd_decode_cycles", &C::cmd_decode_cycles, 2, 0, 10000, "cycles", "decode of one command")
          .integer("cmd_exec_cycles", &C::cmd_exec_cycles, 4, 0, 10000, "cycles", "fixed part of every command's execution")
          .integer("completion_wait_cycles", &C::completion_wait_cycles, 4, 0, 10000, "cycles",
                   "COMPLETION_WAIT once older commands are done")
          .integer("iotlb_inv_cycles", &C::iotlb_inv_cycles, 4, 0, 1000000, "cycles",
                   "INVALIDATE_IOTLB_PAGES: building the Invalidate Request (its trip to the device is the link's)")
          .section("dte_cache", &C::dte_cache, cache_keys("Device-table-entry cache", CacheDefaults(64)))
          .section("gcr3_cache", &C::gcr3_cache, cache_keys("GCR3-table-entry cache", CacheDefaults(64)))
          .embed(&C::translation, translation_keys(names))
          .check("", [](const C& m) { return amdvi::validate(m); });
  return keys;
}

// driver.amdvi: the Linux-like driver (platforms/driver/amdvi_driver.h).
const Section<driver::AmdViDriverConfig>& driver_keys() {
  using D = driver::AmdViDriverConfig;
  static const Section<D> keys =
      Section<D>("The AMD IOMMU driver: command buffer, event log, device table and GCR3 table sizes.")
          .integer("cmd_buf_log2", &D::cmd_buf_log2, 9, 8, 15, "log2 entries", "command buffer size (Linux: 512 entries)")
          .integer("evt_log_log2", &D::evt_log_log2, 9, 8, 15, "log2 entries", "event log size")
          .integer("device_table_entries", &D::device_table_entries, 256, 1, 65536, "entries",
                   "DeviceIDs the device table covers (rounded up to a 4 KiB table)")
          .integer("glx", &D::glx, 0, 0, 2, "", "DTE.GLX: GCR3 table levels - 1 (0: 512 PASIDs)")
          .integer("inv_timeout", &D::inv_timeout, 4, 0, 6, "",
                   "Control.InvTimeOut for ATS invalidations: 0 none, n: 10^(n-1) ms (Linux: 4, 1 s)")
          .check("", [](const D& d) { return driver::validate(d); });
  return keys;
}

// Reads iommu.amdvi and driver.amdvi and checks them against the lane's endpoints.
void read_configs(const ConfigReader& s, const ConfigReader& d, const LaneSettings& settings, amdvi::AmdViConfig& m,
                  driver::AmdViDriverConfig& dc) {
  m = model_keys().read(s);
  seed_caches(settings.seed * 13, {&m.dte_cache, &m.gcr3_cache, &m.translation.iotlb, &m.translation.s1_walk_cache,
                                   &m.translation.s2_walk_cache, &m.translation.ipa_cache});

  dc = read_driver_config(driver_keys(), d, settings);
  if (dc.glx > m.caps.glx_sup) d.fail("glx", "exceeds iommu.amdvi.glx_sup");

  for (const EndpointSettings& e : settings.endpoints) {
    if (e.config.requester_id >= dc.device_table_entries)
      e.fail("requester_id", "beyond the AMD device table (driver.amdvi.device_table_entries)");
    if (e.config.pasid_valid &&
        (!amdvi::gcr3_pasid_fits(e.config.pasid, dc.glx) || (e.config.pasid >> m.caps.pasid_bits())))
      e.fail("pasid", "beyond the AMD GCR3 table (driver.amdvi.glx) or EFR.PASmax");
  }
}

std::unique_ptr<IommuLane> make(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                const LaneSettings& settings) {
  amdvi::AmdViConfig m;
  driver::AmdViDriverConfig dc;
  read_configs(s, d, settings, m, dc);
  return std::make_unique<AmdViLane>(settings, m, dc);
}

// The guest's driver and its vAMD, as the trapped and accelerated lanes both build them.
std::pair<driver::AmdViDriverConfig, vmm::VAmdViConfig> guest_and_vamd(const LaneSettings& settings,
                                                                       const amdvi::AmdViConfig& m,
                                                                       const driver::AmdViDriverConfig& host) {
  driver::AmdViDriverConfig guest = guest_driver_config(host, settings);
  guest.gcr3_tables = settings.guest.amd_gcr3;
  auto vc = viommu_config<vmm::VAmdViConfig>(settings, settings.vmm.x86_amd, false);
  vc.caps = m.caps;
  return {guest, vc};
}

std::unique_ptr<IommuLane> make_trapped(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                        const LaneSettings& settings) {
  amdvi::AmdViConfig m;
  driver::AmdViDriverConfig host;
  read_configs(s, d, settings, m, host);
  host.nested_domids = settings.vmm.amd_domid;
  const auto [guest, vc] = guest_and_vamd(settings, m, host);
  return std::make_unique<AmdViTrappedLane>(settings, m, host, guest, vc, "vamd");
}

// vmm.paths = accelerated: as trapped, with the hardware vIOMMU on (one gid per VM and unit).
std::unique_ptr<IommuLane> make_accelerated(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                            const LaneSettings& settings) {
  amdvi::AmdViConfig m;
  driver::AmdViDriverConfig host;
  read_configs(s, d, settings, m, host);
  refuse_pasid_assignment(settings, "amdvi@accelerated cannot nest one PASID of a device (one DTE, one host table)");
  // The hardware maps one hDomID per guest DomainID (the DomainID map table).
  if (settings.vmm.amd_domid == driver::AmdNestedDomainIds::PerDevice)
    throw ConfigError("vmm.amd_domid: per_device gives a guest DomainID several host DomainIDs; the hardware vIOMMU's "
                      "DomainID map holds one (amdvi@accelerated)");
  m.caps.viommu = true;
  m.viommu_guests = settings.vmm.vms;
  host.hw_viommu_guests = settings.vmm.vms;
  host.viommu_devid = m.viommu_devid;
  host.nested_domids = settings.vmm.amd_domid;
  // The IOMMU's own DeviceID and the gids' translation DeviceIDs (the top of the table).
  const unsigned dte_count = unsigned(((uint64_t(host.device_table_entries) * 32 + 4095) & ~uint64_t{4095}) / 32);
  for (const EndpointSettings& e : settings.endpoints) {
    if (e.config.requester_id == m.viommu_devid)
      e.fail("requester_id", "is the IOMMU's own DeviceID on amdvi@accelerated (00:00.2)");
    if (e.config.requester_id + settings.vmm.vms >= dte_count)
      e.fail("requester_id", "is a hardware vIOMMU translation DeviceID on amdvi@accelerated (the top " +
                                 std::to_string(settings.vmm.vms) + " of the device table)");
  }
  auto [guest, vc] = guest_and_vamd(settings, m, host);
  guest.hw_viommu_guests = 0;
  // Its head / tail accesses are real posted MMIO to the VF page (no trap): the host's costs.
  guest.timing.mmio_write_ns = host.timing.mmio_write_ns;
  guest.timing.mmio_read_ns = host.timing.mmio_read_ns;
  vc.accelerated = true;
  return std::make_unique<AmdViAcceleratedLane>(settings, m, host, guest, vc, "vamd");
}

// vmm.paths = virtio: the host driver as native, a guest behind a virtio-iommu device.
std::unique_ptr<IommuLane> make_virtio(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                       const LaneSettings& settings) {
  amdvi::AmdViConfig m;
  driver::AmdViDriverConfig host;
  read_configs(s, d, settings, m, host);
  return make_virtio_lane<AmdViLane>(settings, m, host, settings.vmm.x86_amd);
}

const RegisterLane kLane{{"amdvi", [] { return model_keys().info("amdvi"); },
                          [] { return driver_keys().info("amdvi"); }, make, make_trapped, make_virtio,
                          make_accelerated}};

}  // namespace

}  // namespace iommusim::platforms

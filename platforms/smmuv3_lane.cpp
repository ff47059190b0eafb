// The SMMUv3 lane: the keys of iommu.smmuv3 and driver.smmuv3, read into an Smmuv3 and its
// Linux-like driver.
#include <utility>

#include "models/smmuv3/cmdqv.h"
#include "models/smmuv3/smmuv3.h"
#include "platforms/driver/smmuv3_driver.h"
#include "platforms/iommu_lane.h"
#include "platforms/trapped_lane.h"
#include "platforms/virtio_lane.h"
#include "platforms/vmm/vsmmuv3.h"

namespace iommusim::platforms {

namespace {

class Smmuv3Lane : public ModelLane<smmuv3::Smmuv3, driver::Smmuv3Driver> {
 public:
  Smmuv3Lane(const LaneSettings& s, const smmuv3::Smmuv3Config& mc, const driver::Smmuv3DriverConfig& dc)
      : ModelLane(s, mc, dc) {}

  std::string vendor() const override { return "smmuv3"; }
  driver::Status bypass_all() override {
    for (unsigned k = 0; k < units(); ++k) drv(k).global_bypass();
    return {};
  }
  void drain_events() override {
    for (unsigned k = 0; k < units(); ++k) drv(k).drain_events();
  }
  uint64_t unit_events_recorded(unsigned k) const override { return iommu(k).events_written(); }
  std::vector<CacheView> caches() const override {
    const smmuv3::Smmuv3& m = iommu(0);
    return {{"iotlb", &m.iotlb_stats()}, {"config_cache", &m.config_cache_stats()},
            {"s1_walk_cache", &m.s1_walk_cache_stats()}, {"s2_walk_cache", &m.s2_walk_cache_stats()},
            {"ipa_cache", &m.ipa_cache_stats()}};
  }
};

// vmm.paths = trapped: the guest's SMMUv3 driver behind the VMM's vSMMU
// (platforms/vmm/vsmmuv3.h), with an IOMMU_VIOMMU_TYPE_ARM_SMMUV3 vIOMMU.
class Smmuv3TrappedLane : public TrappedLane<Smmuv3Lane, vmm::VSmmuv3, driver::Smmuv3Driver> {
 public:
  using TrappedLane::TrappedLane;

 protected:
  std::optional<driver::ViommuType> viommu_type() const override { return driver::ViommuType::ArmSmmuv3; }
  driver::Status connect_viommu(vmm::VSmmuv3& viommu, const vmm::Vm& vm, const std::vector<vmm::AssignedDevice>& devices,
                                unsigned k) override {
    viommu.set_viommu(vm.viommu_id(k));
    for (const vmm::AssignedDevice& d : devices)
      if (vmm::Errno e = d.unit == k ? viommu.add_device(d.virt_id, d.dev_id) : vmm::Errno::Ok; e != vmm::Errno::Ok)
        return driver::Status::fail(std::string("VMM: IOMMU_HWPT_ALLOC (abort/bypass) failed with ") + vmm::errno_name(e));
    return {};
  }
  void drain_guest_events(driver::Smmuv3Driver& guest) override { guest.drain_events(); }
};

// vmm.paths = accelerated: the trapped lane's VM and guest driver, with a Tegra241 CMDQV
// beside each SMMU (models/smmuv3/cmdqv.h). The VM's vIOMMU is
// IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV (a VINTF with its VMID); the guest's driver puts its
// TLBI_NH_ASID / TLBI_NH_VA / ATC_INV batches on its VCMDQs (vmm.vcmdqs, cpu % n), which the
// SMMU reads from guest RAM itself; the rest still traps to the vSMMU (docs/vmm.md,
// "Accelerated guest queues (SMMUv3 CMDQV)").
class Smmuv3AcceleratedLane : public Smmuv3TrappedLane {
 public:
  template <class... A>
  Smmuv3AcceleratedLane(const smmuv3::CmdqvConfig& cq, unsigned vcmdqs, const LaneSettings& s, A&&... a)
      : Smmuv3TrappedLane(s, std::forward<A>(a)...), vcmdqs_(vcmdqs) {
    for (unsigned k = 0; k < units(); ++k) {
      cmdqvs_.push_back(std::make_unique<smmuv3::Cmdqv>((s.name + unit_name("_cmdqv", k, units())).c_str(), cq, iommu(k)));
      drv(k).set_cmdqv(cmdqvs_.back().get());
    }
  }
  void register_stats(common::StatRegistry& reg, const std::string& p) const override {
    Smmuv3TrappedLane::register_stats(reg, p);
    // The VMs' VINTFs are 1.. in the order the VMs are built (VINTF 0 is the host's).
    for (unsigned k = 0; k < units(); ++k) {
      std::vector<unsigned> queues;
      for (unsigned v = 0; v < vms_.size(); ++v)
        if (vms_[v]->guests[k])
          for (unsigned l = 0; l < vcmdqs_; ++l) queues.push_back((v + 1) * cmdqvs_[k]->lvcmdqs_per_vintf() + l);
      cmdqvs_[k]->register_stats(reg, p + "." + unit_name("iommu", k, units()) + ".cmdqv", queues);
    }
  }

 protected:
  std::optional<driver::ViommuType> viommu_type() const override { return driver::ViommuType::Tegra241Cmdqv; }
  driver::Status connect_viommu(vmm::VSmmuv3& viommu, const vmm::Vm& vm, const std::vector<vmm::AssignedDevice>& devices,
                                unsigned k) override {
    if (driver::Status st = Smmuv3TrappedLane::connect_viommu(viommu, vm, devices, k); !st.ok) return st;
    const unsigned vintf = drv(k).vintf_of(vm.iommufd().viommu_handle(vm.viommu_id(k)));
    if (!vintf) return driver::Status::fail("VMM: the vIOMMU has no CMDQV VINTF");
    viommu.set_guest_vintf(*cmdqvs_[k], vintf, cmdqvs_[k]->lvcmdqs_per_vintf());
    return {};
  }

 private:
  unsigned vcmdqs_;
  std::vector<std::unique_ptr<smmuv3::Cmdqv>> cmdqvs_;   // per unit
};

// iommu.smmuv3: the model (models/smmuv3/smmuv3.h).
const Section<smmuv3::Smmuv3Config>& model_keys() {
  using C = smmuv3::Smmuv3Config;
  static const Section<C> keys =
      Section<C>("The Arm SMMUv3 model (Arm IHI 0070): its ID registers, command-queue timing and caches.")
          .number("clock_mhz", &C::clock_mhz, 1000, 1, 100000, "MHz", "SMMU clock")
          .integer("sid_bits", &C::sid_bits, 16, 1, 32, "bits", "StreamID width (IDR1.SIDSIZE)")
          .integer("ssid_bits", &C::ssid_bits, 20, 0, 20, "bits", "SubstreamID width (IDR1.SSIDSIZE)")
          .boolean("range_invalidation", &C::range_invalidation, true, "range invalidation commands (IDR3.RIL)")
          .integer("translation_cycles", &C::translation_cycles, 2, 0, 10000, "cycles", "request pipeline before the IOTLB")
          .integer("cmd_batch", &C::cmd_batch, 8, 1, 64, "commands", "commands fetched per command-queue read")
          .integer("cmd_decode_cycles", &C::cmd_decode_cycles, 2, 0, 10000, "cycles", "decode of one command")
          .integer("cmd_exec_cycles", &C::cmd_exec_cycles, 4, 0, 10000, "cycles", "fixed part of every command's execution")
          .integer("sync_cycles", &C::sync_cycles, 4, 0, 10000, "cycles", "CMD_SYNC completion once older commands are done")
          .integer("atc_inv_cycles", &C::atc_inv_cycles, 4, 0, 1000000, "cycles",
                   "CMD_ATC_INV: building the Invalidate Request (its trip to the device is the link's)")
          .number("atc_inv_timeout_ns", &C::atc_inv_timeout_ns, 50000, 1, 1e9, "ns",
                  "CMD_SYNC fails with CERROR_ATC_INV_SYNC when an ATC invalidation is not completed within this")
          .integer("ecmdqs", &C::ecmdqs, 0, 0, 256, "queues",
                   "SMMUv3.3 ECMDQs (IDR1.ECMDQ, IDR6), one control page; the host driver puts its CPU i's commands on "
                   "ECMDQ i % ecmdqs, CPUs numbered as threads first enter the driver (init is CPU 0, so dma_api CPU "
                   "j is driver CPU j + 1); 0: none, the CMDQ only; a power of two")
          .check("ecmdqs", [](const C& m) {
            return m.ecmdqs & (m.ecmdqs - 1) ? std::string("must be 0 or a power of two") : std::string();
          })
          .section("config_cache", &C::config_cache, cache_keys("STE/CD configuration cache", CacheDefaults(64)))
          .embed(&C::translation, translation_keys(common::TranslationCacheNames{}))
          .check("", [](const C& m) { return smmuv3::validate(m); });
  return keys;
}

// driver.smmuv3: the Linux-like driver (platforms/driver/smmuv3_driver.h).
const Section<driver::Smmuv3DriverConfig>& driver_keys() {
  using D = driver::Smmuv3DriverConfig;
  using driver::SmmuSyncMode;
  static const Section<D> keys =
      Section<D>("The SMMUv3 driver: queue and stream-table sizes, and how it waits for CMD_SYNC.")
          .choice("sync_mode", &D::sync_mode, SmmuSyncMode::MsiPoll,
                  {{"msi_poll", SmmuSyncMode::MsiPoll}, {"sev_poll", SmmuSyncMode::SevPoll}},
                  "CMD_SYNC completion: msi_poll polls the word its MSI clears (Linux), sev_poll polls CMDQ_CONS")
          .integer("cmdq_log2", &D::cmdq_log2, 8, 2, 19, "log2 entries", "command queue size (CMDQ_BASE.LOG2SIZE)")
          .integer("evtq_log2", &D::evtq_log2, 7, 1, 19, "log2 entries", "event queue size (EVENTQ_BASE.LOG2SIZE)")
          .boolean("two_level_stream_table", &D::two_level_stream_table, false,
                   "two-level stream table (STRTAB_BASE_CFG.FMT); linear when false")
          .integer("stream_table_log2", &D::stream_table_log2, 8, 1, 24, "log2 StreamIDs", "StreamIDs the stream table covers")
          .check("", [](const D& d) { return driver::validate(d); });
  return keys;
}

// Reads iommu.smmuv3 and driver.smmuv3 and checks them against the lane's endpoints.
void read_configs(const ConfigReader& s, const ConfigReader& d, const LaneSettings& settings, smmuv3::Smmuv3Config& m,
                  driver::Smmuv3DriverConfig& dc) {
  m = model_keys().read(s);
  seed_caches(settings.seed * 11, {&m.config_cache, &m.translation.iotlb, &m.translation.s1_walk_cache,
                                   &m.translation.s2_walk_cache, &m.translation.ipa_cache});
  dc = read_driver_config(driver_keys(), d, settings);
  if (dc.stream_table_log2 > m.sid_bits) d.fail("stream_table_log2", "exceeds iommu.smmuv3.sid_bits");
  // The host driver's CMDQ and ECMDQs, each aligned to its size, come out of each IOMMU's
  // share of the host table pool besides its tables: rings that fill it cannot work.
  const uint64_t ring = uint64_t(16) << dc.cmdq_log2;
  const uint64_t pool = settings.pools.table_pool_bytes / settings.iommus;
  if (m.ecmdqs && (1 + uint64_t(m.ecmdqs)) * ring >= pool)
    s.fail("ecmdqs", std::to_string(m.ecmdqs) + " ECMDQs and the CMDQ of " + std::to_string(ring) +
                         " bytes each (driver.smmuv3.cmdq_log2 = " + std::to_string(dc.cmdq_log2) + ") fill the " +
                         std::to_string(pool) + "-byte host table pool (platform.table_pool_bytes" +
                         (settings.iommus > 1 ? " / platform.iommus" : "") + "); lower either, or raise the pool");
  for (const EndpointSettings& e : settings.endpoints) {
    if (e.config.requester_id >> dc.stream_table_log2)
      e.fail("requester_id", "beyond the SMMUv3 stream table (driver.smmuv3.stream_table_log2)");
    if (e.config.pasid_valid && e.config.pasid >> dc.cd_table_log2)
      e.fail("pasid", "beyond the SMMUv3 CD table (" + std::to_string(1u << dc.cd_table_log2) + " SubstreamIDs)");
  }
}

std::unique_ptr<IommuLane> make(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                const LaneSettings& settings) {
  smmuv3::Smmuv3Config m;
  driver::Smmuv3DriverConfig dc;
  read_configs(s, d, settings, m, dc);
  return std::make_unique<Smmuv3Lane>(settings, m, dc);
}

// The guest's driver and its vSMMU, as the trapped and accelerated lanes both build them:
// the same driver on guest RAM, a linear stream table (all the vSMMU offers).
std::pair<driver::Smmuv3DriverConfig, vmm::VSmmuConfig> guest_and_vsmmu(const LaneSettings& settings,
                                                                        const smmuv3::Smmuv3Config& m,
                                                                        const driver::Smmuv3DriverConfig& host) {
  driver::Smmuv3DriverConfig guest = guest_driver_config(host, settings);
  guest.two_level_stream_table = false;
  auto vc = viommu_config<vmm::VSmmuConfig>(settings, settings.vmm.arm64, true);
  vc.sid_bits = m.sid_bits;
  vc.ssid_bits = m.ssid_bits;
  vc.range_invalidation = m.range_invalidation;
  return {guest, vc};
}

std::unique_ptr<IommuLane> make_trapped(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                        const LaneSettings& settings) {
  smmuv3::Smmuv3Config m;
  driver::Smmuv3DriverConfig host;
  read_configs(s, d, settings, m, host);
  host.nested_vmids = settings.vmm.arm_vmid;
  if (settings.vmm.inject == vmm::VmmFault::WrongVintfVmid)
    throw ConfigError("vmm.inject: wrong_vintf_vmid is a bug of smmuv3@accelerated (vmm.paths = accelerated alone)");
  auto [guest, vc] = guest_and_vsmmu(settings, m, host);
  if (settings.vmm.inject != vmm::VmmFault::DropHostFlush) vc.inject = settings.vmm.inject;   // that one is vmm::Vm's
  return std::make_unique<Smmuv3TrappedLane>(settings, m, host, guest, vc, "vsmmu");
}

std::unique_ptr<IommuLane> make_accelerated(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                            const LaneSettings& settings) {
  smmuv3::Smmuv3Config m;
  driver::Smmuv3DriverConfig host;
  read_configs(s, d, settings, m, host);
  refuse_pasid_assignment(settings, "smmuv3@accelerated cannot nest one PASID of a device (one STE, one stage 2)");
  const smmuv3::CmdqvConfig cq;
  const unsigned per_vintf = 1u << (cq.vcmdqs_log2 - cq.vintfs_log2);
  if (settings.vmm.vcmdqs > per_vintf)
    throw ConfigError("vmm.vcmdqs: " + std::to_string(settings.vmm.vcmdqs) + " VCMDQs, a CMDQV VINTF has " +
                      std::to_string(per_vintf));
  // Each guest driver's slice of the guest table pool (per VM and unit) holds its CMDQ and its
  // VCMDQs, each aligned to its size, besides its tables: rings that fill it cannot work.
  const uint64_t ring = uint64_t(16) << host.cmdq_log2;
  const uint64_t slice = settings.pools.guest_pool_bytes / (settings.vmm.vms * settings.iommus);
  if ((1 + settings.vmm.vcmdqs) * ring >= slice)
    throw ConfigError("driver.smmuv3.cmdq_log2: the guest's CMDQ and " + std::to_string(settings.vmm.vcmdqs) +
                      " VCMDQ(s) of " + std::to_string(ring) + " bytes each fill its " + std::to_string(slice) +
                      "-byte share of platform.guest_table_pool_bytes; lower it or vmm.vcmdqs, or raise the pool");
  if (settings.vmm.vms >= (1u << cq.vintfs_log2))
    throw ConfigError("vmm.vms: smmuv3@accelerated gives each VM a CMDQV VINTF; the CMDQV has " +
                      std::to_string((1u << cq.vintfs_log2) - 1) + " besides the host's");
  // A VINTF inserts one VMID: the guest's TLBIs cannot fan out to per-HWPT VMIDs.
  if (settings.vmm.arm_vmid != driver::ArmNestedVmids::PerViommu)
    throw ConfigError("vmm.arm_vmid: smmuv3@accelerated needs per_viommu (a CMDQV VINTF inserts one VMID)");
  if (settings.vmm.inject != vmm::VmmFault::None && settings.vmm.inject != vmm::VmmFault::WrongVintfVmid)
    throw ConfigError("vmm.inject: drop_tlbi and drop_atc_inv drop forwarded commands, which smmuv3@accelerated's "
                      "TLBIs are not; drop_host_flush needs a work queue (vmm.assign pasid), which it refuses; "
                      "wrong_vintf_vmid is its injected bug");
  host.inject_wrong_vintf_vmid = settings.vmm.inject == vmm::VmmFault::WrongVintfVmid;
  host.nested_vmids = settings.vmm.arm_vmid;
  auto [guest, vc] = guest_and_vsmmu(settings, m, host);
  guest.vcmdqs = settings.vmm.vcmdqs;
  vc.accelerated = true;   // vc.inject stays none: the vSMMU forwards nothing the bugs drop
  vc.direct_mmio_read_ns = host.timing.mmio_read_ns;
  vc.direct_mmio_write_ns = host.timing.mmio_write_ns;
  return std::make_unique<Smmuv3AcceleratedLane>(cq, settings.vmm.vcmdqs, settings, m, host, guest, vc, "vsmmu");
}

// vmm.paths = virtio: the host driver as native, a guest behind a virtio-iommu device.
std::unique_ptr<IommuLane> make_virtio(const ConfigReader& s, const ConfigReader& d, const ConfigReader&,
                                       const LaneSettings& settings) {
  smmuv3::Smmuv3Config m;
  driver::Smmuv3DriverConfig host;
  read_configs(s, d, settings, m, host);
  return make_virtio_lane<Smmuv3Lane>(settings, m, host, settings.vmm.arm64);
}

const RegisterLane kLane{{"smmuv3", [] { return model_keys().info("smmuv3"); },
                          [] { return driver_keys().info("smmuv3"); }, make, make_trapped, make_virtio,
                          make_accelerated}};

}  // namespace

}  // namespace iommusim::platforms

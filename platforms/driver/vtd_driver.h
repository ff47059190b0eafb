// VT-d (scalable mode) backend of the host driver, modelled on Linux drivers/iommu/intel:
// it lays out the root table, scalable-mode context tables, PASID directories and tables,
// page tables and the invalidation queue (256-bit descriptors, IQA.DW=1) in simulated
// memory, then drives the remapping unit through MMIO and queued invalidation.
//
// Domains get a DID each (0 and 1 reserved as in Linux: 0 for caching mode, 1 =
// FLPT_DEFAULT_DID, used here for pass-through). Stage1 = x86 4-level first stage,
// Stage2 = second stage AW=2 (4 levels), Nested = guest x86 first stage (FSPTPTR is the
// guest table root GPA) over the parent's second stage, with the nested domain's own DID.
//
// Invalidations follow Linux cache.c (VT-d spec section 6.5.2): a range on a first-stage
// or nested domain is P_IOTLB per attached PASID (page-selective, or all-in-PASID when the
// range needs AM > MAMV); on a second-stage domain IOTLB PSI (DSI when AM > MAMV), and a
// nest parent also flushes each nested DID on it. A domain flush is P_IOTLB(DID, PASID,
// all) per attached PASID, or IOTLB DSI. Every batch ends with inv_wait SW=1 and the
// driver polls the status word (qi_submit_sync). FSTS.IQE is handled as qi_check_fault:
// the bad descriptor is replaced by a harmless inv_wait, IQE is cleared and the error
// is counted. A new PASID/context entry needs no invalidation when CAP.CM = 0 (the
// hardware never caches non-present entries); with CAP.CM (an emulated unit: its VMM learns
// of new entries this way) it gets Linux's caching-mode flushes (device_pasid_table_setup,
// pasid_flush_caches). Replacing a present PASID entry issues Linux's tear-down sequence
// first (clear-then-update: Linux 6.19 dropped the in-place intel_pasid_replace_* helpers,
// which risked a torn 512-bit entry).
//
// Nesting for a VMM (NestingOps, platforms/driver/nesting.h), as Linux intel/nested.c and
// pasid.c: VT-d has no vIOMMU type, so a VMM allocates a user-managed nested domain
// straight on its nest parent (intel_iommu_domain_alloc_nested), holding the guest's
// iommu_hwpt_vtd_s1, with a DID of its own. Attaching it (intel_nested_attach_dev) checks
// the address width and flags against CAP/ECAP (intel_pasid_setup_nested) and writes the
// RID_PASID entry as pasid_pte_config_nestd does: PGTT nested, FSPTPTR = the guest's
// table GPA, FSPM for 57 bits, SRE / WPE (only with SRE) / EAFE from the flags, PWSNP
// from ECAP.SMPWCS, the parent's SSPTPTR and AW, the nested DID; a present entry is torn
// down first. The guest's invalidations (intel_nested_cache_invalidate_user) are checked
// per entry and become cache_tag_flush_range on the nested domain: P_IOTLB (DID, PASID)
// per attached PASID and dev-TLB for ATS devices, one inv_wait per entry. A nested domain
// allocated with IOMMU_HWPT_ALLOC_PASID may also go on a PASID (intel_nested_set_dev_pasid):
// that PASID's own entry gets the same nested setup, so every PASID of a device may nest
// over a different parent (another VM's stage 2), with its own DID. Guest faults, a MODEL
// EXTENSION (upstream has no VT-d vEVENTQ type): a fault record whose reason is a
// first-stage one, of a (RID, PASID) attached to a user-managed nested domain, goes as its
// 128-bit FRCD image to the vEVENTQ on that domain's nest parent (VeventqType::VtdExt); the
// host keeps second-stage and configuration faults. Not modelled: dirty tracking (SSADE),
// PGSNP (force_snooping), the extra dev-TLB flush quirk.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/vtd/commands.h"
#include "models/vtd/faults.h"
#include "models/vtd/registers.h"
#include "models/vtd/structures.h"
#include "models/vtd/register_block.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"

namespace iommusim::driver {

struct VtdDriverConfig {
  DriverTiming timing;
  DriverMemory memory;   // guest pool: nested first-stage tables
  unsigned qi_qs = 1;    // IQA.QS: 2^QS 4 KiB pages (Linux: 1 -> 256 x 32 B)
  unsigned pdts = 2;     // context PDTS: 2^(PDTS+7) PASID-directory entries (2: one 4 KiB page)
  uint32_t rid_pasid = 0;   // Linux IOMMU_NO_PASID
};
std::string validate(const VtdDriverConfig& c);

class VtdDriver : public DriverBase, public NestingOps, private DriverQueue::Hooks {
 public:
  // Programs `iommu`: the VT-d model, or a VMM's emulated vVT-d (a guest's driver).
  VtdDriver(sc_core::sc_module_name name, const VtdDriverConfig& cfg, vtd::ProgrammingInterface& iommu,
            DriverMemoryRef memory);
  ~VtdDriver() override;

  std::string vendor() const override { return "vtd"; }
  Status init() override;
  Status invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) override;
  Status invalidate_domain(DomainId d) override;
  Status sync() override;
  // Identity mapping for (rid, pasid or RID_PASID): PGTT=pass-through with DID 1.
  Status attach_pass_through(uint32_t rid, std::optional<uint32_t> pasid);
  // Linux dmar_fault: reads FSTS, consumes pending FRCD records from FRI, clears F, then
  // clears PFO/PPF. A first-stage fault of a device nested through iommufd goes to its
  // nest parent's vEVENTQ instead (report_to_vm, a MODEL EXTENSION). Returns the records
  // consumed.
  unsigned drain_faults();
  // Records reported to a VM's vEVENTQ so far.
  uint64_t events_reported() const { return events_reported_.value(); }
  uint64_t faults_seen(vtd::FaultReason r) const { return faults_by_reason_[static_cast<uint8_t>(r)]; }
  const std::vector<vtd::FaultRecord>& fault_log() const { return fault_log_; }

  // Queues raw descriptors plus an inv_wait and waits (tests use it to inject bad ones).
  Status submit(const std::vector<vtd::DescWords>& descs, const std::string& op);
  uint64_t queue_errors_recovered() const { return errors_recovered_; }
  uint16_t did_of(DomainId d) const;
  uint64_t root_table() const { return root_; }
  uint64_t queue_base() const { return iq_.base(); }
  uint64_t pasid_entry_address(uint32_t rid, uint32_t pasid) const;
  const vtd::reg::Capability& cap() const { return cap_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

  // NestingOps
  // VT-d has no upstream vIOMMU type (Linux intel_iommu_ops has no get_viommu_size).
  bool supports_viommu(ViommuType) const override { return false; }
  Errno viommu_init(ViommuType, DomainId, ViommuHandle*) override { return Errno::OpNotSupp; }
  Errno alloc_nested(ViommuHandle, uint32_t, const UserData&, DomainId*) override { return Errno::OpNotSupp; }
  Errno set_vdevice(ViommuHandle, uint64_t, std::optional<uint32_t>) override { return Errno::OpNotSupp; }
  Errno cache_invalidate(ViommuHandle, InvalidateDataType, const void*, uint32_t, uint32_t* entry_num) override {
    *entry_num = 0;
    return Errno::OpNotSupp;
  }
  uint32_t viommu_tag(ViommuHandle) const override { return 0; }
  bool nests_on_parent() const override { return true; }
  void set_parent_event_sink(DomainId parent, ViommuEventSink* sink, uint32_t owner) override;
  Errno alloc_nested_on_parent(DomainId parent, uint32_t flags, const UserData& data, DomainId* out) override;
  Errno attach_nested(uint32_t rid, DomainId nested) override;
  Errno attach_nested_pasid(uint32_t rid, uint32_t pasid, DomainId nested) override;
  Errno cache_invalidate_hwpt(DomainId nested, InvalidateDataType type, const void* entries, uint32_t entry_len,
                              uint32_t* entry_num) override;

 private:
  struct VtdDomain : Domain {
    uint16_t did = 0;
    std::set<std::pair<uint32_t, uint32_t>> attached;
    HwptVtdS1 s1;   // user-managed nested: the guest's first stage
  };
  struct Device {
    uint64_t pasid_dir = 0;
    std::map<uint32_t, uint64_t> pasid_tables;   // dir index -> table
    std::map<uint32_t, DomainId> by_pasid;       // 0 = pass-through
    std::map<uint32_t, vtd::PasidEntry> entries;
  };

  std::unique_ptr<Domain> make_domain(DomainKind kind, const Domain* parent, std::string* why) override;
  // intel_pasid_setup_nested's checks of a user-managed nested domain against CAP/ECAP.
  Errno check_nested_setup(DomainId nested) const;
  // The next DID (0 and 1 are reserved); nullopt when CAP.ND has none left.
  std::optional<uint16_t> alloc_did();
  // The PASID entry an attach or detach of `pasid` writes: the RID's (driver.vtd.rid_pasid)
  // without one. A PASID that names the RID_PASID is refused: it would replace the RID's
  // attachment (Linux never has the case: its RID_PASID is IOMMU_NO_PASID, which iommufd
  // refuses as a PASID).
  Status entry_pasid(std::optional<uint32_t> pasid, uint32_t* entry) const;
  // A present PASID entry is torn down first (intel_pasid_tear_down_entry); detaching
  // leaves it not present, so the PASID's requests fault.
  Status attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) override;
  Status detach_device(uint32_t rid, std::optional<uint32_t> pasid) override;
  VtdDomain* vtd_domain(DomainId d, Status& st) { return static_cast<VtdDomain*>(domain(d, st)); }
  Status set_pasid_entry(uint32_t rid, uint32_t pasid, const vtd::PasidEntry& pe, DomainId d);
  Status ensure_device(uint32_t rid, Device*& dev);
  void write_gcmd(uint32_t extra);

  // The invalidation queue's hooks (DriverBase::submit_batch).
  void doorbell(uint32_t producer) override;
  uint32_t read_consumer() override;
  void barrier_entry(uint32_t producer, uint64_t slot_address, uint64_t* words) override;
  bool completed(uint32_t first, uint32_t barrier) override;
  Status check_error(unsigned poll) override;
  std::string registers() override;
  const char* command_name(uint8_t opcode) const override { return vtd::desc_type_name(vtd::DescType(opcode)); }
  std::vector<uint32_t> pasids_of(const VtdDomain& d) const;
  // A nested domain on `parent` whose cache tags a stage-2 change must invalidate.
  bool nested_child_tagged(const Domain* c, DomainId parent) const;
  void range_descs(const VtdDomain& dom, uint64_t iova, uint64_t bytes, bool leaf, std::vector<vtd::DescWords>& out);
  // Device-TLB invalidations (ATS): of one (rid, pasid), and of every ATS device of `d`
  // (bytes == 0: everything).
  static constexpr unsigned kDevTlbAll = 52;   // size order covering the whole address space
  void add_dev_tlb(uint32_t rid, uint32_t pasid, uint64_t addr, unsigned size_order,
                   std::vector<vtd::DescWords>& out) const;
  void dev_tlb_descs(DomainId d, uint64_t iova, uint64_t bytes, std::vector<vtd::DescWords>& out);
  // An IOTLB invalidation descriptor with DR/DW set as CAP.DRD/DWD allow (Linux qi_flush_iotlb).
  vtd::DescWords iotlb_desc(vtd::IotlbGran g, uint16_t did, uint64_t addr = 0, uint8_t am = 0, bool ih = false) const {
    return vtd::desc_iotlb(g, did, addr, am, ih, cap_.drd, cap_.dwd);
  }

  VtdDriverConfig cfg_;
  vtd::ProgrammingInterface& iommu_;
  vtd::reg::Capability cap_;
  vtd::reg::ExtCapability ecap_;
  uint64_t root_ = 0, status_base_ = 0;   // status_base_: one QI_DONE status word per queue slot
  DriverQueue iq_;             // 256-bit descriptors
  uint32_t wait_slot_ = 0;     // the pending inv_wait's slot
  uint32_t gcmd_ = 0;          // Linux iommu->gcmd: persistent enables
  std::map<uint32_t, std::array<uint64_t, 2>> context_tables_;   // bus -> lower/upper table
  std::map<uint32_t, Device> devices_;
  uint16_t next_did_ = 2;
  uint64_t errors_recovered_ = 0;
  std::array<uint64_t, 256> faults_by_reason_{};
  std::vector<vtd::FaultRecord> fault_log_;
  common::Counter fault_overflows_, events_reported_;
  // MODEL EXTENSION (VeventqType::VtdExt): where the faults of devices nested over a nest
  // parent go (the iommufd core, and the parent's object ID there).
  struct EventSink { ViommuEventSink* sink = nullptr; uint32_t owner = 0; };
  std::map<DomainId, EventSink> parent_sinks_;
  // True when FRCD record `w` (register `index`) went to a VM's vEVENTQ.
  bool report_to_vm(const vtd::FrcdWords& w, const vtd::FaultRecord& r, unsigned index);
};

}  // namespace iommusim::driver

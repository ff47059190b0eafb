// AMD IOMMU backend of the host driver, modelled on Linux drivers/iommu/amd: it lays out
// the device table, GCR3 tables, page tables, the command buffer and the event log in
// simulated memory in their real formats, then drives the IOMMU through MMIO and
// commands.
//
// Domains: Stage2 = a v1 host table (Mode 4) with its own DomainID; Stage1 = a v2 (x86
// 4-level) guest table reached through a GCR3 table with no host translation (DTE GV=1,
// Mode 0: Linux's v2 page-table mode); Nested = a v2 table in guest memory over the
// parent's v1 table (DTE GV=1, Mode 4; the GCR3 table lives in guest memory too).
// As in Linux (gcr3_info.domid), a device with a GCR3 table gets its own DomainID: entries
// are tagged DomainID+PASID, so two devices must not share a tag for different tables.
// A non-PASID attach of a v2 domain uses PASID 0 with GIOV=1.
//
// Invalidations follow Linux: v1 range = INVALIDATE_IOMMU_PAGES(DomainID, range, S,
// PDE=!leaf), plus the same for every per-device DomainID nested on the table; v2/nested
// = one GN=1 command per attached (device, PASID); a domain flush uses the "all" range.
// Every batch ends with COMPLETION_WAIT (S=1) storing an incrementing 64-bit semaphore
// that the driver polls. While polling it also watches the next event-log slot in memory
// (consumed records are zeroed, as Linux does); an ILLEGAL_COMMAND_ERROR there (or
// Status.CmdBufRun=0, read every 256 polls) means the buffer stopped: the bad entry is
// replaced with a no-op COMPLETION_WAIT and Control.CmdBufEn is toggled to restart it.
//
// Nesting for a VMM (NestingOps, platforms/driver/nesting.h), as Linux amd/iommufd.c and
// amd/nested.c: a vIOMMU (IOMMU_VIOMMU_TYPE_AMD, amd_iommufd_viommu_init) sits on a nest
// parent and keeps the gDomID -> {users, hDomID} map (gdomid_array). A user-managed nested
// domain holds the guest's DTE (iommu_hwpt_amd_guest), checked as validate_gdte_nested,
// and takes the hDomID of its gDomID (the guest DTE's DomainID), a new one on first use
// (amd_iommu_alloc_domain_nested); destroying it drops the reference (nested_domain_free).
// Attaching it (nested_attach_device, set_dte_nested) writes the parent's v1 fields (Mode,
// host root, TV, IR/IW, I with ATS) with DomainID = hDomID, GV = 1 and the guest's PPR,
// GLX, GIOV, GCR3 root (a GPA: Control.GCR3TRPMode) and GuestPagingMode, then
// INVALIDATE_DEVTAB_ENTRY (+ the device's IOTLB with ATS) and COMPLETION_WAIT
// (amd_iommu_update_dte; the extra flush update_dte256 issues first is not modelled, as on
// the native attach path). A stage-2 change on a nest parent also flushes every hDomID of
// every vIOMMU over it (iommu_flush_pages_v1_hdom_ids). Guest invalidations: upstream has
// no AMD vIOMMU cache_invalidate, so InvalidateDataType::AmdViommuExt is a MODEL EXTENSION
// in the style of arm_vsmmu_cache_invalidate (see cache_invalidate below and docs/vmm.md).
// Guest faults, a MODEL EXTENSION too (no AMD vEVENTQ type upstream): an IO_PAGE_FAULT with
// GN = 1 (the guest tables refused the request; the model reports a host-table fault as
// GN = 0) from a device attached to a vIOMMU's nested domain goes to that vIOMMU's vEVENTQ
// (VeventqType::AmdExt) as its 16-byte entry with DeviceID -> guest DeviceID; the record
// carries the PASID, not a DomainID, so nothing else is rewritten. The host keeps the rest.
//
// One DTE holds one host (v1) table for every PASID, so a device whose PASIDs serve
// different VMs cannot nest: nested_attach_device refuses a PASID-enabled device (EINVAL),
// and such a device's PASIDs get host-built v2 (paging) domains instead. Attaching a paging
// domain to a PASID through iommufd is a MODEL EXTENSION too: IOMMU_HWPT_ALLOC_PASID gives
// a v2 domain (amd_iommu_domain_alloc_paging_flags), but upstream amdv2_ops has no
// set_dev_pasid; the model writes the GCR3 entry as the SVA path does (amd_iommu_set_gcr3).
//
// Cache-tag policies (tag_policies.h). A host's vIOMMU gives its nested domains hDomIDs
// per guest DomainID (upstream), per device (a gDomID over two devices becomes two
// hDomIDs: its guest invalidations and every stage-2 change name both), or one for the
// whole vIOMMU (per_group: two guest domains' tables at the same PASID share IOTLB tags,
// the aliasing amd_iommu_alloc_domain_nested warns of). A driver's GCR3 tables are per
// device (Linux) or, shared, one per domain for devices attached to it without PASID:
// they share its DomainID, so a flush names each (DomainID, PASID) once.
#pragma once
#include <array>
#include <map>
#include <optional>
#include <memory>
#include <vector>

#include <systemc>

#include "models/amdvi/register_block.h"
#include "models/amdvi/structures.h"
#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/viommu.h"
#include "models/memory/sparse_memory.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"
#include "platforms/driver/tag_policies.h"

namespace iommusim::driver {

struct AmdViDriverConfig {
  DriverTiming timing;
  DriverMemory memory;              // guest pool: nested v2 tables and GCR3 tables
  unsigned cmd_buf_log2 = 9;        // Linux: 512 entries
  unsigned evt_log_log2 = 9;
  unsigned device_table_entries = 256;   // DeviceIDs covered (rounded up to a 4 KB table)
  unsigned glx = 0;                 // GCR3 table levels - 1 (0: 512 PASIDs)
  unsigned inv_timeout = 4;         // Control.InvTimeOut: 0 none, n: 10^(n-1) ms (Linux CTRL_INV_TO_1S = 4)
  AmdNestedDomainIds nested_domids = AmdNestedDomainIds::PerGuestDomain;   // vmm.amd_domid (a host's)
  AmdGcr3Tables gcr3_tables = AmdGcr3Tables::PerDevice;                    // guest.amd_gcr3 (a guest's)
  // A host using the hardware vIOMMU (amdvi@accelerated): the gids its vIOMMUs may take
  // (0: none), and the IOMMU's own DeviceID (AmdViConfig::viommu_devid).
  unsigned hw_viommu_guests = 0;
  uint16_t viommu_devid = 2;
};
std::string validate(const AmdViDriverConfig& c);

class AmdViDriver : public DriverBase, public NestingOps, private DriverQueue::Hooks {
 public:
  // Programs `iommu`: the AMD IOMMU model, or a VMM's emulated vAMD (a guest's driver).
  AmdViDriver(sc_core::sc_module_name name, const AmdViDriverConfig& cfg, amdvi::ProgrammingInterface& iommu,
              DriverMemoryRef memory);
  ~AmdViDriver() override;

  std::string vendor() const override { return "amdvi"; }
  Status init() override;
  Status invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) override;
  Status invalidate_domain(DomainId d) override;
  Status sync() override;
  // Every DTE pass-through (V=1, TV=1, Mode 0, IR=IW=1), then INVALIDATE_IOMMU_ALL.
  Status bypass_all();
  // Consumes the event log as Linux's iommu_poll_events does; restarts logging after an
  // overflow. A guest-stage IO_PAGE_FAULT of a device on a vIOMMU's nested domain goes to
  // the vIOMMU's vEVENTQ instead (report_to_viommu, a MODEL EXTENSION). Returns the number
  // of records consumed.
  unsigned drain_events();
  // Records reported to a vIOMMU's vEVENTQ so far.
  uint64_t events_reported() const { return events_reported_.value(); }
  Status after_completion() override;
  uint64_t events_seen(amdvi::EventCode c) const { return events_by_code_[static_cast<uint8_t>(c) & 0xF]; }

  // Queues raw commands plus a COMPLETION_WAIT and waits (tests inject bad commands).
  Status submit(const std::vector<amdvi::CmdWords>& cmds, const std::string& op);
  uint64_t command_errors_recovered() const { return errors_recovered_; }
  uint64_t dte_address(uint32_t rid) const { return dev_table_ + uint64_t(rid) * 32; }
  uint64_t evt_log_base() const { return evt_base_; }
  uint64_t cmd_buf_base() const { return cmdbuf_.base(); }
  uint64_t semaphore_address() const { return sem_addr_; }
  uint16_t domain_id_of(DomainId d) const;            // Stage2 domains
  uint16_t device_domain_id(uint32_t rid) const;      // the DTE's DomainID
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

  // NestingOps
  // amd_iommufd_get_viommu_size: IOMMU_VIOMMU_TYPE_AMD where nesting works (GTSup and
  // GCR3TRPMode: the guest's GCR3 root is a GPA).
  bool supports_viommu(ViommuType type) const override { return type == ViommuType::Amd && caps_.gt && gcr3trp_mode_; }
  Errno viommu_init(ViommuType type, DomainId parent, ViommuHandle* out) override;
  Errno alloc_nested(ViommuHandle v, uint32_t flags, const UserData& data, DomainId* out) override;
  // amd_iommu_ops has no domain_alloc_nested: an AMD nested domain needs a vIOMMU.
  bool nests_on_parent() const override { return false; }
  Errno alloc_nested_on_parent(DomainId, uint32_t, const UserData&, DomainId*) override { return Errno::OpNotSupp; }
  Errno set_vdevice(ViommuHandle v, uint64_t virt_id, std::optional<uint32_t> rid) override;
  void set_event_sink(ViommuHandle v, ViommuEventSink* sink, uint32_t viommu) override;
  void free_nested(DomainId nested) override;
  Errno attach_nested(uint32_t rid, DomainId nested) override;
  // MODEL EXTENSION (InvalidateDataType::AmdViommuExt): raw guest commands, converted by
  // convert_user_cmd and issued with one COMPLETION_WAIT per call; a bad command fails the
  // call before anything is issued.
  Errno cache_invalidate(ViommuHandle v, InvalidateDataType type, const void* entries, uint32_t entry_len,
                         uint32_t* entry_num) override;
  // nested_domain_ops has no cache_invalidate_user.
  Errno cache_invalidate_hwpt(DomainId, InvalidateDataType, const void*, uint32_t, uint32_t* entry_num) override {
    *entry_num = 0;
    return Errno::OpNotSupp;
  }
  // A vIOMMU's guest invalidations are retagged per gDomID, not to one tag: 0.
  uint32_t viommu_tag(ViommuHandle) const override { return 0; }
  std::optional<uint64_t> nested_tags_in_use() const override;
  // GCR3 tables this driver has built (guest.amd_gcr3 = shared builds fewer).
  uint64_t gcr3_tables() const { return gcr3_tables_.value(); }
  // The hDomID standing for `gdom_id` on vIOMMU `v` (nullopt: none).
  std::optional<uint16_t> host_domain_id(ViommuHandle v, uint16_t gdom_id) const;
  // Hardware vIOMMU (the HW-vIOMMU RFC, models/amdvi/viommu.h), with hw_viommu_guests:
  // each vIOMMU takes a gid (amd_viommu_iommu_init: its DomainID / DeviceID map tables in
  // the private space, its translation DeviceID's DTE on the nest parent). The gid of
  // vIOMMU `v` (nullopt: none) and its translation DeviceID.
  std::optional<unsigned> viommu_gid(ViommuHandle v) const;
  uint16_t viommu_trans_devid(ViommuHandle v) const;
  // A guest's write of its (trapped) Control, CmdBufBase or EvtLogBase register, mirrored
  // into the gid's VF_CNTL block (RFC amd_viommu_guest_mmio_write: read-modify-write of
  // VF_CNTL 0x20 / 0x28). Another offset is ignored; no gid -> EINVAL.
  Errno viommu_guest_mmio_write(ViommuHandle v, uint64_t offset, uint64_t value);
  // MODEL EXTENSION: the guest command `c` as the physical buffer gets it, appended to
  // `out` (INVALIDATE_IOMMU_ALL becomes several), or EIO.
  Errno convert_user_cmd(ViommuHandle v, const amdvi::CmdWords& c, std::vector<amdvi::CmdWords>& out) const;

 private:
  struct AmdDomain : Domain {
    uint16_t domain_id = 0;   // Stage2: its own; user-managed nested: its gDomID's hDomID
    // User-managed nested (a vIOMMU's HWPT_NESTED): the checked guest DTE and its gDomID.
    HwptAmdGuest gdte;
    uint16_t gdom_id = 0;
    ViommuHandle viommu = 0;
  };
  struct GuestDomain { uint32_t users = 0; uint16_t hdom_id = 0; };   // struct guest_domain_mapping_info
  struct AmdViommu {
    DomainId parent = 0;
    std::map<uint16_t, GuestDomain> gdoms;   // gdomid_array (hdom_id unused per_device)
    std::map<uint64_t, uint32_t> vdevs;      // guest DeviceID -> DeviceID
    ViommuEventSink* sink = nullptr;         // where its events go (the iommufd core)
    uint32_t sink_id = 0;                    // the vIOMMU as the sink knows it
    std::map<uint32_t, uint16_t> dev_hdoms;  // per_device: DeviceID -> its hDomID
    uint16_t group_hdom = 0;                 // per_group: the one hDomID (0: none yet)
    std::optional<unsigned> gid;             // hardware vIOMMU: its guest ID
    uint16_t trans_devid = 0;                // and its translation DeviceID
  };
  // Hardware vIOMMU: the private-space domain on the IOMMU's own DeviceID, Control.VCmdEn
  // and vIommuEn (RFC iommu_init_viommu, set_iommu_dte, viommu_enable).
  Status enable_hw_viommu();
  Errno init_hw_viommu(AmdViommu& v, DomainId parent);
  // Writes a map control of vIOMMU `v`'s gid (set_device_mapping / set_domain_mapping).
  void write_map_control(const AmdViommu& v, uint64_t reg, uint16_t guest_id, uint16_t host_id);
  DomainId viommu_private_ = 0;
  unsigned next_gid_ = 0;
  struct ViommuDevice { uint16_t gid = 0, gdev = 0; };
  std::map<uint32_t, ViommuDevice> viommu_devs_;   // by DeviceID: its vDEVICE on a gid
  // set_dte_viommu: a device with a vDEVICE on a gid has vImuEn, GDeviceID and GuestID.
  void add_viommu_fields(uint32_t rid, amdvi::DeviceTableEntry& e) const;
  // MODEL EXTENSION (VeventqType::AmdExt): true when event-log record `w` (entry `index`)
  // went to a vIOMMU's vEVENTQ.
  bool report_to_viommu(const amdvi::EventWords& w, const amdvi::EventRecord& e, uint32_t index);
  // The hDomIDs of vIOMMU `vi` (index `v`) that tag gDomID `gdom`'s translations (nullopt:
  // every hDomID of the vIOMMU), each once.
  template <class F> void for_each_host_domain_id(ViommuHandle v, std::optional<uint16_t> gdom, F&& f) const;
  // A new DomainID (nullopt: the 16-bit space is used up).
  std::optional<uint16_t> new_domain_id();
  std::vector<AmdViommu> viommus_;
  std::vector<amdvi::CmdWords> user_cmds_;   // cache_invalidate's batch, kept for its capacity
  const AmdViommu* viommu(ViommuHandle v) const { return v == 0 || v > viommus_.size() ? nullptr : &viommus_[v - 1]; }
  // The physical DTE of a device attached to user-managed domain `d` with hDomID
  // `hdom_id` (set_dte_nested).
  amdvi::DeviceTableEntry nested_dte(uint32_t rid, const AmdDomain& d, uint16_t hdom_id) const;
  struct Attachment {
    bool has_host = false; DomainId host = 0;        // v1 table (Stage2 domain)
    bool has_gcr3 = false; bool gcr3_in_guest = false;
    uint64_t gcr3_root = 0;
    std::map<uint64_t, uint64_t> gcr3_tables;        // (level << 32 | prefix) -> table
    uint16_t gcr3_domid = 0;                         // per-device DomainID with a GCR3 table
    bool giov = false;                               // PASID 0 serves non-PASID requests
    bool blocked = false;                            // IR=IW=0: every request faults
    std::map<uint32_t, DomainId> by_pasid;
    DomainId user_nested = 0;                        // a vIOMMU's nested domain (the guest's DTE)
    uint16_t nested_domid = 0;                       // its hDomID on this device (the policy's)
    DomainId shared_gcr3 = 0;                        // guest.amd_gcr3 = shared: the domain whose table it uses
  };
  // guest.amd_gcr3 = shared: a domain's GCR3 table, used by its devices attached without PASID.
  struct SharedGcr3 {
    uint64_t root = 0;
    std::map<uint64_t, uint64_t> tables;
    uint16_t domid = 0;
  };
  std::map<DomainId, SharedGcr3> shared_gcr3_;
  // A GCR3 table of its own for `at` (its own DomainID), holding its PASIDs' entries.
  Status own_gcr3_table(Attachment& at, bool in_guest);
  common::Counter gcr3_tables_;

  std::unique_ptr<Domain> make_domain(DomainKind kind, const Domain* parent, std::string* why) override;
  // Attaching to another v1 parent (or switching between v1-only, v2 and nested) replaces
  // the device's DTE and GCR3 table; detaching a PASID clears its GCR3 entry, detaching
  // the device leaves a DTE with IR=IW=0 (the blocked domain). Each ends with
  // INVALIDATE_DEVTAB_ENTRY / INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT.
  Status attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) override;
  Status detach_device(uint32_t rid, std::optional<uint32_t> pasid) override;
  AmdDomain* amd_domain(DomainId d, Status& st) { return static_cast<AmdDomain*>(domain(d, st)); }
  Status write_dte(uint32_t rid);
  Status write_gcr3(Attachment& at, uint32_t pasid, uint64_t cr3, bool valid = true);
  bool store(const Attachment& at, uint64_t addr, uint64_t value);
  // Commands that drop `range` (or everything) of domain d.
  std::vector<amdvi::CmdWords> flush_commands(const AmdDomain& dom, DomainId d, uint64_t iova, uint64_t bytes,
                                              bool pde);
  Status recover_command_buffer();

  // The command buffer's hooks (DriverBase::submit_batch).
  void doorbell(uint32_t producer) override;
  uint32_t read_consumer() override;
  Status still_full() override;
  void barrier_entry(uint32_t producer, uint64_t slot_address, uint64_t* words) override;
  bool completed(uint32_t first, uint32_t barrier) override;
  Status check_error(unsigned poll) override;
  uint64_t iotlb_timeouts_reported_ = 0;   // IOTLB_INV_TIMEOUT records a submit has failed for
  void add_iotlb_flush(uint32_t rid, uint64_t iova, uint64_t bytes, std::optional<uint32_t> pasid,
                       std::vector<amdvi::CmdWords>& cmds) const;
  std::string registers() override;
  const char* command_name(uint8_t opcode) const override { return amdvi::opcode_name(amdvi::Opcode(opcode)); }

  AmdViDriverConfig cfg_;
  amdvi::ProgrammingInterface& iommu_;
  amdvi::Caps caps_;
  bool gcr3trp_mode_ = false;   // EFR2.GCR3TRPMode, and so Control.GCR3TRPMode, set
  uint64_t dev_table_ = 0, evt_base_ = 0, sem_addr_ = 0;
  uint64_t evt_bytes_ = 0, evt_head_ = 0, sem_value_ = 0, ctrl_ = 0;
  DriverQueue cmdbuf_;
  unsigned dte_count_ = 0;
  std::map<uint32_t, Attachment> devices_;
  uint16_t next_domid_ = 1;
  uint64_t errors_recovered_ = 0;
  common::Counter event_overflows_, events_reported_;
  bool draining_ = false;   // drain_events is running (in another thread)
  std::array<uint64_t, 16> events_by_code_{};
};

}  // namespace iommusim::driver

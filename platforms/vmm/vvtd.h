// The VMM's emulated VT-d (a vVT-d, as QEMU's hw/i386/intel_iommu.c with x-flts=on and its
// iommufd acceleration, intel_iommu_accel.c): what a guest's VT-d driver programs when its
// first stage is nested over the host's second stage through iommufd. VT-d has no vIOMMU
// object upstream: the VMM keeps its own vRID -> device table and allocates each device's
// nested HWPT (IOMMU_HWPT_DATA_VTD_S1) straight on the nest parent.
//
// What it models
// - The VT-d programming interface (models/vtd/register_block.h) in the VMM, scalable mode
//   with first stage only (ECAP.SMTS = 1, FLTS = 1, SLTS = 0, NEST = 0), caching mode
//   (CAP.CM = 1: QEMU requires it for assigned devices, and it is how the VMM learns of
//   every new guest entry), the configured CAP.ND, ECAP.DT (the guest's dev-TLB descriptors
//   are absorbed: the host flushes dev-TLBs itself). Every guest access traps
//   (platforms/vmm/trapped_mmio.h).
// - The guest's invalidation queue in guest RAM, consumed (by default) synchronously in the trapping
//   vCPU's IQT write (QEMU vtd_fetch_inv_desc), on the shared queue engine: per 256-bit
//   descriptor one read from guest RAM and a decode with the vVT-d's own capabilities
//   (models/vtd/commands.h), so a reserved bit or a DID beyond CAP.ND raises FSTS.IQE / IQER.IQEI in the guest's registers and forwards nothing.
// - Per descriptor (VT-d spec §6.5.2; QEMU vtd_process_inv_desc):
//   P_IOTLB -> IOMMU_HWPT_INVALIDATE (IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, one entry: addr,
//   npages 2^AM with LEAF = IH, or everything) to the nested HWPT of each device whose
//   guest RID_PASID entry has that DID and PASID (QEMU vtd_flush_host_piotlb_locked: one
//   call per device); none -> dropped and counted. IOTLB global / domain / page -> every
//   nested HWPT of the DID (all of them for global) with the whole range (a first-stage
//   entry is found by DID only, §6.5.2.3). Context-cache and PASID-cache invalidations ->
//   the guest's context and RID_PASID entries in scope are read again (root, context,
//   PASID directory, PASID entry: four reads) and a changed first-stage entry becomes
//   IOMMU_HWPT_ALLOC (struct iommu_hwpt_vtd_s1 from FSPTPTR, FSPM, SRE/WPE/EAFE) on the
//   nest parent, an attach and IOMMU_DESTROY of the one it replaces (QEMU
//   vtd_device_attach_iommufd); a pass-through entry attaches the parent itself.
//   A guest device that is one PASID of a physical one (vmm.assign with a pasid: a work
//   queue, Intel Scalable IOV) has its HWPT allocated with IOMMU_HWPT_ALLOC_PASID and
//   attached to that PASID (VFIO_DEVICE_ATTACH_PASID): the guest's (vRID, RID_PASID)
//   becomes the physical (RID, PASID), and the host converts the forwarded invalidations
//   for that attachment (intel_nested_set_dev_pasid).
//   Dev-TLB, IEC and page-group responses are absorbed. inv_wait completes the guest's
//   wait: StatusData stored to guest RAM (SW) and/or ICS.IWC (IF). A failed ioctl is
//   logged and counted, and the queue goes on (QEMU).
// - The time of an IQT write split into trap, vmm, host_kernel, host_queue and return.
// - Guest faults (docs/vmm.md, "Guest faults"; a MODEL EXTENSION: upstream has no VT-d
//   vEVENTQ type and no VT-d vIOMMU). When the guest enables translation (GCMD.TE), the VMM
//   allocates a vEVENTQ (VeventqType::VtdExt, depth CAP.NFR + 1) on the nest parent, the
//   one iommufd object it holds per VT-d unit. On the host's event interrupt the host
//   driver reports a nested device's first-stage faults there; the VMM reads each 128-bit
//   FRCD image, maps the physical RID to the guest's (no vDEVICE on VT-d: its own table),
//   and records it in the guest's next fault-recording register (F, FSTS.PPF and FRI, as
//   QEMU vtd_record_frcd); a pending register, or a LOST_EVENTS header, sets FSTS.PFO;
//   then the guest's fault event is injected.
//
// What it does not model
// - Guest PASIDs other than the RID_PASID (QEMU propagates PASID 0 only), a guest entry
//   turning not present (the device keeps its HWPT until the next entry replaces it: the
//   iommufd model has no detach), second-stage or nested guest entries (QEMU refuses them
//   with x-flts), register-based invalidation (accepted, not forwarded; Linux uses QI),
//   the guest's fault-event interrupt configuration (FECTL, FEDATA: its handler runs when
//   the VMM injects the event).
// - With vmm.completion = deferred the queue runs in the VMM's iothread instead
//   (trapped_mmio.h); the guest's polls then read FSTS, each a trapped read.
#pragma once
#include <cstdint>
#include <map>
#include <optional>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/command_queue.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/vtd/commands.h"
#include "models/vtd/register_block.h"
#include "models/vtd/structures.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"
#include "platforms/driver/vtd_driver.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/trapped_mmio.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::vmm {

struct VVtdConfig : TrappedMmioConfig {
  unsigned nd = 6;              // CAP.ND: 2^(4 + 2 ND) DIDs (QEMU VTD_CAP_ND: 16-bit)
  unsigned haw = 48;            // CAP.MGAW (the host's)
  unsigned pasid_bits = 20;     // ECAP.PSS + 1 (the host's)
  unsigned mamv = 18;           // CAP.MAMV (the host's)
  unsigned fault_records = 8;   // CAP.NFR + 1
  bool fs_5level = true;        // CAP.FL5LP (the host's)
  bool fs_1g = true;            // CAP.FL1GP (the host's)
};

class VVtd : public sc_core::sc_module,
             public vtd::ProgrammingInterface,
             public TrappedMmio,
             private common::CommandQueueVendor {
 public:
  tlm_utils::simple_target_socket<VVtd> mmio;

  // A vVT-d forwarding through `fd` to the host driver `host`.
  VVtd(sc_core::sc_module_name name, const VVtdConfig& cfg, GuestRam& ram, Iommufd& fd, const driver::DriverBase& host);
  // The nest parent its nested HWPTs go on (once the VM is built).
  void set_parent(uint32_t parent_hwpt) { parent_ = parent_hwpt; }
  // The guest's device `vrid` is iommufd device `dev_id` (the VMM's own table): the whole
  // device, or with `host_pasid` one PASID of it (a work queue the guest sees as a device
  // of its own, Intel Scalable IOV): the guest's RID_PASID entry of `vrid` is then nested
  // on the physical (RID, host_pasid) (VFIO_DEVICE_ATTACH_PASID of a PASID-capable HWPT).
  void add_device(uint16_t vrid, uint32_t dev_id, std::optional<uint32_t> host_pasid = std::nullopt) {
    devices_[vrid].dev_id = dev_id;
    devices_[vrid].host_pasid = host_pasid;
  }
  // The nested HWPT installed for `vrid` (0: none).
  uint32_t installed_hwpt(uint16_t vrid) const;
  // The host's event interrupt (TrappedMmio::host_event_interrupt): `host` drains its fault
  // records; a guest's reach the guest's FRCDs. True when the guest's event was injected.
  bool host_event_interrupt(driver::VtdDriver& host);

  // vtd::ProgrammingInterface
  void set_command_probe(std::function<void(const common::CommandTrace&)> probe) override {
    iq_.set_probe(std::move(probe));
  }
  uint64_t peek_register(uint64_t offset, unsigned len = 8) override;

  struct Stats {
    common::Counter forwarded, absorbed, dropped_unattached, installs, unsupported_entries;
  };
  const Stats& stats() const { return stats_; }
  uint64_t illegal_descriptors() const { return iq_.stats().illegal.value(); }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Device {
    uint32_t dev_id = 0;
    uint32_t hwpt = 0;                   // its nested HWPT (0: none, or the parent)
    std::optional<vtd::PasidEntry> pe;   // the guest's RID_PASID entry the HWPT was made from
    uint32_t rid_pasid = 0;              // from the guest's context entry
    std::optional<uint32_t> host_pasid;  // a PASID of the physical device (add_device)
  };

  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  bool run_queue() override { return iq_.run_until_idle(); }
  // The queue engine's hooks: the guest's queue, executed by the VMM.
  common::QueueState queue_state() override { return r_.iq_state(); }
  uint8_t trace_opcode(const uint64_t* entry) const override { return vtd::raw_desc_type(entry[0]); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState& q) override;
  void execute() override;
  void consumed(const common::QueueState& q, uint32_t head) override { r_.iq_consumed(q, head); }
  void halt(const common::QueueError& e, const common::QueueState&) override { r_.iq_halt(e); }

  // IOMMU_HWPT_INVALIDATE of one entry to the device's nested HWPT.
  void forward(const Device& d, uint64_t addr, uint64_t npages, bool leaf);
  // IOTLB invalidations: every nested HWPT of `did` (any DID: nullopt), everything.
  void forward_domain(std::optional<uint16_t> did);
  // Reads the guest's entries of `vrid` again and installs what changed; `in_scope` says
  // whether the invalidation covers the device given its old and new entries.
  template <class InScope> void resync(uint16_t vrid, Device& d, InScope&& in_scope);
  // The guest's RID_PASID entry of `vrid` and its context entry's RID_PASID (nullopt: no
  // present context entry).
  std::optional<std::pair<vtd::PasidEntry, uint32_t>> read_guest_entry(uint16_t vrid);
  // Attaches `hwpt` and destroys the nested HWPT it replaces.
  bool replace_hwpt(Device& d, uint32_t hwpt);
  bool write_guest_event(const Vevent& e) override;

  VVtdConfig cfg_;
  GuestRam& ram_;
  Iommufd& fd_;
  uint32_t parent_ = 0;
  common::RegisterFile regs_;
  common::CommandQueue iq_;
  vtd::RegisterBlock r_;
  vtd::Descriptor pending_;
  std::map<uint16_t, Device> devices_;   // by vRID
  Stats stats_;
};

}  // namespace iommusim::vmm

// The VMM's emulated AMD IOMMU (a vAMD, with QEMU hw/i386/amd_iommu.c's register and
// command semantics): what a guest's AMD driver programs when its v2 (guest) tables are
// nested over the host's v1 stage 2 through iommufd, with an IOMMU_VIOMMU_TYPE_AMD vIOMMU.
//
// What it models
// - The AMD programming interface (models/amdvi/register_block.h) in the VMM, with the
//   host's capabilities (EFR GTSup = 1 so the guest uses v2 tables, IASup, GLXSup, PASmax,
//   GATS; EFR2.GCR3TRPMode). Every guest access traps (platforms/vmm/trapped_mmio.h).
// - The guest's command buffer in guest RAM, consumed synchronously in the trapping vCPU's
//   CmdBufTail write (as QEMU amdvi_cmdbuf_run) on the shared queue engine: per 16-byte
//   command one read from guest RAM and a decode with the vAMD's own caps, so an illegal
//   command logs ILLEGAL_COMMAND_ERROR (48882 §2.5, the real 16-byte record) into the
//   guest's event log in guest RAM, stops the buffer (Status.CmdBufRun = 0) and forwards
//   nothing.
// - Per command (48882 §2.4): INVALIDATE_IOMMU_PAGES of a gDomID some installed guest DTE
//   carries, INVALIDATE_IOTLB_PAGES of a gDevID with a vDEVICE, and INVALIDATE_IOMMU_ALL
//   are forwarded raw to the vIOMMU (IOMMU_HWPT_INVALIDATE with the MODEL EXTENSION
//   InvalidateDataType::AmdViommuExt, vmm.x86_amd.forward_batch commands per call); any
//   other gDomID or gDevID -> dropped and counted. INVALIDATE_DEVTAB_ENTRY -> the guest's
//   DTE is read from guest RAM and, if it changed, installed: IOMMU_HWPT_ALLOC
//   (IOMMU_HWPT_DATA_AMD_GUEST, the four quadwords) on the vIOMMU, an attach and
//   IOMMU_DESTROY of the HWPT it replaces. COMPLETION_WAIT -> pending forwards are sent
//   (each returns after the host's own COMPLETION_WAIT), then the 8-byte store to guest RAM
//   (S) and/or Status.ComWaitInt (I). INVALIDATE_INTERRUPT_TABLE, PREFETCH_IOMMU_PAGES and
//   COMPLETE_PPR_REQUEST are absorbed. A failed ioctl is counted and the buffer goes on.
// - The time of a CmdBufTail write split into trap, vmm, host_kernel, host_queue and return.
// - Guest faults (docs/vmm.md, "Guest faults"; a MODEL EXTENSION: upstream has no AMD
//   vEVENTQ type): when the guest enables its event log (Control.EventLogEn), the VMM
//   allocates the vIOMMU's vEVENTQ (VeventqType::AmdExt, depth the guest log's entries).
//   On the host's event interrupt its driver reports a guest-stage IO_PAGE_FAULT with the
//   guest DeviceID; the VMM reads each entry and stores the 16-byte record at the guest's
//   EvtLogTail in guest RAM (the tail moves, Status.EventLogInt as QEMU amdvi_log_event);
//   a full guest log, or a LOST_EVENTS header, sets Status.EvtOverflow; then the guest's
//   event interrupt.
//
// - Accelerated (amdvi@accelerated, accelerate(): the AMD hardware vIOMMU of the unmerged
//   HW-vIOMMU RFC, models/amdvi/viommu.h): the guest's command buffer is the hardware's.
//   CmdBufHead/Tail and EvtLogHead/Tail go to the gid's VF page without a trap (the RFC
//   maps it into the guest, out_vfmmio_mmap_offset); a write of Control, CmdBufBase or
//   EvtLogBase still traps and the VMM mirrors it into VF_CNTL through the host driver
//   (amd_viommu_guest_mmio_write, charged as one ioctl); Status.CmdBufRun shows whether
//   the hardware stopped the guest's buffer. The commands the hardware hands to the
//   hypervisor (hypervisor_command) are run as on the trapped path, after the host's
//   interrupt and the VMM's wake-up (event_irq_cycles + iothread_wakeup_cycles +
//   decode_cycles, a MODEL CHOICE: the RFC does not say how the hand-over is signalled).
//
// What it does not model
// - Accelerated: guest faults (no vEVENTQ; the guest's log is the hardware's), the big
//   lock for hand-over commands.
// - Guest DTEs that do not ask for guest translation (V = 0, TV = 0 or GV = 0: counted,
//   not installed; the device keeps its HWPT, as the iommufd model has no detach), guest
//   PASIDs beyond what the guest's own GCR3 table holds (the host reads it), interrupt
//   remapping, the PPR and GA logs (the HW-vIOMMU is the accelerated mode above). With
//   vmm.completion = deferred the buffer runs in the VMM's iothread (trapped_mmio.h).
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/amdvi/amdvi.h"
#include "models/amdvi/commands.h"
#include "models/amdvi/register_block.h"
#include "models/amdvi/structures.h"
#include "models/common/command_queue.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "platforms/driver/amdvi_driver.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/trapped_mmio.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::vmm {

struct VAmdViConfig : TrappedMmioConfig {
  amdvi::Caps caps;        // the host's EFR fields the vAMD passes on (GTSup forced on)
  bool accelerated = false;   // amdvi@accelerated: accelerate() follows once the VM is built
};

class VAmdVi : public sc_core::sc_module,
               public amdvi::ProgrammingInterface,
               public TrappedMmio,
               private common::CommandQueueVendor {
 public:
  tlm_utils::simple_target_socket<VAmdVi> mmio;

  // A vAMD forwarding through `fd` to the host driver `host`.
  VAmdVi(sc_core::sc_module_name name, const VAmdViConfig& cfg, GuestRam& ram, Iommufd& fd,
         const driver::DriverBase& host);
  // The vIOMMU its nested HWPTs and invalidations go to (once the VM is built).
  void set_viommu(uint32_t viommu_id) { viommu_id_ = viommu_id; }
  // The guest's DeviceID `gdev` is iommufd device `dev_id`, with a vDEVICE.
  void add_device(uint16_t gdev, uint32_t dev_id) { devices_[gdev].dev_id = dev_id; }
  // amdvi@accelerated: the guest's buffer runs on `hw`'s gid `gid`; `host` is the host
  // driver whose vIOMMU `handle` owns that gid.
  void accelerate(amdvi::AmdVi& hw, driver::AmdViDriver& host, driver::ViommuHandle handle, unsigned gid);
  bool accelerated() const { return hw_ != nullptr; }
  // The nested HWPT installed for `gdev` (0: none).
  uint32_t installed_hwpt(uint16_t gdev) const;
  // The host's event interrupt (TrappedMmio::host_event_interrupt): `host` drains its event
  // log; a guest's faults reach the guest's log. True when the guest's interrupt was injected.
  bool host_event_interrupt(driver::AmdViDriver& host);

  // amdvi::ProgrammingInterface
  void set_command_probe(std::function<void(const common::CommandTrace&)> probe) override {
    probe_ = probe;
    cmdbuf_.set_probe(std::move(probe));
  }
  uint64_t peek_register(uint64_t offset, unsigned len = 8) override;

  struct Stats {
    common::Counter forwarded, absorbed, dropped_unattached, installs, unsupported_dtes;
    common::Counter vf_accesses, handed_over;   // accelerated
  };
  const Stats& stats() const { return stats_; }
  uint64_t illegal_commands() const { return cmdbuf_.stats().illegal.value(); }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Device {
    uint32_t dev_id = 0;
    uint32_t hwpt = 0;             // its nested HWPT (0: none)
    amdvi::DteWords gdte{};        // the guest DTE it was made from
    uint16_t gdom_id = 0;          // that DTE's DomainID
  };

  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  bool run_queue() override { return !hw_ && cmdbuf_.run_until_idle(); }
  // Accelerated: a guest command the hardware handed over, run as on the trapped path.
  void hypervisor_command(const amdvi::CmdWords& w);
  // The queue engine's hooks: the guest's command buffer, executed by the VMM.
  common::QueueState queue_state() override { return r_.cmd_state(); }
  uint8_t trace_opcode(const uint64_t* entry) const override { return uint8_t(entry[0] >> 60); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState&) override;
  void execute() override;
  void consumed(const common::QueueState&, uint32_t head) override { r_.cmd_consumed(head); }
  void halt(const common::QueueError& e, const common::QueueState&) override;

  // Queues the pending command for the vIOMMU; sends the batch when it is full.
  void forward();
  // Sends the queued commands in one IOMMU_HWPT_INVALIDATE.
  void flush();
  // Reads the guest DTE of `gdev` and installs it if it changed.
  void install_dte(uint16_t gdev, Device& d);
  bool gdom_installed(uint16_t gdom) const;
  // Stores a 16-byte record in the guest's event log in guest RAM; false when it was lost
  // (the log off, stopped or full: EvtOverflow).
  bool store_guest_event(const uint64_t* words);
  bool write_guest_event(const Vevent& e) override;

  VAmdViConfig cfg_;
  GuestRam& ram_;
  Iommufd& fd_;
  uint32_t viommu_id_ = 0;
  common::RegisterFile regs_;
  common::CommandQueue cmdbuf_;
  amdvi::RegisterBlock r_;
  amdvi::Command pending_;
  amdvi::CmdWords pending_words_{};
  std::vector<driver::ViommuAmdInvalidateExt> forwards_;
  std::map<uint16_t, Device> devices_;   // by guest DeviceID
  Stats stats_;
  std::function<void(const common::CommandTrace&)> probe_;   // the guest driver's
  amdvi::AmdVi* hw_ = nullptr;                                // accelerated: the hardware
  driver::AmdViDriver* host_drv_ = nullptr;
  driver::ViommuHandle handle_ = 0;
  unsigned gid_ = 0;
};

}  // namespace iommusim::vmm

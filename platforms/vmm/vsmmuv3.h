// The VMM's emulated SMMUv3 (a vSMMU, as QEMU's hw/arm/smmuv3.c with its iommufd
// acceleration, smmuv3-accel.c): what a guest's SMMUv3 driver programs when its stage 1
// is nested over the host's stage 2 through iommufd (IOMMU_VIOMMU_TYPE_ARM_SMMUV3).
//
// What it models
// - The SMMUv3 programming interface (models/smmuv3/register_block.h) in the VMM: stage 1
//   only (IDR0.S1P = 1, S2P = 0), no MSIs (IDR0.MSI = 0, so a Linux guest polls CMDQ_CONS),
//   a linear stream table only (IDR0.ST_LEVEL = 0), the host's IDR3.RIL. Every guest access
//   to it traps (platforms/vmm/trapped_mmio.h: exit, big lock, dispatch, entry).
// - The guest's command queue in guest RAM, consumed (unless vmm.completion = deferred:
//   then in the VMM's iothread, trapped_mmio.h) synchronously in the trapping vCPU's
//   CMDQ_PROD write (QEMU smmuv3_cmdq_consume), on the shared queue engine: per entry a
//   read from guest RAM and a decode with the vSMMU's own ID limits, so an out-of-range or
//   unsupported command (TLBI_S2_IPA, TLBI_S12_VMALL, TLBI_EL2_*: no stage 2, no EL2 here)
//   raises CERROR_ILL in the guest's GERROR/CMDQ_CONS and forwards nothing.
// - Per command, as QEMU's accelerated vSMMU does:
//   TLBI_NH_*, TLBI_NSNH_ALL, CFGI_CD(_ALL) and ATC_INV go to the vIOMMU with
//   IOMMU_HWPT_INVALIDATE (IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3), `forward_batch` per
//   call (QEMU issues one each); the host kernel forces the VMID and turns vSIDs into SIDs.
//   A CFGI_CD or ATC_INV naming a vSID with no vDEVICE is dropped and counted.
//   CFGI_STE / CFGI_STE_RANGE / CFGI_ALL: the guest STE is read from guest RAM, its stage-1
//   fields kept (QEMU STE0_MASK / STE1_MASK), and installed as a nested HWPT of the vIOMMU
//   (IOMMU_HWPT_ALLOC, attach, IOMMU_DESTROY of the one it replaces). A CFGI_STE whose
//   STE's stage-1 fields are those already installed changes nothing (model choice: the
//   device is not parked on the abort HWPT for an unchanged STE).
//   CMD_SYNC: the pending forwards are issued first (each ioctl returns after the host's
//   own CMD_SYNC); then CONS moves past it, and with CS = IRQ and an MSI address the MSI
//   data is stored in guest RAM. PREFETCH_* are absorbed. A failed ioctl is CERROR_ILL
//   (QEMU sets SMMU_CERROR_ILL).
// - The time of a doorbell write split into trap, vmm, host_kernel, host_queue and return
//   (driver::TrapSpans), which the guest driver's invalidation record shows.
// - Guest faults (docs/vmm.md, "Guest faults"): the guest's event queue (EVTQ_BASE,
//   EVTQ_PROD/CONS, CR0.EVTQEN, IDR1.EVTQS). When the guest enables it, the VMM allocates the
//   vIOMMU's vEVENTQ (IOMMU_VEVENTQ_ALLOC, IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth
//   1 << EVTQ_BASE.LOG2SIZE as QEMU's smmuv3_accel_alloc_veventq). On the host's event
//   interrupt (host_event_interrupt): the host's threaded handler (its driver drains the
//   physical EVTQ and reports a vmaster's records), the eventfd wakes the VMM, which reads
//   the vEVENTQ one entry per read() (QEMU smmuv3_accel_event_read), writes each record
//   into the guest's EVTQ at EVTQ_PROD in guest RAM and advances PROD; a full guest queue,
//   or a LOST_EVENTS header, toggles EVTQ_PROD.OVFLG (IHI 0070 §7.4; QEMU only logs lost
//   events); then the guest's event interrupt is injected.
// - The accelerated path (set_guest_vintf, docs/vmm.md "Accelerated guest queues (SMMUv3
//   CMDQV)"): the vIOMMU is IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV and the guest reaches its
//   VINTF (platforms/vmm/guest_vintf.h): a VCMDQ's BASE write traps here and becomes
//   IOMMU_HW_QUEUE_ALLOC (the queue's GPA and length from the BASE value); its page 0 is
//   mapped, so its doorbells and polls never come here. The guest's other commands still
//   come through this vSMMU's emulated CMDQ.
//
// What it does not model
// - GERROR interrupts, two-level guest stream tables, PRI, stall, QEMU's caching of
//   abort/bypass HWPTs (every STE install allocates one); the VMM's big lock around its
//   vEVENTQ handler (it runs beside the vCPUs' traps); MSI configuration of the guest's
//   event interrupt (the guest driver's handler runs when it is injected).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/command_queue.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/smmuv3/commands.h"
#include "models/smmuv3/register_block.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"
#include "platforms/driver/smmuv3_driver.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/guest_vintf.h"
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/trapped_mmio.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::vmm {

struct VSmmuConfig : TrappedMmioConfig {
  unsigned sid_bits = 16;           // IDR1.SIDSIZE the guest sees
  unsigned ssid_bits = 20;          // IDR1.SSIDSIZE (the host's)
  bool range_invalidation = true;   // IDR3.RIL (the host's)
  VmmFault inject = VmmFault::None;
  // The accelerated path (its stats registered), and the hardware's MMIO time of the
  // guest's mapped VCMDQ pages.
  bool accelerated = false;
  double direct_mmio_read_ns = 0, direct_mmio_write_ns = 0;
};

class VSmmuv3 : public sc_core::sc_module,
                public smmuv3::ProgrammingInterface,
                public TrappedMmio,
                private common::CommandQueueVendor {
 public:
  tlm_utils::simple_target_socket<VSmmuv3> mmio;

  // A vSMMU forwarding through `fd` to the host driver `host`.
  VSmmuv3(sc_core::sc_module_name name, const VSmmuConfig& cfg, GuestRam& ram, Iommufd& fd,
          const driver::DriverBase& host);
  // Its vIOMMU object (once the VM is built, before the guest programs it).
  void set_viommu(uint32_t viommu_id) { viommu_id_ = viommu_id; }

  // The guest's device `vsid` is iommufd device `dev_id` (it has a vDEVICE on the vIOMMU).
  // The first one also allocates the vIOMMU's abort and bypass HWPTs, which a guest STE that
  // is not a stage-1 one installs (QEMU smmuv3_accel_alloc_viommu: abort_hwpt_id,
  // bypass_hwpt_id). Untimed: the VM is being built.
  Errno add_device(uint64_t vsid, uint32_t dev_id);
  // The nested HWPT installed for `vsid` (0: none yet).
  uint32_t installed_hwpt(uint64_t vsid) const;

  // The host's event interrupt: its threaded handler wakes and `host` drains its EVTQ,
  // reporting a vmaster's records to the vIOMMU; then the VMM takes the vEVENTQ's entries
  // into the guest's EVTQ (TrappedMmio). True when the guest's event interrupt was
  // injected (its driver's handler should run).
  bool host_event_interrupt(driver::Smmuv3Driver& host);

  // The accelerated path: the guest's VINTF `vintf` of `cmdqv`, `lvcmdqs` LVCMDQs.
  void set_guest_vintf(smmuv3::Cmdqv& cmdqv, unsigned vintf, unsigned lvcmdqs);
  smmuv3::GuestCmdqv* guest_cmdqv() override { return vintf_.get(); }

  // smmuv3::ProgrammingInterface
  void set_command_probe(std::function<void(const common::CommandTrace&)> probe) override {
    cmdq_.set_probe(std::move(probe));
  }
  uint32_t peek32(uint64_t offset) override;

  struct Stats {
    common::Counter forwarded, installs, absorbed, dropped_unattached, dropped_injected, hw_queues;
  };
  const Stats& stats() const { return stats_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Device {
    uint32_t dev_id = 0;
    uint32_t hwpt = 0;          // the nested HWPT installed (0: the abort or bypass one)
    uint64_t vste[2] = {0, 0};  // the stage-1 fields it was made from
  };

  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  bool run_queue() override { return cmdq_.run_until_idle(); }
  // The queue engine's hooks: the guest's queue, executed by the VMM.
  common::QueueState queue_state() override { return r_.cmdq_state(); }
  uint8_t trace_opcode(const uint64_t* entry) const override { return uint8_t(entry[0] & 0xFF); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState& q) override;
  void execute() override;
  void consumed(const common::QueueState&, uint32_t head) override { r_.cmdq_cons.set(head); }
  void halt(const common::QueueError& e, const common::QueueState&) override { r_.cmdq_halt(e); }

  // The guest's trapped VCMDQ BASE write: IOMMU_HW_QUEUE_ALLOC; false when it failed.
  bool alloc_hw_queue(unsigned lidx, uint64_t base);
  // Issues the pending forwards as one IOMMU_HWPT_INVALIDATE; false when it failed.
  bool flush();
  // Reads the guest STE of `vsid` and installs it as a nested HWPT; false when an ioctl failed.
  bool install_ste(uint64_t vsid, Device& d);
  // One vEVENTQ entry into the guest's EVTQ; true when the guest has something to see
  // (a record or an overflow).
  bool write_guest_event(const Vevent& e) override;
  // Attaches the device to `hwpt` and frees the nested HWPT it had (QEMU
  // smmuv3_accel_dev_uninstall_nested_ste when `hwpt` is a proxy).
  bool replace_hwpt(Device& d, uint32_t hwpt);

  VSmmuConfig cfg_;
  GuestRam& ram_;
  Iommufd& fd_;
  uint32_t viommu_id_ = 0;
  common::RegisterFile regs_;
  common::CommandQueue cmdq_;
  smmuv3::RegisterBlock r_;
  smmuv3::Command pending_;
  std::vector<driver::ViommuArmSmmuv3Invalidate> forwards_;   // capacity forward_batch
  std::map<uint64_t, Device> devices_;                        // by vSID
  uint32_t abort_hwpt_ = 0, bypass_hwpt_ = 0;
  smmuv3::CmdWords pending_words_{};
  std::unique_ptr<GuestVintf> vintf_;
  Stats stats_;
};

}  // namespace iommusim::vmm

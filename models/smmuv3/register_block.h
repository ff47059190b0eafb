// The SMMUv3 programming interface (Arm IHI 0070, chapter 6): every register software sees,
// with its write rules. One definition serves the SMMU model and a VMM's emulated vSMMU
// (platforms/vmm/vsmmuv3.h), which differ only in their ID registers and in what a write
// that may start the command queue does.
//
// What it models
// - The registers at their architected offsets, EVTQ_PROD/CONS on page 1 and aliased on page 0.
// - ID registers from Features; CR0ACK following CR0 at once; GBPA.UPDATE completing at once;
//   IRQ_CTRLACK following IRQ_CTRL; CMDQ_CONS and EVTQ_PROD writable only while their queue is
//   disabled (as Linux arm_smmu_device_reset writes them); MSI configuration stored.
// - A callback for every write that may let the command queue run (CR0, GERRORN, CMDQ_PROD).
// - The event queue's producer side (the SMMU's own records, or a VMM's for its guest): the
//   next free slot, PROD's advance, and OVFLG on a lost record (IHI 0070 §7.4).
//
// - SMMUv3.3 ECMDQ discovery when Features::ecmdqs: IDR1.ECMDQ, IDR6 (one control page of
//   ecmdqs queues), AIDR 3.3, and GERROR.CMDQP_ERR (the queues' own registers: ecmdq.h).
//
// What it does not model: the secure and Realm register pages, IDR2/IDR4 contents.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>

#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/queue_ring.h"
#include "models/common/register_file.h"
#include "models/smmuv3/registers.h"

namespace iommusim::smmuv3 {

// What the ID registers advertise.
struct Features {
  bool stage1 = true;                 // IDR0.S1P
  bool stage2 = true;                 // IDR0.S2P
  bool msi = true;                    // IDR0.MSI
  bool two_level_stream_table = true; // IDR0.ST_LEVEL = 1
  unsigned sid_bits = 16;             // IDR1.SIDSIZE
  unsigned ssid_bits = 20;            // IDR1.SSIDSIZE
  unsigned cmdq_log2_max = 19;        // IDR1.CMDQS
  unsigned evtq_log2_max = 19;        // IDR1.EVTQS
  bool range_invalidation = true;     // IDR3.RIL
  unsigned ecmdqs = 0;                // IDR1.ECMDQ, IDR6: ECMDQs in one control page (0: none; a power of two)
};

// What a guest's SMMUv3 driver reaches of its VM's Tegra241 CMDQV VINTF (the VMM's, as
// QEMU's vCMDQV: platforms/vmm/vsmmuv3.h): the VINTF's logical VCMDQ page 0, mapped into
// the guest (its accesses do not trap and cost the hardware's MMIO time), and the page-1
// BASE register, whose write traps to the VMM, which allocates the HW queue.
class GuestCmdqv {
 public:
  virtual ~GuestCmdqv() = default;
  virtual unsigned lvcmdqs() const = 0;
  // Writes LVCMDQ `lidx`'s BASE (GPA | LOG2SIZE); false when the VMM's allocation failed.
  virtual bool set_base(unsigned lidx, uint64_t base) = 0;
  // Page-0 registers (cmdqv::VCMDQ_CONS, _PROD, _CONFIG, _STATUS, _GERROR, _GERRORN).
  virtual uint32_t read32(unsigned lidx, uint64_t reg) = 0;
  virtual void write32(unsigned lidx, uint64_t reg, uint32_t value) = 0;
  // Untimed, for error checks that stand in for the CMDQV interrupt and for messages.
  virtual uint32_t peek32(unsigned lidx, uint64_t reg) = 0;
  // The queue's per-command traces, for the driver's latency breakdown.
  virtual void set_command_probe(unsigned lidx, std::function<void(const common::CommandTrace&)> probe) = 0;
};

// A driver's view of the ECMDQs of an SMMU (nullptr from ProgrammingInterface::ecmdqs():
// none): the per-command traces of each, for the latency breakdown.
class EcmdqProbes {
 public:
  virtual ~EcmdqProbes() = default;
  virtual void set_ecmdq_probe(unsigned n, std::function<void(const common::CommandTrace&)> probe) = 0;
};

// What a driver reaches besides MMIO, on an SMMU or an emulated one: the per-command traces
// of its command queue (for the latency breakdown) and untimed register peeks (error checks
// and messages).
class ProgrammingInterface {
 public:
  virtual ~ProgrammingInterface() = default;
  virtual void set_command_probe(std::function<void(const common::CommandTrace&)> probe) = 0;
  virtual uint32_t peek32(uint64_t offset) = 0;
  // When the record in event-queue slot `index` was written, in simulated ps (bookkeeping
  // for latency stats: no register shows it); 0 when unknown.
  virtual uint64_t event_written_ps(uint32_t index) const { (void)index; return 0; }
  // A guest's VCMDQs (nullptr: none, the SMMU's own queue only).
  virtual GuestCmdqv* guest_cmdqv() { return nullptr; }
  // The SMMU's ECMDQs' probes (nullptr: none; smmuv3.h).
  virtual EcmdqProbes* ecmdqs() { return nullptr; }
};

// A command queue in CMDQ_BASE format (the CMDQ, an ECMDQ) from its registers: BASE
// (ADDR, LOG2SIZE capped at `log2_max`), PROD, CONS (index and wrap; CONS.ERR ignored); ready
// when `runnable` and not empty.
common::QueueState command_queue_state(uint64_t base, uint32_t prod, uint32_t cons, unsigned log2_max, bool runnable);

class RegisterBlock {
 public:
  using R32 = common::Reg<uint32_t>;
  using R64 = common::Reg<uint64_t>;

  // Adds the registers to `file` and sets their reset values and write rules;
  // `queue_may_run` is called after a write to CR0, GERRORN or CMDQ_PROD.
  RegisterBlock(common::RegisterFile& file, const Features& f, std::function<void()> queue_may_run);

  R32 idr0, idr1, idr2, idr3, idr4, idr5, iidr, aidr, idr6;
  R32 cr0, cr0ack, cr1, cr2, gbpa;
  R32 irq_ctrl, irq_ctrlack;
  R32 gerror, gerrorn;
  R64 gerror_irq_cfg0;
  R32 gerror_irq_cfg1, gerror_irq_cfg2;
  R64 strtab_base;
  R32 strtab_base_cfg;
  R64 cmdq_base;
  R32 cmdq_prod, cmdq_cons;
  R64 evtq_base;
  R64 evtq_irq_cfg0;
  R32 evtq_irq_cfg1, evtq_irq_cfg2;
  R32 evtq_prod, evtq_cons;

  // The command queue as these registers describe it (common::CommandQueueVendor::queue_state):
  // ready while CR0.CMDQEN is set, no error is pending and PROD differs from CONS.
  common::QueueState cmdq_state() const;
  // An error halt: CONS stays on the entry with ERR saying why (CERROR_ILL, CERROR_ABT for a
  // failed fetch, or the completion's own code), and GERROR.CMDQ_ERR toggles; the queue stays
  // stopped until GERRORN acknowledges it (IHI 0070 §7.1).
  void cmdq_halt(const common::QueueError& e);
  // The event queue's next free slot, for a record the SMMU (or a VMM for its guest) writes;
  // none when the queue is disabled (CR0.EVTQEN = 0) or full. A full queue loses the record
  // and toggles EVTQ_PROD.OVFLG, unless an earlier overflow is still unacknowledged
  // (PROD.OVFLG != CONS.OVACKFLG) (IHI 0070 §7.4).
  struct EvtqSlot { uint64_t address = 0; uint32_t index = 0; };
  std::optional<EvtqSlot> evtq_next_slot();
  // The record at the slot evtq_next_slot gave is written: EVTQ_PROD moves past it.
  void evtq_produce();
  // Records were lost: EVTQ_PROD.OVFLG toggles unless an earlier overflow is unacknowledged.
  void evtq_overflow();
  // GERROR.CMDQ_ERR differs from GERRORN until software acknowledges the error.
  bool cmdq_error_active() const { return (gerror.get() ^ gerrorn.get()) & 1; }
  // An ECMDQ stopped on an error: GERROR.CMDQP_ERR toggles unless it is already active
  // (GERROR != GERRORN in that bit; IHI 0070 §7.1: an active error is not raised again).
  void ecmdq_error() {
    if (!((gerror.get() ^ gerrorn.get()) & (1u << 9))) gerror.set<reg::GERROR_CMDQP_ERR>(!gerror.get<reg::GERROR_CMDQP_ERR>());
  }

 private:
  common::WrapRing evtq_ring() const;
  unsigned cmdq_log2_max_, evtq_log2_max_;
  std::function<void()> queue_may_run_;
};

}  // namespace iommusim::smmuv3

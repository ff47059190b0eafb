// The VT-d remapping unit's programming interface in scalable mode (Intel VT-d spec,
// chapter 11): every register software sees, with its write rules. One definition serves
// the VT-d model and a VMM's emulated vVT-d (platforms/vmm/vvtd.h), which differ in what
// CAP/ECAP advertise and in what a write that may start the invalidation queue, latch the
// root table or request a register-based invalidation does.
//
// What it models
// - VER, CAP, ECAP (from Features), GCMD/GSTS (TE, QIE kept; SRTP and WBF one-shot, RTPS
//   latched; enabling QI resets IQH), RTADDR, CCMD and IVA/IOTLB (register-based
//   invalidation completing at once, a page-selective IOTLB request with AM above CAP.MAMV
//   ignored with IAIG = 00b, VT-d 11.4.8.1), FSTS (RW1C; PPF read-only), FECTL, IQH/IQT/IQA, ICS, IECTL,
//   IQER and the FRCD fault-recording registers at CAP.FRO.
// - The invalidation queue as these registers describe it, its error halt (FSTS.IQE with
//   IQER.IQEI, or FSTS.ITE with IQER.ITESID), the inv_wait's IF completion (ICS.IWC,
//   IECTL.IP unless masked) and fault recording into the FRCD ring (FSTS.PPF, FRI, PFO).
//
// What it does not model: PMRs, the page-request queue, interrupt remapping (IRTA),
// ECMD/VCMD, perfmon, interrupt messages (FECTL/IECTL.IP are set, no MSI write).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>

#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/programming_interface.h"
#include "models/common/register_file.h"
#include "models/vtd/commands.h"
#include "models/vtd/faults.h"
#include "models/vtd/registers.h"

namespace iommusim::vtd {

// What CAP/ECAP advertise, and the largest IQA.QS the queue accepts.
struct Features {
  reg::Capability cap;
  reg::ExtCapability ecap;
  unsigned iq_max_qs = 7;
};

// What a driver reaches besides MMIO, on the unit or an emulated one.
using ProgrammingInterface = common::ProgrammingInterface;

class RegisterBlock {
 public:
  using R32 = common::Reg<uint32_t>;
  using R64 = common::Reg<uint64_t>;

  struct Hooks {
    std::function<void()> queue_may_run;      // after GCMD, IQT and FSTS writes
    std::function<void()> root_table_latched;  // GCMD.SRTP: root_table() / ttm() are new
    // Register-based invalidations (CCMD.ICC; IOTLB.IVT with an accepted granularity;
    // `drain`: DR or DW set).
    std::function<void(uint8_t g, uint16_t sid, uint8_t fm)> context_invalidate;
    std::function<void(uint8_t g, uint16_t did, uint64_t addr, uint8_t am, bool ih, bool drain)> iotlb_invalidate;
  };

  // Adds the registers to `file`, with CAP.NFR + 1 FRCD pairs.
  RegisterBlock(common::RegisterFile& file, const Features& f, Hooks hooks);

  R32 ver;
  R64 cap, ecap;
  R32 gcmd, gsts;
  R64 rtaddr, ccmd;
  R32 fsts, fectl, fedata, feaddr, feuaddr;
  R64 iqh, iqt, iqa;
  R32 ics, iectl, iedata, ieaddr, ieuaddr;
  R64 iqer, iva, iotlb;
  std::deque<R64> frcd_lo, frcd_hi;

  const Features& features() const { return f_; }
  // The descriptor checks these capabilities call for, with 256-bit descriptors.
  QiCaps qi_caps() const { return make_qi_caps(f_.cap, f_.ecap, true); }
  // Decodes the invalidation-queue entry `e` (IQA.DW from the queue's entry size) with these
  // capabilities: a legal one into `out`, an illegal one with its IQER.IQEI as error code.
  common::Decoded decode_queue_entry(const uint64_t* e, const common::QueueState& q, Descriptor& out) const;
  uint64_t root_table() const { return root_table_; }
  uint8_t ttm() const { return ttm_; }
  bool translation_enabled() const { return gsts.get<reg::GSTS_TES>(); }

  // The invalidation queue (common::CommandQueueVendor::queue_state): ready while
  // GSTS.QIES is set, neither IQE nor ITE is pending and IQH differs from IQT; a tail beyond
  // the queue or a misaligned one (256-bit descriptors) is a bad pointer.
  common::QueueState iq_state() const;
  void iq_consumed(const common::QueueState& q, uint32_t head);
  // IQH stays at the bad descriptor: FSTS.IQE with IQER.IQEI (or, for a device-TLB
  // invalidation that timed out, FSTS.ITE with IQER.ITESID) until software clears it.
  void iq_halt(const common::QueueError& e);
  // An inv_wait with IF: ICS.IWC, and IECTL.IP unless IECTL.IM.
  void wait_completed_interrupt();
  // Writes a fault record into the next FRCD and returns its index; nullopt when that one
  // is still pending (the fault is lost: FSTS.PFO).
  std::optional<unsigned> record_fault(const FaultRecord& r);
  // Faults lost elsewhere (an emulated unit's source dropped them): FSTS.PFO.
  void fault_overflow() { fsts.set<reg::FSTS_PFO>(1); }

 private:
  void update_ppf();

  Features f_;
  Hooks hooks_;
  uint64_t root_table_ = 0;   // latched by SRTP
  uint8_t ttm_ = 0;
  unsigned next_fault_ = 0;
};

}  // namespace iommusim::vtd

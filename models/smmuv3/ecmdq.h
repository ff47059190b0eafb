// SMMUv3.3 Enhanced Command queue interfaces (ECMDQ) in register mode (Arm IHI 0070, SMMUv3.3
// "Enhanced Command queue interfaces", SMMU_ECMDQ_BASE/PROD/CONS and
// SMMU_CMDQ_CONTROL_PAGE_BASE): further command queues of the SMMU, one per host CPU, each
// with its own producer, consumer and error state, so CPUs need not share the CMDQ.
//
// What it models
// - One command queue control page at the offset SMMU_CMDQ_CONTROL_PAGE_BASE0.ADDR names
//   (PRESET = 1: register mode), holding 2^IDR6.LOG2NUMQ ECMDQs 64 KB >> LOG2NUMQ apart,
//   each with ECMDQ_BASE (+0x0), ECMDQ_PROD (+0x8) and ECMDQ_CONS (+0xC) (registers.h).
// - Enable handshake: PROD.EN = 1 is acknowledged in CONS.ENACK at once (as CR0ACK follows
//   CR0); EN = 0 once the batch the queue fetched has executed (IHI 0070 §3.5.6.2: with
//   ENACK = 0 consumption has stopped and CONS is stable). BASE and CONS.RD are writable
//   only while ENACK = 0, as CMDQ_BASE/CONS while CMDQEN = 0.
// - Each ECMDQ is a command queue of the SMMU (Smmuv3::add_command_queue): its own consumer
//   on the shared engine, the SMMU's decode and execution; a CMD_SYNC orders and waits for
//   its own queue only.
// - Errors: a command error on ECMDQ n stops only ECMDQ n: CONS.RD stays on the entry,
//   CONS.ERR_REASON takes the CERROR code (ILL, ABT, ATC_INV_SYNC), CONS.ERR toggles, and
//   SMMU_GERROR.CMDQP_ERR toggles unless already active. The queue runs again once software
//   writes PROD.ERRACK equal to CONS.ERR (the series' arm_smmu_ecmdq_err_ack).
//
// What it does not model
// - Memory-mode control pages (PRESET = 0), several control pages (IDR6.LOG2NUMP = 0),
//   SMMU_CMDQ_CONTROL_PAGE_CFG/STATUS (the page is always enabled; the Linux series never
//   writes them), doorbell pages (IDR6.BA_DOORBELLS = 0), the secure and Realm ECMDQs, and
//   MSIs for GERROR (the model's state stands in for the interrupt, as for the CMDQ).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/smmuv3/register_block.h"
#include "models/smmuv3/registers.h"

namespace iommusim::smmuv3 {

class Smmuv3;

// ECMDQ n's register block offset from the SMMU's base, with `queues` ECMDQs in the page.
inline uint64_t ecmdq_offset(unsigned n, unsigned queues) {
  return reg::kEcmdqControlPage + uint64_t(n) * reg::ecmdq_stride(reg::ecmdq_log2numq(queues));
}

class EcmdqInterface {
 public:
  // Adds SMMU_CMDQ_CONTROL_PAGE_BASE0 and `queues` ECMDQs' registers to `file` (the SMMU's
  // register file; `r` its GERROR) and each ECMDQ as a command queue of `smmu`. A queue's
  // LOG2SIZE is capped at `cmdq_log2_max` (IDR1.CMDQS).
  EcmdqInterface(common::RegisterFile& file, RegisterBlock& r, unsigned queues, unsigned cmdq_log2_max, Smmuv3& smmu);
  ~EcmdqInterface();

  unsigned queues() const { return unsigned(queues_.size()); }
  // ECMDQ n's engine (its stats; its probe for a driver's latency breakdown).
  common::CommandQueue& queue(unsigned n);
  // <prefix>.ecmdq<n>.* of every ECMDQ.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  class Queue;
  common::Reg<uint64_t> control_page_base_;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace iommusim::smmuv3

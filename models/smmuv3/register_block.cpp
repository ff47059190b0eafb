#include "models/smmuv3/register_block.h"

#include <algorithm>

#include "models/common/bits.h"
#include "models/smmuv3/registers.h"

namespace iommusim::smmuv3 {

using namespace reg;

RegisterBlock::RegisterBlock(common::RegisterFile& f, const Features& ft, std::function<void()> queue_may_run)
    : idr0{f, "IDR0", IDR0}, idr1{f, "IDR1", IDR1}, idr2{f, "IDR2", IDR2}, idr3{f, "IDR3", IDR3},
      idr4{f, "IDR4", IDR4}, idr5{f, "IDR5", IDR5}, iidr{f, "IIDR", IIDR}, aidr{f, "AIDR", AIDR}, idr6{f, "IDR6", IDR6},
      cr0{f, "CR0", CR0}, cr0ack{f, "CR0ACK", CR0ACK}, cr1{f, "CR1", CR1}, cr2{f, "CR2", CR2}, gbpa{f, "GBPA", GBPA},
      irq_ctrl{f, "IRQ_CTRL", IRQ_CTRL}, irq_ctrlack{f, "IRQ_CTRLACK", IRQ_CTRLACK},
      gerror{f, "GERROR", GERROR}, gerrorn{f, "GERRORN", GERRORN},
      gerror_irq_cfg0{f, "GERROR_IRQ_CFG0", GERROR_IRQ_CFG0}, gerror_irq_cfg1{f, "GERROR_IRQ_CFG1", GERROR_IRQ_CFG1},
      gerror_irq_cfg2{f, "GERROR_IRQ_CFG2", GERROR_IRQ_CFG2},
      strtab_base{f, "STRTAB_BASE", STRTAB_BASE}, strtab_base_cfg{f, "STRTAB_BASE_CFG", STRTAB_BASE_CFG},
      cmdq_base{f, "CMDQ_BASE", CMDQ_BASE}, cmdq_prod{f, "CMDQ_PROD", CMDQ_PROD}, cmdq_cons{f, "CMDQ_CONS", CMDQ_CONS},
      evtq_base{f, "EVTQ_BASE", EVTQ_BASE}, evtq_irq_cfg0{f, "EVTQ_IRQ_CFG0", EVTQ_IRQ_CFG0},
      evtq_irq_cfg1{f, "EVTQ_IRQ_CFG1", EVTQ_IRQ_CFG1}, evtq_irq_cfg2{f, "EVTQ_IRQ_CFG2", EVTQ_IRQ_CFG2},
      evtq_prod{f, "EVTQ_PROD", EVTQ_PROD}, evtq_cons{f, "EVTQ_CONS", EVTQ_CONS},
      cmdq_log2_max_(ft.cmdq_log2_max), evtq_log2_max_(ft.evtq_log2_max), queue_may_run_(std::move(queue_may_run)) {
  uint64_t id0 = 0;
  id0 = IDR0_S2P::set(id0, ft.stage2);
  id0 = IDR0_S1P::set(id0, ft.stage1);
  id0 = IDR0_TTF::set(id0, 2);        // AArch64 tables
  id0 = IDR0_COHACC::set(id0, 1);
  id0 = IDR0_ASID16::set(id0, 1);
  id0 = IDR0_MSI::set(id0, ft.msi);
  id0 = IDR0_SEV::set(id0, 1);
  id0 = IDR0_VMID16::set(id0, 1);
  id0 = IDR0_TTENDIAN::set(id0, 2);   // little-endian only
  id0 = IDR0_ST_LEVEL::set(id0, ft.two_level_stream_table);
  id0 = IDR0_STALL_MODEL::set(id0, 1);   // stall not supported: CD.S / STE.S2S are C_BAD_*
  id0 = IDR0_TERM_MODEL::set(id0, 1);    // terminated transactions always abort: CD.A=0 is C_BAD_CD
  id0 = IDR0_HTTU::set(id0, 0);          // no hardware A/D updates: CD.HA/HD are C_BAD_CD
  uint64_t id1 = 0;
  id1 = IDR1_SIDSIZE::set(id1, ft.sid_bits);
  id1 = IDR1_SSIDSIZE::set(id1, ft.ssid_bits);
  id1 = IDR1_EVTQS::set(id1, ft.evtq_log2_max);
  id1 = IDR1_CMDQS::set(id1, ft.cmdq_log2_max);
  id1 = IDR1_ECMDQ::set(id1, ft.ecmdqs != 0);
  // One control page holding every ECMDQ (LOG2NUMP = 0), no doorbell pages.
  const uint64_t id6 = ft.ecmdqs ? IDR6_LOG2NUMQ::set(0, ecmdq_log2numq(ft.ecmdqs)) : 0;   // a power of two (validated)
  const uint64_t id3 = IDR3_RIL::set(0, ft.range_invalidation);
  uint64_t id5 = IDR5_OAS::set(0, 5);  // 48-bit
  id5 = IDR5_GRAN4K::set(id5, 1);
  // Only the 4 KB granule: the STE/CD checks reject others (the VMSA format has them).

  idr0.read_only().reset(uint32_t(id0));
  idr1.read_only().reset(uint32_t(id1));
  idr2.read_only();
  idr3.read_only().reset(uint32_t(id3));
  idr4.read_only();
  idr5.read_only().reset(uint32_t(id5));
  idr6.read_only().reset(uint32_t(id6));
  iidr.read_only();
  // SMMUv3.2: IDR3.RIL (range invalidation) is a v3.2 feature; ECMDQ a v3.3 one.
  aidr.read_only().reset(uint32_t(AIDR_MINOR::set(AIDR_MAJOR::set(0, 0), ft.ecmdqs ? 3 : 2)));
  cr0ack.read_only();
  // Updates take effect at once, so CR0ACK follows CR0 immediately.
  cr0.writable(0x1F).on_write([this](uint32_t, uint32_t v) {
    cr0ack.set(v);
    queue_may_run_();
  });
  cr1.writable(0xFFF);
  cr2.writable(0x7);
  // GBPA: abort by default; UPDATE completes at once.
  gbpa.reset(uint32_t(GBPA_ABORT::set(0, 1))).on_write([this](uint32_t, uint32_t) { gbpa.set<GBPA_UPDATE>(0); });
  irq_ctrl.writable(0x7).on_write([this](uint32_t, uint32_t v) { irq_ctrlack.set(v); });
  irq_ctrlack.read_only();
  gerror.read_only();
  // May acknowledge CMDQ_ERR; CMDQP_ERR[9] exists with ECMDQs only (RES0 otherwise).
  gerrorn.writable(ft.ecmdqs ? 0x3FD : 0x1FD).on_write([this](uint32_t, uint32_t) { queue_may_run_(); });
  // MSI configuration (Linux arm_smmu_setup_msis writes ADDR, DATA, MemAttr): stored, not
  // used (GERROR/EVTQ interrupts are signalled through the model's own state).
  gerror_irq_cfg0.writable(common::mask(51, 2));
  gerror_irq_cfg2.writable(uint32_t(common::mask(5, 0)));   // SH[5:4], MemAttr[3:0]
  evtq_irq_cfg0.writable(common::mask(51, 2));
  evtq_irq_cfg2.writable(uint32_t(common::mask(5, 0)));
  strtab_base.writable(common::mask(51, 6) | (1ull << 62));
  strtab_base_cfg.writable(uint32_t(common::mask(17, 0)));
  cmdq_base.writable(common::mask(51, 0) | (1ull << 62));
  cmdq_prod.writable(uint32_t(common::mask(19, 0))).on_write([this](uint32_t, uint32_t) { queue_may_run_(); });
  // Software may write CMDQ_CONS (wrap+index; ERR is read-only) only while the queue is
  // disabled (CR0ACK.CMDQEN=0), as Linux does at reset; writes while enabled are ignored.
  cmdq_cons.writable(uint32_t(common::mask(19, 0))).on_write([this](uint32_t old, uint32_t) {
    if (cr0ack.get<CR0_CMDQEN>()) cmdq_cons.set(old);
  });
  evtq_base.writable(common::mask(51, 0) | (1ull << 62));
  // Likewise EVTQ_PROD (wrap+index and OVFLG) while CR0ACK.EVTQEN=0.
  evtq_prod.writable(uint32_t(common::mask(19, 0) | (1ull << 31))).on_write([this](uint32_t old, uint32_t) {
    if (cr0ack.get<CR0_EVTQEN>()) evtq_prod.set(old);
  });
  evtq_cons.writable(uint32_t(common::mask(19, 0) | (1ull << 31)));
  f.alias(EVTQ_PROD_PAGE0, evtq_prod);
  f.alias(EVTQ_CONS_PAGE0, evtq_cons);
}

common::QueueState command_queue_state(uint64_t base, uint32_t prod, uint32_t cons, unsigned log2_max, bool runnable) {
  common::QueueState q;
  q.ring = common::IndexRing{unsigned(std::min<uint64_t>(Q_BASE_LOG2SIZE::get(base), log2_max)), true};
  q.base = Q_BASE_ADDR::get_address(base);
  q.entry_bytes = 16;
  q.tail = prod & q.ring.pointer_mask();
  q.head = cons & q.ring.pointer_mask();   // without CONS.ERR
  if (runnable && !q.ring.empty(q.tail, q.head)) q.status = common::QueueState::Status::Ready;
  return q;
}

common::QueueState RegisterBlock::cmdq_state() const {
  return command_queue_state(cmdq_base.get(), cmdq_prod.get(), cmdq_cons.get(), cmdq_log2_max_,
                             cr0.get<CR0_CMDQEN>() && !cmdq_error_active());
}

common::WrapRing RegisterBlock::evtq_ring() const {
  return common::WrapRing{unsigned(std::min<uint64_t>(Q_BASE_LOG2SIZE::get(evtq_base.get()), evtq_log2_max_))};
}

std::optional<RegisterBlock::EvtqSlot> RegisterBlock::evtq_next_slot() {
  if (!cr0.get<CR0_EVTQEN>()) return std::nullopt;
  const common::WrapRing ring = evtq_ring();
  const uint32_t prod = evtq_prod.get(), cons = evtq_cons.get();
  if (ring.full(prod & ring.pointer_mask(), cons & ring.pointer_mask())) {
    evtq_overflow();
    return std::nullopt;
  }
  const uint32_t index = ring.index(prod);
  return EvtqSlot{(Q_BASE_ADDR::get(evtq_base.get()) << 5) + uint64_t(index) * 32, index};
}

void RegisterBlock::evtq_overflow() {
  const uint32_t prod = evtq_prod.get();
  if (((prod ^ evtq_cons.get()) >> 31) == 0) evtq_prod.set(prod ^ (1u << 31));
}

void RegisterBlock::evtq_produce() {
  const common::WrapRing ring = evtq_ring();
  const uint32_t prod = evtq_prod.get();
  evtq_prod.set((prod & (1u << 31)) | ring.next(prod & ring.pointer_mask()));
}

void RegisterBlock::cmdq_halt(const common::QueueError& e) {
  uint32_t err = CERROR_ILL;
  if (e.kind == common::QueueError::Kind::FetchAbort) err = CERROR_ABT;
  if (e.kind == common::QueueError::Kind::Completion) err = e.code;   // CERROR_ATC_INV_SYNC
  cmdq_cons.set(uint32_t(CMDQ_CONS_ERR::set(e.head, err)));
  gerror.set<GERROR_CMDQ_ERR>(!gerror.get<GERROR_CMDQ_ERR>());
}

}  // namespace iommusim::smmuv3

#include "models/smmuv3/ecmdq.h"

#include "models/common/bits.h"
#include "models/smmuv3/commands.h"
#include "models/smmuv3/smmuv3.h"

namespace iommusim::smmuv3 {

using namespace reg;

// One ECMDQ: its three registers and the SMMU command queue they describe.
class EcmdqInterface::Queue : public CommandQueueRegisters {
 public:
  Queue(common::RegisterFile& f, RegisterBlock& r, unsigned n, uint64_t at, unsigned log2max, Smmuv3& smmu)
      : base(f, "ECMDQ" + std::to_string(n) + "_BASE", at + ECMDQ_BASE),
        prod(f, "ECMDQ" + std::to_string(n) + "_PROD", at + ECMDQ_PROD),
        cons(f, "ECMDQ" + std::to_string(n) + "_CONS", at + ECMDQ_CONS), r_(r), log2max_(log2max) {
    // BASE (ADDR, LOG2SIZE, RA) only while the queue is disabled, as CMDQ_BASE.
    base.writable(common::mask(51, 0) | (1ull << 62)).on_write([this](uint64_t old, uint64_t) {
      if (enabled()) base.set(old);
    });
    // A write may enable, acknowledge an error or move WR. EN = 1 is acknowledged at once.
    // EN = 0 while a fetched batch is executing: ENACK drops when that batch ends, as IHI
    // 0070 §3.5.6.2 has consumption stopped and CONS stable once ENACK reads 0.
    prod.writable(uint32_t(kEcmdqPointerMask | ECMDQ_PROD_ERRACK::set(0, 1) | ECMDQ_PROD_EN::set(0, 1)))
        .on_write([this](uint32_t, uint32_t v) {
          disabling_ = !ECMDQ_PROD_EN::get(v) && in_batch_;
          if (!disabling_) cons.set<ECMDQ_CONS_ENACK>(ECMDQ_PROD_EN::get(v));
          queue_->kick();
        });
    // CONS.RD only while disabled (ERR, ERR_REASON and ENACK are read-only).
    cons.writable(kEcmdqPointerMask).on_write([this](uint32_t old, uint32_t) {
      if (ECMDQ_CONS_ENACK::get(old)) cons.set(old);
    });
    queue_ = &smmu.add_command_queue(*this);
  }

  bool enabled() const { return cons.get<ECMDQ_CONS_ENACK>(); }
  // CONS.ERR differs from PROD.ERRACK until software acknowledges the error.
  bool error_active() const { return cons.get<ECMDQ_CONS_ERR>() != prod.get<ECMDQ_PROD_ERRACK>(); }

  // The engine asks at the start of each batch, so the previous batch has ended here.
  common::QueueState queue_state() override {
    if (disabling_) cons.set<ECMDQ_CONS_ENACK>(0);
    disabling_ = false;
    common::QueueState q = command_queue_state(base.get(), prod.get(), cons.get(), log2max_, enabled() && !error_active());
    in_batch_ = q.status == common::QueueState::Status::Ready;
    return q;
  }
  void consumed(uint32_t head) override { cons.set((cons.get() & ~kEcmdqPointerMask) | head); }
  void halt(const common::QueueError& e) override {
    uint32_t err = CERROR_ILL;
    if (e.kind == common::QueueError::Kind::FetchAbort) err = CERROR_ABT;
    if (e.kind == common::QueueError::Kind::Completion) err = e.code;   // CERROR_ATC_INV_SYNC
    uint64_t c = (cons.get() & ~kEcmdqPointerMask) | e.head;
    c = ECMDQ_CONS_ERR_REASON::set(c, err);
    c = ECMDQ_CONS_ERR::set(c, !ECMDQ_CONS_ERR::get(c));
    cons.set(uint32_t(c));
    r_.ecmdq_error();
  }

  common::CommandQueue& queue() const { return *queue_; }

  common::Reg<uint64_t> base;
  common::Reg<uint32_t> prod, cons;

 private:
  RegisterBlock& r_;
  unsigned log2max_;
  common::CommandQueue* queue_ = nullptr;
  bool in_batch_ = false;    // the engine is executing a batch it fetched
  bool disabling_ = false;   // EN = 0 written during it: ENACK drops when it ends
};

EcmdqInterface::EcmdqInterface(common::RegisterFile& file, RegisterBlock& r, unsigned queues, unsigned cmdq_log2_max,
                               Smmuv3& smmu)
    : control_page_base_(file, "CMDQ_CONTROL_PAGE_BASE0", CMDQ_CONTROL_PAGE_BASE(0)) {
  control_page_base_.read_only().reset(CP_ADDR::set(CP_CMDQGS::set(CP_PRESET::set(0, 1), kCmdqgs64K), kEcmdqControlPage >> 16));
  for (unsigned n = 0; n < queues; ++n)
    queues_.push_back(std::make_unique<Queue>(file, r, n, ecmdq_offset(n, queues), cmdq_log2_max, smmu));
}

EcmdqInterface::~EcmdqInterface() = default;

common::CommandQueue& EcmdqInterface::queue(unsigned n) { return queues_.at(n)->queue(); }

void EcmdqInterface::register_stats(common::StatRegistry& reg, const std::string& p) const {
  for (unsigned n = 0; n < queues_.size(); ++n) {
    const std::string name = p + ".ecmdq" + std::to_string(n);
    const common::CommandQueue::Stats& s = queues_[n]->queue().stats();
    reg.add(name + ".commands", s.executed, "count", "commands executed from this ECMDQ");
    reg.add(name + ".errors", s.errors, "count", "error halts of this ECMDQ (CONS.ERR, GERROR.CMDQP_ERR)");
    reg.add(name + ".syncs", s.barriers, "count", "CMD_SYNCs completed on this ECMDQ");
    reg.add(name + ".command_exec", s.exec_ps, "ns", "execution time per command from this ECMDQ (after decode)", 1e-3);
    reg.add(name + ".sync_exec", s.barrier_ps, "ns", "CMD_SYNC execution on this ECMDQ incl. draining older walks", 1e-3);
    queues_[n]->queue().register_stats(reg, name, command_type_names());
  }
}

}  // namespace iommusim::smmuv3

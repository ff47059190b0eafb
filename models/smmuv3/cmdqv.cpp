#include "models/smmuv3/cmdqv.h"

#include <algorithm>

#include "models/smmuv3/registers.h"

namespace iommusim::smmuv3 {

using namespace cmdqv;

std::string validate(const CmdqvConfig& c) {
  // CMDQ_ALLOC_VINTF is 6 bits and LVCMDQ_ERR_MAP_64 covers 128 logical queues; the
  // CMDQ_ERR_MAP registers 4 x 32 global queues; SID_MATCH/REPLACE have 16 slots (0x40..0x7C).
  if (c.vintfs_log2 > 6) return "vintfs_log2 must be 0..6";
  if (c.vcmdqs_log2 > 7) return "vcmdqs_log2 must be 0..7";
  if (c.vcmdqs_log2 < c.vintfs_log2) return "vcmdqs_log2 must be at least vintfs_log2 (a VCMDQ per VINTF)";
  if (c.sids_per_vintf_log2 > 4) return "sids_per_vintf_log2 must be 0..4";
  if (c.version > 15) return "version must be 0..15";
  return "";
}

// One global VCMDQ: its page-0 and page-1 registers, and the SMMU queue they describe.
class Cmdqv::Vcmdq : public CommandQueueRegisters {
 public:
  Vcmdq(Cmdqv& owner, unsigned q)
      : cons(owner.regs_, "VCMDQ" + std::to_string(q) + "_CONS", VCMDQ_PAGE0(q) + VCMDQ_CONS),
        prod(owner.regs_, "VCMDQ" + std::to_string(q) + "_PROD", VCMDQ_PAGE0(q) + VCMDQ_PROD),
        config(owner.regs_, "VCMDQ" + std::to_string(q) + "_CONFIG", VCMDQ_PAGE0(q) + VCMDQ_CONFIG),
        status(owner.regs_, "VCMDQ" + std::to_string(q) + "_STATUS", VCMDQ_PAGE0(q) + VCMDQ_STATUS),
        gerror(owner.regs_, "VCMDQ" + std::to_string(q) + "_GERROR", VCMDQ_PAGE0(q) + VCMDQ_GERROR),
        gerrorn(owner.regs_, "VCMDQ" + std::to_string(q) + "_GERRORN", VCMDQ_PAGE0(q) + VCMDQ_GERRORN),
        base(owner.regs_, "VCMDQ" + std::to_string(q) + "_BASE", VCMDQ_PAGE1(q) + VCMDQ_BASE),
        cons_indx_base(owner.regs_, "VCMDQ" + std::to_string(q) + "_CONS_INDX_BASE",
                       VCMDQ_PAGE1(q) + VCMDQ_CONS_INDX_BASE),
        owner_(owner), index_(q) {
    const uint32_t pointer = uint32_t(common::mask(19, 0));
    prod.writable(pointer).on_write([this](uint32_t, uint32_t) { kick(); });
    // CONS (wrap + index; ERR read-only) only while the queue is disabled, as the SMMU's.
    cons.writable(pointer).on_write([this](uint32_t old, uint32_t) {
      if (status.get<VCMDQ_ENABLED>()) cons.set(old);
    });
    config.writable(1).on_write([this](uint32_t, uint32_t v) {
      status.set<VCMDQ_ENABLED>(v & 1);   // takes effect at once
      kick();
    });
    status.read_only();
    gerror.read_only();
    gerrorn.writable(1).on_write([this](uint32_t, uint32_t) {
      owner_.update_error_maps();
      kick();
    });
    base.writable(VCMDQ_ADDR::set(0, ~0ull) | VCMDQ_LOG2SIZE::set(0, ~0ull));
    cons_indx_base.writable(common::mask(47, 2));
    queue_ = &owner.smmu_.add_command_queue(*this);
  }

  common::QueueState queue_state() override {
    common::QueueState s;
    const uint64_t b = base.get();
    const unsigned cmdqs = unsigned(reg::IDR1_CMDQS::get(owner_.smmu_.peek32(reg::IDR1)));
    s.ring = common::IndexRing{std::min<unsigned>(unsigned(VCMDQ_LOG2SIZE::get(b)), cmdqs), true};
    s.base = VCMDQ_ADDR::get(b) << 5;
    s.entry_bytes = 16;
    s.tail = prod.get() & s.ring.pointer_mask();
    s.head = cons.get() & s.ring.pointer_mask();
    if (runnable() && !error_active() && !s.ring.empty(s.tail, s.head)) s.status = common::QueueState::Status::Ready;
    return s;
  }
  void consumed(uint32_t head) override { cons.set(head); }
  void halt(const common::QueueError& e) override {
    uint32_t err = reg::CERROR_ILL;
    if (e.kind == common::QueueError::Kind::FetchAbort) err = reg::CERROR_ABT;
    if (e.kind == common::QueueError::Kind::Completion) err = e.code;
    cons.set(uint32_t(VCMDQ_CONS_ERR::set(e.head, err)));
    gerror.set(gerror.get() ^ 1u);   // CMDQ_ERR
    owner_.update_error_maps();
  }
  bool admit(Command& c) override {
    const Vintf* v = vintf();
    if (!v) return false;
    if (v->config->get<VINTF_HYP_OWN>()) return true;   // the hypervisor's: as written
    switch (c.op) {
      case Opcode::TlbiNhAsid:
      case Opcode::TlbiNhVa:
        c.vmid = uint16_t(v->config->get<VINTF_VMID>());   // the VINTF's, never the guest's
        return true;
      case Opcode::AtcInv:
        for (unsigned s = 0; s < v->sid_match.size(); ++s) {
          const uint32_t match = v->sid_match[s]->get();
          if ((match & 1) && (match >> 1) == c.sid) {
            c.sid = v->sid_replace[s]->get();
            sids_replaced_.inc();
            return true;
          }
        }
        return false;   // a vSID with no match
      case Opcode::Sync:
        // Linux drives a guest's VCMDQ with CS = NONE only (ARM_SMMU_OPT_TEGRA241_CMDQV,
        // arm_smmu_cmdq_needs_busy_polling). MODEL CHOICE: CS = IRQ (an MSI write to an
        // address the guest chose, untranslated) or SEV is that queue's CERROR_ILL.
        return c.cs == SyncCs::None;
      default:
        return false;
    }
  }

  // The VINTF this queue is allocated to (nullptr: not allocated).
  const Vintf* vintf() const {
    const uint32_t alloc = owner_.cmdq_alloc_[index_]->get();
    if (!CMDQV_CMDQ_ALLOCATED::get(alloc)) return nullptr;
    const unsigned v = unsigned(CMDQV_CMDQ_ALLOC_VINTF::get(alloc));
    return v < owner_.vintf_.size() ? &owner_.vintf_[v] : nullptr;
  }
  unsigned lidx() const { return unsigned(CMDQV_CMDQ_ALLOC_LVCMDQ::get(owner_.cmdq_alloc_[index_]->get())); }
  bool error_active() const { return (gerror.get() ^ gerrorn.get()) & 1; }
  bool runnable() const {
    const Vintf* v = vintf();
    return owner_.status_.get<CMDQV_ENABLED>() && v && v->status->get<VINTF_ENABLED>() && status.get<VCMDQ_ENABLED>();
  }
  void kick() { queue_->kick(); }
  common::CommandQueue& queue() const { return *queue_; }
  uint64_t sids_replaced() const { return sids_replaced_.value(); }
  const common::Counter& sids_replaced_counter() const { return sids_replaced_; }

  R32 cons, prod, config, status, gerror, gerrorn;
  R64 base, cons_indx_base;

 private:
  Cmdqv& owner_;
  unsigned index_;
  common::CommandQueue* queue_ = nullptr;
  common::Counter sids_replaced_;
};

Cmdqv::Cmdqv(sc_core::sc_module_name name, const CmdqvConfig& cfg, Smmuv3& smmu)
    : sc_module(name), cfg_(cfg), smmu_(smmu),
      config_(regs_, "CMDQV_CONFIG", CONFIG), param_(regs_, "CMDQV_PARAM", PARAM),
      status_(regs_, "CMDQV_STATUS", STATUS), vintf_err_map_lo_(regs_, "CMDQV_VINTF_ERR_MAP", VINTF_ERR_MAP),
      vintf_err_map_hi_(regs_, "CMDQV_VINTF_ERR_MAP_HI", VINTF_ERR_MAP + 4),
      vintf_int_mask_(regs_, "CMDQV_VINTF_INT_MASK", VINTF_INT_MASK) {
  uint64_t p = CMDQV_NUM_SID_PER_VM_LOG2::set(0, cfg.sids_per_vintf_log2);
  p = CMDQV_NUM_VINTF_LOG2::set(p, cfg.vintfs_log2);
  p = CMDQV_NUM_VCMDQ_LOG2::set(p, cfg.vcmdqs_log2);
  p = CMDQV_VER::set(p, cfg.version);
  param_.read_only().reset(uint32_t(p));
  config_.writable(1).on_write([this](uint32_t, uint32_t v) {
    status_.set<CMDQV_ENABLED>(v & 1);
    kick_all();
  });
  status_.read_only();
  vintf_err_map_lo_.read_only();
  vintf_err_map_hi_.read_only();
  for (unsigned m = 0; m < 4; ++m)
    cmdq_err_map_.push_back(std::make_unique<R32>(regs_, "CMDQV_CMDQ_ERR_MAP" + std::to_string(m), CMDQ_ERR_MAP(m)));
  for (auto& r : cmdq_err_map_) r->read_only();
  for (unsigned q = 0; q < vcmdqs(); ++q) {
    cmdq_alloc_.push_back(std::make_unique<R32>(regs_, "CMDQV_CMDQ_ALLOC" + std::to_string(q), CMDQ_ALLOC(q)));
    cmdq_alloc_.back()->writable(uint32_t(CMDQV_CMDQ_ALLOC_VINTF::set(0, ~0ull) | CMDQV_CMDQ_ALLOC_LVCMDQ::set(0, ~0ull) |
                                          CMDQV_CMDQ_ALLOCATED::set(0, 1)))
        .on_write([this](uint32_t, uint32_t) { kick_all(); });
  }
  vintf_.resize(vintfs());
  for (unsigned v = 0; v < vintfs(); ++v) {
    Vintf& vi = vintf_[v];
    const std::string n = "VINTF" + std::to_string(v) + "_";
    vi.config = std::make_unique<R32>(regs_, n + "CONFIG", VINTF(v) + VINTF_CONFIG);
    vi.status = std::make_unique<R32>(regs_, n + "STATUS", VINTF(v) + VINTF_STATUS);
    vi.config->writable(uint32_t(VINTF_HYP_OWN::set(0, 1) | VINTF_VMID::set(0, ~0ull) | VINTF_EN::set(0, 1)))
        .on_write([&vi, this](uint32_t, uint32_t val) {
          vi.status->set<VINTF_ENABLED>(val & 1);
          kick_all();
        });
    vi.status->read_only();
    for (unsigned s = 0; s < sids_per_vintf(); ++s) {
      vi.sid_match.push_back(std::make_unique<R32>(regs_, n + "SID_MATCH" + std::to_string(s), VINTF(v) + VINTF_SID_MATCH(s)));
      vi.sid_replace.push_back(
          std::make_unique<R32>(regs_, n + "SID_REPLACE" + std::to_string(s), VINTF(v) + VINTF_SID_REPLACE(s)));
    }
    for (unsigned m = 0; m < LVCMDQ_ERR_MAP_NUM_64; ++m) {
      vi.lvcmdq_err_map.push_back(
          std::make_unique<R64>(regs_, n + "LVCMDQ_ERR_MAP" + std::to_string(m), VINTF(v) + VINTF_LVCMDQ_ERR_MAP_64(m)));
      vi.lvcmdq_err_map.back()->read_only();
    }
  }
  for (unsigned q = 0; q < vcmdqs(); ++q) vcmdq_.push_back(std::make_unique<Vcmdq>(*this, q));
}

Cmdqv::~Cmdqv() = default;

common::CommandQueue& Cmdqv::queue(unsigned q) { return vcmdq_.at(q)->queue(); }
uint64_t Cmdqv::sids_replaced(unsigned q) const { return vcmdq_.at(q)->sids_replaced(); }

void Cmdqv::kick_all() {
  for (auto& q : vcmdq_) q->kick();
}

int Cmdqv::allocated_queue(unsigned v, unsigned lidx) const {
  for (unsigned q = 0; q < cmdq_alloc_.size(); ++q) {
    const uint32_t a = cmdq_alloc_[q]->get();
    if (CMDQV_CMDQ_ALLOCATED::get(a) && CMDQV_CMDQ_ALLOC_VINTF::get(a) == v && CMDQV_CMDQ_ALLOC_LVCMDQ::get(a) == lidx)
      return int(q);
  }
  return -1;
}

bool Cmdqv::logical_to_global(uint64_t offset, uint64_t* global) const {
  const uint64_t rel = offset - VINTF_PAGE_BASE;
  const unsigned v = unsigned(rel / 0x20000);
  const uint64_t in_vintf = rel % 0x20000;
  const bool page1 = in_vintf >= kPageBytes;
  const uint64_t in_page = in_vintf % kPageBytes;
  const unsigned lidx = unsigned(in_page / 0x80);
  if (v >= vintfs() || lidx >= lvcmdqs_per_vintf()) return false;
  const int q = allocated_queue(v, lidx);
  if (q < 0) return false;
  *global = (page1 ? VCMDQ_PAGE1(unsigned(q)) : VCMDQ_PAGE0(unsigned(q))) + in_page % 0x80;
  return true;
}

// Recomputes the error maps from each queue's GERROR ^ GERRORN (a halt sets a bit, an
// acknowledgement clears it).
void Cmdqv::update_error_maps() {
  for (auto& r : cmdq_err_map_) r->set(0);
  for (Vintf& v : vintf_)
    for (auto& r : v.lvcmdq_err_map) r->set(0);
  uint64_t vintf_map = 0;
  for (unsigned q = 0; q < vcmdq_.size(); ++q) {
    const Vcmdq& vq = *vcmdq_[q];
    if (!vq.error_active()) continue;
    cmdq_err_map_[q / 32]->set(cmdq_err_map_[q / 32]->get() | (1u << (q % 32)));
    const uint32_t alloc = cmdq_alloc_[q]->get();
    if (!CMDQV_CMDQ_ALLOCATED::get(alloc)) continue;
    const unsigned v = unsigned(CMDQV_CMDQ_ALLOC_VINTF::get(alloc)), l = vq.lidx();
    if (v >= vintf_.size()) continue;
    R64& m = *vintf_[v].lvcmdq_err_map[l / 64];
    m.set(m.get() | (1ull << (l % 64)));
    vintf_map |= 1ull << v;
  }
  vintf_err_map_lo_.set(uint32_t(vintf_map));
  vintf_err_map_hi_.set(uint32_t(vintf_map >> 32));
}

uint32_t Cmdqv::read32(uint64_t offset) { return uint32_t(read64_len(offset, 4)); }

uint64_t Cmdqv::read64(uint64_t offset) { return read64_len(offset, 8); }

uint64_t Cmdqv::read64_len(uint64_t offset, unsigned len) {
  uint64_t global = offset, v = 0;
  if (offset >= VINTF_PAGE_BASE && !logical_to_global(offset, &global)) return 0;
  regs_.read(global, len, v);
  return v;
}

void Cmdqv::write32(uint64_t offset, uint32_t value) { write_len(offset, 4, value); }
void Cmdqv::write64(uint64_t offset, uint64_t value) { write_len(offset, 8, value); }

void Cmdqv::write_len(uint64_t offset, unsigned len, uint64_t value) {
  uint64_t global = offset;
  if (offset >= VINTF_PAGE_BASE && !logical_to_global(offset, &global)) return;
  regs_.write(global, len, value);
}

void Cmdqv::register_stats(common::StatRegistry& reg, const std::string& p, const std::vector<unsigned>& queues) const {
  for (unsigned q : queues) {
    const std::string n = p + ".vcmdq" + std::to_string(q);
    const common::CommandQueue::Stats& s = vcmdq_[q]->queue().stats();
    reg.add(n + ".commands", s.executed, "count", "commands executed from this VCMDQ");
    reg.add(n + ".errors", s.errors, "count", "error halts of this VCMDQ (CONS.ERR, GERROR.CMDQ_ERR)");
    reg.add(n + ".syncs", s.barriers, "count", "CMD_SYNCs completed on this VCMDQ");
    reg.add(n + ".sids_replaced", vcmdq_[q]->sids_replaced_counter(), "count",
            "ATC_INV StreamIDs replaced through SID_MATCH / SID_REPLACE");
    vcmdq_[q]->queue().register_stats(reg, n, command_type_names());
  }
}

}  // namespace iommusim::smmuv3

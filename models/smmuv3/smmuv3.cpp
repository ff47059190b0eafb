#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn: a consumer thread per added queue
#include "models/smmuv3/smmuv3.h"

#include <algorithm>
#include <cstring>

#include "models/common/bits.h"
#include "models/pagetable/walker.h"
#include "models/smmuv3/registers.h"

namespace iommusim::smmuv3 {

using common::to_ps;
using pagetable::Fault;
using sc_core::sc_time_stamp;

std::string validate(const Smmuv3Config& c) {
  if (c.clock_mhz <= 0) return "clock_mhz must be positive";
  if (c.sid_bits < 1 || c.sid_bits > 32) return "sid_bits must be 1..32";
  if (c.ssid_bits > 20) return "ssid_bits must be 0..20";
  if (c.cmd_batch == 0) return "cmd_batch must be at least 1";
  if (c.cmdq_log2_max < 1 || c.cmdq_log2_max > 19) return "cmdq_log2_max must be 1..19";
  if (c.evtq_log2_max < 1 || c.evtq_log2_max > 19) return "evtq_log2_max must be 1..19";
  if (!(c.atc_inv_timeout_ns > 0)) return "atc_inv_timeout_ns must be positive";
  // MODEL CHOICE: every ECMDQ in one control page, at least 256 bytes apart (Odyssey has 128).
  if (c.ecmdqs > 256 || (c.ecmdqs & (c.ecmdqs - 1)))
    return "ecmdqs must be 0 (none) or a power of two up to 256 (one control page, IDR6.LOG2NUMQ <= 8)";
  if (auto e = common::validate(c.config_cache); !e.empty()) return "config_cache: " + e;
  return common::validate(c.translation);
}

namespace {
// What the model's ID registers advertise: both stages, MSIs, 2-level stream tables.
Features features(const Smmuv3Config& c) {
  Features f;
  f.sid_bits = c.sid_bits;
  f.ssid_bits = c.ssid_bits;
  f.cmdq_log2_max = c.cmdq_log2_max;
  f.evtq_log2_max = c.evtq_log2_max;
  f.range_invalidation = c.range_invalidation;
  f.ecmdqs = c.ecmdqs;
  return f;
}
}  // namespace

Smmuv3::Smmuv3(sc_core::sc_module_name name, const Smmuv3Config& cfg)
    : IommuBlock(name, common::Clock::from_mhz(cfg.clock_mhz),
                 reg::kMmioBytes + (cfg.ecmdqs ? reg::kControlPageBytes : 0), 32),
      cfg_(cfg),
      pipeline_ps_(clk_.cycles_ps(cfg.translation_cycles)),
      atc_timeout_ps_(common::Ps(cfg.atc_inv_timeout_ns * 1000.0 + 0.5)),
      config_cache_("config_cache", cfg.config_cache, clk_),
      engine_(this->name(), cfg.translation, clk_,
              [this](uint64_t addr, void* dst, unsigned len, common::Ps& t) { return read_memory(addr, dst, len, t); }),
      r_(regs_, features(cfg), [this] { cmdq().kick(); }) {
  order_requests_with(engine_);
  main_cmdq_ = std::make_unique<MainCmdq>(r_);
  ports_.push_back(std::make_unique<QueuePort>(*this, *main_cmdq_, 0));
  SC_THREAD(command_thread);
  if (cfg.ecmdqs) ecmdq_ = std::make_unique<EcmdqInterface>(regs_, r_, cfg.ecmdqs, cfg.cmdq_log2_max, *this);
}

// ---------------------------------------------------------------- command queues

// The main command queue's registers: CMDQ_BASE/PROD/CONS, GERROR.CMDQ_ERR.
class Smmuv3::MainCmdq : public CommandQueueRegisters {
 public:
  explicit MainCmdq(RegisterBlock& r) : r_(r) {}
  common::QueueState queue_state() override { return r_.cmdq_state(); }
  void consumed(uint32_t head) override { r_.cmdq_cons.set(head); }
  void halt(const common::QueueError& e) override { r_.cmdq_halt(e); }

 private:
  RegisterBlock& r_;
};

// One queue on the shared engine: its registers' hooks, this SMMU's decode and execution.
class Smmuv3::QueuePort : public common::CommandQueueVendor {
 public:
  QueuePort(Smmuv3& smmu, CommandQueueRegisters& regs, unsigned index)
      : queue(smmu.clk_, common::CommandQueueConfig{smmu.cfg_.cmd_batch, smmu.cfg_.cmd_decode_cycles,
                                                    smmu.cfg_.cmd_exec_cycles},
              [&smmu](uint64_t addr, void* dst, unsigned len) { return smmu.read_memory(addr, dst, len); },
              [&smmu] { smmu.engine_.drain_older_requests(); }, *this),
        index(index), smmu_(smmu), regs_(regs) {}

  common::QueueState queue_state() override { return regs_.queue_state(); }
  uint8_t trace_opcode(const uint64_t* entry) const override { return uint8_t(entry[0] & 0xFF); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState&) override {
    common::Decoded d = smmu_.decode(entry, pending_);
    if (d.legal && !regs_.admit(pending_)) {   // the queue's own rules refuse it
      d = common::Decoded{};
      d.error_code = reg::CERROR_ILL;
    }
    return d;
  }
  void execute() override { smmu_.execute(pending_, *this); }
  void consumed(const common::QueueState&, uint32_t head) override { regs_.consumed(head); }
  void halt(const common::QueueError& e, const common::QueueState&) override { regs_.halt(e); }

  common::CommandQueue queue;
  const unsigned index;   // its ATC invalidations' tag (IommuBlock::invalidate_device)

 private:
  Smmuv3& smmu_;
  CommandQueueRegisters& regs_;
  Command pending_;   // decoded, not yet executed
};

Smmuv3::~Smmuv3() = default;

common::CommandQueue& Smmuv3::cmdq() { return ports_.front()->queue; }
void Smmuv3::command_thread() { cmdq().run(); }
void Smmuv3::set_command_probe(std::function<void(const CommandTrace&)> probe) { cmdq().set_probe(std::move(probe)); }

common::CommandQueue& Smmuv3::add_command_queue(CommandQueueRegisters& regs) {
  ports_.push_back(std::make_unique<QueuePort>(*this, regs, unsigned(ports_.size())));
  common::CommandQueue& q = ports_.back()->queue;
  sc_core::sc_spawn([&q] { q.run(); }, sc_core::sc_gen_unique_name("command_queue"));
  return q;
}

// ---------------------------------------------------------------- memory helpers

void Smmuv3::record_event(const EventRecord& e, common::Ps& t) {
  events_.inc();
  // Disabled or full (OVFLG toggled): the record is lost.
  const auto slot = r_.evtq_next_slot();
  if (!slot) { events_lost_.inc(); return; }
  const EventWords words = encode_event(e);
  if (!write_memory(slot->address, words.data(), 32, t)) { events_lost_.inc(); return; }
  if (event_written_ps_.size() <= slot->index) event_written_ps_.resize(slot->index + 1);   // the first pass only
  event_written_ps_[slot->index] = t;
  last_event_written_ps_ = std::max(last_event_written_ps_, t);
  r_.evtq_produce();
}

// ---------------------------------------------------------------- translation

common::DmaOutcome Smmuv3::handle_dma(const common::DmaRequest& d, common::Ps& t) {
  const Request rq{d.requester_id, d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  if (!r_.cr0.get<reg::CR0_SMMUEN>()) {
    // SMMU disabled: GBPA decides between global bypass and abort.
    Outcome o;
    o.ok = !r_.gbpa.get<reg::GBPA_ABORT>();
    o.output = rq.input;
    if (o.ok) bypassed_.inc(); else aborted_.inc();
    return o;
  }
  return translate(rq, t);
}

bool Smmuv3::ats_permitted(const common::DmaRequest& d, common::AtsType type, common::Ps& t) {
  // SMMUEN = 0: no STE, no ATS; Translated traffic follows GBPA like any other.
  if (!r_.cr0.get<reg::CR0_SMMUEN>()) return type == common::AtsType::Translated && !r_.gbpa.get<reg::GBPA_ABORT>();
  const Request rq{d.requester_id, d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  t += pipeline_ps_;
  const StreamConfig* cfg = fetch_config(rq, t);
  if (!cfg) { faults_.inc(); return false; }   // its configuration error is recorded
  // IHI 0070 §5.2, STE.Config: 0b000 (abort) denies ATS with no event recorded; 0b100
  // (bypass) denies it as though EATS were 0b00, with the event.
  if (cfg->config == SteConfig::Abort) { faults_.inc(); return false; }
  if (cfg->eats != 0 && cfg->config != SteConfig::Bypass) return true;
  EventRecord e;
  e.sid = rq.sid; e.ssv = rq.ssv; e.ssid = rq.ssid; e.input_addr = rq.input; e.rnw = !rq.access.write;
  e.id = type == common::AtsType::Translated ? EventId::F_TRANSL_FORBIDDEN : EventId::F_BAD_ATS_TREQ;
  faults_.inc();
  record_event(e, t);
  return false;
}

const Smmuv3::StreamConfig* Smmuv3::fetch_config(const Request& rq, common::Ps& t) {
  const ConfigKey key{rq.sid, rq.ssv ? rq.ssid : 0, rq.ssv};
  if (const StreamConfig* hit = config_cache_.find_at(key, t)) return hit;
  // A CFGI (or any invalidation) that overtakes this fetch forbids its fill.
  const uint64_t epoch = engine_.epoch();

  auto bad = [&](EventId id, uint64_t fetch = 0) {
    EventRecord e;
    e.id = id; e.sid = rq.sid; e.ssv = rq.ssv; e.ssid = rq.ssid; e.input_addr = rq.input;
    e.rnw = !rq.access.write; e.ipa_or_fetch_addr = fetch;
    record_event(e, t);
    return static_cast<const StreamConfig*>(nullptr);
  };

  // Locate the STE: linear, or through a level-1 descriptor.
  const uint64_t base = r_.strtab_base.get<reg::STRTAB_BASE_ADDR>() << 6;
  const uint64_t scfg = r_.strtab_base_cfg.get();
  const unsigned log2size = unsigned(reg::STRTAB_CFG_LOG2SIZE::get(scfg));
  if (log2size > cfg_.sid_bits || (log2size < 32 && (uint64_t(rq.sid) >> log2size) != 0))
    return bad(EventId::C_BAD_STREAMID);
  uint64_t ste_addr = base + uint64_t(rq.sid) * 64;
  if (reg::STRTAB_CFG_FMT::get(scfg) == 1) {
    const unsigned split = unsigned(reg::STRTAB_CFG_SPLIT::get(scfg));
    const uint64_t l1_addr = base + (uint64_t(rq.sid) >> split) * 8;
    uint64_t raw = 0;
    config_reads_.inc();
    if (!read_memory(l1_addr, &raw, 8, t)) return bad(EventId::F_STE_FETCH, l1_addr);
    const StreamTableL1Desc l1 = decode_st_l1(raw);
    const uint64_t index = rq.sid & ((1ull << split) - 1);
    // SPAN 0 means the L2 table is invalid; the table holds 2^(SPAN-1) STEs.
    if (l1.span == 0 || l1.span > split + 1 || index >= (1ull << (l1.span - 1))) return bad(EventId::C_BAD_STREAMID);
    ste_addr = l1.l2_ptr + index * 64;
  } else if (reg::STRTAB_CFG_FMT::get(scfg) != 0) {
    return bad(EventId::C_BAD_STREAMID);
  }
  SteWords ste_words{};
  config_reads_.inc();
  if (!read_memory(ste_addr, ste_words.data(), 64, t)) return bad(EventId::F_STE_FETCH, ste_addr);
  std::string why;
  auto ste = decode_ste(ste_words, &why);
  if (!ste || !ste->valid) return bad(EventId::C_BAD_STE);

  StreamConfig c;
  c.config = ste->config;
  c.vmid = ste->s2_vmid;   // also the VMID tag of S1-only streams
  c.eats = ste->eats;
  const bool s1 = ste->s1_enabled(), s2 = ste->s2_enabled();
  if (s2) {
    // Reserved encodings are C_BAD_STE here too, not only in decode_ste.
    const auto g = pagetable::vmsa_granule_bits_from_tg0(ste->s2_tg);
    const auto start = g ? pagetable::vmsa_stage2_start_level(*g, ste->s2_sl0) : std::nullopt;
    const auto ps = pagetable::vmsa_address_bits(ste->s2_ps);
    if (!g || !start || !ps || ste->s2_t0sz > 63) return bad(EventId::C_BAD_STE);
    c.s2 = pagetable::VmsaConfig{2, *g, 64u - ste->s2_t0sz, *start, std::min(*ps, 48u), false};
    if (!pagetable::validate(c.s2).empty()) return bad(EventId::C_BAD_STE);
    c.s2_ttb = ste->s2_ttb;
  }
  if (s1) {
    // Non-substream traffic uses CD 0 (S1DSS=2 or S1CDMax=0); S1DSS=0 terminates it.
    uint32_t ssid = rq.ssv ? rq.ssid : 0;
    if (rq.ssv && (ste->s1_cd_max == 0 || ssid >= (1u << ste->s1_cd_max))) return bad(EventId::C_BAD_SUBSTREAMID);
    if (!rq.ssv && ste->s1_cd_max != 0) {
      if (ste->s1_dss == 0) return bad(EventId::C_BAD_SUBSTREAMID);
      if (ste->s1_dss == 1) { c.config = s2 ? SteConfig::S2Trans : SteConfig::Bypass; }
    }
    if (c.config == SteConfig::S1Trans || c.config == SteConfig::Nested) {
      uint64_t cd_addr = ste->s1_context_ptr + uint64_t(ssid) * 64;
      if (s2) {   // nested: the CD pointer is an IPA
        const pagetable::VmsaFormat s2f(c.s2);
        common::Regime r;
        r.stages = common::Stages::Nested; r.domain = c.vmid; r.s2 = &s2f; r.s2_root = c.s2_ttb;
        const common::Translation tr = engine_.translate_config_address(r, cd_addr, t);
        // A stage-2 fault on the CD fetch reports CLASS=CD (QEMU smmu_get_cd).
        if (!tr.ok) { record_walk_fault(rq, tr.fault, t, EventClass::Cd); return nullptr; }
        cd_addr = tr.output;
      }
      CdWords cd_words{};
      config_reads_.inc();
      if (!read_memory(cd_addr, cd_words.data(), 64, t)) return bad(EventId::F_CD_FETCH, cd_addr);
      auto cd = decode_cd(cd_words, &why);
      if (!cd || !cd->valid) return bad(EventId::C_BAD_CD);
      const auto g = pagetable::vmsa_granule_bits_from_tg0(cd->tg0);
      const auto ips = pagetable::vmsa_address_bits(cd->ips);
      if (!g || !ips || cd->t0sz > 63 || 64u - cd->t0sz <= *g) return bad(EventId::C_BAD_CD);
      const unsigned ia = 64u - cd->t0sz;
      c.s1 = pagetable::VmsaConfig{1, *g, ia, pagetable::vmsa_stage1_start_level(*g, ia), std::min(*ips, 48u), cd->ha};
      if (!pagetable::validate(c.s1).empty()) return bad(EventId::C_BAD_CD);
      c.s1_ttb = cd->ttb0;
      c.s1_epd0 = cd->epd0;
      c.asid = cd->asid;
    }
  }
  if (engine_.epoch() == epoch) config_cache_.insert(key, c, t);
  else stale_config_fills_.inc();
  fetched_config_ = c;
  return &fetched_config_;
}

void Smmuv3::record_walk_fault(const Request& rq, const common::TranslationFault& f, common::Ps& t,
                               std::optional<EventClass> cls) {
  faults_.inc();
  EventRecord e;
  switch (f.fault) {
    case Fault::Translation: case Fault::Reserved: e.id = EventId::F_TRANSLATION; break;
    case Fault::AccessFlag: e.id = EventId::F_ACCESS; break;
    case Fault::Permission: e.id = EventId::F_PERMISSION; break;
    case Fault::AddressSize: e.id = EventId::F_ADDR_SIZE; break;
    case Fault::FetchAbort: case Fault::None: e.id = EventId::F_WALK_EABT; break;
  }
  e.sid = rq.sid; e.ssv = rq.ssv; e.ssid = rq.ssid; e.input_addr = rq.input;
  e.rnw = !rq.access.write; e.pnu = rq.access.privileged; e.ind = rq.access.exec;
  e.s2 = f.stage == 2;
  // CLASS: CD fetch, translation-table fetch or input address (IHI 0070, 7.3 event records).
  e.cls = uint8_t(cls ? *cls : f.table_fetch ? EventClass::TranslationTable : EventClass::Input);
  e.ttrnw = f.table_fetch;
  e.ipa_or_fetch_addr = e.id == EventId::F_WALK_EABT ? f.descriptor_address : f.ipa;
  record_event(e, t);
}

Smmuv3::Outcome Smmuv3::translate(const Request& rq, common::Ps& t) {
  translations_.inc();
  t += pipeline_ps_;
  Outcome o;
  const StreamConfig* cfg = fetch_config(rq, t);
  if (!cfg) { faults_.inc(); return o; }
  const StreamConfig& c = *cfg;
  switch (c.config) {
    case SteConfig::Abort: aborted_.inc(); o.abort_silently = true; return o;   // no event: architected
    case SteConfig::Bypass: bypassed_.inc(); o.ok = true; o.output = rq.input; return o;
    default: break;
  }
  // The SMMU's tags: VMID for every entry (S1-only streams use the STE's VMID), ASID for S1.
  const pagetable::VmsaFormat s1f(c.s1), s2f(c.s2);
  common::Regime r;
  r.domain = c.vmid;
  switch (c.config) {
    case SteConfig::S1Trans: r.stages = common::Stages::Stage1; break;
    case SteConfig::S2Trans: r.stages = common::Stages::Stage2; break;
    default: r.stages = common::Stages::Nested; break;
  }
  if (r.stages != common::Stages::Stage2) { r.space = c.asid; r.s1 = &s1f; r.s1_root = c.s1_ttb; }
  if (r.stages != common::Stages::Stage1) { r.s2 = &s2f; r.s2_root = c.s2_ttb; }
  if (r.stages != common::Stages::Stage2 && c.s1_epd0) {   // TTB0 walks disabled
    record_walk_fault(rq, common::TranslationFault{Fault::Translation, 1, false, 0, 0, 0}, t);
    return o;
  }
  const common::Translation tr = engine_.translate(r, rq.input, rq.access, rq.epoch, t);
  if (!tr.ok) { record_walk_fault(rq, tr.fault, t); return o; }
  o.ok = true;
  o.output = tr.output;
  return o;
}

// ---------------------------------------------------------------- command queue

common::Decoded Smmuv3::decode(const uint64_t* entry, Command& out) const {
  common::Decoded d;
  const DecodeCaps caps{cfg_.range_invalidation, cfg_.sid_bits, cfg_.ssid_bits};
  const auto cmd = decode_command(CmdWords{entry[0], entry[1]}, caps, nullptr);
  if (!cmd) { d.error_code = reg::CERROR_ILL; return d; }
  out = *cmd;
  d.legal = true;
  d.type = uint8_t(cmd->op);
  d.barrier = cmd->op == Opcode::Sync;
  return d;
}

void Smmuv3::execute(const Command& c, QueuePort& port) {
  common::CommandQueue& q = port.queue;
  auto scan_config = [&](auto pred) { config_cache_.charge(config_cache_.invalidate_all_sets(pred)); };
  // A config invalidation starts an epoch: fetches that began before it may not fill.
  switch (c.op) {
    case Opcode::CfgiSte: case Opcode::CfgiAll: case Opcode::CfgiCd: case Opcode::CfgiCdAll:
      engine_.begin_epoch();
      break;
    default: break;
  }
  using common::InvalidationScope;
  const uint8_t s1_kinds = common::kStage1Entries | common::kNestedEntries;
  switch (c.op) {
    case Opcode::CfgiSte:
      scan_config([&](const ConfigKey& k, const StreamConfig&) { return k.sid == c.sid; });
      break;
    case Opcode::CfgiAll: {   // CFGI_STE_RANGE; Range=31 is CFGI_ALL
      const uint64_t span = c.range >= 31 ? (1ull << 32) : (2ull << c.range);
      const uint64_t lo = c.range >= 31 ? 0 : (uint64_t(c.sid) & ~(span - 1));
      scan_config([&](const ConfigKey& k, const StreamConfig&) { return k.sid >= lo && k.sid < lo + span; });
      break;
    }
    case Opcode::CfgiCd:
      config_cache_.charge(config_cache_.invalidate_in_set(ConfigKey{c.sid, c.ssid, true}.set_hash(),
          [&](const ConfigKey& k, const StreamConfig&) { return k.sid == c.sid && (k.ssid == c.ssid || !k.ssv); }));
      if (c.ssid == 0)   // SSID 0 also backs non-substream traffic
        config_cache_.charge(config_cache_.invalidate_in_set(ConfigKey{c.sid, 0, false}.set_hash(),
            [&](const ConfigKey& k, const StreamConfig&) { return k.sid == c.sid && !k.ssv; }));
      break;
    case Opcode::CfgiCdAll:
      scan_config([&](const ConfigKey& k, const StreamConfig&) { return k.sid == c.sid; });
      break;
    case Opcode::TlbiNhAll:
      engine_.invalidate_by_input(InvalidationScope{c.vmid, std::nullopt, 0, 0, false}, s1_kinds);
      break;
    case Opcode::TlbiNhAsid: {
      // Global entries (nG = 0) are not tagged by ASID: TLBI_NH_ASID keeps them.
      InvalidationScope s{c.vmid, c.asid, 0, 0, false};
      s.keep_global = true;
      engine_.invalidate_by_input(s, s1_kinds);
      break;
    }
    case Opcode::TlbiNhVa:
    case Opcode::TlbiNhVaa: {
      // By VA: S1/nested entries of this VMID (and, for NH_VA, ASID). Leaf=1 keeps walk caches.
      InvalidationScope s{c.vmid, std::nullopt, c.addr, tlbi_range_bytes(c), c.leaf};
      if (c.op == Opcode::TlbiNhVa) s.space = c.asid;
      s.global_matches_any_space = true;   // a global entry (nG = 0) matches any ASID
      engine_.invalidate_by_input(s, s1_kinds);
      break;
    }
    case Opcode::TlbiS2Ipa:
      // S2-only entries, the IPA cache and S2 walk caches; combined S1+S2 entries need
      // TLBI_NH_* or S12_VMALL, as the architecture says.
      engine_.invalidate_by_ipa(InvalidationScope{c.vmid, std::nullopt, c.addr, tlbi_range_bytes(c), c.leaf});
      break;
    case Opcode::TlbiS12Vmall:
      engine_.invalidate_by_ipa(InvalidationScope{c.vmid, std::nullopt, 0, 0, false}, false);
      engine_.invalidate_by_input(InvalidationScope{c.vmid, std::nullopt, 0, 0, false}, common::kAllEntries);
      break;
    case Opcode::TlbiNsnhAll:
    case Opcode::TlbiEl2All:
    case Opcode::TlbiEl2Asid:
    case Opcode::TlbiEl2Va:
      engine_.invalidate_by_ipa(InvalidationScope{}, false);
      engine_.invalidate_by_input(InvalidationScope{}, common::kAllEntries);
      break;
    case Opcode::Sync: {
      // Complete only once every walk that began before the last invalidation is done,
      // and every earlier CMD_ATC_INV's completion has arrived (IHI 0070 §4.7.3).
      q.barrier(cfg_.sync_cycles);
      common::Ps waited = 0;
      const bool answered = wait_for_device_invalidations(atc_timeout_ps_, &waited, nullptr, port.index);
      q.note_device_wait(waited);
      if (!answered) {   // no MSI: the CMD_SYNC did not complete
        q.fail_execution(reg::CERROR_ATC_INV_SYNC);
        break;
      }
      if (c.cs == SyncCs::Irq && c.msi_addr != 0) write_memory(c.msi_addr, &c.msi_data, 4);
      break;
    }
    case Opcode::PrefetchConfig: {
      Request rq;
      rq.sid = c.sid; rq.ssv = c.ssv; rq.ssid = c.ssid;
      if (r_.cr0.get<reg::CR0_SMMUEN>()) {
        common::Ps t = common::now_ps();
        fetch_config(rq, t);
        common::wait_until(t);
      }
      break;
    }
    case Opcode::PrefetchAddr:
      break;   // a hint; this model does not prefetch translations
    case Opcode::AtcInv: {
      // Size: the span is 2^Size 4 KB pages, Address aligned to it; 52 covers everything
      // (Linux ATC_INV_SIZE_ALL).
      clk_.wait_cycles(cfg_.atc_inv_cycles);
      common::AtcInvalidation inv;
      inv.pasid_valid = c.ssv; inv.pasid = c.ssid; inv.global = c.global;
      if (c.size < 52) {
        inv.bytes = 4096ull << c.size;
        inv.addr = c.addr & ~(inv.bytes - 1);
      }
      invalidate_device(c.sid, inv, common::now_ps(), port.index);
      break;
    }
    case Opcode::PriResp:
    case Opcode::Resume:
      clk_.wait_cycles(cfg_.atc_inv_cycles);   // a message to the device (PRI is not modelled)
      break;
  }
}

// ---------------------------------------------------------------- stats

void Smmuv3::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".translations", translations_, "count", "DMA requests translated with SMMUEN=1");
  reg.add(p + ".bypassed", bypassed_, "count", "requests passed untranslated (STE bypass or GBPA)");
  reg.add(p + ".aborted", aborted_, "count", "requests aborted without an event (STE abort or GBPA.ABORT)");
  reg.add(p + ".faults", faults_, "count", "requests terminated with a fault or configuration error");
  reg.add(p + ".config_reads", config_reads_, "count", "STE, L1 stream-table and CD reads");
  reg.add(p + ".stale_config_fills_dropped", stale_config_fills_, "count",
          "configuration fetches not cached because an invalidation overtook them");
  reg.add(p + ".events", events_, "count", "event records raised");
  reg.add(p + ".events_lost", events_lost_, "count", "event records dropped (EVTQ disabled, full or unwritable)");
  const common::CommandQueue::Stats& q = ports_.front()->queue.stats();
  reg.add(p + ".commands", q.executed, "count", "commands executed from the CMDQ (ECMDQs: ecmdq<n>.commands)");
  reg.add(p + ".illegal_commands", q.illegal, "count", "commands that raised CERROR_ILL");
  reg.add(p + ".syncs", q.barriers, "count", "CMD_SYNCs completed on the CMDQ (ECMDQs: ecmdq<n>.syncs)");
  register_front_end_stats(reg, p);
  reg.add(p + ".command_exec", q.exec_ps, "ns", "execution time per command from the CMDQ, after decode (ECMDQs: ecmdq<n>.command_exec)", 1e-3);
  reg.add(p + ".sync_exec", q.barrier_ps, "ns", "CMD_SYNC execution on the CMDQ incl. draining older walks (ECMDQs: ecmdq<n>.sync_exec)", 1e-3);
  ports_.front()->queue.register_stats(reg, p + ".cmdq", command_type_names());
  if (ecmdq_) ecmdq_->register_stats(reg, p);
  config_cache_.stats().register_stats(reg, p + ".config_cache", "STE+CD config cache");
  engine_.register_stats(reg, p);
}

}  // namespace iommusim::smmuv3

#include "models/vtd/vtd.h"

#include <algorithm>
#include <cstring>

#include "models/common/bits.h"
#include "models/common/dma_attributes.h"
#include "models/pagetable/walker.h"

namespace iommusim::vtd {

using common::to_ps;
using pagetable::Fault;
using sc_core::sc_time_stamp;

namespace {

common::TranslationCacheNames vtd_cache_names() {
  common::TranslationCacheNames n;
  n.iotlb = "iotlb"; n.s1_walk_cache = "fs_psc"; n.s2_walk_cache = "ss_psc"; n.ipa_cache = "gpa_cache";
  n.iotlb_what = "IOTLB (DID+PASID tagged)"; n.s1_walk_what = "first-stage paging-structure cache";
  n.s2_walk_what = "second-stage paging-structure cache"; n.ipa_what = "GPA->HPA cache (nested)";
  return n;
}
}  // namespace

std::string validate(const VtdConfig& c) {
  if (c.clock_mhz <= 0) return "clock_mhz must be positive";
  if (c.haw < 39 || c.haw > 52) return "haw must be 39..52";
  if (c.pasid_bits < 1 || c.pasid_bits > 20) return "pasid_bits must be 1..20";
  if (!(c.devtlb_inv_timeout_ns > 0)) return "devtlb_inv_timeout_ns must be positive";
  if (c.fault_records < 1 || c.fault_records > reg::kMaxFaultRecords)
    return "fault_records must be 1.." + std::to_string(reg::kMaxFaultRecords);
  if (c.mamv > kMaxAddressMask) return "mamv must be 0.." + std::to_string(kMaxAddressMask);
  if (c.iq_max_qs > 7) return "iq_max_qs must be 0..7";
  if (c.desc_batch == 0 || c.desc_batch > 64) return "desc_batch must be 1..64";
  if (auto e = common::validate(c.context_cache); !e.empty()) return "context_cache: " + e;
  if (auto e = common::validate(c.pasid_cache); !e.empty()) return "pasid_cache: " + e;
  return common::validate(c.translation);
}

Vtd::Vtd(sc_core::sc_module_name name, const VtdConfig& cfg)
    : IommuBlock(name, common::Clock::from_mhz(cfg.clock_mhz), reg::kMmioBytes, 16), cfg_(cfg),
      pipeline_ps_(clk_.cycles_ps(cfg.translation_cycles)),
      devtlb_timeout_ps_(common::Ps(cfg.devtlb_inv_timeout_ns * 1000.0 + 0.5)),
      context_cache_("context_cache", cfg.context_cache, clk_), pasid_cache_("pasid_cache", cfg.pasid_cache, clk_),
      engine_(this->name(), cfg.translation, clk_,
              [this](uint64_t addr, void* dst, unsigned len, common::Ps& t) { return read_memory(addr, dst, len, t); },
              vtd_cache_names()),
      iq_(clk_, common::CommandQueueConfig{cfg.desc_batch, cfg.desc_decode_cycles, cfg.desc_exec_cycles},
          [this](uint64_t addr, void* dst, unsigned len) { return read_memory(addr, dst, len); },
            [this] { engine_.drain_older_requests(); }, *this),
      fs4_(pagetable::X86PagingConfig{4, cfg.fs_1g, cfg.haw}), fs5_(pagetable::X86PagingConfig{5, cfg.fs_1g, cfg.haw}),
      ss3_(pagetable::VtdSecondStageConfig{3, cfg.ss_2m, cfg.ss_1g, cfg.haw}),
      ss4_(pagetable::VtdSecondStageConfig{4, cfg.ss_2m, cfg.ss_1g, cfg.haw}),
      ss5_(pagetable::VtdSecondStageConfig{5, cfg.ss_2m, cfg.ss_1g, cfg.haw}),
      r_(regs_, features(cfg),
         RegisterBlock::Hooks{
             [this] { iq_.kick(); },
             [this] {
               engine_.begin_epoch();
               context_cache_.invalidate_all_sets([](const ContextKey&, const SmContextEntry&) { return true; });
               pasid_cache_.invalidate_all_sets([](const PasidKey&, const Resolved&) { return true; });
             },
             [this](uint8_t g, uint16_t sid, uint8_t fm) { invalidate_context(g, sid, fm); },
             [this](uint8_t g, uint16_t did, uint64_t addr, uint8_t am, bool ih, bool drain) {
               invalidate_iotlb(g, did, addr, am, ih);
               // DR/DW: IVT clears only once DMAs in flight on the old entries have drained.
               if (drain) iq_.barrier(0);
             }}) {
  order_requests_with(engine_);
  SC_THREAD(iq_thread);
}

// ---------------------------------------------------------------- registers

Features Vtd::features(const VtdConfig& c) {
  using namespace reg;
  Capability cap;
  cap.nd = 6;                 // 16-bit DIDs
  cap.sagaw = 0x2 | 0x4 | 0x8; // 3, 4 and 5-level second stage
  cap.mgaw_bits = c.haw;
  cap.sllps = uint8_t((c.ss_2m ? 1 : 0) | (c.ss_1g ? 2 : 0));
  cap.psi = true;
  cap.num_fault_records = c.fault_records;
  cap.mamv = uint8_t(c.mamv);
  cap.fl1gp = c.fs_1g;
  cap.fl5lp = c.fs_5level;
  cap.drd = cap.dwd = true;   // IOTLB invalidations with DR/DW wait for the DMAs in flight
  ExtCapability ecap;
  ecap.qi = true; ecap.dt = true; ecap.pt = true; ecap.nest = true; ecap.pasid = true; ecap.smts = true;
  ecap.ssts = true; ecap.fsts = true; ecap.pss = uint8_t(c.pasid_bits - 1); ecap.c = true;
  ecap.srs = true;      // supervisor requests: the model checks the PASID entry's SRE (0x5D)
  ecap.smpwcs = true;   // scalable-mode page walks snoop: the model reads memory coherently
  return Features{cap, ecap, c.iq_max_qs};
}

// ---------------------------------------------------------------- memory and faults

void Vtd::record_fault(const Request& rq, FaultReason reason, bool fpd, common::Ps t) {
  faults_.inc();
  if (fpd) { faults_suppressed_.inc(); return; }
  FaultRecord r;
  r.fault_info = rq.input;
  r.sid = rq.rid;
  r.pasid_present = rq.pasid_valid;
  r.pasid = rq.pasid_valid ? rq.pasid : 0;
  r.priv = rq.pasid_valid && rq.access.privileged;
  r.exe = rq.pasid_valid && rq.access.exec;
  r.reason = static_cast<uint8_t>(reason);
  r.type = rq.access.write ? FaultType::Write : FaultType::Read;
  r.fault = true;
  const std::optional<unsigned> index = r_.record_fault(r);
  if (!index) { faults_lost_.inc(); return; }   // the next record is still pending
  if (fault_written_ps_.size() <= *index) fault_written_ps_.resize(*index + 1);
  fault_written_ps_[*index] = t;
  last_fault_written_ps_ = std::max(last_fault_written_ps_, t);
  faults_recorded_.inc();
}

FaultReason Vtd::walk_reason(const Request& rq, const common::TranslationFault& f) const {
  const bool w = rq.access.write;
  if (f.stage == 1) {
    switch (f.fault) {
      case Fault::Translation: case Fault::AccessFlag: return FaultReason::SM_FS_ENTRY_NOT_PRESENT;
      case Fault::Reserved: return FaultReason::SM_FS_ENTRY_RESERVED;   // 0x72
      case Fault::AddressSize: return f.level == 0 && f.descriptor_address == 0 ? FaultReason::SM_FS_NON_CANONICAL
                                                                                 : FaultReason::SM_FS_ENTRY_RESERVED;
      case Fault::Permission:
        if (w) return FaultReason::SM_WRITE_DENIED;
        if (rq.access.exec) return FaultReason::SM_EXECUTE_DENIED;
        return rq.access.privileged ? FaultReason::SM_READ_DENIED : FaultReason::SM_FS_USER_ACCESS_DENIED;
      default: return FaultReason::SM_FS_ENTRY_ACCESS;
    }
  }
  // Second stage: a table fetch of a nested first stage (or the SS translation of it).
  switch (f.fault) {
    case Fault::Translation: case Fault::AccessFlag:
      // An SS entry with R=W=0 is not present: the access had neither right.
      return f.table_fetch ? FaultReason::SM_FS_ENTRY_READ_DENIED_NESTED : FaultReason::SM_SS_ENTRY_RW_DENIED;
    case Fault::AddressSize: case Fault::Reserved: return FaultReason::SM_SS_ENTRY_RESERVED;   // 0x7A
    case Fault::Permission:
      if (f.table_fetch) return FaultReason::SM_FS_ENTRY_READ_DENIED_NESTED;
      return w ? FaultReason::SM_WRITE_DENIED : FaultReason::SM_READ_DENIED;
    default: return FaultReason::SM_SS_ENTRY_ACCESS;
  }
}

// ---------------------------------------------------------------- translation

common::DmaOutcome Vtd::handle_dma(const common::DmaRequest& d, common::Ps& t) {
  const Request rq{uint16_t(d.requester_id), d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  if (!r_.translation_enabled()) {   // translation disabled: DMA passes untranslated
    passed_through_.inc();
    Outcome o;
    o.ok = true;
    o.output = rq.input;
    return o;
  }
  return translate(rq, t);
}

bool Vtd::ats_permitted(const common::DmaRequest& d, common::AtsType type, common::Ps& t) {
  const Request rq{uint16_t(d.requester_id), d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  // Translation disabled: Translated traffic passes like any other; no ATS service.
  if (!r_.translation_enabled()) return type == common::AtsType::Translated;
  t += pipeline_ps_;
  const Resolved* res = resolve(rq, t);
  if (!res) return false;   // its fault is recorded
  if (res->dte) return true;
  record_fault(rq, FaultReason::SM_CONTEXT_DTE_CLEAR, res->fpd, t);
  return false;
}

const Vtd::Resolved* Vtd::resolve(const Request& rq, common::Ps& t) {
  auto fail = [&](FaultReason r, bool fpd = false) {
    record_fault(rq, r, fpd, t);
    return static_cast<const Resolved*>(nullptr);
  };
  if (r_.ttm() != reg::TTM_SCALABLE) return fail(FaultReason::SM_ROOT_TABLE_ADDR_INVALID);
  std::string why;
  // Context entry, through the context cache.
  const SmContextEntry* ctxp = context_cache_.find_at(ContextKey{rq.rid}, t);
  if (!ctxp) {
    // A context-cache (or any) invalidation that overtakes this fetch forbids its fill.
    const uint64_t epoch = engine_.epoch();
    const uint8_t bus = sid_bus(rq.rid), devfn = sid_devfn(rq.rid);
    RootWords rw{};
    config_reads_.inc();
    if (!read_memory(r_.root_table() + root_entry_offset(bus), rw.data(), 16, t)) return fail(FaultReason::SM_ROOT_ENTRY_ACCESS);
    const auto root = decode_root_entry(rw, &why, cfg_.haw);
    if (!root) return fail(FaultReason::SM_ROOT_ENTRY_RESERVED);
    const bool upper = sm_context_in_upper(devfn);
    if (!(upper ? root->upper_present : root->lower_present)) return fail(FaultReason::SM_ROOT_ENTRY_NOT_PRESENT);
    const uint64_t ctp = upper ? root->upper_ctp : root->lower_ctp;
    SmContextWords cw{};
    config_reads_.inc();
    if (!read_memory(ctp + sm_context_entry_offset(devfn), cw.data(), 32, t))
      return fail(FaultReason::SM_CONTEXT_ENTRY_ACCESS);
    const auto c = decode_sm_context(cw, &why, cfg_.haw);
    if (!c) return fail(FaultReason::SM_CONTEXT_ENTRY_RESERVED);
    if (!c->present) return fail(FaultReason::SM_CONTEXT_ENTRY_NOT_PRESENT);
    fetched_context_ = *c;
    ctxp = &fetched_context_;
    if (engine_.epoch() == epoch) context_cache_.insert(ContextKey{rq.rid}, fetched_context_, t);
    else stale_config_fills_.inc();
  }
  const SmContextEntry& ctx = *ctxp;
  if (rq.pasid_valid && !ctx.paside) return fail(FaultReason::SM_CONTEXT_PASIDE_CLEAR, ctx.fpd);
  const uint32_t pasid = rq.pasid_valid ? rq.pasid : ctx.rid_pasid;
  if ((pasid >> cfg_.pasid_bits) != 0 || !pasid_within_dir(pasid, ctx.pdts))
    return fail(FaultReason::SM_PASID_BEYOND_PDTS, ctx.fpd);

  // PASID entry, through the PASID cache.
  const PasidKey pk{rq.rid, pasid};
  if (const Resolved* hit = pasid_cache_.find_at(pk, t)) return hit;
  const uint64_t epoch = engine_.epoch();   // as for the context entry
  uint64_t dw = 0;
  config_reads_.inc();
  if (!read_memory(ctx.pasid_dir_ptr + pasid_dir_entry_offset(pasid), &dw, 8, t))
    return fail(FaultReason::SM_PASID_DIR_ACCESS, ctx.fpd);
  const auto dir = decode_pasid_dir_entry(dw, &why, cfg_.haw);
  if (!dir) return fail(FaultReason::SM_PASID_DIR_RESERVED, ctx.fpd);
  if (!dir->present) return fail(FaultReason::SM_PASID_DIR_NOT_PRESENT, ctx.fpd);
  const bool fpd = ctx.fpd || dir->fpd;
  PasidEntryWords pw{};
  config_reads_.inc();
  if (!read_memory(dir->pasid_table_ptr + pasid_entry_offset(pasid), pw.data(), 64, t))
    return fail(FaultReason::SM_PASID_ENTRY_ACCESS, fpd);
  const auto pe = decode_pasid_entry(pw, &why, cfg_.haw);
  if (!pe) {
    const bool reserved = why.find("reserved bits") != std::string::npos || why.find("HAW") != std::string::npos;
    return fail(reserved ? FaultReason::SM_PASID_ENTRY_RESERVED : FaultReason::SM_PASID_ENTRY_INVALID, fpd);
  }
  if (!pe->present) return fail(FaultReason::SM_PASID_ENTRY_NOT_PRESENT, fpd);
  const bool efpd = fpd || pe->fpd;
  // What this model cannot walk is an invalid programming of the entry.
  if ((pe->uses_first_stage() && pe->fspm == 1 && !cfg_.fs_5level) ||
      (pe->uses_second_stage() && (pe->aw < 1 || pe->aw > 3)))
    return fail(FaultReason::SM_PASID_ENTRY_INVALID, efpd);
  resolved_ = Resolved{*pe, pasid, efpd, ctx.dte};
  if (engine_.epoch() == epoch) pasid_cache_.insert(pk, resolved_, t);
  else stale_config_fills_.inc();
  return &resolved_;
}

Vtd::Outcome Vtd::translate(const Request& rq, common::Ps& t) {
  translations_.inc();
  t += pipeline_ps_;
  Outcome o;
  const Resolved* res = resolve(rq, t);
  if (!res) return o;
  const PasidEntry& pe = res->pe;
  if (rq.access.privileged && rq.pasid_valid && !pe.sre && pe.pgtt != Pgtt::SecondStage) {
    record_fault(rq, FaultReason::SM_PASID_SRE_CLEAR, res->fpd, t);
    return o;
  }
  if (pe.pgtt == Pgtt::PassThrough) {
    if (cfg_.haw < 64 && (rq.input >> cfg_.haw) != 0) { record_fault(rq, FaultReason::SM_ADDR_BEYOND_MAX, res->fpd, t); return o; }
    passed_through_.inc();
    o.ok = true;
    o.output = rq.input;
    return o;
  }
  common::Regime r;
  r.domain = pe.did;
  r.space = res->pasid;
  const pagetable::Format* ss = pe.aw == 1 ? static_cast<const pagetable::Format*>(&ss3_)
                                : pe.aw == 3 ? static_cast<const pagetable::Format*>(&ss5_) : &ss4_;
  const pagetable::Format* fs = pe.fspm == 1 ? static_cast<const pagetable::Format*>(&fs5_) : &fs4_;
  switch (pe.pgtt) {
    case Pgtt::FirstStage: r.stages = common::Stages::Stage1; fs_dids_[pe.did] = true; break;
    case Pgtt::SecondStage: r.stages = common::Stages::Stage2; break;
    default: r.stages = common::Stages::Nested; fs_dids_[pe.did] = true; break;
  }
  if (r.stages != common::Stages::Stage2) { r.s1 = fs; r.s1_root = pe.fsptptr; }
  if (r.stages != common::Stages::Stage1) { r.s2 = ss; r.s2_root = pe.ssptptr; }
  // Input beyond the stage's width: first stage non-canonical, second stage beyond AW.
  const pagetable::Format& in = r.stages == common::Stages::Stage2 ? *ss : *fs;
  if ((rq.input >> in.input_bits()) != 0) {
    record_fault(rq, r.stages == common::Stages::Stage2 ? FaultReason::SM_SS_ADDR_BEYOND_MAX
                                                        : FaultReason::SM_FS_NON_CANONICAL, res->fpd, t);
    return o;
  }
  const common::Translation tr = engine_.translate(r, rq.input, rq.access, rq.epoch, t);
  if (!tr.ok) { record_fault(rq, walk_reason(rq, tr.fault), res->fpd, t); return o; }
  o.ok = true;
  o.output = tr.output;
  return o;
}

// ---------------------------------------------------------------- invalidation queue

uint8_t Vtd::trace_opcode(const uint64_t* entry) const { return raw_desc_type(entry[0]); }

common::Decoded Vtd::decode(const uint64_t* e, const common::QueueState& q) {
  return r_.decode_queue_entry(e, q, pending_);
}

void Vtd::invalidate_context(uint8_t gran, uint16_t sid, uint8_t fm) {
  engine_.begin_epoch();   // fetches that began before may not fill
  // Scalable-mode context entries carry no DID, so a domain-selective invalidation drops
  // every entry (a superset, as the spec allows).
  if (gran == uint8_t(CcGran::Device)) {
    const uint16_t ignore = uint16_t(((1u << fm) - 1) << (3 - fm));   // FM masks function bits from bit 2 down
    context_cache_.charge(context_cache_.invalidate_all_sets(
        [&](const ContextKey& k, const SmContextEntry&) { return (k.rid & ~ignore) == (sid & ~ignore); }));
  } else {
    context_cache_.charge(
        context_cache_.invalidate_all_sets([](const ContextKey&, const SmContextEntry&) { return true; }));
  }
}

void Vtd::invalidate_iotlb(uint8_t gran, uint16_t did, uint64_t addr, uint8_t am, bool ih) {
  using common::InvalidationScope;
  switch (gran) {
    case uint8_t(IotlbGran::Global):
      fs_dids_.assign(fs_dids_.size(), false);
      engine_.invalidate_by_ipa(InvalidationScope{}, false);
      engine_.invalidate_by_input(InvalidationScope{}, common::kAllEntries);
      break;
    case uint8_t(IotlbGran::Domain):
      // Every PASID under the DID, every entry kind.
      fs_dids_[did] = false;
      engine_.invalidate_by_ipa(InvalidationScope{did, std::nullopt, 0, 0, false}, false);
      engine_.invalidate_by_input(InvalidationScope{did, std::nullopt, 0, 0, false}, common::kAllEntries);
      break;
    case uint8_t(IotlbGran::Page): {
      // Second-stage translations found by GPA. Entries caching first-stage (PGTT=001b) or
      // nested (PGTT=011b) mappings of the DID go too, whatever their address (VT-d 4.x
      // 6.5.2.3; combined nested entries cannot be found by GPA anyway).
      const uint64_t bytes = psi_bytes(am);
      engine_.invalidate_by_ipa(InvalidationScope{did, std::nullopt, addr & ~(bytes - 1), bytes, ih}, true);
      if (fs_dids_[did])
        engine_.invalidate_by_input(InvalidationScope{did, std::nullopt, 0, 0, ih},
                                    common::kStage1Entries | common::kNestedEntries);
      break;
    }
    default: break;
  }
}

void Vtd::execute(const Descriptor& d) {
  using common::InvalidationScope;
  const uint8_t fs_kinds = common::kStage1Entries | common::kNestedEntries;
  switch (d.type) {
    case DescType::ContextCache:
      invalidate_context(d.g, d.sid, d.fm);
      break;
    case DescType::Iotlb:
      invalidate_iotlb(d.g, d.did, d.addr, d.am, d.ih);
      // DR/DW (CAP.DRD/DWD): the descriptor completes only once DMAs in flight on the old
      // entries have drained, like the barrier, so a later inv_wait waits for it too.
      if (d.dr || d.dw) iq_.barrier(0);
      break;
    case DescType::PasidIotlb:
      if (d.g == uint8_t(PiotlbGran::Page)) {
        const uint64_t bytes = psi_bytes(d.am);
        engine_.invalidate_by_input(InvalidationScope{d.did, d.pasid, d.addr & ~(bytes - 1), bytes, d.ih}, fs_kinds);
      } else {
        // PASID-selective: every IOTLB entry of the DID and PASID, second-stage ones
        // included (VT-d 6.5.2.4; QEMU vtd_piotlb_pasid_invalidate), and the FS PSC.
        engine_.invalidate_by_input(InvalidationScope{d.did, d.pasid, 0, 0, false}, common::kAllEntries);
      }
      break;
    case DescType::PasidCache: {
      engine_.begin_epoch();   // fetches that began before may not fill
      auto scan = [&](auto pred) { pasid_cache_.charge(pasid_cache_.invalidate_all_sets(pred)); };
      if (d.g == uint8_t(PcGran::Global)) scan([](const PasidKey&, const Resolved&) { return true; });
      else if (d.g == uint8_t(PcGran::Pasid))
        scan([&](const PasidKey& k, const Resolved& v) { return v.pe.did == d.did && k.pasid == d.pasid; });
      else scan([&](const PasidKey&, const Resolved& v) { return v.pe.did == d.did; });
      break;
    }
    case DescType::DevTlb:
    case DescType::PasidDevTlb: {
      clk_.wait_cycles(cfg_.devtlb_inv_cycles);
      const DevTlbSpan span = decode_devtlb_range(d.addr, d.size);
      common::AtcInvalidation inv;
      inv.pasid_valid = d.type == DescType::PasidDevTlb;
      inv.pasid = d.pasid;
      inv.global = inv.pasid_valid && d.global;
      if (span.log2_bytes < 64) { inv.addr = span.base; inv.bytes = 1ull << span.log2_bytes; }
      invalidate_device(d.sid, inv, common::now_ps());
      break;
    }
    case DescType::InvWait: {
      iq_.barrier(cfg_.wait_cycles);
      common::Ps waited = 0;
      uint32_t late = 0;
      const bool answered = wait_for_device_invalidations(devtlb_timeout_ps_, &waited, &late);
      iq_.note_device_wait(waited);
      if (!answered) {   // ITE: the wait descriptor does not complete
        iq_.fail_execution(late);
        break;
      }
      if (d.sw) write_memory(d.status_addr, &d.status_data, 4);
      if (d.iflag) r_.wait_completed_interrupt();
      break;
    }
    case DescType::Iec:
    case DescType::PageGroupResp:
    case DescType::PageStreamResp:
      break;   // accepted: no interrupt remapping or page requests in this model
  }
}

// ---------------------------------------------------------------- stats

void Vtd::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".translations", translations_, "count", "DMA requests translated with GSTS.TES=1");
  reg.add(p + ".passed_through", passed_through_, "count", "requests passed untranslated (TE off or PGTT=PT)");
  reg.add(p + ".faults", faults_, "count", "requests terminated with a fault");
  reg.add(p + ".faults_recorded", faults_recorded_, "count", "fault records written to FRCD registers");
  reg.add(p + ".faults_suppressed", faults_suppressed_, "count", "faults not recorded because of FPD");
  reg.add(p + ".faults_lost", faults_lost_, "count", "faults dropped on FRCD overflow (FSTS.PFO)");
  reg.add(p + ".config_reads", config_reads_, "count", "root, context, PASID-dir and PASID-entry reads");
  reg.add(p + ".stale_config_fills_dropped", stale_config_fills_, "count",
          "context/PASID fetches not cached because an invalidation overtook them");
  const common::CommandQueue::Stats& q = iq_.stats();
  reg.add(p + ".descriptors", q.executed, "count", "invalidation descriptors executed");
  reg.add(p + ".invalid_descriptors", q.errors, "count", "queue errors (FSTS.IQE)");
  reg.add(p + ".inv_waits", q.barriers, "count", "invalidation-wait descriptors completed");
  register_front_end_stats(reg, p);
  reg.add(p + ".descriptor_exec", q.exec_ps, "ns", "execution time per descriptor (after decode)", 1e-3);
  reg.add(p + ".wait_exec", q.barrier_ps, "ns", "inv_wait execution incl. draining older walks", 1e-3);
  iq_.register_stats(reg, p + ".iq", descriptor_type_names());
  context_cache_.stats().register_stats(reg, p + ".context_cache", "context cache");
  pasid_cache_.stats().register_stats(reg, p + ".pasid_cache", "PASID cache");
  engine_.register_stats(reg, p);
}

}  // namespace iommusim::vtd

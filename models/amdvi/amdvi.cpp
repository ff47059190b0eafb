#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn: one consumer thread per guest command buffer
#include "models/amdvi/amdvi.h"

#include <algorithm>
#include <cstring>

#include "models/common/bits.h"
#include "models/common/queue_ring.h"
#include "models/pagetable/amd_v1.h"
#include "models/pagetable/x86.h"

namespace iommusim::amdvi {

using common::to_ps;
using pagetable::Fault;
using sc_core::sc_time_stamp;

namespace {
common::TranslationCacheNames cache_names() {
  common::TranslationCacheNames n;
  n.iotlb = "iotlb"; n.s1_walk_cache = "guest_pdc"; n.s2_walk_cache = "host_pdc"; n.ipa_cache = "gpa_cache";
  n.iotlb_what = "IOTLB (DomainID+PASID)"; n.s1_walk_what = "guest (v2) page-directory cache";
  n.s2_walk_what = "host (v1) page-directory cache"; n.ipa_what = "GPA->SPA cache";
  return n;
}
constexpr uint64_t kDteBytes = 32;
constexpr unsigned kMaxViommuGuests = 64;   // the model's limit (the RFC's VIOMMU_MAX_GUESTID is 64K)
}  // namespace

std::string validate(const AmdViConfig& c) {
  if (c.clock_mhz <= 0) return "clock_mhz must be positive";
  if (c.cmd_batch == 0 || c.cmd_batch > 64) return "cmd_batch must be 1..64";
  if (c.caps.hats > 2) return "caps: HATS must be 0..2";
  if (c.caps.gats > 1) return "caps: GATS must be 0..1";
  if (c.caps.glx_sup > 2) return "caps: GLXSup must be 0..2";
  if (c.caps.pasmax > 19) return "caps: PASmax must be 0..19";
  if (auto e = common::validate(c.dte_cache); !e.empty()) return "dte_cache: " + e;
  if (auto e = common::validate(c.gcr3_cache); !e.empty()) return "gcr3_cache: " + e;
  if (c.viommu_guests > kMaxViommuGuests) return "viommu_guests must be 0.." + std::to_string(kMaxViommuGuests);
  if (c.viommu_guests && !c.caps.viommu) return "viommu_guests needs caps.viommu (EFR FEATURE_VIOMMU)";
  if (auto e = common::validate(c.map_cache); !e.empty()) return "map_cache: " + e;
  return common::validate(c.translation);
}

AmdVi::AmdVi(sc_core::sc_module_name name, const AmdViConfig& cfg)
    : IommuBlock(name, common::Clock::from_mhz(cfg.clock_mhz),
                 cfg.viommu_guests ? viommu::window_bytes(cfg.viommu_guests) : reg::kMmioBytes, 16),
      cfg_(cfg),
      pipeline_ps_(clk_.cycles_ps(cfg.translation_cycles)),
      dte_cache_("dte_cache", cfg.dte_cache, clk_), gcr3_cache_("gcr3_cache", cfg.gcr3_cache, clk_),
      engine_(this->name(), cfg.translation, clk_,
              [this](uint64_t addr, void* dst, unsigned len, common::Ps& t) { return read_memory(addr, dst, len, t); }, cache_names()),
      cmdbuf_(clk_, common::CommandQueueConfig{cfg.cmd_batch, cfg.cmd_decode_cycles, cfg.cmd_exec_cycles},
              [this](uint64_t addr, void* dst, unsigned len) { return read_memory(addr, dst, len); },
            [this] { engine_.drain_older_requests(); }, *this),
      r_(regs_, cfg.caps,
         RegisterBlock::Hooks{[this] { cmdbuf_.kick(); },
                              [this] { for (auto& g : guests_) g->kick(); }}),   // VCmdEn / vIommuEn
      map_cache_("map_cache", cfg.map_cache, clk_) {
  order_requests_with(engine_);
  SC_THREAD(command_thread);
  // Hardware vIOMMU: a consumer thread per guest buffer; VCmdEn / vIommuEn turning on
  // lets them run.
  const viommu::GuestQueueConfig gq{cfg.cmd_batch, cfg.cmd_decode_cycles, cfg.cmd_exec_cycles};
  for (unsigned gid = 0; gid < cfg.viommu_guests; ++gid) {
    guests_.push_back(std::make_unique<viommu::GuestCommandBuffer>(
        gid, regs_, clk_, gq, [this] { engine_.drain_older_requests(); }, static_cast<viommu::GuestQueueOwner&>(*this)));
    viommu::GuestCommandBuffer* g = guests_.back().get();
    sc_core::sc_spawn([g] { g->run(); }, sc_core::sc_gen_unique_name("guest_cmdbuf"));
  }
}

// ---------------------------------------------------------------- memory and events

void AmdVi::record_event(const EventRecord& e) {
  common::Ps t = common::now_ps();
  record_event(e, t);
  common::wait_until(t);
}

void AmdVi::record_event(const EventRecord& e, common::Ps& t) {
  events_.inc();
  const std::optional<uint64_t> slot = r_.evt_log_slot();
  const EventWords w = encode_event(e);
  if (!slot || !write_memory(*slot, w.data(), 16, t)) { events_lost_.inc(); return; }
  const uint64_t index = (*slot - reg::EVT_LOG_BASE_ADDR::get_address(r_.evt_log_base.get())) / reg::kEntryBytes;
  if (event_written_ps_.size() <= index) event_written_ps_.resize(index + 1);
  event_written_ps_[index] = t;
  last_event_written_ps_ = std::max(last_event_written_ps_, t);
  r_.evt_log_stored();
}

void AmdVi::page_fault(const Request& rq, const DeviceTableEntry& dte, bool guest, uint32_t pasid, bool present,
                       bool perm, bool reserved, common::Ps& t) {
  faults_.inc();
  if (dte.sa) return;   // SA: suppress all I/O page fault events
  EventRecord e;
  e.code = EventCode::IoPageFault;
  e.device_id = rq.device_id;
  e.gn = guest;
  e.domain_or_pasid = guest ? pasid : dte.domain_id;
  e.nx = rq.access.exec;
  e.us = guest && !rq.access.privileged;
  e.pr = present;
  e.rw = rq.access.write;
  e.pe = perm;
  e.rz = reserved;
  e.address = rq.input;
  record_event(e, t);
}

void AmdVi::walk_fault(const Request& rq, const DeviceTableEntry& dte, bool guest, uint32_t pasid,
                       const common::TranslationFault& f, common::Ps& t) {
  if (f.fault == Fault::FetchAbort) {
    // A table read itself failed (at either level; a host fault while fetching a guest
    // table comes back as that fault instead): PAGE_TAB_HW_ERROR at the entry's address.
    faults_.inc();
    EventRecord e;
    e.code = EventCode::PageTabHwError;
    e.device_id = rq.device_id;
    e.gn = guest;
    e.domain_or_pasid = guest ? (pasid & 0xFFFF) : dte.domain_id;
    e.rw = rq.access.write;
    e.type = kHwErrMasterAbort;
    e.address = f.descriptor_address & ~uint64_t{7};
    record_event(e, t);
    return;
  }
  // Not present: PR=0. Present but denied: PR=1 PE=1. A present entry that is malformed
  // (reserved bits, bad NextLevel, nonzero skipped-level bits) or an address beyond the
  // output size: PR=1 RZ=1.
  const bool malformed = f.fault == Fault::AddressSize || f.fault == Fault::Reserved;
  const bool present = f.fault == Fault::Permission || malformed;
  // The host table refused a guest request's GPA (a guest table's or the output's): the
  // host table's fault, as for a request it translated alone (MODEL DECISION: 48882 gives
  // IO_PAGE_FAULT no stage field; this is what lets a host tell the guest's faults apart).
  if (guest && f.stage == 2) {
    Request host_rq = rq;
    host_rq.input = f.ipa;
    page_fault(host_rq, dte, false, 0, present, f.fault == Fault::Permission, malformed, t);
    return;
  }
  page_fault(rq, dte, guest, pasid, present, f.fault == Fault::Permission, malformed, t);
}

// ---------------------------------------------------------------- translation

common::DmaOutcome AmdVi::handle_dma(const common::DmaRequest& d, common::Ps& t) {
  const Request rq{uint16_t(d.requester_id), d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  if (!r_.control.get<reg::CTRL_IOMMU_EN>()) {   // IommuEn=0: requests pass untranslated
    bypassed_.inc();
    Outcome o;
    o.ok = true;
    o.output = rq.input;
    return o;
  }
  return translate(rq, t);
}

// Control.InvTimeOut (48882 §3.4): 0 none, then 1 ms x 10^(n-1) up to 100 s.
common::Ps AmdVi::inv_timeout_ps() const {
  const unsigned n = unsigned(r_.control.get<reg::CTRL_INV_TIMEOUT>());
  if (n == 0 || n > 6) return ~common::Ps{0} / 2;   // none (7 is reserved: none too)
  common::Ps t = 1000000000ull;   // 1 ms
  for (unsigned i = 1; i < n; ++i) t *= 10;
  return t;
}

bool AmdVi::ats_permitted(const common::DmaRequest& d, common::AtsType type, common::Ps& t) {
  const Request rq{uint16_t(d.requester_id), d.pasid_valid, d.pasid, d.input, d.access, d.epoch};
  // IommuEn = 0: Translated traffic passes like any other; no ATS service.
  if (!r_.control.get<reg::CTRL_IOMMU_EN>()) return type == common::AtsType::Translated;
  t += pipeline_ps_;
  const DeviceTableEntry* dte = fetch_dte(rq, t);
  if (!dte) return false;   // its event is logged
  if (dte->valid && dte->iotlb) return true;
  faults_.inc();
  EventRecord e;   // a pretranslated transaction or translation request from a device with I = 0
  e.code = EventCode::InvalidDeviceRequest;
  e.device_id = rq.device_id;
  e.tr = type == common::AtsType::TranslationRequest;
  e.type = 1;
  e.address = rq.input;
  record_event(e, t);
  return false;
}

const DeviceTableEntry* AmdVi::fetch_dte(const Request& rq, common::Ps& t) {
  if (const DeviceTableEntry* hit = dte_cache_.find_at(DteKey{rq.device_id}, t)) return hit;
  // A DTE (or any) invalidation that overtakes this fetch forbids its fill.
  const uint64_t epoch = engine_.epoch();
  auto illegal = [&](bool rz) {
    faults_.inc();
    EventRecord e;
    e.code = EventCode::IllegalDevTableEntry;
    e.device_id = rq.device_id;
    e.rw = rq.access.write;
    e.rz = rz;
    e.address = rq.input;
    record_event(e, t);
    return static_cast<const DeviceTableEntry*>(nullptr);
  };
  const uint64_t dtb = r_.dev_table_base.get();
  const uint64_t bytes = reg::dev_table_bytes(reg::DTB_SIZE::get(dtb));
  // A DeviceID beyond the table has no entry: an IO_PAGE_FAULT (not present, no DomainID),
  // as VirtualBox raises it (kIoPageFaultType_DevId_Invalid); the access is aborted.
  if ((uint64_t(rq.device_id) + 1) * kDteBytes > bytes) {
    page_fault(rq, DeviceTableEntry{}, false, 0, false, false, false, t);
    return nullptr;
  }
  const uint64_t addr = reg::DTB_BASE::get_address(dtb) + uint64_t(rq.device_id) * kDteBytes;
  DteWords w{};
  config_reads_.inc();
  if (!read_memory(addr, w.data(), kDteBytes, t)) {
    faults_.inc();
    EventRecord e;
    e.code = EventCode::DevTabHwError;
    e.device_id = rq.device_id;
    e.rw = rq.access.write;
    e.type = kHwErrMasterAbort;
    e.address = addr;
    record_event(e, t);
    return nullptr;
  }
  std::string why;
  DteFault kind = DteFault::IllegalDte;
  auto dte = decode_dte(w, &why, &kind);
  if (!dte) {
    if (kind == DteFault::IoPageFault) {   // reserved Mode 7: an I/O page fault, RZ
      DeviceTableEntry partial;
      partial.domain_id = uint16_t(w[1] & 0xFFFF);
      page_fault(rq, partial, false, 0, true, false, true, t);
      return nullptr;
    }
    return illegal(true);
  }
  if (dte->valid && !check_dte_caps(*dte, cfg_.caps, &why)) return illegal(true);
  if (engine_.epoch() == epoch) dte_cache_.insert(DteKey{rq.device_id}, *dte, t);
  else stale_config_fills_.inc();
  fetched_dte_ = *dte;
  return &fetched_dte_;
}

std::optional<uint64_t> AmdVi::fetch_gcr3(const Request& rq, const DeviceTableEntry& dte, uint32_t pasid,
                                          const common::Regime& host, common::Ps& t) {
  const Gcr3Key key{rq.device_id, pasid};
  if (auto hit = gcr3_cache_.lookup_at(key, t)) return hit->guest_cr3;
  const uint64_t epoch = engine_.epoch();   // as for the DTE
  if (!gcr3_pasid_fits(pasid, dte.glx) || (pasid >> cfg_.caps.pasid_bits()) != 0) {
    page_fault(rq, dte, true, pasid, false, false, true, t);
    return std::nullopt;
  }
  uint64_t table = dte.gcr3_root;
  // The GCR3 table root pointer (and the table levels below it) are GPAs only with
  // Control.GCR3TRPMode set; otherwise SPAs, even when the guest tables are nested.
  const bool gpa = host.stages == common::Stages::Nested && r_.control.get<reg::CTRL_GCR3TRP_MODE>();
  for (int level = int(dte.glx); level >= 0; --level) {
    uint64_t addr = table + uint64_t(gcr3_index(pasid, unsigned(level))) * 8;
    if (gpa) {   // a GPA: through the host v1 table
      const common::Translation tr = engine_.translate_config_address(host, addr, t);
      if (!tr.ok) { walk_fault(rq, dte, true, pasid, tr.fault, t); return std::nullopt; }
      addr = tr.output;
    }
    uint64_t raw = 0;
    config_reads_.inc();
    if (!read_memory(addr, &raw, 8, t)) {
      walk_fault(rq, dte, true, pasid, common::TranslationFault{Fault::FetchAbort, 1, false, 0, addr, 0}, t);
      return std::nullopt;
    }
    const Gcr3Entry g = decode_gcr3_entry(raw);
    if (!g.valid) { page_fault(rq, dte, true, pasid, false, false, false, t); return std::nullopt; }
    table = g.addr;
  }
  if (engine_.epoch() == epoch) gcr3_cache_.insert(key, Gcr3Value{table, dte.domain_id}, t);
  else stale_config_fills_.inc();
  return table;
}

AmdVi::Outcome AmdVi::translate(const Request& rq, common::Ps& t) {
  translations_.inc();
  t += pipeline_ps_;
  Outcome o;
  const DeviceTableEntry* d = fetch_dte(rq, t);
  if (!d) return o;
  const DeviceTableEntry& dte = *d;
  if (!dte.valid) { bypassed_.inc(); o.ok = true; o.output = rq.input; return o; }   // V=0: untranslated
  if (!dte.tv) { aborted_.inc(); o.abort_silently = true; return o; }   // no page-table information
  const bool guest = dte.gv && (rq.pasid_valid || dte.giov);
  const uint32_t pasid = rq.pasid_valid ? rq.pasid : 0;   // GIOV: non-PASID requests use PASID 0
  // The DTE's IR/IW gate every access (ANDed with the tables' permissions).
  if (rq.access.write ? !dte.iw : !dte.ir) {
    page_fault(rq, dte, guest, pasid, true, true, false, t);
    return o;
  }
  if (dte.mode == kModeNone && !guest) { bypassed_.inc(); o.ok = true; o.output = rq.input; return o; }

  const pagetable::AmdV1Format host_fmt(pagetable::AmdV1Config{dte.mode == kModeNone ? 4u : dte.mode, 52});
  const pagetable::X86Format guest_fmt(
      pagetable::X86PagingConfig{dte.guest_paging_mode == kGuestPaging5Level ? 5u : 4u, true, 52});
  common::Regime r;
  r.domain = dte.domain_id;
  if (dte.mode != kModeNone) { r.s2 = &host_fmt; r.s2_root = dte.host_pt_root; }
  if (guest) {
    r.stages = dte.mode != kModeNone ? common::Stages::Nested : common::Stages::Stage1;
    r.space = pasid;
    const auto cr3 = fetch_gcr3(rq, dte, pasid, r, t);
    if (!cr3) return o;
    r.s1 = &guest_fmt;
    r.s1_root = *cr3;
  } else {
    r.stages = common::Stages::Stage2;   // v1 only: the host table, tagged DomainID
  }
  const common::Translation tr = engine_.translate(r, rq.input, rq.access, rq.epoch, t);
  if (!tr.ok) { walk_fault(rq, dte, guest, pasid, tr.fault, t); return o; }
  o.ok = true;
  o.output = tr.output;
  return o;
}

// ---------------------------------------------------------------- command buffer

common::QueueState AmdVi::queue_state() { return r_.cmd_state(); }

common::Decoded AmdVi::decode(const uint64_t* entry, const common::QueueState&) {
  return r_.decode_queue_entry(entry, pending_);
}

void AmdVi::consumed(const common::QueueState&, uint32_t head) { r_.cmd_consumed(head); }

void AmdVi::halt(const common::QueueError& e, const common::QueueState&) { record_event(r_.cmd_halt(e)); }

// Earlier commands are done (one at a time, in order); older walks must drain too, and
// every earlier INVALIDATE_IOTLB_PAGES of this buffer must have its completion, or time out.
bool AmdVi::completion_barrier(common::CommandQueue& q, unsigned queue, uint32_t* late_device) {
  q.barrier(cfg_.completion_wait_cycles);
  common::Ps waited = 0;
  const bool done = wait_for_device_invalidations(inv_timeout_ps(), &waited, late_device, queue);
  q.note_device_wait(waited);
  return done;
}

void AmdVi::execute(const Command& c, unsigned queue) {
  using common::InvalidationScope;
  switch (c.op) {
    case Opcode::CompletionWait: {
      if (uint32_t late = 0; !completion_barrier(cmdbuf_, 0, &late)) {
        EventRecord e;   // IOTLB_INV_TIMEOUT in the host's log
        e.code = EventCode::IotlbInvTimeout;
        e.device_id = uint16_t(late);
        e.address = late_command_address_;
        record_event(e);
      }
      if (c.store && !write_memory(c.store_addr, &c.store_data, 8)) {
        EventRecord e;   // the store was master-aborted
        e.code = EventCode::CommandHwError;
        e.type = kHwErrMasterAbort;
        e.address = c.store_addr;
        record_event(e);
      }
      if (c.interrupt) r_.completion_wait_interrupt();
      break;
    }
    case Opcode::InvalidateDevtabEntry:
      engine_.begin_epoch();   // DTE/GCR3 fetches that began before may not fill
      dte_cache_.charge(dte_cache_.invalidate_in_set(DteKey{c.device_id}.set_hash(),
          [&](const DteKey& k, const DeviceTableEntry&) { return k.device_id == c.device_id; }));
      gcr3_cache_.charge(gcr3_cache_.invalidate_all_sets(
          [&](const Gcr3Key& k, const Gcr3Value&) { return k.device_id == c.device_id; }));
      break;
    case Opcode::InvalidateIommuPages: {
      const InvRange range = inv_range(c.address, c.s);
      const uint64_t bytes = range.all() ? 0 : range.bytes();
      const uint64_t addr = range.all() ? 0 : range.base;
      if (c.gn) {
        // Guest entries of DomainID+PASID (IOTLB, and with PDE the guest PDC). The
        // all-pages form also drops the PASID's cached GCR3 entry: Linux follows a GCR3
        // entry update with exactly this command, and has no other way to flush it.
        // The GCR3 entry goes before the translations (which take time to scan), so no walk
        // in between resumes from the old table root.
        common::InvalidationScan gcr3;
        if (range.all())
          gcr3 = gcr3_cache_.invalidate_all_sets([&](const Gcr3Key& k, const Gcr3Value& v) {
            return v.domain_id == c.domain_id && k.pasid == c.pasid;
          });
        engine_.invalidate_by_input(InvalidationScope{c.domain_id, c.pasid, addr, bytes, !c.pde},
                                    common::kStage1Entries | common::kNestedEntries);
        gcr3_cache_.charge(gcr3);
      } else {
        // Host (v1) translations of the DomainID by GPA/IOVA, and every nested entry of the
        // DomainID: a combined guest+host entry cannot be found by its GPA.
        engine_.invalidate_by_ipa(InvalidationScope{c.domain_id, std::nullopt, addr, bytes, !c.pde}, true);
        engine_.invalidate_by_input(InvalidationScope{c.domain_id, std::nullopt, 0, 0, !c.pde},
                                    common::kNestedEntries);
      }
      break;
    }
    case Opcode::InvalidateIotlbPages: {
      clk_.wait_cycles(cfg_.iotlb_inv_cycles);
      const InvRange range = inv_range(c.address, c.s);
      common::AtcInvalidation inv;
      inv.pasid_valid = c.gn;
      inv.pasid = c.pasid;
      if (!range.all()) { inv.addr = range.base; inv.bytes = range.bytes(); }
      // Before consumed() moves it, CmdBufHead is this command's offset (a guest's buffer
      // keeps its own, viommu.cpp).
      if (queue == 0)
        late_command_address_ = reg::CMD_BUF_BASE_ADDR::get_address(r_.cmd_buf_base.get()) +
                                reg::RING_PTR::get_address(r_.cmd_buf_head.get());
      invalidate_device(c.device_id, inv, common::now_ps(), queue);
      break;
    }
    case Opcode::InvalidateInterruptTable:
    case Opcode::PrefetchIommuPages:
    case Opcode::CompletePprRequest:
      break;   // accepted: no interrupt remapping, prefetch or PPR modelled
    case Opcode::InvalidateIommuAll: {
      // Everything goes at once (the translations last); the scans are paid after.
      engine_.begin_epoch();
      const auto dtes = dte_cache_.invalidate_all_sets([](const DteKey&, const DeviceTableEntry&) { return true; });
      const auto gcr3s = gcr3_cache_.invalidate_all_sets([](const Gcr3Key&, const Gcr3Value&) { return true; });
      engine_.invalidate_by_ipa(InvalidationScope{}, false);
      engine_.invalidate_by_input(InvalidationScope{}, common::kAllEntries);
      dte_cache_.charge(dtes);
      gcr3_cache_.charge(gcr3s);
      break;
    }
  }
}

// ---------------------------------------------------------------- hardware vIOMMU

void AmdVi::guest_register_access(tlm::tlm_generic_payload& p) {
  clk_.wait_cycles(1);
  regs_.transport(p, viommu::window_bytes(cfg_.viommu_guests));
}

// A DeviceID's view of memory through the v1 table of its DTE: a gid's translation DeviceID
// (guest RAM, the VM's stage 2) or the IOMMU's own (the private address space). The DTE and
// the walk are cached as a DMA's would be (DTE cache; host PDC, GPA cache tagged with the
// DTE's DomainID, so the host's stage-2 invalidations of that DomainID reach them).
bool AmdVi::device_access(uint16_t devid, bool write, uint64_t addr, void* data, unsigned len) {
  common::Ps t = common::now_ps();
  pagetable::Access access;
  access.write = write;
  const Request rq{devid, false, 0, addr, access, common::TranslationEngine::kNow};
  const auto dte = fetch_dte(rq, t);
  bool ok = dte && dte->valid && dte->tv && dte->mode != kModeNone && (write ? dte->iw : dte->ir);
  uint64_t spa = 0;
  if (ok) {
    const pagetable::AmdV1Format fmt(pagetable::AmdV1Config{dte->mode, 52});
    common::Regime r;
    r.stages = common::Stages::Stage2;
    r.domain = dte->domain_id;
    r.s2 = &fmt;
    r.s2_root = dte->host_pt_root;
    const common::Translation tr = engine_.translate_config_address(r, addr, t);
    ok = tr.ok;
    spa = tr.output;
  }
  common::wait_until(t);
  // The data moves when the access completes (a queue thread's rule).
  return ok && (write ? write_memory(spa, data, len) : read_memory(spa, data, len));
}

viommu::MapEntry AmdVi::map_lookup(unsigned gid, viommu::MapTable table, uint16_t guest_id) {
  const MapKey key{uint16_t(gid), table, guest_id};
  common::Ps t = common::now_ps();
  const auto hit = map_cache_.lookup_at(key, t);
  common::wait_until(t);
  if (hit) return *hit;
  const uint64_t epoch = map_epoch_;
  uint64_t raw = 0;
  map_fetches_.inc();
  if (!device_access(cfg_.viommu_devid, false, viommu::map_entry_address(table, gid, guest_id), &raw, 8))
    return viommu::MapEntry{};   // an unreadable entry maps nothing
  const viommu::MapEntry e = viommu::decode_map_entry(raw);
  if (map_epoch_ == epoch) map_cache_.insert(key, e, common::now_ps());
  return e;
}

// A map control write (set_device_mapping / set_domain_mapping, or their clears): the entry
// goes to the table, the cached copy goes. Host ID 0 is the RFC's clear (MODEL CHOICE).
void AmdVi::map_update(unsigned gid, viommu::MapTable table, uint64_t control) {
  const auto guest_id = uint16_t(viommu::MAP_GUEST_ID::get(control));
  const auto host_id = uint16_t(viommu::MAP_HOST_ID::get(control));
  const MapKey key{uint16_t(gid), table, guest_id};
  auto drop_cached = [&] {
    ++map_epoch_;
    map_cache_.invalidate_in_set(key.set_hash(), [&](const MapKey& k, const viommu::MapEntry&) { return k == key; });
  };
  // Before the write and again once it landed: a lookup whose read of the old entry
  // finishes while the write is under way must not leave it cached.
  drop_cached();
  uint64_t entry[2] = {viommu::encode_map_entry(viommu::MapEntry{host_id != 0, host_id}), 0};
  const unsigned bytes = unsigned(table == viommu::MapTable::DeviceId ? viommu::kDevIdEntryBytes : viommu::kDomIdEntryBytes);
  device_access(cfg_.viommu_devid, true, viommu::map_entry_address(table, gid, guest_id), entry, bytes);
  drop_cached();
}

// ---------------------------------------------------------------- stats

void AmdVi::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".translations", translations_, "count", "DMA requests translated with IommuEn=1");
  reg.add(p + ".bypassed", bypassed_, "count", "requests passed untranslated (IommuEn=0, DTE V=0 or Mode 0)");
  reg.add(p + ".aborted", aborted_, "count", "requests aborted without an event (DTE TV=0)");
  reg.add(p + ".faults", faults_, "count", "requests terminated with an I/O page fault or DTE/table error");
  reg.add(p + ".config_reads", config_reads_, "count", "DTE and GCR3 entry reads");
  reg.add(p + ".stale_config_fills_dropped", stale_config_fills_, "count",
          "DTE/GCR3 fetches not cached because an invalidation overtook them");
  reg.add(p + ".events", events_, "count", "event-log records raised");
  reg.add(p + ".events_lost", events_lost_, "count", "event records dropped (log disabled, full or unwritable)");
  const common::CommandQueue::Stats& q = cmdbuf_.stats();
  reg.add(p + ".commands", q.executed, "count", "commands executed from the command buffer");
  reg.add(p + ".illegal_commands", q.illegal, "count", "commands that raised ILLEGAL_COMMAND_ERROR");
  reg.add(p + ".completion_waits", q.barriers, "count", "COMPLETION_WAITs completed");
  register_front_end_stats(reg, p);
  reg.add(p + ".command_exec", q.exec_ps, "ns", "execution time per command (after decode)", 1e-3);
  reg.add(p + ".completion_wait_exec", q.barrier_ps, "ns", "COMPLETION_WAIT execution incl. draining older walks",
          1e-3);
  cmdbuf_.register_stats(reg, p + ".cmdbuf", command_type_names());
  dte_cache_.stats().register_stats(reg, p + ".dte_cache", "DTE cache (DeviceID)");
  gcr3_cache_.stats().register_stats(reg, p + ".gcr3_cache", "GCR3 cache (DeviceID+PASID)");
  engine_.register_stats(reg, p);
  if (guests_.empty()) return;
  map_cache_.stats().register_stats(reg, p + ".viommu.map_cache", "DomainID / DeviceID map cache (HW vIOMMU)");
  reg.add(p + ".viommu.map_fetches", map_fetches_, "count", "map-table entries read from memory (map cache misses)");
  for (const auto& g : guests_) g->register_stats(reg, p + ".viommu.guest" + std::to_string(g->gid()));
}

}  // namespace iommusim::amdvi

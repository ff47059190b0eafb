#include "platforms/driver/smmuv3_driver.h"

#include <algorithm>
#include <cstdio>

#include "models/common/bits.h"
#include "models/common/clock.h"
#include "models/common/payload_pool.h"
#include "models/common/queue_ring.h"
#include "models/pagetable/walker.h"
#include "models/smmuv3/registers.h"
#include "models/smmuv3/structures.h"

namespace iommusim::driver {

using namespace iommusim::smmuv3;
namespace cmdqv = smmuv3::cmdqv;
using common::to_ps;
using sc_core::sc_time_stamp;


std::string validate(const Smmuv3DriverConfig& c) {
  if (auto e = validate(c.timing); !e.empty()) return "timing." + e;
  if (c.cmdq_log2 < 2 || c.cmdq_log2 > 19) return "cmdq_log2 must be 2..19";
  if (c.evtq_log2 < 1 || c.evtq_log2 > 19) return "evtq_log2 must be 1..19";
  if (c.stream_table_log2 < 1 || c.stream_table_log2 > 24) return "stream_table_log2 must be 1..24";
  if (c.cd_table_log2 > 10) return "cd_table_log2 must be 0..10";
  return validate(c.memory);
}

Smmuv3Driver::Smmuv3Driver(sc_core::sc_module_name name, const Smmuv3DriverConfig& cfg, ProgrammingInterface& smmu,
                           DriverMemoryRef memory)
    : DriverBase(name, cfg.timing, cfg.memory, memory), cfg_(cfg), smmu_(smmu),
      cmdq_(common::IndexRing{cfg.cmdq_log2, true}, 16, *this, "CMDQ space", "CMD_SYNC",
            DriverQueue::Submission::Concurrent) {
  smmu_.set_command_probe([this](const CommandTrace& t) { cmdq_.trace(t); });
  add_command_queue(cmdq_);
}

Smmuv3Driver::~Smmuv3Driver() = default;

Status Smmuv3Driver::init() {
  if (auto e = validate(cfg_); !e.empty()) return Status::fail("driver." + e);
  const uint32_t idr0 = mmio_read32(reg::IDR0);
  const uint32_t idr1 = mmio_read32(reg::IDR1);
  ril_ = reg::IDR3_RIL::get(mmio_read32(reg::IDR3));
  nesting_ = reg::IDR0_S1P::get(idr0) && reg::IDR0_S2P::get(idr0);
  // MSI polling needs MSIs (Linux sets ARM_SMMU_OPT_MSIPOLL only with ARM_SMMU_FEAT_MSI):
  // without them CMD_SYNC completion is seen in CMDQ_CONS.
  if (!reg::IDR0_MSI::get(idr0)) cfg_.sync_mode = SmmuSyncMode::SevPoll;
  if (cfg_.stream_table_log2 > reg::IDR1_SIDSIZE::get(idr1))
    return Status::fail("driver.stream_table_log2 exceeds IDR1.SIDSIZE");
  if (cfg_.two_level_stream_table && reg::IDR0_ST_LEVEL::get(idr0) != 1)
    return Status::fail("driver.two_level_stream_table: IDR0.ST_LEVEL says unsupported");
  if (cfg_.cmdq_log2 > reg::IDR1_CMDQS::get(idr1)) return Status::fail("driver.cmdq_log2 exceeds IDR1.CMDQS");

  // Stream table. 2-level uses SPLIT=8 (256 STEs per L2 table) as Linux does.
  uint64_t strtab_cfg = reg::STRTAB_CFG_LOG2SIZE::set(0, cfg_.stream_table_log2);
  if (cfg_.two_level_stream_table) {
    const unsigned split = std::min(8u, cfg_.stream_table_log2);
    strtab_base_ = alloc_host((uint64_t(1) << (cfg_.stream_table_log2 - split)) * 8, 64);
    strtab_cfg = reg::STRTAB_CFG_SPLIT::set(strtab_cfg, split);
    strtab_cfg = reg::STRTAB_CFG_FMT::set(strtab_cfg, 1);
  } else {
    strtab_base_ = alloc_host((uint64_t(1) << cfg_.stream_table_log2) * 64, 64);
  }
  const uint64_t cmdq_base = alloc_host((uint64_t(16) << cfg_.cmdq_log2), 4096);
  evtq_base_ = alloc_host((uint64_t(32) << cfg_.evtq_log2), 4096);
  if (!strtab_base_ || !cmdq_base || !evtq_base_) return Status::fail("driver.table_pool_bytes too small for the queues");

  mmio_write32(reg::CR0, 0);
  mmio_write64(reg::STRTAB_BASE, strtab_base_);
  mmio_write32(reg::STRTAB_BASE_CFG, uint32_t(strtab_cfg));
  mmio_write64(reg::CMDQ_BASE, cmdq_base | cfg_.cmdq_log2);
  // Both queue pointers, as Linux arm_smmu_device_reset does (CMDQ_CONS and EVTQ_PROD are
  // writable while their queue is disabled).
  mmio_write32(reg::CMDQ_PROD, 0);
  mmio_write32(reg::CMDQ_CONS, 0);
  mmio_write64(reg::EVTQ_BASE, evtq_base_ | cfg_.evtq_log2);
  mmio_write32(reg::EVTQ_PROD, 0);
  mmio_write32(reg::EVTQ_CONS, 0);
  cmdq_.reset(cmdq_base);
  if (cmdqv_) {
    // tegra241_cmdqv_hw_reset: enable, then preassign each VINTF's LVCMDQs (not mapped yet).
    namespace q = smmuv3::cmdqv;
    cmdqv_write(q::CONFIG, q::CMDQV_EN::set(0, 1));
    for (unsigned v = 0, g = 0; v < cmdqv_->vintfs(); ++v)
      for (unsigned l = 0; l < cmdqv_->lvcmdqs_per_vintf(); ++l)
        cmdqv_write(q::CMDQ_ALLOC(g++), q::CMDQV_CMDQ_ALLOC_VINTF::set(0, v) | q::CMDQV_CMDQ_ALLOC_LVCMDQ::set(0, l));
    vintf_used_.assign(cmdqv_->vintfs(), false);
    vintf_used_[0] = true;   // VINTF0: the host's (tegra241_cmdqv_init_structures)
  }
  mmio_write32(reg::CR0, reg::CR0_CMDQEN::set(0, 1) | reg::CR0_EVTQEN::set(0, 1));
  if (reg::IDR1_ECMDQ::get(idr1))
    if (Status s = init_ecmdqs(); !s.ok) return s;
  // As Linux: invalidate all config and TLBs before enabling translation.
  if (Status s = submit({cmd_cfgi_all(), cmd_tlbi_nsnh_all()}, "init"); !s.ok) return s;
  mmio_write32(reg::CR0, reg::CR0_CMDQEN::set(0, 1) | reg::CR0_EVTQEN::set(0, 1) | reg::CR0_SMMUEN::set(0, 1));
  if (cfg_.vcmdqs)
    if (Status s = init_vcmdqs(); !s.ok) return s;
  return {};
}

uint16_t Smmuv3Driver::vmid_of(DomainId d) const { return static_cast<const SmmuDomain*>(domain(d))->vmid; }
uint16_t Smmuv3Driver::asid_of(DomainId d) const { return static_cast<const SmmuDomain*>(domain(d))->asid; }

std::unique_ptr<DriverBase::Domain> Smmuv3Driver::make_domain(DomainKind kind, const Domain* parent, std::string*) {
  auto dom = std::make_unique<SmmuDomain>();
  if (kind == DomainKind::Stage2) {
    dom->vmid = next_vmid_++;
    // 48-bit IPA, 4K granule, start at level 0 (SL0=2).
    dom->format = std::make_unique<pagetable::VmsaFormat>(pagetable::VmsaConfig{2, 12, 48, 0, 48, false});
  } else {
    dom->asid = next_asid_++;
    if (parent) dom->vmid = static_cast<const SmmuDomain*>(parent)->vmid;
    dom->format = std::make_unique<pagetable::VmsaFormat>(pagetable::VmsaConfig{1, 12, 48, 0, 48, false});
  }
  return dom;
}

uint64_t Smmuv3Driver::ste_address(uint32_t sid) const {
  if (!cfg_.two_level_stream_table) return strtab_base_ + uint64_t(sid) * 64;
  auto it = l2_tables_.find(sid >> 8);
  return it == l2_tables_.end() ? 0 : it->second + uint64_t(sid & 0xFF) * 64;
}

// The stage-2 fields: 48-bit IPA (T0SZ 16), 4 KB granule from level 0 (SL0 2), 48-bit PA
// (PS 5), write-back cacheable inner shareable walks, stall-free faults recorded (S2R).
namespace {
void put_s2_fields(StreamTableEntry& ste, uint16_t vmid, uint64_t root) {
  ste.s2_vmid = vmid;
  ste.s2_t0sz = 16; ste.s2_sl0 = 2; ste.s2_tg = 0; ste.s2_ps = 5; ste.s2_aa64 = true;
  ste.s2_ir0 = ste.s2_or0 = 1; ste.s2_sh0 = 3; ste.s2_r = true;
  ste.s2_ttb = root;
}
}  // namespace

StreamTableEntry Smmuv3Driver::s2_ste(const SmmuDomain& s2) const {
  StreamTableEntry ste;
  ste.valid = true;
  ste.config = SteConfig::S2Trans;
  put_s2_fields(ste, s2.vmid, s2.tables->root());
  return ste;
}

Status Smmuv3Driver::write_ste(uint32_t sid) {
  const Attachment& at = streams_.at(sid);
  if (at.user_nested) return write_ste_words(sid, nested_ste(sid, *static_cast<const SmmuDomain*>(domain(at.user_nested))));
  StreamTableEntry ste;
  ste.valid = true;
  ste.s1_cir = ste.s1_cor = 1; ste.s1_csh = 3;
  const bool s1 = at.has_cd;
  if (at.has_s2) {
    const SmmuDomain& s2 = *static_cast<const SmmuDomain*>(domain(at.s2));
    put_s2_fields(ste, s2.vmid, s2.tables->root());
  }
  if (s1) {
    ste.s1_context_ptr = at.cd_table;
    ste.s1_cd_max = uint8_t(cfg_.cd_table_log2);
    ste.s1_dss = at.bypass_no_pasid ? 1 : 2;   // non-PASID traffic: CD 0 unless only PASIDs attached
    ste.config = at.has_s2 ? SteConfig::Nested : SteConfig::S1Trans;
  } else {
    ste.config = at.blocked ? SteConfig::Abort : at.has_s2 ? SteConfig::S2Trans : SteConfig::Bypass;
  }
  // Linux arm_smmu_make_cdtable_ste / _s2_domain_ste: STRTAB_STE_1_EATS_TRANS when the
  // master's ATS is enabled and the STE translates.
  if (ats_enabled(sid) && ste.config != SteConfig::Abort && ste.config != SteConfig::Bypass) ste.eats = 1;
  return write_ste_words(sid, encode_ste(ste));
}

Status Smmuv3Driver::write_ste_words(uint32_t sid, const SteWords& w) {
  if (cfg_.two_level_stream_table && l2_tables_.find(sid >> 8) == l2_tables_.end()) {
    const uint64_t l2 = alloc_host(256 * 64, 4096);
    if (!l2) return Status::fail("table pool exhausted (L2 stream table)");
    l2_tables_[sid >> 8] = l2;
    StreamTableL1Desc l1; l1.span = 9; l1.l2_ptr = l2;   // 2^(9-1) = 256 STEs
    mem_.write64(strtab_base_ + uint64_t(sid >> 8) * 8, encode_st_l1(l1));
    charge_cycles(cfg_.timing.descriptor_write_cycles);
  }
  mem_.write(ste_address(sid), w.data(), 64);
  charge_cycles(8 * uint64_t(cfg_.timing.descriptor_write_cycles));
  return {};
}

Status Smmuv3Driver::attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId d) {
  Status st;
  SmmuDomain* dom = smmu_domain(d, st);
  if (!dom) return st;
  if (rid >> cfg_.stream_table_log2) return Status::fail("RID " + std::to_string(rid) + " beyond the stream table");
  if (pasid && *pasid >> cfg_.cd_table_log2) return Status::fail("PASID " + std::to_string(*pasid) + " beyond S1CDMax");
  if (pasid && dom->kind == DomainKind::Stage2) return Status::fail("a stage-2 domain attaches to a RID, not a PASID");
  Attachment& at = streams_[rid];
  // arm_smmu_set_pasid: a PASID needs the RID's STE to hold this driver's CD table (or no
  // translation yet); a RID on a guest's nested domain, or a stage-1 PASID over a stage-2
  // RID, is EINVAL.
  if (pasid && !dom->user_managed && (at.user_nested || (dom->kind == DomainKind::Stage1 && at.has_s2)))
    return Status::fail("PASID " + std::to_string(*pasid) + ": the RID's STE holds no host CD table for it");
  // Whether an attach that replaces the whole STE would take other SubstreamIDs' CDs (and
  // stage 2) with it; `keep`: the one being attached (0 for the RID itself).
  const auto other_ssids_in_use = [&at](uint32_t keep) {
    return std::any_of(at.by_ssid.begin(), at.by_ssid.end(), [keep](const auto& e) { return e.first != keep; });
  };
  const bool nested = dom->kind == DomainKind::Nested;
  if (!pasid && (dom->user_managed || dom->kind == DomainKind::Stage2) && at.has_cd && other_ssids_in_use(0))
    // arm_smmu_attach_dev / arm_smmu_attach_dev_nested: arm_smmu_ssids_in_use -> EBUSY.
    return Status::fail("RID " + std::to_string(rid) + ": PASIDs are attached; its STE cannot change to " +
                        (dom->user_managed ? "a nested" : "a stage-2") + " domain (EBUSY)");
  if (!dom->user_managed && dom->kind != DomainKind::Stage2) {
    // arm_smmu_set_pasid cannot change the STE: a PASID whose attach would replace it
    // (another stage-2 parent, or nesting where the STE was S1-only, or the reverse) while
    // other SubstreamIDs use it is refused rather than moving theirs too.
    const bool replaces = (at.has_cd && (at.cd_in_guest != nested || (nested && at.s2 != dom->parent))) ||
                          (!nested && at.has_s2) || at.user_nested;
    if (replaces && other_ssids_in_use(pasid.value_or(0)))
      return Status::fail((pasid ? "PASID " + std::to_string(*pasid) : std::string("the RID")) +
                          ": the RID's STE serves other SubstreamIDs with another configuration (EINVAL)");
  }
  charge_cycles(cfg_.timing.op_overhead_cycles);
  at.blocked = false;
  std::vector<CmdWords> cmds;
  if (dom->user_managed) {
    // arm_smmu_attach_dev_nested: the whole STE is replaced; the guest owns the CD table.
    at = Attachment{};
    at.has_s2 = true; at.s2 = dom->parent; at.user_nested = d;
  } else if (dom->kind == DomainKind::Stage2) {
    if (at.has_cd) at = Attachment{};   // the RID's STE now translates by stage 2 alone
    at.has_s2 = true; at.s2 = d;
  } else {
    // Another stage-2 parent, or nesting where the STE was S1-only (or the reverse): the
    // whole STE is replaced, with a CD table where the new configuration can reach it.
    if (at.has_cd && (at.cd_in_guest != nested || (nested && at.s2 != dom->parent))) at = Attachment{};
    if (!nested && at.has_s2) at = Attachment{};
    if (at.user_nested) at = Attachment{};
    if (nested) { at.has_s2 = true; at.s2 = dom->parent; }
    if (!at.has_cd) {
      const uint64_t bytes = uint64_t(64) << cfg_.cd_table_log2;
      at.cd_in_guest = dom->kind == DomainKind::Nested;
      at.cd_table = at.cd_in_guest ? alloc_guest(bytes, std::max<uint64_t>(bytes, 4096)) : alloc_host(bytes, 64);
      if (!at.cd_table) return Status::fail("no memory for the CD table");
      at.has_cd = true;
      at.bypass_no_pasid = pasid.has_value();
    }
    if (!pasid) at.bypass_no_pasid = false;
    const uint32_t ssid = pasid.value_or(0);
    at.by_ssid[ssid] = d;
    ContextDescriptor cd;
    cd.valid = true; cd.t0sz = 16; cd.tg0 = 0; cd.irgn0 = cd.orgn0 = 1; cd.sh0 = 3; cd.epd1 = true;
    cd.ips = 5; cd.aa64 = true; cd.r = true; cd.a = true; cd.asid = dom->asid; cd.ttb0 = dom->tables->root();
    cd.mair = 0xFF;   // attr 0: normal WB
    const CdWords w = encode_cd(cd);
    const uint64_t cd_addr = at.cd_table + uint64_t(ssid) * 64;
    if (at.cd_in_guest) {
      if (!guest_write(*domain(at.s2), cd_addr, w.data(), 64)) return Status::fail("CD table not mapped by stage 2");
    } else {
      mem_.write(cd_addr, w.data(), 64);
    }
    charge_cycles(8 * uint64_t(cfg_.timing.descriptor_write_cycles));
    cmds.push_back(cmd_cfgi_cd(rid, ssid, true));
  }
  if (Status s = write_ste(rid); !s.ok) return s;
  cmds.insert(cmds.begin(), cmd_cfgi_ste(rid, true));
  add_master_atc_invalidation(rid, pasid, cmds);
  return submit(cmds, "attach");
}

Status Smmuv3Driver::detach_device(uint32_t rid, std::optional<uint32_t> pasid) {
  auto it = streams_.find(rid);
  if (it == streams_.end()) return Status::fail("RID " + std::to_string(rid) + " is not attached");
  Attachment& at = it->second;
  charge_cycles(cfg_.timing.op_overhead_cycles);
  if (pasid) {
    if (!at.by_ssid.erase(*pasid)) return Status::fail("PASID " + std::to_string(*pasid) + " is not attached");
    const CdWords zero{};   // V=0: the SubstreamID now faults C_BAD_CD
    const uint64_t cd_addr = at.cd_table + uint64_t(*pasid) * 64;
    if (at.cd_in_guest) {
      if (!guest_write(*domain(at.s2), cd_addr, zero.data(), 64)) return Status::fail("CD table not mapped by stage 2");
    } else {
      mem_.write(cd_addr, zero.data(), 64);
    }
    charge_cycles(8 * uint64_t(cfg_.timing.descriptor_write_cycles));
    std::vector<CmdWords> cmds{cmd_cfgi_cd(rid, *pasid, true)};
    add_master_atc_invalidation(rid, pasid, cmds);
    return submit(cmds, "detach");
  }
  at = Attachment{};
  at.blocked = true;
  if (Status s = write_ste(rid); !s.ok) return s;
  std::vector<CmdWords> cmds{cmd_cfgi_ste(rid, true)};
  add_master_atc_invalidation(rid, std::nullopt, cmds);
  return submit(cmds, "detach");
}

Status Smmuv3Driver::invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) {
  Status st;
  SmmuDomain* dom = smmu_domain(d, st);
  if (!dom) return st;
  if (dom->user_managed) return Status::fail("a user-managed domain is invalidated by its guest (cache_invalidate)");
  if (bytes == 0) return Status::fail("invalidate_range: empty range");
  std::vector<CmdWords> cmds;
  // Planned by the leaf size, as Linux's arm_smmu_tlb_inv_range_cmd does with the
  // gathered granule: with RIL the range form in 4 KB granules with TTL for that leaf,
  // without it one command per leaf.
  const std::vector<TlbiPiece> pieces = plan_tlbi_range(iova, bytes, take_leaf_bytes(*dom), leaf, ril_);
  if (dom->kind == DomainKind::Stage2) {
    for_each_s2_vmid(*dom, d, [&](uint16_t vmid) {
      for (const TlbiPiece& p : pieces) cmds.push_back(cmd_tlbi_s2_ipa(vmid, p.addr, leaf, p.range));
      // Combined S1+S2 entries are not hit by TLBI_S2_IPA: a nest parent also drops S1 by VMID.
      if (dom->nest_parent) cmds.push_back(cmd_tlbi_nh_all(vmid));
    });
  } else {
    for (const TlbiPiece& p : pieces) cmds.push_back(cmd_tlbi_nh_va(dom->vmid, dom->asid, p.addr, leaf, p.range));
  }
  // The IPA range says nothing about a nested stream's IOVAs: its ATCs drop everything.
  if (dom->kind == DomainKind::Stage2 && dom->nest_parent) add_atc_invalidations(d, 0, 0, cmds);
  else add_atc_invalidations(d, iova, bytes, cmds);
  return submit(cmds, take_pending_op(leaf ? "invalidate_range_leaf" : "invalidate_range"));
}

Status Smmuv3Driver::invalidate_domain(DomainId d) {
  Status st;
  SmmuDomain* dom = smmu_domain(d, st);
  if (!dom) return st;
  if (dom->user_managed) return Status::fail("a user-managed domain is invalidated by its guest (cache_invalidate)");
  std::vector<CmdWords> cmds;
  if (dom->kind == DomainKind::Stage2) for_each_s2_vmid(*dom, d, [&](uint16_t vmid) { cmds.push_back(cmd_tlbi_s12_vmall(vmid)); });
  else cmds.push_back(cmd_tlbi_nh_asid(dom->vmid, dom->asid));
  add_atc_invalidations(d, 0, 0, cmds);
  return submit(cmds, "invalidate_domain");
}

// Linux arm_smmu_atc_inv_master: a master whose translations change (attach, detach) drops
// its whole ATC, for the one PASID, or (no PASID: PCIe drops every PASID's entries) all.
void Smmuv3Driver::add_master_atc_invalidation(uint32_t rid, std::optional<uint32_t> pasid,
                                               std::vector<CmdWords>& cmds) const {
  if (!device_invalidations() || !ats_enabled(rid)) return;
  cmds.push_back(cmd_atc_inv(rid, pasid.has_value(), pasid.value_or(0), 0, 52, false));
}

// Linux arm_smmu_atc_inv_to_cmd: the smallest naturally aligned span of 2^Size pages that
// holds the range; Size 52 (ATC_INV_SIZE_ALL) for everything.
void Smmuv3Driver::add_atc_invalidations(DomainId d, uint64_t iova, uint64_t bytes, std::vector<CmdWords>& cmds) const {
  if (!device_invalidations()) return;
  uint64_t addr = 0;
  uint8_t size = 52;
  if (bytes) {
    const uint64_t first = iova >> 12, last = (iova + bytes - 1) >> 12;
    unsigned log2_span = 0;
    while (log2_span < 52 && (first >> log2_span) != (last >> log2_span)) ++log2_span;
    size = uint8_t(log2_span);
    addr = (first >> log2_span) << (log2_span + 12);
  }
  // Linux arm_smmu_atc_inv_domain: every ATS master of the domain, for each SSID it is
  // attached with (SSV = 0 for the RID itself); a stage-2 domain's masters in full.
  for (const auto& [sid, at] : streams_) {
    if (!ats_enabled(sid)) continue;
    if (at.has_s2 && at.s2 == d) {
      cmds.push_back(cmd_atc_inv(sid, false, 0, addr, size, false));
      continue;
    }
    for (const auto& [ssid, dom] : at.by_ssid) {
      if (dom != d) continue;
      const bool ssv = ssid != 0 || at.bypass_no_pasid;
      cmds.push_back(cmd_atc_inv(sid, ssv, ssv ? ssid : 0, addr, size, false));
    }
  }
}

Status Smmuv3Driver::sync() { return submit({}, "sync"); }

unsigned Smmuv3Driver::drain_events() {
  const common::WrapRing ring{cfg_.evtq_log2};
  const uint32_t prod = mmio_read32(reg::EVTQ_PROD);
  uint32_t cons = mmio_read32(reg::EVTQ_CONS);
  unsigned n = 0;
  while (!ring.empty(prod & ring.pointer_mask(), cons & ring.pointer_mask())) {
    EventWords w;
    mem_.read(evtq_base_ + uint64_t(ring.index(cons)) * 32, w.data(), 32);
    charge_cycles(4 * uint64_t(cfg_.timing.descriptor_write_cycles));   // read and decode 32 bytes
    const EventRecord e = decode_event(w);
    if (report_to_viommu(w, e, ring.index(cons))) events_reported_.inc();
    else ++events_by_id_[static_cast<uint8_t>(e.id)];
    events_consumed_.inc();
    cons = (cons & (1u << 31)) | ring.next(cons & ring.pointer_mask());
    ++n;
  }
  // Acknowledge an overflow by copying PROD.OVFLG into CONS.OVACKFLG.
  if ((prod ^ cons) & (1u << 31)) { event_overflows_.inc(); cons ^= 1u << 31; }
  if (n || (prod >> 31) != 0) mmio_write32(reg::EVTQ_CONS, cons);
  return n;
}

void Smmuv3Driver::global_bypass() {
  mmio_write32(reg::GBPA, uint32_t(reg::GBPA_UPDATE::set(0, 1)));   // ABORT=0
  mmio_write32(reg::CR0, reg::CR0_CMDQEN::set(0, 1) | reg::CR0_EVTQEN::set(0, 1));
}

Status Smmuv3Driver::submit(const std::vector<CmdWords>& cmds, const std::string& op) {
  static_assert(sizeof(CmdWords) == 16, "commands are stored back to back");
  return submit_batch(queue_for(cmds), cmds.empty() ? nullptr : cmds.front().data(), cmds.size(), op);
}

// ---- A guest's VCMDQs (Tegra241 CMDQV), as the guest's tegra241-cmdqv.c ----

struct Smmuv3Driver::Vcmdq : DriverQueue::Hooks {
  Vcmdq(Smmuv3Driver& d, smmuv3::GuestCmdqv& g, unsigned lidx)
      : d_(d), g_(g), lidx_(lidx),
        q(common::IndexRing{d.cfg_.cmdq_log2, true}, 16, *this, "VCMDQ space", "CMD_SYNC",
          DriverQueue::Submission::Concurrent) {
    q.set_direct(true);
  }
  void doorbell(uint32_t producer) override { g_.write32(lidx_, cmdqv::VCMDQ_PROD, producer); }
  uint32_t read_consumer() override { return g_.read32(lidx_, cmdqv::VCMDQ_CONS) & q.ring().pointer_mask(); }
  // arm_smmu_cmdq_needs_busy_polling: a guest-owned VCMDQ's CMD_SYNC has no MSI.
  void barrier_entry(uint32_t, uint64_t, uint64_t* words) override {
    const CmdWords w = cmd_sync(SyncCs::None);
    words[0] = w[0];
    words[1] = w[1];
  }
  bool completed(uint32_t first, uint32_t barrier) override {
    const common::IndexRing& ring = q.ring();
    const uint32_t cons = g_.read32(lidx_, cmdqv::VCMDQ_CONS) & ring.pointer_mask();
    return ring.used(cons, first) > ring.used(barrier, first);
  }
  // The CMDQV interrupt's handler (tegra241_vintf0_handle_error in the guest): skip the
  // bad entry (__arm_smmu_cmdq_skip_err: a CMD_SYNC in its place) and acknowledge.
  Status check_error(unsigned) override {
    if (recovering_ || !((g_.peek32(lidx_, cmdqv::VCMDQ_GERROR) ^ g_.peek32(lidx_, cmdqv::VCMDQ_GERRORN)) & 1))
      return {};
    recovering_ = true;
    struct Done { bool& f; ~Done() { f = false; } } done{recovering_};
    const uint32_t gerror = g_.read32(lidx_, cmdqv::VCMDQ_GERROR);
    const uint32_t cons = g_.read32(lidx_, cmdqv::VCMDQ_CONS);
    const uint32_t err = uint32_t(cmdqv::VCMDQ_CONS_ERR::get(cons));
    const std::string regs = registers();
    d_.skip_error(err, q.slot_address(cons));
    g_.write32(lidx_, cmdqv::VCMDQ_GERRORN, gerror);
    ++d_.errors_recovered_;
    if (err == reg::CERROR_ILL || err == reg::CERROR_ABT) return {};
    return Status::fail("VCMDQ error " + std::to_string(err) + " (" + regs + ")");
  }
  std::string registers() override {
    return "VCMDQ" + std::to_string(lidx_) + " CONS=" + hex(g_.peek32(lidx_, cmdqv::VCMDQ_CONS)) +
           ", GERROR=" + hex(g_.peek32(lidx_, cmdqv::VCMDQ_GERROR));
  }
  const char* command_name(uint8_t opcode) const override { return opcode_name(Opcode(opcode)); }

  Smmuv3Driver& d_;
  smmuv3::GuestCmdqv& g_;
  unsigned lidx_;
  DriverQueue q;
  bool recovering_ = false;
};

Status Smmuv3Driver::init_vcmdqs() {
  smmuv3::GuestCmdqv* g = smmu_.guest_cmdqv();
  if (!g) return Status::fail("driver.vcmdqs: the SMMU has no CMDQV VINTF for this driver");
  if (cfg_.vcmdqs > g->lvcmdqs())
    return Status::fail("vmm.vcmdqs: " + std::to_string(cfg_.vcmdqs) + " VCMDQs, the VINTF has " +
                        std::to_string(g->lvcmdqs()));
  const uint64_t bytes = uint64_t(16) << cfg_.cmdq_log2;
  for (unsigned l = 0; l < cfg_.vcmdqs; ++l) {
    // The ring in guest RAM, aligned to its size (tegra241_vintf_alloc_lvcmdq_user's rule).
    const uint64_t base = alloc_host(bytes, bytes);
    if (!base) return Status::fail("platform.guest_table_pool_bytes: no room for the VCMDQs (driver.smmuv3.cmdq_log2, vmm.vcmdqs)");
    if (!g->set_base(l, base | cfg_.cmdq_log2))
      return Status::fail("VCMDQ " + std::to_string(l) + ": the VMM's IOMMU_HW_QUEUE_ALLOC failed");
    vcmdqs_.push_back(std::make_unique<Vcmdq>(*this, *g, l));
    Vcmdq& v = *vcmdqs_.back();
    v.q.reset(base);
    g->set_command_probe(l, [&v](const CommandTrace& t) { v.q.trace(t); });
    add_command_queue(v.q);
    // tegra241_vcmdq_hw_init: VCMDQ_EN, then STATUS.VCMDQ_ENABLED polled.
    g->write32(l, cmdqv::VCMDQ_CONFIG, cmdqv::VCMDQ_EN::set(0, 1));
    if (!(g->read32(l, cmdqv::VCMDQ_STATUS) & 1))
      return Status::fail("VCMDQ " + std::to_string(l) + " not enabled (" + v.registers() + ")");
  }
  return {};
}

unsigned Smmuv3Driver::calling_cpu() {
  const sc_core::sc_process_handle h = sc_core::sc_get_current_process_handle();
  const sc_core::sc_object* thread = h.valid() ? h.get_process_object() : nullptr;
  return cpu_of_thread_.emplace(thread, unsigned(cpu_of_thread_.size())).first->second;
}

// ---- The host's ECMDQs (SMMUv3.3), as the Linux ECMDQ series ----

struct Smmuv3Driver::Ecmdq : DriverQueue::Hooks {
  Ecmdq(Smmuv3Driver& d, unsigned n, uint64_t regs)
      : d_(d), n_(n), base_off_(regs + reg::ECMDQ_BASE), prod_off_(regs + reg::ECMDQ_PROD),
        cons_off_(regs + reg::ECMDQ_CONS),
        q(common::IndexRing{d.cfg_.cmdq_log2, true}, 16, *this, "ECMDQ space", "CMD_SYNC",
          DriverQueue::Submission::Concurrent) {}

  // PROD = WR | EN | ERRACK as last acknowledged (v1's q->ecmdq_prod).
  void doorbell(uint32_t producer) override { d_.mmio_write32(prod_off_, producer | enable_errack_); }
  uint32_t read_consumer() override { return d_.mmio_read32(cons_off_) & q.ring().pointer_mask(); }
  // The CMDQ's CMD_SYNC (arm_smmu_cmdq_build_sync_cmd on this queue): its MSI clears its own slot.
  void barrier_entry(uint32_t producer, uint64_t slot_address, uint64_t* words) override {
    d_.barrier_entry(producer, slot_address, words);
  }
  bool completed(uint32_t first, uint32_t barrier) override { return d_.sync_completed(q, cons_off_, first, barrier); }
  bool error_active() { return reg::ECMDQ_CONS_ERR::get(d_.smmu_.peek32(cons_off_)) != reg::ECMDQ_PROD_ERRACK::get(enable_errack_); }
  // The GERROR interrupt's CMDQP_ERR part for this queue (arm_smmu_ecmdq_skip_err): the model's
  // CONS.ERR state stands in for the interrupt (no time); the handler reads the registers.
  Status check_error(unsigned) override {
    if (recovering_ || !error_active()) return {};
    recovering_ = true;
    struct Done { bool& f; ~Done() { f = false; } } done{recovering_};
    const uint32_t cons = d_.mmio_read32(cons_off_);
    const uint32_t err = uint32_t(reg::ECMDQ_CONS_ERR_REASON::get(cons));
    const std::string regs = registers();
    d_.skip_error(err, q.slot_address(cons & q.ring().pointer_mask()));
    // arm_smmu_ecmdq_err_ack: ERRACK := CONS.ERR resumes the queue. On a shared ECMDQ another
    // CPU may be ringing: v1 writes ERRACK under write_lock(ecmdq_lock), every doorbell under
    // read_lock. Here the write is one more doorbell, serialised with theirs, its value the
    // driver's own producer with the new ERRACK (never a register read another CPU's doorbell
    // can overtake), and every doorbell built from now on carries the new ERRACK.
    enable_errack_ = uint32_t(reg::ECMDQ_PROD_ERRACK::set(enable_errack_, reg::ECMDQ_CONS_ERR::get(cons)));
    d_.ring_again(q);
    d_.acknowledge_cmdqp_error();
    ++d_.errors_recovered_;
    if (err == reg::CERROR_ATC_INV_SYNC)
      return Status::fail("ATC invalidation not completed: CMD_SYNC on ECMDQ " + std::to_string(n_) +
                          " failed with CERROR_ATC_INV_SYNC (" + regs + ")");
    if (err != reg::CERROR_ILL && err != reg::CERROR_ABT)
      return Status::fail("ECMDQ " + std::to_string(n_) + " error " + std::to_string(err) + " not recoverable");
    return {};
  }
  std::string registers() override {
    return "ECMDQ" + std::to_string(n_) + " PROD=" + hex(d_.smmu_.peek32(prod_off_)) + ", CONS=" +
           hex(d_.smmu_.peek32(cons_off_)) + ", GERROR=" + hex(d_.smmu_.peek32(reg::GERROR));
  }
  const char* command_name(uint8_t opcode) const override { return opcode_name(Opcode(opcode)); }

  Smmuv3Driver& d_;
  unsigned n_;
  uint64_t base_off_, prod_off_, cons_off_;
  DriverQueue q;
  uint32_t enable_errack_ = uint32_t(reg::ECMDQ_PROD_EN::set(0, 1));
  bool recovering_ = false;
};

Status Smmuv3Driver::init_ecmdqs() {
  // arm_smmu_ecmdq_probe: IDR6, then each control page's BASE (register mode, contiguous).
  const uint32_t idr6 = mmio_read32(reg::IDR6);
  const unsigned log2nump = unsigned(reg::IDR6_LOG2NUMP::get(idr6)), log2numq = unsigned(reg::IDR6_LOG2NUMQ::get(idr6));
  const unsigned n = (1u << log2nump) << log2numq;
  uint64_t page = 0;
  for (unsigned p = 0; p < (1u << log2nump); ++p) {
    const uint64_t cp = mmio_read64(reg::CMDQ_CONTROL_PAGE_BASE(p));
    if (!reg::CP_PRESET::get(cp)) return {};   // "ecmdq control page is memory mode": the CMDQ
    const uint64_t addr = cp & common::mask(51, 12);
    if (p == 0) page = addr;
    else if (addr != page + p * reg::kControlPageBytes) return {};   // "not contiguous": the CMDQ
  }
  auto* probes = smmu_.ecmdqs();
  if (!probes) return Status::fail("IDR1.ECMDQ is set but the SMMU gives no ECMDQ traces");
  const uint64_t bytes = uint64_t(16) << cfg_.cmdq_log2;
  std::vector<std::unique_ptr<Ecmdq>> enabled;
  for (unsigned i = 0; i < n; ++i) {
    const uint64_t base = alloc_host(bytes, bytes);
    if (!base)
      return Status::fail("platform.table_pool_bytes too small for " + std::to_string(n) + " ECMDQs of " +
                          std::to_string(bytes) + " bytes (driver.smmuv3.cmdq_log2)");
    enabled.push_back(std::make_unique<Ecmdq>(*this, i, page + uint64_t(i) * reg::ecmdq_stride(log2numq)));
    Ecmdq& e = *enabled.back();
    e.q.reset(base);
    // arm_smmu_ecmdq_reset: BASE, PROD, CONS, then PROD.EN and CONS.ENACK polled.
    mmio_write64(e.base_off_, base | cfg_.cmdq_log2);
    mmio_write32(e.prod_off_, 0);
    mmio_write32(e.cons_off_, 0);
    mmio_write32(e.prod_off_, uint32_t(reg::ECMDQ_PROD_EN::set(0, 1)));
    if (!reg::ECMDQ_CONS_ENACK::get(mmio_read32(e.cons_off_)))
      return {};   // "ecmdq[i] enable failed": the CMDQ for everything (nothing refers to `enabled`)
  }
  // Every ECMDQ enabled: only now do the SMMU's probes and the driver's queue list refer to them.
  for (unsigned i = 0; i < n; ++i) {
    Ecmdq& e = *enabled[i];
    probes->set_ecmdq_probe(i, [&e](const CommandTrace& t) { e.q.trace(t); });
    add_command_queue(e.q);
  }
  ecmdqs_ = std::move(enabled);
  return {};
}

// GERRORN.CMDQP_ERR follows GERROR's once no ECMDQ is still stopped on an error.
void Smmuv3Driver::acknowledge_cmdqp_error() {
  for (auto& e : ecmdqs_)
    if (e->error_active()) return;
  const uint32_t gerror = mmio_read32(reg::GERROR), gerrorn = mmio_read32(reg::GERRORN);
  const uint32_t bit = uint32_t(reg::GERROR_CMDQP_ERR::set(0, 1));
  if ((gerror ^ gerrorn) & bit) mmio_write32(reg::GERRORN, gerrorn ^ bit);
}

DriverQueue& Smmuv3Driver::queue_for(const std::vector<CmdWords>& cmds) {
  if (!ecmdqs_.empty()) return ecmdqs_[calling_cpu() % ecmdqs_.size()]->q;   // arm_smmu_get_cmdq
  if (vcmdqs_.empty() || cmds.empty()) return cmdq_;
  for (const CmdWords& c : cmds)
    switch (Opcode(c[0] & 0xFF)) {
      case Opcode::TlbiNhAsid: case Opcode::TlbiNhVa: case Opcode::AtcInv: break;
      default: return cmdq_;
    }
  return vcmdqs_[calling_cpu() % vcmdqs_.size()]->q;
}

void Smmuv3Driver::doorbell(uint32_t producer) { mmio_write32(reg::CMDQ_PROD, producer); }

uint32_t Smmuv3Driver::read_consumer() { return mmio_read32(reg::CMDQ_CONS) & cmdq_.ring().pointer_mask(); }

void Smmuv3Driver::barrier_entry(uint32_t, uint64_t slot_address, uint64_t* words) {
  // Linux MSI polling: the CMD_SYNC's MSI clears the first word of its own entry, so
  // each CPU polls its own CMD_SYNC.
  const bool msi = cfg_.sync_mode == SmmuSyncMode::MsiPoll;
  const CmdWords w = cmd_sync(msi ? SyncCs::Irq : SyncCs::Sev, msi ? slot_address : 0, 0);
  words[0] = w[0];
  words[1] = w[1];
}

bool Smmuv3Driver::completed(uint32_t first, uint32_t barrier) {
  return sync_completed(cmdq_, reg::CMDQ_CONS, first, barrier);
}

// One poll of queue q's CMD_SYNC in slot `barrier` (the CMDQ's or an ECMDQ's, whose consumer
// register is at `cons_offset`): its MSI word cleared, or (SEV) CONS moved past its slot.
bool Smmuv3Driver::sync_completed(const DriverQueue& q, uint64_t cons_offset, uint32_t first, uint32_t barrier) {
  if (cfg_.sync_mode == SmmuSyncMode::MsiPoll) {
    charge_cycles(cfg_.timing.poll_read_cycles);
    return mem_.read32(q.slot_address(barrier)) == 0;
  }
  const common::IndexRing& ring = q.ring();
  const uint32_t cons = mmio_read32(cons_offset) & ring.pointer_mask();
  return ring.used(cons, first) > ring.used(barrier, first);
}

// Linux learns of a CMDQ error from the GERROR interrupt, not by polling GERROR: the
// model's GERROR line stands in for it (no time), and the handler then reads the registers.
Status Smmuv3Driver::check_error(unsigned) {
  if (recovering_ || !((smmu_.peek32(reg::GERROR) ^ smmu_.peek32(reg::GERRORN)) & 1)) return {};
  recovering_ = true;
  struct Done { bool& f; ~Done() { f = false; } } done{recovering_};
  const uint32_t gerror = mmio_read32(reg::GERROR), gerrorn = mmio_read32(reg::GERRORN);
  if (!((gerror ^ gerrorn) & 1)) return {};
  const uint32_t cons = mmio_read32(reg::CMDQ_CONS);
  const uint32_t err = uint32_t(reg::CMDQ_CONS_ERR::get(cons));
  if (err == reg::CERROR_ATC_INV_SYNC) {
    // Linux arm_smmu_cmdq_skip_err: CONS is still on the CMD_SYNC; acknowledge, so it runs
    // again (the timed-out invalidation is no longer waited for), and report the failure.
    const std::string regs = registers();
    mmio_write32(reg::GERRORN, gerror);
    ++errors_recovered_;
    return Status::fail("ATC invalidation not completed: CMD_SYNC failed with CERROR_ATC_INV_SYNC (a device did not "
                        "answer its Invalidate Request within iommu.smmuv3.atc_inv_timeout_ns; " + regs + ")");
  }
  skip_error(err, cmdq_.slot_address(cons));
  mmio_write32(reg::GERRORN, gerror);
  ++errors_recovered_;
  if (err != reg::CERROR_ILL && err != reg::CERROR_ABT)
    return Status::fail("CMDQ error " + std::to_string(err) + " not recoverable");
  return {};
}

// Linux __arm_smmu_cmdq_skip_err, for the CMDQ and a VCMDQ alike: an illegal command is
// replaced by a CMD_SYNC; a fetch abort is retried as it stands ("retrying command fetch"),
// so no invalidation is dropped; a CMD_SYNC whose ATC invalidation timed out runs again.
void Smmuv3Driver::skip_error(uint32_t err, uint64_t slot) {
  if (err == reg::CERROR_ABT || err == reg::CERROR_ATC_INV_SYNC) return;
  const CmdWords repl = cmd_sync(SyncCs::None);
  mem_.write(slot, repl.data(), 16);
  charge_cycles(cfg_.timing.command_write_cycles);
}

std::string Smmuv3Driver::registers() {
  return "CMDQ_CONS=" + hex(smmu_.peek32(reg::CMDQ_CONS)) + ", GERROR=" + hex(smmu_.peek32(reg::GERROR));
}

void Smmuv3Driver::register_stats(common::StatRegistry& reg, const std::string& p) const {
  DriverBase::register_stats(reg, p);
  reg.add(p + ".event_overflows", event_overflows_, "count", "event-queue overflows acknowledged (records were lost)");
}

// ---- Nesting (NestingOps), as Linux arm-smmu-v3-iommufd.c ----

namespace {
// STE dword 0 and 1 fields (IHI 0070 §5.2; Linux STRTAB_STE_*).
constexpr uint64_t kSte0V = common::mask(0, 0);
constexpr uint64_t kSte0Cfg = common::mask(3, 1);
constexpr uint64_t kSte1Mev = common::mask(19, 19);
constexpr uint64_t kSte1Eats = common::mask(29, 28);
// STRTAB_STE_0_NESTING_ALLOWED: V, Config, S1Fmt, S1ContextPtr, S1CDMax.
constexpr uint64_t kSte0NestingAllowed =
    kSte0V | kSte0Cfg | common::mask(5, 4) | common::mask(51, 6) | common::mask(63, 59);
// STRTAB_STE_1_NESTING_ALLOWED: S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS.
constexpr uint64_t kSte1NestingAllowed = common::mask(7, 0) | common::mask(27, 27) | kSte1Eats;
// Command fields (IHI 0070 §4; Linux CMDQ_0_OP, CMDQ_TLBI_0_VMID, CMDQ_CFGI_0_SID).
constexpr uint64_t kCmd0Op = common::mask(7, 0);
constexpr uint64_t kCmd0TlbiVmid = common::mask(47, 32);
constexpr uint64_t kCmd0Sid = common::mask(63, 32);
// Linux CMDQ_BATCH_ENTRIES (BITS_PER_LONG): a vIOMMU invalidation issues at most one less
// per CMD_SYNC.
constexpr uint32_t kUserBatch = 64 - 1;
}  // namespace

Errno Smmuv3Driver::viommu_init(ViommuType type, DomainId parent, ViommuHandle* out) {
  if (!supports_viommu(type)) return Errno::OpNotSupp;
  const Domain* p = domain(parent);
  // arm_vsmmu_init: a parent of another SMMU is EINVAL.
  if (!p || p->kind != DomainKind::Stage2 || p->user_managed) return Errno::Inval;
  VSmmu v;
  v.parent = parent;
  v.vmid = static_cast<const SmmuDomain*>(p)->vmid;   // "FIXME Move VMID allocation ... to here"
  if (type == ViommuType::Tegra241Cmdqv) {
    // tegra241_cmdqv_init_vintf_user: the lowest free VINTF (ida_alloc_max), ENOSPC when
    // none, then tegra241_vintf_hw_init(vintf, false): the SID pairs cleared, CONFIG with
    // the VMID and HYP_OWN = 0, then EN.
    namespace q = smmuv3::cmdqv;
    auto free = std::find(vintf_used_.begin(), vintf_used_.end(), false);
    if (free == vintf_used_.end()) return Errno::NoSpc;
    v.vintf = unsigned(free - vintf_used_.begin());
    *free = true;
    for (unsigned s = 0; s < cmdqv_->sids_per_vintf(); ++s) {
      cmdqv_write(q::VINTF(v.vintf) + q::VINTF_SID_MATCH(s), 0);
      cmdqv_write(q::VINTF(v.vintf) + q::VINTF_SID_REPLACE(s), 0);
    }
    const uint64_t config = q::VINTF_VMID::set(0, uint16_t(v.vmid + (cfg_.inject_wrong_vintf_vmid ? 1 : 0)));
    cmdqv_write(q::VINTF(v.vintf) + q::VINTF_CONFIG, config);
    cmdqv_write(q::VINTF(v.vintf) + q::VINTF_CONFIG, config | q::VINTF_EN::set(0, 1));
    v.lvcmdqs.assign(cmdqv_->lvcmdqs_per_vintf(), false);
  }
  vsmmus_.push_back(v);
  *out = ViommuHandle(vsmmus_.size());
  return Errno::Ok;
}

Errno Smmuv3Driver::alloc_nested(ViommuHandle v, uint32_t flags, const UserData& data, DomainId* out) {
  if (v == 0 || v > vsmmus_.size()) return Errno::Inval;
  if (flags) return Errno::OpNotSupp;   // arm_vsmmu_alloc_domain_nested
  // iommu_copy_struct_from_user: another type, or too short to hold `ste`, is EINVAL.
  if (data.type != HwptDataType::ArmSmmuv3 || !data.data || data.len < sizeof(HwptArmSmmuv3)) return Errno::Inval;
  HwptArmSmmuv3 arg = *static_cast<const HwptArmSmmuv3*>(data.data);
  // arm_smmu_validate_vste
  bool ats = false;
  if (!(arg.ste[0] & kSte0V)) {
    arg.ste[0] = arg.ste[1] = 0;
  } else {
    if ((arg.ste[0] & ~kSte0NestingAllowed) || (arg.ste[1] & ~kSte1NestingAllowed)) return Errno::Io;
    const auto cfg = SteConfig(common::extract(arg.ste[0], 3, 1));
    if (cfg != SteConfig::Abort && cfg != SteConfig::Bypass && cfg != SteConfig::S1Trans) return Errno::Io;
    const uint64_t eats = common::extract(arg.ste[1], 29, 28);
    if (eats > 1) return Errno::Io;   // only STRTAB_STE_1_EATS_ABT or _TRANS
    if (cfg == SteConfig::S1Trans) ats = eats == 1;
    arg.ste[1] &= ~kSte1Eats;
  }
  const VSmmu& vs = vsmmus_[v - 1];
  auto dom = std::make_unique<SmmuDomain>();
  dom->vmid = vs.vmid;
  if (cfg_.nested_vmids == ArmNestedVmids::PerNestedHwpt) {
    if (next_vmid_ == 0) return Errno::NoSpc;   // 16-bit VMIDs exhausted
    dom->vmid = next_vmid_++;
  }
  dom->vste[0] = arg.ste[0];
  dom->vste[1] = arg.ste[1];
  dom->vste_ats = ats;
  dom->viommu = v;
  charge_cycles(cfg_.timing.op_overhead_cycles);
  const uint16_t vmid = dom->vmid;
  *out = add_user_domain(std::move(dom), vs.parent);
  if (cfg_.nested_vmids == ArmNestedVmids::PerNestedHwpt) vsmmus_[v - 1].hwpt_vmids[*out] = vmid;
  return Errno::Ok;
}

void Smmuv3Driver::free_nested(DomainId nested) {
  const auto* dom = static_cast<const SmmuDomain*>(domain(nested));
  if (dom && dom->user_managed && dom->viommu) vsmmus_[dom->viommu - 1].hwpt_vmids.erase(nested);
}

template <class F>
void Smmuv3Driver::for_each_guest_vmid(const VSmmu& vs, F&& f) const {
  if (cfg_.nested_vmids == ArmNestedVmids::PerViommu) { f(vs.vmid); return; }
  for (const auto& [hwpt, vmid] : vs.hwpt_vmids) f(vmid);
}

template <class F>
void Smmuv3Driver::for_each_s2_vmid(const SmmuDomain& d, DomainId id, F&& f) const {
  f(d.vmid);
  for (const VSmmu& vs : vsmmus_)
    if (vs.parent == id)
      for (const auto& [hwpt, vmid] : vs.hwpt_vmids) f(vmid);
}

std::optional<uint64_t> Smmuv3Driver::nested_tags_in_use() const {
  uint64_t n = 0;
  for (const VSmmu& vs : vsmmus_)
    if (!vs.destroyed) for_each_guest_vmid(vs, [&](uint16_t) { ++n; });
  return n;
}

void Smmuv3Driver::set_event_sink(ViommuHandle v, ViommuEventSink* sink, uint32_t viommu) {
  if (v == 0 || v > vsmmus_.size()) return;
  vsmmus_[v - 1].sink = sink;
  vsmmus_[v - 1].sink_id = viommu;
}

bool Smmuv3Driver::report_to_viommu(const EventWords& w, const EventRecord& e, uint32_t index) {
  // The EventIDs arm_smmu_handle_event handles (those the uAPI's iommu_vevent_arm_smmuv3
  // lists); a stall goes to IOPF, a stage-2 fault stays with the host.
  switch (e.id) {
    case EventId::C_BAD_STE: case EventId::F_STREAM_DISABLED: case EventId::C_BAD_SUBSTREAMID:
    case EventId::C_BAD_CD: case EventId::F_TRANSLATION: case EventId::F_ADDR_SIZE: case EventId::F_ACCESS:
    case EventId::F_PERMISSION:
      break;
    default:
      return false;
  }
  if (e.stall || e.s2) return false;
  // master->vmaster: the stream is attached to a vIOMMU's nested domain and has its vSID.
  auto st = streams_.find(e.sid);
  if (st == streams_.end() || !st->second.user_nested) return false;
  const auto* dom = static_cast<const SmmuDomain*>(domain(st->second.user_nested));
  if (!dom || !dom->viommu) return false;
  const VSmmu& vs = vsmmus_[dom->viommu - 1];
  if (!vs.sink) return false;
  for (const auto& [vsid, sid] : vs.vdevs) {
    if (sid != e.sid) continue;
    // arm_vmaster_report_event: the record as is, StreamID[63:32] of dword 0 the vSID.
    EventWords v = w;
    v[0] = common::deposit(v[0], 63, 32, vsid);
    return vs.sink->report_event(vs.sink_id, VeventqType::ArmSmmuv3, v.data(), sizeof v,
                                 smmu_.event_written_ps(index)) == Errno::Ok;
  }
  return false;
}

Errno Smmuv3Driver::set_vdevice(ViommuHandle v, uint64_t virt_id, std::optional<uint32_t> rid) {
  if (v == 0 || v > vsmmus_.size()) return Errno::Inval;
  VSmmu& vs = vsmmus_[v - 1];
  if (vs.vintf) {
    // tegra241_vintf_init_vsid / _destroy_vsid: a SID_REPLACE / SID_MATCH pair per vDEVICE.
    namespace q = smmuv3::cmdqv;
    const uint64_t base = q::VINTF(vs.vintf);
    if (rid) {
      if (virt_id > UINT32_MAX) return Errno::Inval;
      unsigned slot = 0;
      while (slot < cmdqv_->sids_per_vintf() &&
             std::any_of(vs.sid_slots.begin(), vs.sid_slots.end(), [slot](const auto& p) { return p.second == slot; }))
        ++slot;
      if (slot == cmdqv_->sids_per_vintf()) return Errno::NoSpc;
      cmdqv_write(base + q::VINTF_SID_REPLACE(slot), *rid);
      cmdqv_write(base + q::VINTF_SID_MATCH(slot), uint32_t(virt_id) << 1 | 1);
      vs.sid_slots[virt_id] = slot;
    } else if (auto it = vs.sid_slots.find(virt_id); it != vs.sid_slots.end()) {
      cmdqv_write(base + q::VINTF_SID_MATCH(it->second), 0);
      cmdqv_write(base + q::VINTF_SID_REPLACE(it->second), 0);
      vs.sid_slots.erase(it);
    }
  }
  if (rid) vs.vdevs[virt_id] = *rid;
  else vs.vdevs.erase(virt_id);
  return Errno::Ok;
}

void Smmuv3Driver::cmdqv_write(uint64_t offset, uint64_t value, unsigned bytes) {
  sc_core::wait(sc_core::sc_time(cfg_.timing.mmio_write_ns, sc_core::SC_NS));
  if (bytes == 8) cmdqv_->write64(offset, value);
  else cmdqv_->write32(offset, uint32_t(value));
}

Errno Smmuv3Driver::hw_queue_init_phys(ViommuHandle v, HwQueueType type, uint32_t index, uint64_t base_pa,
                                       uint64_t length) {
  // tegra241_vintf_alloc_lvcmdq_user
  if (!supports_hw_queue(v, type)) return Errno::OpNotSupp;
  VSmmu& vs = vsmmus_[v - 1];
  if (index >= vs.lvcmdqs.size()) return Errno::Inval;
  if (vs.lvcmdqs[index]) return Errno::Exist;
  if (index && !vs.lvcmdqs[index - 1]) return Errno::Io;   // mapped in ascending order
  const unsigned cmdqs = reg::IDR1_CMDQS::get(mmio_read32(reg::IDR1));
  const bool pow2 = length && !(length & (length - 1));
  if (!pow2 || length < 32 || length > (uint64_t(1) << (cmdqs + 4))) return Errno::Inval;
  namespace q = smmuv3::cmdqv;
  if ((base_pa & ~q::VCMDQ_ADDR::set(0, ~0ull)) || (base_pa & (length - 1))) return Errno::Inval;
  unsigned log2size = 0;
  while ((uint64_t(16) << log2size) < length) ++log2size;
  // tegra241_vcmdq_map_lvcmdq, then _hw_init_user: BASE only; the guest enables it.
  const unsigned g = vs.vintf * cmdqv_->lvcmdqs_per_vintf() + index;
  cmdqv_write(q::CMDQ_ALLOC(g), q::CMDQV_CMDQ_ALLOC_VINTF::set(0, vs.vintf) |
                                    q::CMDQV_CMDQ_ALLOC_LVCMDQ::set(0, index) | q::CMDQV_CMDQ_ALLOCATED::set(0, 1));
  cmdqv_write(q::VCMDQ_PAGE1(g) + q::VCMDQ_BASE, base_pa | log2size, 8);
  vs.lvcmdqs[index] = true;
  return Errno::Ok;
}

// IOMMU_DESTROY of a vIOMMU (its vDEVICEs, nested HWPTs and HW queues went first). With a
// VINTF, tegra241_cmdqv_destroy_vintf_user -> tegra241_cmdqv_remove_vintf:
// tegra241_vintf_hw_deinit (CONFIG 0: EN and the VMID cleared; the SID pairs cleared) and the
// VINTF index freed, so a later VM's vIOMMU can take it. The handle stays (handles are
// positions), unusable.
void Smmuv3Driver::viommu_destroy(ViommuHandle v) {
  if (v == 0 || v > vsmmus_.size()) return;
  VSmmu& vs = vsmmus_[v - 1];
  vs.destroyed = true;
  vs.sink = nullptr;
  if (!vs.vintf) return;
  namespace q = smmuv3::cmdqv;
  const uint64_t base = q::VINTF(vs.vintf);
  cmdqv_write(base + q::VINTF_CONFIG, 0);
  for (unsigned s = 0; s < cmdqv_->sids_per_vintf(); ++s) {
    cmdqv_write(base + q::VINTF_SID_MATCH(s), 0);
    cmdqv_write(base + q::VINTF_SID_REPLACE(s), 0);
  }
  vintf_used_[vs.vintf] = false;
  vs.vintf = 0;
  vs.sid_slots.clear();
}

void Smmuv3Driver::hw_queue_destroy(ViommuHandle v, uint32_t index) {
  // tegra241_vintf_destroy_lvcmdq_user: tegra241_vcmdq_hw_deinit, then unmap.
  if (!supports_hw_queue(v, HwQueueType::Tegra241Cmdqv)) return;
  VSmmu& vs = vsmmus_[v - 1];
  if (index >= vs.lvcmdqs.size() || !vs.lvcmdqs[index]) return;
  namespace q = smmuv3::cmdqv;
  const unsigned g = vs.vintf * cmdqv_->lvcmdqs_per_vintf() + index;
  cmdqv_write(q::VCMDQ_PAGE0(g) + q::VCMDQ_CONFIG, 0);
  cmdqv_write(q::VCMDQ_PAGE0(g) + q::VCMDQ_PROD, 0);
  cmdqv_write(q::VCMDQ_PAGE0(g) + q::VCMDQ_CONS, 0);
  cmdqv_write(q::VCMDQ_PAGE1(g) + q::VCMDQ_BASE, 0, 8);
  const uint32_t gerror = cmdqv_->read32(q::VCMDQ_PAGE0(g) + q::VCMDQ_GERROR);
  if (gerror != cmdqv_->read32(q::VCMDQ_PAGE0(g) + q::VCMDQ_GERRORN)) cmdqv_write(q::VCMDQ_PAGE0(g) + q::VCMDQ_GERRORN, gerror);
  cmdqv_write(q::CMDQ_ALLOC(g), q::CMDQV_CMDQ_ALLOC_VINTF::set(0, vs.vintf) | q::CMDQV_CMDQ_ALLOC_LVCMDQ::set(0, index));
  vs.lvcmdqs[index] = false;
}

Errno Smmuv3Driver::attach_nested(uint32_t rid, DomainId nested) {
  const Domain* d = domain(nested);
  if (!d || !d->user_managed) return Errno::Inval;
  const auto& dom = *static_cast<const SmmuDomain*>(d);
  // arm_smmu_attach_dev_nested: SSIDs in use (a host CD table with PASIDs) is EBUSY.
  auto it = streams_.find(rid);
  if (it != streams_.end() && it->second.has_cd && !it->second.cd_in_guest) {
    for (const auto& [ssid, dom_id] : it->second.by_ssid)
      if (ssid != 0 || it->second.bypass_no_pasid) return Errno::Busy;
  }
  // arm_smmu_attach_prepare_vmaster: the device must have a vDEVICE on the vIOMMU.
  bool has_vdev = false;
  for (const auto& [vsid, sid] : vsmmus_[dom.viommu - 1].vdevs) has_vdev |= sid == rid;
  if (!has_vdev) return Errno::NoEnt;
  return attach(rid, std::nullopt, nested).ok ? Errno::Ok : Errno::Inval;
}

SteWords Smmuv3Driver::nested_ste(uint32_t sid, const SmmuDomain& d) const {
  const SmmuDomain& parent = *static_cast<const SmmuDomain*>(domain(d.parent));
  StreamTableEntry ste;
  ste.valid = true;
  // A non-valid vSTE is relayed as an abort STE (so the guest can be told C_BAD_STE).
  const auto cfg = (d.vste[0] & kSte0V) ? SteConfig(common::extract(d.vste[0], 3, 1)) : SteConfig::Abort;
  if (cfg == SteConfig::Abort) return encode_ste(ste);   // arm_smmu_make_abort_ste
  ste = s2_ste(parent);
  ste.s2_vmid = d.vmid;   // the parent's, or the HWPT's own (per_nested_hwpt)
  if (cfg == SteConfig::Bypass) {   // the stage 2 alone
    if (ats_enabled(sid)) ste.eats = 1;
    return encode_ste(ste);
  }
  // arm_smmu_make_nested_cd_table_ste: the parent's S2 STE, Config = nested, the vSTE's
  // stage-1 fields, MEV.
  if (d.vste_ats && ats_enabled(sid)) ste.eats = 1;
  SteWords w = encode_ste(ste);
  w[0] = kSte0V | common::deposit(0, 3, 1, uint64_t(SteConfig::Nested)) | (d.vste[0] & ~kSte0Cfg);
  w[1] |= d.vste[1] | kSte1Mev;
  return w;
}

Errno Smmuv3Driver::convert_user_cmd(ViommuHandle v, CmdWords& c) const {
  const VSmmu& vs = vsmmus_.at(v - 1);
  switch (Opcode(c[0] & kCmd0Op)) {
    case Opcode::TlbiNsnhAll:
      c = cmd_tlbi_nh_all(vs.vmid);
      return Errno::Ok;
    case Opcode::TlbiNhVa:
    case Opcode::TlbiNhVaa:
    case Opcode::TlbiNhAll:
    case Opcode::TlbiNhAsid:
      c[0] = common::deposit(c[0], 47, 32, vs.vmid);
      return Errno::Ok;
    case Opcode::AtcInv:
    case Opcode::CfgiCd:
    case Opcode::CfgiCdAll: {
      auto it = vs.vdevs.find(common::extract(c[0], 63, 32));
      if (it == vs.vdevs.end()) return Errno::Io;   // arm_vsmmu_vsid_to_sid
      c[0] = common::deposit(c[0], 63, 32, it->second);
      return Errno::Ok;
    }
    default:
      return Errno::Io;
  }
}

Errno Smmuv3Driver::cache_invalidate(ViommuHandle v, InvalidateDataType type, const void* entries, uint32_t entry_len,
                                     uint32_t* entry_num) {
  const uint32_t n = *entry_num;
  *entry_num = 0;
  if (v == 0 || v > vsmmus_.size()) return Errno::Inval;
  if (type != InvalidateDataType::ArmSmmuv3) return Errno::Inval;
  if (n == 0) return Errno::Ok;   // a zero-length array only probes the type
  // iommu_copy_struct_from_full_user_array: an entry shorter than the struct is EINVAL.
  if (!entries || entry_len < sizeof(ViommuArmSmmuv3Invalidate)) return Errno::Inval;
  const auto* bytes = static_cast<const uint8_t*>(entries);
  std::vector<CmdWords>& block = user_block_;
  for (uint32_t done = 0; done < n;) {
    const uint32_t count = std::min(n - done, kUserBatch);
    block.clear();
    charge_cycles(cfg_.timing.op_overhead_cycles);
    for (uint32_t i = 0; i < count; ++i) {
      ViommuArmSmmuv3Invalidate e;
      std::copy_n(bytes + uint64_t(done + i) * entry_len, sizeof(e), reinterpret_cast<uint8_t*>(&e));
      CmdWords c{e.cmd[0], e.cmd[1]};
      // Sending an illegal command is a VMM bug: it fails its whole block.
      if (Errno err = convert_user_cmd(v, c); err != Errno::Ok) return err;
      switch (Opcode(c[0] & kCmd0Op)) {
        case Opcode::TlbiNhVa: case Opcode::TlbiNhVaa: case Opcode::TlbiNhAll: case Opcode::TlbiNhAsid:
          // The ASID's HWPT is unknown to the host: every VMID of the vIOMMU.
          for_each_guest_vmid(vsmmus_[v - 1], [&](uint16_t vmid) {
            block.push_back({common::deposit(c[0], 47, 32, vmid), c[1]});
          });
          break;
        default:
          block.push_back(c);
      }
    }
    // Nothing to issue (a TLBI before any nested HWPT, per_nested_hwpt): no lone CMD_SYNC.
    if (!block.empty() && !submit(block, "viommu_inv").ok) return Errno::Io;
    done += count;
    *entry_num = done;
  }
  return Errno::Ok;
}

}  // namespace iommusim::driver

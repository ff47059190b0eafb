#include "platforms/driver/vtd_driver.h"

#include <algorithm>
#include <cstdio>

#include "models/common/clock.h"
#include "models/pagetable/vtd_ss.h"
#include "models/pagetable/x86.h"

namespace iommusim::driver {

using namespace iommusim::vtd;
using common::to_ps;
using sc_core::sc_time_stamp;

namespace {
constexpr uint32_t kQiInUse = 0, kQiDone = 1;   // Linux QI_IN_USE / QI_DONE status words
constexpr uint16_t kPassThroughDid = 1;         // Linux FLPT_DEFAULT_DID
}  // namespace

std::string validate(const VtdDriverConfig& c) {
  if (auto e = validate(c.timing); !e.empty()) return "timing." + e;
  if (c.qi_qs > 7) return "qi_qs must be 0..7";
  if (c.pdts > 7) return "pdts must be 0..7";
  if (c.rid_pasid >> kPasidBits) return "rid_pasid must be below 2^20";
  return validate(c.memory);
}

VtdDriver::VtdDriver(sc_core::sc_module_name name, const VtdDriverConfig& cfg, ProgrammingInterface& iommu,
                     DriverMemoryRef memory)
    : DriverBase(name, cfg.timing, cfg.memory, memory), cfg_(cfg), iommu_(iommu),
      // 2^QS 4 KiB pages of 32-byte descriptors.
      iq_(common::IndexRing{12 + cfg.qi_qs - reg::iq_shift(true), false}, 32, *this, "queue space", "inv_wait") {
  iommu_.set_command_probe([this](const common::CommandTrace& t) { iq_.trace(t); });
  add_command_queue(iq_);
}

VtdDriver::~VtdDriver() = default;

void VtdDriver::write_gcmd(uint32_t extra) {
  mmio_write32(reg::GCMD, gcmd_ | extra);
  (void)mmio_read32(reg::GSTS);   // Linux IOMMU_WAIT_OP: the model completes at once
}

Status VtdDriver::init() {
  if (auto e = validate(cfg_); !e.empty()) return Status::fail("driver." + e);
  cap_ = reg::decode_cap(mmio_read64(reg::CAP));
  ecap_ = reg::decode_ecap(mmio_read64(reg::ECAP));
  if (!ecap_.smts || !ecap_.qi) return Status::fail("VT-d: scalable mode and queued invalidation are required");
  // Every PASID entry this driver writes sets SRE; Linux refuses that without ECAP.SRS.
  if (!ecap_.srs) return Status::fail("VT-d: ECAP.SRS clear, but the PASID entries need SRE");
  if (!(cap_.sagaw & 0x4)) return Status::fail("VT-d: CAP.SAGAW lacks 4-level second stage");
  if ((cfg_.rid_pasid >> ecap_.pasid_bits()) != 0) return Status::fail("driver.vtd.rid_pasid beyond ECAP.PSS");

  root_ = alloc_host(kRootEntries * kRootEntryBytes, 4096);
  const uint64_t iq_base = alloc_host(uint64_t(4096) << cfg_.qi_qs, 4096);
  status_base_ = alloc_host(4 * uint64_t(iq_.ring().entries()), 64);
  if (!root_ || !iq_base || !status_base_) return Status::fail("driver.table_pool_bytes too small for the queue");

  // Queued invalidation first (Linux dmar_enable_qi), then the root table.
  iq_.reset(iq_base);
  uint64_t iqa = 0;
  reg::IQA_IQA::put(iqa, iq_base >> 12);
  reg::IQA_DW::put(iqa, 1);
  reg::IQA_QS::put(iqa, cfg_.qi_qs);
  mmio_write64(reg::IQT, 0);
  mmio_write64(reg::IQA, iqa);
  gcmd_ |= uint32_t(reg::GCMD_QIE::set(0, 1));
  write_gcmd(0);
  uint64_t rta = root_;
  reg::RTADDR_TTM::put(rta, reg::TTM_SCALABLE);
  mmio_write64(reg::RTADDR, rta);
  write_gcmd(uint32_t(reg::GCMD_SRTP::set(0, 1)));
  if (!reg::GSTS_RTPS::get(mmio_read32(reg::GSTS))) return Status::fail("VT-d: root table pointer not latched");
  // iommu_set_root_entry: global context, PASID-cache and IOTLB invalidation.
  if (Status s = submit({desc_context_cache(CcGran::Global), desc_pasid_cache(PcGran::Global, 0),
                         iotlb_desc(IotlbGran::Global, 0)}, "init"); !s.ok)
    return s;
  gcmd_ |= uint32_t(reg::GCMD_TE::set(0, 1));
  write_gcmd(0);
  return {};
}

uint16_t VtdDriver::did_of(DomainId d) const { return static_cast<const VtdDomain*>(domain(d))->did; }

std::optional<uint16_t> VtdDriver::alloc_did() {
  const unsigned did_bits = cap_.did_bits();
  if (did_bits < 16 && next_did_ >> did_bits) return std::nullopt;
  return next_did_++;
}

std::unique_ptr<DriverBase::Domain> VtdDriver::make_domain(DomainKind kind, const Domain*, std::string* why) {
  const std::optional<uint16_t> did = alloc_did();
  if (!did) { if (why) *why = "VT-d: out of domain IDs (CAP.ND)"; return nullptr; }
  auto dom = std::make_unique<VtdDomain>();
  dom->did = *did;
  const unsigned haw = cap_.mgaw_bits;
  if (kind == DomainKind::Stage2) {
    dom->format = std::make_unique<pagetable::VtdSecondStageFormat>(
        pagetable::VtdSecondStageConfig{4, bool(cap_.sllps & 1), bool(cap_.sllps & 2), haw});
  } else {
    dom->format = std::make_unique<pagetable::X86Format>(pagetable::X86PagingConfig{4, cap_.fl1gp, haw});
  }
  return dom;
}

Status VtdDriver::ensure_device(uint32_t rid, Device*& dev) {
  const uint8_t bus = sid_bus(uint16_t(rid)), devfn = sid_devfn(uint16_t(rid));
  auto& tables = context_tables_[bus];
  const bool upper = sm_context_in_upper(devfn);
  if (!tables[upper]) {
    tables[upper] = alloc_host(4096, 4096);
    if (!tables[upper]) return Status::fail("table pool exhausted (context table)");
    RootEntry re;
    re.lower_present = tables[0] != 0; re.lower_ctp = tables[0];
    re.upper_present = tables[1] != 0; re.upper_ctp = tables[1];
    const RootWords w = encode_root_entry(re);
    mem_.write(root_ + root_entry_offset(bus), w.data(), 16);
    charge_descriptor_writes(2);
  }
  auto it = devices_.find(rid);
  if (it == devices_.end()) {
    Device d;
    d.pasid_dir = alloc_host(uint64_t(pasid_dir_entries(uint8_t(cfg_.pdts))) * kPasidDirEntryBytes, 4096);
    if (!d.pasid_dir) return Status::fail("table pool exhausted (PASID directory)");
    SmContextEntry ce;
    ce.present = true; ce.paside = true; ce.pdts = uint8_t(cfg_.pdts); ce.pasid_dir_ptr = d.pasid_dir;
    ce.rid_pasid = cfg_.rid_pasid;
    ce.dte = ats_enabled(rid);   // Linux context_set_sm_dte when the device's ATS is enabled
    const SmContextWords w = encode_sm_context(ce);
    mem_.write(tables[upper] + sm_context_entry_offset(devfn), w.data(), 32);
    charge_descriptor_writes(4);
    it = devices_.emplace(rid, std::move(d)).first;
    // device_pasid_table_setup: a unit that caches non-present entries (CAP.CM, as an
    // emulated one advertises so that its VMM sees every new entry) caches them under DID
    // 0: device-selective context-cache, then domain-selective IOTLB of DID 0, each
    // submitted and waited for on its own.
    if (cap_.cm) {
      if (Status s = submit({desc_context_cache(CcGran::Device, 0, uint16_t(rid))}, "attach"); !s.ok) return s;
      if (Status s = submit({iotlb_desc(IotlbGran::Domain, 0)}, "attach"); !s.ok) return s;
    }
  }
  dev = &it->second;
  return {};
}

uint64_t VtdDriver::pasid_entry_address(uint32_t rid, uint32_t pasid) const {
  auto it = devices_.find(rid);
  if (it == devices_.end()) return 0;
  auto t = it->second.pasid_tables.find(pasid_dir_index(pasid));
  return t == it->second.pasid_tables.end() ? 0 : t->second + pasid_entry_offset(pasid);
}

Status VtdDriver::set_pasid_entry(uint32_t rid, uint32_t pasid, const PasidEntry& pe, DomainId d) {
  if (rid > 0xFFFF) return Status::fail("RID " + std::to_string(rid) + " is not a 16-bit bus:devfn");
  if ((pasid >> ecap_.pasid_bits()) != 0 || !pasid_within_dir(pasid, uint8_t(cfg_.pdts)))
    return Status::fail("PASID " + std::to_string(pasid) + " beyond the PASID directory (driver.vtd.pdts)");
  charge_cycles(cfg_.timing.op_overhead_cycles);
  Device* dev = nullptr;
  if (Status s = ensure_device(rid, dev); !s.ok) return s;
  const uint32_t di = pasid_dir_index(pasid);
  if (!dev->pasid_tables.count(di)) {
    const uint64_t t = alloc_host(kPasidEntriesPerTable * kPasidEntryBytes, 4096);
    if (!t) return Status::fail("table pool exhausted (PASID table)");
    dev->pasid_tables[di] = t;
    PasidDirEntry de;
    de.present = true; de.pasid_table_ptr = t;
    mem_.write64(dev->pasid_dir + pasid_dir_entry_offset(pasid), encode_pasid_dir_entry(de));
    charge_descriptor_writes(1);
  }
  const uint64_t addr = dev->pasid_tables[di] + pasid_entry_offset(pasid);
  std::vector<DescWords> descs;
  if (auto old = dev->entries.find(pasid); old != dev->entries.end()) {
    // intel_pasid_tear_down_entry: clear, PASID-cache, then P_IOTLB (FS/PT) or IOTLB DSI.
    const PasidEntryWords zero{};
    mem_.write(addr, zero.data(), 64);
    charge_descriptor_writes(1);
    const PasidEntry& o = old->second;
    descs.push_back(desc_pasid_cache(PcGran::Pasid, o.did, pasid));
    if (o.pgtt == Pgtt::FirstStage || o.pgtt == Pgtt::PassThrough)
      descs.push_back(desc_pasid_iotlb(PiotlbGran::Pasid, o.did, pasid));
    else
      descs.push_back(iotlb_desc(IotlbGran::Domain, o.did));
    add_dev_tlb(rid, pasid, 0, kDevTlbAll, descs);   // Linux devtlb_invalidation_with_pasid
    if (auto od = dev->by_pasid.find(pasid); od != dev->by_pasid.end() && od->second != 0) {
      Status st;
      if (VtdDomain* prev = vtd_domain(od->second, st)) prev->attached.erase({rid, pasid});
    }
  }
  if (!descs.empty())
    if (Status s = submit(descs, "attach"); !s.ok) return s;
  if (!pe.present) {   // detached: the cleared entry stays
    dev->entries.erase(pasid);
    dev->by_pasid.erase(pasid);
    return {};
  }
  const PasidEntryWords w = encode_pasid_entry(pe);
  mem_.write(addr, w.data(), 64);
  charge_descriptor_writes(8);
  dev->entries[pasid] = pe;
  dev->by_pasid[pasid] = d;
  // pasid_flush_caches: with CAP.CM the unit may have cached the non-present entry:
  // PASID-selective PASID-cache, then the PASID's P_IOTLB, each waited for on its own; the
  // attachment is in effect from the last one. With CAP.CM = 0 the hardware never cached
  // it (Linux flushes the write buffer only when CAP.RWBF).
  if (cap_.cm) {
    if (Status s = submit({desc_pasid_cache(PcGran::Pasid, pe.did, pasid)}, "attach"); !s.ok) return s;
    return submit({desc_pasid_iotlb(PiotlbGran::Pasid, pe.did, pasid)}, "attach");
  }
  // Replacing an entry: the teardown's barrier came before this write, so the attachment
  // is in effect only from now.
  if (!descs.empty()) takes_effect_now();
  return {};
}

Status VtdDriver::entry_pasid(std::optional<uint32_t> pasid, uint32_t* entry) const {
  if (pasid && *pasid == cfg_.rid_pasid && cfg_.rid_pasid != 0)
    return Status::fail("PASID " + std::to_string(*pasid) + " is the RID_PASID (driver.vtd.rid_pasid): attach the RID");
  *entry = pasid.value_or(cfg_.rid_pasid);
  return {};
}

Status VtdDriver::detach_device(uint32_t rid, std::optional<uint32_t> pasid) {
  uint32_t p = 0;
  if (Status s = entry_pasid(pasid, &p); !s.ok) return s;
  PasidEntry none;   // P=0
  return set_pasid_entry(rid, p, none, 0);
}

Status VtdDriver::attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId d) {
  Status st;
  VtdDomain* dom = vtd_domain(d, st);
  if (!dom) return st;
  PasidEntry pe;
  pe.present = true;
  pe.did = dom->did;
  pe.aw = 2;   // Linux writes the AGAW for every PGTT
  switch (dom->kind) {
    case DomainKind::Stage1:
      pe.pgtt = Pgtt::FirstStage; pe.fsptptr = dom->tables->root(); pe.sre = true;
      break;
    case DomainKind::Stage2:
      pe.pgtt = Pgtt::SecondStage; pe.ssptptr = dom->tables->root();
      break;
    case DomainKind::Nested: {
      const Domain* parent = domain(dom->parent);
      pe.pgtt = Pgtt::Nested; pe.ssptptr = parent->tables->root();
      if (!dom->user_managed) {
        pe.fsptptr = dom->tables->root(); pe.sre = true;
        break;
      }
      // pasid_pte_config_nestd: the guest's first stage as its iommu_hwpt_vtd_s1 says
      // (pasid_set_flptr keeps the page-aligned part; WPE only with SRE).
      const HwptVtdS1& s1 = dom->s1;
      pe.fsptptr = s1.pgtbl_addr & ~(kPageSize - 1);
      pe.fspm = s1.addr_width == 57 ? 1 : 0;
      pe.sre = s1.flags & kVtdS1Sre;
      pe.wpe = pe.sre && (s1.flags & kVtdS1Wpe);
      pe.eafe = s1.flags & kVtdS1Eafe;
      pe.pwsnp = ecap_.smpwcs;
      break;
    }
  }
  uint32_t p = 0;
  if (Status s = entry_pasid(pasid, &p); !s.ok) return s;
  if (Status s = set_pasid_entry(rid, p, pe, d); !s.ok) return s;
  dom->attached.insert({rid, p});
  return {};
}

Status VtdDriver::attach_pass_through(uint32_t rid, std::optional<uint32_t> pasid) {
  if (!ecap_.pt) return Status::fail("VT-d: ECAP.PT not set");
  PasidEntry pe;
  pe.present = true; pe.did = kPassThroughDid; pe.aw = 2; pe.pgtt = Pgtt::PassThrough; pe.sre = true;
  uint32_t p = 0;
  if (Status s = entry_pasid(pasid, &p); !s.ok) return s;
  return set_pasid_entry(rid, p, pe, 0);
}

std::vector<uint32_t> VtdDriver::pasids_of(const VtdDomain& d) const {
  std::vector<uint32_t> v;
  for (const auto& a : d.attached) v.push_back(a.second);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

void VtdDriver::range_descs(const VtdDomain& dom, uint64_t iova, uint64_t bytes, bool leaf,
                            std::vector<DescWords>& out) {
  const PsiPlan plan = plan_psi(iova, bytes, cap_.mamv, cap_.psi);
  if (dom.kind == DomainKind::Stage2) {
    out.push_back(plan.fallback ? iotlb_desc(IotlbGran::Domain, dom.did)
                                : iotlb_desc(IotlbGran::Page, dom.did, plan.addr, plan.am, leaf));
    return;
  }
  for (uint32_t pasid : pasids_of(dom))
    out.push_back(plan.fallback ? desc_pasid_iotlb(PiotlbGran::Pasid, dom.did, pasid)
                                : desc_pasid_iotlb(PiotlbGran::Page, dom.did, pasid, plan.addr, plan.am, leaf));
}

// Linux qi_flush_dev_iotlb / qi_flush_dev_iotlb_pasid: the device-TLB invalidation of one
// attached (rid, pasid) with ATS enabled, 4 KB << size_order from addr.
void VtdDriver::add_dev_tlb(uint32_t rid, uint32_t pasid, uint64_t addr, unsigned size_order,
                            std::vector<DescWords>& out) const {
  if (!device_invalidations() || !ats_enabled(rid)) return;
  if (size_order >= kDevTlbAll) addr = 0;
  if (pasid == cfg_.rid_pasid) out.push_back(desc_dev_tlb(uint16_t(rid), 0, 0, addr, size_order));
  else out.push_back(desc_pasid_dev_tlb(uint16_t(rid), 0, pasid, 0, addr, size_order));
}

// A nested domain on `parent` whose tags a stage-2 change must invalidate. A user-managed
// one (a guest's HWPT_NESTED) that no device uses any more has none: its entries were
// flushed when its last PASID entry was torn down, and Linux drops a domain's cache tags
// at detach; the VMM's destroyed HWPTs would otherwise multiply every host invalidation.
bool VtdDriver::nested_child_tagged(const Domain* c, DomainId parent) const {
  if (!c || c->kind != DomainKind::Nested || c->parent != parent) return false;
  return !c->user_managed || !static_cast<const VtdDomain*>(c)->attached.empty();
}

// Linux iommu_flush_dev_iotlb: every ATS device of the domain (and, for a nest parent, of
// the nested domains on it, in full).
void VtdDriver::dev_tlb_descs(DomainId d, uint64_t iova, uint64_t bytes, std::vector<DescWords>& out) {
  if (!device_invalidations()) return;
  unsigned order = kDevTlbAll;
  uint64_t addr = 0;
  if (bytes) {
    const PsiPlan plan = plan_psi(iova, bytes, 63, true);
    order = plan.fallback ? kDevTlbAll : plan.am;
    addr = plan.addr;
  }
  Status st;
  const VtdDomain* dom = vtd_domain(d, st);
  if (!dom) return;
  for (const auto& [rid, pasid] : dom->attached) add_dev_tlb(rid, pasid, addr, order, out);
  if (dom->kind == DomainKind::Stage2 && dom->nest_parent)
    for (size_t i = 1; i <= domain_count(); ++i) {
      const Domain* c = domain(DomainId(i));
      if (nested_child_tagged(c, d))
        for (const auto& [rid, pasid] : static_cast<const VtdDomain*>(c)->attached)
          add_dev_tlb(rid, pasid, 0, kDevTlbAll, out);
    }
}

Status VtdDriver::invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) {
  Status st;
  VtdDomain* dom = vtd_domain(d, st);
  if (!dom) return st;
  if (dom->user_managed) return Status::fail("a user-managed domain is invalidated by its guest (cache_invalidate_hwpt)");
  if (bytes == 0) return Status::fail("invalidate_range: empty range");
  std::vector<DescWords> descs;
  range_descs(*dom, iova, bytes, leaf, descs);
  if (dom->kind == DomainKind::Stage2 && dom->nest_parent) {
    // NESTING_IOTLB tags: the same GPA range on each nested DID (combined entries).
    for (size_t i = 1; i <= domain_count(); ++i) {
      const Domain* c = domain(DomainId(i));
      if (nested_child_tagged(c, d)) {
        VtdDomain as_s2;
        as_s2.kind = DomainKind::Stage2;
        as_s2.did = static_cast<const VtdDomain*>(c)->did;
        range_descs(as_s2, iova, bytes, leaf, descs);
      }
    }
  }
  dev_tlb_descs(d, iova, bytes, descs);
  return submit(descs, take_pending_op(leaf ? "invalidate_range_leaf" : "invalidate_range"));
}

Status VtdDriver::invalidate_domain(DomainId d) {
  Status st;
  VtdDomain* dom = vtd_domain(d, st);
  if (!dom) return st;
  if (dom->user_managed) return Status::fail("a user-managed domain is invalidated by its guest (cache_invalidate_hwpt)");
  std::vector<DescWords> descs;
  if (dom->kind == DomainKind::Stage2) {
    descs.push_back(iotlb_desc(IotlbGran::Domain, dom->did));
    if (dom->nest_parent)
      for (size_t i = 1; i <= domain_count(); ++i) {
        const Domain* c = domain(DomainId(i));
        if (nested_child_tagged(c, d))
          descs.push_back(iotlb_desc(IotlbGran::Domain, static_cast<const VtdDomain*>(c)->did));
      }
  } else {
    for (uint32_t pasid : pasids_of(*dom)) descs.push_back(desc_pasid_iotlb(PiotlbGran::Pasid, dom->did, pasid));
  }
  dev_tlb_descs(d, 0, 0, descs);
  return submit(descs, "invalidate_domain");
}

Status VtdDriver::sync() { return submit({}, "sync"); }

Status VtdDriver::submit(const std::vector<DescWords>& descs, const std::string& op) {
  static_assert(sizeof(DescWords) == 32, "descriptors are stored back to back");
  return submit_batch(iq_, descs.empty() ? nullptr : descs.front().data(), descs.size(), op);
}

void VtdDriver::doorbell(uint32_t producer) { mmio_write64(reg::IQT, reg::iq_reg_value(producer, true)); }

uint32_t VtdDriver::read_consumer() { return uint32_t(reg::iq_index(mmio_read64(reg::IQH), true)); }

void VtdDriver::barrier_entry(uint32_t producer, uint64_t, uint64_t* words) {
  // qi_submit_sync: the wait descriptor writes QI_DONE into this slot's status word.
  wait_slot_ = producer;
  const uint64_t status = status_base_ + 4 * uint64_t(producer);
  mem_.write32(status, kQiInUse);
  const DescWords w = desc_inv_wait(WaitFlags{false, true, true, false}, kQiDone, status);
  std::copy(w.begin(), w.end(), words);
}

bool VtdDriver::completed(uint32_t, uint32_t) {
  charge_cycles(cfg_.timing.poll_read_cycles);
  return mem_.read32(status_base_ + 4 * uint64_t(wait_slot_)) == kQiDone;
}

// qi_submit_sync calls qi_check_fault, an FSTS read, on every spin of its loop.
Status VtdDriver::check_error(unsigned) {
  const uint32_t fsts = mmio_read32(reg::FSTS);
  if (reg::FSTS_IQE::get(fsts)) {
    const uint64_t bad = reg::iq_index(mmio_read64(reg::IQH), true);
    const DescWords repl = desc_inv_wait(WaitFlags{}, 0, 0);
    mem_.write(iq_.slot_address(uint32_t(bad)), repl.data(), 32);
    charge_cycles(cfg_.timing.command_write_cycles);
    mmio_write32(reg::FSTS, uint32_t(reg::FSTS_IQE::set(0, 1)));
    ++errors_recovered_;
  } else if (reg::FSTS_ITE::get(fsts)) {
    // Linux qi_check_fault: the wait descriptor was aborted; clear ITE so the queue runs
    // again, and report the failure rather than retry (a device that never answers would
    // loop forever).
    const std::string regs = registers();
    const uint64_t iqer = mmio_read64(reg::IQER);
    mmio_write32(reg::FSTS, uint32_t(reg::FSTS_ITE::set(0, 1)));
    ++errors_recovered_;
    return Status::fail("device-TLB invalidation not completed: FSTS.ITE set (device " +
                        hex(reg::IQER_ITESID::get(iqer)) + " did not answer within iommu.vtd.devtlb_inv_timeout_ns; " +
                        regs + ")");
  } else if (reg::FSTS_ICE::get(fsts)) {
    return Status::fail("VT-d queue error FSTS=" + hex(fsts));
  }
  return {};
}

std::string VtdDriver::registers() {
  return "IQH=" + hex(iommu_.peek_register(reg::IQH)) + ", IQT=" + hex(iommu_.peek_register(reg::IQT)) +
         ", FSTS=" + hex(iommu_.peek_register(reg::FSTS, 4));
}

unsigned VtdDriver::drain_faults() {
  const uint32_t fsts = mmio_read32(reg::FSTS);
  unsigned n = 0;
  const uint64_t fro = cap_.fault_record_offset();
  const unsigned nfr = cap_.num_fault_records;
  if (reg::FSTS_PPF::get(fsts)) {
    unsigned idx = unsigned(reg::FSTS_FRI::get(fsts));
    for (unsigned k = 0; k < nfr; ++k) {
      const uint64_t off = fro + uint64_t(idx) * 16;
      const uint64_t hi = mmio_read64(off + 8);
      if (!(hi >> 63)) break;
      const uint64_t lo = mmio_read64(off);
      const FaultRecord r = decode_frcd({lo, hi});
      if (report_to_vm({lo, hi}, r, idx)) {
        events_reported_.inc();
      } else {
        ++faults_by_reason_[r.reason];
        if (fault_log_.size() < 1024) fault_log_.push_back(r);
      }
      mmio_write32(off + 12, 1u << 31);   // clear F
      events_consumed_.inc();
      ++n;
      idx = (idx + 1) % nfr;
    }
  }
  if (reg::FSTS_PFO::get(fsts)) fault_overflows_.inc();
  if (fsts & 0x3) mmio_write32(reg::FSTS, uint32_t(fsts & 0x3));   // PFO | PPF
  return n;
}

namespace {
// The fault reasons of a first-stage walk or check (Intel VT-d spec §7.1.3, scalable mode;
// Linux dma_remap_sm_fault_reasons): FS entry access / not present / reserved / FSPTPTR /
// address beyond MGAW, non-canonical input, U/S, execute, input beyond the DMA width, and
// the write / read denials. The spec does not say which stage denied a write or read
// (0x85, 0x86); a VMM maps guest RAM read-write, so a denial is the guest's own stage 1
// (a read-only IOAS area would be reported to the guest too: a documented limitation).
// 0x75-0x77 are the second stage refusing a first-stage table (host), 0x78-0x7C and 0x84
// the second stage itself.
bool first_stage_reason(uint8_t r) {
  return (r >= 0x70 && r <= 0x74) || (r >= 0x80 && r <= 0x83) || r == 0x85 || r == 0x86;
}
}  // namespace

void VtdDriver::set_parent_event_sink(DomainId parent, ViommuEventSink* sink, uint32_t owner) {
  if (sink) parent_sinks_[parent] = EventSink{sink, owner};
  else parent_sinks_.erase(parent);
}

bool VtdDriver::report_to_vm(const FrcdWords& w, const FaultRecord& r, unsigned index) {
  if (parent_sinks_.empty() || !first_stage_reason(r.reason)) return false;
  auto dev = devices_.find(r.sid);
  if (dev == devices_.end()) return false;
  auto at = dev->second.by_pasid.find(r.pasid_present ? r.pasid : cfg_.rid_pasid);
  if (at == dev->second.by_pasid.end()) return false;
  const Domain* d = domain(at->second);
  if (!d || !d->user_managed) return false;
  auto sink = parent_sinks_.find(d->parent);
  if (sink == parent_sinks_.end()) return false;
  // The record as the hardware wrote it (the RID is the VMM's to map: VT-d has no vDEVICE).
  return sink->second.sink->report_event(sink->second.owner, VeventqType::VtdExt, w.data(), sizeof w,
                                         iommu_.event_written_ps(index)) == Errno::Ok;
}

void VtdDriver::register_stats(common::StatRegistry& reg, const std::string& p) const {
  DriverBase::register_stats(reg, p);
  reg.add(p + ".fault_overflows", fault_overflows_, "count", "FSTS.PFO seen (fault records were lost)");
}

// ---- Nesting (NestingOps), as Linux intel/nested.c and pasid.c ----

namespace {
// ADDR_WIDTH_4LEVEL / ADDR_WIDTH_5LEVEL: the stage-1 address widths Linux accepts.
constexpr uint32_t kAddrWidth4Level = 48, kAddrWidth5Level = 57;
// Pages at and above this make a range reach past 2^64: the whole address space.
constexpr uint64_t kAllPages = uint64_t{1} << (64 - kPageShift - 1);
}  // namespace

Errno VtdDriver::alloc_nested_on_parent(DomainId parent, uint32_t flags, const UserData& data, DomainId* out) {
  // intel_iommu_domain_alloc_nested: no nesting (nested_supported) or a flag other than
  // IOMMU_HWPT_ALLOC_PASID is EOPNOTSUPP; another data type EOPNOTSUPP; a parent that is
  // not a nest parent EINVAL; then the struct's copy.
  if (!ecap_.nest || (flags & ~kHwptAllocPasid)) return Errno::OpNotSupp;
  if (data.type != HwptDataType::VtdS1) return Errno::OpNotSupp;
  const Domain* p = domain(parent);
  if (!p || p->kind != DomainKind::Stage2 || p->user_managed) return Errno::Inval;
  auto dom = std::make_unique<VtdDomain>();
  if (Errno e = copy_struct_from_user(&dom->s1, data.data, data.len); e != Errno::Ok) return e;
  // The nested domain's own DID (Linux domain_attach_iommu gives it one per IOMMU at its
  // first attach; this driver has one IOMMU and numbers DIDs at creation, as for every domain).
  const std::optional<uint16_t> did = alloc_did();
  if (!did) return Errno::NoSpc;
  dom->did = *did;
  charge_cycles(cfg_.timing.op_overhead_cycles);
  *out = add_user_domain(std::move(dom), parent);
  return Errno::Ok;
}

Errno VtdDriver::check_nested_setup(DomainId nested) const {
  const Domain* d = domain(nested);
  if (!d || !d->user_managed) return Errno::Inval;
  const HwptVtdS1& s1 = static_cast<const VtdDomain*>(d)->s1;
  // intel_pasid_setup_nested: an address width other than 48, or 57 without CAP.FL5LP;
  // SRE without ECAP.SRS; EAFE without ECAP.EAFS. Linux checks after blocking the device
  // and its core then re-attaches the old domain; here the checks come first, so a
  // refused attach leaves the old entry as it was.
  if (s1.addr_width != kAddrWidth4Level && !(s1.addr_width == kAddrWidth5Level && cap_.fl5lp)) return Errno::Inval;
  if ((s1.flags & kVtdS1Sre) && !ecap_.srs) return Errno::Inval;
  if ((s1.flags & kVtdS1Eafe) && !ecap_.eafs) return Errno::Inval;
  return Errno::Ok;
}

Errno VtdDriver::attach_nested(uint32_t rid, DomainId nested) {
  if (Errno e = check_nested_setup(nested); e != Errno::Ok) return e;
  return attach(rid, std::nullopt, nested).ok ? Errno::Ok : Errno::Inval;
}

// intel_nested_set_dev_pasid: no PASID support (ECAP.PASID) is EOPNOTSUPP; then the same
// PASID-entry setup as the RID's (domain_setup_nested), in that PASID's own entry.
Errno VtdDriver::attach_nested_pasid(uint32_t rid, uint32_t pasid, DomainId nested) {
  if (!ecap_.pasid) return Errno::OpNotSupp;
  if (Errno e = check_nested_setup(nested); e != Errno::Ok) return e;
  return attach(rid, pasid, nested).ok ? Errno::Ok : Errno::Inval;
}

Errno VtdDriver::cache_invalidate_hwpt(DomainId nested, InvalidateDataType type, const void* entries,
                                       uint32_t entry_len, uint32_t* entry_num) {
  const uint32_t n = *entry_num;
  *entry_num = 0;
  Status st;
  VtdDomain* dom = vtd_domain(nested, st);
  if (!dom || !dom->user_managed) return Errno::Inval;
  // intel_nested_cache_invalidate_user: another type is EINVAL before any entry.
  if (type != InvalidateDataType::VtdS1) return Errno::Inval;
  const auto* bytes = static_cast<const uint8_t*>(entries);
  std::vector<DescWords> descs;
  for (uint32_t i = 0; i < n; ++i) {
    HwptInvalidateVtdS1 e;
    if (Errno err = copy_struct_from_user(&e, bytes + uint64_t(i) * entry_len, entry_len); err != Errno::Ok)
      return err;
    if ((e.flags & ~kVtdInvFlagsLeaf) || e.reserved) return Errno::OpNotSupp;
    if ((e.addr & (kPageSize - 1)) || (e.npages == ~uint64_t{0} && e.addr)) return Errno::Inval;
    // cache_tag_flush_range over the nested domain's tags: P_IOTLB (DID, PASID) per
    // attached PASID (intel_domain_use_piotlb) and the ATS devices' dev-TLBs, in one batch
    // with its inv_wait. npages 0 (Linux computes an end before its start) issues nothing.
    charge_cycles(cfg_.timing.op_overhead_cycles);
    if (e.npages) {
      const uint64_t size = e.npages >= kAllPages ? kFlushAll : e.npages << kPageShift;
      descs.clear();
      range_descs(*dom, e.addr, size, e.flags & kVtdInvFlagsLeaf, descs);
      dev_tlb_descs(nested, e.addr, size, descs);
      // qi_batch_flush_descs: an empty batch (nothing attached) is not submitted.
      if (!descs.empty() && !submit(descs, "hwpt_invalidate").ok) return Errno::Io;
    }
    *entry_num = i + 1;
  }
  return Errno::Ok;
}

}  // namespace iommusim::driver

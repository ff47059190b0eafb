#include "platforms/driver/amdvi_driver.h"

#include <algorithm>
#include <cstdio>

#include "models/amdvi/registers.h"
#include "models/amdvi/structures.h"
#include "models/common/bits.h"
#include "models/common/clock.h"
#include "models/common/queue_ring.h"
#include "models/pagetable/amd_v1.h"
#include "models/pagetable/x86.h"

namespace iommusim::driver {

using namespace iommusim::amdvi;
using common::to_ps;
using sc_core::sc_time_stamp;

namespace {
constexpr unsigned kHostMode = 4;   // v1 4-level host tables (48-bit IOVA/GPA)
}  // namespace

std::string validate(const AmdViDriverConfig& c) {
  if (auto e = validate(c.timing); !e.empty()) return "timing." + e;
  if (c.cmd_buf_log2 < reg::kMinLogLen || c.cmd_buf_log2 > reg::kMaxLogLen) return "cmd_buf_log2 must be 8..15";
  if (c.evt_log_log2 < reg::kMinLogLen || c.evt_log_log2 > reg::kMaxLogLen) return "evt_log_log2 must be 8..15";
  if (c.device_table_entries < 1 || c.device_table_entries > 65536) return "device_table_entries must be 1..65536";
  if (c.glx > 2) return "glx must be 0..2";
  if (c.inv_timeout > 6) return "inv_timeout must be 0..6";
  return validate(c.memory);
}

AmdViDriver::AmdViDriver(sc_core::sc_module_name name, const AmdViDriverConfig& cfg, ProgrammingInterface& iommu,
                         DriverMemoryRef memory)
    : DriverBase(name, cfg.timing, cfg.memory, memory), cfg_(cfg), iommu_(iommu),
      cmdbuf_(common::IndexRing{cfg.cmd_buf_log2, false}, unsigned(reg::kEntryBytes), *this, "command buffer space",
              "COMPLETION_WAIT") {
  iommu_.set_command_probe([this](const common::CommandTrace& t) { cmdbuf_.trace(t); });
  add_command_queue(cmdbuf_);
}

AmdViDriver::~AmdViDriver() = default;

Status AmdViDriver::init() {
  if (auto e = validate(cfg_); !e.empty()) return Status::fail("driver." + e);
  caps_ = decode_efr(mmio_read64(reg::EFR));
  if (caps_.host_levels() < kHostMode) return Status::fail("EFR.HATS: 4-level host tables not supported");

  // Device table: whole 4 KB pages of 128 DTEs; every entry starts V=1 TV=1 Mode 0 with
  // IR=IW=0, which blocks DMA (Linux init_device_table_dma).
  const uint64_t dt_bytes = (uint64_t(cfg_.device_table_entries) * 32 + 4095) & ~uint64_t{4095};
  dte_count_ = unsigned(dt_bytes / 32);
  dev_table_ = alloc_host(dt_bytes, 4096);
  evt_bytes_ = reg::kEntryBytes << cfg_.evt_log_log2;
  const uint64_t cmd_base = alloc_host(reg::kEntryBytes << cfg_.cmd_buf_log2, 4096);
  evt_base_ = alloc_host(evt_bytes_, 4096);
  sem_addr_ = alloc_host(8, 8);
  if (!dev_table_ || !cmd_base || !evt_base_ || !sem_addr_)
    return Status::fail("driver.table_pool_bytes too small for the device table and logs");
  DeviceTableEntry blocked;
  blocked.valid = blocked.tv = true;
  const DteWords bw = encode_dte(blocked);
  for (unsigned i = 0; i < dte_count_; ++i) mem_.write(dte_address(i), bw.data(), 32);
  charge_descriptor_writes(uint64_t(dte_count_) * 4);

  ctrl_ = 0;
  mmio_write64(reg::CONTROL, ctrl_);
  mmio_write64(reg::DEV_TABLE_BASE, dev_table_ | reg::dev_table_size_field(dt_bytes));
  mmio_write64(reg::CMD_BUF_BASE, cmd_base | (uint64_t(cfg_.cmd_buf_log2) << 56));
  mmio_write64(reg::EVT_LOG_BASE, evt_base_ | (uint64_t(cfg_.evt_log_log2) << 56));
  mmio_write64(reg::CMD_BUF_HEAD, 0);
  mmio_write64(reg::CMD_BUF_TAIL, 0);
  mmio_write64(reg::EVT_LOG_HEAD, 0);
  mmio_write64(reg::EVT_LOG_TAIL, 0);
  cmdbuf_.reset(cmd_base);
  evt_head_ = 0;
  ctrl_ = reg::CTRL_CMD_BUF_EN::set(ctrl_, 1);
  ctrl_ = reg::CTRL_EVT_LOG_EN::set(ctrl_, 1);
  ctrl_ = reg::CTRL_GT_EN::set(ctrl_, caps_.gt);
  ctrl_ = reg::CTRL_INV_TIMEOUT::set(ctrl_, cfg_.inv_timeout);   // Linux iommu_set_inv_tlb_timeout
  // Linux: CONTROL_GCR3TRPMODE when EFR2 advertises FEATURE_GCR3TRPMODE, so a nested
  // device's GCR3 table root (in guest memory) is a GPA.
  gcr3trp_mode_ = reg::EFR2_GCR3TRP_MODE::get(mmio_read64(reg::EFR2));
  ctrl_ = reg::CTRL_GCR3TRP_MODE::set(ctrl_, gcr3trp_mode_);
  mmio_write64(reg::CONTROL, ctrl_);
  ctrl_ = reg::CTRL_IOMMU_EN::set(ctrl_, 1);
  mmio_write64(reg::CONTROL, ctrl_);
  // As Linux amd_iommu_flush_all_caches: INVALIDATE_IOMMU_ALL, or each DTE and DomainID.
  std::vector<CmdWords> cmds;
  if (caps_.ia) {
    cmds.push_back(cmd_inv_iommu_all());
  } else {
    for (unsigned i = 0; i < dte_count_; ++i) cmds.push_back(cmd_inv_devtab_entry(uint16_t(i)));
    for (unsigned id = 0; id < 256; ++id) cmds.push_back(cmd_inv_iommu_pages(uint16_t(id), 0, kInvAllPagesSize));
  }
  if (Status st = submit(cmds, "init"); !st.ok || !cfg_.hw_viommu_guests) return st;
  return enable_hw_viommu();
}

Status AmdViDriver::enable_hw_viommu() {
  if (!caps_.viommu) return Status::fail("EFR FEATURE_VIOMMU (bit 55) clear: no hardware vIOMMU");
  if (cfg_.viommu_devid >= dte_count_) return Status::fail("the IOMMU's DeviceID is beyond the device table");
  std::string why;
  const std::optional<DomainId> d = create_domain(DomainKind::Stage2, std::nullopt, &why);
  if (!d) return Status::fail("hardware vIOMMU private space: " + why);
  viommu_private_ = *d;
  if (Status st = attach(cfg_.viommu_devid, std::nullopt, *d); !st.ok) return st;
  ctrl_ = reg::CTRL_VCMD_EN::set(ctrl_, 1);
  ctrl_ = reg::CTRL_VIOMMU_EN::set(ctrl_, 1);
  mmio_write64(reg::CONTROL, ctrl_);
  return {};
}

// amd_viommu_iommu_init / viommu_init_one: the gid's map tables (zeroed pages, so every
// entry starts unmapped; the RFC's clear loops are not modelled) mapped into the private
// space, and viommu_set_translate_dte: the translation DeviceID's DTE on the nest parent
// (MODEL CHOICE: the parent's own v1 table and DomainID, so the host's stage-2 flushes of
// that DomainID cover the hardware's GPA translations; the RFC keeps a trans_domid apart;
// the DeviceID is the top of the device table minus the gid, where the RFC takes
// iommu_viommu_amd.trans_devid from user space).
Errno AmdViDriver::init_hw_viommu(AmdViommu& v, DomainId parent) {
  namespace vi = amdvi::viommu;
  if (next_gid_ >= cfg_.hw_viommu_guests || !viommu_private_ || next_gid_ + 1 >= dte_count_) return Errno::NoSpc;
  const unsigned gid = next_gid_;
  for (const vi::MapTable t : {vi::MapTable::DomainId, vi::MapTable::DeviceId}) {
    const uint64_t pa = alloc_host(vi::map_table_bytes(t), 4096);
    if (!pa) return Errno::NoMem;
    if (!map(viommu_private_, vi::map_table_base(t, gid), pa, vi::map_table_bytes(t), Prot{}, 4096).ok)
      return Errno::NoMem;
  }
  const auto trans = uint16_t(dte_count_ - 1 - gid);
  if (!attach(trans, std::nullopt, parent).ok) return Errno::Inval;
  mmio_write64(vi::vf_cntl_offset(gid, vi::VFCTRL_MISC), vi::MISC_TRANS_DEVID::set(0, trans));
  ++next_gid_;
  v.gid = gid;
  v.trans_devid = trans;
  return Errno::Ok;
}

void AmdViDriver::write_map_control(const AmdViommu& v, uint64_t reg, uint16_t guest_id, uint16_t host_id) {
  if (v.gid) mmio_write64(amdvi::viommu::vf_cntl_offset(*v.gid, reg), amdvi::viommu::map_control(guest_id, host_id));
}

void AmdViDriver::add_viommu_fields(uint32_t rid, DeviceTableEntry& e) const {
  auto it = viommu_devs_.find(rid);
  if (it == viommu_devs_.end()) return;
  e.vimu_en = true;
  e.gdevice_id = it->second.gdev;
  e.guest_id = it->second.gid;
}

std::optional<unsigned> AmdViDriver::viommu_gid(ViommuHandle v) const {
  const AmdViommu* vi = viommu(v);
  return vi ? vi->gid : std::nullopt;
}

uint16_t AmdViDriver::viommu_trans_devid(ViommuHandle v) const {
  const AmdViommu* vi = viommu(v);
  return vi ? vi->trans_devid : 0;
}

Errno AmdViDriver::viommu_guest_mmio_write(ViommuHandle v, uint64_t offset, uint64_t value) {
  namespace vi = amdvi::viommu;
  const AmdViommu* a = viommu(v);
  if (!a || !a->gid) return Errno::Inval;
  const unsigned gid = *a->gid;
  const auto rmw = [&](uint64_t reg, uint64_t clear, uint64_t set) {
    const uint64_t off = vi::vf_cntl_offset(gid, reg);
    mmio_write64(off, (mmio_read64(off) & ~clear) | set);
  };
  const uint64_t base_len = common::mask(51, 12) | vi::QCTL_LEN::set(0, 0xF);
  switch (offset) {
    case reg::CONTROL:   // CmdBufEn [12] -> 0x20[8], ComWaitIntEn [4] -> [9]; EventLogEn [2] -> 0x28[8], EvtIntEn [3] -> [9]
      rmw(vi::VFCTRL_CMD, vi::QCTL_EN::set(0, 1) | vi::QCTL_INT_EN::set(0, 1),
          vi::QCTL_EN::set(0, reg::CTRL_CMD_BUF_EN::get(value)) | vi::QCTL_INT_EN::set(0, reg::CTRL_COMWAIT_INT_EN::get(value)));
      rmw(vi::VFCTRL_EVT, vi::QCTL_EN::set(0, 1) | vi::QCTL_INT_EN::set(0, 1),
          vi::QCTL_EN::set(0, reg::CTRL_EVT_LOG_EN::get(value)) | vi::QCTL_INT_EN::set(0, reg::CTRL_EVT_INT_EN::get(value)));
      return Errno::Ok;
    case reg::CMD_BUF_BASE:   // ComLen [59:56] -> [3:0], ComBase [51:12]
      rmw(vi::VFCTRL_CMD, base_len, (value & common::mask(51, 12)) | vi::QCTL_LEN::set(0, reg::CMD_BUF_LEN::get(value)));
      return Errno::Ok;
    case reg::EVT_LOG_BASE:
      rmw(vi::VFCTRL_EVT, base_len, (value & common::mask(51, 12)) | vi::QCTL_LEN::set(0, reg::EVT_LOG_LEN::get(value)));
      return Errno::Ok;
    default:
      return Errno::Ok;
  }
}

uint16_t AmdViDriver::domain_id_of(DomainId d) const { return static_cast<const AmdDomain*>(domain(d))->domain_id; }

uint16_t AmdViDriver::device_domain_id(uint32_t rid) const {
  auto it = devices_.find(rid);
  if (it == devices_.end()) return 0;
  if (it->second.user_nested) return it->second.nested_domid;
  if (it->second.has_gcr3) return it->second.gcr3_domid;
  return it->second.has_host ? domain_id_of(it->second.host) : 0;
}

std::unique_ptr<DriverBase::Domain> AmdViDriver::make_domain(DomainKind kind, const Domain*, std::string* why) {
  auto dom = std::make_unique<AmdDomain>();
  if (kind == DomainKind::Stage2) {
    if (next_domid_ == 0) { if (why) *why = "DomainIDs exhausted"; return nullptr; }
    dom->domain_id = next_domid_++;
    dom->format = std::make_unique<pagetable::AmdV1Format>(pagetable::AmdV1Config{kHostMode, 52});
  } else {
    // Nesting needs the GCR3 root as a GPA (Linux requires GCR3TRPMode for a nest parent).
    if (kind == DomainKind::Nested && !gcr3trp_mode_) {
      if (why) *why = "EFR2.GCR3TRPMode not supported: no nested domains";
      return nullptr;
    }
    // v2 tables carry no DomainID of their own: the device's GCR3 DomainID + PASID tag them.
    dom->format = std::make_unique<pagetable::X86Format>(pagetable::X86PagingConfig{4, true, 52});
  }
  return dom;
}

bool AmdViDriver::store(const Attachment& at, uint64_t addr, uint64_t value) {
  charge_cycles(cfg_.timing.descriptor_write_cycles);
  if (at.gcr3_in_guest) return guest_write(*domain(at.host), addr, &value, 8);
  mem_.write64(addr, value);
  return true;
}

Status AmdViDriver::write_gcr3(Attachment& at, uint32_t pasid, uint64_t cr3, bool valid) {
  uint64_t table = at.gcr3_root;
  for (unsigned level = cfg_.glx; level >= 1; --level) {
    const uint64_t key = (uint64_t(level) << 32) | (pasid >> (9 * level));
    auto it = at.gcr3_tables.find(key);
    if (it == at.gcr3_tables.end()) {
      const uint64_t next = at.gcr3_in_guest ? alloc_guest(4096, 4096) : alloc_host(4096, 4096);
      if (!next) return Status::fail("no memory for a GCR3 table level");
      if (!store(at, table + uint64_t(gcr3_index(pasid, level)) * 8, encode_gcr3_entry({true, next})))
        return Status::fail("GCR3 table not mapped by the host table");
      it = at.gcr3_tables.emplace(key, next).first;
    }
    table = it->second;
  }
  if (!store(at, table + uint64_t(gcr3_index(pasid, 0)) * 8, encode_gcr3_entry({valid, cr3})))
    return Status::fail("GCR3 table not mapped by the host table");
  return {};
}

Status AmdViDriver::write_dte(uint32_t rid) {
  const Attachment& at = devices_.at(rid);
  if (at.user_nested) {
    DeviceTableEntry n = nested_dte(rid, *static_cast<const AmdDomain*>(domain(at.user_nested)), at.nested_domid);
    add_viommu_fields(rid, n);
    const DteWords w = encode_dte(n);
    mem_.write(dte_address(rid), w.data(), 32);
    charge_descriptor_writes(4);
    return {};
  }
  DeviceTableEntry e;
  e.valid = e.tv = true;
  e.ir = e.iw = !at.blocked;
  e.iotlb = ats_enabled(rid);   // Linux DTE_FLAG_IOTLB when the device's ATS is enabled
  if (at.has_host) {
    const AmdDomain& h = *static_cast<const AmdDomain*>(domain(at.host));
    e.mode = kHostMode;
    e.host_pt_root = h.tables->root();
    e.domain_id = h.domain_id;
  }
  if (at.has_gcr3) {
    e.gv = true;
    e.glx = uint8_t(cfg_.glx);
    e.gcr3_root = at.gcr3_root;
    e.giov = at.giov;
    e.guest_paging_mode = kGuestPaging4Level;
    e.domain_id = at.gcr3_domid;
  }
  add_viommu_fields(rid, e);
  const DteWords w = encode_dte(e);
  mem_.write(dte_address(rid), w.data(), 32);
  charge_descriptor_writes(4);
  return {};
}

Status AmdViDriver::detach_device(uint32_t rid, std::optional<uint32_t> pasid) {
  auto it = devices_.find(rid);
  if (it == devices_.end()) return Status::fail("RID " + std::to_string(rid) + " is not attached");
  Attachment& at = it->second;
  charge_cycles(cfg_.timing.op_overhead_cycles);
  if (pasid) {
    if (!at.has_gcr3 || !at.by_pasid.erase(*pasid)) return Status::fail("PASID " + std::to_string(*pasid) + " is not attached");
    std::vector<CmdWords> cmds;
    if (at.shared_gcr3) {
      // Other devices keep the shared table: this one moves to a table of its own.
      if (Status s = own_gcr3_table(at, at.gcr3_in_guest); !s.ok) return s;
      if (Status s = write_dte(rid); !s.ok) return s;
      cmds.push_back(cmd_inv_devtab_entry(uint16_t(rid)));
    }
    if (Status s = write_gcr3(at, *pasid, 0, false); !s.ok) return s;
    cmds.push_back(cmd_inv_iommu_pages(at.gcr3_domid, 0, kInvAllPagesSize, true, true, *pasid));
    add_iotlb_flush(rid, 0, 0, pasid, cmds);
    return submit(cmds, "detach");
  }
  at = Attachment{};
  at.blocked = true;
  if (Status s = write_dte(rid); !s.ok) return s;
  std::vector<CmdWords> cmds{cmd_inv_devtab_entry(uint16_t(rid))};
  add_iotlb_flush(rid, 0, 0, std::nullopt, cmds);
  return submit(cmds, "detach");
}

std::optional<uint16_t> AmdViDriver::new_domain_id() {
  if (next_domid_ == 0) return std::nullopt;
  return next_domid_++;
}

Status AmdViDriver::own_gcr3_table(Attachment& at, bool in_guest) {
  at.gcr3_root = in_guest ? alloc_guest(4096, 4096) : alloc_host(4096, 4096);
  if (!at.gcr3_root) return Status::fail("no memory for the GCR3 table");
  const std::optional<uint16_t> id = new_domain_id();
  if (!id) return Status::fail("DomainIDs exhausted");
  at.gcr3_domid = *id;   // Linux: a per-device DomainID for its GCR3 table
  at.gcr3_tables.clear();
  at.shared_gcr3 = 0;
  at.has_gcr3 = true;
  gcr3_tables_.inc();
  for (const auto& [pasid, dd] : at.by_pasid)
    if (Status s = write_gcr3(at, pasid, domain(dd)->tables->root()); !s.ok) return s;
  return {};
}

Status AmdViDriver::attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId d) {
  Status st;
  AmdDomain* dom = amd_domain(d, st);
  if (!dom) return st;
  if (rid >= dte_count_) return Status::fail("RID " + std::to_string(rid) + " beyond the device table");
  if (pasid && dom->kind == DomainKind::Stage2) return Status::fail("a v1 (stage-2) domain attaches to a RID, not a PASID");
  charge_cycles(cfg_.timing.op_overhead_cycles);
  Attachment& at = devices_[rid];
  at.blocked = false;
  std::vector<CmdWords> cmds;
  if (dom->user_managed) {
    // nested_attach_device: the whole DTE is rebuilt from the parent and the guest's DTE.
    at = Attachment{};
    at.has_host = true; at.host = dom->parent; at.user_nested = d;
    at.nested_domid = dom->domain_id;
    if (cfg_.nested_domids == AmdNestedDomainIds::PerDevice) {
      const AmdViommu* vi = viommu(dom->viommu);
      if (!vi || !vi->dev_hdoms.count(rid)) return Status::fail("per_device: the device has no hDomID (attach_nested)");
      at.nested_domid = vi->dev_hdoms.at(rid);
    }
  } else if (dom->kind == DomainKind::Stage2) {
    // A v1-only domain replaces whatever the DTE held (Linux's domain replace).
    if ((at.has_gcr3 && !at.gcr3_in_guest) || (at.has_host && at.host != d) || at.user_nested) at = Attachment{};
    at.has_host = true; at.host = d;
  } else {
    if (!caps_.gt) return Status::fail("EFR.GTSup=0: no guest (v2) translation");
    const uint32_t p = pasid.value_or(0);
    if ((p >> caps_.pasid_bits()) != 0 || !gcr3_pasid_fits(p, cfg_.glx))
      return Status::fail("PASID " + std::to_string(p) + " beyond the GCR3 table (driver.amdvi.glx)");
    const bool nested = dom->kind == DomainKind::Nested;
    // Another v1 parent, or a switch between v2 and nested: replace the DTE and GCR3 table.
    if ((nested && at.has_host && at.host != dom->parent) || (!nested && at.has_host) ||
        (at.has_gcr3 && at.gcr3_in_guest != nested) || at.user_nested)
      at = Attachment{};
    // guest.amd_gcr3 = shared: a device whose only GCR3 entry is its RID's domain uses that
    // domain's table; one that needs more gets a table of its own (copy on write).
    bool only_rid = !pasid;
    for (const auto& [q, dd] : at.by_pasid) only_rid &= q == 0;
    const bool share = cfg_.gcr3_tables == AmdGcr3Tables::Shared && only_rid;
    bool write_entry = true;
    if (!at.has_gcr3 || (share && at.shared_gcr3 != d)) {
      if (nested) { at.has_host = true; at.host = dom->parent; }
      at.gcr3_in_guest = nested;
      if (share) {
        auto [it, fresh] = shared_gcr3_.try_emplace(d);
        SharedGcr3& sh = it->second;
        if (fresh) {
          sh.root = nested ? alloc_guest(4096, 4096) : alloc_host(4096, 4096);
          const std::optional<uint16_t> id = new_domain_id();
          if (!sh.root || !id) { shared_gcr3_.erase(it); return Status::fail("no memory or DomainID for the GCR3 table"); }
          sh.domid = *id;
          gcr3_tables_.inc();
        }
        at.gcr3_root = sh.root; at.gcr3_tables = sh.tables; at.gcr3_domid = sh.domid;
        at.shared_gcr3 = d; at.has_gcr3 = true;
        write_entry = fresh;   // the table already holds the domain's root at PASID 0
      } else if (Status s = own_gcr3_table(at, nested); !s.ok) {
        return s;
      }
    } else if (at.shared_gcr3 && !share) {
      if (Status s = own_gcr3_table(at, nested); !s.ok) return s;
    }
    if (!pasid) at.giov = true;
    at.by_pasid[p] = d;
    if (write_entry) {
      if (Status s = write_gcr3(at, p, dom->tables->root()); !s.ok) return s;
      if (at.shared_gcr3) shared_gcr3_.at(d).tables = at.gcr3_tables;
    }
    // Linux after a GCR3 update: INVALIDATE_IOMMU_PAGES(DomainID, PASID, GN=1, all).
    cmds.push_back(cmd_inv_iommu_pages(at.gcr3_domid, 0, kInvAllPagesSize, true, true, p));
  }
  if (Status s = write_dte(rid); !s.ok) return s;
  cmds.insert(cmds.begin(), cmd_inv_devtab_entry(uint16_t(rid)));
  add_iotlb_flush(rid, 0, 0, std::nullopt, cmds);   // Linux device_flush_dte: the device's IOTLB too
  return submit(cmds, "attach");
}

std::vector<CmdWords> AmdViDriver::flush_commands(const AmdDomain& dom, DomainId d, uint64_t iova, uint64_t bytes,
                                                  bool pde) {
  const uint64_t addr = bytes ? iova : 0, size = bytes ? bytes : kInvAllPagesSize;
  std::vector<CmdWords> cmds;
  if (dom.kind == DomainKind::Stage2) {
    cmds.push_back(cmd_inv_iommu_pages(dom.domain_id, addr, size, pde));
    // Devices nested on this table tag its translations with their own DomainID.
    for (const auto& [rid, at] : devices_)
      if (at.has_host && at.host == d && at.has_gcr3) cmds.push_back(cmd_inv_iommu_pages(at.gcr3_domid, addr, size, pde));
    // iommu_flush_pages_v1_hdom_ids: every hDomID of every vIOMMU over this nest parent
    // (attached or not: the map holds them until their last nested domain is freed), as
    // many as the vmm.amd_domid policy made.
    for (size_t v = 0; v < viommus_.size(); ++v)
      if (viommus_[v].parent == d)
        for_each_host_domain_id(ViommuHandle(v + 1), std::nullopt,
                                [&](uint16_t h) { cmds.push_back(cmd_inv_iommu_pages(h, addr, size, pde)); });
    // Linux domain_flush_pages: then each ATS device's IOTLB (a nested one's in full: the
    // GPA range says nothing about its IOVAs).
    for (const auto& [rid, at] : devices_)
      if (at.has_host && at.host == d) {
        const bool nested = at.has_gcr3 || at.user_nested;
        add_iotlb_flush(rid, nested ? 0 : iova, nested ? 0 : bytes, std::nullopt, cmds);
      }
    return cmds;
  }
  // v2 entries are tagged DomainID+PASID: one command per attached (device, PASID), each
  // tag once (devices sharing a GCR3 table share its DomainID).
  std::vector<std::pair<uint16_t, uint32_t>> tags;
  for (const auto& [rid, at] : devices_)
    for (const auto& [pasid, dd] : at.by_pasid) {
      if (dd != d) continue;
      const std::pair<uint16_t, uint32_t> tag{at.gcr3_domid, pasid};
      if (std::find(tags.begin(), tags.end(), tag) != tags.end()) continue;
      tags.push_back(tag);
      cmds.push_back(cmd_inv_iommu_pages(at.gcr3_domid, addr, size, pde, true, pasid));
    }
  for (const auto& [rid, at] : devices_)
    for (const auto& [pasid, dd] : at.by_pasid)
      if (dd == d) add_iotlb_flush(rid, iova, bytes, (pasid == 0 && at.giov) ? std::nullopt : std::optional<uint32_t>(pasid), cmds);
  return cmds;
}

Status AmdViDriver::invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) {
  Status st;
  AmdDomain* dom = static_cast<AmdDomain*>(table_domain(d, st));
  if (!dom) return st;
  if (bytes == 0) return Status::fail("invalidate_range: empty range");
  return submit(flush_commands(*dom, d, iova, bytes, !leaf), take_pending_op(leaf ? "invalidate_range_leaf" : "invalidate_range"));
}

Status AmdViDriver::invalidate_domain(DomainId d) {
  Status st;
  AmdDomain* dom = static_cast<AmdDomain*>(table_domain(d, st));
  if (!dom) return st;
  return submit(flush_commands(*dom, d, 0, 0, true), "invalidate_domain");
}

Status AmdViDriver::sync() { return submit({}, "sync"); }

Status AmdViDriver::bypass_all() {
  DeviceTableEntry e;
  e.valid = e.tv = e.ir = e.iw = true;   // Mode 0: pass-through
  const DteWords w = encode_dte(e);
  for (unsigned i = 0; i < dte_count_; ++i) mem_.write(dte_address(i), w.data(), 32);
  charge_descriptor_writes(uint64_t(dte_count_) * 4);
  devices_.clear();
  return submit({cmd_inv_iommu_all()}, "init");
}

unsigned AmdViDriver::drain_events() {
  // One drainer at a time (Linux iommu_poll_events runs in the one IRQ thread): on a trapped
  // lane the event thread's handler and a command's completion poll may both come here.
  if (draining_) return 0;
  draining_ = true;
  const common::OffsetRing ring{evt_bytes_, reg::kEntryBytes};
  const uint64_t tail = reg::RING_PTR::get_address(mmio_read64(reg::EVT_LOG_TAIL)) % evt_bytes_;
  unsigned n = 0;
  while (!ring.empty(evt_head_, tail)) {
    EventWords w;
    mem_.read(evt_base_ + evt_head_, w.data(), 16);
    charge_cycles(2 * uint64_t(cfg_.timing.descriptor_write_cycles));   // read and decode 16 bytes
    const EventRecord e = decode_event(w);
    if (report_to_viommu(w, e, uint32_t(evt_head_ / reg::kEntryBytes))) events_reported_.inc();
    else ++events_by_code_[static_cast<uint8_t>(e.code) & 0xF];
    events_consumed_.inc();
    const EventWords zero{};
    mem_.write(evt_base_ + evt_head_, zero.data(), 16);   // so a new record is seen in memory
    evt_head_ = ring.next(evt_head_);
    ++n;
  }
  if (n) mmio_write64(reg::EVT_LOG_HEAD, evt_head_);
  // Overflow: clear EvtOverflow and restart logging (Linux amd_iommu_restart_event_logging).
  const uint64_t status = mmio_read64(reg::STATUS);
  if (reg::STS_EVT_OVERFLOW::get(status)) {
    event_overflows_.inc();
    mmio_write64(reg::STATUS, reg::STS_EVT_OVERFLOW::set(0, 1));
    mmio_write64(reg::CONTROL, reg::CTRL_EVT_LOG_EN::set(ctrl_, 0));
    mmio_write64(reg::CONTROL, ctrl_);
  }
  draining_ = false;
  return n;
}

Status AmdViDriver::recover_command_buffer() {
  // Head stops on the illegal command: make it a no-op and restart the buffer.
  const uint32_t head = read_consumer();
  const CmdWords nop = cmd_completion_wait(false, false);
  mem_.write(cmdbuf_.slot_address(head), nop.data(), 16);
  charge_cycles(cfg_.timing.command_write_cycles);
  drain_events();
  mmio_write64(reg::CONTROL, reg::CTRL_CMD_BUF_EN::set(ctrl_, 0));
  mmio_write64(reg::CONTROL, ctrl_);
  ++errors_recovered_;
  return {};
}

Status AmdViDriver::submit(const std::vector<CmdWords>& cmds, const std::string& op) {
  static_assert(sizeof(CmdWords) == 16, "commands are stored back to back");
  return submit_batch(cmdbuf_, cmds.empty() ? nullptr : cmds.front().data(), cmds.size(), op);
}

// Head and tail registers hold byte offsets.
void AmdViDriver::doorbell(uint32_t producer) { mmio_write64(reg::CMD_BUF_TAIL, uint64_t(producer) * reg::kEntryBytes); }

uint32_t AmdViDriver::read_consumer() {
  return cmdbuf_.ring().index(uint32_t(reg::RING_PTR::get(mmio_read64(reg::CMD_BUF_HEAD))));
}

// The head did not move: a stopped buffer (an illegal command) is restarted.
Status AmdViDriver::still_full() {
  if (!reg::STS_CMD_BUF_RUN::get(mmio_read64(reg::STATUS)) && !recover_command_buffer().ok)
    return Status::fail("command buffer stopped");
  return {};
}

void AmdViDriver::barrier_entry(uint32_t, uint64_t, uint64_t* words) {
  const CmdWords w = cmd_completion_wait(true, false, sem_addr_, ++sem_value_);
  words[0] = w[0];
  words[1] = w[1];
}

bool AmdViDriver::completed(uint32_t, uint32_t) {
  charge_cycles(cfg_.timing.poll_read_cycles);
  return mem_.read64(sem_addr_) == sem_value_;
}

// A new event record (consumed entries are zeroed, as Linux does) stands in for the event
// interrupt: an ILLEGAL_COMMAND_ERROR means the buffer stopped. Without an event (log off
// or full), Status.CmdBufRun is read now and then.
Status AmdViDriver::check_error(unsigned poll) {
  bool stopped = false;
  charge_cycles(cfg_.timing.poll_read_cycles);
  if (mem_.read64(evt_base_ + evt_head_) != 0) {
    const uint64_t before = events_seen(EventCode::IllegalCommandError);
    drain_events();
    stopped = events_seen(EventCode::IllegalCommandError) != before;
  } else if (poll % 256 == 0) {
    stopped = !reg::STS_CMD_BUF_RUN::get(mmio_read64(reg::STATUS));
  }
  return stopped ? recover_command_buffer() : Status{};
}

// Linux device_flush_iotlb: INVALIDATE_IOTLB_PAGES for a device with ATS enabled
// (bytes == 0: everything), GN and the PASID for a PASID's translations.
void AmdViDriver::add_iotlb_flush(uint32_t rid, uint64_t iova, uint64_t bytes, std::optional<uint32_t> pasid,
                                  std::vector<CmdWords>& cmds) const {
  if (!device_invalidations() || !ats_enabled(rid)) return;
  cmds.push_back(cmd_inv_iotlb_pages(uint16_t(rid), 0, bytes ? iova : 0, bytes ? bytes : kInvAllPagesSize,
                                     pasid.has_value(), pasid.value_or(0)));
}

// COMPLETION_WAIT completes even when an IOTLB invalidation timed out: the event log says so.
Status AmdViDriver::after_completion() {
  if (mem_.read64(evt_base_ + evt_head_) != 0) drain_events();   // check_error may have drained it already
  const uint64_t seen = events_seen(EventCode::IotlbInvTimeout);
  if (seen == iotlb_timeouts_reported_) return {};
  iotlb_timeouts_reported_ = seen;
  return Status::fail("IOTLB invalidation not completed: IOTLB_INV_TIMEOUT logged (a device did not answer its "
                      "Invalidate Request within Control.InvTimeOut, driver.amdvi.inv_timeout; " + registers() + ")");
}

std::string AmdViDriver::registers() {
  return "CmdBufHead=" + hex(iommu_.peek_register(reg::CMD_BUF_HEAD)) + ", Status=" + hex(iommu_.peek_register(reg::STATUS));
}

void AmdViDriver::register_stats(common::StatRegistry& reg, const std::string& p) const {
  DriverBase::register_stats(reg, p);
  reg.add(p + ".event_overflows", event_overflows_, "count", "event-log overflows handled (records were lost)");
  reg.add(p + ".gcr3_tables", gcr3_tables_, "count",
          "GCR3 tables built (one per device with guest tables; fewer with guest.amd_gcr3 = shared)");
}

// ---- Nesting (NestingOps), as Linux amd/iommufd.c and amd/nested.c ----

namespace {
using common::extract;
// Guest DTE fields Linux reads (amd_iommu_types.h; 48882 §2.2.2.1 positions).
struct GuestDte {
  const uint64_t* w;
  bool v() const { return extract(w[0], 0, 0); }                  // DTE_FLAG_V
  uint64_t mode() const { return extract(w[0], 11, 9); }          // DTE_MODE_MASK
  uint64_t host_trp() const { return extract(w[0], 51, 12); }     // DTE_HOST_TRP
  bool ppr() const { return extract(w[0], 52, 52); }              // DTE_FLAG_PPR
  bool giov() const { return extract(w[0], 54, 54); }             // DTE_FLAG_GIOV
  bool gv() const { return extract(w[0], 55, 55); }               // DTE_FLAG_GV
  uint8_t glx() const { return uint8_t(extract(w[0], 57, 56)); }  // DTE_GLX
  // DTE_GCR3_14_12, DTE_GCR3_30_15, DTE_GCR3_51_31: the GCR3 table root (a GPA).
  uint64_t gcr3() const {
    return extract(w[0], 60, 58) << 12 | extract(w[1], 31, 16) << 15 | extract(w[1], 63, 43) << 31;
  }
  uint16_t domain_id() const { return uint16_t(extract(w[1], 15, 0)); }        // DTE_DOMID_MASK
  uint8_t gpt_level() const { return uint8_t(extract(w[2], 55, 54)); }         // DTE_GPT_LEVEL_MASK
};
constexpr uint8_t kGlxReserved = 3;
// Command fields the conversion rewrites (48882 §2.4.3, §2.4.4; u64[0] = data[1] << 32 | data[0]).
constexpr unsigned kIpDomainIdLo = 32, kIpDomainIdHi = 47;   // INVALIDATE_IOMMU_PAGES DomainID
constexpr unsigned kItDeviceIdLo = 0, kItDeviceIdHi = 15;    // INVALIDATE_IOTLB_PAGES DeviceID
constexpr unsigned kItQueueIdLo = 32, kItQueueIdHi = 47;     // INVALIDATE_IOTLB_PAGES QueueID

// validate_gdte_nested
Errno validate_gdte_nested(const HwptAmdGuest& g, const Caps& caps) {
  const GuestDte d{g.dte};
  if (d.mode() != 0 || d.host_trp() != 0) return Errno::Inval;   // Mode and Host TRP must be zero
  if (d.v() && d.gv() && d.gcr3() == 0) return Errno::Inval;      // GCR3 TRP must be non-zero
  if (d.gpt_level() != kGuestPaging4Level && d.gpt_level() != kGuestPaging5Level) return Errno::Inval;
  if (d.glx() == kGlxReserved) return Errno::Inval;
  // amd_iommu_gpt_level (EFR.GATS) must allow a 5-level guest table.
  if (d.gpt_level() == kGuestPaging5Level && caps.guest_levels() < 5) return Errno::OpNotSupp;
  return Errno::Ok;
}
}  // namespace

template <class F>
void AmdViDriver::for_each_host_domain_id(ViommuHandle v, std::optional<uint16_t> gdom, F&& f) const {
  const AmdViommu& vi = viommus_.at(v - 1);
  switch (cfg_.nested_domids) {
    case AmdNestedDomainIds::PerGuestDomain:
      for (const auto& [g, info] : vi.gdoms)
        if (!gdom || g == *gdom) f(info.hdom_id);
      return;
    case AmdNestedDomainIds::PerGroup:
      if (vi.group_hdom) f(vi.group_hdom);
      return;
    case AmdNestedDomainIds::PerDevice:
      for (const auto& [rid, hdom] : vi.dev_hdoms) {
        if (gdom) {   // the devices attached now to a nested domain of this gDomID
          auto at = devices_.find(rid);
          if (at == devices_.end() || !at->second.user_nested) continue;
          const auto* nd = static_cast<const AmdDomain*>(domain(at->second.user_nested));
          if (nd->viommu != v || nd->gdom_id != *gdom) continue;
        }
        f(hdom);
      }
      return;
  }
}

std::optional<uint64_t> AmdViDriver::nested_tags_in_use() const {
  uint64_t n = 0;
  for (size_t v = 0; v < viommus_.size(); ++v) for_each_host_domain_id(ViommuHandle(v + 1), std::nullopt, [&](uint16_t) { ++n; });
  return n;
}

Errno AmdViDriver::viommu_init(ViommuType type, DomainId parent, ViommuHandle* out) {
  if (!supports_viommu(type)) return Errno::OpNotSupp;
  const Domain* p = domain(parent);
  if (!p || p->kind != DomainKind::Stage2 || p->user_managed) return Errno::Inval;
  AmdViommu v;
  v.parent = parent;   // amd_iommufd_viommu_init: aviommu->parent, on pdom->viommu_list
  if (cfg_.hw_viommu_guests)
    if (Errno e = init_hw_viommu(v, parent); e != Errno::Ok) return e;
  viommus_.push_back(std::move(v));
  *out = ViommuHandle(viommus_.size());
  return Errno::Ok;
}

Errno AmdViDriver::alloc_nested(ViommuHandle v, uint32_t flags, const UserData& data, DomainId* out) {
  if (!viommu(v)) return Errno::Inval;
  // iommufd_viommu_alloc_hwpt_nested refuses flags other than ALLOC_PASID (FAULT_ID_VALID,
  // which it takes, is not modelled), and amd_iommu_alloc_domain_nested does not look at
  // ALLOC_PASID (the domain still has no set_dev_pasid); another data type EOPNOTSUPP, then
  // the copy of iommu_hwpt_amd_guest and validate_gdte_nested.
  if (flags & ~kHwptAllocPasid) return Errno::OpNotSupp;
  if (data.type != HwptDataType::AmdGuest) return Errno::OpNotSupp;
  auto dom = std::make_unique<AmdDomain>();
  if (Errno e = copy_struct_from_user(&dom->gdte, data.data, data.len); e != Errno::Ok) return e;
  if (Errno e = validate_gdte_nested(dom->gdte, caps_); e != Errno::Ok) return e;
  AmdViommu& vi = viommus_[v - 1];
  dom->gdom_id = GuestDte{dom->gdte.dte}.domain_id();
  dom->viommu = v;
  // gdomid_array: the gDomID's hDomID, a new one (amd_iommu_pdom_id_alloc) on first use;
  // per_group: the vIOMMU's one; per_device: none yet (each device's, at attach).
  auto [it, fresh] = vi.gdoms.try_emplace(dom->gdom_id);
  if (fresh && cfg_.nested_domids != AmdNestedDomainIds::PerDevice) {
    uint16_t& hdom = cfg_.nested_domids == AmdNestedDomainIds::PerGroup ? vi.group_hdom : it->second.hdom_id;
    const std::optional<uint16_t> id = hdom ? std::optional<uint16_t>(hdom) : new_domain_id();
    if (!id) { vi.gdoms.erase(it); return Errno::NoSpc; }
    hdom = it->second.hdom_id = *id;
    write_map_control(vi, amdvi::viommu::VFCTRL_DOMID_MAP, dom->gdom_id, *id);   // set_domain_mapping
  }
  ++it->second.users;
  dom->domain_id = it->second.hdom_id;
  charge_cycles(cfg_.timing.op_overhead_cycles);
  *out = add_user_domain(std::move(dom), vi.parent);
  return Errno::Ok;
}

void AmdViDriver::free_nested(DomainId nested) {
  Status st;
  AmdDomain* dom = amd_domain(nested, st);
  if (!dom || !dom->user_managed || !dom->viommu) return;
  // nested_domain_free: the last user drops the gDomID's mapping. (This driver never
  // reuses DomainIDs, so amd_iommu_pdom_id_free has nothing to return them to.)
  auto& gdoms = viommus_[dom->viommu - 1].gdoms;
  auto it = gdoms.find(dom->gdom_id);
  if (it != gdoms.end() && --it->second.users == 0) {
    write_map_control(viommus_[dom->viommu - 1], amdvi::viommu::VFCTRL_DOMID_MAP, dom->gdom_id, 0);   // clear_domain_mapping
    gdoms.erase(it);
  }
  dom->viommu = 0;
}

std::optional<uint16_t> AmdViDriver::host_domain_id(ViommuHandle v, uint16_t gdom_id) const {
  const AmdViommu* vi = viommu(v);
  if (!vi) return std::nullopt;
  auto it = vi->gdoms.find(gdom_id);
  if (it == vi->gdoms.end()) return std::nullopt;
  return it->second.hdom_id;
}

Errno AmdViDriver::set_vdevice(ViommuHandle v, uint64_t virt_id, std::optional<uint32_t> rid) {
  if (!viommu(v)) return Errno::Inval;
  AmdViommu& vi = viommus_[v - 1];
  const auto old = vi.vdevs.find(virt_id);
  const std::optional<uint32_t> before = old == vi.vdevs.end() ? std::nullopt : std::optional<uint32_t>(old->second);
  if (rid) vi.vdevs[virt_id] = *rid;
  else vi.vdevs.erase(virt_id);
  if (!vi.gid) return Errno::Ok;
  // amd_viommu_device_update: set_dte_viommu (the DTE's vImuEn, GDeviceID, GuestID, and its
  // flush) and set_device_mapping, or the clears.
  const std::optional<uint32_t> dev = rid ? rid : before;
  if (rid) viommu_devs_[*rid] = ViommuDevice{uint16_t(*vi.gid), uint16_t(virt_id)};
  else if (before) viommu_devs_.erase(*before);
  if (dev && devices_.count(*dev)) {
    write_dte(*dev);
    submit({cmd_inv_devtab_entry(uint16_t(*dev))}, "vdevice");
  }
  write_map_control(vi, amdvi::viommu::VFCTRL_DEVID_MAP, uint16_t(virt_id), rid ? uint16_t(*rid) : 0);
  return Errno::Ok;
}

void AmdViDriver::set_event_sink(ViommuHandle v, ViommuEventSink* sink, uint32_t viommu_id) {
  if (!viommu(v)) return;
  viommus_[v - 1].sink = sink;
  viommus_[v - 1].sink_id = viommu_id;
}

bool AmdViDriver::report_to_viommu(const EventWords& w, const EventRecord& e, uint32_t index) {
  // Only the guest tables' faults: GN = 1 (a host-table fault is reported with GN = 0).
  if (e.code != EventCode::IoPageFault || !e.gn) return false;
  auto at = devices_.find(e.device_id);
  if (at == devices_.end() || !at->second.user_nested) return false;
  const auto* dom = static_cast<const AmdDomain*>(domain(at->second.user_nested));
  const AmdViommu* vi = dom ? viommu(dom->viommu) : nullptr;
  if (!vi || !vi->sink) return false;
  for (const auto& [gdev, rid] : vi->vdevs) {
    if (rid != e.device_id) continue;
    EventWords g = w;
    g[0] = common::deposit(g[0], 15, 0, gdev);   // DeviceID [15:0] (48882 §2.5)
    return vi->sink->report_event(vi->sink_id, VeventqType::AmdExt, g.data(), sizeof g,
                                  iommu_.event_written_ps(index)) == Errno::Ok;
  }
  return false;   // no vDEVICE: the VM cannot name the device
}

Errno AmdViDriver::attach_nested(uint32_t rid, DomainId nested) {
  const Domain* d = domain(nested);
  if (!d || !d->user_managed) return Errno::Inval;
  // nested_attach_device: a PASID-enabled device is EINVAL. Here a device counts as
  // PASID-enabled while a host-built GCR3 table serves a PASID other than the GIOV one.
  auto it = devices_.find(rid);
  if (it != devices_.end() && it->second.has_gcr3 && !it->second.gcr3_in_guest)
    for (const auto& [pasid, dom] : it->second.by_pasid)
      if (pasid != 0 || !it->second.giov) return Errno::Inval;
  // per_device: the device's own hDomID on this vIOMMU, taken on its first nested attach.
  const auto& dom = *static_cast<const AmdDomain*>(d);
  if (cfg_.nested_domids == AmdNestedDomainIds::PerDevice && dom.viommu) {
    auto& hdoms = viommus_[dom.viommu - 1].dev_hdoms;
    if (!hdoms.count(rid)) {
      const std::optional<uint16_t> id = new_domain_id();
      if (!id) return Errno::NoSpc;
      hdoms[rid] = *id;
    }
  }
  return attach(rid, std::nullopt, nested).ok ? Errno::Ok : Errno::Inval;
}

DeviceTableEntry AmdViDriver::nested_dte(uint32_t rid, const AmdDomain& d, uint16_t hdom_id) const {
  const AmdDomain& parent = *static_cast<const AmdDomain*>(domain(d.parent));
  const GuestDte g{d.gdte.dte};
  DeviceTableEntry e;
  // amd_iommu_make_clear_dte + amd_iommu_set_dte_v1 with the hDomID.
  e.valid = e.tv = e.ir = e.iw = true;
  e.mode = kHostMode;
  e.host_pt_root = parent.tables->root();
  e.domain_id = hdom_id;
  e.iotlb = ats_enabled(rid);
  // set_dte_nested: GV, and the guest's PPR, GLX, GIOV, GCR3 root and paging mode.
  e.gv = true;
  e.ppr = g.ppr();
  e.glx = g.glx();
  e.giov = g.giov();
  e.gcr3_root = g.gcr3();
  e.guest_paging_mode = g.gpt_level();
  return e;
}

Errno AmdViDriver::convert_user_cmd(ViommuHandle v, const CmdWords& c, std::vector<CmdWords>& out) const {
  const AmdViommu& vi = viommus_.at(v - 1);
  const std::optional<Command> cmd = decode_command(c, caps_, nullptr);
  if (!cmd) return Errno::Io;   // an illegal command is the VMM's bug
  switch (cmd->op) {
    case Opcode::InvalidateIommuPages: {
      if (!vi.gdoms.count(cmd->domain_id)) return Errno::Io;
      // One per hDomID the policy gave the gDomID (per_device: each of its devices').
      for_each_host_domain_id(v, cmd->domain_id, [&](uint16_t h) {
        out.push_back({common::deposit(c[0], kIpDomainIdHi, kIpDomainIdLo, h), c[1]});
      });
      return Errno::Ok;
    }
    case Opcode::InvalidateIotlbPages: {
      auto it = vi.vdevs.find(cmd->device_id);
      if (it == vi.vdevs.end()) return Errno::Io;
      // QueueID carries the DeviceID, as Linux build_inv_iotlb_pages writes it.
      uint64_t w0 = common::deposit(c[0], kItDeviceIdHi, kItDeviceIdLo, it->second);
      w0 = common::deposit(w0, kItQueueIdHi, kItQueueIdLo, it->second);
      out.push_back({w0, c[1]});
      return Errno::Ok;
    }
    case Opcode::InvalidateIommuAll:
      // Never the physical INVALIDATE_IOMMU_ALL, but everything it drops of this vIOMMU's:
      // the device-table and GCR3 entries its devices cached (INVALIDATE_DEVTAB_ENTRY per
      // vDEVICE) and the translations of every hDomID, in full (48882 §2.4.7: the command
      // covers every cache of the IOMMU).
      for (const auto& [vdev, device_id] : vi.vdevs) out.push_back(cmd_inv_devtab_entry(uint16_t(device_id)));
      for_each_host_domain_id(v, std::nullopt, [&](uint16_t h) { out.push_back(cmd_inv_iommu_pages(h, 0, kInvAllPagesSize)); });
      return Errno::Ok;
    default:
      return Errno::Io;
  }
}

Errno AmdViDriver::cache_invalidate(ViommuHandle v, InvalidateDataType type, const void* entries, uint32_t entry_len,
                                    uint32_t* entry_num) {
  const uint32_t n = *entry_num;
  *entry_num = 0;
  if (!viommu(v)) return Errno::Inval;
  if (type != InvalidateDataType::AmdViommuExt) return Errno::Inval;
  if (n == 0) return Errno::Ok;   // a zero-length array only probes the type
  if (!entries || entry_len < sizeof(ViommuAmdInvalidateExt)) return Errno::Inval;
  const auto* bytes = static_cast<const uint8_t*>(entries);
  user_cmds_.clear();
  charge_cycles(cfg_.timing.op_overhead_cycles);
  for (uint32_t i = 0; i < n; ++i) {
    ViommuAmdInvalidateExt e;
    std::copy_n(bytes + uint64_t(i) * entry_len, sizeof(e), reinterpret_cast<uint8_t*>(&e));
    // A bad command fails the whole call: nothing is issued.
    if (Errno err = convert_user_cmd(v, CmdWords{e.cmd[0], e.cmd[1]}, user_cmds_); err != Errno::Ok) return err;
  }
  // Nothing to issue (INVALIDATE_IOMMU_ALL before any hDomID): no lone COMPLETION_WAIT.
  if (!user_cmds_.empty() && !submit(user_cmds_, "viommu_inv").ok) return Errno::Io;
  *entry_num = n;
  return Errno::Ok;
}

}  // namespace iommusim::driver

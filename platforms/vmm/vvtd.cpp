#include "platforms/vmm/vvtd.h"

#include <algorithm>

#include "models/vtd/registers.h"

namespace iommusim::vmm {

namespace reg = vtd::reg;
using vtd::DescType;

namespace {
// Scalable mode, first stage only, caching mode (intel_iommu.c vtd_cap_init with x-flts=on
// and caching-mode=on); sizes from the host.
vtd::Features vvtd_features(const VVtdConfig& c) {
  vtd::Features f;
  f.cap.nd = uint8_t(c.nd);
  f.cap.cm = true;
  f.cap.sagaw = 0x4;   // 48-bit: Linux sizes its domains from it even without a second stage
  f.cap.mgaw_bits = c.haw;
  f.cap.psi = true;
  f.cap.num_fault_records = c.fault_records;
  f.cap.mamv = uint8_t(c.mamv);
  f.cap.fl1gp = c.fs_1g;
  f.cap.fl5lp = c.fs_5level;
  f.ecap.qi = true; f.ecap.dt = true; f.ecap.pt = true; f.ecap.pasid = true; f.ecap.smts = true;
  f.ecap.fsts = true; f.ecap.ssts = false; f.ecap.nest = false;
  f.ecap.srs = true; f.ecap.c = true; f.ecap.smpwcs = true;
  f.ecap.pss = uint8_t(c.pasid_bits - 1);
  return f;
}
constexpr uint64_t kEverything = ~uint64_t{0};   // npages of a whole-range entry (addr 0)
}  // namespace

VVtd::VVtd(sc_core::sc_module_name name, const VVtdConfig& cfg, GuestRam& ram, Iommufd& fd,
           const driver::DriverBase& host)
    : sc_module(name), TrappedMmio(cfg, host), mmio("mmio"), cfg_(cfg), ram_(ram), fd_(fd),
      iq_(cpu_, common::CommandQueueConfig{1, unsigned(cfg.costs.decode_cycles), 0},
          [this](uint64_t addr, void* dst, unsigned len) {
            cpu_.wait_cycles(costs_.fetch_cycles);   // one 32-byte descriptor per read (batch 1)
            return ram_.fetch(addr, dst, len);
          },
          [] {},   // no DMA goes through an emulated queue: nothing to drain
          *this),
      r_(regs_, vvtd_features(cfg),
         vtd::RegisterBlock::Hooks{[this] { queue_may_run(); }, nullptr,
                                   [](uint8_t, uint16_t, uint8_t) {},
                                   [](uint8_t, uint16_t, uint64_t, uint8_t, bool, bool) {}}) {
  mmio.register_b_transport(this, &VVtd::b_transport);
}

uint32_t VVtd::installed_hwpt(uint16_t vrid) const {
  auto it = devices_.find(vrid);
  return it == devices_.end() || it->second.hwpt == parent_ ? 0 : it->second.hwpt;
}

uint64_t VVtd::peek_register(uint64_t offset, unsigned len) {
  uint64_t v = 0;
  if (!regs_.read(offset, len, v) && len == 8) regs_.read(offset, 4, v);
  return v;
}

// A guest access: an IQT write runs the whole queue inside its trap (as may GCMD and FSTS
// writes that let a stopped queue go on).
void VVtd::b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const bool doorbell = p.is_write() && p.get_address() == reg::IQT;
  trap(p, delay, doorbell, [&] {
    regs_.transport(p, reg::kMmioBytes);
    // Once the guest enables translation: the vEVENTQ on the nest parent, one fault record
    // per FRCD (MODEL EXTENSION).
    if (p.is_write() && p.get_address() == reg::GCMD && r_.translation_enabled())
      alloc_veventq(fd_, parent_, driver::VeventqType::VtdExt, cfg_.fault_records);
  });
}

bool VVtd::host_event_interrupt(driver::VtdDriver& host) {
  return TrappedMmio::host_event_interrupt(host, &driver::VtdDriver::drain_faults);
}

bool VVtd::write_guest_event(const Vevent& e) {
  cpu_.wait_cycles(costs_.complete_cycles);   // the FRCD and FSTS updates
  // A LOST_EVENTS header stands for records the vEVENTQ dropped: the guest sees an
  // overflow (FSTS.PFO), as its own full registers show it.
  if (e.header.flags & kVeventqFlagLostEvents) {
    event_lost(e);
    r_.fault_overflow();
    return true;
  }
  vtd::FaultRecord r = vtd::decode_frcd({e.evt[0], e.evt[1]});
  // No vDEVICE on VT-d: the VMM's own table names the guest's RID for the physical one.
  auto guest = std::find_if(devices_.begin(), devices_.end(),
                            [&](const auto& d) { return fd_.rid_of(d.second.dev_id) == r.sid; });
  if (guest == devices_.end()) { event_lost(e); return false; }
  r.sid = guest->first;
  if (!r_.record_fault(r)) { event_lost(e); return true; }   // the next FRCD is pending: FSTS.PFO
  event_forwarded(e);
  return true;
}

common::Decoded VVtd::decode(const uint64_t* e, const common::QueueState& q) {
  return r_.decode_queue_entry(e, q, pending_);
}

void VVtd::execute() {
  const vtd::Descriptor& c = pending_;
  switch (c.type) {
    case DescType::PasidIotlb: {
      // QEMU vtd_flush_host_piotlb_all_locked: each device whose RID_PASID entry is a
      // first-stage one with this DID and PASID; page-selective with LEAF = IH, else all.
      const bool page = c.g == uint8_t(vtd::PiotlbGran::Page);
      const uint64_t npages = page ? (vtd::psi_bytes(c.am) ? vtd::psi_bytes(c.am) >> vtd::kPageShift : kEverything)
                                   : kEverything;
      bool any = false;
      for (auto& [vrid, d] : devices_)
        if (d.pe && d.pe->pgtt == vtd::Pgtt::FirstStage && d.pe->did == c.did && d.rid_pasid == c.pasid) {
          forward(d, page ? c.addr : 0, npages, page && c.ih);
          any = true;
        }
      if (!any) stats_.dropped_unattached.inc();
      break;
    }
    case DescType::Iotlb:
      forward_domain(c.g == uint8_t(vtd::IotlbGran::Global) ? std::nullopt : std::optional<uint16_t>(c.did));
      break;
    case DescType::ContextCache:
      // Scalable-mode context entries carry no DID: domain-selective covers every device.
      for (auto& [vrid, d] : devices_) {
        const uint16_t ignore = uint16_t(((1u << c.fm) - 1) << (3 - c.fm));   // FM masks function bits
        const bool device = c.g == uint8_t(vtd::CcGran::Device);
        if (!device || (vrid & ~ignore) == (c.sid & ~ignore)) resync(vrid, d, [](auto&, auto&, uint32_t) { return true; });
      }
      break;
    case DescType::PasidCache:
      // QEMU vtd_pasid_cache_sync: the entries whose old or new version the scope names.
      for (auto& [vrid, d] : devices_)
        resync(vrid, d, [&](const std::optional<vtd::PasidEntry>& old, const std::optional<vtd::PasidEntry>& now,
                            uint32_t rid_pasid) {
          if (c.g == uint8_t(vtd::PcGran::Global)) return true;
          const bool did = (old && old->did == c.did) || (now && now->did == c.did);
          return did && (c.g == uint8_t(vtd::PcGran::Domain) || rid_pasid == c.pasid);
        });
      break;
    case DescType::InvWait:
      // Every forward before it has returned (each ioctl after the host's own inv_wait);
      // then the guest's wait completes.
      cpu_.wait_cycles(costs_.complete_cycles);
      if (c.sw) ram_.write(c.status_addr, &c.status_data, 4);
      if (c.iflag) r_.wait_completed_interrupt();
      break;
    default:   // dev-TLB (the host flushes its own), IEC, page-group responses
      stats_.absorbed.inc();
      break;
  }
}

void VVtd::forward(const Device& d, uint64_t addr, uint64_t npages, bool leaf) {
  if (!d.hwpt || d.hwpt == parent_) return;   // nothing nested to invalidate
  driver::HwptInvalidateVtdS1 e;
  e.addr = addr;
  e.npages = npages;
  e.flags = leaf ? driver::kVtdInvFlagsLeaf : 0;
  uint32_t n = 1;
  stats_.forwarded.inc();
  // QEMU logs a failed call and goes on; the ioctl counts it.
  ioctl(costs_.iommufd_entry_cycles, [&] {
    return fd_.hwpt_invalidate(d.hwpt, driver::InvalidateDataType::VtdS1, &e, sizeof e, &n);
  });
}

void VVtd::forward_domain(std::optional<uint16_t> did) {
  bool any = false;
  for (auto& [vrid, d] : devices_)
    if (d.pe && d.pe->pgtt == vtd::Pgtt::FirstStage && (!did || d.pe->did == *did)) {
      forward(d, 0, kEverything, false);
      any = true;
    }
  if (!any) stats_.dropped_unattached.inc();
}

std::optional<std::pair<vtd::PasidEntry, uint32_t>> VVtd::read_guest_entry(uint16_t vrid) {
  if (r_.ttm() != reg::TTM_SCALABLE) return std::nullopt;
  auto fetch = [&](uint64_t gpa, void* dst, unsigned len) {
    cpu_.wait_cycles(costs_.fetch_cycles);
    ram_.read(gpa, dst, len);
  };
  const uint8_t bus = vtd::sid_bus(vrid), devfn = vtd::sid_devfn(vrid);
  vtd::RootWords rw{};
  fetch(r_.root_table() + vtd::root_entry_offset(bus), rw.data(), 16);
  const auto root = vtd::decode_root_entry(rw, nullptr, cfg_.haw);
  const bool upper = vtd::sm_context_in_upper(devfn);
  if (!root || !(upper ? root->upper_present : root->lower_present)) return std::nullopt;
  vtd::SmContextWords cw{};
  fetch((upper ? root->upper_ctp : root->lower_ctp) + vtd::sm_context_entry_offset(devfn), cw.data(), 32);
  const auto ctx = vtd::decode_sm_context(cw, nullptr, cfg_.haw);
  if (!ctx || !ctx->present) return std::nullopt;
  const uint32_t pasid = ctx->rid_pasid;
  vtd::PasidEntry none;   // not present
  if (!vtd::pasid_within_dir(pasid, ctx->pdts)) return std::make_pair(none, pasid);
  uint64_t dw = 0;
  fetch(ctx->pasid_dir_ptr + vtd::pasid_dir_entry_offset(pasid), &dw, 8);
  const auto dir = vtd::decode_pasid_dir_entry(dw, nullptr, cfg_.haw);
  if (!dir || !dir->present) return std::make_pair(none, pasid);
  vtd::PasidEntryWords pw{};
  fetch(dir->pasid_table_ptr + vtd::pasid_entry_offset(pasid), pw.data(), 64);
  const auto pe = vtd::decode_pasid_entry(pw, nullptr, cfg_.haw);
  return std::make_pair(pe ? *pe : none, pasid);
}

template <class InScope>
void VVtd::resync(uint16_t vrid, Device& d, InScope&& in_scope) {
  const auto got = read_guest_entry(vrid);
  std::optional<vtd::PasidEntry> now;
  if (got && got->first.present) now = got->first;
  const uint32_t rid_pasid = got ? got->second : d.rid_pasid;
  if (!in_scope(d.pe, now, rid_pasid)) return;
  d.rid_pasid = rid_pasid;
  // QEMU vtd_pasid_entry_compare: an unchanged entry keeps its HWPT.
  auto same = [](const vtd::PasidEntry& a, const vtd::PasidEntry& b) {
    return vtd::encode_pasid_entry(a) == vtd::encode_pasid_entry(b);
  };
  if (d.pe && now && same(*d.pe, *now)) return;
  d.pe = now;
  if (!now) return;   // not present: no detach in the model (the header says why)
  stats_.installs.inc();
  if (now->pgtt == vtd::Pgtt::PassThrough) { replace_hwpt(d, parent_); return; }
  if (now->pgtt != vtd::Pgtt::FirstStage) { stats_.unsupported_entries.inc(); return; }   // QEMU: invalid PGTT
  // QEMU vtd_create_fs_hwpt: struct iommu_hwpt_vtd_s1 from the guest's PASID entry.
  driver::HwptVtdS1 data;
  data.flags = (now->sre ? driver::kVtdS1Sre : 0) | (now->wpe ? driver::kVtdS1Wpe : 0) |
               (now->eafe ? driver::kVtdS1Eafe : 0);
  data.pgtbl_addr = now->fsptptr;
  data.addr_width = now->fspm ? 57 : 48;
  uint32_t hwpt = 0;
  const Errno e = ioctl(costs_.hwpt_alloc_cycles, [&] {
    return fd_.hwpt_alloc(d.host_pasid ? kHwptAllocPasid : 0, d.dev_id, parent_,
                          driver::UserData{driver::HwptDataType::VtdS1, &data, sizeof data}, &hwpt);
  });
  if (e != Errno::Ok) return;
  if (!replace_hwpt(d, hwpt)) ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(hwpt); });
}

bool VVtd::replace_hwpt(Device& d, uint32_t hwpt) {
  if (ioctl(0, [&] { return fd_.attach(d.dev_id, hwpt, d.host_pasid); }) != Errno::Ok) return false;
  if (d.hwpt && d.hwpt != parent_) ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(d.hwpt); });
  d.hwpt = hwpt;
  return true;
}

void VVtd::register_stats(common::StatRegistry& reg, const std::string& p) const {
  register_exit_stats(reg, p, "guest IQT writes (each runs the queue)",
                      "trapped guest register reads (FSTS, IQH ...)");
  reg.add(p + ".commands.forwarded", stats_.forwarded, "count",
          "IOMMU_HWPT_INVALIDATE entries the VMM sent for guest descriptors");
  reg.add(p + ".commands.absorbed", stats_.absorbed, "count",
          "guest descriptors the VMM completes itself (dev-TLB, IEC, page-group responses)");
  reg.add(p + ".commands.dropped_unattached", stats_.dropped_unattached, "count",
          "guest IOTLB invalidations naming no device's first-stage entry (not forwarded)");
  reg.add(p + ".pasid_installs", stats_.installs, "count", "guest RID_PASID entries installed as nested HWPTs");
  reg.add(p + ".unsupported_entries", stats_.unsupported_entries, "count",
          "guest PASID entries neither first-stage nor pass-through (not installed)");
  register_ioctl_stats(reg, p, "of which failed (logged; the queue goes on)");
  register_event_stats(reg, p, "host fault records its driver reported to the nest parent's vEVENTQ (MODEL EXTENSION)",
                       "the guest's fault-recording registers (FSTS.PFO)");
  reg.add(p + ".illegal_commands", iq_.stats().illegal, "count", "guest descriptors that raised FSTS.IQE");
}

}  // namespace iommusim::vmm

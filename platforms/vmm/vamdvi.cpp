#include "platforms/vmm/vamdvi.h"

#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"

namespace iommusim::vmm {

namespace reg = amdvi::reg;
using amdvi::Opcode;

namespace {
// The host's caps with guest translation on (the guest must use v2 tables to nest).
amdvi::Caps vamd_caps(const VAmdViConfig& c) {
  amdvi::Caps caps = c.caps;
  caps.gt = true;
  return caps;
}
constexpr uint64_t kDteBytes = 32;
}  // namespace

VAmdVi::VAmdVi(sc_core::sc_module_name name, const VAmdViConfig& cfg, GuestRam& ram, Iommufd& fd,
               const driver::DriverBase& host)
    : sc_module(name), TrappedMmio(cfg, host), mmio("mmio"), cfg_(cfg), ram_(ram), fd_(fd),
      // One 16-byte command per read (batch 1); its fetch is charged with its decode.
      cmdbuf_(cpu_, common::CommandQueueConfig{1, unsigned(cfg.costs.fetch_cycles + cfg.costs.decode_cycles), 0},
              [this](uint64_t addr, void* dst, unsigned len) { return ram_.fetch(addr, dst, len); },
              [] {},   // no DMA goes through an emulated queue: nothing to drain
              *this),
      r_(regs_, vamd_caps(cfg), amdvi::RegisterBlock::Hooks{[this] { queue_may_run(); }}) {
  mmio.register_b_transport(this, &VAmdVi::b_transport);
  forwards_.reserve(cfg.costs.forward_batch);
}

uint32_t VAmdVi::installed_hwpt(uint16_t gdev) const {
  auto it = devices_.find(gdev);
  return it == devices_.end() ? 0 : it->second.hwpt;
}

uint64_t VAmdVi::peek_register(uint64_t offset, unsigned len) {
  uint64_t v = 0;
  regs_.read(offset, len, v);
  return v;
}

void VAmdVi::accelerate(amdvi::AmdVi& hw, driver::AmdViDriver& host, driver::ViommuHandle handle, unsigned gid) {
  hw_ = &hw;
  host_drv_ = &host;
  handle_ = handle;
  gid_ = gid;
  hw.set_guest_command_probe(gid, probe_);
  hw.set_hypervisor(gid, [this](const amdvi::CmdWords& w) { hypervisor_command(w); });
}

// A guest access: a CmdBufTail write (or CmdBufEn turning on) lets the buffer run (TrappedMmio).
void VAmdVi::b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const uint64_t addr = p.get_address();
  if (hw_ && addr >= reg::CMD_BUF_HEAD && addr < reg::STATUS) {
    // The VF page, mapped into the guest: no exit. Head/tail at 0x0 .. 0x18 of the page.
    if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
    stats_.vf_accesses.inc();
    p.set_address(amdvi::viommu::vf_offset(gid_, addr - reg::CMD_BUF_HEAD));
    hw_->guest_register_access(p);
    p.set_address(addr);
    return;
  }
  const bool doorbell = p.is_write() && addr == reg::CMD_BUF_TAIL;
  trap(p, delay, doorbell, [&] {
    if (hw_ && !p.is_write() && addr == reg::STATUS)   // the hardware's guest buffer may have stopped
      r_.status.set<reg::STS_CMD_BUF_RUN>(r_.control.get<reg::CTRL_CMD_BUF_EN>() && !hw_->guest_buffer_stopped(gid_));
    regs_.transport(p, reg::kMmioBytes);
    if (hw_) {
      // amd_viommu_guest_mmio_write: the VMM mirrors what the hardware must know into VF_CNTL.
      if (p.is_write() && (addr == reg::CONTROL || addr == reg::CMD_BUF_BASE || addr == reg::EVT_LOG_BASE)) {
        const uint64_t v = peek_register(addr);
        ioctl(0, [&] { return host_drv_->viommu_guest_mmio_write(handle_, addr, v); });
      }
      return;
    }
    // Once the guest enables its event log: the vEVENTQ, of the log's size (MODEL EXTENSION).
    if (p.is_write() && addr == reg::CONTROL && r_.control.get<reg::CTRL_EVT_LOG_EN>())
      alloc_veventq(fd_, viommu_id_, driver::VeventqType::AmdExt,
                    uint32_t(reg::log_entries(unsigned(reg::EVT_LOG_LEN::get(r_.evt_log_base.get())))));
  });
}

// The hardware handed a guest command over (accelerated): the host's interrupt, the VMM's
// wake-up and decode, then what the trapped path does with it; its forwards go at once.
void VAmdVi::hypervisor_command(const amdvi::CmdWords& w) {
  cpu_.wait_cycles(costs_.event_irq_cycles + costs_.iothread_wakeup_cycles + costs_.decode_cycles);
  stats_.handed_over.inc();
  pending_words_ = w;
  if (!r_.decode_queue_entry(w.data(), pending_).legal) return;   // the hardware decoded it: cannot happen
  execute();
  flush();
}

bool VAmdVi::host_event_interrupt(driver::AmdViDriver& host) {
  return TrappedMmio::host_event_interrupt(host, &driver::AmdViDriver::drain_events);
}

bool VAmdVi::store_guest_event(const uint64_t* words) {
  const std::optional<uint64_t> slot = r_.evt_log_slot();
  if (!slot) return false;
  ram_.write(*slot, words, 16);
  r_.evt_log_stored();
  return true;
}

bool VAmdVi::write_guest_event(const Vevent& e) {
  cpu_.wait_cycles(costs_.complete_cycles);   // the record's store and the tail update
  // A LOST_EVENTS header stands for records the vEVENTQ dropped: the guest sees an
  // overflow, as a full log of its own shows it.
  if (e.header.flags & kVeventqFlagLostEvents) {
    event_lost(e);
    if (!r_.control.get<reg::CTRL_EVT_LOG_EN>()) return false;
    r_.evt_log_overflow();
    return true;
  }
  if (!store_guest_event(e.evt.data())) {
    event_lost(e);
    return r_.control.get<reg::CTRL_EVT_LOG_EN>();   // a full log: EvtOverflow to see
  }
  event_forwarded(e);
  return true;
}

common::Decoded VAmdVi::decode(const uint64_t* entry, const common::QueueState&) {
  pending_words_ = {entry[0], entry[1]};
  return r_.decode_queue_entry(entry, pending_);
}

// The illegal command's record goes into the guest's event log in guest RAM.
void VAmdVi::halt(const common::QueueError& e, const common::QueueState&) {
  flush();   // what was forwarded before it still goes (the hardware ran those commands)
  const amdvi::EventWords w = amdvi::encode_event(r_.cmd_halt(e));
  store_guest_event(w.data());
}

bool VAmdVi::gdom_installed(uint16_t gdom) const {
  for (const auto& [gdev, d] : devices_)
    if (d.hwpt && d.gdom_id == gdom) return true;
  return false;
}

void VAmdVi::execute() {
  const amdvi::Command& c = pending_;
  switch (c.op) {
    case Opcode::InvalidateIommuPages:
      // The host knows a gDomID only through a nested HWPT made from a DTE carrying it.
      if (!gdom_installed(c.domain_id)) { stats_.dropped_unattached.inc(); break; }
      forward();
      break;
    case Opcode::InvalidateIotlbPages:
      if (!devices_.count(c.device_id)) { stats_.dropped_unattached.inc(); break; }
      forward();
      break;
    case Opcode::InvalidateIommuAll:
      forward();
      break;
    case Opcode::InvalidateDevtabEntry: {
      flush();
      auto it = devices_.find(c.device_id);
      if (it == devices_.end()) { stats_.dropped_unattached.inc(); break; }
      install_dte(c.device_id, it->second);
      break;
    }
    case Opcode::CompletionWait:
      // Every forward before it has returned (each after the host's COMPLETION_WAIT); then
      // the guest's wait completes: its store and/or ComWaitInt.
      flush();
      cpu_.wait_cycles(costs_.complete_cycles);
      if (c.store) ram_.write(c.store_addr, &c.store_data, 8);
      if (c.interrupt) r_.completion_wait_interrupt();
      break;
    default:   // INVALIDATE_INTERRUPT_TABLE, PREFETCH_IOMMU_PAGES, COMPLETE_PPR_REQUEST
      stats_.absorbed.inc();
      break;
  }
}

void VAmdVi::forward() {
  forwards_.push_back(driver::ViommuAmdInvalidateExt{{pending_words_[0], pending_words_[1]}});
  stats_.forwarded.inc();
  if (forwards_.size() >= costs_.forward_batch) flush();
}

void VAmdVi::flush() {
  if (forwards_.empty()) return;
  uint32_t n = uint32_t(forwards_.size());
  // A failed call is counted by the ioctl; the buffer goes on (nothing the guest can see).
  invalidate_ioctl(costs_.iommufd_entry_cycles * n, n, [&] {
    return fd_.hwpt_invalidate(viommu_id_, driver::InvalidateDataType::AmdViommuExt, forwards_.data(),
                               sizeof(driver::ViommuAmdInvalidateExt), &n);
  });
  forwards_.clear();
}

void VAmdVi::install_dte(uint16_t gdev, Device& d) {
  const uint64_t dtb = r_.dev_table_base.get();
  amdvi::DteWords w{};
  if ((uint64_t(gdev) + 1) * kDteBytes <= reg::dev_table_bytes(reg::DTB_SIZE::get(dtb))) {
    cpu_.wait_cycles(costs_.fetch_cycles);
    ram_.read(reg::DTB_BASE::get_address(dtb) + uint64_t(gdev) * kDteBytes, w.data(), kDteBytes);
  }
  // An unchanged DTE keeps its HWPT (the guest re-sends INVALIDATE_DEVTAB_ENTRY after GCR3
  // updates that leave the DTE alone).
  if (d.hwpt && w == d.gdte) return;
  // DTE V [0], TV [1], GV [55] (48882 §2.2.2.1): only guest translation is nested.
  const bool v = w[0] & 1, tv = w[0] & 2, gv = (w[0] >> 55) & 1;
  if (!v || !tv || !gv) { stats_.unsupported_dtes.inc(); return; }
  stats_.installs.inc();
  const driver::HwptAmdGuest data{{w[0], w[1], w[2], w[3]}};
  uint32_t hwpt = 0;
  const Errno e = ioctl(costs_.hwpt_alloc_cycles, [&] {
    return fd_.hwpt_alloc(0, d.dev_id, viommu_id_, driver::UserData{driver::HwptDataType::AmdGuest, &data, sizeof data},
                          &hwpt);
  });
  if (e != Errno::Ok) return;
  if (ioctl(0, [&] { return fd_.attach(d.dev_id, hwpt); }) != Errno::Ok) {
    ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(hwpt); });
    return;
  }
  if (d.hwpt) ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(d.hwpt); });
  d.hwpt = hwpt;
  d.gdte = w;
  d.gdom_id = uint16_t(w[1] & 0xFFFF);   // DTE DomainID [15:0] of data[1]
}

void VAmdVi::register_stats(common::StatRegistry& reg, const std::string& p) const {
  register_exit_stats(reg, p, "guest CmdBufTail writes (each runs the command buffer)",
                      "trapped guest register reads (Status, CmdBufHead ...)");
  reg.add(p + ".commands.forwarded", stats_.forwarded, "count",
          "guest commands forwarded with IOMMU_HWPT_INVALIDATE (AmdViommuExt)");
  reg.add(p + ".commands.absorbed", stats_.absorbed, "count",
          "guest commands the VMM completes itself (INVALIDATE_INTERRUPT_TABLE, PREFETCH, PPR)");
  reg.add(p + ".commands.dropped_unattached", stats_.dropped_unattached, "count",
          "guest commands naming a gDomID no installed DTE carries, or a DeviceID with no vDEVICE (not forwarded)");
  reg.add(p + ".dte_installs", stats_.installs, "count", "guest DTEs installed as nested HWPTs (INVALIDATE_DEVTAB_ENTRY)");
  reg.add(p + ".unsupported_dtes", stats_.unsupported_dtes, "count",
          "guest DTEs without V, TV and GV (not installed)");
  register_ioctl_stats(reg, p, "of which failed (counted; the buffer goes on)");
  register_fanout_stats(reg, p);
  register_event_stats(reg, p, "host event-log records its driver reported to the vIOMMU's vEVENTQ (MODEL EXTENSION)",
                       "the guest's event log (EvtOverflow)");
  reg.add(p + ".illegal_commands", cmdbuf_.stats().illegal, "count", "guest commands that raised ILLEGAL_COMMAND_ERROR");
  if (!cfg_.accelerated) return;
  reg.add(p + ".vf_accesses", stats_.vf_accesses, "count",
          "guest head/tail accesses to the hardware's VF page (no exit; accelerated)");
  reg.add(p + ".commands.handed_over", stats_.handed_over, "count",
          "guest commands the hardware handed to the VMM (accelerated: INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_ALL, ...)");
}

}  // namespace iommusim::vmm

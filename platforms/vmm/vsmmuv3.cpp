#include "platforms/vmm/vsmmuv3.h"

#include "models/common/bits.h"
#include "models/smmuv3/registers.h"

namespace iommusim::vmm {

namespace reg = smmuv3::reg;
using smmuv3::Opcode;

namespace {
// The stage-1 fields a guest STE may pass to the host (QEMU STE0_MASK, STE1_MASK; Linux
// STRTAB_STE_0/1_NESTING_ALLOWED): dword 0 V[0], Config[3:1], S1Fmt[5:4],
// S1ContextPtr[55:6], S1CDMax[63:59]; dword 1 S1DSS[1:0], S1CIR[3:2], S1COR[5:4],
// S1CSH[7:6], S1STALLD[27], EATS[29:28] (IHI 0070 §5.2).
constexpr uint64_t kSte0Mask = common::mask(0, 0) | common::mask(3, 1) | common::mask(5, 4) | common::mask(55, 6) |
                               common::mask(63, 59);
constexpr uint64_t kSte1Mask = common::mask(7, 0) | common::mask(27, 27) | common::mask(29, 28);
// STE.Config (dword 0 [3:1]): 0b000 abort, 0b100 bypass; bit 0 of it (0b1x1) stage 1.
constexpr uint64_t kSteValid = 1, kConfigShift = 1, kConfigBypass = 0b100;
constexpr unsigned kStreamIdMax = 32;

smmuv3::Features vsmmu_features(const VSmmuConfig& c) {
  smmuv3::Features f;
  f.stage1 = true;
  f.stage2 = false;
  f.msi = false;
  f.two_level_stream_table = false;
  f.sid_bits = c.sid_bits;
  f.ssid_bits = c.ssid_bits;
  f.range_invalidation = c.range_invalidation;
  return f;
}
}  // namespace

VSmmuv3::VSmmuv3(sc_core::sc_module_name name, const VSmmuConfig& cfg, GuestRam& ram, Iommufd& fd,
                 const driver::DriverBase& host)
    : sc_module(name), TrappedMmio(cfg, host), mmio("mmio"), cfg_(cfg), ram_(ram), fd_(fd),
      // One entry per read (batch 1); its fetch is charged with its decode, in one wait.
      cmdq_(cpu_, common::CommandQueueConfig{1, unsigned(cfg.costs.fetch_cycles + cfg.costs.decode_cycles), 0},
            [this](uint64_t addr, void* dst, unsigned len) { return ram_.fetch(addr, dst, len); },
            [] {},   // no DMA goes through an emulated queue: nothing to drain
            *this),
      r_(regs_, vsmmu_features(cfg), [this] { queue_may_run(); }) {
  mmio.register_b_transport(this, &VSmmuv3::b_transport);
  forwards_.reserve(cfg.costs.forward_batch);
}

Errno VSmmuv3::add_device(uint64_t vsid, uint32_t dev_id) {
  devices_[vsid] = Device{dev_id, 0};
  if (abort_hwpt_) return Errno::Ok;
  for (auto [config, id] : {std::pair<uint64_t, uint32_t*>{0, &abort_hwpt_}, {kConfigBypass, &bypass_hwpt_}}) {
    const driver::HwptArmSmmuv3 data{{kSteValid | config << kConfigShift, 0}};
    const driver::UserData ud{driver::HwptDataType::ArmSmmuv3, &data, sizeof data};
    if (Errno e = fd_.hwpt_alloc(0, dev_id, viommu_id_, ud, id); e != Errno::Ok) return e;
  }
  return Errno::Ok;
}

void VSmmuv3::set_guest_vintf(smmuv3::Cmdqv& cmdqv, unsigned vintf, unsigned lvcmdqs) {
  vintf_ = std::make_unique<GuestVintf>(cmdqv, vintf, lvcmdqs, cfg_.direct_mmio_read_ns, cfg_.direct_mmio_write_ns,
                                        [this](unsigned lidx, uint64_t base) { return alloc_hw_queue(lidx, base); });
}

bool VSmmuv3::alloc_hw_queue(unsigned lidx, uint64_t base) {
  namespace q = smmuv3::cmdqv;
  // The BASE write's trap; its handler (QEMU's vCMDQV) allocates the HW queue at the GPA.
  tlm::tlm_generic_payload p;
  p.set_command(tlm::TLM_WRITE_COMMAND);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  Errno e = Errno::Ok;
  trap(p, delay, false, [&] {
    const uint64_t gpa = q::VCMDQ_ADDR::get(base) << 5;
    const uint64_t length = uint64_t(16) << q::VCMDQ_LOG2SIZE::get(base);
    uint32_t id = 0;
    e = ioctl(0, [&] {
      return fd_.hw_queue_alloc(0, viommu_id_, driver::HwQueueType::Tegra241Cmdqv, lidx, gpa, length, &id);
    });
  });
  if (e == Errno::Ok) stats_.hw_queues.inc();
  return e == Errno::Ok;
}

uint32_t VSmmuv3::installed_hwpt(uint64_t vsid) const {
  auto it = devices_.find(vsid);
  return it == devices_.end() ? 0 : it->second.hwpt;
}

uint32_t VSmmuv3::peek32(uint64_t offset) {
  uint64_t v = 0;
  regs_.read(offset, 4, v);
  return uint32_t(v);
}

// A guest access: the doorbell runs the whole queue inside its trap.
void VSmmuv3::b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const bool doorbell = p.is_write() && p.get_address() == reg::CMDQ_PROD;
  trap(p, delay, doorbell, [&] {
    regs_.transport(p, reg::kMmioBytes);
    // QEMU smmuv3_accel_alloc_veventq: once the guest enables its EVTQ, of its size.
    if (p.is_write() && p.get_address() == reg::CR0 && r_.cr0.get<reg::CR0_EVTQEN>())
      alloc_veventq(fd_, viommu_id_, driver::VeventqType::ArmSmmuv3,
                    1u << reg::Q_BASE_LOG2SIZE::get(r_.evtq_base.get()));
  });
}

bool VSmmuv3::host_event_interrupt(driver::Smmuv3Driver& host) {
  return TrappedMmio::host_event_interrupt(host, &driver::Smmuv3Driver::drain_events);
}

bool VSmmuv3::write_guest_event(const Vevent& e) {
  cpu_.wait_cycles(costs_.complete_cycles);   // the record's store and the PROD update
  // A LOST_EVENTS header stands for records the vEVENTQ dropped: the guest sees an
  // overflow, as a full EVTQ of its own would show it.
  const bool lost = e.header.flags & kVeventqFlagLostEvents;
  const auto slot = lost ? std::nullopt : r_.evtq_next_slot();
  if (!slot) {   // lost here, or by the vEVENTQ
    event_lost(e);
    if (!r_.cr0.get<reg::CR0_EVTQEN>()) return false;
    if (lost) r_.evtq_overflow();
    return true;
  }
  ram_.write(slot->address, e.evt.data(), sizeof e.evt);
  r_.evtq_produce();
  event_forwarded(e);
  return true;
}

common::Decoded VSmmuv3::decode(const uint64_t* entry, const common::QueueState&) {
  common::Decoded d;
  const smmuv3::DecodeCaps caps{cfg_.range_invalidation, cfg_.sid_bits, cfg_.ssid_bits};
  pending_words_ = {entry[0], entry[1]};
  const auto cmd = smmuv3::decode_command(pending_words_, caps, nullptr);
  // Stage-2 and EL2 invalidations are illegal on an SMMU without stage 2 (IDR0.S2P = 0)
  // or EL2 support (IDR0.HYP = 0) (IHI 0070 §4.4).
  const bool unsupported = cmd && (cmd->op == Opcode::TlbiS2Ipa || cmd->op == Opcode::TlbiS12Vmall ||
                                   cmd->op == Opcode::TlbiEl2All || cmd->op == Opcode::TlbiEl2Asid ||
                                   cmd->op == Opcode::TlbiEl2Va);
  if (!cmd || unsupported) { d.error_code = reg::CERROR_ILL; return d; }
  pending_ = *cmd;
  d.legal = true;
  d.type = uint8_t(cmd->op);
  d.barrier = cmd->op == Opcode::Sync;
  return d;
}

void VSmmuv3::execute() {
  const smmuv3::Command& c = pending_;
  auto forward = [&] {
    forwards_.push_back(driver::ViommuArmSmmuv3Invalidate{{pending_words_[0], pending_words_[1]}});
    stats_.forwarded.inc();
    return forwards_.size() < costs_.forward_batch || flush();
  };
  bool ok = true;
  switch (c.op) {
    case Opcode::TlbiNhAll: case Opcode::TlbiNhAsid: case Opcode::TlbiNhVa: case Opcode::TlbiNhVaa:
    case Opcode::TlbiNsnhAll:
      if (cfg_.inject == VmmFault::DropTlbi) { stats_.dropped_injected.inc(); break; }
      ok = forward();
      break;
    case Opcode::CfgiCd: case Opcode::CfgiCdAll: case Opcode::AtcInv:
      // QEMU: a command for a device with no vDEVICE is not forwarded.
      if (!devices_.count(c.sid)) { stats_.dropped_unattached.inc(); break; }
      if (c.op == Opcode::AtcInv && cfg_.inject == VmmFault::DropAtcInv) { stats_.dropped_injected.inc(); break; }
      ok = forward();
      break;
    case Opcode::CfgiSte: {
      ok = flush();
      auto it = devices_.find(c.sid);
      if (it == devices_.end()) { stats_.dropped_unattached.inc(); break; }
      ok = ok && install_ste(c.sid, it->second);
      break;
    }
    case Opcode::CfgiAll: {   // CFGI_STE_RANGE: 2^(Range+1) StreamIDs; Range 31 is CFGI_ALL
      ok = flush();
      const uint64_t span = c.range >= kStreamIdMax - 1 ? (1ull << kStreamIdMax) : (2ull << c.range);
      const uint64_t lo = c.range >= kStreamIdMax - 1 ? 0 : (uint64_t(c.sid) & ~(span - 1));
      for (auto it = devices_.lower_bound(lo); ok && it != devices_.end() && it->first < lo + span; ++it)
        ok = install_ste(it->first, it->second);
      break;
    }
    case Opcode::Sync:
      // Every forward before it has returned (each after the host's CMD_SYNC); then the
      // guest's sync completes: CONS moves past it, and its MSI is written.
      ok = flush();
      if (!ok) break;
      cpu_.wait_cycles(costs_.complete_cycles);
      if (c.cs == smmuv3::SyncCs::Irq && c.msi_addr != 0) ram_.write(c.msi_addr, &c.msi_data, 4);
      break;
    default:   // PREFETCH_*, and PRI_RESP / RESUME (no PRI or stall here)
      stats_.absorbed.inc();
      break;
  }
  if (!ok) cmdq_.fail_execution(reg::CERROR_ILL);
}

bool VSmmuv3::flush() {
  if (forwards_.empty()) return true;
  uint32_t n = uint32_t(forwards_.size());
  const Errno e = invalidate_ioctl(costs_.iommufd_entry_cycles * n, n, [&] {
    return fd_.hwpt_invalidate(viommu_id_, driver::InvalidateDataType::ArmSmmuv3, forwards_.data(),
                               sizeof(driver::ViommuArmSmmuv3Invalidate), &n);
  });
  forwards_.clear();
  return e == Errno::Ok;
}

bool VSmmuv3::replace_hwpt(Device& d, uint32_t hwpt) {
  if (ioctl(0, [&] { return fd_.attach(d.dev_id, hwpt); }) != Errno::Ok) return false;
  if (d.hwpt && ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(d.hwpt); }) != Errno::Ok) return false;
  d.hwpt = hwpt == abort_hwpt_ || hwpt == bypass_hwpt_ ? 0 : hwpt;
  return true;
}

bool VSmmuv3::install_ste(uint64_t vsid, Device& d) {
  stats_.installs.inc();
  // QEMU smmu_find_ste: a StreamID beyond the guest's (linear) table has no STE: abort.
  const uint64_t scfg = r_.strtab_base_cfg.get();
  const unsigned log2size = unsigned(reg::STRTAB_CFG_LOG2SIZE::get(scfg));
  uint64_t w[2] = {0, 0};
  if (reg::STRTAB_CFG_FMT::get(scfg) == 0 && log2size < 64 && !(vsid >> log2size)) {
    const uint64_t addr = (r_.strtab_base.get<reg::STRTAB_BASE_ADDR>() << 6) + vsid * 64;
    cpu_.wait_cycles(costs_.fetch_cycles);
    ram_.read(addr, w, sizeof w);
  }
  const uint64_t config = (w[0] >> kConfigShift) & 0x7;
  const bool valid = w[0] & kSteValid, stage1 = valid && (config & 0b101) == 0b101;
  // A guest STE that is not stage 1 takes the abort or bypass HWPT
  // (smmuv3_accel_install_nested_ste -> smmuv3_accel_dev_uninstall_nested_ste).
  if (!stage1) return replace_hwpt(d, valid && config == kConfigBypass ? bypass_hwpt_ : abort_hwpt_);
  const driver::HwptArmSmmuv3 data{{w[0] & kSte0Mask, w[1] & kSte1Mask}};
  // The same stage-1 fields as installed: nothing to change (a guest re-sends CFGI_STE when
  // only its CD changed; parking the device on abort then would fault its DMAs meanwhile).
  if (d.hwpt && d.vste[0] == data.ste[0] && d.vste[1] == data.ste[1]) return true;
  // A new one replaces the installed HWPT, which goes first (abort meanwhile).
  if (d.hwpt && !replace_hwpt(d, abort_hwpt_)) return false;
  uint32_t hwpt = 0;
  const Errno e = ioctl(costs_.hwpt_alloc_cycles, [&] {
    return fd_.hwpt_alloc(0, d.dev_id, viommu_id_, driver::UserData{driver::HwptDataType::ArmSmmuv3, &data, sizeof data},
                          &hwpt);
  });
  if (e != Errno::Ok) return false;
  if (ioctl(0, [&] { return fd_.attach(d.dev_id, hwpt); }) != Errno::Ok) {
    ioctl(costs_.destroy_cycles, [&] { return fd_.destroy(hwpt); });
    return false;
  }
  d.hwpt = hwpt;
  d.vste[0] = data.ste[0];
  d.vste[1] = data.ste[1];
  return true;
}

void VSmmuv3::register_stats(common::StatRegistry& reg, const std::string& p) const {
  register_exit_stats(reg, p, "guest CMDQ_PROD writes (each runs the queue)",
                      "trapped guest register reads (CMDQ_CONS polls among them)");
  reg.add(p + ".commands.forwarded", stats_.forwarded, "count", "guest commands forwarded with IOMMU_HWPT_INVALIDATE");
  reg.add(p + ".commands.absorbed", stats_.absorbed, "count", "guest commands the VMM completes itself (PREFETCH_*)");
  reg.add(p + ".commands.dropped_unattached", stats_.dropped_unattached, "count",
          "guest commands naming a StreamID with no vDEVICE (not forwarded)");
  if (cfg_.inject != VmmFault::None)
    reg.add(p + ".commands.dropped_injected", stats_.dropped_injected, "count", "guest commands dropped by vmm.inject");
  reg.add(p + ".ste_installs", stats_.installs, "count", "guest STEs installed as nested HWPTs (CFGI_STE*)");
  if (cfg_.accelerated)
    reg.add(p + ".hw_queues", stats_.hw_queues, "count", "guest VCMDQs allocated (IOMMU_HW_QUEUE_ALLOC)");
  register_ioctl_stats(reg, p, "of which failed (the guest sees CERROR_ILL)");
  register_fanout_stats(reg, p);
  register_event_stats(reg, p, "host event records its driver reported to the vIOMMU's vEVENTQ (arm_vmaster_report_event)",
                       "the guest's EVTQ (OVFLG)");
  const common::CommandQueue::Stats& q = cmdq_.stats();
  reg.add(p + ".illegal_commands", q.illegal, "count", "guest commands that raised CERROR_ILL");
}

}  // namespace iommusim::vmm

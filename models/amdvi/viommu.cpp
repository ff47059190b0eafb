#include "models/amdvi/viommu.h"

#include <algorithm>

#include "models/amdvi/events.h"
#include "models/amdvi/register_block.h"
#include "models/amdvi/registers.h"
#include "models/common/queue_ring.h"

namespace iommusim::amdvi::viommu {

namespace {
std::string reg_name(unsigned gid, const char* what) { return "VIOMMU" + std::to_string(gid) + "_" + what; }
constexpr uint64_t kPage = 0x1000;
}  // namespace

GuestCommandBuffer::GuestCommandBuffer(unsigned gid, common::RegisterFile& regs, const common::Clock& clk,
                                       const GuestQueueConfig& cfg, common::CommandQueue::Drain drain,
                                       GuestQueueOwner& owner)
    : gid_(gid), owner_(owner),
      cmd_head_{regs, reg_name(gid, "VF_CMD_HEAD"), vf_offset(gid, VF_CMD_HEAD)},
      cmd_tail_{regs, reg_name(gid, "VF_CMD_TAIL"), vf_offset(gid, VF_CMD_TAIL)},
      evt_head_{regs, reg_name(gid, "VF_EVT_HEAD"), vf_offset(gid, VF_EVT_HEAD)},
      evt_tail_{regs, reg_name(gid, "VF_EVT_TAIL"), vf_offset(gid, VF_EVT_TAIL)},
      devid_map_{regs, reg_name(gid, "VFCTRL_DEVID_MAP"), vf_cntl_offset(gid, VFCTRL_DEVID_MAP)},
      domid_map_{regs, reg_name(gid, "VFCTRL_DOMID_MAP"), vf_cntl_offset(gid, VFCTRL_DOMID_MAP)},
      misc_{regs, reg_name(gid, "VFCTRL_MISC"), vf_cntl_offset(gid, VFCTRL_MISC)},
      cmd_ctl_{regs, reg_name(gid, "VFCTRL_CMD"), vf_cntl_offset(gid, VFCTRL_CMD)},
      evt_ctl_{regs, reg_name(gid, "VFCTRL_EVT"), vf_cntl_offset(gid, VFCTRL_EVT)},
      queue_(clk, common::CommandQueueConfig{cfg.batch, cfg.decode_cycles, cfg.exec_cycles},
             [this](uint64_t gpa, void* dst, unsigned len) { return read_guest(gpa, dst, len); },
             std::move(drain), *this) {
  // Head/tail: byte offsets [18:4], as the native registers (amd_viommu_guest_mmio_write
  // keeps 0x7FFF0). The guest moves the command tail and the event head.
  const uint64_t ptr = common::mask(18, 4);
  cmd_head_.writable(ptr);
  cmd_tail_.writable(ptr).on_write([this](uint64_t, uint64_t) { queue_.kick(); });
  evt_head_.writable(ptr);
  evt_tail_.writable(ptr);
  // The map controls are commands to the hardware: it stores the entry; they read as 0.
  devid_map_.on_write([this](uint64_t, uint64_t v) {
    devid_map_.set(0);
    if (MAP_GO::get(v)) owner_.map_update(gid_, MapTable::DeviceId, v);
  });
  domid_map_.on_write([this](uint64_t, uint64_t v) {
    domid_map_.set(0);
    if (MAP_GO::get(v)) owner_.map_update(gid_, MapTable::DomainId, v);
  });
  misc_.writable(MISC_TRANS_DEVID::set(0, 0xFFFF));
  const uint64_t qctl = QCTL_LEN::set(0, 0xF) | QCTL_EN::set(0, 1) | QCTL_INT_EN::set(0, 1) | common::mask(51, 12);
  cmd_ctl_.writable(qctl).on_write([this](uint64_t old, uint64_t v) {
    if (!QCTL_EN::get(v)) halted_ = false;   // En 0 -> 1 restarts a stopped buffer, as CmdBufEn
    if (QCTL_EN::get(v) && !QCTL_EN::get(old)) queue_.kick();
  });
  evt_ctl_.writable(qctl);
}

bool GuestCommandBuffer::read_guest(uint64_t gpa, void* dst, unsigned len) {
  // Guest pages need not be contiguous in system memory: one access per page.
  auto* out = static_cast<uint8_t*>(dst);
  while (len) {
    const unsigned n = unsigned(std::min<uint64_t>(len, kPage - (gpa & (kPage - 1))));
    if (!guest_access(false, gpa, out, n)) return false;
    gpa += n; out += n; len -= n;
  }
  return true;
}

// Guest RAM as the gid's translation DeviceID (VF_CNTL MISC) sees it.
bool GuestCommandBuffer::guest_access(bool write, uint64_t gpa, void* data, unsigned len) {
  return owner_.device_access(uint16_t(MISC_TRANS_DEVID::get(misc_.get())), write, gpa, data, len);
}

common::QueueState GuestCommandBuffer::queue_state() {
  common::QueueState q;
  const uint64_t ctl = cmd_ctl_.get();
  const unsigned len = unsigned(QCTL_LEN::get(ctl));
  const bool len_ok = len >= reg::kMinLogLen && len <= reg::kMaxLogLen;
  q.ring = common::IndexRing{len_ok ? len : reg::kMinLogLen, false};
  q.base = QCTL_BASE::get_address(ctl);
  q.entry_bytes = unsigned(reg::kEntryBytes);
  const uint64_t bytes = reg::log_entries(q.ring.log2size) * reg::kEntryBytes;
  q.head = uint32_t(reg::RING_PTR::get_address(cmd_head_.get()) % bytes / reg::kEntryBytes);
  q.tail = uint32_t(reg::RING_PTR::get_address(cmd_tail_.get()) % bytes / reg::kEntryBytes);
  // VCmdEn and vIommuEn off: the hardware does not read any guest buffer.
  if (owner_.guest_queues_enabled() && QCTL_EN::get(ctl) && !halted_ && len_ok && !q.ring.empty(q.tail, q.head))
    q.status = common::QueueState::Status::Ready;
  return q;
}

common::Decoded GuestCommandBuffer::decode(const uint64_t* entry, const common::QueueState&) {
  pending_words_ = {entry[0], entry[1]};
  return owner_.decode_entry(entry, pending_);
}

void GuestCommandBuffer::execute() {
  Command c = pending_;
  switch (c.op) {
    case Opcode::InvalidateIommuPages: {
      stats_.map_lookups.inc();
      const MapEntry m = owner_.map_lookup(gid_, MapTable::DomainId, c.domain_id);
      if (!m.valid) { stats_.unmapped_ids.inc(); queue_.fail_execution(0); return; }
      c.domain_id = m.host_id;
      owner_.execute_invalidation(c, guest_queue_tag(gid_));
      return;
    }
    case Opcode::InvalidateIotlbPages: {
      stats_.map_lookups.inc();
      const MapEntry m = owner_.map_lookup(gid_, MapTable::DeviceId, c.device_id);
      if (!m.valid) { stats_.unmapped_ids.inc(); queue_.fail_execution(0); return; }
      // Before consumed() moves it, the head is this command's offset.
      late_guest_device_ = c.device_id;
      late_command_gpa_ = QCTL_BASE::get_address(cmd_ctl_.get()) + reg::RING_PTR::get_address(cmd_head_.get());
      c.device_id = c.queue_id = m.host_id;
      owner_.execute_invalidation(c, guest_queue_tag(gid_));
      return;
    }
    case Opcode::CompletionWait:
      // A device invalidation that timed out: IOTLB_INV_TIMEOUT in the guest's log, naming
      // its DeviceID and the command's GPA (AMD 48882 Table 58), as the host's buffer does.
      if (uint32_t late = 0; !owner_.completion_barrier(queue_, guest_queue_tag(gid_), &late)) {
        EventRecord e;
        e.code = EventCode::IotlbInvTimeout;
        e.device_id = late_guest_device_;
        e.address = late_command_gpa_;
        log_guest_event(e);
      }
      // The store goes to guest RAM; a store that fails is COMMAND_HW_ERROR in the guest's log.
      if (c.store && !guest_access(true, c.store_addr, &c.store_data, 8)) {
        EventRecord e;
        e.code = EventCode::CommandHwError;
        e.type = kHwErrMasterAbort;
        e.address = c.store_addr;
        log_guest_event(e);
      }
      return;
    default:
      // MODEL CHOICE: the rest goes to the hypervisor (INVALIDATE_DEVTAB_ENTRY: the VMM
      // re-installs the nested DTE; INVALIDATE_IOMMU_ALL: what it covers of the VM).
      stats_.handed_to_hypervisor.inc();
      if (hypervisor_) hypervisor_(pending_words_);
      return;
  }
}

void GuestCommandBuffer::consumed(const common::QueueState&, uint32_t head) {
  cmd_head_.set(uint64_t(head) * reg::kEntryBytes);
}

// As the native buffer: ILLEGAL_COMMAND_ERROR (an unmapped guest ID included) or
// COMMAND_HW_ERROR (a failed fetch) at the command's GPA; the head stays on it and the
// buffer stops until the command control's En is written 0 then 1.
void GuestCommandBuffer::halt(const common::QueueError& e, const common::QueueState&) {
  const EventRecord ev = queue_halt_record(e);
  halted_ = true;   // before the record's write (which waits): the queue must not resume
  stopped_seen_ = false;
  log_guest_event(ev);
  stopped_seen_ = true;   // what software sees: the record is in the log
}

void GuestCommandBuffer::log_guest_event(const EventRecord& e) {
  const uint64_t ctl = evt_ctl_.get();
  const unsigned len = unsigned(QCTL_LEN::get(ctl));
  if (!QCTL_EN::get(ctl) || len < reg::kMinLogLen || len > reg::kMaxLogLen) { stats_.guest_events_lost.inc(); return; }
  const common::OffsetRing ring{reg::log_entries(len) * reg::kEntryBytes, reg::kEntryBytes};
  const uint64_t head = reg::RING_PTR::get_address(evt_head_.get()) % ring.size_bytes;
  const uint64_t tail = reg::RING_PTR::get_address(evt_tail_.get()) % ring.size_bytes;
  EventWords w = encode_event(e);
  if (ring.full(head, tail) || !guest_access(true, QCTL_BASE::get_address(ctl) + tail, w.data(), 16)) {
    stats_.guest_events_lost.inc();
    return;
  }
  evt_tail_.set(ring.next(tail));
  stats_.guest_events.inc();
}

void GuestCommandBuffer::register_stats(common::StatRegistry& reg, const std::string& p) const {
  const common::CommandQueue::Stats& q = queue_.stats();
  reg.add(p + ".commands", q.executed, "count", "guest commands the hardware executed from the guest's buffer");
  reg.add(p + ".errors", q.errors, "count", "guest buffer stops (illegal command, unmapped guest ID, fetch abort)");
  reg.add(p + ".unmapped_ids", stats_.unmapped_ids, "count",
          "guest commands naming a guest DomainID / DeviceID with no map entry (ILLEGAL_COMMAND_ERROR)");
  reg.add(p + ".handed_to_hypervisor", stats_.handed_to_hypervisor, "count",
          "guest commands handed to the hypervisor (INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_ALL, ...)");
  reg.add(p + ".map_lookups", stats_.map_lookups, "count", "DomainID / DeviceID map lookups");
  reg.add(p + ".guest_events", stats_.guest_events, "count", "records the hardware stored in the guest's event log");
  reg.add(p + ".guest_events_lost", stats_.guest_events_lost, "count", "guest event records lost (log off or full)");
  reg.add(p + ".command_exec", q.exec_ps, "ns", "execution time per guest command (after decode)", 1e-3);
  queue_.register_stats(reg, p + ".cmdbuf", command_type_names());
}

}  // namespace iommusim::amdvi::viommu

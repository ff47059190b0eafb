// AMD hardware vIOMMU (HW-vIOMMU): guest command buffers the IOMMU reads and executes
// itself, with the guest's DomainIDs and DeviceIDs rewritten through map tables in memory.
//
// Source: the unmerged RFC "iommu/amd: Add AMD HW-vIOMMU support" (Suravee Suthikulpanit,
// 2023; drivers/iommu/amd/viommu.c, amd_viommu.h, uapi amd_viommu.h) and AMD 48882. Every
// layout here is from the RFC only; where it is unclear the choice is a MODEL CHOICE,
// named where it is made (docs/amdvi.md, "Hardware vIOMMU").
//
// What it models
// - Per guest ID (gid) a VF MMIO page (RFC VIOMMU_VF_MMIO_BASE: 4 KiB per gid; the guest's
//   command-buffer head at 0x0 and tail at 0x8, amd_viommu_guest_mmio_write) and a VF_CNTL
//   block (VIOMMU_VFCTRL_MMIO_BASE: 64 bytes per gid): DeviceID map control 0x00, DomainID
//   map control 0x08 (value gID << 46 | hID << 14 | bit 63 | bit 0, set_device_mapping /
//   set_domain_mapping), MISC 0x10 (the translation DeviceID in [31:16],
//   viommu_set_translate_dte), command control 0x20 and event control 0x28 (Len [3:0], En
//   [8], IntEn [9], Base [51:12], the guest's GPA: the MMIO_CMD_BUF_OFFSET and
//   MMIO_CONTROL_OFFSET cases of amd_viommu_guest_mmio_write).
// - The guest's command buffer in guest RAM at a GPA, read by the IOMMU through the DTE of
//   the gid's translation DeviceID (the VM's stage 2: viommu_set_translate_dte), batch by
//   batch on the shared queue engine (common::CommandQueue) with this hook; the AMD decoder
//   (decode_command) with the IOMMU's caps.
// - The DomainID and DeviceID map tables in the IOMMU-private address space (8-byte
//   entries at 0x20_0000_0000 + gid * 512 KiB + gDomID * 8, 16-byte entries at
//   0x10_0000_0000 + gid * 1 MiB + gDevID * 16: get_domain_mapping, dump_device_mapping),
//   translated to system addresses through the v1 table of the IOMMU's own DTE
//   (set_iommu_dte); cached in a map cache, fetched with memory time on a miss. A write of a
//   map control register stores the entry and drops its cached copy.
// - Control.VCmdEn (52) and vIommuEn (53) (RFC CONTROL_VCMD_EN, CONTROL_VIOMMU_EN), EFR
//   bit 55 (FEATURE_VIOMMU).
// - What the hardware runs itself: INVALIDATE_IOMMU_PAGES (gDomID -> hDomID),
//   INVALIDATE_IOTLB_PAGES (gDevID -> hDevID in DeviceID and QueueID), COMPLETION_WAIT (the
//   store to guest RAM through the translation DeviceID). MODEL CHOICE (the RFC does not
//   say): every other command is handed to the hypervisor (a callback the VMM registers per
//   gid); the guest queue waits until it returns. An INVALIDATE_* naming an unmapped guest
//   ID is an ILLEGAL_COMMAND_ERROR in the guest's event log, the guest buffer stops
//   (MODEL CHOICE), nothing is invalidated.
// - The guest event log's head and tail in the VF page at 0x10 and 0x18 (MODEL CHOICE: the
//   RFC names only the command buffer's two).
//
// What it does not model: guest PPR logs, dual event logs, the command-buffer dirty status
// region (0x400000), guest interrupts (COMPLETION_WAIT's I, EventLogInt: no MSI), guest
// DMA faults reaching the guest log through DTE.vImuEn (the host writes the fields below
// and the DTE decoder checks them, nothing routes by them), the RFC's 64K-entry clear loops
// at gid allocation (the tables start zeroed).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"
#include "models/common/bits.h"
#include "models/common/command_queue.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"

namespace iommusim::amdvi::viommu {

using common::Field;

// MODEL CHOICE: the RFC's VF and VF_CNTL BARs (vendor-specific capability VF_BAR /
// VF_CNTL_BAR) are served in the model's register window at these offsets.
constexpr uint64_t kVfCntlWindow = 0x10000, kVfCntlBytes = 64;   // VIOMMU_VFCTRL_MMIO_ENTRY_SIZE
constexpr uint64_t kVfWindow = 0x20000, kVfBytes = 0x1000;        // VIOMMU_VF_MMIO_ENTRY_SIZE
constexpr uint64_t vf_cntl_offset(unsigned gid, uint64_t reg) { return kVfCntlWindow + gid * kVfCntlBytes + reg; }
constexpr uint64_t vf_offset(unsigned gid, uint64_t reg) { return kVfWindow + gid * kVfBytes + reg; }
constexpr uint64_t window_bytes(unsigned guests) { return kVfWindow + uint64_t(guests) * kVfBytes; }

// VF page (per gid).
constexpr uint64_t VF_CMD_HEAD = 0x00, VF_CMD_TAIL = 0x08;
constexpr uint64_t VF_EVT_HEAD = 0x10, VF_EVT_TAIL = 0x18;   // MODEL CHOICE
// VF_CNTL block (per gid).
constexpr uint64_t VFCTRL_DEVID_MAP = 0x00, VFCTRL_DOMID_MAP = 0x08, VFCTRL_MISC = 0x10, VFCTRL_CMD = 0x20,
                   VFCTRL_EVT = 0x28;
using MAP_GO = Field<63, 63>;
using MAP_GUEST_ID = Field<61, 46>;
using MAP_HOST_ID = Field<29, 14>;
using MAP_VALID = Field<0, 0>;
using MISC_TRANS_DEVID = Field<31, 16>;
using QCTL_LEN = Field<3, 0>;
using QCTL_EN = Field<8, 8>;
using QCTL_INT_EN = Field<9, 9>;
using QCTL_BASE = Field<51, 12>;

// The value of a map control write (set_device_mapping / set_domain_mapping). host_id 0 is
// the RFC's clear (clear_device_mapping / clear_domain_mapping write it).
constexpr uint64_t map_control(uint16_t guest_id, uint16_t host_id) {
  return (uint64_t{1} << 63) | (uint64_t(guest_id) << 46) | (uint64_t(host_id) << 14) | 1;
}

// IOMMU-private address space (amd_viommu.h).
constexpr uint64_t kDevIdMapBase = 0x1000000000ull, kDevIdMapStride = 1ull << 20, kDevIdEntryBytes = 16;
constexpr uint64_t kDomIdMapBase = 0x2000000000ull, kDomIdMapStride = 1ull << 19, kDomIdEntryBytes = 8;
constexpr uint64_t kGuestCmdBufBase = 0x2800000000ull, kGuestEvtLogBase = 0x4000000000ull;
constexpr uint64_t kCmdbufDirtyStatusBase = 0x400000ull;

enum class MapTable : uint8_t { DeviceId, DomainId };
constexpr uint64_t map_entry_address(MapTable t, unsigned gid, uint16_t guest_id) {
  return t == MapTable::DeviceId ? kDevIdMapBase + gid * kDevIdMapStride + uint64_t(guest_id) * kDevIdEntryBytes
                                 : kDomIdMapBase + gid * kDomIdMapStride + uint64_t(guest_id) * kDomIdEntryBytes;
}
constexpr uint64_t map_table_bytes(MapTable t) { return t == MapTable::DeviceId ? kDevIdMapStride : kDomIdMapStride; }
constexpr uint64_t map_table_base(MapTable t, unsigned gid) { return map_entry_address(t, gid, 0); }

// A map-table entry (MODEL CHOICE: the RFC's driver only reads the first quadword back;
// the model stores the control write's V [0] and host ID [29:14] there, so an entry is what
// the host wrote; a clear (host ID 0) stores 0, no mapping; a DeviceID entry's second
// quadword is 0).
struct MapEntry { bool valid = false; uint16_t host_id = 0; };
inline uint64_t encode_map_entry(const MapEntry& e) {
  return e.valid ? (MAP_VALID::set(0, 1) | MAP_HOST_ID::set(0, e.host_id)) : 0;
}
inline MapEntry decode_map_entry(uint64_t v) {
  return MapEntry{MAP_VALID::get(v) != 0, uint16_t(MAP_HOST_ID::get(v))};
}

// DTE data[3] (quadword 3) vIOMMU fields (RFC set_dte_viommu). MODEL CHOICE: the RFC's
// macros name [31:16] DTE_VIOMMU_GUESTID_SHIFT and [47:32] DTE_VIOMMU_GDEVICEID_SHIFT, but
// set_dte_viommu writes the guest DeviceID with the first and the gid with the second (its
// comments say so); the model follows the code: GDeviceID [31:16], GuestID [47:32].
using DTE3_VIMU_EN = Field<15, 15>;
using DTE3_GDEVICE_ID = Field<31, 16>;
using DTE3_GUEST_ID = Field<47, 32>;

// What a guest queue needs of its IOMMU.
class GuestQueueOwner {
 public:
  virtual ~GuestQueueOwner() = default;
  // Control.vIommuEn and VCmdEn.
  virtual bool guest_queues_enabled() const = 0;
  // `len` bytes (within a page) at address `addr` as seen by DeviceID `devid`, through the
  // v1 table of its DTE: a guest's GPA through its translation DeviceID, or an
  // IOMMU-private address through the IOMMU's own. False when that fails (no usable DTE,
  // a fault, an abort). Waits for the access.
  virtual bool device_access(uint16_t devid, bool write, uint64_t addr, void* data, unsigned len) = 0;
  // The map entry for (gid, table, guest ID), through the map cache. Waits.
  virtual MapEntry map_lookup(unsigned gid, MapTable table, uint16_t guest_id) = 0;
  // A map control register write: the entry stored, its cached copy dropped. Waits.
  virtual void map_update(unsigned gid, MapTable table, uint64_t control) = 0;
  // The IOMMU's own execution of a (rewritten) INVALIDATE_IOMMU_PAGES / _IOTLB_PAGES from
  // command queue `queue` (kGuestQueueTag(gid)): its device invalidations are that queue's.
  virtual void execute_invalidation(const Command& c, unsigned queue) = 0;
  // COMPLETION_WAIT's wait: earlier commands, older walks, and queue `queue`'s own device
  // invalidations (another queue's are not its to wait for, nor to consume). False when one
  // of them timed out (the late DeviceID in `late_device`).
  virtual bool completion_barrier(common::CommandQueue& q, unsigned queue, uint32_t* late_device) = 0;
  // Decodes a command with the IOMMU's caps (its RegisterBlock's decoder).
  virtual common::Decoded decode_entry(const uint64_t* entry, Command& out) const = 0;
};

// The device-invalidation tag of guest `gid`'s command buffer (the host's buffer is 0).
constexpr unsigned guest_queue_tag(unsigned gid) { return gid + 1; }

// A guest command the hardware hands to the hypervisor: the 16 bytes as the guest wrote
// them; the queue waits until the call returns.
using HypervisorHandler = std::function<void(const CmdWords&)>;

struct GuestQueueConfig {
  unsigned batch = 8, decode_cycles = 2, exec_cycles = 4;
};

// One gid: its VF page and VF_CNTL registers and its command buffer.
class GuestCommandBuffer : private common::CommandQueueVendor {
 public:
  // `drain`: the IOMMU's wait for requests older than the last invalidation (barriers).
  GuestCommandBuffer(unsigned gid, common::RegisterFile& regs, const common::Clock& clk, const GuestQueueConfig& cfg,
                     common::CommandQueue::Drain drain, GuestQueueOwner& owner);
  void run() { queue_.run(); }   // the consumer thread's body
  void set_hypervisor(HypervisorHandler h) { hypervisor_ = std::move(h); }
  void set_probe(std::function<void(const common::CommandTrace&)> p) { queue_.set_probe(std::move(p)); }
  // Control.VCmdEn / vIommuEn turned on: the queue may run.
  void kick() { queue_.kick(); }
  // The buffer stopped on an error, its event record written (until En is written 0, 1).
  bool stopped() const { return halted_ && stopped_seen_; }
  unsigned gid() const { return gid_; }
  struct Stats {
    common::Counter handed_to_hypervisor, unmapped_ids, map_lookups, guest_events, guest_events_lost;
  };
  const Stats& stats() const { return stats_; }
  const common::CommandQueue::Stats& queue_stats() const { return queue_.stats(); }
  void register_stats(common::StatRegistry& reg, const std::string& p) const;

 private:
  common::QueueState queue_state() override;
  uint8_t trace_opcode(const uint64_t* entry) const override { return uint8_t(entry[0] >> 60); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState& q) override;
  void execute() override;
  void consumed(const common::QueueState& q, uint32_t head) override;
  void halt(const common::QueueError& e, const common::QueueState& q) override;
  // Stores a 16-byte record at the guest event log's tail (through the translation DeviceID).
  void log_guest_event(const EventRecord& e);
  bool read_guest(uint64_t gpa, void* dst, unsigned len);
  bool guest_access(bool write, uint64_t gpa, void* data, unsigned len);

  unsigned gid_;
  GuestQueueOwner& owner_;
  common::Reg<uint64_t> cmd_head_, cmd_tail_, evt_head_, evt_tail_;
  common::Reg<uint64_t> devid_map_, domid_map_, misc_, cmd_ctl_, evt_ctl_;
  common::CommandQueue queue_;
  HypervisorHandler hypervisor_;
  Command pending_;
  CmdWords pending_words_{};
  // The last INVALIDATE_IOTLB_PAGES: its gDevID and GPA, for the IOTLB_INV_TIMEOUT record.
  uint16_t late_guest_device_ = 0;
  uint64_t late_command_gpa_ = 0;
  bool halted_ = false;
  bool stopped_seen_ = true;
  Stats stats_;
};

}  // namespace iommusim::amdvi::viommu

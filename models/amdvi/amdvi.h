// AMD IOMMU (AMD-Vi, pub 48882) model, blocking and cycle-approximate.
//
// What it models
// - Registers at the architected MMIO offsets (models/amdvi/register_block.h, shared with a
//   VMM's emulated vAMD): Device Table Base, Command Buffer Base,
//   Event Log Base, Control, EFR (describes exactly the features below), EFR2 (GCR3TRPMode), Command Buffer
//   Head/Tail, Event Log Head/Tail and Status (CmdBufRun, EvtLogRun, ComWaitInt,
//   EvtOverflow; the interrupt/overflow bits are write-1-to-clear).
// - Translation by DeviceID (requester ID) through the 256-bit DTE read from the device
//   table: V=0 passes untranslated; V=1 TV=0 aborts (no page-table information, QEMU
//   terminates the walk, no event); Mode 0 passes untranslated, gated by DTE IR/IW;
//   Mode 1..6 walks the v1 host table (AmdV1Format, DTE IR/IW ANDed in); GV=1 walks the
//   guest v2 (x86 4/5-level) table whose root comes from the GCR3 table indexed by PASID
//   (GLX+1 levels). GV=1 with Mode 1..6 is nested: the GCR3 entries and the guest tables
//   are GPAs translated through the host v1 table; the GCR3 table itself is at a GPA only
//   with Control.GCR3TRPMode (EFR2 bit 3 advertises it), else at an SPA. A request without PASID
//   on a GV=1 DTE uses the guest table of PASID 0 when GIOV=1, else the host table only.
//   A PASID on a GV=0 DTE is ignored (translated by the host table).
// - Cache tags: DomainID for every entry, PASID for guest (v2) entries (0 for v1-only).
//   Caches, all common::SetAssocCache: a DTE cache (DeviceID), a GCR3 cache
//   (DeviceID+PASID, remembers the DomainID), and the engine's IOTLB, guest and host
//   page-directory caches (guest_pdc, host_pdc) and GPA->SPA cache (gpa_cache).
// - Events written to the event log in memory: IO_PAGE_FAULT (with its flags),
//   ILLEGAL_DEV_TABLE_ENTRY, DEV_TAB_HW_ERROR, PAGE_TAB_HW_ERROR, ILLEGAL_COMMAND_ERROR;
//   a fault in the host (v1) table of a nested guest request is the host table's
//   IO_PAGE_FAULT (GN = 0, the DTE's DomainID, the GPA it refused), a fault in the guest
//   tables the guest's (GN = 1, the PASID, the GVA): MODEL DECISION, 48882 §2.5 gives the
//   record no stage field;
//   a full log sets EvtOverflow and stops logging (EvtLogRun=0) until EventLogEn is
//   toggled, as Linux amd_iommu_restart_event_logging does.
// - The command buffer, on the shared engine (common::CommandQueue): COMPLETION_WAIT (store, interrupt), INVALIDATE_DEVTAB_ENTRY,
//   INVALIDATE_IOMMU_PAGES (S, PDE, GN, PASID), INVALIDATE_IOTLB_PAGES, INVALIDATE_INTERRUPT_TABLE (accepted), INVALIDATE_IOMMU_ALL. An
//   illegal command logs ILLEGAL_COMMAND_ERROR (address = the command's system address),
//   clears CmdBufRun and leaves CmdBufHead at it; writing CmdBufEn 0 then 1 restarts.
//   Invalidations cost decode + fixed execution + cache scans (docs/amdvi.md).
//   COMPLETION_WAIT completes after every earlier command and every older walk.
// - ATS (docs/ats.md): with DTE.I set, a device's Translation Requests are answered from
//   the IOTLB or a walk and its Translated requests go to memory as given; with I = 0 both
//   are refused and logged as INVALID_DEVICE_REQUEST (Type 001b, TR for a translation
//   request). INVALIDATE_IOTLB_PAGES sends an Invalidate Request to the device's ATC;
//   COMPLETION_WAIT completes once every earlier one's completion arrived, or, when one
//   does not within Control.InvTimeOut (1 ms .. 100 s; 0: none), logs IOTLB_INV_TIMEOUT
//   (DeviceID, the command's address) and completes at the timeout.
// - The hardware vIOMMU of the unmerged HW-vIOMMU RFC (viommu_guests > 0; models/amdvi/
//   viommu.h): per gid a guest command buffer in guest RAM the IOMMU reads itself, its VF
//   page and VF_CNTL registers, the DomainID / DeviceID map tables in the IOMMU-private
//   address space (through the IOMMU's own DTE, viommu_devid) and their map cache;
//   Control.VCmdEn / vIommuEn. Guest invalidations run through this model's own execution.
//
// What it does not model
// - Interrupt remapping, PPR log, GA log, exclusion range, MSI interrupts, A/D updates, SE (suppress repeated
//   faults; SA is honoured), the segmented device table, perf counters; of the HW vIOMMU
//   what viommu.h lists;
//   Control.GTEn is not checked (DTE GV and the EFR decide).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/register_block.h"
#include "models/amdvi/registers.h"
#include "models/amdvi/structures.h"
#include "models/amdvi/viommu.h"
#include "models/common/cache.h"
#include "models/common/clock.h"
#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/dma_attributes.h"
#include "models/common/iommu_block.h"
#include "models/common/payload_pool.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/common/translation_engine.h"

namespace iommusim::amdvi {

struct AmdViConfig {
  double clock_mhz = 1000.0;
  Caps caps;                          // what the EFR advertises and the decoders accept
  unsigned translation_cycles = 2;    // request pipeline before the IOTLB
  unsigned cmd_batch = 8;             // commands fetched per buffer read
  unsigned cmd_decode_cycles = 2;
  unsigned cmd_exec_cycles = 4;       // fixed part of every command
  unsigned completion_wait_cycles = 4;
  unsigned iotlb_inv_cycles = 4;      // INVALIDATE_IOTLB_PAGES: building the Invalidate Request
  // Defaults: as iommusim's config declares them (platforms/amdvi_lane.cpp; a test checks).
  common::CacheConfig dte_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
  common::CacheConfig gcr3_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
  common::TranslationEngineConfig translation;   // walkers, IOTLB, guest/host PDCs, GPA cache
  // Hardware vIOMMU (viommu.h): guest IDs 0..viommu_guests-1 (0: none; needs caps.viommu),
  // the IOMMU's own DeviceID (its DTE maps the private address space; MODEL CHOICE: 00:00.2,
  // where AMD IOMMUs sit) and the DomainID / DeviceID map cache.
  unsigned viommu_guests = 0;
  uint16_t viommu_devid = 2;
  common::CacheConfig map_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
};
std::string validate(const AmdViConfig& c);   // "" or a message naming the field

using common::CommandTrace;

class AmdVi : public common::IommuBlock,
              public ProgrammingInterface,
              private common::CommandQueueVendor,
              private viommu::GuestQueueOwner {
 public:

  SC_HAS_PROCESS(AmdVi);
  AmdVi(sc_core::sc_module_name name, const AmdViConfig& cfg);

  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  // ProgrammingInterface
  void set_command_probe(std::function<void(const CommandTrace&)> probe) override { cmdbuf_.set_probe(std::move(probe)); }
  uint64_t peek_register(uint64_t offset, unsigned len = 8) override { return IommuBlock::peek_register(offset, len); }
  // When the newest event record was written (its event interrupt cannot come before).
  uint64_t last_event_written_ps() const { return last_event_written_ps_; }
  uint64_t event_written_ps(uint32_t index) const override {
    return index < event_written_ps_.size() ? event_written_ps_[index] : 0;
  }
  const AmdViConfig& config() const { return cfg_; }

  // Hardware vIOMMU. A register access of a guest's VF page or VF_CNTL block (an address
  // of viommu.h's window), as the BAR mapped into the guest or the host driver makes it.
  void guest_register_access(tlm::tlm_generic_payload& p);
  // Guest `gid`'s commands the hardware hands to the hypervisor go to `h`.
  void set_hypervisor(unsigned gid, viommu::HypervisorHandler h) { guests_.at(gid)->set_hypervisor(std::move(h)); }
  void set_guest_command_probe(unsigned gid, std::function<void(const CommandTrace&)> probe) {
    guests_.at(gid)->set_probe(std::move(probe));
  }
  // The guest buffer stopped on an error (until its En is written 0 then 1).
  bool guest_buffer_stopped(unsigned gid) const { return guests_.at(gid)->stopped(); }
  const viommu::GuestCommandBuffer& guest_buffer(unsigned gid) const { return *guests_.at(gid); }
  const common::CacheStats& map_cache_stats() const { return map_cache_.stats(); }
  uint64_t map_fetches() const { return map_fetches_.value(); }

  const common::CacheStats& iotlb_stats() const { return engine_.iotlb_stats(); }
  const common::CacheStats& dte_cache_stats() const { return dte_cache_.stats(); }
  const common::CacheStats& gcr3_cache_stats() const { return gcr3_cache_.stats(); }
  const common::CacheStats& guest_pdc_stats() const { return engine_.s1_walk_cache_stats(); }
  const common::CacheStats& host_pdc_stats() const { return engine_.s2_walk_cache_stats(); }
  const common::CacheStats& gpa_cache_stats() const { return engine_.ipa_cache_stats(); }
  const common::Histogram& walk_reads() const { return engine_.walk_reads(); }
  const common::Histogram& walk_latency_ps() const { return engine_.walk_latency_ps(); }
  uint64_t table_reads() const { return engine_.table_reads(); }
  // Reads of configuration structures themselves: DTEs and GCR3 entries.
  uint64_t config_reads() const { return config_reads_.value(); }
  // Host-table (stage-2) reads made to locate GCR3 entries at guest addresses (nested).
  uint64_t config_locate_reads() const { return engine_.config_table_reads(); }
  uint64_t events_written() const { return events_.value(); }
  uint64_t iotlb_entries() const { return engine_.iotlb_entries(); }

  struct DteKey {
    uint16_t device_id = 0;
    bool operator==(const DteKey& o) const { return device_id == o.device_id; }
    uint64_t set_hash() const { return device_id; }
  };
  struct Gcr3Key {
    uint16_t device_id = 0; uint32_t pasid = 0;
    bool operator==(const Gcr3Key& o) const { return device_id == o.device_id && pasid == o.pasid; }
    uint64_t set_hash() const { return uint64_t(device_id) * 0x9E37u + pasid; }
  };
  struct Gcr3Value { uint64_t guest_cr3 = 0; uint16_t domain_id = 0; };

 private:
  struct Request {
    uint16_t device_id = 0; bool pasid_valid = false; uint32_t pasid = 0;
    uint64_t input = 0; pagetable::Access access;
    uint64_t epoch = common::TranslationEngine::kNow;   // when the request began (DmaRequest::epoch)
  };
  using Outcome = common::DmaOutcome;

  common::DmaOutcome handle_dma(const common::DmaRequest& rq, common::Ps& t) override;
  bool ats_permitted(const common::DmaRequest& rq, common::AtsType type, common::Ps& t) override;
  common::Ps inv_timeout_ps() const;   // Control.InvTimeOut
  uint64_t late_command_address_ = 0;   // the last INVALIDATE_IOTLB_PAGES, for IOTLB_INV_TIMEOUT

  // The request path, at the request's annotated time `t`, which they advance.
  Outcome translate(const Request& rq, common::Ps& t);
  // The device's DTE, or null after logging its event. It points into the DTE cache, or at
  // the one just fetched: valid until the next fetch or change of the cache.
  const DeviceTableEntry* fetch_dte(const Request& rq, common::Ps& t);
  std::optional<uint64_t> fetch_gcr3(const Request& rq, const DeviceTableEntry& dte, uint32_t pasid,
                                     const common::Regime& host, common::Ps& t);
  void record_event(const EventRecord& e, common::Ps& t);
  void record_event(const EventRecord& e);   // from the command thread, which waits
  void page_fault(const Request& rq, const DeviceTableEntry& dte, bool guest, uint32_t pasid, bool present,
                  bool perm, bool reserved, common::Ps& t);
  void walk_fault(const Request& rq, const DeviceTableEntry& dte, bool guest, uint32_t pasid,
                  const common::TranslationFault& f, common::Ps& t);

  // The command buffer: the engine's consumer thread and AMD's hooks.
  void command_thread() { cmdbuf_.run(); }
  common::QueueState queue_state() override;
  uint8_t trace_opcode(const uint64_t* entry) const override { return uint8_t(entry[0] >> 60); }
  common::Decoded decode(const uint64_t* entry, const common::QueueState& q) override;
  void execute() override { execute(pending_); }
  void consumed(const common::QueueState& q, uint32_t head) override;
  void halt(const common::QueueError& e, const common::QueueState& q) override;
  // `queue`: the device-invalidation tag of the buffer the command came from (0: the host's).
  void execute(const Command& c, unsigned queue = 0);
  // COMPLETION_WAIT's wait on queue `q` (the host buffer or a guest's).
  bool completion_barrier(common::CommandQueue& q, unsigned queue, uint32_t* late_device) override;

  // viommu::GuestQueueOwner
  bool guest_queues_enabled() const override {
    return r_.control.get<reg::CTRL_VIOMMU_EN>() && r_.control.get<reg::CTRL_VCMD_EN>();
  }
  bool device_access(uint16_t devid, bool write, uint64_t addr, void* data, unsigned len) override;
  viommu::MapEntry map_lookup(unsigned gid, viommu::MapTable table, uint16_t guest_id) override;
  void map_update(unsigned gid, viommu::MapTable table, uint64_t control) override;
  void execute_invalidation(const Command& c, unsigned queue) override { execute(c, queue); }
  common::Decoded decode_entry(const uint64_t* entry, Command& out) const override {
    return r_.decode_queue_entry(entry, out);
  }
  struct MapKey {
    uint16_t gid = 0; viommu::MapTable table = viommu::MapTable::DomainId; uint16_t guest_id = 0;
    bool operator==(const MapKey& o) const { return gid == o.gid && table == o.table && guest_id == o.guest_id; }
    uint64_t set_hash() const { return uint64_t(guest_id) * 0x9E37u + gid * 2u + uint64_t(table); }
  };

  AmdViConfig cfg_;
  common::Ps pipeline_ps_;   // translation_cycles, the request pipeline before the caches
  common::SetAssocCache<DteKey, DeviceTableEntry> dte_cache_;
  DeviceTableEntry fetched_dte_;   // what fetch_dte returns on a miss
  common::SetAssocCache<Gcr3Key, Gcr3Value> gcr3_cache_;
  common::TranslationEngine engine_;
  common::CommandQueue cmdbuf_;
  Command pending_;           // decoded, not yet executed


  common::Counter stale_config_fills_;   // DTE/GCR3 fetches an invalidation overtook: not cached
  common::Counter translations_, bypassed_, aborted_, faults_, config_reads_, events_, events_lost_;

  RegisterBlock r_;   // the registers (48882 §3.4) and their write rules
  common::SetAssocCache<MapKey, viommu::MapEntry> map_cache_;
  uint64_t map_epoch_ = 0;   // map_update()s so far: a fetch an update overtook does not fill
  common::Counter map_fetches_;
  std::vector<std::unique_ptr<viommu::GuestCommandBuffer>> guests_;
  std::vector<common::Ps> event_written_ps_;   // by event-log entry: when its record was written
  common::Ps last_event_written_ps_ = 0;
};

}  // namespace iommusim::amdvi

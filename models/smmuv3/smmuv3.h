// ARM SMMUv3 model (IHI 0070), blocking and cycle-approximate.
//
// What it models
// - Register file at the architected offsets (IDR0-5, CR0/CR0ACK, CR1, CR2, GBPA,
//   GERROR/GERRORN, STRTAB_BASE(_CFG), CMDQ_BASE/PROD/CONS, EVTQ_BASE/PROD/CONS).
// - Linear and 2-level stream tables; STE Config abort, bypass, S1, S2 and nested; linear
//   CD tables, fetched through stage 2 when nested. STEs, CDs, page tables and both queues
//   are read from simulated memory through the `mem` socket and cost memory time.
// - Caches, all common::SetAssocCache: a config cache (STE+CD per StreamID/SubstreamID),
//   an IOTLB of combined S1+S2 entries tagged VMID/ASID (global entries, stage-1 nG = 0,
//   match any ASID for TLBI_NH_VA and survive TLBI_NH_ASID), stage-1 and stage-2 walk
//   caches by level, and an IPA->PA cache.
// - Walker slots (a counted resource) shared by all translations.
// - Several command queues on one SMMU (add_command_queue): the main CMDQ and any queue an
//   extension adds (a CMDQV VCMDQ, models/smmuv3/cmdqv.h). Each is a common::CommandQueue
//   with its own registers, pointers and error reporting (CommandQueueRegisters) and its own
//   consumer thread; decode and execution (cache invalidations, CMD_SYNC) are this model's,
//   shared. MODEL CHOICE: one command-execution unit per queue (queues fetch, decode and
//   execute concurrently); they meet on the caches' lookup ports, which every invalidation
//   scan reserves. A CMD_SYNC orders its own queue's earlier commands (IHI 0070 §4.7.3 and,
//   for ECMDQ, §3.5.7: no ordering between queues): it waits for its queue's ATC
//   invalidations only, and for every walk older than the SMMU's last invalidation (a
//   superset of its queue's: never early).
// - SMMUv3.3 ECMDQs (Smmuv3Config::ecmdqs > 0; models/smmuv3/ecmdq.h): IDR1.ECMDQ, IDR6,
//   one command queue control page after page 1, each ECMDQ one more queue as above, its
//   errors in its own CONS and GERROR.CMDQP_ERR; AIDR then reads 3.3.
// - The main command queue, on the shared engine (common::CommandQueue): CFGI_*, TLBI_* (with range form when IDR3.RIL), CMD_SYNC with
//   CS=none/IRQ(MSI write)/SEV, PREFETCH_*; ATC_INV, PRI_RESP and RESUME are accepted and
//   timed. Illegal commands set GERROR.CMDQ_ERR and CONS.ERR=CERROR_ILL and stop the queue
//   until GERRORN acknowledges; a failed queue read sets CERROR_ABT.
// - The event queue: translation, access, permission, address-size and walk-abort faults,
//   bad StreamID/STE/SubstreamID/CD, with the architected records.
// - Invalidation costs time: decode, then cache scans whose cost depends on the sets they
//   visit (see docs/smmuv3.md). CMD_SYNC completes after every earlier command, and after
//   every translation walk that began before the last invalidation has drained.
//
// What it does not model
// - PRI queue, stall mode (faults always terminate), split-stage ATS (EATS = 0b10 is
//   answered as full ATS), MSI-based GERROR/EVTQ interrupts, secure state, hierarchical attribute
//   controls, TTB1, 2-level CD tables, S1 granules other than those VmsaFormat supports,
//   HTTU dirty updates, ECMDQ memory-mode control pages and doorbell pages (ecmdq.h).
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

#include "models/common/cache.h"
#include "models/common/clock.h"
#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/dma_attributes.h"
#include "models/common/iommu_block.h"
#include "models/common/payload_pool.h"
#include "models/common/queue_ring.h"
#include "models/common/register_file.h"
#include "models/common/resource.h"
#include "models/common/stats.h"
#include "models/common/translation_engine.h"
#include "models/pagetable/vmsa.h"
#include "models/pagetable/walker.h"
#include "models/smmuv3/commands.h"
#include "models/smmuv3/ecmdq.h"
#include "models/smmuv3/events.h"
#include "models/smmuv3/register_block.h"
#include "models/smmuv3/registers.h"
#include "models/smmuv3/structures.h"

namespace iommusim::smmuv3 {

struct Smmuv3Config {
  double clock_mhz = 1000.0;
  unsigned sid_bits = 16;
  unsigned ssid_bits = 20;
  bool range_invalidation = true;     // IDR3.RIL
  unsigned cmdq_log2_max = 19;        // IDR1.CMDQS
  unsigned evtq_log2_max = 19;        // IDR1.EVTQS
  unsigned translation_cycles = 2;    // request pipeline before the IOTLB
  unsigned cmd_batch = 8;             // commands fetched per queue read
  unsigned cmd_decode_cycles = 2;
  unsigned cmd_exec_cycles = 4;       // fixed part of every command
  unsigned sync_cycles = 4;
  unsigned atc_inv_cycles = 4;        // CMD_ATC_INV: building the Invalidate Request
  double atc_inv_timeout_ns = 50000;  // CMD_SYNC gives up on an ATC invalidation completion
  unsigned ecmdqs = 0;                // SMMUv3.3 ECMDQs (IDR1.ECMDQ, IDR6.LOG2NUMQ); 0: none
  // Defaults: as iommusim's config declares them (platforms/smmuv3_lane.cpp; a test checks).
  common::CacheConfig config_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
  common::TranslationEngineConfig translation;   // walkers, IOTLB, S1/S2 walk caches, IPA cache
};
std::string validate(const Smmuv3Config& c);   // "" or a message naming the field

using common::CommandTrace;

// One command queue of the SMMU as its own registers describe it: the main CMDQ
// (CMDQ_BASE/PROD/CONS, GERROR.CMDQ_ERR), a CMDQV VCMDQ, an ECMDQ. The SMMU decodes and
// executes its commands; the queue keeps its pointers and reports its own errors.
class CommandQueueRegisters {
 public:
  virtual ~CommandQueueRegisters() = default;
  virtual common::QueueState queue_state() = 0;
  // The head moved past an executed command.
  virtual void consumed(uint32_t head) = 0;
  // The queue's architected error (its CONS.ERR, its GERROR); it stays halted until acknowledged.
  virtual void halt(const common::QueueError& e) = 0;
  // A command the decoder accepted, before it executes: the queue's own rules may rewrite it
  // (a guest VCMDQ inserts its VMID, replaces a vSID) or refuse it (false: CERROR_ILL on this
  // queue, nothing executes).
  virtual bool admit(Command& c) { (void)c; return true; }
};

class Smmuv3 : public common::IommuBlock, public ProgrammingInterface, public EcmdqProbes {
 public:

  SC_HAS_PROCESS(Smmuv3);
  Smmuv3(sc_core::sc_module_name name, const Smmuv3Config& cfg);
  ~Smmuv3() override;

  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  void set_command_probe(std::function<void(const CommandTrace&)> probe) override;
  // Adds a command queue (at elaboration): its own consumer thread on the shared engine,
  // reading its entries through this SMMU's memory port and executing them here. The
  // returned engine is the owner's to kick (its doorbells) and to read stats from.
  common::CommandQueue& add_command_queue(CommandQueueRegisters& regs);
  uint32_t peek32(uint64_t offset) override { return uint32_t(peek_register(offset, 4)); }
  // When the newest event record was written (its event interrupt cannot come before).
  uint64_t last_event_written_ps() const { return last_event_written_ps_; }
  uint64_t event_written_ps(uint32_t index) const override {
    return index < event_written_ps_.size() ? event_written_ps_[index] : 0;
  }
  const Smmuv3Config& config() const { return cfg_; }
  // The ECMDQs (nullptr: ecmdqs = 0).
  EcmdqInterface* ecmdq_interface() { return ecmdq_.get(); }
  EcmdqProbes* ecmdqs() override { return ecmdq_ ? this : nullptr; }
  void set_ecmdq_probe(unsigned n, std::function<void(const CommandTrace&)> probe) override {
    ecmdq_->queue(n).set_probe(std::move(probe));
  }

  // Cache access for tests and the summary.
  const common::CacheStats& iotlb_stats() const { return engine_.iotlb_stats(); }
  uint64_t iotlb_entries() const { return engine_.iotlb_entries(); }
  const common::CacheStats& config_cache_stats() const { return config_cache_.stats(); }
  const common::CacheStats& s1_walk_cache_stats() const { return engine_.s1_walk_cache_stats(); }
  const common::CacheStats& s2_walk_cache_stats() const { return engine_.s2_walk_cache_stats(); }
  const common::CacheStats& ipa_cache_stats() const { return engine_.ipa_cache_stats(); }
  const common::Histogram& walk_reads() const { return engine_.walk_reads(); }
  const common::Histogram& walk_latency_ps() const { return engine_.walk_latency_ps(); }
  uint64_t table_reads() const { return engine_.table_reads(); }
  // Stage-2 reads made to locate a nested stream's CD at its IPA (config_reads counts the
  // L1 descriptor, STE and CD reads themselves).
  uint64_t config_locate_reads() const { return engine_.config_table_reads(); }
  uint64_t config_reads() const { return config_reads_.value(); }
  uint64_t events_written() const { return events_.value(); }

  // Keys and values of the caches (public so tests can name them).
  struct ConfigKey {
    uint32_t sid = 0, ssid = 0; bool ssv = false;
    bool operator==(const ConfigKey& o) const { return sid == o.sid && ssid == o.ssid && ssv == o.ssv; }
    uint64_t set_hash() const { return uint64_t(sid) * 0x9E37u + ssid; }
  };
  struct StreamConfig {
    SteConfig config = SteConfig::Abort;
    uint16_t vmid = 0, asid = 0;
    pagetable::VmsaConfig s1{}, s2{};
    uint64_t s1_ttb = 0, s2_ttb = 0;
    bool s1_epd0 = false;
    uint8_t eats = 0;   // STE.EATS: 0 ATS disabled, 1 full ATS, 2 split-stage
  };

 private:
  struct Request {
    uint32_t sid = 0; bool ssv = false; uint32_t ssid = 0;
    uint64_t input = 0; pagetable::Access access;
    uint64_t epoch = common::TranslationEngine::kNow;   // when the request began (DmaRequest::epoch)
  };
  using Outcome = common::DmaOutcome;

  common::DmaOutcome handle_dma(const common::DmaRequest& rq, common::Ps& t) override;
  bool ats_permitted(const common::DmaRequest& rq, common::AtsType type, common::Ps& t) override;

  // At the request's annotated time `t`, which they advance.
  Outcome translate(const Request& rq, common::Ps& t);
  // The stream's configuration, or null after recording its configuration error. It points
  // into the config cache, or at the one just fetched: valid until the next fetch or change
  // of the cache.
  const StreamConfig* fetch_config(const Request& rq, common::Ps& t);
  void record_event(const EventRecord& e, common::Ps& t);
  // cls: CLASS override (a stage-2 fault while fetching the CD reports CLASS=CD).
  void record_walk_fault(const Request& rq, const common::TranslationFault& f, common::Ps& t,
                         std::optional<EventClass> cls = std::nullopt);

  // A queue's engine and hooks (smmuv3.cpp): its registers, this SMMU's decode and execution.
  class QueuePort;
  class MainCmdq;
  // The main command queue's consumer thread.
  void command_thread();
  // Decodes one entry into `out` (the decoder's legality: CERROR_ILL otherwise).
  common::Decoded decode(const uint64_t* entry, Command& out) const;
  // Executes `c` for the queue `port` (its barrier, its ATC invalidations).
  void execute(const Command& c, QueuePort& port);
  common::CommandQueue& cmdq();

  Smmuv3Config cfg_;
  common::Ps pipeline_ps_;   // translation_cycles, the request pipeline before the caches
  common::Ps atc_timeout_ps_;   // atc_inv_timeout_ns
  common::SetAssocCache<ConfigKey, StreamConfig> config_cache_;
  StreamConfig fetched_config_;   // what fetch_config returns on a miss
  common::TranslationEngine engine_;
  std::unique_ptr<MainCmdq> main_cmdq_;
  std::vector<std::unique_ptr<QueuePort>> ports_;   // [0]: the main CMDQ

  common::Counter stale_config_fills_;   // config fetches a CFGI overtook: not cached
  common::Counter translations_, bypassed_, aborted_, faults_, config_reads_, events_, events_lost_;
  std::vector<common::Ps> event_written_ps_;   // by event-queue slot: when its record was written
  common::Ps last_event_written_ps_ = 0;

  RegisterBlock r_;   // the programming interface (register_block.h)
  std::unique_ptr<EcmdqInterface> ecmdq_;   // after r_: its queues report into GERROR
};

}  // namespace iommusim::smmuv3

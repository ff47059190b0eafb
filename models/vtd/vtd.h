// Intel VT-d remapping unit in scalable mode (VT-d spec rev 4.x), blocking and
// cycle-approximate.
//
// What it models
// - Register file at the architected offsets (models/vtd/register_block.h, shared with a
//   VMM's vVT-d): VER, CAP, ECAP, GCMD/GSTS (TE, QIE kept;
//   SRTP and WBF one-shot, RTPS latched), RTADDR (TTM=01 scalable only), CCMD and the
//   IVA/IOTLB registers (register-based invalidation, completes at once unless DR/DW),
//   FSTS, FECTL,
//   IQH/IQT/IQA, ICS, IECTL, IQER and the FRCD fault-recording registers (at CAP.FRO).
//   CAP/ECAP report exactly what the model does (SMTS, QI, PASID, NEST, FLTS, SLTS, PT,
//   PSI, DT, MAMV, SAGAW, FL1GP, FL5LP, SLLPS, DRD, DWD, ND=16-bit DIDs, NFR, PSS).
//   An IOTLB invalidation with DR or DW set completes only once the walks that began
//   before it have finished (the DMAs in flight on the old entries).
// - Translation: RID -> root entry -> scalable-mode context entry (lower/upper tables) ->
//   PASID directory -> PASID table entry, with RID_PASID for requests without a PASID;
//   PGTT first-stage (x86 4/5-level), second-stage (AW 3/4/5 levels), nested (FSPTPTR is a
//   GPA translated through the second stage) and pass-through. The PASID entry's DID and
//   PASID tag the shared translation engine (IOTLB, FS/SS paging-structure caches, GPA
//   cache). Context and PASID caches are SetAssocCaches here.
// - Faults: the scalable-mode reason codes of faults.h in the FRCD ring (FSTS.PPF, FRI,
//   PFO on overflow); FPD in the context/PASID-dir/PASID entry suppresses recording. The
//   DMA always gets IommuResponse::Fault.
// - Queued invalidation, on the shared engine (common::CommandQueue): 128- or 256-bit descriptors (IQA.DW), consumed in batches; every
//   descriptor type of commands.h is decoded and executed. An invalid descriptor sets FSTS.IQE and IQER.IQEI and stops
//   the queue at it until software clears IQE. inv_wait (SW/IF/FN) completes after every
//   earlier descriptor and after every walk that began before the last invalidation.
//   Invalidations cost time: decode + fixed execution + cache scans (docs/vtd.md).
//
// - ATS (docs/ats.md): with the context entry's DTE set, a device's Translation Requests
//   are answered from the IOTLB or a walk and its Translated requests go to memory as
//   given; with DTE clear both fault with SM_CONTEXT_DTE_CLEAR (0x44, VT-d 7.1.3). Device-TLB
//   invalidation descriptors send an Invalidate Request to the device's ATC; inv_wait
//   completes once every earlier one's completion arrived, or, when one does not within
//   devtlb_inv_timeout_ns, sets FSTS.ITE and IQER.ITESID and stops the queue at the
//   inv_wait (its status is not written) until software clears ITE (VT-d 6.5.2.10).
//
// What it does not model
// - Legacy (TTM=00) and abort-DMA modes, caching mode (CAP.CM=0: non-present entries are
//   never cached), PRI/page requests, interrupt remapping (IEC is accepted only),
//   fault/completion interrupt messages (FECTL/IECTL.IP are set, no MSI write), A/D
//   updates, snoop and memory-type controls, advanced fault logging, PMRs.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/cache.h"
#include "models/common/iommu_block.h"
#include "models/common/clock.h"
#include "models/common/command_queue.h"
#include "models/common/command_trace.h"
#include "models/common/payload_pool.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/common/translation_engine.h"
#include "models/pagetable/vtd_ss.h"
#include "models/pagetable/x86.h"
#include "models/vtd/commands.h"
#include "models/vtd/faults.h"
#include "models/vtd/register_block.h"
#include "models/vtd/registers.h"
#include "models/vtd/structures.h"

namespace iommusim::vtd {

struct VtdConfig {
  double clock_mhz = 1000.0;
  unsigned haw = 48;                 // host address width (CAP.MGAW)
  unsigned pasid_bits = 20;          // ECAP.PSS + 1
  unsigned fault_records = 8;        // CAP.NFR + 1 (at most reg::kMaxFaultRecords)
  bool fs_5level = true;             // CAP.FL5LP
  bool fs_1g = true;                 // CAP.FL1GP
  bool ss_2m = true, ss_1g = true;   // CAP.SLLPS
  unsigned mamv = 18;                // CAP.MAMV
  unsigned iq_max_qs = 7;            // largest IQA.QS accepted
  unsigned translation_cycles = 2;   // request pipeline before the caches
  unsigned desc_batch = 8;           // descriptors fetched per queue read
  unsigned desc_decode_cycles = 2;
  unsigned desc_exec_cycles = 4;     // fixed part of every descriptor
  unsigned wait_cycles = 4;          // inv_wait after draining
  unsigned devtlb_inv_cycles = 4;       // device-TLB invalidation: building the Invalidate Request
  double devtlb_inv_timeout_ns = 50000;  // inv_wait gives up on a device-TLB invalidation completion (ITE)
  // Defaults: as iommusim's config declares them (platforms/vtd_lane.cpp; a test checks).
  common::CacheConfig context_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
  common::CacheConfig pasid_cache = common::CacheConfig().set_entries(64).set_ways(4).set_lookup_cycles(3).set_ports(2);
  common::TranslationEngineConfig translation;   // walkers, IOTLB, FS/SS PSCs, GPA cache
};
std::string validate(const VtdConfig& c);

using common::CommandTrace;

class Vtd : public common::IommuBlock, public ProgrammingInterface, private common::CommandQueueVendor {
 public:
  SC_HAS_PROCESS(Vtd);
  Vtd(sc_core::sc_module_name name, const VtdConfig& cfg);

  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  // ProgrammingInterface
  void set_command_probe(std::function<void(const CommandTrace&)> probe) override { iq_.set_probe(std::move(probe)); }
  uint64_t peek_register(uint64_t offset, unsigned len = 8) override { return IommuBlock::peek_register(offset, len); }
  // When the newest fault record was written (its fault event cannot come before).
  uint64_t last_event_written_ps() const { return last_fault_written_ps_; }
  uint64_t event_written_ps(uint32_t index) const override {
    return index < fault_written_ps_.size() ? fault_written_ps_[index] : 0;
  }
  const VtdConfig& config() const { return cfg_; }

  const common::CacheStats& iotlb_stats() const { return engine_.iotlb_stats(); }
  const common::CacheStats& context_cache_stats() const { return context_cache_.stats(); }
  const common::CacheStats& pasid_cache_stats() const { return pasid_cache_.stats(); }
  const common::CacheStats& fs_psc_stats() const { return engine_.s1_walk_cache_stats(); }
  const common::CacheStats& ss_psc_stats() const { return engine_.s2_walk_cache_stats(); }
  const common::CacheStats& gpa_cache_stats() const { return engine_.ipa_cache_stats(); }
  const common::Histogram& walk_reads() const { return engine_.walk_reads(); }
  const common::Histogram& walk_latency_ps() const { return engine_.walk_latency_ps(); }
  uint64_t table_reads() const { return engine_.table_reads(); }
  // Second-stage reads made to locate configuration at guest addresses: none in scalable
  // mode (the PASID tables are host-physical), kept for a uniform summary.
  uint64_t config_locate_reads() const { return engine_.config_table_reads(); }
  uint64_t config_reads() const { return config_reads_.value(); }
  uint64_t faults_recorded() const { return faults_recorded_.value(); }
  uint64_t iotlb_entries() const { return engine_.iotlb_entries(); }

  struct ContextKey {
    uint16_t rid = 0;
    bool operator==(const ContextKey& o) const { return rid == o.rid; }
    uint64_t set_hash() const { return rid; }
  };
  struct PasidKey {
    uint16_t rid = 0; uint32_t pasid = 0;
    bool operator==(const PasidKey& o) const { return rid == o.rid && pasid == o.pasid; }
    uint64_t set_hash() const { return uint64_t(pasid) * 0x9E37u + rid; }
  };

 private:
  struct Request {
    uint16_t rid = 0; bool pasid_valid = false; uint32_t pasid = 0;
    uint64_t input = 0; pagetable::Access access;
    uint64_t epoch = common::TranslationEngine::kNow;   // when the request began (DmaRequest::epoch)
  };
  using Outcome = common::DmaOutcome;
  struct Resolved { PasidEntry pe; uint32_t pasid = 0; bool fpd = false; bool dte = false; };

  common::DmaOutcome handle_dma(const common::DmaRequest& rq, common::Ps& t) override;
  bool ats_permitted(const common::DmaRequest& rq, common::AtsType type, common::Ps& t) override;
  static Features features(const VtdConfig& c);

  Outcome translate(const Request& rq, common::Ps& t);
  // At annotated time t: the request's PASID entry, or null after recording its fault. It
  // points into the PASID cache, or at the one just fetched: valid until the next resolve or
  // change of the cache.
  const Resolved* resolve(const Request& rq, common::Ps& t);
  void record_fault(const Request& rq, FaultReason reason, bool fpd, common::Ps t);   // at annotated time t
  FaultReason walk_reason(const Request& rq, const common::TranslationFault& f) const;

  // The invalidation queue: the engine's consumer thread and VT-d's hooks.
  void iq_thread() { iq_.run(); }
  common::QueueState queue_state() override { return r_.iq_state(); }
  uint8_t trace_opcode(const uint64_t* entry) const override;
  common::Decoded decode(const uint64_t* entry, const common::QueueState& q) override;
  void execute() override { execute(pending_); }
  void consumed(const common::QueueState& q, uint32_t head) override { r_.iq_consumed(q, head); }
  void halt(const common::QueueError& e, const common::QueueState&) override { r_.iq_halt(e); }
  void execute(const Descriptor& d);
  void invalidate_context(uint8_t gran, uint16_t sid, uint8_t fm);
  void invalidate_iotlb(uint8_t gran, uint16_t did, uint64_t addr, uint8_t am, bool ih);

  VtdConfig cfg_;
  common::Ps pipeline_ps_;   // translation_cycles, the request pipeline before the caches
  common::Ps devtlb_timeout_ps_;   // devtlb_inv_timeout_ns
  common::SetAssocCache<ContextKey, SmContextEntry> context_cache_;
  common::SetAssocCache<PasidKey, Resolved> pasid_cache_;
  SmContextEntry fetched_context_;   // what resolve uses on a context-cache miss
  Resolved resolved_;                // what resolve returns on a PASID-cache miss
  common::TranslationEngine engine_;
  common::CommandQueue iq_;
  Descriptor pending_;   // decoded, not yet executed
  pagetable::X86Format fs4_, fs5_;
  pagetable::VtdSecondStageFormat ss3_, ss4_, ss5_;

  // DIDs that may hold first-stage or nested IOTLB entries (set by such a translation,
  // cleared by a global or domain-selective IOTLB invalidation): a PSI sweeps those
  // entries of the DID only there.
  std::vector<bool> fs_dids_ = std::vector<bool>(1u << 16, false);

  common::Counter translations_, passed_through_, faults_, faults_recorded_, faults_suppressed_, faults_lost_,
      config_reads_, stale_config_fills_;

  RegisterBlock r_;   // the registers (VT-d chapter 11)
  std::vector<common::Ps> fault_written_ps_;   // by FRCD index: when its record was written
  common::Ps last_fault_written_ps_ = 0;
};

}  // namespace iommusim::vtd

// What every IOMMU model's sc_module shares, whatever the vendor: the three sockets, the
// register file served on `mmio`, memory access through `mem`, and the DMA front end.
//
// The front end decodes the DmaAttributes sideband into a DmaRequest, rejects requests a
// PCIe TLP cannot carry (a requester ID wider than the vendor's, a PASID wider than 20
// bits: counted as malformed, never aliased onto another device or PASID), asks the vendor
// (handle_dma, which may wait) and then forwards the DMA to memory at the translated
// address, or answers with an error and the IommuResponse the vendor chose. An access
// that crosses a 4 KB boundary is split there: each page is translated and forwarded on
// its own (a fault on any page fails the access; pieces already forwarded stay done).
// The translation and memory time go back in the DmaAttributes extension.
//
// Timing is annotated (docs/architecture.md, "Timing"): the front end starts at the
// requester's time (now + delay), the vendor and the engine advance it, the memory access
// adds its own, and the total goes back in `delay`; nothing here waits within a page, so
// the requester synchronises once per DMA of one page. A longer access waits for each
// page after the first to begin (so a barrier never waits for the rest of a long DMA). The model's own memory accesses go straight to the memory
// (common::TimedMemory, DMI-style) when the platform provides it, else through `mem`.
//
// ATS (PCIe 6.0 §10, models/common/ats.h): a Translation Request (one page) is answered
// from the IOTLB or a walk with no memory access, the translated page and the rights
// granted going back in the DmaAttributes; a Translated request goes to memory at the
// address the device gives, untranslated. The vendor decides whether the requester may use
// ATS at all (SMMU STE.EATS, VT-d context DTE, AMD DTE.I) and records its architected
// fault when not. Translated requests are not reported to the observer: the IOMMU does not
// know their IOVA, so the device reports them (traffic/atc.h). The vendor's ATC
// invalidation commands reach the devices attached with attach_ats_device; its barrier
// then waits for their completions (wait_for_device_invalidations).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/ats.h"
#include "models/common/clock.h"
#include "models/common/dma_attributes.h"
#include "models/common/payload_pool.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/common/timed_memory.h"
#include "models/pagetable/format.h"

namespace iommusim::common {

struct DmaRequest {
  uint32_t requester_id = 0;   // SMMU StreamID, VT-d source-id, AMD DeviceID
  bool pasid_valid = false;
  uint32_t pasid = 0;          // SMMU SubstreamID
  uint64_t input = 0;          // the address the device used
  pagetable::Access access;
  // The engine's invalidation epoch when the request began: nothing it read (config,
  // tables) may be cached once a later invalidation has begun (TranslationEngine::epoch()).
  uint64_t epoch = 0;
};

struct DmaOutcome {
  bool ok = false;
  bool abort_silently = false;   // refused without a fault record (SMMU STE abort, AMD TV=0)
  uint64_t output = 0;
};

// Sees every DMA the IOMMU has finished (the correctness oracle): one call per translated
// page, after its memory access completed (or at once, for a fault).
class DmaObserver {
 public:
  virtual ~DmaObserver() = default;
  virtual void dma_completed(const DmaRequest& rq, const DmaOutcome& o, uint64_t issue_ps, uint64_t done_ps) = 0;
};

class TranslationEngine;

class IommuBlock : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<IommuBlock> dma;   // from endpoints / root ports
  tlm_utils::simple_target_socket<IommuBlock> mmio;             // registers
  tlm_utils::simple_initiator_socket<IommuBlock> mem;           // tables, queues, forwarded DMA

  const Clock& clock() const { return clk_; }
  uint64_t malformed_requests() const { return malformed_.value(); }
  // A register read without time, for tests, debuggers and drivers' error messages: `len`
  // bytes, or the 32-bit register when an 8-byte read does not fit one.
  uint64_t peek_register(uint64_t offset, unsigned len = 8);
  void set_observer(DmaObserver* o) { observer_ = o; }
  // Direct access to the memory bound to `mem` (it must be the same memory).
  void set_direct_memory(TimedMemory* m) { direct_ = m; }
  // The device with requester ID `rid` has an ATC: ATC invalidations for `rid` reach it.
  void attach_ats_device(uint32_t rid, AtsDevice* device) { ats_devices_.push_back({rid, device}); }
  // <prefix>.ats.*: translation requests and translated requests served, invalidations sent
  // (registered only by lanes with ATS devices, so other runs' stats stay as they were).
  void register_ats_stats(StatRegistry& reg, const std::string& prefix) const;

 protected:
  IommuBlock(sc_core::sc_module_name name, const Clock& clk, uint64_t mmio_bytes, unsigned requester_id_bits);
  // The engine whose barriers must wait for this model's DMAs in flight.
  void order_requests_with(TranslationEngine& e) { engine_ = &e; }

  // The vendor's translation of one DMA (or its bypass decision), beginning at annotated
  // time `t`, which it advances. Called from the requester's thread; must not wait.
  virtual DmaOutcome handle_dma(const DmaRequest& rq, Ps& t) = 0;

  // Whether requester `rq` may use ATS requests of `type` (TranslationRequest or
  // Translated), at annotated time `t` (advanced by the configuration lookup). When not,
  // the vendor records its architected fault. Default: ATS is not supported.
  virtual bool ats_permitted(const DmaRequest& rq, AtsType type, Ps& t);
  // Sends an Invalidate Request to the ATC of device `rid` (if it has one) at annotated
  // time `at`; the next wait_for_device_invalidations() of the same command queue
  // (`queue`: the model's own numbering, 0 for a model with one queue) waits for its completion.
  void invalidate_device(uint32_t rid, const AtcInvalidation& inv, Ps at, unsigned queue = 0);
  // The barrier's part: waits until every Invalidate Request sent since the last call
  // has arrived and returns true; or, when one does not arrive within `timeout_ps` of its
  // request, waits until that deadline and returns false (the vendor's architected timeout).
  // *waited_ps: the time spent waiting; *late_rid: the device that did not answer.
  // Only the requests of command queue `queue` count (a barrier orders its own queue).
  bool wait_for_device_invalidations(Ps timeout_ps, Ps* waited_ps = nullptr, uint32_t* late_rid = nullptr,
                                     unsigned queue = 0);

  // The model's own memory accesses at annotated time `t` (advanced to their completion).
  bool read_memory(uint64_t addr, void* dst, unsigned len, Ps& t);
  bool write_memory(uint64_t addr, const void* src, unsigned len, Ps& t);
  // The same from the model's own threads (queues), which wait for the access.
  bool read_memory(uint64_t addr, void* dst, unsigned len);
  bool write_memory(uint64_t addr, const void* src, unsigned len);
  // translation_latency and malformed_requests under `prefix`.
  void register_front_end_stats(StatRegistry& reg, const std::string& prefix) const;

  Clock clk_;
  RegisterFile regs_;   // the vendor's Reg<T> members add themselves
  PayloadPool pool_;

 private:
  void dma_b_transport(int id, tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  // An ATS Translation Request: translated, not forwarded to memory.
  void translation_request(tlm::tlm_generic_payload& p, DmaAttributes& attrs, DmaRequest& rq, sc_core::sc_time& delay);
  void mmio_b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay);

  uint64_t mmio_bytes_;
  unsigned requester_id_bits_;
  bool access(bool write, uint64_t addr, void* data, unsigned len, AccessKind kind, Ps& t);
  bool waited_access(bool write, uint64_t addr, void* data, unsigned len);

  TranslationEngine* engine_ = nullptr;
  DmaObserver* observer_ = nullptr;
  TimedMemory* direct_ = nullptr;
  Counter malformed_;
  Histogram translation_ps_;
  // ATS: the devices with an ATC, and the Invalidate Requests the next barrier waits for.
  std::vector<std::pair<uint32_t, AtsDevice*>> ats_devices_;
  struct PendingDeviceInvalidation { uint32_t rid = 0; Ps issued = 0; AtcInvalidationResult result; unsigned queue = 0; };
  std::vector<PendingDeviceInvalidation> pending_atc_;   // reused: cleared, never shrunk
  Counter translation_requests_, translation_requests_refused_, translated_requests_, translated_refused_,
      atc_invalidations_sent_;
};

}  // namespace iommusim::common

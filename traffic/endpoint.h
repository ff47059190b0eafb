// A PCIe endpoint issuing DMA through a TLM-2.0 initiator socket (towards an IOMMU's DMA
// target socket).
//
// Models: `outstanding` concurrent DMA slots, each an SC_THREAD created at elaboration that
// owns one reusable generic payload, a data buffer of transfer_bytes and a DmaAttributes
// extension (RID/PASID from the config, Untranslated); a per-issue overhead of
// `issue_cycles` endpoint clocks; an optional per-slot minimum gap between issues;
// sequential, random or strided addresses in an IOVA window, deterministic from the seed.
// A transfer of at most 4 KB never crosses a 4 KB page; a longer one (up to 16 MiB) spans
// pages, which the IOMMU (or the root complex in front of it, models/pcie) translates one
// by one. Per DMA it counts its latency and the parts of it the IOMMU reports
// (translation, memory; the rest is the link and root complex), and the bytes each way.
// Instead of the generator, a workload may hand each free slot its next DMA (JobSource:
// address, size, direction, PASID, earliest issue time) and hear of its completion.
// With ATS enabled (cfg.ats, traffic/atc.h, docs/ats.md) the endpoint has an ATC (a work
// queue of a device, share_atc_of, uses its device's one ATC): each page of a DMA is looked
// up there; a miss sends an ATS Translation Request and fills the ATC
// from its completion; the page then goes as a Translated request, page after page (no
// pipelining of a long DMA's pages). The IOMMU cannot see a Translated request's IOVA, so
// the endpoint reports each such page to the DmaObserver (set_observer) itself.
// Does not model: the PCIe link itself (models/pcie), tags, ordering rules, MSI, data
// contents (each slot reads into and writes from one buffer, never checked).
// With a timeline attached (set_timeline), each DMA is a slice on its slot's track, from
// issue to completion, split into issue, link, translation and memory (docs/trace.md).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/clock.h"
#include "models/common/dma_attributes.h"
#include "models/common/stats.h"
#include "models/common/timeline.h"
#include "models/common/iommu_block.h"
#include "traffic/atc.h"

namespace iommusim::traffic {

enum class Pattern { Sequential, Random, Strided };

// "sequential" | "random" | "strided"; nullopt for anything else.
std::optional<Pattern> parse_pattern(const std::string& s);
const char* to_string(Pattern p);

struct EndpointConfig {
  uint32_t requester_id = 0x100;
  bool pasid_valid = false;
  uint32_t pasid = 0;
  unsigned outstanding = 8;          // concurrent DMA slots (one SC_THREAD each)
  Pattern pattern = Pattern::Random;
  uint64_t window_base = 0;          // IOVA window [window_base, window_base + window_bytes)
  uint64_t window_bytes = 64ull << 20;
  uint64_t stride_bytes = 4096;      // cursor advance for Strided
  unsigned transfer_bytes = 64;      // 1..kMaxTransferBytes
  double read_fraction = 1.0;        // probability a DMA is a read, in [0,1]
  double issue_gap_ns = 0;           // minimum time between issue starts, per slot; 0 = back to back
  uint64_t total_transactions = 0;   // stop after this many completions in total; 0 = no limit
  uint64_t seed = 1;
  double clock_mhz = 250;            // endpoint clock
  unsigned issue_cycles = 1;         // per-issue overhead, in endpoint clocks
  AtsConfig ats;                     // the device's ATC (off by default)
};

inline constexpr unsigned kMaxTransferBytes = 16u << 20;
// The slots' buffers of one endpoint together (outstanding * transfer_bytes) stay below this.
inline constexpr uint64_t kMaxBufferBytes = 256ull << 20;

// "" when the config is usable, else a message naming the offending field.
std::string validate(const EndpointConfig& cfg);

// What endpoints count per DMA. Each endpoint has its own; a lane with several endpoints
// also counts all of theirs in one (Endpoint::also_count_in).
class DmaStats {
 public:
  enum class Outcome { Ok, Fault, Error };
  struct Dma {
    bool read = true;
    Outcome outcome = Outcome::Ok;
    uint64_t bytes = 0;
    common::Ps latency = 0, translation = 0, memory = 0;
  };
  void record(const Dma& d);
  // Calls `fn` once, right after the n-th DMA (n >= 1) has been recorded.
  void on_completed(uint64_t n, std::function<void()> fn);

  uint64_t transactions() const { return transactions_.value(); }
  uint64_t faults() const { return faults_.value(); }
  uint64_t errors() const { return errors_.value(); }
  uint64_t reads() const { return reads_.value(); }
  uint64_t writes() const { return writes_.value(); }
  uint64_t bytes() const { return bytes_.value(); }
  uint64_t up_bytes() const { return up_bytes_.value(); }
  uint64_t down_bytes() const { return down_bytes_.value(); }
  const common::Histogram& latency_ps() const { return latency_ps_; }

  // prefix.transactions, .reads, .writes, .faults, .errors, .bytes, .up_bytes, .down_bytes,
  // .latency and its parts .link_latency, .translation_latency, .memory_latency (ns)
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  common::Counter transactions_, reads_, writes_, faults_, errors_, bytes_, up_bytes_, down_bytes_;
  common::Histogram latency_ps_, link_ps_, translation_ps_, memory_ps_;
  uint64_t milestone_at_ = 0;   // on_completed(); 0: none
  std::function<void()> milestone_;
};

// One DMA a workload hands a slot instead of the address generator (Endpoint::set_job_source).
// Fixed-size: sources keep them in preallocated rings, nothing is allocated per DMA.
struct DmaJob {
  uint64_t iova = 0;
  uint32_t bytes = 0;            // 1 .. the endpoint's transfer_bytes (the size of a slot's buffer)
  bool read = true;              // read: memory -> device; write: device -> memory
  bool pasid_valid = false;
  uint32_t pasid = 0;
  common::Ps not_before = 0;     // earliest issue time
  uint64_t tag = 0;              // the workload's own: which packet, I/O or trace line
};

// Where a workload's DMAs come from. Both calls run in the slot's SC_THREAD.
class JobSource {
 public:
  virtual ~JobSource() = default;
  // A free slot asks for its next DMA: fill `job` and return true (waiting first if none is
  // ready yet), or return false when the workload has no more for this endpoint: the slot exits.
  virtual bool next_job(unsigned slot, DmaJob& job) = 0;
  // The slot's DMA has completed and been counted; `outcome` as DmaStats classified it.
  virtual void job_done(unsigned slot, const DmaJob& job, DmaStats::Outcome outcome) = 0;
};

// Pure (SystemC-free) address generator shared by all slots of one endpoint.
//
// Sequential and Strided use one cursor shared by all slots (advancing by transfer_bytes
// resp. stride_bytes and wrapping at the window end); Random draws from one
// std::mt19937_64 seeded with seed * 1000003, picking a transfer_bytes-aligned offset
// (relative to window_base). Whatever the pattern, no access leaves the window, and one of
// at most 4 KB does not cross a 4 KB page: Sequential skips ahead to the next page,
// Random/Strided move the address down to the end of its page (or up to the next page when
// that would leave the window). Longer transfers span pages where they fall.
// The read/write choice comes from the same generator. The stream is one sequence in
// issue order, whichever slot asks: the k-th DMA is the same on every IOMMU, however its
// latency reorders the slots, so side-by-side vendors see identical traffic.
class AddressGenerator {
 public:
  struct Access {
    uint64_t addr;
    bool is_read;
  };
  static constexpr uint64_t kPage = 4096;

  // cfg must pass validate().
  explicit AddressGenerator(const EndpointConfig& cfg);
  Access next(unsigned slot);
  unsigned slots() const { return slots_; }

 private:
  uint64_t fit(uint64_t addr) const;  // keep [addr, addr+len) inside the window and one page
  uint64_t next_sequential();
  uint64_t next_strided();
  uint64_t next_random();

  Pattern pattern_;
  uint64_t base_, bytes_, stride_, len_;
  double read_fraction_;
  uint64_t cursor_ = 0;  // offset in the window
  // Transfer-aligned offsets that fit (random pattern), and that count - 1 when it is a
  // power of two: the same choice without a divide per DMA.
  uint64_t random_choices_ = 1, random_mask_ = 0;
  unsigned slots_;
  std::mt19937_64 rng_;
};

class Endpoint : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<Endpoint> socket;  // to the IOMMU's DMA target socket

  // Throws std::invalid_argument when validate(cfg) fails.
  Endpoint(sc_core::sc_module_name name, const EndpointConfig& cfg);

  // Slots wait for `go` before their first issue. Call before sc_start(); notify `go` with
  // a delta or timed notification. Without start(), slots begin at time 0.
  void start(sc_core::sc_event& go);
  // Records every DMA on `timeline` (process `pid`): one track per slot, named
  // "device <device> / slot <n>". Call before sc_start().
  void set_timeline(common::Timeline& timeline, uint32_t pid, const std::string& device);
  // Each slot finishes its current DMA and issues no more.
  void stop();
  // Calls `fn` once, right after the n-th DMA (n >= 1) has completed and been counted,
  // before any other process runs: a boundary that falls exactly between two DMAs.
  void on_completed(uint64_t n, std::function<void()> fn);
  // Every DMA is also recorded in `lane` (after this endpoint's own stats).
  void also_count_in(DmaStats& lane) { lane_ = &lane; }
  // Redirects each DMA's window address (default: none): a workload whose buffers are
  // mapped at IOVAs it learns at run time points the DMAs into them. `map` is called at
  // each DMA's issue, `done` (optional) with the address it gave once that DMA completed,
  // so the workload knows when a buffer is no longer in use.
  void set_address_map(std::function<uint64_t(uint64_t)> map, std::function<void(uint64_t)> done = {}) {
    address_map_ = std::move(map);
    address_done_ = std::move(done);
  }
  // The DMAs come from `source` instead of the address generator: the pattern, window,
  // read_fraction, issue_gap_ns and total_transactions no longer apply; transfer_bytes is the
  // size of each slot's buffer, the largest DMA a job may ask for (a larger or empty one
  // completes as an Error without being issued). Call before sc_start().
  void set_job_source(JobSource& source) { jobs_ = &source; }
  // Where the endpoint reports its Translated DMAs (the lane's correctness oracle).
  void set_observer(common::DmaObserver* o) { observer_ = o; }
  // The endpoint's ATC (its device's, when shared); nullptr unless cfg.ats.enabled.
  Atc* atc() { return atc_; }
  const Atc* atc() const { return atc_; }
  // This endpoint is a work queue of `device` (the same RID, another PASID): it uses that
  // device's ATC instead of its own (PCIe 6.0 §10: one ATC per function). Both must have
  // ATS enabled with the same settings (capacity and lookup cost are the device's).
  // Throws std::invalid_argument otherwise. Call before sc_start().
  void share_atc_of(Endpoint& device);
  // Notified (once, delta) when total_transactions completed, or when every slot stopped.
  sc_core::sc_event& done_event() { return done_; }
  bool done() const { return done_notified_; }

  uint64_t completed() const { return stats_.transactions(); }  // every finished DMA
  uint64_t faulted() const { return stats_.faults(); }           // IommuResponse Fault/Aborted
  uint64_t errors() const { return stats_.errors(); }            // other non-OK responses
  uint64_t reads() const { return stats_.reads(); }
  uint64_t writes() const { return stats_.writes(); }
  uint64_t bytes() const { return stats_.bytes(); }              // bytes of successful DMAs
  const common::Histogram& latency_ps() const { return stats_.latency_ps(); }
  const DmaStats& stats() const { return stats_; }
  const EndpointConfig& config() const { return cfg_; }

  // DmaStats::register_stats under prefix.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const { stats_.register_stats(reg, prefix); }

 private:
  struct Slot {
    tlm::tlm_generic_payload payload;   // owns ext (freed by the payload's destructor)
    common::DmaAttributes* ext = nullptr;
    std::vector<unsigned char> data;   // transfer_bytes
  };

  void slot_thread(unsigned idx);
  // The slot's next DMA, from the job source or the address generator (after the slot's
  // issue gap); false when the slot is to stop.
  bool next_dma(unsigned idx, bool first, const sc_core::sc_time& last_issue, DmaJob& job);
  // The slot's DMA through the ATC, page by page, from annotated time `t` (ATS on).
  void ats_transfer(unsigned idx, Slot& s, const DmaJob& job, common::Ps t, DmaStats::Dma& d);
  // Translation Requests for `key` until a completion no invalidation overtook arrives;
  // nullopt when the IOMMU refuses ATS or grants no right for the access. *sent_at: the
  // simulated time the last request was sent.
  std::optional<Atc::Entry> request_translation(unsigned idx, Slot& s, const Atc::Key& key, bool is_read, common::Ps& t,
                                                common::Ps& sent_at);
  // The slot's DMA that began at `issue_start` and has just completed, on its track.
  void trace_dma(unsigned idx, const Slot& s, common::Ps issue_start, bool is_read);
  void slot_exited();
  void notify_done();

  EndpointConfig cfg_;
  common::Clock clk_;
  sc_core::sc_time gap_;
  common::Ps issue_ps_;          // issue_cycles
  sc_core::sc_time issue_time_;
  AddressGenerator gen_;
  std::vector<std::unique_ptr<Slot>> slots_;
  sc_core::sc_event* go_ = nullptr;
  sc_core::sc_event done_;
  bool stop_requested_ = false, done_notified_ = false;
  uint64_t issued_ = 0;
  unsigned running_slots_ = 0;
  DmaStats stats_;
  DmaStats* lane_ = nullptr;
  common::Timeline* timeline_ = nullptr;
  std::vector<common::Timeline::Track> slot_tracks_;
  std::function<uint64_t(uint64_t)> address_map_;
  std::function<void(uint64_t)> address_done_;
  JobSource* jobs_ = nullptr;
  std::unique_ptr<Atc> own_atc_;   // the ATC this endpoint made, unless it shares another's
  Atc* atc_ = nullptr;             // the ATC it uses
  unsigned atc_slot_ = 0;          // its slot 0 in that ATC (Atc::add_slots)
  common::DmaObserver* observer_ = nullptr;
};

}  // namespace iommusim::traffic

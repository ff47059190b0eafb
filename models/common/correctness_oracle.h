// The correctness oracle: for one lane, it knows what each device may reach and since
// when, and checks every DMA the IOMMU completes against that.
//
// The driver tells it, at the API level (as Linux's iommu_map / iommu_unmap / attach do),
// every mapping it makes, every change (unmap, in-place remap or permission change,
// attach, replace, detach), and the simulated time at which the barrier of the covering
// invalidation completed. The model tells it every DMA: who, what address, which access,
// the output address or the fault, and when the DMA was issued and completed.
//
// A DMA is
//   - correct: it used the mappings current at its completion (or faulted where nothing
//     that permits the access was mapped);
//   - permitted stale: it used a mapping (or attachment) that a change had retired, and
//     the barrier covering that change had not completed when the DMA completed (the
//     architecture allows this: IHI 0070 §3.21, VT-d §6.5, AMD IOMMU §2.4);
//   - a violation: it used a retired mapping after the covering barrier completed; or it
//     used an address unmapped and mapped anew before the DMA was issued (IOVA reuse
//     before the flush); or it exceeded the rights of every mapping it could legally use;
//     or it went through another device's or domain's tables; or it faulted although a
//     mapping permitting it existed for its whole lifetime and nothing about it was
//     pending.
// Barrier times arrive after the DMAs they order have been seen, so a DMA that relies on
// a pending change is judged when that change completes (or, at the end, as permitted).
//
// Address spaces are the driver's domains: Stage1 (IOVA -> PA), Stage2 (IPA -> PA) and
// Nested (IOVA -> IPA over a Stage2 parent); a nested DMA's candidates are the compositions
// of both stages' live and retired versions, with the intersection of their rights. Later
// owners extend it without rewriting it: a deferred (lazy) invalidation completes its
// changes when its flush completes; a device ATC (docs/ats.md: the endpoint reports its
// Translated DMAs with their IOVA) is one more version store checked the
// same way; a guest owning stage 1 completes its own changes with its own barrier times,
// reporting through an OracleScope (below) that places its spaces and device IDs.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/common/iommu_block.h"
#include "models/common/stats.h"

namespace iommusim::common {

struct Rights {
  bool read = true, write = true, exec = false, user = true;
  Rights operator&(const Rights& o) const {
    return {read && o.read, write && o.write, exec && o.exec, user && o.user};
  }
  bool allows(const pagetable::Access& a) const {
    return (a.write ? write : read) && (!a.exec || exec) && (a.privileged || user);
  }
};

class CorrectnessOracle : public DmaObserver {
 public:
  enum class SpaceKind : uint8_t { Stage1, Stage2, Nested };
  using ChangeId = uint64_t;
  static constexpr uint32_t kNoPasid = ~0u;

  explicit CorrectnessOracle(std::string vendor) : vendor_(std::move(vendor)) {}

  // The driver's side. Every change returns an id that complete() closes once the barrier
  // of its covering invalidation has completed (at `barrier_ps`, the hardware time).
  void add_space(uint32_t space, SpaceKind kind, uint32_t parent = 0);
  void map(uint32_t space, uint64_t in, uint64_t out, uint64_t bytes, Rights r);
  // The live extents of [in, in + bytes) are made by another agent the driver waits for (a
  // virtio-iommu device maps them on the host while it serves the guest's MAP): a DMA issued
  // before `visible_ps` (kNotYetVisible: any) that faults there is not blamed on them. They
  // stay live from their map(), so a DMA that did find them is explained.
  static constexpr uint64_t kNotYetVisible = ~0ull;
  void visible_from(uint32_t space, uint64_t in, uint64_t bytes, uint64_t visible_ps);
  ChangeId unmap(uint32_t space, uint64_t in, uint64_t bytes);
  ChangeId change(uint32_t space, uint64_t in, uint64_t bytes, uint64_t out, Rights r);   // in place
  ChangeId change_rights(uint32_t space, uint64_t in, uint64_t bytes, Rights r);         // same outputs
  ChangeId attach(uint32_t rid, std::optional<uint32_t> pasid, uint32_t space);
  ChangeId detach(uint32_t rid, std::optional<uint32_t> pasid);
  void complete(ChangeId id, uint64_t barrier_ps);
  // Every request passes untranslated (global bypass).
  void set_bypass(bool on) { bypass_ = on; }

  // The model's side.
  void dma_completed(const DmaRequest& rq, const DmaOutcome& o, uint64_t issue_ps, uint64_t done_ps) override;

  // Judges the DMAs still waiting on a pending change (permitted: no barrier completed).
  void finish();

  uint64_t checked() const { return checked_.value(); }
  uint64_t permitted_stale() const { return stale_.value(); }
  uint64_t violations() const { return violations_.value(); }
  // The first violations (at most kKeptViolations), with time, device, PASID, address,
  // what the mappings allowed and what the DMA got.
  nlohmann::json violations_json() const;
  void register_stats(StatRegistry& reg, const std::string& prefix) const;

  static constexpr size_t kKeptViolations = 32;

 private:
  static constexpr uint64_t kPending = ~0ull;
  struct Extent { uint64_t in = 0, end = 0, out = 0; Rights rights; uint64_t created = 0; };
  struct Retired {
    Extent e;
    ChangeId change = 0;
    bool by_unmap = false;
    uint64_t reused = kPending;   // an unmapped range mapped anew at this time
  };
  struct Space {
    SpaceKind kind = SpaceKind::Stage1;
    uint32_t parent = 0;
    std::map<uint64_t, Extent> live;            // by `in`; never overlapping
    std::multimap<uint64_t, Retired> retired;   // by `end`
    uint64_t max_retired_bytes = 0;
  };
  struct Attachment { uint32_t space = 0; uint64_t created = 0; };
  struct RetiredAttachment { uint64_t key = 0; Attachment a; ChangeId change = 0; };
  // One way to explain a DMA's output: where it leads, with which rights, relying on which
  // changes still being allowed (0: a live version).
  struct Candidate {
    uint64_t out = 0;
    Rights rights;
    ChangeId relies[3] = {0, 0, 0};
    bool reused = false;   // a version unmapped and mapped anew before the DMA was issued
    uint64_t created = 0;  // the latest creation time of the live versions it uses
    bool add(ChangeId c) {
      if (!c) return true;
      for (auto& r : relies) if (!r) { r = c; return true; }
      return false;
    }
  };
  // A DMA relying on changes whose barriers had not been reported when it completed.
  struct Wait { uint64_t done_ps = 0; ChangeId relies[3] = {0, 0, 0}; DmaRequest rq; uint64_t got = 0; };

  static uint64_t key(uint32_t rid, std::optional<uint32_t> pasid) {
    return (uint64_t(rid) << 32) | pasid.value_or(kNoPasid);
  }
  Space* space(uint32_t id);
  // Removes [in, in+bytes) from the live map; the removed pieces go to `removed`.
  void carve(Space& s, uint64_t in, uint64_t bytes, std::vector<Extent>& removed);
  ChangeId retire(uint32_t id, uint64_t in, uint64_t bytes, bool by_unmap, const uint64_t* out, const Rights* r);
  // Appends `base` extended by one version: its output and its rights ANDed in. `base` must
  // not be an element of `out`.
  static Candidate& extend(std::vector<Candidate>& out, const Candidate& base, uint64_t output, const Rights& rights);
  // Live and retired versions of `addr` in one space, as candidates extending `base`.
  void versions(uint32_t id, uint64_t addr, uint64_t issue_ps, const Candidate& base, std::vector<Candidate>& out);
  void candidates(uint32_t space, uint64_t addr, uint64_t issue_ps, const Candidate& base, std::vector<Candidate>& out);
  uint64_t done_time(ChangeId c) const;   // kPending, or the barrier time
  // Whether a change that could explain a fault was pending while the DMA was in flight.
  bool changing(uint32_t space, uint64_t addr, uint64_t issue_ps) const;
  void violation(const DmaRequest& rq, uint64_t done_ps, const std::string& expected, const std::string& got,
                 const std::string& why);
  void prune(Space& s);
  // Forgets completed attachments (beyond a few) and barrier times nothing refers to, so a
  // long run's memory stays bounded.
  void forget_completed();

  std::string vendor_;
  bool bypass_ = false;
  std::map<uint32_t, Space> spaces_;   // never erased, so pointers into it stay valid
  std::map<uint64_t, Attachment> attached_;
  // Every DMA looks up its attachment and one or two spaces: small caches in front of the
  // maps (the hit path's profile). Spaces are never erased; the attachment cache is reset
  // whenever attached_ changes.
  std::array<std::pair<uint32_t, Space*>, 4> space_cache_{};
  uint64_t cached_key_ = 0;
  std::map<uint64_t, Attachment>::const_iterator cached_attachment_;
  bool attachment_cached_ = false;
  std::vector<RetiredAttachment> retired_attachments_;
  ChangeId next_change_ = 1;
  uint64_t completions_ = 0;
  std::map<ChangeId, uint64_t> change_done_;   // barrier time of each completed change
  uint64_t pruned_horizon_ps_ = 0;             // retired versions completed before this are forgotten
  std::deque<Wait> waiting_;
  std::vector<Candidate> scratch_, scratch2_;
  Counter checked_, stale_, violations_;
  struct Record { DmaRequest rq; uint64_t done_ps = 0; std::string expected, got, why; };
  std::vector<Record> kept_;
};

// What one driver's reports mean in the lane's oracle, when several drivers share it: a
// host driver per physical IOMMU and a guest driver per vIOMMU of each VM.
// - Space IDs are namespaced: the driver's domain d is oracle space space_base + d (host
//   unit k: k << 24; VM v's vIOMMU k: (0x40 + 8v + k) << 24, platforms/vmm).
// - A guest's Stage1 domain translates IOVA -> GPA, so with stage1_parent set it becomes a
//   Nested space over that (oracle) Stage2 space: the VM's stage 2, built by the host.
// - Device IDs: a guest names its devices by virtual ID (vSID / vRID / vDeviceID) while DMAs
//   carry the physical one, so attach and detach go through the vRID -> pRID map. A vRID
//   with no physical device (no vDEVICE yet) reaches no DMA and is not reported.
// The default scope (base 0, no parent, physical RIDs) reports exactly what the driver says.
struct OracleScope {
  uint32_t space_base = 0;
  uint32_t stage1_parent = 0;   // 0: Stage1 domains are Stage1 spaces
  bool virtual_rids = false;    // RIDs go through rid_map
  std::map<uint32_t, uint32_t> rid_map;   // vRID -> pRID
  // vRID -> the PASID of pRID it stands for (a guest device that is one PASID of a physical
  // one): attachments of the vRID without a PASID are that PASID's.
  std::map<uint32_t, uint32_t> rid_pasid_map;
};

// A driver's handle on the lane's oracle through its scope; every call is a no-op (change
// ID 0) without an oracle.
class ScopedOracle {
 public:
  using ChangeId = CorrectnessOracle::ChangeId;
  using SpaceKind = CorrectnessOracle::SpaceKind;

  ScopedOracle() = default;
  ScopedOracle(CorrectnessOracle* o, OracleScope scope) : o_(o), scope_(std::move(scope)) {}
  explicit operator bool() const { return o_ != nullptr; }
  CorrectnessOracle* oracle() const { return o_; }
  const OracleScope& scope() const { return scope_; }
  // A vDEVICE appeared (or went: nullopt) after the scope was set.
  void set_rid(uint32_t vrid, std::optional<uint32_t> prid);

  uint32_t space(uint32_t local) const { return scope_.space_base + local; }
  std::optional<uint32_t> rid(uint32_t local) const;
  // The physical PASID of an attachment of `local` with `pasid`.
  std::optional<uint32_t> pasid(uint32_t local, std::optional<uint32_t> pasid) const;

  void add_space(uint32_t local, SpaceKind kind, uint32_t local_parent);
  void map(uint32_t local, uint64_t in, uint64_t out, uint64_t bytes, Rights r) {
    if (o_) o_->map(space(local), in, out, bytes, r);
  }
  void visible_from(uint32_t local, uint64_t in, uint64_t bytes, uint64_t visible_ps) {
    if (o_) o_->visible_from(space(local), in, bytes, visible_ps);
  }
  ChangeId unmap(uint32_t local, uint64_t in, uint64_t bytes) { return o_ ? o_->unmap(space(local), in, bytes) : 0; }
  ChangeId change(uint32_t local, uint64_t in, uint64_t bytes, uint64_t out, Rights r) {
    return o_ ? o_->change(space(local), in, bytes, out, r) : 0;
  }
  ChangeId change_rights(uint32_t local, uint64_t in, uint64_t bytes, Rights r) {
    return o_ ? o_->change_rights(space(local), in, bytes, r) : 0;
  }
  ChangeId attach(uint32_t rid, std::optional<uint32_t> pasid, uint32_t local_space);
  ChangeId detach(uint32_t rid, std::optional<uint32_t> pasid);
  void complete(ChangeId c, uint64_t barrier_ps) {
    if (o_ && c) o_->complete(c, barrier_ps);
  }

 private:
  CorrectnessOracle* o_ = nullptr;
  OracleScope scope_;
};

}  // namespace iommusim::common

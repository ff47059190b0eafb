// The stress workload (workload.mode = "stress"): while the endpoint's DMAs run over the
// window, the driver changes that same window, so translations race their invalidations
// and the correctness oracle sees the race windows.
//
// The DMA domain A maps the window with leaves of one size (or, with mixed_leaves, 2 MB
// chunks that alternate between one 2 MB leaf and 512 4 KB leaves). Every step picks, at
// random (seeded), one of:
//   - remap: a live leaf moves in place to the other of its two target regions;
//   - protect: a live leaf toggles between read-write and read-only;
//   - unmap + map: a leaf is strictly unmapped, then mapped anew to the other region;
//   - reattach: the device moves between domain A and domain B (B maps the window to a
//     third region; nested: B sits on a second stage-2 parent with its own guest memory);
//   - flush: a whole-domain invalidation of A;
//   - nested only, stage-2 remap: an IPA page behind the window moves to another PA.
// Each is the driver's own operation with its own invalidation and barrier.
//
// On a virtio-iommu lane (unmap_map_only) every step is unmap + map: the guest's driver has
// no in-place remap or protect (a virtio-iommu mapping only comes and goes whole), and the
// VMM moves no guest pages there; reattach and flush are left out too, so every step races
// the endpoint's DMAs against one UNMAP and one MAP request.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "models/common/stats.h"
#include "platforms/driver/driver.h"

namespace iommusim::platforms {

struct StressConfig {
  std::string translation;    // s1 | s2 | nested
  uint64_t window_base = 0, window_bytes = 0;
  uint64_t leaf_bytes = 4096;   // the DMA domain's leaves (stage 1, or stage 2 for s2)
  bool mixed_leaves = false;
  uint64_t s2_page = 4096;
  uint64_t guest_ram_pa = 0, guest_ram_bytes = 0, buffer_ipa = 0;
  uint64_t stride = 0;          // distance between target regions (window rounded up to a leaf)
  uint64_t seed = 1;
  // Nested with a guest that owns stage 1 (a trapped lane): A and B are the guest driver's
  // stage-1 domains over its VM's one stage 2 (B maps the window onto region 1), and a
  // stage-2 move is the VMM's (move_guest_page: IOMMU_IOAS_UNMAP and MAP of the page).
  bool guest_stage1 = false;
  std::function<driver::Status(uint64_t gpa, uint64_t pa, uint64_t bytes)> move_guest_page;
  // A virtio-iommu guest (guest_stage1 too: A and B map GPAs whatever the translation):
  // every step is unmap + map (above).
  bool unmap_map_only = false;
};

class StressWorkload {
 public:
  StressWorkload(const StressConfig& c, driver::IommuDriver& drv);
  // Builds domains A and B (and their stage-2 parents), maps them and attaches the device.
  driver::Status setup(uint32_t rid, std::optional<uint32_t> pasid);
  // A work queue of the same device (its RID, another PASID) on domain A, where it stays
  // while the device's own PASID moves between A and B: every change of A must reach the
  // queue's translations too (with ATS, its PASID's entries in the device's shared ATC).
  driver::Status attach_work_queue(uint32_t rid, uint32_t pasid) { return drv_.attach(rid, pasid, a_); }
  // One random change, with its invalidation; `what` names it for error messages.
  driver::Status step(std::string& what);
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Leaf { uint64_t iova = 0, bytes = 0; unsigned region = 0; bool read_only = false; };
  struct Chunk { size_t first = 0, count = 0; };   // leaves picked together: one 2 MB of mixed leaves
  // Where `iova` of the window points in region r: a PA (s1, s2) or an IPA (nested).
  uint64_t target(uint64_t iova, unsigned region) const;
  driver::Status map_window(driver::DomainId d, unsigned region);
  Leaf& pick_leaf();
  // A leaf strictly unmapped, then mapped anew onto its other region.
  driver::Status unmap_and_map(std::string& what);
  static driver::Prot prot(const Leaf& l) { return {true, !l.read_only, false}; }
  uint64_t random(uint64_t n) { return n ? rng_() % n : 0; }

  StressConfig c_;
  driver::IommuDriver& drv_;
  std::mt19937_64 rng_;
  uint32_t rid_ = 0;
  std::optional<uint32_t> pasid_;
  driver::DomainId a_ = 0, b_ = 0, s2_a_ = 0, s2_b_ = 0;
  bool on_b_ = false;
  std::vector<Leaf> leaves_;
  std::vector<Chunk> chunks_;
  std::vector<bool> s2_moved_;   // nested: IPA leaves (of the two window regions) moved to another PA
  common::Counter remaps_, protects_, unmaps_, reattaches_, flushes_, s2_remaps_;
};

}  // namespace iommusim::platforms

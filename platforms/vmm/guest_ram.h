// A VM's guest-physical memory as its vCPUs and its VMM see it: the VMM's memory slots
// (KVM memslots, what the VMM also maps into the VM's IOAS) from GPA onto host physical
// memory.
//
// What it models
// - One contiguous slot: GPA [0, bytes) -> PA [pa, pa + bytes) of the lane's memory, the
//   layout platform.guest_ram_pa / guest_ram_bytes give every nested run.
// - Untimed loads and stores (a guest driver charges its own CPU time; the VMM charges
//   its per-command fetch cost, platforms/vmm/vmm_costs.h).
// - An access outside the slot reads zeros and stores nothing, and is counted: a guest bug
//   the run reports (stat vmm.guest_ram.outside) rather than host memory it may not touch.
//
// What it does not model: several slots, MMIO holes, dirty logging.
#pragma once
#include <cstdint>
#include <cstring>

#include "models/common/stats.h"
#include "models/memory/sparse_memory.h"
#include "platforms/driver/memory_view.h"

namespace iommusim::vmm {

class GuestRam final : public driver::MemoryView {
 public:
  GuestRam(memory::SparseMemory& host, uint64_t pa, uint64_t bytes) : host_(host), pa_(pa), bytes_(bytes) {}

  uint64_t pa() const { return pa_; }
  uint64_t bytes() const { return bytes_; }
  bool contains(uint64_t gpa, uint64_t len) const { return len <= bytes_ && gpa <= bytes_ - len; }
  // A VMM's read of a guest queue entry: false (nothing read) outside guest RAM, which the
  // queue engine turns into the vIOMMU's architected fetch error.
  bool fetch(uint64_t gpa, void* dst, uint64_t len) const {
    if (!contains(gpa, len)) return false;
    read(gpa, dst, len);
    return true;
  }

  void read(uint64_t gpa, void* dst, uint64_t len) const override {
    if (!contains(gpa, len)) { outside_.inc(); std::memset(dst, 0, len); return; }
    host_.read(pa_ + gpa, dst, len);
  }
  void write(uint64_t gpa, const void* src, uint64_t len) override {
    if (!contains(gpa, len)) { outside_.inc(); return; }
    host_.write(pa_ + gpa, src, len);
  }
  uint64_t outside() const { return outside_.value(); }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const {
    reg.add(prefix + ".outside", outside_, "count", "guest accesses outside guest RAM (dropped; a guest bug)");
  }

 private:
  memory::SparseMemory& host_;
  uint64_t pa_, bytes_;
  mutable common::Counter outside_;
};

}  // namespace iommusim::vmm

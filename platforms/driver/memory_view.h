// The memory a driver keeps its structures in, as the driver's CPU sees it.
//
// What it models
// - Untimed loads and stores of the driver's tables and queues (stream/context/PASID/device
//   tables, command queues, completion words, page tables): a driver's CPU time is charged
//   by the driver itself (DriverTiming), not here.
// - Two views: a host driver's is physical memory (HostMemoryView over the lane's
//   SparseMemory); a guest driver's is its guest-physical memory, which its VMM maps onto
//   host memory (platforms/vmm), so the same backends run unchanged inside a VM.
//
// What it does not model
// - Caches, store ordering or access timing; faults (an access outside what the view maps
//   is the view's own error policy).
#pragma once
#include <cstdint>

#include "models/memory/sparse_memory.h"

namespace iommusim::driver {

class MemoryView {
 public:
  virtual ~MemoryView() = default;
  virtual void read(uint64_t addr, void* dst, uint64_t len) const = 0;
  virtual void write(uint64_t addr, const void* src, uint64_t len) = 0;

  uint64_t read64(uint64_t addr) const { uint64_t v; read(addr, &v, 8); return v; }
  uint32_t read32(uint64_t addr) const { uint32_t v; read(addr, &v, 4); return v; }
  void write64(uint64_t addr, uint64_t v) { write(addr, &v, 8); }
  void write32(uint64_t addr, uint32_t v) { write(addr, &v, 4); }
};

// A host driver's view: physical memory itself.
class HostMemoryView final : public MemoryView {
 public:
  explicit HostMemoryView(memory::SparseMemory& m) : mem_(m) {}
  void read(uint64_t addr, void* dst, uint64_t len) const override { mem_.read(addr, dst, len); }
  void write(uint64_t addr, const void* src, uint64_t len) override { mem_.write(addr, src, len); }

 private:
  memory::SparseMemory& mem_;
};

// What a driver is built on: a host's physical memory (the view is made for it) or any
// other view, which must outlive the driver.
class DriverMemoryRef {
 public:
  DriverMemoryRef(memory::SparseMemory& host) : host_(&host) {}   // NOLINT: implicit on purpose
  DriverMemoryRef(MemoryView& view) : view_(&view) {}             // NOLINT: implicit on purpose
  memory::SparseMemory* host() const { return host_; }
  MemoryView* view() const { return view_; }

 private:
  memory::SparseMemory* host_ = nullptr;
  MemoryView* view_ = nullptr;
};

}  // namespace iommusim::driver

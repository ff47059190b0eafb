// Sparse physical memory behind a TLM-2.0 target socket.
//
// Models: an access latency, a number of channels and a data rate in bytes per cycle. A
// channel is busy only while it transfers (ceil(bytes / bytes_per_cycle) cycles); the
// latency overlaps other accesses' transfers, so N outstanding accesses reach channels x
// bytes_per_cycle. Each channel is a busy-until reservation (models/common/resource.h): an
// access takes the channel that frees first, starts its transfer then, and completes
// latency + transfer cycles after that start. Timing is annotated: b_transport adds the
// access's time to `delay` and never waits (TLM-2.0 loosely timed); the initiator
// synchronises. The same timing serves direct accesses (common::TimedMemory).
//
// Storage: 4 KB frames, allocated when first written, found through a three-level radix
// table (1 GiB, 2 MiB, 4 KB), so memory grows with what is stored. Reads of never-written
// bytes return 0. A DMA's payload (a forwarded request carrying DmaAttributes, or a direct
// access of kind DmaPayload) is stored only when `store_dma_payload` is set, or when it
// writes into a frame that already holds something (a table a device scribbles on must
// change); otherwise its data is dropped and later reads of it return 0.
// Does not model: banks, rows, refresh or write buffering.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>

#include "models/common/clock.h"
#include "models/common/resource.h"
#include "models/common/stats.h"
#include "models/common/timed_memory.h"

namespace iommusim::memory {

struct MemoryConfig {
  double clock_mhz = 1000.0;
  unsigned latency_cycles = 80;    // first-word latency
  unsigned channels = 4;
  unsigned bytes_per_cycle = 32;
  uint64_t size_bytes = 1ull << 40;   // accesses past this get TLM_ADDRESS_ERROR_RESPONSE
  bool store_dma_payload = false;     // keep the bytes devices write (tests that read them back)
};

class SparseMemory : public sc_core::sc_module, public common::TimedMemory {
 public:
  static constexpr uint64_t kMaxSizeBytes = 1ull << 52;
  tlm_utils::multi_passthrough_target_socket<SparseMemory> socket;

  // Throws std::invalid_argument for a size beyond kMaxSizeBytes.
  SparseMemory(sc_core::sc_module_name name, const MemoryConfig& cfg);

  // Untimed access for loaders, checkers and tests (also reachable as transport_dbg).
  void read(uint64_t addr, void* dst, uint64_t len) const;
  void write(uint64_t addr, const void* src, uint64_t len);
  uint64_t read64(uint64_t addr) const { uint64_t v; read(addr, &v, 8); return v; }
  void write64(uint64_t addr, uint64_t v) { write(addr, &v, 8); }
  uint32_t read32(uint64_t addr) const { uint32_t v; read(addr, &v, 4); return v; }
  void write32(uint64_t addr, uint32_t v) { write(addr, &v, 4); }

  bool reserve(uint64_t addr, unsigned len, common::Ps& t) override;
  void transfer(bool write, uint64_t addr, void* data, unsigned len, common::AccessKind kind) override;

  uint64_t frames_allocated() const { return frames_; }
  uint64_t dma_bytes_dropped() const { return dropped_bytes_.value(); }
  const MemoryConfig& config() const { return cfg_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  static constexpr uint64_t kFrame = 4096;
  static constexpr unsigned kLevelBits = 9;   // 512 entries per radix node
  using Frame = std::array<uint8_t, kFrame>;
  struct Leaf { std::array<std::unique_ptr<Frame>, 1u << kLevelBits> frames; };    // 2 MiB
  struct Mid { std::array<std::unique_ptr<Leaf>, 1u << kLevelBits> leaves; };      // 1 GiB

  Frame* find(uint64_t frame) const;   // nullptr: never written
  Frame& frame_for_write(uint64_t frame);
  // Timing of one access beginning at `t`; returns its completion.
  common::Ps charge(uint64_t len, common::Ps t);
  bool in_range(uint64_t addr, uint64_t len) const { return len && addr < cfg_.size_bytes && len <= cfg_.size_bytes - addr; }
  void store_payload(uint64_t addr, const void* src, uint64_t len);

  void b_transport(int id, tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  unsigned transport_dbg(int id, tlm::tlm_generic_payload& p);

  MemoryConfig cfg_;
  common::Clock clk_;
  common::Ps latency_ps_;
  uint64_t bytes_per_cycle_;
  common::BusyUnits channels_;
  std::vector<std::unique_ptr<Mid>> top_;
  uint64_t frames_ = 0;
  common::Counter reads_, writes_, bytes_read_, bytes_written_, address_errors_, dropped_bytes_;
  common::Histogram access_ps_;
};

}  // namespace iommusim::memory

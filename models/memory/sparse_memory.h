// Sparse physical memory behind a TLM-2.0 target socket.
//
// Models: byte storage only for 4 KB frames that were written (reads of never-written
// bytes return 0), an access latency, a number of channels and a data rate in bytes per
// cycle. A channel is busy only while it transfers (ceil(bytes / bytes_per_cycle) cycles);
// the latency overlaps other accesses' transfers, so N outstanding accesses reach
// channels x bytes_per_cycle. Each channel is a busy-until reservation: an access takes
// the channel that frees first (FIFO in arrival order), starts its transfer then, and
// completes latency + transfer cycles after that start.
// Does not model: banks, rows, refresh or write buffering.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>

#include "models/common/clock.h"
#include "models/common/stats.h"

namespace iommusim::memory {

struct MemoryConfig {
  double clock_mhz = 1000.0;
  unsigned latency_cycles = 80;    // first-word latency
  unsigned channels = 4;
  unsigned bytes_per_cycle = 32;
  uint64_t size_bytes = 1ull << 40;   // accesses past this get TLM_ADDRESS_ERROR_RESPONSE
};

class SparseMemory : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<SparseMemory> socket;

  SparseMemory(sc_core::sc_module_name name, const MemoryConfig& cfg);

  // Untimed access for loaders, checkers and tests (also reachable as transport_dbg).
  void read(uint64_t addr, void* dst, uint64_t len) const;
  void write(uint64_t addr, const void* src, uint64_t len);
  uint64_t read64(uint64_t addr) const { uint64_t v; read(addr, &v, 8); return v; }
  void write64(uint64_t addr, uint64_t v) { write(addr, &v, 8); }
  uint32_t read32(uint64_t addr) const { uint32_t v; read(addr, &v, 4); return v; }
  void write32(uint64_t addr, uint32_t v) { write(addr, &v, 4); }

  uint64_t frames_allocated() const { return frames_.size(); }
  const MemoryConfig& config() const { return cfg_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  static constexpr uint64_t kFrame = 4096;
  using Frame = std::array<uint8_t, kFrame>;

  void b_transport(int id, tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  unsigned transport_dbg(int id, tlm::tlm_generic_payload& p);

  MemoryConfig cfg_;
  common::Clock clk_;
  std::vector<sc_core::sc_time> channel_free_at_;   // per channel: end of its last reserved transfer
  std::unordered_map<uint64_t, std::unique_ptr<Frame>> frames_;
  common::Counter reads_, writes_, bytes_read_, bytes_written_, address_errors_;
  common::Counter channel_acquisitions_, channel_contended_;
  common::Histogram access_ps_, channel_wait_ps_;
};

}  // namespace iommusim::memory

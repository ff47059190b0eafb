#include "models/memory/sparse_memory.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "models/common/dma_attributes.h"

namespace iommusim::memory {

using common::Ps;

SparseMemory::SparseMemory(sc_core::sc_module_name name, const MemoryConfig& cfg)
    : sc_module(name), socket("socket"), cfg_(cfg), clk_(common::Clock::from_mhz(cfg.clock_mhz)),
      latency_ps_(clk_.cycles_ps(cfg.latency_cycles)), bytes_per_cycle_(cfg.bytes_per_cycle ? cfg.bytes_per_cycle : 1),
      channels_(std::string(this->name()) + ".channels", cfg.channels ? cfg.channels : 1) {
  if (cfg.size_bytes > kMaxSizeBytes)
    throw std::invalid_argument("memory size_bytes beyond 2^52 (the widest physical address modelled)");
  top_.resize(size_t((cfg.size_bytes + (1ull << 30) - 1) >> 30));
  socket.register_b_transport(this, &SparseMemory::b_transport);
  socket.register_transport_dbg(this, &SparseMemory::transport_dbg);
}

SparseMemory::Frame* SparseMemory::find(uint64_t frame) const {
  const uint64_t top = frame >> (2 * kLevelBits);
  if (top >= top_.size() || !top_[top]) return nullptr;
  const Leaf* leaf = top_[top]->leaves[(frame >> kLevelBits) & ((1u << kLevelBits) - 1)].get();
  return leaf ? leaf->frames[frame & ((1u << kLevelBits) - 1)].get() : nullptr;
}

SparseMemory::Frame& SparseMemory::frame_for_write(uint64_t frame) {
  const uint64_t top = frame >> (2 * kLevelBits);
  if (top >= top_.size()) top_.resize(top + 1);   // untimed writes may reach past size_bytes
  auto& mid = top_[top];
  if (!mid) mid = std::make_unique<Mid>();
  auto& leaf = mid->leaves[(frame >> kLevelBits) & ((1u << kLevelBits) - 1)];
  if (!leaf) leaf = std::make_unique<Leaf>();
  auto& f = leaf->frames[frame & ((1u << kLevelBits) - 1)];
  if (!f) { f = std::make_unique<Frame>(); ++frames_; }
  return *f;
}

void SparseMemory::read(uint64_t addr, void* dst, uint64_t len) const {
  auto* out = static_cast<uint8_t*>(dst);
  while (len) {
    const uint64_t off = addr % kFrame, n = std::min(len, kFrame - off);
    if (const Frame* f = find(addr / kFrame)) std::memcpy(out, f->data() + off, n);
    else std::memset(out, 0, n);
    addr += n; out += n; len -= n;
  }
}

void SparseMemory::write(uint64_t addr, const void* src, uint64_t len) {
  auto* in = static_cast<const uint8_t*>(src);
  while (len) {
    const uint64_t off = addr % kFrame, n = std::min(len, kFrame - off);
    std::memcpy(frame_for_write(addr / kFrame).data() + off, in, n);
    addr += n; in += n; len -= n;
  }
}

void SparseMemory::store_payload(uint64_t addr, const void* src, uint64_t len) {
  if (cfg_.store_dma_payload) { write(addr, src, len); return; }
  auto* in = static_cast<const uint8_t*>(src);
  while (len) {
    const uint64_t off = addr % kFrame, n = std::min(len, kFrame - off);
    if (Frame* f = find(addr / kFrame)) std::memcpy(f->data() + off, in, n);
    else dropped_bytes_.inc(n);
    addr += n; in += n; len -= n;
  }
}

Ps SparseMemory::charge(uint64_t len, Ps t) {
  // Reserve the channel that frees first for the transfer only.
  const Ps transfer = clk_.cycles_ps((len + bytes_per_cycle_ - 1) / bytes_per_cycle_);
  const Ps transfer_start = channels_.reserve(t, transfer);
  const Ps done = transfer_start + latency_ps_ + transfer;
  access_ps_.record(done - t);
  return done;
}

bool SparseMemory::reserve(uint64_t addr, unsigned len, Ps& t) {
  if (!in_range(addr, len)) { address_errors_.inc(); return false; }
  t = charge(len, t);
  return true;
}

void SparseMemory::transfer(bool is_write, uint64_t addr, void* data, unsigned len, common::AccessKind kind) {
  if (is_write) {
    if (kind == common::AccessKind::DmaPayload) store_payload(addr, data, len);
    else write(addr, data, len);
    writes_.inc(); bytes_written_.inc(len);
  } else {
    read(addr, data, len);
    reads_.inc(); bytes_read_.inc(len);
  }
}

void SparseMemory::b_transport(int, tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const uint64_t addr = p.get_address(), len = p.get_data_length();
  if (!in_range(addr, len) || p.get_byte_enable_ptr()) {
    address_errors_.inc();
    p.set_response_status(p.get_byte_enable_ptr() ? tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE
                                                   : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return;
  }
  const Ps now = common::now_ps(), start = now + common::to_ps(delay);
  const Ps done = charge(len, start);
  if (p.is_read()) { read(addr, p.get_data_ptr(), len); reads_.inc(); bytes_read_.inc(len); }
  else if (p.is_write()) {
    if (p.get_extension<common::DmaAttributes>()) store_payload(addr, p.get_data_ptr(), len);
    else write(addr, p.get_data_ptr(), len);
    writes_.inc(); bytes_written_.inc(len);
  }
  delay = common::from_ps(done - now);
  p.set_response_status(tlm::TLM_OK_RESPONSE);
}

unsigned SparseMemory::transport_dbg(int, tlm::tlm_generic_payload& p) {
  const uint64_t addr = p.get_address(), len = p.get_data_length();
  if (addr >= cfg_.size_bytes || len > cfg_.size_bytes - addr) return 0;
  if (p.is_read()) read(addr, p.get_data_ptr(), len);
  else if (p.is_write()) write(addr, p.get_data_ptr(), len);
  return unsigned(len);
}

void SparseMemory::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".reads", reads_, "count", "timed read transactions");
  reg.add(p + ".writes", writes_, "count", "timed write transactions");
  reg.add(p + ".bytes_read", bytes_read_, "bytes", "bytes returned by timed reads");
  reg.add(p + ".bytes_written", bytes_written_, "bytes", "bytes stored by timed writes");
  reg.add(p + ".dma_bytes_dropped", dropped_bytes_, "bytes",
          "DMA payload bytes not stored (memory.store_dma_payload off, frame never written otherwise)");
  reg.add(p + ".address_errors", address_errors_, "count", "accesses outside memory, answered with an address error");
  reg.add(p + ".access_latency", access_ps_, "ns", "time from channel request to data, per access", 1e-3);
  channels_.register_stats(reg, p + ".channels");
}

}  // namespace iommusim::memory

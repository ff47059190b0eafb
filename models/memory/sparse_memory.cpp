#include "models/memory/sparse_memory.h"

#include <algorithm>
#include <cstring>

namespace iommusim::memory {

SparseMemory::SparseMemory(sc_core::sc_module_name name, const MemoryConfig& cfg)
    : sc_module(name), socket("socket"), cfg_(cfg), clk_(common::Clock::from_mhz(cfg.clock_mhz)),
      channel_free_at_(cfg.channels ? cfg.channels : 1, sc_core::SC_ZERO_TIME) {
  socket.register_b_transport(this, &SparseMemory::b_transport);
  socket.register_transport_dbg(this, &SparseMemory::transport_dbg);
}

void SparseMemory::read(uint64_t addr, void* dst, uint64_t len) const {
  auto* out = static_cast<uint8_t*>(dst);
  while (len) {
    uint64_t off = addr % kFrame, n = std::min(len, kFrame - off);
    auto it = frames_.find(addr / kFrame);
    if (it == frames_.end()) std::memset(out, 0, n);
    else std::memcpy(out, it->second->data() + off, n);
    addr += n; out += n; len -= n;
  }
}

void SparseMemory::write(uint64_t addr, const void* src, uint64_t len) {
  auto* in = static_cast<const uint8_t*>(src);
  while (len) {
    uint64_t off = addr % kFrame, n = std::min(len, kFrame - off);
    auto& frame = frames_[addr / kFrame];
    if (!frame) frame = std::make_unique<Frame>(Frame{});
    std::memcpy(frame->data() + off, in, n);
    addr += n; in += n; len -= n;
  }
}

void SparseMemory::b_transport(int, tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const uint64_t addr = p.get_address(), len = p.get_data_length();
  if (len == 0 || addr >= cfg_.size_bytes || len > cfg_.size_bytes - addr || p.get_byte_enable_ptr()) {
    address_errors_.inc();
    p.set_response_status(p.get_byte_enable_ptr() ? tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE
                                                   : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return;
  }
  if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
  const sc_core::sc_time start = sc_core::sc_time_stamp();
  {
    // Reserve the channel that frees first for the transfer only; no process blocks on it.
    auto channel = std::min_element(channel_free_at_.begin(), channel_free_at_.end());
    const sc_core::sc_time transfer_start = std::max(start, *channel);
    const uint64_t bpc = cfg_.bytes_per_cycle ? cfg_.bytes_per_cycle : 1;
    const sc_core::sc_time transfer = clk_.cycles((len + bpc - 1) / bpc);
    *channel = transfer_start + transfer;
    channel_acquisitions_.inc();
    if (transfer_start > start) channel_contended_.inc();
    channel_wait_ps_.record(common::to_ps(transfer_start - start));
    sc_core::wait(transfer_start - start + clk_.cycles(cfg_.latency_cycles) + transfer);
  }
  if (p.is_read()) { read(addr, p.get_data_ptr(), len); reads_.inc(); bytes_read_.inc(len); }
  else if (p.is_write()) { write(addr, p.get_data_ptr(), len); writes_.inc(); bytes_written_.inc(len); }
  access_ps_.record(common::to_ps(sc_core::sc_time_stamp() - start));
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
  reg.add(p + ".address_errors", address_errors_, "count", "accesses outside memory, answered with an address error");
  reg.add(p + ".access_latency", access_ps_, "ns", "time from channel request to data, per access", 1e-3);
  reg.add(p + ".channels.acquisitions", channel_acquisitions_, "count", "channel transfers reserved");
  reg.add(p + ".channels.contended", channel_contended_, "count", "accesses that waited for a channel to free");
  reg.add(p + ".channels.wait", channel_wait_ps_, "ns", "time an access waited for a channel before its transfer", 1e-3);
}

}  // namespace iommusim::memory

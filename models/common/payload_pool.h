// Reusable TLM payloads for a model's own memory accesses (table fetches, queue reads,
// event writes). A tlm_generic_payload allocates its extension array when built, so hot
// paths borrow one from here instead; the pool only grows to the peak concurrency.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <tlm>

#include "models/common/clock.h"

namespace iommusim::common {

class PayloadPool {
 public:
  tlm::tlm_generic_payload* get() {
    if (free_.empty()) {
      all_.push_back(std::make_unique<tlm::tlm_generic_payload>());
      return all_.back().get();
    }
    auto* p = free_.back();
    free_.pop_back();
    return p;
  }
  void put(tlm::tlm_generic_payload* p) { free_.push_back(p); }
  size_t allocated() const { return all_.size(); }

 private:
  std::vector<std::unique_ptr<tlm::tlm_generic_payload>> all_;
  std::vector<tlm::tlm_generic_payload*> free_;
};

// Issues one access through `socket` with a pooled payload at annotated time `t` (advanced
// to the access's completion), without waiting. Returns false when the target answered with
// an error (the caller raises the architected abort).
template <class Socket>
bool annotated_access(Socket& socket, PayloadPool& pool, tlm::tlm_command cmd, uint64_t addr, void* data,
                      unsigned len, Ps& t) {
  tlm::tlm_generic_payload* p = pool.get();
  p->set_command(cmd);
  p->set_address(addr);
  p->set_data_ptr(static_cast<unsigned char*>(data));
  p->set_data_length(len);
  p->set_streaming_width(len);
  p->set_byte_enable_ptr(nullptr);
  p->set_dmi_allowed(false);
  p->set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  const Ps now = now_ps();
  sc_core::sc_time delay = from_ps(t > now ? t - now : 0);
  socket->b_transport(*p, delay);
  t = now + to_ps(delay);
  const bool ok = p->is_response_ok();
  pool.put(p);
  return ok;
}

// The same from a thread that waits until the access completes.
template <class Socket>
bool blocking_access(Socket& socket, PayloadPool& pool, tlm::tlm_command cmd, uint64_t addr, void* data,
                     unsigned len) {
  Ps t = now_ps();
  const bool ok = annotated_access(socket, pool, cmd, addr, data, len, t);
  wait_until(t);
  return ok;
}

}  // namespace iommusim::common

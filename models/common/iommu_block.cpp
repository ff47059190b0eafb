#include "models/common/iommu_block.h"

#include <algorithm>

#include "models/common/dma_attributes.h"
#include "models/common/translation_engine.h"

namespace iommusim::common {

namespace {
constexpr uint64_t kPageBytes = 4096;   // the translation granule of every request
}  // namespace

IommuBlock::IommuBlock(sc_core::sc_module_name name, const Clock& clk, uint64_t mmio_bytes,
                       unsigned requester_id_bits)
    : sc_module(name), dma("dma"), mmio("mmio"), mem("mem"), clk_(clk), mmio_bytes_(mmio_bytes),
      requester_id_bits_(requester_id_bits) {
  dma.register_b_transport(this, &IommuBlock::dma_b_transport);
  mmio.register_b_transport(this, &IommuBlock::mmio_b_transport);
}

bool IommuBlock::access(bool write, uint64_t addr, void* data, unsigned len, AccessKind kind, Ps& t) {
  if (!direct_)
    return annotated_access(mem, pool_, write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, addr, data, len, t);
  if (!direct_->reserve(addr, len, t)) return false;
  direct_->transfer(write, addr, data, len, kind);
  return true;
}

// A thread that waits for its access sees (or makes visible) the data when it completes,
// so a completion record is not seen before the hardware wrote it.
bool IommuBlock::waited_access(bool write, uint64_t addr, void* data, unsigned len) {
  Ps t = now_ps();
  if (!direct_) {
    const bool ok =
        annotated_access(mem, pool_, write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND, addr, data, len, t);
    wait_until(t);
    return ok;
  }
  if (!direct_->reserve(addr, len, t)) return false;
  wait_until(t);
  direct_->transfer(write, addr, data, len, AccessKind::Structure);
  return true;
}

bool IommuBlock::read_memory(uint64_t addr, void* dst, unsigned len, Ps& t) {
  return access(false, addr, dst, len, AccessKind::Structure, t);
}

bool IommuBlock::write_memory(uint64_t addr, const void* src, unsigned len, Ps& t) {
  return access(true, addr, const_cast<void*>(src), len, AccessKind::Structure, t);
}

bool IommuBlock::read_memory(uint64_t addr, void* dst, unsigned len) { return waited_access(false, addr, dst, len); }

bool IommuBlock::write_memory(uint64_t addr, const void* src, unsigned len) {
  return waited_access(true, addr, const_cast<void*>(src), len);
}

uint64_t IommuBlock::peek_register(uint64_t offset, unsigned len) {
  uint64_t v = 0;
  if (!regs_.read(offset, len, v) && len == 8) regs_.read(offset, 4, v);
  return v;
}

void IommuBlock::mmio_b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  if (delay != sc_core::SC_ZERO_TIME) { sc_core::wait(delay); delay = sc_core::SC_ZERO_TIME; }
  clk_.wait_cycles(1);
  regs_.transport(p, mmio_bytes_);
}

void IommuBlock::dma_b_transport(int, tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  const Ps now = now_ps();
  Ps t = now + to_ps(delay);
  DmaAttributes* attrs = nullptr;
  p.get_extension(attrs);
  DmaRequest rq;
  if (attrs) {
    // A field wider than the wire format cannot name a device or PASID: refuse it rather
    // than let its truncation alias another device's or PASID's tables.
    const bool rid_too_wide = requester_id_bits_ < 32 && (attrs->requester_id >> requester_id_bits_) != 0;
    const bool pasid_too_wide = attrs->pasid_valid && (attrs->pasid >> 20) != 0;
    if (rid_too_wide || pasid_too_wide) {
      malformed_.inc();
      attrs->response = IommuResponse::Aborted;
      p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
      return;
    }
    rq.requester_id = attrs->requester_id;
    rq.pasid_valid = attrs->pasid_valid;
    rq.pasid = attrs->pasid_valid ? attrs->pasid : 0;
    rq.access.privileged = attrs->privileged;
    rq.access.exec = attrs->instruction;
  }
  rq.access.write = p.is_write();

  // Translation is per 4 KB page: an access that crosses a page boundary is split there,
  // and each piece is translated and forwarded on its own (the pages need not be
  // contiguous in PA). The initiator gets its own payload back.
  const uint64_t input = p.get_address();
  const unsigned len = p.get_data_length(), width = p.get_streaming_width();
  unsigned char* const data = p.get_data_ptr();
  // A barrier orders every DMA begun before the last invalidation, until it completes.
  const Ps issued = t;
  InflightRequest inflight(engine_);
  rq.epoch = inflight.epoch();
  bool ok = true;
  for (unsigned done = 0; ok && done < len;) {
    const uint64_t addr = input + done;
    const unsigned piece = unsigned(std::min<uint64_t>(len - done, kPageBytes - (addr & (kPageBytes - 1))));
    rq.input = addr;
    const Ps start = t;
    const DmaOutcome o = handle_dma(rq, t);
    translation_ps_.record(t - start);
    if (attrs && done == 0) attrs->translated_ps = t;
    if (!o.ok) {
      if (attrs) attrs->response = o.abort_silently ? IommuResponse::Aborted : IommuResponse::Fault;
      p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
      if (observer_) observer_->dma_completed(rq, o, issued, t);
      break;
    }
    if (attrs) attrs->response = IommuResponse::Ok;
    if (direct_) {
      ok = access(rq.access.write, o.output, data + done, piece, AccessKind::DmaPayload, t);
      p.set_response_status(ok ? tlm::TLM_OK_RESPONSE : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    } else {
      p.set_address(o.output);
      p.set_data_ptr(data + done);
      p.set_data_length(piece);
      p.set_streaming_width(piece);
      sc_core::sc_time d = from_ps(t - now);
      mem->b_transport(p, d);
      t = now + to_ps(d);
      ok = p.get_response_status() == tlm::TLM_OK_RESPONSE;
    }
    if (observer_) observer_->dma_completed(rq, o, issued, t);
    done += piece;
  }
  // The initiator sees its own payload back.
  p.set_address(input);
  p.set_data_ptr(data);
  p.set_data_length(len);
  p.set_streaming_width(width);
  inflight.set_end(t);
  delay = from_ps(t - now);
}

void IommuBlock::register_front_end_stats(StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".translation_latency", translation_ps_, "ns", "time from request to translated address", 1e-3);
  reg.add(p + ".malformed_requests", malformed_, "count",
          "DMAs refused because their requester ID or PASID is wider than the wire format");
}

}  // namespace iommusim::common

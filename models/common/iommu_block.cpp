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
  Ps now = now_ps();
  Ps t = now + to_ps(delay);
  DmaAttributes* attrs = nullptr;
  p.get_extension(attrs);
  DmaRequest rq;
  if (attrs) {
    attrs->translation_ps = attrs->memory_ps = 0;
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
  if (attrs && attrs->ats == AtsType::TranslationRequest) return translation_request(p, *attrs, rq, delay);
  const bool translated = attrs && attrs->ats == AtsType::Translated;

  // Translation is per 4 KB page: an access that crosses a page boundary is split there,
  // and each piece is translated and forwarded on its own (the pages need not be
  // contiguous in PA). The initiator gets its own payload back.
  const uint64_t input = p.get_address();
  const unsigned len = p.get_data_length(), width = p.get_streaming_width();
  unsigned char* const data = p.get_data_ptr();
  bool ok = true;
  Ps translation_ps = 0, memory_ps = 0;
  for (unsigned done = 0; ok && done < len;) {
    // A page after the first starts when the one before it has completed: the requester
    // synchronises there, so no request runs more than a page ahead of simulated time and
    // a barrier waits for the pages begun before its invalidation, not for the rest of a
    // long DMA.
    if (done) {
      wait_until(t);
      now = now_ps();
    }
    // A barrier orders every page begun before the last invalidation, until it completes.
    InflightRequest inflight(engine_);
    rq.epoch = inflight.epoch();
    const uint64_t addr = input + done;
    const unsigned piece = unsigned(std::min<uint64_t>(len - done, kPageBytes - (addr & (kPageBytes - 1))));
    rq.input = addr;
    const Ps start = t;   // each page is its own request, issued here
    DmaOutcome o;
    if (!translated) o = handle_dma(rq, t);
    else if (ats_permitted(rq, AtsType::Translated, t)) { o.ok = true; o.output = addr; translated_requests_.inc(); }
    else translated_refused_.inc();
    if (!translated) translation_ps_.record(t - start);
    translation_ps += t - start;
    const Ps translated_at = t;
    if (!o.ok) {
      if (attrs) attrs->response = o.abort_silently ? IommuResponse::Aborted : IommuResponse::Fault;
      p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
      if (observer_ && !translated) observer_->dma_completed(rq, o, start, t);
      inflight.set_end(t);
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
    memory_ps += t - translated_at;
    // The device reports its translated DMAs itself: here the input is already a PA.
    if (observer_ && !translated) observer_->dma_completed(rq, o, start, t);
    inflight.set_end(t);
    done += piece;
  }
  // The initiator sees its own payload back.
  p.set_address(input);
  p.set_data_ptr(data);
  p.set_data_length(len);
  p.set_streaming_width(width);
  if (attrs) { attrs->translation_ps = translation_ps; attrs->memory_ps = memory_ps; }
  delay = from_ps(t - now);
}

void IommuBlock::translation_request(tlm::tlm_generic_payload& p, DmaAttributes& attrs, DmaRequest& rq,
                                     sc_core::sc_time& delay) {
  const Ps now = now_ps();
  Ps t = now + to_ps(delay);
  InflightRequest inflight(engine_);   // a barrier orders it like any request
  rq.epoch = inflight.epoch();
  rq.input = p.get_address() & ~(kPageBytes - 1);
  attrs.translated_addr = 0;
  attrs.granted_read = attrs.granted_write = false;
  translation_requests_.inc();
  if (!ats_permitted(rq, AtsType::TranslationRequest, t)) {
    // Unsupported Request: no translation comes back.
    translation_requests_refused_.inc();
    attrs.response = IommuResponse::Aborted;
    p.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
  } else {
    // A fault is a successful completion granting nothing (R = W = 0, PCIe 6.0 §10.2.3).
    const DmaOutcome o = handle_dma(rq, t);
    attrs.response = IommuResponse::Ok;
    p.set_response_status(tlm::TLM_OK_RESPONSE);
    if (o.ok) {
      attrs.translated_addr = o.output & ~(kPageBytes - 1);
      (rq.access.write ? attrs.granted_write : attrs.granted_read) = true;
    }
  }
  inflight.set_end(t);
  attrs.translation_ps = t - (now + to_ps(delay));
  attrs.memory_ps = 0;
  delay = from_ps(t - now);
}

bool IommuBlock::ats_permitted(const DmaRequest&, AtsType, Ps&) { return false; }

void IommuBlock::invalidate_device(uint32_t rid, const AtcInvalidation& inv, Ps at, unsigned queue) {
  for (const auto& [r, device] : ats_devices_) {
    if (r != rid) continue;
    atc_invalidations_sent_.inc();
    pending_atc_.push_back({rid, at, device->invalidate(inv, at), queue});
  }
}

bool IommuBlock::wait_for_device_invalidations(Ps timeout_ps, Ps* waited_ps, uint32_t* late_rid, unsigned queue) {
  const Ps start = now_ps();
  Ps latest = start, deadline = ~Ps{0};
  for (const PendingDeviceInvalidation& d : pending_atc_) {
    if (d.queue != queue) continue;
    if (d.result.answered && d.result.done <= d.issued + timeout_ps) {
      latest = std::max(latest, d.result.done);
    } else if (d.issued + timeout_ps < deadline) {
      deadline = d.issued + timeout_ps;
      if (late_rid) *late_rid = d.rid;
    }
  }
  // This queue's requests are waited for; another queue's stay for its own barrier.
  pending_atc_.erase(std::remove_if(pending_atc_.begin(), pending_atc_.end(),
                                    [queue](const PendingDeviceInvalidation& d) { return d.queue == queue; }),
                     pending_atc_.end());
  const bool in_time = deadline == ~Ps{0};
  wait_until(in_time ? latest : std::max(start, deadline));
  if (waited_ps) *waited_ps = now_ps() - start;
  return in_time;
}

void IommuBlock::register_front_end_stats(StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".translation_latency", translation_ps_, "ns", "time from request to translated address", 1e-3);
  reg.add(p + ".malformed_requests", malformed_, "count",
          "DMAs refused because their requester ID or PASID is wider than the wire format");
}

void IommuBlock::register_ats_stats(StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".ats.translation_requests", translation_requests_, "count", "ATS Translation Requests answered");
  reg.add(p + ".ats.translation_requests_refused", translation_requests_refused_, "count",
          "ATS Translation Requests refused (ATS not enabled for the requester: Unsupported Request)");
  reg.add(p + ".ats.translated_requests", translated_requests_, "count", "Translated DMA pages passed to memory");
  reg.add(p + ".ats.translated_refused", translated_refused_, "count",
          "Translated DMA pages refused (ATS not enabled for the requester)");
  reg.add(p + ".ats.invalidations_sent", atc_invalidations_sent_, "count", "Invalidate Requests sent to device ATCs");
}

}  // namespace iommusim::common

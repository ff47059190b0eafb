#include "models/pcie/root_complex.h"

#include <algorithm>

#include "models/common/dma_attributes.h"

namespace iommusim::pcie {

using common::Ps;

RootComplex::RootComplex(sc_core::sc_module_name name, const LinkConfig& cfg)
    : sc_module(name), from_devices("from_devices"), to_iommu("to_iommu"), link_(std::string(basename()), cfg) {
  from_devices.register_b_transport(this, &RootComplex::b_transport);
}

void RootComplex::b_transport(int, tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
  Ps now = common::now_ps();
  const Ps issued = now + common::to_ps(delay);
  common::DmaAttributes* attrs = nullptr;
  p.get_extension(attrs);
  const LinkConfig& c = link_.config();
  if (attrs && attrs->ats == common::AtsType::TranslationRequest) {
    // One non-posted request up, the IOMMU's answer, one completion with the translation down.
    const Link::Delivery up = link_.send(Direction::Up, TlpType::NonPosted, translation_request(c, p.get_address()), issued);
    sc_core::sc_time d = common::from_ps(up.arrived + link_.rc_latency_ps() - now);
    to_iommu->b_transport(p, d);
    const bool ok = p.get_response_status() == tlm::TLM_OK_RESPONSE;
    const Train cpl = translation_completion(c, ok ? 1 : 0);   // Unsupported Request: no data
    const Ps done = link_.send(Direction::Down, TlpType::Completion, cpl, now + common::to_ps(d) + link_.rc_latency_ps()).arrived;
    delay = common::from_ps(done - now);
    return;
  }
  const bool write = p.is_write();
  const uint64_t input = p.get_address();
  const unsigned len = p.get_data_length(), width = p.get_streaming_width();
  unsigned char* const data = p.get_data_ptr();

  Ps next_request = issued, done = issued;
  uint64_t translation_ps = 0, memory_ps = 0;
  p.set_response_status(tlm::TLM_OK_RESPONSE);
  for (unsigned offset = 0; offset < len;) {
    // A page after the first goes when its requests may start: synchronise there, so no
    // request runs more than a page ahead of simulated time (the IOMMU's barriers then
    // wait for the pages begun before an invalidation, not the rest of a long DMA).
    if (offset) {
      common::wait_until(next_request);
      now = common::now_ps();
    }
    const uint64_t addr = input + offset;
    const unsigned piece = unsigned(std::min<uint64_t>(len - offset, kPageBytes - addr % kPageBytes));
    const Link::Delivery up = write ? link_.send(Direction::Up, TlpType::Posted, posted_writes(c, addr, piece), next_request)
                                    : link_.send(Direction::Up, TlpType::NonPosted, read_requests(c, addr, piece), next_request);
    next_request = up.sent;

    // The page goes on to the IOMMU as its own request.
    p.set_address(addr);
    p.set_data_ptr(data + offset);
    p.set_data_length(piece);
    p.set_streaming_width(piece);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = common::from_ps(up.arrived + link_.rc_latency_ps() - now);
    to_iommu->b_transport(p, d);
    Ps page_done = now + common::to_ps(d);
    const bool ok = p.get_response_status() == tlm::TLM_OK_RESPONSE;
    if (!write) {
      // A refused read still gets its completion, without data.
      const Train cpl = ok ? completions(c, addr, piece)
                           : Train{1, 0, kFramingBytes + kCompletionHeaderBytes + (c.ecrc ? kDigestBytes : 0), 0};
      page_done = link_.send(Direction::Down, TlpType::Completion, cpl, page_done + link_.rc_latency_ps()).arrived;
    }
    if (page_done >= done) {
      done = page_done;
      if (attrs) { translation_ps = attrs->translation_ps; memory_ps = attrs->memory_ps; }
    }
    if (!ok) break;
    offset += piece;
  }
  // The device sees its own payload back.
  p.set_address(input);
  p.set_data_ptr(data);
  p.set_data_length(len);
  p.set_streaming_width(width);
  if (attrs) { attrs->translation_ps = translation_ps; attrs->memory_ps = memory_ps; }
  delay = common::from_ps(done - now);
}

}  // namespace iommusim::pcie

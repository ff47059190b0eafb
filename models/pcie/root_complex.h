// The root complex a lane's devices reach the IOMMU through: its root port's PCIe link
// (link.h), shared by every device of the lane (as functions of one device, or devices
// behind one switch port), and its pipeline latency.
//
// Models: a DMA arriving on `from_devices` (TLM-2.0 loosely timed, the time so far in
// `delay`) moves page by page (PCIe requests never cross 4 KB, and the IOMMU translates
// per page): for each page, its request TLPs go upstream (a write's posted TLPs split at
// MPS, a read's requests split at MRRS, tlp.h), the root complex passes the page on to the
// IOMMU (`to_iommu`) one rc latency after its last TLP arrived, and a read's completions,
// split at RCB boundaries, go downstream one rc latency after the memory access ended. The
// pages are pipelined: a page's requests follow the previous page's on the wire without
// waiting for its data; the device's thread synchronises before each page after the first,
// so nothing runs more than a page ahead. The DMA completes when its last page has (for a write, when the
// memory has taken its data). A page the IOMMU refuses ends the DMA; a read gets one
// completion without data for it (Unsupported Request / Completer Abort, §2.3.2).
// The DmaAttributes extension carries back the translation and memory time of the page
// that completed last, so the device can split its latency into link, translation and
// memory.
// An ATS Translation Request (DmaAttributes::ats) is one non-posted request up and one
// completion with the translation (8 bytes) down; Translated requests move as any DMA.
// Does not model: relaxed ordering or ID-based ordering, peer-to-peer, tag limits (the device's outstanding
// limit stands in for them), a posted write that frees its device slot before reaching
// memory.
#pragma once
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/pcie/link.h"

namespace iommusim::pcie {

class RootComplex : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<RootComplex> from_devices;
  tlm_utils::simple_initiator_socket<RootComplex> to_iommu;

  // Throws std::invalid_argument when validate(cfg) fails.
  RootComplex(sc_core::sc_module_name name, const LinkConfig& cfg);

  Link& link() { return link_; }
  const Link& link() const { return link_; }
  // <prefix>.* of the link (link.h).
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const { link_.register_stats(reg, prefix); }

 private:
  void b_transport(int id, tlm::tlm_generic_payload& p, sc_core::sc_time& delay);

  Link link_;
};

}  // namespace iommusim::pcie

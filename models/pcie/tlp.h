// TLP arithmetic: how a DMA's bytes become TLPs on the wire, as the PCIe Base Spec 5.0
// lays them out. Pure functions, no SystemC.
//
// Models:
// - Requests never cross a 4 KB boundary (§2.2.7); a write's TLPs carry at most
//   Max_Payload_Size, a read's requests ask for at most Max_Read_Request_Size. Each is as
//   large as those limits allow from the current address (the spec only bounds them).
// - Request headers are 3 DW below 4 GB and 4 DW above (§2.2.4.1: addresses below 4 GB
//   must use the 32-bit format); completion headers are 3 DW (§2.2.9).
// - Completions of one read request are split at Read Completion Boundaries (§2.3.1.1):
//   either one per RCB-aligned block, or as large as MPS allows, ending on an RCB boundary.
// - Framing at 8 GT/s and above (§4.2.2.3, §3.6.2): the 4-byte STP token, which carries
//   the TLP sequence number, and the 4-byte LCRC: 8 bytes per TLP; plus 4 for a TLP digest
//   (ECRC, §2.7.1). A DLLP is the 2-byte SDP token and 6 bytes (§4.2.2.3, §3.5).
// - Flow-control data credits are 4 DW (16-byte) units (§2.6.1).
// - ATS (§10.2, §10.3): a Translation Request is a memory-read request without data (its
//   header as a read's); its completion carries 8 bytes per translation; Invalidate
//   Request and Invalidate Completion are messages with a 4 DW header, the request with
//   8 bytes of data.
// Does not model: lane-alignment padding of framing tokens on wide links, TLP prefixes
// (PASID travels in an End-End TLP Prefix, §6.20, 4 bytes it does not count).
#pragma once
#include <cstdint>

#include "models/common/clock.h"
#include "models/pcie/link_config.h"

namespace iommusim::pcie {

inline constexpr uint64_t kPageBytes = 4096;       // no request crosses one (§2.2.7)
inline constexpr unsigned kFramingBytes = 8;       // STP token (with sequence number) + LCRC
inline constexpr unsigned kDigestBytes = 4;        // ECRC
inline constexpr unsigned kDllpBytes = 8;          // SDP token + DLLP
inline constexpr unsigned kCompletionHeaderBytes = 12;
inline constexpr unsigned kCreditBytes = 16;       // one data credit

// Header bytes of a memory request at `addr`: 3 DW below 4 GB, else 4 DW.
inline unsigned request_header_bytes(uint64_t addr) { return addr >> 32 ? 16 : 12; }

// A run of TLPs of one kind: how many, the data they carry, their size on the wire and the
// data credits they take.
struct Train {
  uint32_t tlps = 0;
  uint64_t payload_bytes = 0;
  uint64_t wire_bytes = 0;
  uint64_t data_credits = 0;
};

// The posted writes of [addr, addr + len) (split at MPS and at 4 KB boundaries).
Train posted_writes(const LinkConfig& c, uint64_t addr, uint64_t len);
// The read requests of [addr, addr + len) (split at MRRS and at 4 KB boundaries).
Train read_requests(const LinkConfig& c, uint64_t addr, uint64_t len);
// The completions answering those requests (each request's split at RCB boundaries).
Train completions(const LinkConfig& c, uint64_t addr, uint64_t len);

// ATS: one Translation Request for the page at `addr`, its completion with `translations`
// translations, and the invalidation messages.
Train translation_request(const LinkConfig& c, uint64_t addr);
Train translation_completion(const LinkConfig& c, unsigned translations);
Train invalidate_request(const LinkConfig& c);
Train invalidate_completion(const LinkConfig& c);
inline constexpr unsigned kMessageHeaderBytes = 16;
inline constexpr unsigned kTranslationBytes = 8;
inline constexpr unsigned kInvalidateRequestBytes = 8;

// Time to put `bytes` on the wire of the link, 128b/130b encoded and striped over its
// lanes, rounded up to the next picosecond.
common::Ps serialise_ps(const LinkConfig& c, uint64_t bytes);

}  // namespace iommusim::pcie

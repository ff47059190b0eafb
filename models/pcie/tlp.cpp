#include "models/pcie/tlp.h"

#include <algorithm>

namespace iommusim::pcie {

namespace {

uint64_t credits_for(uint64_t payload) { return (payload + kCreditBytes - 1) / kCreditBytes; }

unsigned digest(const LinkConfig& c) { return c.ecrc ? kDigestBytes : 0; }

// Requests of at most `max` bytes from `addr`, never crossing a 4 KB boundary: calls
// piece(address, bytes) for each.
template <class Fn>
void split_requests(uint64_t addr, uint64_t len, uint64_t max, Fn&& piece) {
  while (len) {
    const uint64_t n = std::min({len, max, kPageBytes - addr % kPageBytes});
    piece(addr, n);
    addr += n;
    len -= n;
  }
}

}  // namespace

Train posted_writes(const LinkConfig& c, uint64_t addr, uint64_t len) {
  Train t;
  split_requests(addr, len, c.max_payload_bytes, [&](uint64_t a, uint64_t n) {
    ++t.tlps;
    t.payload_bytes += n;
    t.wire_bytes += kFramingBytes + request_header_bytes(a) + digest(c) + n;
    t.data_credits += credits_for(n);
  });
  return t;
}

Train read_requests(const LinkConfig& c, uint64_t addr, uint64_t len) {
  Train t;
  split_requests(addr, len, c.max_read_request_bytes, [&](uint64_t a, uint64_t) {
    ++t.tlps;
    t.wire_bytes += kFramingBytes + request_header_bytes(a) + digest(c);
  });
  return t;
}

Train completions(const LinkConfig& c, uint64_t addr, uint64_t len) {
  Train t;
  const uint64_t rcb = c.rcb_bytes;
  // The largest completion: one RCB, or MPS (a multiple of the RCB).
  const uint64_t most = c.completion_split == CompletionSplit::Rcb ? rcb : c.max_payload_bytes;
  split_requests(addr, len, c.max_read_request_bytes, [&](uint64_t a, uint64_t n) {
    // §2.3.1.1: a completion that does not finish its request ends on an RCB boundary;
    // one that finishes it (at most `most` bytes) need not.
    for (const uint64_t end = a + n; a < end;) {
      const uint64_t limit = a + most, boundary = limit - limit % rcb;
      const uint64_t stop = end - a <= most ? end : boundary > a ? boundary : limit;
      ++t.tlps;
      t.payload_bytes += stop - a;
      t.wire_bytes += kFramingBytes + kCompletionHeaderBytes + digest(c) + (stop - a);
      a = stop;
    }
  });
  return t;
}

namespace {
Train one_tlp(const LinkConfig& c, unsigned header, uint64_t payload) {
  return Train{1, payload, kFramingBytes + header + digest(c) + payload, credits_for(payload)};
}
}  // namespace

Train translation_request(const LinkConfig& c, uint64_t addr) { return one_tlp(c, request_header_bytes(addr), 0); }

Train translation_completion(const LinkConfig& c, unsigned translations) {
  return one_tlp(c, kCompletionHeaderBytes, uint64_t(translations) * kTranslationBytes);
}

Train invalidate_request(const LinkConfig& c) { return one_tlp(c, kMessageHeaderBytes, kInvalidateRequestBytes); }

Train invalidate_completion(const LinkConfig& c) { return one_tlp(c, kMessageHeaderBytes, 0); }

common::Ps serialise_ps(const LinkConfig& c, uint64_t bytes) {
  // bytes * 8 bits * 130/128 (encoding) / (GT/s * lanes) in ns, times 1000 for ps.
  const uint64_t num = bytes * 8 * 130 * 1000, den = 128ull * gigatransfers(c.generation) * c.width;
  return (num + den - 1) / den;
}

}  // namespace iommusim::pcie

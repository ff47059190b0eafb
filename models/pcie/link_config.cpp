#include "models/pcie/link_config.h"

#include <cmath>

#include "models/pcie/tlp.h"

namespace iommusim::pcie {

namespace {
bool power_of_two_in(unsigned v, unsigned lo, unsigned hi) { return v >= lo && v <= hi && (v & (v - 1)) == 0; }
}  // namespace

unsigned gigatransfers(unsigned generation) {
  switch (generation) {
    case 3: return 8;
    case 4: return 16;
    case 5: return 32;
  }
  return 0;
}

std::string validate(const LinkConfig& c) {
  if (!gigatransfers(c.generation)) return "generation must be 3, 4 or 5 (got " + std::to_string(c.generation) + ")";
  if (!power_of_two_in(c.width, 1, 16)) return "width must be 1, 2, 4, 8 or 16 (got " + std::to_string(c.width) + ")";
  if (!power_of_two_in(c.max_payload_bytes, 128, 4096))
    return "max_payload_bytes must be a power of two in 128..4096 (got " + std::to_string(c.max_payload_bytes) + ")";
  if (!power_of_two_in(c.max_read_request_bytes, 128, 4096))
    return "max_read_request_bytes must be a power of two in 128..4096 (got " + std::to_string(c.max_read_request_bytes) + ")";
  if (c.rcb_bytes != 64 && c.rcb_bytes != 128) return "rcb_bytes must be 64 or 128 (got " + std::to_string(c.rcb_bytes) + ")";
  if (!(c.link_latency_ns >= 0) || !std::isfinite(c.link_latency_ns)) return "link_latency_ns must be a finite value >= 0";
  if (!(c.rc_latency_ns >= 0) || !std::isfinite(c.rc_latency_ns)) return "rc_latency_ns must be a finite value >= 0";
  // A TLP the root port could never accept would wait forever (§2.6.1: the advertised
  // credits must cover the largest TLP).
  const unsigned mps_credits = c.max_payload_bytes / kCreditBytes;
  if (c.posted_data_credits && c.posted_data_credits < mps_credits)
    return "posted_data_credits must be 0 (infinite) or at least one max_payload_bytes TLP (" +
           std::to_string(mps_credits) + " credits of 16 bytes)";
  return "";
}

}  // namespace iommusim::pcie

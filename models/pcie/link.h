// A PCIe link between a device (or the switch it sits behind) and a root port: two
// directions, each a busy-until timeline (common::BusyUnits with one unit), and the root
// port's upstream receive credits (CreditPool). Nothing waits: a run of TLPs is placed on
// its direction's timeline at its annotated time and the caller learns when it arrives
// (docs/architecture.md, "Timing style"; docs/pcie.md).
//
// Models: serialisation of each run of TLPs at the link's rate (tlp.h: 128b/130b, lanes,
// framing, headers); the one-way link latency; posted and non-posted header credits and
// posted data credits at the root port (PCIe Base Spec 5.0 §2.6.1), taken when a run
// starts and returned when the root complex has taken its TLPs in (rc latency after
// arrival) plus one link latency for the UpdateFC to travel back; a run larger than a
// pool goes in bursts that fit; the Ack and UpdateFC DLLPs the receiver returns on the
// other direction (§3.5, §3.6.2), one per `ack_every_tlps` resp. `fc_update_every_tlps`.
// Does not model: TLP-by-TLP arbitration between devices (a run is placed whole, so one
// device's page may go ahead of another's TLP), replays (NAKs), credits of downstream
// requests (no MMIO to devices travels here), credit return delayed by the IOMMU (its own
// resources model its queueing).
#pragma once
#include <cstdint>
#include <string>

#include "models/common/clock.h"
#include "models/common/resource.h"
#include "models/common/stats.h"
#include "models/pcie/credits.h"
#include "models/pcie/link_config.h"
#include "models/pcie/tlp.h"

namespace iommusim::pcie {

enum class Direction : uint8_t { Up = 0, Down = 1 };   // Up: device to root complex
enum class TlpType : uint8_t { Posted, NonPosted, Completion };

class Link {
 public:
  // Throws std::invalid_argument when validate(cfg) fails.
  Link(const std::string& name, const LinkConfig& cfg);

  struct Delivery {
    common::Ps sent;      // the last TLP has left the transmitter
    common::Ps arrived;   // ... and has reached the receiver
  };
  // Sends `train` in direction `d`, starting at or after `at`: upstream requests take the
  // root port's credits of their type. Completions travel downstream only.
  Delivery send(Direction d, TlpType type, const Train& train, common::Ps at);

  const LinkConfig& config() const { return cfg_; }
  common::Ps latency_ps() const { return latency_ps_; }
  common::Ps rc_latency_ps() const { return rc_latency_ps_; }
  // Wire time used so far in direction d (TLPs and DLLPs).
  common::Ps busy_ps(Direction d) const { return busy_ps_[int(d)]; }

  // <prefix>.up.* and .down.* (TLPs, payload and wire bytes, DLLPs, wire waits) and
  // <prefix>.credits.*.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Side {
    explicit Side(std::string name) : wire(std::move(name), 1) {}
    common::BusyUnits wire;
    uint64_t acks_owed = 0, updates_owed = 0;   // TLPs received since the last DLLP of each kind
    common::Counter tlps, payload_bytes, wire_bytes, dllps;
  };
  common::Ps reserve_wire(Side& s, common::Ps at, uint64_t bytes);
  // The Ack and UpdateFC DLLPs the receiver of `tlps` TLPs owes, sent back from `at`.
  void acknowledge(Direction received, uint32_t tlps, common::Ps at);

  LinkConfig cfg_;
  common::Ps latency_ps_, rc_latency_ps_;
  Side side_[2];
  common::Ps busy_ps_[2] = {0, 0};
  CreditPool posted_header_, posted_data_, non_posted_header_;
};

}  // namespace iommusim::pcie

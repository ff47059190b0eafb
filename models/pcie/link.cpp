#include "models/pcie/link.h"

#include <algorithm>
#include <stdexcept>

namespace iommusim::pcie {

using common::Ps;

namespace {
const LinkConfig& checked(const LinkConfig& c) {
  const std::string err = validate(c);
  if (!err.empty()) throw std::invalid_argument("pcie link config: " + err);
  return c;
}
Ps ns_to_ps(double ns) { return Ps(ns * 1000.0 + 0.5); }
}  // namespace

Link::Link(const std::string& name, const LinkConfig& cfg)
    : cfg_(checked(cfg)), latency_ps_(ns_to_ps(cfg.link_latency_ns)), rc_latency_ps_(ns_to_ps(cfg.rc_latency_ns)),
      side_{Side(name + " upstream wire"), Side(name + " downstream wire")},
      posted_header_(cfg.posted_header_credits), posted_data_(cfg.posted_data_credits),
      non_posted_header_(cfg.non_posted_header_credits) {}

Ps Link::reserve_wire(Side& s, Ps at, uint64_t bytes) {
  const Ps dur = serialise_ps(cfg_, bytes);
  const Ps start = s.wire.reserve(at, dur);
  busy_ps_[&s - side_] += dur;
  s.wire_bytes.inc(bytes);
  return start + dur;
}

void Link::acknowledge(Direction received, uint32_t tlps, Ps at) {
  Side& rx = side_[int(received)];
  uint64_t dllps = 0;
  auto owe = [&](uint64_t& owed, unsigned every) {
    if (!every) return;
    owed += tlps;
    dllps += owed / every;
    owed %= every;
  };
  owe(rx.acks_owed, cfg_.ack_every_tlps);
  owe(rx.updates_owed, cfg_.fc_update_every_tlps);
  if (!dllps) return;
  Side& back = side_[1 - int(received)];
  back.dllps.inc(dllps);
  reserve_wire(back, at, dllps * kDllpBytes);
}

Link::Delivery Link::send(Direction d, TlpType type, const Train& train, Ps at) {
  if (!train.tlps) return {at, at};
  Side& s = side_[int(d)];
  s.tlps.inc(train.tlps);
  s.payload_bytes.inc(train.payload_bytes);
  CreditPool* header = nullptr;
  CreditPool* data = nullptr;
  if (d == Direction::Up && type == TlpType::Posted) { header = &posted_header_; data = &posted_data_; }
  if (d == Direction::Up && type == TlpType::NonPosted) header = &non_posted_header_;

  // TLPs per burst: as many as the pools hold (validate() lets one MPS TLP fit).
  const uint64_t n = train.tlps;
  uint64_t per_burst = n;
  if (header && !header->infinite()) per_burst = std::min(per_burst, header->capacity());
  if (data && !data->infinite() && train.data_credits) {
    const uint64_t most_per_tlp = (train.data_credits + n - 1) / n;
    per_burst = std::min(per_burst, std::max<uint64_t>(1, data->capacity() / most_per_tlp));
  }
  Delivery out{at, at};
  // Bursts share the run's bytes and credits in proportion, so the totals stay exact.
  for (uint64_t first = 0; first < n; first += per_burst) {
    const uint64_t last = std::min(first + per_burst, n);
    const uint64_t wire = train.wire_bytes * last / n - train.wire_bytes * first / n;
    const uint64_t credits = train.data_credits * last / n - train.data_credits * first / n;
    Ps ready = at;
    if (header) ready = header->free_at(last - first, ready);
    if (data) ready = data->free_at(credits, ready);
    const Ps sent = reserve_wire(s, ready, wire), arrived = sent + latency_ps_;
    // Back when the root complex has taken the TLPs in and the UpdateFC has come back.
    const Ps release = arrived + rc_latency_ps_ + latency_ps_;
    if (header) header->take(last - first, at, release);
    if (data) data->take(credits, at, release);
    out = {sent, arrived};
    at = sent;
  }
  acknowledge(d, train.tlps, out.arrived);
  return out;
}

void Link::register_stats(common::StatRegistry& reg, const std::string& p) const {
  const char* names[2] = {"up", "down"};
  const char* what[2] = {"device to root complex", "root complex to device"};
  for (int i = 0; i < 2; ++i) {
    const Side& s = side_[i];
    const std::string q = p + "." + names[i], w = what[i];
    reg.add(q + ".tlps", s.tlps, "count", std::string("TLPs sent ") + w);
    reg.add(q + ".payload_bytes", s.payload_bytes, "bytes", std::string("data carried by TLPs ") + w);
    reg.add(q + ".wire_bytes", s.wire_bytes, "bytes", std::string("bytes on the wire ") + w + " (TLPs with headers and framing, DLLPs)");
    reg.add(q + ".dllps", s.dllps, "count", std::string("Ack and UpdateFC DLLPs sent ") + w);
    s.wire.register_stats(reg, q + ".wire");
  }
  posted_header_.register_stats(reg, p + ".credits.posted_header", "posted header");
  posted_data_.register_stats(reg, p + ".credits.posted_data", "posted data");
  non_posted_header_.register_stats(reg, p + ".credits.non_posted_header", "non-posted header");
}

}  // namespace iommusim::pcie

#include "platforms/nic_workload.h"

#include <algorithm>
#include <cmath>

namespace iommusim::platforms {

using driver::Status;
using traffic::DmaJob;

Section<NicConfig> nic_keys() {
  using N = NicConfig;
  return Section<N>("The NIC workload (workload.mode = nic; platforms/nic_workload.h, docs/workloads.md): RX and TX "
                    "rings per flow, each packet's buffer dma_mapped by the flow's CPU (dma_api section) and unmapped "
                    "once the device wrote its descriptor back.")
      .integer("flows", &N::flows, 4, 1, 256, "flows", "queue pairs (an RX and a TX ring each); flow f runs on CPU f % dma_api.cpus")
      .integer("ring_size", &N::ring_size, 256, 2, 4096, "descriptors", "descriptors per ring")
      .integer("packet_bytes", &N::packet_bytes, 1500, 64, 9216, "bytes", "size of every packet (one DMA)")
      .number("rate_gbps", &N::rate_gbps, 10, 0, 1000, "Gb/s",
              "packet data per flow, RX and TX together; 0: each direction as fast as its ring allows")
      .number("rx_fraction", &N::rx_fraction, 0.5, 0, 1, "", "share of the rate that is RX (the rest is TX)")
      .number("duration_us", &N::duration_us, 12000, 0.001, 1e7, "us",
              "packets start for this long; then those started finish and the run ends");
}

uint64_t NicWorkload::footprint(const NicConfig& c, uint64_t page) {
  const uint64_t buffer = (c.packet_bytes + page - 1) / page * page;
  const uint64_t ring = (uint64_t(c.ring_size) * kDescriptorBytes + page - 1) / page * page;
  return uint64_t(c.flows) * 2 * (uint64_t(c.ring_size) * buffer + ring);
}

NicWorkload::NicWorkload(const NicSetup& s, driver::DriverBase& drv)
    // At most one DMA per descriptor is queued at a time.
    : JobWorkload(drv, 1, size_t(s.nic.flows) * 2 * s.nic.ring_size), s_(s),
      api_(std::make_unique<driver::DmaApi>(s.api, drv, 0, s.page_bytes)),
      buffer_stride_((s.nic.packet_bytes + s.page_bytes - 1) / s.page_bytes * s.page_bytes),
      ring_stride_((uint64_t(s.nic.ring_size) * kDescriptorBytes + s.page_bytes - 1) / s.page_bytes * s.page_bytes),
      flows_(s.nic.flows), cpu_work_(s.api.cpus) {
  const double bits = double(s.nic.packet_bytes) * 8;
  const double share[2] = {s.nic.rx_fraction, 1 - s.nic.rx_fraction};
  for (unsigned f = 0; f < s.nic.flows; ++f) {
    flows_[f].cpu = f % s.api.cpus;
    for (unsigned d : {kRx, kTx}) {
      Ring& r = flows_[f].ring[d];
      r.active = share[d] > 0;
      // bits / (Gb/s) is ns; 1000 ps each.
      r.interval_ps = s.nic.rate_gbps > 0 && r.active ? bits / (s.nic.rate_gbps * share[d]) * 1000.0 : 0;
      r.buffer.assign(s.nic.ring_size, 0);
      r.written_back.assign(s.nic.ring_size, 0);
    }
  }
}

uint64_t NicWorkload::buffer_pa(unsigned f, Dir d, unsigned idx) const {
  return s_.buffer_pa + ((uint64_t(f) * 2 + d) * s_.nic.ring_size + idx) * buffer_stride_;
}

Status NicWorkload::setup() {
  driver::DomainId domain = 0;
  if (Status st = attach_new_domain(s_.rid, s_.pasid, &domain); !st.ok) return st;
  api_->set_domain(domain);
  const uint64_t rings_pa = s_.buffer_pa + uint64_t(s_.nic.flows) * 2 * s_.nic.ring_size * buffer_stride_;
  for (unsigned f = 0; f < s_.nic.flows; ++f) {
    Flow& flow = flows_[f];
    for (unsigned d : {kRx, kTx}) {
      Ring& r = flow.ring[d];
      // dma_alloc_coherent: mapped once, never unmapped.
      const uint64_t pa = rings_pa + (uint64_t(f) * 2 + d) * ring_stride_;
      if (Status st = api_->map(flow.cpu, pa, uint64_t(s_.nic.ring_size) * kDescriptorBytes, {}, &r.desc_iova); !st.ok)
        return st;
    }
    Ring& rx = flow.ring[kRx];
    if (!rx.active) continue;
    for (unsigned i = 0; i < s_.nic.ring_size; ++i) {
      if (!map_buffer(flow.cpu, f, kRx, i)) return Status::fail(failure());
      ++rx.posted;
    }
  }
  return {};
}

common::Ps NicWorkload::packet_time(const Ring& r, uint64_t k) const {
  return start_ + common::Ps(std::llround(double(k) * r.interval_ps));
}

DmaJob NicWorkload::job(unsigned f, Dir d, Stage s, unsigned idx) const {
  const Ring& r = flows_[f].ring[d];
  DmaJob j;
  j.pasid_valid = s_.pasid.has_value();
  j.pasid = s_.pasid.value_or(0);
  j.tag = uint64_t(f) << 32 | uint64_t(d) << 30 | uint64_t(s) << 28 | idx;
  if (s == kData) {
    j.iova = r.buffer[idx];
    j.bytes = s_.nic.packet_bytes;
    j.read = d == kTx;   // TX: the device reads the packet; RX: it writes it
  } else {
    j.iova = r.desc_iova + uint64_t(idx) * kDescriptorBytes;
    j.bytes = kDescriptorBytes;
    j.read = s == kReadDescriptor;
  }
  return j;
}

void NicWorkload::start_packet(unsigned f, Dir d, unsigned idx, common::Ps at) {
  DmaJob j = job(f, d, kReadDescriptor, idx);
  j.not_before = at;
  push(0, j);
}

void NicWorkload::start_rx(unsigned f) {
  Ring& rx = flows_[f].ring[kRx];
  const common::Ps now = common::now_ps();
  while (rx.started < rx.posted) {
    const common::Ps arrival = packet_time(rx, rx.started);
    const common::Ps at = std::max(arrival, now);
    if (at >= end_) return;   // arrives after the traffic time: never started
    if (arrival < now && rx.interval_ps > 0) flows_[f].waited.inc();
    start_packet(f, kRx, unsigned(rx.started % s_.nic.ring_size), at);
    ++rx.started;
  }
}

void NicWorkload::job_done(size_t, const DmaJob& j, traffic::DmaStats::Outcome outcome) {
  if (outcome != traffic::DmaStats::Outcome::Ok) faults_.inc();
  const unsigned f = unsigned(j.tag >> 32), idx = unsigned(j.tag & ((1u << 28) - 1));
  const Dir d = Dir((j.tag >> 30) & 1);
  const Stage s = Stage((j.tag >> 28) & 3);
  if (s == kWriteBack) {
    flows_[f].ring[d].written_back[idx] = 1;
    cpu_work_[flows_[f].cpu].notify(sc_core::SC_ZERO_TIME);
    return;
  }
  push(0, job(f, d, Stage(s + 1), idx));
}

bool NicWorkload::map_buffer(unsigned cpu, unsigned f, Dir d, unsigned idx) {
  Flow& flow = flows_[f];
  const Status st = api_->map(cpu, buffer_pa(f, d, idx), s_.nic.packet_bytes, {}, &flow.ring[d].buffer[idx]);
  if (!st.ok) fail("nic flow " + std::to_string(f) + ": " + st.error);
  else flow.maps.inc();
  return st.ok;
}

bool NicWorkload::unmap_buffer(unsigned cpu, unsigned f, Dir d, unsigned idx) {
  Flow& flow = flows_[f];
  const Status st = api_->unmap(cpu, flow.ring[d].buffer[idx], s_.nic.packet_bytes);
  if (!st.ok) fail("nic flow " + std::to_string(f) + ": " + st.error);
  else flow.unmaps.inc();
  return st.ok;
}

bool NicWorkload::drained(unsigned cpu) const {
  for (unsigned f = cpu; f < s_.nic.flows; f += s_.api.cpus)
    for (unsigned d : {kRx, kTx})
      if (flows_[f].ring[d].reaped != flows_[f].ring[d].started) return false;
  return true;
}

bool NicWorkload::serve(unsigned cpu, bool* worked) {
  const unsigned n = s_.nic.ring_size;
  for (unsigned f = cpu; f < s_.nic.flows; f += s_.api.cpus) {
    Flow& flow = flows_[f];
    // Completions in ring order: RX buffers are unmapped and replaced, TX ones unmapped.
    for (unsigned d : {kRx, kTx}) {
      Ring& r = flow.ring[d];
      while (r.reaped < r.started && r.written_back[r.reaped % n]) {
        const unsigned idx = unsigned(r.reaped % n);
        r.written_back[idx] = 0;
        ++r.reaped;
        flow.packets[d].inc();
        *worked = true;
        if (!unmap_buffer(cpu, f, Dir(d), idx)) return false;
        if (d == kRx) {
          if (!map_buffer(cpu, f, kRx, idx)) return false;
          ++r.posted;
          start_rx(f);
        }
      }
    }
    // TX packets that are due, while the ring has room.
    Ring& tx = flow.ring[kTx];
    while (tx.active && !failed() && tx.started - tx.reaped < n) {
      const common::Ps due = packet_time(tx, tx.started), now = common::now_ps();
      if (due > now || now >= end_) break;
      const unsigned idx = unsigned(tx.started % n);
      if (!map_buffer(cpu, f, kTx, idx)) return false;
      ++tx.posted;
      ++tx.started;
      start_packet(f, kTx, idx, 0);
      *worked = true;
    }
  }
  return !failed();
}

void NicWorkload::cpu_thread(unsigned cpu) {
  for (;;) {
    bool worked = false;
    if (!serve(cpu, &worked)) return;
    if (worked) continue;
    const common::Ps now = common::now_ps();
    if (now >= end_ && drained(cpu)) return;
    // Sleep until a completion, the next TX packet that can go, or the end of the traffic time.
    common::Ps wake = now < end_ ? end_ : 0;
    for (unsigned f = cpu; f < s_.nic.flows; f += s_.api.cpus) {
      const Ring& tx = flows_[f].ring[kTx];
      if (tx.active && now < end_ && tx.started - tx.reaped < s_.nic.ring_size)
        wake = std::min(wake, std::max(packet_time(tx, tx.started), now));
    }
    if (wake > now) sc_core::wait(common::from_ps(wake - now), cpu_work_[cpu] | wake_);
    else sc_core::wait(cpu_work_[cpu] | wake_);
    if (failed()) return;
  }
}

void NicWorkload::run() {
  run_cpus("nic_cpu", s_.api.cpus, s_.nic.duration_us, *api_, [this](unsigned c) { cpu_thread(c); },
           [this] { for (unsigned f = 0; f < s_.nic.flows; ++f) start_rx(f); });
}

void NicWorkload::register_stats(common::StatRegistry& reg, const std::string& prefix) {
  api_->register_stats(reg, prefix + ".dma_api");
  const std::string pre = prefix + ".nic.";
  reg.add(pre + "faults", faults_, "count", "NIC DMAs (descriptor or packet) that did not complete OK");
  for (unsigned f = 0; f < s_.nic.flows; ++f) {
    const std::string fp = pre + "flow" + std::to_string(f) + ".";
    Flow& flow = flows_[f];
    reg.add(fp + "rx_packets", flow.packets[kRx], "count", "RX packets written and reaped");
    reg.add(fp + "tx_packets", flow.packets[kTx], "count", "TX packets read and reaped");
    reg.add(fp + "maps", flow.maps, "count", "dma_map calls for packet buffers");
    reg.add(fp + "unmaps", flow.unmaps, "count", "dma_unmap calls for packet buffers");
    reg.add(fp + "rx_waited_for_descriptor", flow.waited, "count",
            "RX packets that arrived before their descriptor was posted (waited in the device)");
  }
}

void NicWorkload::report(common::StatRegistry& reg, const std::string& prefix) const {
  const std::string pre = prefix + ".nic.";
  const double ns = double(finished_ - start_) / 1000.0;
  const double bytes = s_.nic.packet_bytes;
  uint64_t all[2] = {0, 0}, maps = 0, unmaps = 0;
  for (unsigned f = 0; f < s_.nic.flows; ++f) {
    const Flow& flow = flows_[f];
    const uint64_t pk = flow.packets[kRx].value() + flow.packets[kTx].value();
    all[kRx] += flow.packets[kRx].value();
    all[kTx] += flow.packets[kTx].value();
    maps += flow.maps.value();
    unmaps += flow.unmaps.value();
    reg.set_value(pre + "flow" + std::to_string(f) + ".gbps", ns > 0 ? double(pk) * bytes * 8 / ns : 0, "Gb/s",
                  "packet data RX + TX over the traffic time");
  }
  const uint64_t packets = all[kRx] + all[kTx];
  reg.set_value(pre + "rx_packets", double(all[kRx]), "count", "RX packets, all flows");
  reg.set_value(pre + "tx_packets", double(all[kTx]), "count", "TX packets, all flows");
  reg.set_value(pre + "maps", double(maps), "count", "dma_map calls for packet buffers, all flows");
  reg.set_value(pre + "unmaps", double(unmaps), "count", "dma_unmap calls for packet buffers, all flows");
  reg.set_value(pre + "gbps", ns > 0 ? double(packets) * bytes * 8 / ns : 0, "Gb/s", "packet data RX + TX over the traffic time");
  reg.set_value(pre + "traffic_time", ns, "ns", "from the first packet's start to the last one's reaping");
  reg.set_value(pre + "invalidations_per_packet", packets ? double(api_->invalidations()) / double(packets) : 0, "ratio",
                "the DMA API's invalidations (strict: one per unmap; lazy: one per flush) per packet reaped");
}

}  // namespace iommusim::platforms

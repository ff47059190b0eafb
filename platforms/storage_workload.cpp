#include "platforms/storage_workload.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace iommusim::platforms {

using driver::Status;
using traffic::DmaJob;

namespace {
constexpr uint64_t kMinIo = 4096, kMaxIo = 1u << 20;

// "bytes[:weight],..." -> sizes; "" when fine, else why not.
std::string parse_sizes(const std::string& text, std::vector<StorageConfig::Size>* out) {
  out->clear();
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const size_t colon = item.find(':');
    const std::string b = item.substr(0, colon), w = colon == std::string::npos ? "1" : item.substr(colon + 1);
    auto number = [](const std::string& s, uint64_t* v) {
      if (s.empty() || s.size() > 12 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      *v = std::stoull(s);
      return true;
    };
    StorageConfig::Size sz{};
    if (!number(b, &sz.bytes) || sz.bytes < kMinIo || sz.bytes > kMaxIo || sz.bytes % kMinIo)
      return "'" + item + "': a size is a multiple of 4096 in 4096 .. 1048576 bytes";
    if (!number(w, &sz.weight) || sz.weight == 0) return "'" + item + "': a weight is a whole number above 0";
    out->push_back(sz);
  }
  if (out->empty()) return "expected bytes[:weight],... (e.g. 4096:70,131072:20,1048576:10)";
  return "";
}
constexpr uint64_t kMaxQueuedDmas = 1u << 22;   // 4 Mi jobs, about 200 MB of queue

uint64_t largest_io(const StorageConfig& c) {
  uint64_t m = kMinIo;
  for (const auto& s : c.sizes) m = std::max(m, s.bytes);
  return m;
}
}  // namespace

Section<StorageConfig> storage_keys() {
  using S = StorageConfig;
  return Section<S>("The storage workload (workload.mode = storage; platforms/storage_workload.h, docs/workloads.md): "
                    "NVMe-like queues, each I/O's buffer dma_map_sg'ed at submission and unmapped at completion.")
      .integer("queues", &S::queues, 4, 1, 256, "queues", "submission queues (each with its completion queue); queue q on CPU q % dma_api.cpus")
      .integer("depth", &S::depth, 32, 1, 4096, "I/Os", "I/Os each queue keeps in flight")
      .custom(value_key("io_sizes", KeyType::String, "4096", "bytes[:weight],...", "bytes",
                        "each I/O's size, 4096 .. 1048576 and a multiple of 4096, drawn with the weights (default 1)"),
              [](const ConfigReader& r, S& s) {
                s.io_sizes = r.string("io_sizes");
                if (const std::string why = parse_sizes(s.io_sizes, &s.sizes); !why.empty()) r.fail("io_sizes", why);
              },
              [](const S& s) { return nlohmann::json(s.io_sizes); })
      .number("read_fraction", &S::read_fraction, 0.7, 0, 1, "", "share of I/Os that read from the device (it writes memory)")
      .integer("segment_bytes", &S::segment_bytes, 65536, 4096, 1u << 20, "bytes",
               "scatter-gather segment: a physically contiguous piece of an I/O's buffer")
      .multiple_of(4096)
      .integer("dma_bytes", &S::dma_bytes, 4096, 64, 1u << 20, "bytes", "the device moves an I/O's data in DMAs of at most this")
      .number("duration_us", &S::duration_us, 2000, 0.001, 1e7, "us",
              "I/Os are submitted for this long; then those in flight finish and the run ends")
      .check("dma_bytes", [](const S& s) -> std::string {
        // The device's job queue holds every DMA of every I/O in flight (reserved up front).
        const uint64_t dmas = uint64_t(s.queues) * s.depth * ((largest_io(s) + s.dma_bytes - 1) / s.dma_bytes);
        if (dmas <= kMaxQueuedDmas) return "";
        return "queues x depth x (largest I/O / dma_bytes) = " + std::to_string(dmas) + " DMAs in flight, above the " +
               std::to_string(kMaxQueuedDmas) + " the device queue holds: use larger dma_bytes or fewer I/Os in flight";
      });
}


uint64_t StorageWorkload::footprint(const StorageConfig& c, uint64_t page) {
  const uint64_t max_io = largest_io(c);
  const uint64_t round = (max_io + page - 1) / page * page;
  const uint64_t sq = (uint64_t(c.depth) * kSubmissionBytes + page - 1) / page * page;
  const uint64_t cq = (uint64_t(c.depth) * kCompletionBytes + page - 1) / page * page;
  return uint64_t(c.queues) * (uint64_t(c.depth) * round + sq + cq);
}

uint32_t StorageWorkload::max_dma_bytes(const StorageConfig& c) {
  const uint64_t max_io = largest_io(c);
  return uint32_t(std::max<uint64_t>(std::min<uint64_t>(c.dma_bytes, max_io), kSubmissionBytes));
}

StorageWorkload::StorageWorkload(const StorageSetup& s, driver::DriverBase& drv)
    // Per I/O at most its data DMAs (or one entry) queued at a time.
    : JobWorkload(drv, 1, size_t(s.storage.queues) * s.storage.depth * ((largest_io(s.storage) + s.storage.dma_bytes - 1) / s.storage.dma_bytes)),
      s_(s), api_(std::make_unique<driver::DmaApi>(s.api, drv, 0, s.page_bytes)), queues_(s.storage.queues),
      cpu_work_(s.api.cpus), segments_(s.api.cpus) {
  for (const auto& sz : s_.storage.sizes) {
    max_io_ = std::max(max_io_, sz.bytes);
    weight_sum_ += sz.weight;
  }
  max_io_ = (max_io_ + s_.page_bytes - 1) / s_.page_bytes * s_.page_bytes;
  sq_stride_ = (uint64_t(s_.storage.depth) * kSubmissionBytes + s_.page_bytes - 1) / s_.page_bytes * s_.page_bytes;
  cq_stride_ = (uint64_t(s_.storage.depth) * kCompletionBytes + s_.page_bytes - 1) / s_.page_bytes * s_.page_bytes;
  for (unsigned q = 0; q < s_.storage.queues; ++q) {
    Queue& qu = queues_[q];
    qu.cpu = q % s_.api.cpus;
    qu.ios.resize(s_.storage.depth);
    qu.completed.assign(s_.storage.depth, 0);
    qu.rng.seed(s_.seed * 1000003ull + q);
  }
  for (auto& list : segments_) list.reserve(max_io_ / s_.storage.segment_bytes + 1);
}

uint64_t StorageWorkload::slot_pa(unsigned q, unsigned slot) const {
  return s_.buffer_pa + (uint64_t(q) * s_.storage.depth + slot) * max_io_;
}

Status StorageWorkload::setup() {
  driver::DomainId domain = 0;
  if (Status st = attach_new_domain(s_.rid, s_.pasid, &domain); !st.ok) return st;
  api_->set_domain(domain);
  const uint64_t rings = s_.buffer_pa + uint64_t(s_.storage.queues) * s_.storage.depth * max_io_;
  for (unsigned q = 0; q < s_.storage.queues; ++q) {
    Queue& qu = queues_[q];
    // dma_alloc_coherent: mapped once, never unmapped.
    const uint64_t sq_pa = rings + uint64_t(q) * (sq_stride_ + cq_stride_);
    if (Status st = api_->map(qu.cpu, sq_pa, uint64_t(s_.storage.depth) * kSubmissionBytes, {}, &qu.sq_iova); !st.ok) return st;
    if (Status st = api_->map(qu.cpu, sq_pa + sq_stride_, uint64_t(s_.storage.depth) * kCompletionBytes, {}, &qu.cq_iova); !st.ok)
      return st;
  }
  return {};
}

DmaJob StorageWorkload::job(unsigned q, unsigned slot, Stage s, uint64_t offset) const {
  const Queue& qu = queues_[q];
  const Io& io = qu.ios[slot];
  DmaJob j;
  j.pasid_valid = s_.pasid.has_value();
  j.pasid = s_.pasid.value_or(0);
  j.tag = uint64_t(q) << 32 | uint64_t(s) << 28 | slot;
  if (s == kSubmission) {
    j.iova = qu.sq_iova + uint64_t(slot) * kSubmissionBytes;
    j.bytes = kSubmissionBytes;
    j.read = true;
  } else if (s == kCompletion) {
    j.iova = qu.cq_iova + uint64_t(slot) * kCompletionBytes;
    j.bytes = kCompletionBytes;
    j.read = false;
  } else {
    j.iova = io.iova + offset;
    j.bytes = uint32_t(std::min<uint64_t>(s_.storage.dma_bytes, io.bytes - offset));
    j.read = !io.read;   // a host read is the device writing memory
  }
  return j;
}

bool StorageWorkload::submit(unsigned q, unsigned slot) {
  Queue& qu = queues_[q];
  Io& io = qu.ios[slot];
  uint64_t pick = qu.rng() % weight_sum_;
  io.bytes = s_.storage.sizes.back().bytes;
  for (const auto& sz : s_.storage.sizes) {
    if (pick < sz.weight) { io.bytes = sz.bytes; break; }
    pick -= sz.weight;
  }
  io.read = double(qu.rng() >> 11) * 0x1.0p-53 < s_.storage.read_fraction;
  io.submitted = common::now_ps();
  // The buffer's segments lie in reverse order in the slot's region: a scattered list.
  std::vector<driver::DmaApi::Segment>& list = segments_[qu.cpu];
  list.clear();
  const uint64_t seg = s_.storage.segment_bytes, n = (io.bytes + seg - 1) / seg;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t len = std::min(seg, io.bytes - i * seg);
    list.push_back({slot_pa(q, slot) + (n - 1 - i) * seg, len});
  }
  const Status st = api_->map_sg(qu.cpu, list.data(), list.size(), {}, &io.iova);
  if (!st.ok) {
    fail("storage queue " + std::to_string(q) + ": " + st.error);
    return false;
  }
  ++qu.in_flight;
  push(0, job(q, slot, kSubmission));
  return true;
}

void StorageWorkload::job_done(size_t, const DmaJob& j, traffic::DmaStats::Outcome outcome) {
  if (outcome != traffic::DmaStats::Outcome::Ok) faults_.inc();
  const unsigned q = unsigned(j.tag >> 32), slot = unsigned(j.tag & ((1u << 28) - 1));
  const Stage s = Stage((j.tag >> 28) & 3);
  Queue& qu = queues_[q];
  Io& io = qu.ios[slot];
  if (s == kSubmission) {
    io.dmas_left = unsigned((io.bytes + s_.storage.dma_bytes - 1) / s_.storage.dma_bytes);
    for (uint64_t off = 0; off < io.bytes; off += s_.storage.dma_bytes) push(0, job(q, slot, kData, off));
  } else if (s == kData) {
    if (--io.dmas_left == 0) push(0, job(q, slot, kCompletion));
  } else {
    qu.completed[(qu.cq_head + qu.cq_count++) % s_.storage.depth] = slot;
    cpu_work_[qu.cpu].notify(sc_core::SC_ZERO_TIME);
  }
}

bool StorageWorkload::reap(unsigned q) {
  Queue& qu = queues_[q];
  const unsigned slot = qu.completed[qu.cq_head];
  qu.cq_head = (qu.cq_head + 1) % s_.storage.depth;
  --qu.cq_count;
  Io& io = qu.ios[slot];
  const Status st = api_->unmap(qu.cpu, io.iova, io.bytes);
  if (!st.ok) {
    fail("storage queue " + std::to_string(q) + ": " + st.error);
    return false;
  }
  --qu.in_flight;
  ios_.inc();
  (io.read ? reads_ : writes_).inc();
  bytes_.inc(io.bytes);
  latency_ps_.record(common::now_ps() - io.submitted);
  if (common::now_ps() < end_) return submit(q, slot);
  return true;
}

void StorageWorkload::cpu_thread(unsigned cpu) {
  for (unsigned q = cpu; q < s_.storage.queues; q += s_.api.cpus)
    for (unsigned slot = 0; slot < s_.storage.depth && common::now_ps() < end_; ++slot)
      if (!submit(q, slot)) return;
  for (;;) {
    bool worked = false, idle = true;
    for (unsigned q = cpu; q < s_.storage.queues; q += s_.api.cpus) {
      while (queues_[q].cq_count) {
        if (!reap(q)) return;
        worked = true;
      }
      idle &= queues_[q].in_flight == 0;
    }
    if (failed()) return;
    if (worked) continue;
    const common::Ps now = common::now_ps();
    if (now >= end_ && idle) return;
    if (now < end_) sc_core::wait(common::from_ps(end_ - now), cpu_work_[cpu] | wake_);
    else sc_core::wait(cpu_work_[cpu] | wake_);
    if (failed()) return;
  }
}

void StorageWorkload::run() {
  run_cpus("storage_cpu", s_.api.cpus, s_.storage.duration_us, *api_, [this](unsigned c) { cpu_thread(c); });
}

void StorageWorkload::register_stats(common::StatRegistry& reg, const std::string& prefix) {
  api_->register_stats(reg, prefix + ".dma_api");
  const std::string pre = prefix + ".storage.";
  reg.add(pre + "ios", ios_, "count", "I/Os completed and reaped");
  reg.add(pre + "reads", reads_, "count", "read I/Os (the device wrote memory)");
  reg.add(pre + "writes", writes_, "count", "write I/Os (the device read memory)");
  reg.add(pre + "bytes", bytes_, "bytes", "data of the I/Os reaped");
  reg.add(pre + "faults", faults_, "count", "storage DMAs (entries or data) that did not complete OK");
  reg.add(pre + "latency", latency_ps_, "ns", "from the start of an I/O's submission (its map) to its reaping (after its unmap)", 1e-3);
}

void StorageWorkload::report(common::StatRegistry& reg, const std::string& prefix) const {
  const std::string pre = prefix + ".storage.";
  const double ns = double(finished_ - start_) / 1000.0;
  reg.set_value(pre + "traffic_time", ns, "ns", "from the first submission to the last reaping");
  reg.set_value(pre + "iops", ns > 0 ? double(ios_.value()) / ns * 1e9 : 0, "I/O/s", "I/Os reaped per simulated second");
  reg.set_value(pre + "mbps", ns > 0 ? double(bytes_.value()) / ns * 1e3 : 0, "MB/s", "data of the I/Os reaped per simulated second (10^6 bytes)");
  reg.set_value(pre + "invalidations_per_io", ios_.value() ? double(api_->invalidations()) / double(ios_.value()) : 0, "ratio",
                "the DMA API's invalidations (strict: one per unmap; lazy: one per flush) per I/O reaped");
}

}  // namespace iommusim::platforms

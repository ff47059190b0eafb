#include "platforms/trace_workload.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "traffic/endpoint.h"

namespace iommusim::platforms {

using driver::Status;

Section<TraceConfig> trace_keys() {
  using T = TraceConfig;
  return Section<T>("Trace replay (workload.mode = trace; platforms/trace_workload.h, docs/trace_replay.md).")
      .custom(value_key("file", KeyType::String, "", "a path", "",
                        "the trace to replay, relative to the config file that names it (with -p: to the current "
                        "directory)"),
              [](const ConfigReader& r, T& t) { t.file = r.string("file"); },
              [](const T& t) { return nlohmann::json(t.file); });
}

namespace {

constexpr uint64_t kMaxTraceBytes = 256ull << 20;
constexpr uint64_t kMaxTimeNs = 10'000'000'000'000'000ull;   // 1e16 ns: the picosecond clock holds 1.8e16

// What a trace has mapped so far, per (device, PASID): disjoint [first, end) ranges, so an
// unmap of something never mapped, or a map over a mapping, is an error of its line.
class MappedRanges {
 public:
  // "" when [a, a + n) overlaps nothing and is now mapped, else why not.
  std::string map(uint64_t a, uint64_t n) {
    auto next = ranges_.lower_bound(a);
    if ((next != ranges_.end() && next->first < a + n) || (next != ranges_.begin() && std::prev(next)->second > a))
      return "map over a range this device and PASID already have mapped";
    ranges_[a] = a + n;
    return "";
  }
  // "" when every byte of [a, a + n) was mapped and now is not, else why not.
  std::string unmap(uint64_t a, uint64_t n) {
    const std::string never = "unmap of a range this device and PASID never mapped";
    const uint64_t end = a + n;
    auto first = ranges_.upper_bound(a);
    if (first == ranges_.begin() || std::prev(first)->second <= a) return never;
    --first;
    auto last = first;   // the ranges must join up to `end`
    while (last->second < end) {
      const auto next = std::next(last);
      if (next == ranges_.end() || next->first != last->second) return never;
      last = next;
    }
    const uint64_t head = first->first, tail = last->second;
    ranges_.erase(first, std::next(last));
    if (head < a) ranges_[head] = a;
    if (tail > end) ranges_[end] = tail;
    return "";
  }

 private:
  std::map<uint64_t, uint64_t> ranges_;
};

// Decimal, or hexadecimal after 0x; the whole token.
bool parse_number(const std::string& s, uint64_t* v) {
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const std::string digits = hex ? s.substr(2) : s;
  if (digits.empty() || digits.size() > (hex ? 16u : 20u)) return false;
  for (char c : digits)
    if (!(hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c)))) return false;
  try {
    size_t used = 0;
    *v = std::stoull(digits, &used, hex ? 16 : 10);
    return used == digits.size();
  } catch (const std::exception&) {
    return false;   // out of range
  }
}

}  // namespace

std::vector<TraceEvent> read_trace(const std::string& file, uint64_t page) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw std::runtime_error(file + ": cannot open (no such regular file)");
  if (fs::file_size(file, ec) > kMaxTraceBytes)
    throw std::runtime_error(file + ": larger than the " + std::to_string(kMaxTraceBytes >> 20) + " MiB trace limit");
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file + ": cannot open");
  std::vector<TraceEvent> events;
  std::string text;
  unsigned line = 0;
  uint64_t last_time = 0;
  std::map<std::pair<uint32_t, uint32_t>, MappedRanges> mapped;   // (device, PASID or ~0) -> ranges
  while (std::getline(in, text)) {
    ++line;
    auto bad = [&](const std::string& why) { throw std::runtime_error(file + ":" + std::to_string(line) + ": " + why); };
    if (const size_t hash = text.find('#'); hash != std::string::npos) text.erase(hash);
    std::istringstream words(text);
    std::vector<std::string> f;
    for (std::string w; words >> w;) f.push_back(w);
    if (f.empty()) continue;
    if (f.size() < 6) bad("expected <time_ns> <device> map|unmap|read|write <pasid|-> <iova> <size> [<buffer_offset>]");
    TraceEvent e;
    e.line = line;
    uint64_t v = 0;
    if (!parse_number(f[0], &e.time_ns)) bad("time_ns '" + f[0] + "' is not a number");
    if (e.time_ns > kMaxTimeNs) bad("time_ns " + f[0] + " is beyond 1e16 ns, the simulator's picosecond clock");
    if (e.time_ns < last_time) bad("time_ns " + f[0] + " is before the previous event's (" + std::to_string(last_time) + ")");
    last_time = e.time_ns;
    if (!parse_number(f[1], &v) || v > 0xFFFF) bad("device '" + f[1] + "' is not a requester ID (0 .. 0xffff)");
    e.device = uint32_t(v);
    const std::string& op = f[2];
    if (op == "map") e.op = TraceEvent::Op::Map;
    else if (op == "unmap") e.op = TraceEvent::Op::Unmap;
    else if (op == "read") e.op = TraceEvent::Op::Read;
    else if (op == "write") e.op = TraceEvent::Op::Write;
    else bad("unknown event '" + op + "' (map, unmap, read or write)");
    if (f[3] != "-") {
      if (!parse_number(f[3], &v) || v == 0 || v >= (1u << 20)) bad("pasid '" + f[3] + "' is neither - nor 1 .. 1048575");
      e.pasid = uint32_t(v);
    }
    if (!parse_number(f[4], &e.iova)) bad("address '" + f[4] + "' is not a number");
    if (!parse_number(f[5], &e.bytes) || e.bytes == 0) bad("size '" + f[5] + "' is not a number above 0");
    if (e.iova + e.bytes < e.iova) bad("address + size overflows 64 bits");
    const bool is_map = e.op == TraceEvent::Op::Map;
    if (f.size() != (is_map ? 7u : 6u))
      bad(is_map ? "map needs a buffer offset after its size" : op + " takes 6 fields, got " + std::to_string(f.size()));
    if (is_map && !parse_number(f[6], &e.buffer_offset)) bad("buffer offset '" + f[6] + "' is not a number");
    if (e.op == TraceEvent::Op::Read || e.op == TraceEvent::Op::Write) {
      if (e.bytes > traffic::kMaxTransferBytes) bad("a DMA is at most " + std::to_string(traffic::kMaxTransferBytes) + " bytes");
    } else if (e.iova % page || e.bytes % page || e.buffer_offset % page) {
      bad(op + ": address, size and buffer offset must be multiples of platform.stage1_page_bytes (" + std::to_string(page) + ")");
    } else {
      MappedRanges& r = mapped[{e.device, e.pasid.value_or(~0u)}];
      if (const std::string why = e.op == TraceEvent::Op::Map ? r.map(e.iova, e.bytes) : r.unmap(e.iova, e.bytes); !why.empty())
        bad(why);
    }
    events.push_back(e);
  }
  if (events.empty()) throw std::runtime_error(file + ": no events");
  return events;
}

uint32_t TraceWorkload::max_dma_bytes(const std::vector<TraceEvent>& events) {
  uint64_t m = 1;
  for (const TraceEvent& e : events)
    if (e.op == TraceEvent::Op::Read || e.op == TraceEvent::Op::Write) m = std::max(m, e.bytes);
  return uint32_t(m);
}

uint64_t TraceWorkload::footprint(const std::vector<TraceEvent>& events) {
  uint64_t m = 0;
  for (const TraceEvent& e : events)
    if (e.op == TraceEvent::Op::Map) m = std::max(m, e.buffer_offset + e.bytes);
  return m;
}

size_t TraceWorkload::most_dmas(const TraceSetup& s) {
  size_t most = 1;
  for (uint32_t rid : s.endpoints) {
    size_t n = 0;
    for (const TraceEvent& e : *s.events) n += e.device == rid && (e.op == TraceEvent::Op::Read || e.op == TraceEvent::Op::Write);
    most = std::max(most, n);
  }
  return most;
}

TraceWorkload::TraceWorkload(const TraceSetup& s, driver::DriverBase& drv)
    : JobWorkload(drv, s.endpoints.size(), most_dmas(s)), s_(s), devices_(s.endpoints.size()) {
  for (size_t i = 0; i < s_.events->size(); ++i) {
    const auto ep = std::find(s_.endpoints.begin(), s_.endpoints.end(), (*s_.events)[i].device);
    devices_[size_t(ep - s_.endpoints.begin())].events.push_back(i);   // read_params checked every device
  }
}

Status TraceWorkload::setup() {
  for (const TraceEvent& e : *s_.events) {
    const bool known = std::any_of(spaces_.begin(), spaces_.end(),
                                   [&](const Space& sp) { return sp.device == e.device && sp.pasid == e.pasid; });
    if (known) continue;
    Space sp{e.device, e.pasid, 0};
    const size_t ep = size_t(std::find(s_.endpoints.begin(), s_.endpoints.end(), e.device) - s_.endpoints.begin());
    if (Status st = attach_new_domain(s_.driver_rids.at(ep), e.pasid, &sp.domain); !st.ok) return st;
    spaces_.push_back(sp);
  }
  return {};
}

driver::DomainId TraceWorkload::domain_of(const TraceEvent& e) const {
  for (const Space& sp : spaces_)
    if (sp.device == e.device && sp.pasid == e.pasid) return sp.domain;
  return 0;   // setup() made one for every pair
}

void TraceWorkload::replay(size_t endpoint) {
  Device& dev = devices_[endpoint];
  for (size_t i : dev.events) {
    const TraceEvent& e = (*s_.events)[i];
    common::wait_until(start_ + common::Ps(e.time_ns) * 1000);
    if (failed()) return;
    if (e.op == TraceEvent::Op::Read || e.op == TraceEvent::Op::Write) {
      traffic::DmaJob j;
      j.iova = e.iova;
      j.bytes = uint32_t(e.bytes);
      j.read = e.op == TraceEvent::Op::Read;
      j.pasid_valid = e.pasid.has_value();
      j.pasid = e.pasid.value_or(0);
      j.tag = i;
      ++dev.in_flight;
      dmas_.inc();
      push(endpoint, j);
      continue;
    }
    while (dev.in_flight && !failed()) sc_core::wait(dev.idle | wake_);
    if (failed()) return;
    const Status st = e.op == TraceEvent::Op::Map
                          ? drv_.map(domain_of(e), e.iova, s_.buffer_pa + e.buffer_offset, e.bytes, {}, s_.page_bytes)
                          : drv_.unmap(domain_of(e), e.iova, e.bytes);
    if (!st.ok) return fail("trace line " + std::to_string(e.line) + ": " + st.error);
    (e.op == TraceEvent::Op::Map ? maps_ : unmaps_).inc();
  }
  while (dev.in_flight && !failed()) sc_core::wait(dev.idle | wake_);
}

void TraceWorkload::job_done(size_t endpoint, const traffic::DmaJob&, traffic::DmaStats::Outcome outcome) {
  if (outcome != traffic::DmaStats::Outcome::Ok) faults_.inc();
  Device& dev = devices_[endpoint];
  if (--dev.in_flight == 0) dev.idle.notify(sc_core::SC_ZERO_TIME);
}

void TraceWorkload::run() {
  start_ = common::now_ps();
  for (size_t i = 0; i < devices_.size(); ++i) spawn("trace_device", [this, i] { replay(i); });
  join();
  finished_ = common::now_ps();
  close_queues();
}

void TraceWorkload::register_stats(common::StatRegistry& reg, const std::string& prefix) {
  const std::string pre = prefix + ".trace.";
  reg.add(pre + "maps", maps_, "count", "map events replayed (iommu_map)");
  reg.add(pre + "unmaps", unmaps_, "count", "unmap events replayed (iommu_unmap: invalidation and sync)");
  reg.add(pre + "dmas", dmas_, "count", "read and write events handed to the endpoints");
  reg.add(pre + "faults", faults_, "count", "DMAs that did not complete OK");
}

void TraceWorkload::report(common::StatRegistry& reg, const std::string& prefix) const {
  reg.set_value(prefix + ".trace.replay_time", double(finished_ - start_) / 1000.0, "ns",
                "from the trace's time 0 to the last event's end");
}

}  // namespace iommusim::platforms

#include "models/common/timeline.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

namespace iommusim::common {

namespace {
constexpr char kHeader[] = "{\"traceEvents\":[";
constexpr char kFooter[] = "\n],\n\"displayTimeUnit\":\"ns\"}\n";
// Room kept below the limit for what finish() writes: the truncation event and the footer.
constexpr uint64_t kTrailerReserve = 256;
constexpr char kTruncatedName[] = "trace size limit reached: later events are not recorded";

void append_uint(std::string& s, uint64_t v) {
  char buf[24];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

// Picoseconds as microseconds with six decimals: exact, whatever the magnitude.
void append_us(std::string& s, Ps ps) {
  append_uint(s, ps / 1000000);
  char frac[7] = {'.', '0', '0', '0', '0', '0', '0'};
  for (uint64_t rest = ps % 1000000, i = 6; rest; rest /= 10, --i) frac[i] = char('0' + rest % 10);
  s.append(frac, sizeof frac);
}

// A JSON string (RFC 8259 section 7) without building a temporary.
void append_string(std::string& s, const char* text) {
  s += '"';
  for (const char* c = text; *c; ++c) {
    const unsigned char u = static_cast<unsigned char>(*c);
    if (u == '"' || u == '\\') {
      s += '\\';
      s += *c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      s += buf;
    } else {
      s += *c;
    }
  }
  s += '"';
}
}  // namespace

Timeline::Timeline(const std::string& path, uint64_t limit_bytes) : path_(path), limit_(limit_bytes) {
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw TimelineError("cannot write the trace file " + path + ": " + std::strerror(errno));
  line_.reserve(4096);
  write(kHeader);
}

Timeline::~Timeline() {
  try {
    finish();
  } catch (const TimelineError&) {
    // finish() was not called by the owner, who would have reported it; nothing to add here.
  }
}

void Timeline::write(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) write_failed_ = true;
  bytes_ += text.size();
}

void Timeline::begin_event(const char* ph, uint32_t pid, uint32_t tid) {
  line_ += (events_ || !line_.empty()) ? ",\n{\"ph\":\"" : "\n{\"ph\":\"";
  line_ += ph;
  line_ += "\",\"pid\":";
  append_uint(line_, pid);
  line_ += ",\"tid\":";
  append_uint(line_, tid);
}

void Timeline::append_metadata(const char* what, uint32_t pid, uint32_t tid, const std::string& key,
                               const std::string& value) {
  begin_event("M", pid, tid);
  line_ += ",\"name\":";
  append_string(line_, what);
  line_ += ",\"args\":";
  line_ += nlohmann::json{{key, value}}.dump();
  line_ += '}';
}

void Timeline::append_name_and_time(const char* name, Ps ts) {
  line_ += ",\"name\":";
  append_string(line_, name);
  line_ += ",\"ts\":";
  append_us(line_, ts);
}

void Timeline::append_slice(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args) {
  const auto [pid, tid] = tracks_.at(track);
  begin_event("X", pid, tid);
  line_ += ",\"cat\":";
  append_string(line_, cat);
  append_name_and_time(name, start);
  line_ += ",\"dur\":";
  append_us(line_, dur);
  if (args) {
    line_ += ",\"args\":";
    line_ += args;
  }
  line_ += '}';
}

void Timeline::commit(uint64_t n) {
  if (!truncated_ && bytes_ + line_.size() + kTrailerReserve > limit_) {
    truncated_ = true;
    truncated_at_ = now_ps();
    std::string at;
    append_us(at, truncated_at_);
    std::fprintf(stderr, "trace: size limit %g MB reached at t=%s us; later events are not recorded (--trace-limit)\n",
                 double(limit_) / 1e6, at.c_str());
  }
  if (!truncated_) {
    write(line_);
    events_ += n;
  }
  line_.clear();
}

uint32_t Timeline::process(const std::string& name) {
  const uint32_t pid = ++processes_;
  if (truncated_ || !file_) return pid;
  append_metadata("process_name", pid, 0, "name", name);
  begin_event("M", pid, 0);
  line_ += ",\"name\":\"process_sort_index\",\"args\":{\"sort_index\":";
  append_uint(line_, pid);
  line_ += "}}";
  commit(2);
  return pid;
}

Timeline::Track Timeline::track(uint32_t pid, const std::string& name) {
  if (pid == 0 || pid > processes_) throw std::out_of_range("Timeline::track: no process " + std::to_string(pid));
  // Unique across processes, as OS thread ids are: a viewer may key threads by tid alone.
  const uint32_t tid = uint32_t(tracks_.size() + 1);
  tracks_.emplace_back(pid, tid);
  if (truncated_ || !file_) return Track(tracks_.size() - 1);
  append_metadata("thread_name", pid, tid, "name", name);
  begin_event("M", pid, tid);
  line_ += ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":";
  append_uint(line_, tid);
  line_ += "}}";
  commit(2);
  return Track(tracks_.size() - 1);
}

void Timeline::slice(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args) {
  if (truncated_ || !file_) return;
  append_slice(track, cat, name, start, dur, args);
  commit(1);
}

void Timeline::nested(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args,
                      std::initializer_list<Phase> phases) {
  if (truncated_ || !file_) return;
  append_slice(track, cat, name, start, dur, args);
  uint64_t n = 1;
  const Ps end = start + dur;
  Ps at = start;
  for (const Phase& ph : phases) {
    const Ps len = std::min(ph.dur, end - at);
    if (len == 0) continue;
    append_slice(track, cat, ph.name, at, len, nullptr);
    at += len;
    ++n;
  }
  commit(n);
}

void Timeline::finish() {
  if (!file_) return;
  line_.clear();
  if (truncated_) {   // a global instant event: a line across every track
    begin_event("i", 0, 0);
    line_ += ",\"s\":\"g\"";
    append_name_and_time(kTruncatedName, truncated_at_);
    line_ += ",\"args\":{\"limit_bytes\":";
    append_uint(line_, limit_);
    line_ += "}}";
    ++events_;
  }
  line_ += kFooter;
  write(line_);
  const bool failed = write_failed_ || std::fflush(file_) != 0 || std::ferror(file_);
  const bool close_failed = std::fclose(file_) != 0;
  file_ = nullptr;
  if (failed || close_failed) throw TimelineError("could not write the trace file " + path_ + " (disk full?)");
}

}  // namespace iommusim::common

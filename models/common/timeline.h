// A timeline of a run for trace viewers (ui.perfetto.dev, chrome://tracing): a file in the
// Chrome trace-event JSON format ("Trace Event Format", Google, the JSON Object Format with
// `traceEvents` and `displayTimeUnit`), written as the simulation goes (docs/trace.md).
//
// What it models: nothing of the hardware; it is a probe. Processes (one per lane) hold
// tracks (one per CPU, queue, device slot); a track holds complete events ("ph":"X"),
// optionally with nested phases laid end to end. Times are integer picoseconds, written as
// microseconds with six decimals, so the text is exact and children tile their parent to
// the picosecond. Process and track names are metadata events ("ph":"M").
//
// A size limit bounds the file: the first event (or nested group, all or nothing) that
// would pass it stops the recording; one line on stderr says so, a global instant event
// in the file records it, and the JSON is still closed, so the file stays valid.
//
// What it does not do: sort events by time (viewers do not need it), flows or counters,
// or anything per DMA when no timeline is attached (callers hold a null pointer then).
// Recording appends to one reused buffer: no allocation per event once it has grown.
#pragma once
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/common/clock.h"

namespace iommusim::common {

// The trace file cannot be opened or written.
class TimelineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Timeline {
 public:
  using Track = uint32_t;
  // One nested phase of a slice: its name and length.
  struct Phase {
    const char* name;
    Ps dur;
  };
  static constexpr double kDefaultLimitMb = 256;

  // Creates (truncates) `path` and writes the header. limit_bytes bounds the whole file.
  // Throws TimelineError naming the file and the reason.
  Timeline(const std::string& path, uint64_t limit_bytes);
  ~Timeline();   // finishes the file if finish() was not called (errors ignored)
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  // A process (a lane), shown as `name`; returns its pid (1, 2, ...).
  uint32_t process(const std::string& name);
  // A track of process `pid`, shown as `name`, below the tracks made before it. Its tid is
  // unique in the file.
  Track track(uint32_t pid, const std::string& name);

  // A slice [start, start + dur) on `track`. `args`: the text of a JSON object, or nullptr.
  void slice(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args = nullptr);
  // The same, with `phases` as nested slices laid end to end from `start`: they tile the
  // slice when their lengths add up to `dur`; a phase that would pass its end is cut there,
  // and zero-length phases are left out. Recorded whole or not at all.
  void nested(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args,
              std::initializer_list<Phase> phases);

  // Closes the JSON and the file. Throws TimelineError when the file could not be written.
  void finish();

  bool truncated() const { return truncated_; }
  uint64_t events() const { return events_; }   // recorded, metadata included
  uint64_t bytes() const { return bytes_; }     // written so far (the whole file once finished)
  const std::string& path() const { return path_; }

 private:
  // Appends one event's text to line_ (a separator first).
  void begin_event(const char* ph, uint32_t pid, uint32_t tid);
  void append_name_and_time(const char* name, Ps ts);
  void append_slice(Track track, const char* cat, const char* name, Ps start, Ps dur, const char* args);
  void append_metadata(const char* what, uint32_t pid, uint32_t tid, const std::string& key, const std::string& value);
  // Writes line_ (holding `n` events) if it fits under the limit; else stops recording.
  void commit(uint64_t n);
  void write(const std::string& text);

  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t limit_;
  uint64_t bytes_ = 0, events_ = 0;
  bool truncated_ = false, write_failed_ = false;
  Ps truncated_at_ = 0;
  std::string line_;
  std::vector<std::pair<uint32_t, uint32_t>> tracks_;   // Track -> (pid, tid = Track + 1)
  uint32_t processes_ = 0;
};

}  // namespace iommusim::common

// Statistics shared by every model: counters and histograms, each with a unit and a
// description, gathered in a registry that writes stats.json.
//
// Histograms are log-linear (HDR-style): exact below 64, then 32 sub-buckets per power of
// two (a bucket is at most 1/32 = 3.1% of its lower bound wide). They never allocate after
// construction, so recording is safe on hot paths. Percentiles use the nearest-rank method
// and report the upper bound of the bucket holding that rank, clamped to the observed
// [min, max], so p100 == max; percentile_bounds() gives the range that holds the true value.
//
// Resetting (a warm-up): the registry never writes to a model's stats, because models use
// some of them to decide what to do next (the endpoint stops at its transaction count, a
// driver drains events when the count moves). reset() records a baseline instead, and every
// read through the registry reports what happened since. A histogram read so keeps exact
// buckets, counts and sums; its min and max are then known to their buckets only.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace iommusim::common {

class Counter {
 public:
  void inc(uint64_t n = 1) { value_ += n; }
  uint64_t value() const { return value_; }
  void reset() { value_ = 0; }
 private:
  uint64_t value_ = 0;
};

class Histogram {
 public:
  static constexpr unsigned kSubBits = 5;               // 32 sub-buckets per octave
  static constexpr unsigned kLinear = 2u << kSubBits;   // values below this are exact
  static constexpr unsigned kOctaves = 64 - kSubBits - 1;
  static constexpr unsigned kBuckets = kLinear + kOctaves * (1u << kSubBits);

  // An inclusive range of raw values.
  struct Range {
    uint64_t lo, hi;
    uint64_t width() const { return hi - lo; }
  };

  // Inline: several samples per DMA on the hit path.
  void record(uint64_t v) {
    ++buckets_[bucket_of(v)];
    ++count_;
    sum_ += v;
    min_ = v < min_ ? v : min_;
    max_ = v > max_ ? v : max_;
  }
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }
  uint64_t sum() const { return sum_; }
  // q in [0,1]. Returns 0 for an empty histogram.
  uint64_t percentile(double q) const { return percentile_bounds(q).hi; }
  // Where the true nearest-rank value at q lies; percentile(q) is its upper end.
  Range percentile_bounds(double q) const;
  // Where the true min and max lie: exact unless this histogram came from since().
  Range min_bounds() const;
  Range max_bounds() const;
  bool bounds_exact() const { return bounds_exact_; }
  // The widest of those ranges over the percentiles qs, min and max: 0 when all are exact.
  uint64_t resolution(std::initializer_list<double> qs) const;
  void reset();
  // Adds `o`'s samples (several units' histograms as one).
  void add(const Histogram& o);

  // The samples recorded after `earlier`, a copy of this histogram taken before them.
  Histogram since(const Histogram& earlier) const;

  static unsigned bucket_of(uint64_t v) {
    if (v < kLinear) return unsigned(v);
    const unsigned msb = 63u - unsigned(__builtin_clzll(v));   // >= kSubBits + 1
    const unsigned sub = unsigned(v >> (msb - kSubBits)) & ((1u << kSubBits) - 1);   // the top kSubBits+1 bits
    return kLinear + (msb - kSubBits - 1) * (1u << kSubBits) + sub;
  }
  static uint64_t bucket_lower(unsigned b);
  static uint64_t bucket_upper(unsigned b);   // inclusive
  uint64_t bucket_count(unsigned b) const { return buckets_[b]; }

 private:
  Range clamped(unsigned b) const;   // bucket b's range within [min, max]

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, sum_ = 0, min_ = ~0ull, max_ = 0;
  bool bounds_exact_ = true;
};

// A registry of named stats. Models register their stats once at elaboration; the
// registry keeps pointers (stats are members of the models and outlive the dump).
class StatRegistry {
 public:
  struct CounterEntry { std::string name, unit, description; const Counter* c; uint64_t base = 0; };
  struct HistogramEntry {
    std::string name, unit, description;
    const Histogram* h;
    double scale;
    std::shared_ptr<const Histogram> base;   // the baseline of the last reset(), if any
  };
  struct ValueEntry { std::string name, unit, description; double value; };

  void add(const std::string& name, const Counter& c, std::string unit, std::string description);
  // scale converts recorded raw units to reported units (e.g. ps -> ns = 1e-3).
  void add(const std::string& name, const Histogram& h, std::string unit, std::string description,
           double scale = 1.0);
  // A derived figure computed at the end (hit rates, means).
  void set_value(const std::string& name, double value, std::string unit, std::string description);

  // Starts counting afresh every counter and histogram whose name begins with `prefix`,
  // except those whose name begins with one of `keep`. Models are not touched (see above).
  void reset(const std::string& prefix, const std::vector<std::string>& keep = {});

  // The stats as reported (since the last reset). Throw std::out_of_range for an unknown name.
  uint64_t counter(const std::string& name) const;
  Histogram histogram(const std::string& name) const;
  double value(const std::string& name) const;

  // The registered objects themselves (their whole life, whatever reset() did).
  const Counter* find_counter(const std::string& name) const;
  const Histogram* find_histogram(const std::string& name) const;
  nlohmann::json to_json() const;

 private:
  std::vector<CounterEntry> counters_;
  std::vector<HistogramEntry> histograms_;
  std::vector<ValueEntry> values_;
};

}  // namespace iommusim::common

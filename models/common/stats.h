// Statistics shared by every model: counters and histograms, each with a unit and a
// description, gathered in a registry that writes stats.json.
//
// Histograms are log-linear (HDR-style): exact below 64, then 32 sub-buckets per power of
// two (<= 3.2% relative error). They never allocate after construction, so recording
// is safe on hot paths. Percentiles report the bucket's upper bound clamped to the
// observed max, so p100 == max exactly.
#pragma once
#include <array>
#include <cstdint>
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

  void record(uint64_t v);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }
  uint64_t sum() const { return sum_; }
  // q in [0,1]. Returns 0 for an empty histogram.
  uint64_t percentile(double q) const;
  void reset();

  static unsigned bucket_of(uint64_t v);
  static uint64_t bucket_upper(unsigned b);

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0, sum_ = 0, min_ = ~0ull, max_ = 0;
};

// A registry of named stats. Models register their stats once at elaboration; the
// registry keeps pointers (stats are members of the models and outlive the dump).
class StatRegistry {
 public:
  struct CounterEntry { std::string name, unit, description; const Counter* c; };
  struct HistogramEntry { std::string name, unit, description; const Histogram* h; double scale; };
  struct ValueEntry { std::string name, unit, description; double value; };

  void add(const std::string& name, const Counter& c, std::string unit, std::string description);
  // scale converts recorded raw units to reported units (e.g. ps -> ns = 1e-3).
  void add(const std::string& name, const Histogram& h, std::string unit, std::string description,
           double scale = 1.0);
  // A derived figure computed at the end (hit rates, means).
  void set_value(const std::string& name, double value, std::string unit, std::string description);

  const Counter* find_counter(const std::string& name) const;
  const Histogram* find_histogram(const std::string& name) const;
  nlohmann::json to_json() const;

 private:
  std::vector<CounterEntry> counters_;
  std::vector<HistogramEntry> histograms_;
  std::vector<ValueEntry> values_;
};

}  // namespace iommusim::common

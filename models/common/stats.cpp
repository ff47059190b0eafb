#include "models/common/stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace iommusim::common {

unsigned Histogram::bucket_of(uint64_t v) {
  if (v < kLinear) return unsigned(v);
  unsigned msb = 63u - unsigned(__builtin_clzll(v));     // >= kSubBits + 1
  unsigned shift = msb - kSubBits;                        // keeps kSubBits+1 top bits
  unsigned sub = unsigned(v >> shift) & ((1u << kSubBits) - 1);
  return kLinear + (msb - kSubBits - 1) * (1u << kSubBits) + sub;
}

uint64_t Histogram::bucket_upper(unsigned b) {
  if (b < kLinear) return b;
  unsigned octave = (b - kLinear) >> kSubBits;
  unsigned sub = (b - kLinear) & ((1u << kSubBits) - 1);
  unsigned shift = octave + 1;
  uint64_t lower = (uint64_t((1u << kSubBits) | sub)) << shift;
  return lower + ((1ull << shift) - 1);
}

void Histogram::record(uint64_t v) {
  ++buckets_[bucket_of(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the sample at quantile q (1-based, nearest-rank method).
  uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(count_))));
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) return std::clamp(bucket_upper(b), min_, max_);
  }
  return max_;
}

void Histogram::reset() { *this = Histogram(); }

void StatRegistry::add(const std::string& name, const Counter& c, std::string unit, std::string description) {
  counters_.push_back({name, std::move(unit), std::move(description), &c});
}
void StatRegistry::add(const std::string& name, const Histogram& h, std::string unit, std::string description,
                       double scale) {
  histograms_.push_back({name, std::move(unit), std::move(description), &h, scale});
}
void StatRegistry::set_value(const std::string& name, double value, std::string unit, std::string description) {
  for (auto& v : values_)
    if (v.name == name) { v.value = value; return; }
  values_.push_back({name, std::move(unit), std::move(description), value});
}

const Counter* StatRegistry::find_counter(const std::string& name) const {
  for (auto& c : counters_)
    if (c.name == name) return c.c;
  return nullptr;
}
const Histogram* StatRegistry::find_histogram(const std::string& name) const {
  for (auto& h : histograms_)
    if (h.name == name) return h.h;
  return nullptr;
}

nlohmann::json StatRegistry::to_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (auto& c : counters_)
    out.push_back({{"name", c.name}, {"kind", "counter"}, {"value", c.c->value()}, {"unit", c.unit},
                   {"description", c.description}});
  for (auto& v : values_)
    out.push_back({{"name", v.name}, {"kind", "value"}, {"value", v.value}, {"unit", v.unit},
                   {"description", v.description}});
  for (auto& e : histograms_) {
    const Histogram& h = *e.h;
    auto s = [&](uint64_t x) { return double(x) * e.scale; };
    out.push_back({{"name", e.name}, {"kind", "histogram"}, {"unit", e.unit}, {"description", e.description},
                   {"count", h.count()}, {"mean", h.mean() * e.scale}, {"min", s(h.min())},
                   {"p50", s(h.percentile(0.50))}, {"p90", s(h.percentile(0.90))},
                   {"p99", s(h.percentile(0.99))}, {"max", s(h.max())}});
  }
  return out;
}

}  // namespace iommusim::common

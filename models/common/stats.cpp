#include "models/common/stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace iommusim::common {

uint64_t Histogram::bucket_lower(unsigned b) {
  if (b < kLinear) return b;
  unsigned octave = (b - kLinear) >> kSubBits;
  unsigned sub = (b - kLinear) & ((1u << kSubBits) - 1);
  return (uint64_t((1u << kSubBits) | sub)) << (octave + 1);
}

uint64_t Histogram::bucket_upper(unsigned b) {
  if (b < kLinear) return b;
  const unsigned octave = (b - kLinear) >> kSubBits;
  return bucket_lower(b) + ((1ull << (octave + 1)) - 1);
}

Histogram::Range Histogram::clamped(unsigned b) const {
  return {std::clamp(bucket_lower(b), min_, max_), std::clamp(bucket_upper(b), min_, max_)};
}

Histogram::Range Histogram::percentile_bounds(double q) const {
  if (count_ == 0) return {0, 0};
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the sample at quantile q (1-based, nearest-rank method).
  const uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(count_))));
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) return clamped(b);
  }
  return {max_, max_};
}

Histogram::Range Histogram::min_bounds() const {
  if (count_ == 0 || bounds_exact_) return {min(), min()};
  return {min_, clamped(bucket_of(min_)).hi};
}

Histogram::Range Histogram::max_bounds() const {
  if (count_ == 0 || bounds_exact_) return {max_, max_};
  return {clamped(bucket_of(max_)).lo, max_};
}

uint64_t Histogram::resolution(std::initializer_list<double> qs) const {
  uint64_t widest = std::max(min_bounds().width(), max_bounds().width());
  for (double q : qs) widest = std::max(widest, percentile_bounds(q).width());
  return widest;
}

void Histogram::reset() { *this = Histogram(); }

void Histogram::add(const Histogram& o) {
  for (unsigned b = 0; b < kBuckets; ++b) buckets_[b] += o.buckets_[b];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  bounds_exact_ = bounds_exact_ && o.bounds_exact_;
}

Histogram Histogram::since(const Histogram& earlier) const {
  Histogram d;
  d.count_ = count_ - earlier.count_;
  d.sum_ = sum_ - earlier.sum_;
  if (d.count_ == 0) return d;
  unsigned first = kBuckets, last = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    d.buckets_[b] = buckets_[b] - earlier.buckets_[b];
    if (d.buckets_[b]) { first = std::min(first, b); last = b; }
  }
  // Only the buckets of the new extremes are known; the whole-life extremes narrow them.
  d.min_ = std::max(bucket_lower(first), min_);
  d.max_ = std::min(bucket_upper(last), max_);
  d.bounds_exact_ = bucket_lower(first) == bucket_upper(first) && bucket_lower(last) == bucket_upper(last);
  return d;
}

void StatRegistry::add(const std::string& name, const Counter& c, std::string unit, std::string description) {
  counters_.push_back({name, std::move(unit), std::move(description), &c});
}
void StatRegistry::add(const std::string& name, const Histogram& h, std::string unit, std::string description,
                       double scale) {
  histograms_.push_back({name, std::move(unit), std::move(description), &h, scale, nullptr});
}
void StatRegistry::set_value(const std::string& name, double value, std::string unit, std::string description) {
  for (auto& v : values_)
    if (v.name == name) { v.value = value; return; }
  values_.push_back({name, std::move(unit), std::move(description), value});
}

void StatRegistry::reset(const std::string& prefix, const std::vector<std::string>& keep) {
  auto chosen = [&](const std::string& name) {
    if (name.compare(0, prefix.size(), prefix) != 0) return false;
    for (auto& k : keep)
      if (name.compare(0, k.size(), k) == 0) return false;
    return true;
  };
  for (auto& c : counters_)
    if (chosen(c.name)) c.base = c.c->value();
  for (auto& h : histograms_)
    if (chosen(h.name)) h.base = std::make_shared<const Histogram>(*h.h);
}

namespace {
template <class Entries>
auto& entry(const Entries& entries, const std::string& name) {
  for (auto& e : entries)
    if (e.name == name) return e;
  throw std::out_of_range("no stat named " + name);
}
Histogram reported(const StatRegistry::HistogramEntry& e) { return e.base ? e.h->since(*e.base) : *e.h; }
}  // namespace

uint64_t StatRegistry::counter(const std::string& name) const {
  auto& e = entry(counters_, name);
  return e.c->value() - e.base;
}
Histogram StatRegistry::histogram(const std::string& name) const { return reported(entry(histograms_, name)); }
double StatRegistry::value(const std::string& name) const { return entry(values_, name).value; }

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
    out.push_back({{"name", c.name}, {"kind", "counter"}, {"value", c.c->value() - c.base}, {"unit", c.unit},
                   {"description", c.description}});
  for (auto& v : values_)
    out.push_back({{"name", v.name}, {"kind", "value"}, {"value", v.value}, {"unit", v.unit},
                   {"description", v.description}});
  for (auto& e : histograms_) {
    const Histogram h = reported(e);
    auto s = [&](uint64_t x) { return double(x) * e.scale; };
    // Non-empty buckets as [lo, hi, count]: lo included, hi excluded, in the stat's unit.
    nlohmann::json buckets = nlohmann::json::array();
    const unsigned last = h.count() ? Histogram::bucket_of(h.max()) : 0;
    for (unsigned b = 0; b <= last; ++b)
      if (h.bucket_count(b))
        buckets.push_back({s(Histogram::bucket_lower(b)), (double(Histogram::bucket_upper(b)) + 1.0) * e.scale,
                           h.bucket_count(b)});
    out.push_back({{"name", e.name}, {"kind", "histogram"}, {"unit", e.unit}, {"description", e.description},
                   {"count", h.count()}, {"mean", h.mean() * e.scale}, {"min", s(h.min())},
                   {"p50", s(h.percentile(0.50))}, {"p90", s(h.percentile(0.90))},
                   {"p99", s(h.percentile(0.99))}, {"max", s(h.max())},
                   {"exact_below", s(Histogram::kLinear)},
                   {"resolution", s(h.resolution({0.50, 0.90, 0.99}))},
                   {"buckets", std::move(buckets)}});
  }
  return out;
}

}  // namespace iommusim::common

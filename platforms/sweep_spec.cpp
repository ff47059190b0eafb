#include "platforms/sweep_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "platforms/config.h"

namespace iommusim::platforms::sweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& origin, const std::string& field, const std::string& why) {
  throw SweepError(origin + ": " + field + ": " + why);
}

json plain(const ojson& v) { return json::parse(v.dump()); }

// The config value at a dotted key, or null when the schema has no such key.
const json* lookup(const json& config, const std::string& key) {
  const json* at = &config;
  std::string rest = key;
  for (;;) {
    const size_t dot = rest.find('.');
    const std::string part = rest.substr(0, dot);
    if (!at->is_object()) return nullptr;
    auto it = at->find(part);
    if (it == at->end()) return nullptr;
    at = &*it;
    if (dot == std::string::npos) return at;
    rest = rest.substr(dot + 1);
  }
}

double round12(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return std::strtod(buf, nullptr);
}

double number_field(const ojson& range, const char* name, const std::string& origin, const std::string& field) {
  if (!range.contains(name)) fail(origin, field, std::string("a range needs \"") + name + "\"");
  const ojson& v = range[name];
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail(origin, field + "." + name, "must be a number");
  return v.get<double>();
}

// The values of a range {start, stop, step | factor | count [, log]}, before rounding.
std::vector<double> range_values(const ojson& range, const std::string& origin, const std::string& field) {
  static const std::set<std::string> kFields = {"start", "stop", "step", "factor", "count", "log"};
  for (auto it = range.begin(); it != range.end(); ++it)
    if (!kFields.count(it.key())) fail(origin, field + "." + it.key(), "unknown field (a range has start, stop and one of step, factor, count; log with count)");
  const double start = number_field(range, "start", origin, field), stop = number_field(range, "stop", origin, field);
  const int how = int(range.contains("step")) + int(range.contains("factor")) + int(range.contains("count"));
  if (how != 1) fail(origin, field, "a range needs exactly one of step, factor, count");
  if (range.contains("log") && !range.contains("count")) fail(origin, field + ".log", "only goes with count");
  if (range.contains("log") && !range["log"].is_boolean()) fail(origin, field + ".log", "must be true or false");
  // The grid may reach stop within rounding error: 0.1 steps from 0 to 0.3 include 0.3.
  constexpr double kSlack = 1e-9;
  auto count_for = [&](double steps, const std::string& sub) {
    if (!(steps >= -kSlack)) fail(origin, field + "." + sub, "moves away from stop");
    if (steps + 1 > double(kMaxPoints)) fail(origin, field, "more than " + std::to_string(kMaxPoints) + " values");
    return size_t(std::floor(steps + kSlack)) + 1;
  };
  std::vector<double> out;
  if (range.contains("step")) {
    const double step = number_field(range, "step", origin, field);
    if (step == 0) fail(origin, field + ".step", "must be a number other than 0");
    const size_t n = count_for((stop - start) / step, "step");
    for (size_t i = 0; i < n; ++i) out.push_back(start + double(i) * step);
  } else if (range.contains("factor")) {
    const double factor = number_field(range, "factor", origin, field);
    if (factor <= 0 || factor == 1) fail(origin, field + ".factor", "must be a number > 0 other than 1");
    if (start == 0 || (stop / start) <= 0) fail(origin, field, "with factor, start and stop must be non-zero and of the same sign");
    const size_t n = count_for(std::log(stop / start) / std::log(factor), "factor");
    for (size_t i = 0; i < n; ++i) out.push_back(start * std::pow(factor, double(i)));
  } else {
    const ojson& c = range["count"];
    if (!c.is_number_integer() || c.get<int64_t>() < 1 || c.get<int64_t>() > int64_t(kMaxPoints))
      fail(origin, field + ".count", "must be an integer from 1 to " + std::to_string(kMaxPoints));
    const size_t n = c.get<size_t>();
    const bool log = range.value("log", false);
    if (log && (start <= 0 || stop <= 0)) fail(origin, field, "a log range needs start and stop > 0");
    for (size_t i = 0; i < n; ++i) {
      const double f = n == 1 ? 0.0 : double(i) / double(n - 1);
      out.push_back(i + 1 == n && n > 1 ? stop : log ? start * std::pow(stop / start, f) : start + (stop - start) * f);
    }
  }
  return out;
}

// One listed value of a key, typed after the key's default: an integer for an integer key.
json typed_value(const ojson& spec, const json& def, const std::string& origin, const std::string& at) {
  json v = plain(spec);
  if (v.is_null()) fail(origin, at, "null is not a value");
  if (def.is_number_integer() && v.is_number_float()) {
    const double d = v.get<double>();
    if (d != std::floor(d) || std::fabs(d) > 9.0e15) fail(origin, at, v.dump() + ": the key takes integers");
    v = int64_t(d);
  }
  return v;
}

// The values of one swept key, typed after the key's default: integers for an integer key.
std::vector<json> key_values(const ojson& spec, const json& def, const std::string& origin, const std::string& field) {
  const bool integer = def.is_number_integer();
  std::vector<json> out;
  if (spec.is_array()) {
    if (spec.empty()) fail(origin, field, "an empty list of values");
    for (size_t i = 0; i < spec.size(); ++i)
      out.push_back(typed_value(spec[i], def, origin, field + "[" + std::to_string(i) + "]"));
  } else if (spec.is_object()) {
    if (!def.is_number()) fail(origin, field, "a range needs a numeric key (its default is " + def.dump() + ")");
    for (double d : range_values(spec, origin, field)) out.push_back(integer ? json(std::llround(d)) : json(round12(d)));
  } else {
    fail(origin, field, "must be a list of values or a range {\"start\", \"stop\", \"step\" | \"factor\" | \"count\"}");
  }
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      if (out[i] == out[k])
        fail(origin, field, "the value " + out[i].dump() + " repeats" + (spec.is_object() && integer ? " after rounding to integers" : ""));
  return out;
}

bool overlaps(const std::string& a, const std::string& b) {
  return a == b || b.rfind(a + ".", 0) == 0 || a.rfind(b + ".", 0) == 0;
}

json load(const std::string& base, const std::vector<std::string>& params, const std::string& origin,
          const std::string& field) {
  try {
    return load_config(base, params);
  } catch (const ConfigError& e) {
    fail(origin, field, e.what());
  }
}

// The first swept key of dimension `d`.
size_t first_key(const Spec& s, size_t d) {
  return size_t(std::find(s.dim.begin(), s.dim.end(), d) - s.dim.begin());
}

// The spec field that names key k: the key, or its group "a+b".
std::string field_of(const Spec& s, size_t k) {
  std::string f;
  for (size_t o = 0; o < s.keys.size(); ++o)
    if (s.dim[o] == s.dim[k]) f += (f.empty() ? "" : "+") + s.keys[o];
  return f;
}

// Keys swept together, "a+b": [[a1, b1], [a2, b2], ...]: one dimension, each tuple distinct.
template <class Claim>
void add_group(Spec& s, const std::string& field_keys, const ojson& spec, const std::string& origin, Claim& claim) {
  const std::string field = "sweep." + field_keys;
  std::vector<std::string> keys;
  for (size_t pos = 0; pos <= field_keys.size();) {
    const size_t plus = std::min(field_keys.find('+', pos), field_keys.size());
    keys.push_back(field_keys.substr(pos, plus - pos));
    pos = plus + 1;
  }
  std::vector<const json*> defs;
  for (const std::string& k : keys) {
    if (k.empty()) fail(origin, field, "an empty key in a group (keys swept together are joined by '+')");
    claim("sweep", k);
    defs.push_back(lookup(s.base_config, k));
    if (!defs.back()) fail(origin, field, "unknown config key " + k);
  }
  if (!spec.is_array() || spec.empty())
    fail(origin, field, "keys swept together take a non-empty list of tuples, one value per key: [[" +
                            keys.front() + " value, ...], ...]");
  std::vector<std::vector<json>> values(keys.size());
  for (size_t i = 0; i < spec.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!spec[i].is_array() || spec[i].size() != keys.size())
      fail(origin, at, "must be a list of " + std::to_string(keys.size()) + " values, one per key");
    for (size_t k = 0; k < keys.size(); ++k)
      values[k].push_back(typed_value(spec[i][k], *defs[k], origin, at + "[" + std::to_string(k) + "]"));
    for (size_t o = 0; o < i; ++o) {
      bool same = true;
      for (size_t k = 0; k < keys.size(); ++k) same = same && values[k][o] == values[k][i];
      if (same) fail(origin, at, "repeats " + field + "[" + std::to_string(o) + "]");
    }
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    s.keys.push_back(keys[k]);
    s.values.push_back(std::move(values[k]));
    s.dim.push_back(s.dims);
  }
  ++s.dims;
}

}  // namespace

const std::vector<std::string>& default_stats() {
  static const std::vector<std::string> s = {"run.dma_throughput",
                                             "endpoint.latency.mean",
                                             "iommu.iotlb.hit_rate",
                                             "iommu.walk_latency.mean",
                                             "driver.invalidation.latency.mean",
                                             "driver.invalidation.latency.p50",
                                             "driver.invalidation.latency.p99"};
  return s;
}

std::string param(const std::string& key, const json& value) { return key + "=" + value.dump(); }

std::string format_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15) return std::to_string(int64_t(v));
  return json(v).dump();
}

std::string format_value(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return format_number(v.get<double>());
  return v.dump();
}

std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

Spec parse_spec(const ojson& j, const std::string& origin, const std::string& dir) {
  if (!j.is_object()) throw SweepError(origin + ": a sweep spec is a JSON object");
  static const std::set<std::string> kFields = {"about", "base", "set", "sweep", "combine", "seeds", "stats"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!kFields.count(it.key())) fail(origin, it.key(), "unknown field (about, base, set, sweep, combine, seeds, stats)");
  Spec s;
  if (j.contains("about")) {
    if (!j["about"].is_string()) fail(origin, "about", "must be a string");
    s.about = j["about"].get<std::string>();
  }
  if (j.contains("base")) {
    if (!j["base"].is_string()) fail(origin, "base", "must be a config file path (relative to the spec)");
    const std::string b = j["base"].get<std::string>();
    if (!b.empty()) s.base = fs::path(b).is_absolute() || dir.empty() ? b : (fs::path(dir) / b).string();
  }
  load(s.base, {}, origin, "base");

  // Every key named in set and sweep, for the overlap check: "set.a.b" or "sweep.a.b".
  std::vector<std::pair<std::string, std::string>> named;
  auto claim = [&](const std::string& section, const std::string& key) {
    const std::string field = section + "." + key;
    if (key.empty()) fail(origin, section, "an empty key");
    if (overlaps(key, kSeedKey)) fail(origin, field, std::string("the seed is set by \"seeds\", not by ") + section);
    for (auto& [other_field, other] : named)
      if (overlaps(key, other)) fail(origin, field, "overlaps " + other_field);
    named.push_back({field, key});
    return field;
  };
  if (j.contains("set")) {
    if (!j["set"].is_object()) fail(origin, "set", "must be an object of config keys and values");
    for (auto it = j["set"].begin(); it != j["set"].end(); ++it) {
      const std::string field = claim("set", it.key());
      if (it.value().is_null()) fail(origin, field, "null is not a value");
      s.set.push_back(param(it.key(), plain(it.value())));
    }
  }
  s.base_config = load(s.base, s.set, origin, "set");

  if (j.contains("sweep")) {
    if (!j["sweep"].is_object()) fail(origin, "sweep", "must be an object of config keys and their values");
    for (auto it = j["sweep"].begin(); it != j["sweep"].end(); ++it) {
      if (it.key().find('+') != std::string::npos) {
        add_group(s, it.key(), it.value(), origin, claim);
        continue;
      }
      const std::string field = claim("sweep", it.key());
      const json* def = lookup(s.base_config, it.key());
      if (!def) fail(origin, field, "unknown config key");
      std::vector<json> values = key_values(it.value(), *def, origin, field);
      s.keys.push_back(it.key());
      s.values.push_back(std::move(values));
      s.dim.push_back(s.dims++);
    }
  }
  if (j.contains("combine")) {
    if (!j["combine"].is_string() || (j["combine"] != "product" && j["combine"] != "zip"))
      fail(origin, "combine", "must be \"product\" or \"zip\"");
    s.zip = j["combine"] == "zip";
  }
  if (s.zip)
    for (size_t k = 1; k < s.keys.size(); ++k)
      if (s.values[k].size() != s.values[0].size())
        fail(origin, "sweep." + field_of(s, k),
             std::to_string(s.values[k].size()) + " value(s), but sweep." + field_of(s, 0) + " has " +
                 std::to_string(s.values[0].size()) + ": zip needs the same number of values for every key");

  if (j.contains("seeds")) {
    const ojson& sd = j["seeds"];
    if (sd.is_array()) {
      if (sd.empty()) fail(origin, "seeds", "an empty list of seeds");
      for (size_t i = 0; i < sd.size(); ++i) {
        if (!sd[i].is_number_unsigned()) fail(origin, "seeds[" + std::to_string(i) + "]", "must be an integer >= 0");
        const uint64_t seed = sd[i].get<uint64_t>();
        for (uint64_t o : s.seeds)
          if (o == seed) fail(origin, "seeds[" + std::to_string(i) + "]", "the seed " + std::to_string(seed) + " repeats");
        s.seeds.push_back(seed);
      }
    } else if (sd.is_object()) {
      for (auto it = sd.begin(); it != sd.end(); ++it)
        if (it.key() != "first" && it.key() != "count") fail(origin, "seeds." + it.key(), "unknown field (first, count)");
      if (!sd.contains("count") || !sd["count"].is_number_unsigned() || sd["count"].get<uint64_t>() < 1 ||
          sd["count"].get<uint64_t>() > kMaxPoints)
        fail(origin, "seeds.count", "must be an integer from 1 to " + std::to_string(kMaxPoints));
      if (sd.contains("first") && !sd["first"].is_number_unsigned()) fail(origin, "seeds.first", "must be an integer >= 0");
      const uint64_t first = sd.value("first", uint64_t(1)), count = sd["count"].get<uint64_t>();
      if (first + count < first) fail(origin, "seeds", "first + count overflows 64 bits");
      for (uint64_t k = 0; k < count; ++k) s.seeds.push_back(first + k);
    } else {
      fail(origin, "seeds", "must be a list of seeds or {\"first\": 1, \"count\": n}");
    }
  } else {
    const json* seed = lookup(s.base_config, kSeedKey);
    if (!seed || !seed->is_number_unsigned()) fail(origin, "seeds", std::string("the base config has no ") + kSeedKey + " to default to");
    s.seeds.push_back(seed->get<uint64_t>());
  }

  if (j.contains("stats")) {
    const ojson& st = j["stats"];
    if (!st.is_array() || st.empty()) fail(origin, "stats", "must be a non-empty list of stat names or globs");
    for (size_t i = 0; i < st.size(); ++i) {
      const std::string at = "stats[" + std::to_string(i) + "]";
      if (!st[i].is_string() || st[i].get<std::string>().empty()) fail(origin, at, "must be a stat name or glob");
      const std::string name = st[i].get<std::string>();
      for (auto& o : s.stats)
        if (o == name) fail(origin, at, "\"" + name + "\" repeats");
      s.stats.push_back(name);
    }
  } else {
    s.stats = default_stats();
  }

  double points = double(s.seeds.size());
  if (s.zip)
    points *= s.values.empty() ? 1.0 : double(s.values[0].size());
  else
    for (size_t d = 0; d < s.dims; ++d) points *= double(s.values[first_key(s, d)].size());
  if (points > double(kMaxPoints))
    fail(origin, "sweep", std::to_string(uint64_t(points)) + " points, more than " + std::to_string(kMaxPoints));

  // The schema's type check, once per swept value (keys swept together: per tuple): a
  // combination adds no new type.
  for (size_t k = 0; k < s.keys.size(); ++k) {
    for (size_t i = 0; i < s.values[k].size(); ++i) {
      if (first_key(s, s.dim[k]) != k) break;   // a group's tuples: checked with its first key
      std::vector<std::string> params = s.set;
      for (size_t o = k; o < s.keys.size(); ++o)
        if (s.dim[o] == s.dim[k]) params.push_back(param(s.keys[o], s.values[o][i]));
      try {
        load_config(s.base, params);
      } catch (const ConfigError& e) {
        // "iommu.vendor: expected a string" names the key the field already names; a group's
        // field names its tuple, the message the key.
        const std::string why = e.what(), own = s.keys[k] + ": ", group = field_of(s, k);
        if (group != s.keys[k]) fail(origin, "sweep." + group + "[" + std::to_string(i) + "]", why);
        fail(origin, "sweep." + group, why.rfind(own, 0) == 0 ? why.substr(own.size()) : why);
      }
    }
  }
  return s;
}

Spec read_spec(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw SweepError(path + ": no such spec file");
  if (fs::file_size(path, ec) > kMaxConfigFileBytes) throw SweepError(path + ": larger than a spec may be");
  std::ifstream in(path);
  if (!in) throw SweepError(path + ": cannot read");
  ojson j;
  try {
    j = ojson::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const ojson::exception& e) {
    throw SweepError(path + ": not valid JSON: " + e.what());
  }
  Spec s = parse_spec(j, path, fs::path(path).parent_path().string());
  s.file = path;
  return s;
}

std::vector<std::vector<json>> combinations(const Spec& s) {
  std::vector<std::vector<json>> out;
  if (s.keys.empty()) return {{}};
  if (s.zip) {
    for (size_t i = 0; i < s.values[0].size(); ++i) {
      std::vector<json> c;
      for (auto& v : s.values) c.push_back(v[i]);
      out.push_back(std::move(c));
    }
    return out;
  }
  // An odometer over the dimensions, the last turning fastest.
  std::vector<size_t> at(s.dims, 0);
  for (;;) {
    std::vector<json> c;
    for (size_t k = 0; k < s.keys.size(); ++k) c.push_back(s.values[k][at[s.dim[k]]]);
    out.push_back(std::move(c));
    size_t d = at.size();
    while (d > 0 && ++at[d - 1] == s.values[first_key(s, d - 1)].size()) at[--d] = 0;
    if (d == 0) return out;
  }
}

std::vector<Point> expand(const Spec& s) {
  const auto combos = combinations(s);
  if (combos.size() * s.seeds.size() > kMaxPoints)
    throw SweepError("the sweep has more than " + std::to_string(kMaxPoints) + " points");
  std::vector<Point> points;
  points.reserve(combos.size() * s.seeds.size());
  for (size_t c = 0; c < combos.size(); ++c) {
    for (uint64_t seed : s.seeds) {
      Point p;
      p.index = points.size();
      p.combination = c;
      p.values = combos[c];
      p.seed = seed;
      p.params = s.set;
      for (size_t k = 0; k < s.keys.size(); ++k) p.params.push_back(param(s.keys[k], combos[c][k]));
      p.params.push_back(param(kSeedKey, seed));
      points.push_back(std::move(p));
    }
  }
  return points;
}

}  // namespace iommusim::platforms::sweep

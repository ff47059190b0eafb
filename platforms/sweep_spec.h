// Sweep specs (docs/sweep.md, "The spec"): which config keys take which values, combined as
// a product or zipped, times replicate seeds, on top of a base config. Parsing checks every
// field and every key against the config schema, naming what is wrong; expansion numbers
// the points (one simulation each) and gives each the -p overrides its run takes.
// What it does not do: run anything, or check value ranges that only the simulator knows
// (those fail the point concerned when it runs).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace iommusim::platforms::sweep {

// A bad spec, manifest or sweep folder. The CLI exits 2 on it.
class SweepError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The config key the replicate seeds set.
inline constexpr const char* kSeedKey = "sim.seed";
// Parsing refuses sweeps with more points than this: the manifest lists every point
// (about 300 bytes each), and Slurm arrays are far smaller (MaxArraySize, 1001 by default).
inline constexpr size_t kMaxPoints = 100000;

struct Spec {
  std::string file;                      // the spec file as given ("" for a spec built in memory)
  std::string about;
  std::string base;                      // base config path, relative paths resolved against the spec's folder; "" = default
  std::vector<std::string> set;          // fixed overrides, "key=<json>"
  nlohmann::json base_config;            // base resolved with set: every point starts here
  std::vector<std::string> keys;         // swept keys, in column order
  std::vector<std::vector<nlohmann::json>> values;   // per swept key
  // Per swept key, its dimension: keys swept together ("a+b": [[a1, b1], [a2, b2]]) share
  // one and take the i-th of their values at once; every other key is a dimension of its own.
  std::vector<size_t> dim;
  size_t dims = 0;
  bool zip = false;                      // zip instead of product
  std::vector<uint64_t> seeds;
  std::vector<std::string> stats;        // stat names or globs, without the lane prefix
};

// The stats a spec without "stats" puts in the CSV.
const std::vector<std::string>& default_stats();

// Parses a spec. `origin` names it in errors ("spec.json"), `dir` is where relative base
// paths start. Checks every field, resolves the base config with "set", and checks every
// swept value against the schema. Throws SweepError "origin: field: what is wrong".
Spec parse_spec(const nlohmann::ordered_json& j, const std::string& origin, const std::string& dir);
// Reads and parses a spec file (comments allowed).
Spec read_spec(const std::string& path);

// One combination of swept values per entry, one value per key (product over the dimensions,
// the first outermost; zip: the i-th of each).
std::vector<std::vector<nlohmann::json>> combinations(const Spec& s);

struct Point {
  size_t index = 0;
  size_t combination = 0;                 // index into combinations(): replicates share it
  std::vector<nlohmann::json> values;     // one per swept key
  uint64_t seed = 0;
  std::vector<std::string> params;        // the -p overrides on top of base: set, swept values, seed
};
// Every point: combinations outermost, seeds innermost. Throws SweepError past kMaxPoints.
std::vector<Point> expand(const Spec& s);

// "key=<value as JSON>", which `iommusim run -p` reads back as the same value (strings quoted).
std::string param(const std::string& key, const nlohmann::json& value);
// A value as a CSV cell or a --list entry: strings bare, numbers as format_number.
std::string format_value(const nlohmann::json& v);
// The shortest text that reads back to the same double; integral values without a point.
std::string format_number(double v);

// 64-bit FNV-1a of a text, as 16 hex digits (the manifest's config hash).
std::string fnv1a_hex(const std::string& text);

}  // namespace iommusim::platforms::sweep

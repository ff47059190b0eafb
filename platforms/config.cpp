#include "platforms/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "platforms/config_keys.h"

namespace iommusim::platforms {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_text(const std::string& text, const std::string& origin) {
  try {
    return json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw ConfigError(origin + ": not valid JSON: " + e.what());
  } catch (const json::exception& e) {   // out_of_range: a number beyond double (1e400)
    throw ConfigError(origin + ": " + e.what());
  }
}

// A config file is a regular file of at most kMaxConfigFileBytes: /dev/zero, a FIFO or a
// huge file is refused instead of read until memory runs out.
json parse_file(const fs::path& p) {
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (ec || !fs::exists(st)) throw ConfigError(p.string() + ": cannot open (no such file)");
  if (!fs::is_regular_file(st)) throw ConfigError(p.string() + ": not a regular file");
  const uintmax_t size = fs::file_size(p, ec);
  if (ec || size > kMaxConfigFileBytes)
    throw ConfigError(p.string() + ": larger than the " + std::to_string(kMaxConfigFileBytes >> 20) + " MiB config file limit");
  std::ifstream in(p, std::ios::binary);
  if (!in) throw ConfigError(p.string() + ": cannot open");
  std::string text;
  text.reserve(size_t(size));
  char chunk[1 << 16];
  // The file may grow after the size check: the limit holds while reading too.
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, size_t(in.gcount()));
    if (text.size() > kMaxConfigFileBytes)
      throw ConfigError(p.string() + ": larger than the " + std::to_string(kMaxConfigFileBytes >> 20) + " MiB config file limit");
  }
  return parse_text(text, p.string());
}

const char* kind(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "null";
}

// Sections may be given as a path to a file, relative to the including file.
void resolve_includes(json& user, const json& schema, const fs::path& dir, const std::string& path) {
  for (auto it = user.begin(); it != user.end(); ++it) {
    auto s = schema.find(it.key());
    if (s == schema.end() || !s->is_object()) continue;
    const std::string p = path.empty() ? it.key() : path + "." + it.key();
    if (it->is_string()) {
      const fs::path file = dir / it->get<std::string>();
      *it = parse_file(file);
      if (!it->is_object()) throw ConfigError(p + ": " + file.string() + ": expected an object, got " + kind(*it));
      resolve_includes(*it, *s, file.parent_path(), p);
    } else if (it->is_object()) {
      resolve_includes(*it, *s, dir, p);
    }
  }
}

void merge_checked(json& base, const json& user, const std::string& path) {
  if (!user.is_object()) throw ConfigError((path.empty() ? std::string("config") : path) + ": expected an object, got " + kind(user));
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string p = path.empty() ? it.key() : path + "." + it.key();
    auto b = base.find(it.key());
    if (b == base.end()) throw ConfigError(p + ": unknown key");
    if (b->is_object()) { merge_checked(*b, *it, p); continue; }
    // A list replaces the default's whole; its elements are checked when it is read.
    const bool same = (b->is_number() && it->is_number()) || (b->is_boolean() && it->is_boolean()) ||
                      (b->is_string() && it->is_string()) || (b->is_array() && it->is_array());
    if (!same) throw ConfigError(p + ": expected " + std::string(kind(*b)) + ", got " + kind(*it));
    *b = *it;
  }
}

}  // namespace

const json& default_config() {
  static const json j = config_schema().defaults();
  return j;
}

json load_config(const std::string& path, const std::vector<std::string>& overrides) {
  json cfg = default_config();
  if (!path.empty()) {
    json user = parse_file(path);
    if (!user.is_object()) throw ConfigError(path + ": the top level must be an object");
    resolve_includes(user, cfg, fs::path(path).parent_path(), "");
    // A trace file is named relative to the config file that names it.
    if (auto t = user.find("trace"); t != user.end() && t->is_object())
      if (auto f = t->find("file"); f != t->end() && f->is_string() && !f->get<std::string>().empty() &&
                                    fs::path(f->get<std::string>()).is_relative())
        *f = (fs::path(path).parent_path() / f->get<std::string>()).lexically_normal().string();
    merge_checked(cfg, user, "");
  }
  for (const std::string& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("-p " + o + ": expected key.path=value");
    const std::string key = o.substr(0, eq), text = o.substr(eq + 1);
    json value;
    try {
      value = json::parse(text);
    } catch (const json::parse_error&) {
      value = text;   // bare words are strings
    } catch (const json::exception& e) {   // out_of_range: 1e400
      throw ConfigError(key + ": " + text + " is not a representable number (" + e.what() + ")");
    }
    // Build {"a":{"b":value}} and merge it with the same checks as a file.
    json patch = value;
    std::string rest = key;
    std::vector<std::string> parts;
    for (size_t pos; (pos = rest.find('.')) != std::string::npos; rest = rest.substr(pos + 1)) parts.push_back(rest.substr(0, pos));
    parts.push_back(rest);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) patch = json{{*it, patch}};
    merge_checked(cfg, patch, "");
  }
  return cfg;
}

const json& ConfigReader::at(const std::string& key) const {
  auto it = j_.find(key);
  if (it == j_.end()) fail(key, "missing");
  return *it;
}

void ConfigReader::fail(const std::string& key, const std::string& why) const { throw ConfigError(path(key) + ": " + why); }

void ConfigReader::fail_here(const std::string& why) const {
  throw ConfigError((path_.empty() ? std::string("config") : path_) + ": " + why);
}

ConfigReader ConfigReader::section(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_object()) fail(key, "expected an object");
  return ConfigReader(v, path(key));
}

double ConfigReader::number(const std::string& key, double min, double max) const {
  const json& v = at(key);
  if (!v.is_number()) fail(key, "expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    std::ostringstream os;
    os << "value " << d << " out of range [" << min << ", " << max << "]";
    fail(key, os.str());
  }
  return d;
}

uint64_t ConfigReader::integer(const std::string& key, uint64_t min, uint64_t max) const {
  const json& v = at(key);
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0)) {
    if (v.is_number_integer()) fail(key, "value " + v.dump() + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    fail(key, "expected an integer, got " + v.dump());
  }
  const uint64_t u = v.get<uint64_t>();
  if (u < min || u > max) fail(key, "value " + std::to_string(u) + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return u;
}

int64_t ConfigReader::signed_integer(const std::string& key, int64_t min, int64_t max) const {
  const json& v = at(key);
  if (!v.is_number_integer()) fail(key, "expected an integer, got " + v.dump());
  // An unsigned value >= 2^63 must not wrap to a negative one (2^64-1 is not -1).
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    fail(key, "value " + v.dump() + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  const int64_t i = v.get<int64_t>();
  if (i < min || i > max) fail(key, "value " + std::to_string(i) + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return i;
}

const json& ConfigReader::list(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_array()) fail(key, "expected a list (a JSON array)");
  return v;
}

bool ConfigReader::boolean(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_boolean()) fail(key, "expected true or false");
  return v.get<bool>();
}

std::string ConfigReader::string(const std::string& key) const {
  const json& v = at(key);
  if (!v.is_string()) fail(key, "expected a string");
  return v.get<std::string>();
}

std::string ConfigReader::choice(const std::string& key, const std::vector<std::string>& allowed) const {
  const std::string s = string(key);
  for (auto& a : allowed) if (a == s) return s;
  std::string list;
  for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  fail(key, "\"" + s + "\" is not one of: " + list);
}

}  // namespace iommusim::platforms

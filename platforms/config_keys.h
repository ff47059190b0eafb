// Config key declarations: every key of the run configuration is declared once, in a
// typed table per section bound to the members of the struct it fills (in the spirit of
// vcml properties and DRAMSys's typed config structs): name, type, default, range or
// choices, unit and description.
//
// What the declarations give: the parsing into the struct (each key read through
// ConfigReader, so type, range and choice errors name "section.key"), the section's
// cross-key checks (each naming the key it is about), the default config, which is also
// the schema (load_config refuses keys it does not hold), `iommusim run --print-config`
// and docs/config.md (`iommusim config-docs`).
//
// What they do not do: a config is read once, at elaboration; nothing here is on a hot
// path, and lookups by name are fine.
//
// A vendor declares its `iommu.<vendor>` and `driver.<vendor>` sections in its own lane
// file (platforms/<vendor>_lane.cpp), next to its factory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "platforms/config.h"

namespace iommusim::platforms {

enum class KeyType { Boolean, Integer, Number, String, List, Section };   // List: of objects
const char* to_string(KeyType t);

// What the schema, the default config and the docs know of one key, or of a section.
struct KeyInfo {
  std::string name;
  KeyType type = KeyType::Section;
  nlohmann::json default_value;   // a section: null (its keys hold theirs)
  std::string range;              // "1 .. 64", "lru | round_robin | random"; empty: any value
  std::string unit;
  std::string doc;
  std::vector<KeyInfo> keys;      // a section's keys, in declaration order
  // A section bound to a struct whose member defaults must be the declared ones
  // (StructDefaults::Declared): each key whose default-constructed member differs
  // ("key: declared X, struct Y"). A test checks that every such list is empty.
  bool struct_defaults_checked = false;
  std::vector<std::string> struct_default_mismatches;

  // A section's defaults as a config object (the default config, for the root).
  nlohmann::json defaults() const;
  const KeyInfo* find(const std::string& key) const;
  KeyInfo* find(const std::string& key);
};

// A key holding a value (not a section).
KeyInfo value_key(std::string name, KeyType type, nlohmann::json def, std::string range, std::string unit,
                  std::string doc);

// The whole run configuration: the run's own sections (platforms/system.cpp) and each
// vendor's iommu.<vendor> and driver.<vendor> (platforms/<vendor>_lane.cpp).
const KeyInfo& config_schema();

// docs/config.md: a table per section, generated from config_schema().
std::string config_docs_markdown();

// A number as the default config and the docs show it: integral values without ".0".
nlohmann::json number_json(double v);
// "1 .. 64", "0 .. 2^47", "0.001 .. 1e+07": a range as the docs show it.
std::string range_text(uint64_t min, uint64_t max);
std::string range_text(double min, double max);

// Whether a default-constructed struct holds the declared defaults (a test checks), or its
// member defaults serve something else (a model's unit tests) or there are none.
enum class StructDefaults { Declared, Own };

// The keys of one section, bound to the members of S.
template <class S>
class Section {
 public:
  using Reader = std::function<void(const ConfigReader&, S&)>;
  using Writer = std::function<nlohmann::json(const S&)>;

  explicit Section(std::string doc, StructDefaults d = StructDefaults::Declared)
      : doc_(std::move(doc)), struct_defaults_(d) {}

  // A whole number in [min, max], stored in an unsigned member.
  template <class T>
  Section& integer(const char* name, T S::*m, uint64_t def, uint64_t min, uint64_t max, const char* unit,
                   const char* doc) {
    static_assert(std::is_unsigned_v<T> && !std::is_same_v<T, bool>, "integer keys fill unsigned members");
    declare_check(name, max <= std::numeric_limits<T>::max(), "its range does not fit the member");
    declare_check(name, min <= def && def <= max, "its default is outside its range");
    const std::string n = name;
    return add(value_key(name, KeyType::Integer, def, range_text(min, max), unit, doc),
               [n, m, min, max](const ConfigReader& r, S& s) { s.*m = T(r.integer(n, min, max)); },
               [m](const S& s) { return nlohmann::json(uint64_t(s.*m)); });
  }

  // One of a few whole numbers (a page size: 4096 | 2097152 | 1073741824).
  template <class T>
  Section& one_of(const char* name, T S::*m, uint64_t def, std::vector<uint64_t> values, const char* unit,
                  const char* doc) {
    static_assert(std::is_unsigned_v<T> && !std::is_same_v<T, bool>, "integer keys fill unsigned members");
    declare_check(name, !values.empty(), "it has no values");
    std::string list;
    for (size_t i = 0; i < values.size(); ++i)
      list += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + std::to_string(values[i]);
    std::string range;
    for (uint64_t v : values) range += (range.empty() ? "" : " | ") + std::to_string(v);
    declare_check(name, std::find(values.begin(), values.end(), def) != values.end(),
                  "its default is not one of its values");
    const uint64_t lo = *std::min_element(values.begin(), values.end());
    const uint64_t hi = *std::max_element(values.begin(), values.end());
    declare_check(name, hi <= std::numeric_limits<T>::max(), "its values do not fit the member");
    const std::string n = name;
    return add(value_key(name, KeyType::Integer, def, range, unit, doc),
               [n, m, values, lo, hi, list](const ConfigReader& r, S& s) {
                 const uint64_t v = r.integer(n, lo, hi);
                 if (std::find(values.begin(), values.end(), v) == values.end()) r.fail(n, "must be " + list);
                 s.*m = T(v);
               },
               [m](const S& s) { return nlohmann::json(uint64_t(s.*m)); });
  }

  // The key declared last must be a multiple of `step` (a pool size in whole pages).
  Section& multiple_of(uint64_t step) {
    Entry& e = entries_.back();
    declare_check(e.info.name, e.info.type == KeyType::Integer && step > 0, "multiple_of needs an integer key");
    declare_check(e.info.name, e.info.default_value.template get<uint64_t>() % step == 0, "its default is not a multiple");
    e.info.range += ", a multiple of " + std::to_string(step);
    const std::string n = e.info.name;
    e.read = [n, step, read = e.read, write = e.write](const ConfigReader& r, S& s) {
      read(r, s);
      if (write(s).template get<uint64_t>() % step) r.fail(n, "must be a multiple of " + std::to_string(step));
    };
    return *this;
  }

  Section& number(const char* name, double S::*m, double def, double min, double max, const char* unit,
                  const char* doc) {
    declare_check(name, min <= def && def <= max, "its default is outside its range");
    const std::string n = name;
    return add(value_key(name, KeyType::Number, number_json(def), range_text(min, max), unit, doc),
               [n, m, min, max](const ConfigReader& r, S& s) { s.*m = r.number(n, min, max); },
               [m](const S& s) { return number_json(s.*m); });
  }

  Section& boolean(const char* name, bool S::*m, bool def, const char* doc) {
    const std::string n = name;
    return add(value_key(name, KeyType::Boolean, def, "true | false", "", doc),
               [n, m](const ConfigReader& r, S& s) { s.*m = r.boolean(n); },
               [m](const S& s) { return nlohmann::json(s.*m); });
  }

  // A word from `options`, stored as the value it names.
  template <class E>
  Section& choice(const char* name, E S::*m, E def, std::vector<std::pair<std::string, E>> options, const char* doc) {
    std::vector<std::string> words;
    const std::string* def_word = nullptr;
    for (auto& o : options) {
      words.push_back(o.first);
      if (o.second == def && !def_word) def_word = &o.first;
    }
    declare_check(name, def_word != nullptr, "its default is not one of its choices");
    std::string range;
    for (auto& w : words) range += (range.empty() ? "" : " | ") + w;
    const std::string n = name;
    return add(value_key(name, KeyType::String, *def_word, range, "", doc),
               [n, m, words, options](const ConfigReader& r, S& s) {
                 const std::string w = r.choice(n, words);
                 for (auto& o : options)
                   if (o.first == w) { s.*m = o.second; return; }
               },
               [m, options](const S& s) {
                 for (auto& o : options)
                   if (o.second == s.*m) return nlohmann::json(o.first);
                 return nlohmann::json("?");   // a value no word names: never equal to a default
               });
  }
  // A word from `options`, stored as itself.
  Section& choice(const char* name, std::string S::*m, const char* def, const std::vector<std::string>& options,
                  const char* doc) {
    std::vector<std::pair<std::string, std::string>> same;
    for (auto& o : options) same.emplace_back(o, o);
    return choice<std::string>(name, m, def, same, doc);
  }

  // A key whose value is not one member (a list, a sentinel): read and written by functions.
  Section& custom(KeyInfo info, Reader read, Writer write) {
    declare_check(info.name, info.type != KeyType::Section, "custom keys are values");
    return add(std::move(info), std::move(read), std::move(write));
  }

  // A nested section filling member `m`: {"name": {...}}.
  template <class Sub>
  Section& section(const char* name, Sub S::*m, const Section<Sub>& sub) {
    const std::string n = name;
    return add(sub.info(name), [n, m, sub](const ConfigReader& r, S& s) { sub.read(r.section(n), s.*m); },
               [m, sub](const S& s) { return sub.write(s.*m); });
  }
  // A nested section filling members of S itself.
  Section& section(const char* name, const Section<S>& sub) {
    const std::string n = name;
    return add(sub.info(name), [n, sub](const ConfigReader& r, S& s) { sub.read(r.section(n), s); },
               [sub](const S& s) { return sub.write(s); });
  }

  // The keys of `sub` at this level, filling member `m` (the JSON is flat where the struct
  // nests: iommu.amdvi.hats is AmdViConfig::caps.hats).
  template <class Sub>
  Section& embed(Sub S::*m, const Section<Sub>& sub) {
    for (const auto& e : sub.entries_)
      add(e.info, [m, read = e.read](const ConfigReader& r, S& s) { read(r, s.*m); },
          [m, write = e.write](const S& s) { return write(s.*m); });
    for (const auto& c : sub.checks_)
      checks_.push_back({c.key, [m, fn = c.fn](const S& s) { return fn(s.*m); }});
    return *this;
  }

  // A check across keys, run after they are all read: `fn` returns "" or what is wrong,
  // reported against `key`, or against the section itself when `key` is empty.
  Section& check(const char* key, std::function<std::string(const S&)> fn) {
    checks_.push_back({key, std::move(fn)});
    return *this;
  }

  // Reads every key of the section at `r` into `s` (members that are not keys keep their
  // values), then runs the checks. Throws ConfigError naming the key.
  void read(const ConfigReader& r, S& s) const {
    for (const auto& e : entries_) e.read(r, s);
    for (const auto& c : checks_)
      if (std::string why = c.fn(s); !why.empty()) {
        if (c.key.empty()) r.fail_here(why);
        r.fail(c.key, why);
      }
  }
  S read(const ConfigReader& r) const {
    S s{};
    read(r, s);
    return s;
  }

  // The keys of `s` as a config object.
  nlohmann::json write(const S& s) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& e : entries_) j[e.info.name] = e.write(s);
    return j;
  }

  KeyInfo info(std::string name) const {
    KeyInfo k;
    k.name = std::move(name);
    k.doc = doc_;
    for (const auto& e : entries_) k.keys.push_back(e.info);
    if (struct_defaults_ == StructDefaults::Declared) {
      k.struct_defaults_checked = true;
      const S fresh{};
      for (const auto& e : entries_) {
        const nlohmann::json declared = e.info.type == KeyType::Section ? e.info.defaults() : e.info.default_value;
        const nlohmann::json member = e.write(fresh);
        if (member != declared)
          k.struct_default_mismatches.push_back(e.info.name + ": declared " + declared.dump() + ", struct " +
                                                member.dump());
      }
    }
    return k;
  }

 private:
  template <class>
  friend class Section;
  struct Entry {
    KeyInfo info;
    Reader read;
    Writer write;
  };
  struct Check {
    std::string key;
    std::function<std::string(const S&)> fn;
  };

  Section& add(KeyInfo info, Reader read, Writer write) {
    for (const auto& e : entries_) declare_check(info.name, e.info.name != info.name, "it is declared twice");
    declare_check(info.name, !info.doc.empty(), "it has no description");
    entries_.push_back({std::move(info), std::move(read), std::move(write)});
    return *this;
  }
  // A declaration that cannot be right is a bug in the program, not in the user's config.
  static void declare_check(const std::string& key, bool ok, const char* why) {
    if (!ok) throw std::logic_error("config key declaration '" + key + "': " + why);
  }

  std::string doc_;
  StructDefaults struct_defaults_;
  std::vector<Entry> entries_;
  std::vector<Check> checks_;
};

}  // namespace iommusim::platforms

// Config key declarations (platforms/config_keys.h): what a declaration table reads, checks
// and writes, and that everything derived from the declarations agrees with what ships:
// configs/default.json, docs/config.md and the model structs' member defaults.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "platforms/config_keys.h"
#include "platforms/iommu_lane.h"
#include "tests/support/test_files.h"

using iommusim::platforms::ConfigError;
using iommusim::platforms::ConfigReader;
using iommusim::platforms::KeyInfo;
using iommusim::platforms::KeyType;
using iommusim::platforms::Section;
using iommusim::platforms::StructDefaults;
using nlohmann::json;

namespace {

using iommusim::test::read_file;

// A toy section exercising every kind of key.
enum class Mode { A, B };
struct Inner {
  unsigned depth = 3;
};
struct Toy {
  unsigned size = 4;
  uint64_t page = 4096;
  uint64_t pool = 8192;
  double rate = 0.5;
  bool on = true;
  Mode mode = Mode::A;
  std::string word = "x";
  Inner flat;     // keys at the toy's level
  Inner nested;   // keys in {"nested": {...}}
};

Section<Inner> inner_keys(uint64_t depth_default) {
  return Section<Inner>("inner.", StructDefaults::Own)
      .integer("depth", &Inner::depth, depth_default, 1, 5, "levels", "how deep");
}

Section<Toy> toy_keys() {
  return Section<Toy>("A toy.")
      .integer("size", &Toy::size, 4, 1, 8, "entries", "how many")
      .one_of("page", &Toy::page, 4096, {4096, 2097152}, "bytes", "page size")
      .integer("pool", &Toy::pool, 8192, 4096, 1u << 20, "bytes", "pool size")
      .multiple_of(4096)
      .number("rate", &Toy::rate, 0.5, 0, 1, "", "a share")
      .boolean("on", &Toy::on, true, "switch")
      .choice("mode", &Toy::mode, Mode::A, {{"a", Mode::A}, {"b", Mode::B}}, "a mode")
      .choice("word", &Toy::word, "x", {"x", "y"}, "a word")
      .embed(&Toy::flat, inner_keys(3))
      .section("nested", &Toy::nested, inner_keys(3))
      .check("size", [](const Toy& t) { return t.size == 7 ? "7 is unlucky" : ""; })
      .check("", [](const Toy& t) { return t.size == 5 && !t.on ? "5 needs on" : ""; });
}

// Reads `patch` merged onto the toy's defaults; "" or the error.
std::string toy_error(const json& patch, Toy* out = nullptr) {
  json j = toy_keys().info("toy").defaults();
  j.merge_patch(patch);
  try {
    Toy t = toy_keys().read(ConfigReader(j, "toy"));
    if (out) *out = t;
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Every section of the schema, with its path.
void sections(const KeyInfo& s, const std::string& path, std::vector<std::pair<std::string, const KeyInfo*>>& out) {
  out.push_back({path, &s});
  for (const KeyInfo& k : s.keys)
    if (k.type == KeyType::Section) sections(k, path.empty() ? k.name : path + "." + k.name, out);
}

}  // namespace

TEST(ConfigKeys, DefaultsAreTheDeclaredValues) {
  const json expected = {{"size", 4},  {"page", 4096},  {"pool", 8192}, {"rate", 0.5},
                         {"on", true}, {"mode", "a"},   {"word", "x"},  {"depth", 3},
                         {"nested", {{"depth", 3}}}};
  EXPECT_EQ(toy_keys().info("toy").defaults(), expected);
  Toy t;
  t.size = 6;
  t.mode = Mode::B;
  t.flat.depth = 2;
  json written = expected;
  written["size"] = 6;
  written["mode"] = "b";
  written["depth"] = 2;
  EXPECT_EQ(toy_keys().write(t), written);
}

TEST(ConfigKeys, ReadsEveryKindOfKeyIntoItsMember) {
  Toy t;
  ASSERT_EQ(toy_error({{"size", 8}, {"page", 2097152}, {"pool", 12288}, {"rate", 1}, {"on", false}, {"mode", "b"},
                       {"word", "y"}, {"depth", 5}, {"nested", {{"depth", 1}}}},
                      &t),
            "");
  EXPECT_EQ(t.size, 8u);
  EXPECT_EQ(t.page, 2097152u);
  EXPECT_EQ(t.pool, 12288u);
  EXPECT_EQ(t.rate, 1.0);
  EXPECT_FALSE(t.on);
  EXPECT_EQ(t.mode, Mode::B);
  EXPECT_EQ(t.word, "y");
  EXPECT_EQ(t.flat.depth, 5u);
  EXPECT_EQ(t.nested.depth, 1u);
}

TEST(ConfigKeys, ErrorsNameTheKeyPath) {
  EXPECT_EQ(toy_error({{"size", 9}}), "toy.size: value 9 out of range [1, 8]");
  EXPECT_EQ(toy_error({{"page", 8192}}), "toy.page: must be 4096 or 2097152");
  EXPECT_EQ(toy_error({{"pool", 6000}}), "toy.pool: must be a multiple of 4096");
  EXPECT_EQ(toy_error({{"mode", "c"}}), "toy.mode: \"c\" is not one of: a, b");
  EXPECT_EQ(toy_error({{"depth", 0}}), "toy.depth: value 0 out of range [1, 5]");
  EXPECT_EQ(toy_error({{"nested", {{"depth", 6}}}}), "toy.nested.depth: value 6 out of range [1, 5]");
  EXPECT_EQ(toy_error({{"size", 7}}), "toy.size: 7 is unlucky");
  EXPECT_EQ(toy_error({{"size", 5}, {"on", false}}), "toy: 5 needs on");
}

TEST(ConfigKeys, SchemaDescribesEachKey) {
  const KeyInfo info = toy_keys().info("toy");
  const KeyInfo* size = info.find("size");
  ASSERT_NE(size, nullptr);
  EXPECT_EQ(size->type, KeyType::Integer);
  EXPECT_EQ(size->range, "1 .. 8");
  EXPECT_EQ(size->unit, "entries");
  EXPECT_EQ(size->doc, "how many");
  EXPECT_EQ(info.find("pool")->range, "4096 .. 2^20, a multiple of 4096");
  EXPECT_EQ(info.find("page")->range, "4096 | 2097152");
  EXPECT_EQ(info.find("mode")->range, "a | b");
  EXPECT_EQ(info.find("nested")->type, KeyType::Section);
  EXPECT_EQ(info.find("nested")->doc, "inner.");
  EXPECT_EQ(info.find("missing"), nullptr);
}

TEST(ConfigKeys, StructDefaultsThatDifferAreListed) {
  EXPECT_TRUE(toy_keys().info("toy").struct_defaults_checked);
  EXPECT_TRUE(toy_keys().info("toy").struct_default_mismatches.empty());
  // The toy's members hold 4 and depth 3; declare 5 and 2.
  const auto skewed = Section<Toy>("skewed")
                          .integer("size", &Toy::size, 5, 1, 8, "", "how many")
                          .section("nested", &Toy::nested, inner_keys(2))
                          .info("skewed");
  EXPECT_EQ(skewed.struct_default_mismatches,
            (std::vector<std::string>{"size: declared 5, struct 4", "nested: declared {\"depth\":2}, struct {\"depth\":3}"}));
  EXPECT_FALSE(inner_keys(2).info("own").struct_defaults_checked);
}

TEST(ConfigKeys, ImpossibleDeclarationsAreRefused) {
  EXPECT_THROW(Section<Toy>("t").integer("size", &Toy::size, 9, 1, 8, "", "out of range"), std::logic_error);
  EXPECT_THROW(Section<Toy>("t").integer("size", &Toy::size, 1, 1, 8, "", ""), std::logic_error);   // no description
  EXPECT_THROW(Section<Toy>("t").integer("size", &Toy::size, 1, 1, 8, "", "a").boolean("size", &Toy::on, true, "b"),
               std::logic_error);   // twice
  EXPECT_THROW(Section<Toy>("t").choice("mode", &Toy::mode, Mode::B, {{"a", Mode::A}}, "no b"), std::logic_error);
  EXPECT_THROW(Section<Toy>("t").integer("pool", &Toy::pool, 6000, 0, 8192, "", "a").multiple_of(4096), std::logic_error);
}

TEST(ConfigKeys, NumbersShowWithoutATrailingPointZero) {
  EXPECT_EQ(iommusim::platforms::number_json(1000).dump(), "1000");
  EXPECT_EQ(iommusim::platforms::number_json(0.7).dump(), "0.7");
  EXPECT_EQ(iommusim::platforms::range_text(uint64_t(0), 1ull << 47), "0 .. 2^47");
  EXPECT_EQ(iommusim::platforms::range_text(uint64_t(0), ~0ull), "0 .. 2^64-1");
  EXPECT_EQ(iommusim::platforms::range_text(uint64_t(1), 65536), "1 .. 65536");   // below 2^20: as is
}

// The shipped, commented configs/default.json is what `iommusim run` uses with no config:
// same keys, same defaults as the declarations.
TEST(Config, ShippedDefaultJsonMatchesTheDeclarations) {
  const json shipped = json::parse(read_file(std::string(IOMMUSIM_SOURCE_DIR) + "/configs/default.json"), nullptr, true,
                                   /*ignore_comments=*/true);
  const json& declared = iommusim::platforms::default_config();
  EXPECT_TRUE(shipped == declared) << "configs/default.json differs from the declarations; JSON patch from it to them:\n"
                               << json::diff(shipped, declared).dump(1);
}

TEST(Config, DocsAreUpToDate) {
  const std::string file = read_file(std::string(IOMMUSIM_SOURCE_DIR) + "/docs/config.md");
  EXPECT_TRUE(file == iommusim::platforms::config_docs_markdown())
      << "docs/config.md is out of date: regenerate it with build/iommusim config-docs > docs/config.md";
}

// Structs that tests build directly keep member defaults; they must be the declared ones.
TEST(Config, StructMemberDefaultsAreTheDeclaredOnes) {
  std::vector<std::pair<std::string, const KeyInfo*>> all;
  sections(iommusim::platforms::config_schema(), "", all);
  std::vector<std::string> checked;
  for (auto& [path, s] : all) {
    if (!s->struct_defaults_checked) continue;
    checked.push_back(path);
    for (const std::string& m : s->struct_default_mismatches) ADD_FAILURE() << path << "." << m;
  }
  // Not vacuous: each lane's model and driver structs, the memory and the driver timing.
  for (const std::string& v : iommusim::platforms::known_vendors())
    for (const std::string& p : {"iommu." + v, "driver." + v})
      EXPECT_NE(std::find(checked.begin(), checked.end(), p), checked.end()) << p;
  for (const char* p : {"memory", "driver"})
    EXPECT_NE(std::find(checked.begin(), checked.end(), p), checked.end()) << p;
}

// Each vendor's lane registers itself from its own file; its sections join the schema.
TEST(Config, EveryLaneRegistersItsSections) {
  EXPECT_EQ(iommusim::platforms::known_vendors(), (std::vector<std::string>{"amdvi", "smmuv3", "vtd"}));
  const KeyInfo& schema = iommusim::platforms::config_schema();
  for (const std::string& v : iommusim::platforms::known_vendors()) {
    ASSERT_NE(schema.find("iommu")->find(v), nullptr) << v;
    ASSERT_NE(schema.find("driver")->find(v), nullptr) << v;
    EXPECT_NE(schema.find("iommu")->find(v)->find("iotlb"), nullptr) << v;
  }
}

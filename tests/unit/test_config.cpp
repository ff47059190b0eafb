// Config loading: the embedded default is the schema; errors name the key path.
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "platforms/config.h"
#include "platforms/system.h"

using iommusim::platforms::ConfigError;
using iommusim::platforms::load_config;
using nlohmann::json;

namespace {
std::string error_of(const std::string& path, const std::vector<std::string>& overrides) {
  try {
    json cfg = load_config(path, overrides);
    iommusim::platforms::System s(cfg);   // typed validation happens here
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST(Config, DefaultIsNestedOnEveryVendorSideBySide) {
  const json& d = iommusim::platforms::default_config();
  EXPECT_EQ(d["iommu"]["vendor"], "smmuv3,vtd,amdvi");
  EXPECT_EQ(d["iommu"]["translation"], "nested");
  // The DMA window is larger than every IOTLB's reach (entries x 4 KB).
  for (const char* v : {"smmuv3", "vtd", "amdvi"})
    EXPECT_GT(d["traffic"]["window_bytes"].get<uint64_t>(), d["iommu"][v]["iotlb"]["entries"].get<uint64_t>() * 4096) << v;
}

TEST(Config, PasidTrafficToAStage2OnlyDomainIsAnError) {
  EXPECT_NE(error_of("", {"iommu.translation=s2", "traffic.pasid=5", "traffic.window_iova=0"})
                .find("traffic.pasid: with translation s2 the DMA domain attaches to the RID"),
            std::string::npos);
}

TEST(Config, UnknownOrRepeatedVendorIsAnErrorNamingTheKey) {
  EXPECT_NE(error_of("", {"iommu.vendor=smmuv3,intel"}).find("iommu.vendor: unknown vendor 'intel'"), std::string::npos);
  EXPECT_NE(error_of("", {"iommu.vendor=vtd,vtd"}).find("iommu.vendor: 'vtd' given twice"), std::string::npos);
  EXPECT_NE(error_of("", {"iommu.vendor="}).find("iommu.vendor"), std::string::npos);
}

TEST(Config, UnknownKeyNamesItsPath) {
  EXPECT_EQ(error_of("", {"iommu.smmuv3.iotlb.entires=4"}), "iommu.smmuv3.iotlb.entires: unknown key");
  const std::string f = write_temp("unknown.json", "{ // comment\n \"traffic\": { \"outstandng\": 4 } }");
  EXPECT_EQ(error_of(f, {}), "traffic.outstandng: unknown key");
}

TEST(Config, WrongTypeNamesItsPath) {
  EXPECT_EQ(error_of("", {"traffic.outstanding=\"many\""}), "traffic.outstanding: expected a number, got a string");
  EXPECT_EQ(error_of("", {"iommu.smmuv3=3"}), "iommu.smmuv3: expected an object, got a number");
}

TEST(Config, BadValuesNameTheirPath) {
  EXPECT_NE(error_of("", {"iommu.smmuv3.iotlb.ways=3"}).find("iommu.smmuv3.iotlb.entries: entries (2048) must be a multiple of ways (3)"),
            std::string::npos);
  EXPECT_NE(error_of("", {"traffic.outstanding=0"}).find("traffic.outstanding: value 0 out of range"), std::string::npos);
  EXPECT_NE(error_of("", {"iommu.translation=s3"}).find("iommu.translation: \"s3\" is not one of"), std::string::npos);
  EXPECT_NE(error_of("", {"iommu.smmuv3.iotlb.replacement=fifo"}).find("iommu.smmuv3.iotlb.replacement"), std::string::npos);
  EXPECT_NE(error_of("", {"platform.stage2_page_bytes=8192"}).find("platform.stage2_page_bytes: must be"), std::string::npos);
  EXPECT_NE(error_of("", {"traffic.pasid=-2"}).find("traffic.pasid"), std::string::npos);
  EXPECT_NE(error_of("", {"noequals"}).find("expected key.path=value"), std::string::npos);
  // s2: the device addresses IPAs, so the window must be guest RAM (default window is at 1 GiB).
  EXPECT_NE(error_of("", {"iommu.translation=s2"}).find("traffic.window_iova: with translation s2 the window and churn region must lie inside guest RAM"),
            std::string::npos);
  EXPECT_NE(error_of("", {"iommu.translation=s2", "traffic.window_iova=4096", "platform.stage2_page_bytes=2097152"})
                .find("traffic.window_iova: with translation s2 the window must be aligned"),
            std::string::npos);
  EXPECT_EQ(error_of("", {"iommu.translation=s2", "traffic.window_iova=0"}), "");
  EXPECT_NE(error_of("", {"platform.guest_ram_pa=140737488355328"}).find("platform.guest_ram_pa: guest RAM ends beyond simulated memory"),
            std::string::npos);
}

// CAP.MAMV: an address mask above 52 would cover more than the 64-bit address space in
// 4 KB pages (2^(12 + AM) bytes), so the config stops at 52.
TEST(Config, VtdMamvStopsAtTheLargestUsefulMask) {
  EXPECT_NE(error_of("", {"iommu.vendor=vtd", "iommu.vtd.mamv=53"}).find("iommu.vtd.mamv: value 53 out of range"), std::string::npos);
  EXPECT_EQ(error_of("", {"iommu.vtd.mamv=52"}), "");   // last: a System that builds stays built
}

TEST(Config, OverridesAndIncludedSections) {
  const std::string cache = write_temp("smmu.json", "{ \"walkers\": 3 }");
  const std::string main = write_temp("main.json", "{ \"iommu\": { \"smmuv3\": \"smmu.json\" } }");
  json cfg = load_config(main, {"traffic.pattern=sequential", "iommu.smmuv3.iotlb.entries=4096"});
  EXPECT_EQ(cfg["iommu"]["smmuv3"]["walkers"], 3);
  EXPECT_EQ(cfg["iommu"]["smmuv3"]["iotlb"]["entries"], 4096);   // untouched keys keep defaults
  EXPECT_EQ(cfg["traffic"]["pattern"], "sequential");
  EXPECT_EQ(error_of(main, {}), "");
}

TEST(Config, MalformedJsonIsAnErrorNotACrash) {
  const std::string f = write_temp("bad.json", "{ \"sim\": { \"seed\": 1, } ");
  EXPECT_NE(error_of(f, {}).find("not valid JSON"), std::string::npos);
}

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

// Issue 9, section 2: bad input ends as a ConfigError naming the key or the file.
TEST(Config, OverflowingNumberNamesTheKey) {
  EXPECT_NE(error_of("", {"sim.seed=1e400"}).find("sim.seed"), std::string::npos);
  const std::string f = write_temp("overflow.json", "{ \"sim\": { \"seed\": 1e400 } }");
  EXPECT_NE(error_of(f, {}).find("overflow.json"), std::string::npos);
}

TEST(Config, IncludedSectionThatIsNotAnObjectNamesKeyAndFile) {
  write_temp("array_section.json", "[1]");
  const std::string main = write_temp("main_array.json", "{ \"iommu\": { \"smmuv3\": \"array_section.json\" } }");
  const std::string e = error_of(main, {});
  EXPECT_NE(e.find("iommu.smmuv3"), std::string::npos) << e;
  EXPECT_NE(e.find("array_section.json"), std::string::npos) << e;
}

TEST(Config, UnsignedBeyondInt64DoesNotWrapNegative) {
  // 2^64-1 read as int64 would be -1, "no PASID".
  const std::string e = error_of("", {"traffic.pasid=18446744073709551615"});
  EXPECT_NE(e.find("traffic.pasid"), std::string::npos) << e;
  EXPECT_NE(error_of("", {"traffic.pasid=9223372036854775808"}).find("traffic.pasid"), std::string::npos);
}

TEST(Config, BufferIpaMustBeStageOnePageAligned) {
  EXPECT_NE(error_of("", {"platform.buffer_ipa=2048"}).find("platform.buffer_ipa"), std::string::npos);
  // 2 MB stage-1 leaves need a 2 MB aligned buffer start.
  EXPECT_NE(error_of("", {"platform.stage1_page_bytes=2097152", "platform.buffer_ipa=4096"}).find("platform.buffer_ipa"),
            std::string::npos);
  EXPECT_EQ(error_of("", {"platform.buffer_ipa=8192"}), "");
}

TEST(Config, VtdRidPasidMustLieInThePasidDirectory) {
  // PDTS=0: 2^(0+7) directory entries x 64 PASIDs = 8192 PASIDs (0..8191).
  const std::string e = error_of("", {"iommu.vendor=vtd", "driver.vtd.pdts=0", "driver.vtd.rid_pasid=8192"});
  EXPECT_NE(e.find("driver.vtd.rid_pasid"), std::string::npos) << e;
  EXPECT_EQ(error_of("", {"iommu.vendor=vtd", "driver.vtd.pdts=0", "driver.vtd.rid_pasid=8191"}), "");
}

// Errors found before any module exists (read_params) or in the first lane's config, so
// each call leaves nothing behind in the SystemC hierarchy.
TEST(Config, ExtremesAreBoundedByWhatCanRun) {
  EXPECT_NE(error_of("", {"iommu.smmuv3.iotlb.entries=16777216"}).find("iommu.smmuv3.iotlb.entries"), std::string::npos);
  EXPECT_NE(error_of("", {"iommu.vendor=amdvi", "iommu.amdvi.gpa_cache.entries=16777216"})
                .find("iommu.amdvi.gpa_cache.entries"),
            std::string::npos);
  // Fully associative (ways 0) with more than 1024 entries: every lookup searches them all.
  EXPECT_NE(error_of("", {"iommu.vendor=vtd", "iommu.vtd.iotlb.entries=4096", "iommu.vtd.iotlb.ways=0"})
                .find("iommu.vtd.iotlb.ways"),
            std::string::npos);
  EXPECT_NE(error_of("", {"memory.latency_cycles=100000"}).find("memory.latency_cycles"), std::string::npos);
  // 10000 cycles at 1 GHz = 10 us per read; 48 reads = 480 us > the default 100 us timeout.
  const std::string slow = error_of("", {"memory.latency_cycles=10000"});
  EXPECT_NE(slow.find("memory.latency_cycles"), std::string::npos) << slow;
  EXPECT_NE(slow.find("driver.sync_timeout_us"), std::string::npos) << slow;
  EXPECT_NE(error_of("", {"sim.max_sim_time_us=-1"}).find("sim.max_sim_time_us"), std::string::npos);
}

TEST(Config, SlowMemoryRunsWithALongerBarrierTimeout) {
  // 10 us per read x 48 = 480 us <= 500 us.
  EXPECT_EQ(error_of("", {"memory.latency_cycles=10000", "driver.sync_timeout_us=500"}), "");
}

TEST(Config, LargestCachesAreAccepted) {
  std::vector<std::string> big{"iommu.vendor=vtd"};
  for (const char* c : {"context_cache", "pasid_cache", "iotlb", "fs_psc", "ss_psc", "gpa_cache"})
    big.push_back(std::string("iommu.vtd.") + c + ".entries=65536");
  EXPECT_EQ(error_of("", big), "");
}

TEST(Config, NonRegularOrOversizeFilesAreRefused) {
  EXPECT_NE(error_of("/dev/zero", {}).find("/dev/zero: not a regular file"), std::string::npos);
  const std::string big = ::testing::TempDir() + "big.json";
  {
    std::ofstream out(big);
    out << "{}";
    out << std::string(iommusim::platforms::kMaxConfigFileBytes, ' ');
  }
  EXPECT_NE(error_of(big, {}).find("config file limit"), std::string::npos);
  std::remove(big.c_str());
}

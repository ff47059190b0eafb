// Runs with the PCIe link and several endpoints per lane (models/pcie, traffic.endpoints),
// through the iommusim binary as a user would.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/run_cli.h"

namespace {
using iommusim::test::CliRun;
using iommusim::test::read_json;
using iommusim::test::run_cli;
using iommusim::test::stat;

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Three endpoints on one link: a 64 B random reader/writer with a PASID, a 4 KB sequential
// writer and a 16 KB reader; 1500 DMAs each, one vendor.
const std::string kThree =
    " -p iommu.vendor=smmuv3 -p pcie.enabled=true -p traffic.transactions=1500"
    " -p 'traffic.endpoints=[{\"requester_id\": 16, \"pasid\": 5},"
    " {\"requester_id\": 17, \"transfer_bytes\": 4096, \"pattern\": \"sequential\", \"read_fraction\": 0},"
    " {\"requester_id\": 18, \"transfer_bytes\": 16384, \"read_fraction\": 1, \"outstanding\": 4}]'";
}  // namespace

TEST(PcieRuns, EachEndpointOfALaneHasItsOwnStats) {
  const std::string a = ::testing::TempDir() + "pcie_three_a", b = ::testing::TempDir() + "pcie_three_b";
  CliRun r = run_cli("run --force -o " + a + kThree);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("PCIe payload up / down"), std::string::npos) << r.out;
  const auto stats = read_json(a + "/stats.json");
  for (const char* ep : {"ep0", "ep1", "ep2"}) {
    const std::string pre = std::string("smmuv3.endpoint.") + ep;
    EXPECT_EQ(stat(stats, pre + ".transactions"), 1500) << ep;
    EXPECT_EQ(stat(stats, pre + ".faults"), 0) << ep;
    EXPECT_EQ(stat(stats, pre + ".latency", "count"), 1500) << ep;
    EXPECT_GT(stat(stats, pre + ".link_latency", "mean"), 0) << ep;
    EXPECT_GT(stat(stats, pre + ".translation_latency", "mean"), 0) << ep;
    EXPECT_GT(stat(stats, pre + ".memory_latency", "mean"), 0) << ep;
  }
  // What each moved, each way: ep1 only writes 4 KB, ep2 only reads 16 KB.
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.ep1.up_bytes"), 1500 * 4096);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.ep1.down_bytes"), 0);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.ep2.down_bytes"), 1500 * 16384);
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.ep2.up_bandwidth"), 0);
  EXPECT_GT(stat(stats, "smmuv3.endpoint.ep2.down_bandwidth"), 0);
  EXPECT_GT(stat(stats, "smmuv3.endpoint.ep0.up_bandwidth"), 0);
  EXPECT_GT(stat(stats, "smmuv3.endpoint.ep0.down_bandwidth"), 0);
  // The lane's totals, and the link carrying every byte of them.
  EXPECT_EQ(stat(stats, "smmuv3.endpoint.transactions"), 4500);
  EXPECT_EQ(stat(stats, "smmuv3.pcie.up.payload_bytes"), stat(stats, "smmuv3.endpoint.up_bytes"));
  EXPECT_EQ(stat(stats, "smmuv3.pcie.down.payload_bytes"), stat(stats, "smmuv3.endpoint.down_bytes"));
  // Gen3 x8 carries at most 63 Gb/s of wire each way.
  EXPECT_LT(stat(stats, "smmuv3.pcie.down.bandwidth"), 63.1);
  EXPECT_LE(stat(stats, "smmuv3.pcie.down.utilisation"), 1.0);
  // Every page each endpoint touched was checked: 1500 + 1500 + 1500 x 4 pages.
  EXPECT_EQ(stat(stats, "smmuv3.oracle.checked"), 1500 + 1500 + 1500 * 4);
  EXPECT_EQ(stat(stats, "smmuv3.oracle.violations"), 0);
  // Same config and seed: the same bytes.
  ASSERT_EQ(run_cli("run --force -o " + b + kThree).exit_code, 0);
  EXPECT_EQ(file_text(a + "/stats.json"), file_text(b + "/stats.json"));
}

// A 1 MiB transfer is 256 pages, each translated on its own: the oracle checks every one,
// with the link and without it.
TEST(PcieRuns, MegabyteTransfersAreTranslatedPageByPage) {
  for (const char* link : {"true", "false"}) {
    const std::string dir = ::testing::TempDir() + "pcie_mb_" + link;
    CliRun r = run_cli("run --force -o " + dir + " -p pcie.enabled=" + link +
                       " -p traffic.transfer_bytes=1048576 -p traffic.transactions=40");
    ASSERT_EQ(r.exit_code, 0) << link << "\n" << r.out;
    const auto stats = read_json(dir + "/stats.json");
    for (const char* v : {"smmuv3", "vtd", "amdvi"}) {
      const std::string lane = v;
      EXPECT_EQ(stat(stats, lane + ".endpoint.transactions"), 40) << lane << " link " << link;
      EXPECT_EQ(stat(stats, lane + ".endpoint.faults"), 0) << lane << " link " << link;
      EXPECT_EQ(stat(stats, lane + ".oracle.checked"), 40 * 256) << lane << " link " << link;
      EXPECT_EQ(stat(stats, lane + ".oracle.violations"), 0) << lane << " link " << link;
      EXPECT_EQ(stat(stats, lane + ".endpoint.bytes"), 40.0 * 1048576) << lane << " link " << link;
    }
  }
}

TEST(PcieRuns, BadValuesNameTheirKeyAndExitTwo) {
  const std::string out = " -o " + ::testing::TempDir() + "pcie_bad";
  const std::pair<std::string, std::string> cases[] = {
      {"-p pcie.width=3", "pcie.width"},
      {"-p pcie.generation=2", "pcie.generation"},
      {"-p pcie.max_payload_bytes=100", "pcie.max_payload_bytes"},
      {"-p pcie.rcb_bytes=32", "pcie.rcb_bytes"},
      {"-p pcie.completion_split=huge", "pcie.completion_split"},
      {"-p pcie.posted_data_credits=4", "posted_data_credits"},
      {"-p pcie.link_latency_ns=-1", "pcie.link_latency_ns"},
      {"-p traffic.transfer_bytes=33554432", "traffic.transfer_bytes"},
      {"-p traffic.endpoints=5", "traffic.endpoints"},
      {"-p 'traffic.endpoints=[5]'", "traffic.endpoints[0]"},
      {"-p 'traffic.endpoints=[{\"window_iova\": 0}]'", "traffic.endpoints[0].window_iova"},
      {"-p 'traffic.endpoints=[{\"requester_id\": 17}, {\"bogus\": 1}]'", "traffic.endpoints[1].bogus"},
      {"-p 'traffic.endpoints=[{\"requester_id\": 17}, {\"transfer_bytes\": 0}]'", "traffic.endpoints[1].transfer_bytes"},
      {"-p 'traffic.endpoints=[{\"requester_id\": 17}, {\"requester_id\": 17}]'", "traffic.endpoints[1].requester_id"},
      {"-p 'traffic.endpoints=[{\"requester_id\": 17}, {\"requester_id\": 99999}]' -p iommu.vendor=vtd",
       "traffic.endpoints[1].requester_id"},
  };
  for (const auto& [args, key] : cases) {
    CliRun r = run_cli("run " + args + out);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(key), std::string::npos) << args << "\n" << r.out;
  }
}

// The invalidation log's trapped-path parts (platforms/driver/driver.h): a native log keeps
// its stats and JSON as they were; a trapped log adds the five trapped parts.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platforms/driver/driver.h"

namespace iommusim::driver {
namespace {

InvalidationRecord trapped_record() {
  InvalidationRecord r;
  r.op = "unmap";
  r.commands = 2;
  r.software_ps = 1000;
  r.sync_ps = 2000;
  r.trap_ps = 3000;
  r.vmm_ps = 4000;
  r.host_kernel_ps = 5000;
  r.host_queue_ps = 6000;
  r.return_ps = 7000;
  r.total_ps = 28000;
  return r;
}

TEST(InvalidationLog, PartsAddUpIncludingTrappedOnes) {
  EXPECT_EQ(trapped_record().parts_ps(), 28000u);
}

TEST(InvalidationLog, NativeLogRegistersNoTrappedParts) {
  InvalidationLog log;
  log.add(trapped_record());
  common::StatRegistry reg;
  log.register_stats(reg, "v.driver.invalidation");
  EXPECT_NE(reg.find_histogram("v.driver.invalidation.sync"), nullptr);
  for (const char* part : {"trap", "vmm", "host_kernel", "host_queue", "return"})
    EXPECT_EQ(reg.find_histogram(std::string("v.driver.invalidation.") + part), nullptr) << part;
  EXPECT_FALSE(log.to_json()[0].contains("trap_ns"));
}

TEST(InvalidationLog, TrappedLogRegistersAndRecordsItsParts) {
  InvalidationLog log;
  log.set_trapped_parts(true);
  log.add(trapped_record());
  common::StatRegistry reg;
  log.register_stats(reg, "v@trapped.driver.invalidation");
  const common::Histogram* h = reg.find_histogram("v@trapped.driver.invalidation.host_queue");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->count(), 1u);
  EXPECT_EQ(h->max(), 6000u);
  EXPECT_EQ(reg.find_histogram("v@trapped.driver.invalidation.return")->max(), 7000u);
  const nlohmann::json j = log.to_json()[0];
  EXPECT_DOUBLE_EQ(j.at("trap_ns").get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(j.at("host_kernel_ns").get<double>(), 5.0);
}

}  // namespace
}  // namespace iommusim::driver

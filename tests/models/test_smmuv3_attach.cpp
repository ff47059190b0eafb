// SMMUv3 host driver: an attach that would replace a StreamID's whole STE while other
// SubstreamIDs use it is refused, so no PASID's stage 2 or CD table (nor its ATC entries)
// changes under it. Linux: arm_smmu_attach_dev and arm_smmu_attach_dev_nested return
// EBUSY when arm_smmu_ssids_in_use; arm_smmu_set_pasid cannot change the STE (EINVAL).
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kSid = 0x10;

std::array<uint8_t, 64> ste(Harness& h) {
  std::array<uint8_t, 64> w{};
  h.memory.read(h.drv.ste_address(kSid), w.data(), 64);
  return w;
}

TEST(SmmuAttach, AnAttachReplacingTheSteOfOtherPasidsIsRefused) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const auto [parent_a, nested_a] = h.make_nested();
    const auto [parent_b, nested_b] = h.make_nested();
    std::string why;
    const auto nested_a2 = h.drv.create_domain(DomainKind::Nested, parent_a, &why);
    ASSERT_TRUE(nested_a2.has_value()) << why;
    const DomainId s1 = h.make_domain(DomainKind::Stage1);

    IOMMUSIM_ASSERT_OK(h.drv.attach(kSid, 1u, nested_a));
    const auto before = ste(h);
    // PASID 2 on a nested domain over another parent: the STE's stage 2 would change for
    // PASID 1 too.
    driver::Status s = h.drv.attach(kSid, 2u, nested_b);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.error.find("EINVAL"), std::string::npos) << s.error;
    // A stage-1 (S1-only STE) PASID over the nested STE, and the RID on a stage-1 domain.
    EXPECT_FALSE(h.drv.attach(kSid, 3u, s1).ok);
    EXPECT_FALSE(h.drv.attach(kSid, std::nullopt, s1).ok);
    // The RID on a stage-2 domain: SSIDs in use, EBUSY.
    s = h.drv.attach(kSid, std::nullopt, parent_b);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.error.find("EBUSY"), std::string::npos) << s.error;
    EXPECT_EQ(ste(h), before) << "a refused attach leaves the STE as it was";
    // Over the same parent the STE stays: PASID 2 joins.
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSid, 2u, *nested_a2));
    EXPECT_EQ(ste(h), before);
    // Once PASID 1 and 2 are gone, PASID 2 may move to parent B.
    IOMMUSIM_ASSERT_OK(h.drv.detach(kSid, 1u));
    IOMMUSIM_ASSERT_OK(h.drv.detach(kSid, 2u));
    IOMMUSIM_ASSERT_OK(h.drv.attach(kSid, 2u, nested_b));
    EXPECT_NE(ste(h), before);
  });
}

}  // namespace
}  // namespace iommusim::test

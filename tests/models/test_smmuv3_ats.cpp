// SMMUv3 with ATS (docs/ats.md): an endpoint's ATC in front of the SMMU, over a PCIe link.
// The checks shared by every vendor are in ats_fixture.h; the SMMU's part of an ATC hit is
// its request pipeline (2 cycles at 1 GHz) and a config-cache lookup (3 cycles) for
// STE.EATS.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "ats_fixture.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

using AtsSmmu = AtsHarness<smmuv3::Smmuv3, smmuv3::Smmuv3Config, driver::Smmuv3Driver, driver::Smmuv3DriverConfig>;

TEST(SmmuAts, AtcHitAvoidsTheSmmu) {
  AtsSmmu h(smmu_config(), ats_endpoint(2));
  h.run([](AtsSmmu& h) { check_atc_hit_avoids_the_iommu(h, 2000 + 3000); });
}

TEST(SmmuAts, StrictUnmapWaitsForTheAtcInvalidation) {
  AtsSmmu h(smmu_config(), ats_endpoint(1));
  h.run([](AtsSmmu& h) { check_strict_unmap_waits_for_the_atc(h); });
}

TEST(SmmuAts, UnansweredAtcInvalidationFailsTheSync) {
  AtsSmmu h(smmu_config(), ats_endpoint(1, /*respond=*/false));
  h.run([](AtsSmmu& h) {
    // The attach cleans the master's ATC (Linux arm_smmu_enable_ats): CFGI_STE,
    // CMD_ATC_INV, CMD_SYNC; the device never answers.
    IOMMUSIM_ASSERT_OK(h.drv.init());
    std::string why;
    const auto d = h.drv.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(d.has_value()) << why;
    IOMMUSIM_ASSERT_OK(h.drv.map(*d, kAtsIova, kAtsPa, kPage, {}, kPage));
    h.drv.enable_ats(kAtsRid);
    const uint64_t t0 = common::now_ps();
    const driver::Status s = h.drv.attach(kAtsRid, std::nullopt, *d);
    ASSERT_FALSE(s.ok);
    EXPECT_NE(s.error.find("CERROR_ATC_INV_SYNC"), std::string::npos) << s.error;
    // At the error: CMDQ_CONS.ERR = CERROR_ATC_INV_SYNC (3), GERROR.CMDQ_ERR toggled to 1.
    const size_t at = s.error.find("CMDQ_CONS=0x");
    ASSERT_NE(at, std::string::npos) << s.error;
    const uint64_t cons = std::stoull(s.error.substr(at + 12), nullptr, 16);
    EXPECT_EQ((cons >> 24) & 0x7F, 3u);
    EXPECT_NE(s.error.find("GERROR=0x1"), std::string::npos) << s.error;
    // After atc_inv_timeout_ns (50 us), before the driver's own 100 us timeout.
    const uint64_t elapsed = common::now_ps() - t0;
    EXPECT_GE(elapsed, 50000000u);
    EXPECT_LT(elapsed, 100000000u);
    EXPECT_EQ(h.ep.atc()->invalidations(), 1u);
  });
}

TEST(SmmuAts, OracleCatchesADeviceInvalidationLeftOut) {
  AtsSmmu h(smmu_config(), ats_endpoint_running());
  h.run([](AtsSmmu& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/true); });
}

TEST(SmmuAts, WithTheDeviceInvalidationLaterDmasFault) {
  AtsSmmu h(smmu_config(), ats_endpoint_running());
  h.run([](AtsSmmu& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/false); });
}

TEST(SmmuAts, EatsZeroRefusesTranslationRequestsAndTranslatedDmas) {
  Harness h;
  h.run([](Harness& h) {
    attach_devices_without_and_with_ats(h);   // device 1: STE.EATS clear; device 2: set
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t data = 0;
    tlm::tlm_response_status st;

    // EATS = 0: Unsupported Request + F_BAD_ATS_TREQ; Translated: abort + F_TRANSL_FORBIDDEN.
    common::DmaAttributes a = ats_request(h, common::AtsType::TranslationRequest, 1, kAtsIova, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(a.response, IommuResponse::Aborted);
    a = ats_request(h, common::AtsType::Translated, 1, kAtsPa, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(a.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].id, EventId::F_BAD_ATS_TREQ);
    EXPECT_EQ(ev[0].sid, 1u);
    EXPECT_EQ(ev[1].id, EventId::F_TRANSL_FORBIDDEN);
    EXPECT_EQ(ev[1].sid, 1u);

    check_ats_device_served(h, 2);
    EXPECT_EQ(h.events().size(), 2u);
  });
}

// IHI 0070 §5.2, STE.Config: a bypass STE (0b100) denies ATS as though EATS were 0b00,
// with the events, whatever its EATS; an abort STE (0b000) denies it with no event.
TEST(SmmuAts, BypassAndAbortStesDenyAtsWhateverTheirEats) {
  Harness h;
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    const DomainId d = h.make_domain(DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, kAtsIova, kAtsPa, kPage, {}, kPage));
    h.drv.enable_ats(2);
    IOMMUSIM_ASSERT_OK(h.drv.attach(2, std::nullopt, d));   // STE.EATS = 1
    auto rewrite_ste = [&](smmuv3::SteConfig config) {
      smmuv3::SteWords w{};
      h.memory.read(h.drv.ste_address(2), w.data(), sizeof w);
      std::string why;
      auto ste = smmuv3::decode_ste(w, &why);
      ASSERT_TRUE(ste) << why;
      ASSERT_EQ(ste->eats, 1u);
      ste->config = config;
      w = smmuv3::encode_ste(*ste);
      h.memory.write(h.drv.ste_address(2), w.data(), sizeof w);
      IOMMUSIM_ASSERT_OK(h.drv.submit({smmuv3::cmd_cfgi_ste(2, true)}, "cfgi"));
    };
    uint64_t data = 0;
    tlm::tlm_response_status st;
    rewrite_ste(smmuv3::SteConfig::Bypass);
    common::DmaAttributes a = ats_request(h, common::AtsType::TranslationRequest, 2, kAtsIova, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    a = ats_request(h, common::AtsType::Translated, 2, kAtsPa, &data, &st);
    EXPECT_EQ(a.response, IommuResponse::Fault);
    auto ev = h.events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].id, EventId::F_BAD_ATS_TREQ);
    EXPECT_EQ(ev[1].id, EventId::F_TRANSL_FORBIDDEN);

    rewrite_ste(smmuv3::SteConfig::Abort);
    ats_request(h, common::AtsType::TranslationRequest, 2, kAtsIova, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    ats_request(h, common::AtsType::Translated, 2, kAtsPa, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(h.events().size(), 2u) << "an abort STE records no event";
  });
}

// Two work queues of one device share its ATC (ats_fixture.h, check_shared_atc_invalidations).
TEST(SmmuAts, SharedAtcDropsOnlyTheInvalidatedPasidsEntriesAndEveryOneWithoutPasid) {
  AtsSmmu h(smmu_config(), shared_ats_queue(1, 1), shared_ats_queue(2, 2));
  h.run([](AtsSmmu& h) { check_shared_atc_invalidations(h); }, sc_core::sc_time(2, sc_core::SC_MS));
}

TEST(SmmuAts, OracleCatchesASharedAtcsPasidInvalidationLeftOut) {
  AtsSmmu h(smmu_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsSmmu& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/true); });
}

TEST(SmmuAts, WithTheSharedAtcsPasidInvalidationOnlyThatQueueFaults) {
  AtsSmmu h(smmu_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsSmmu& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/false); });
}

}  // namespace
}  // namespace iommusim::test

// AMD IOMMU with ATS (docs/ats.md): an endpoint's ATC (the device's IOTLB, in AMD's words)
// in front of the IOMMU, over a PCIe link. The checks shared by every vendor are in
// ats_fixture.h; the AMD IOMMU's part of an ATC hit is its request pipeline (2 cycles at
// 1 GHz) and a DTE-cache lookup (3 cycles) for DTE.I.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "amdvi_fixture.h"
#include "ats_fixture.h"

namespace iommusim::test {
namespace {

using AtsAmd = AtsHarness<amdvi::AmdVi, amdvi::AmdViConfig, driver::AmdViDriver, driver::AmdViDriverConfig>;

TEST(AmdAts, AtcHitAvoidsTheIommu) {
  AtsAmd h(amd_config(), ats_endpoint(2));
  h.run([](AtsAmd& h) { check_atc_hit_avoids_the_iommu(h, 2000 + 3000); });
}

TEST(AmdAts, StrictUnmapWaitsForTheIotlbInvalidation) {
  AtsAmd h(amd_config(), ats_endpoint(1));
  h.run([](AtsAmd& h) { check_strict_unmap_waits_for_the_atc(h); });
}

TEST(AmdAts, OracleCatchesADeviceInvalidationLeftOut) {
  AtsAmd h(amd_config(), ats_endpoint_running());
  h.run([](AtsAmd& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/true); });
}

TEST(AmdAts, WithTheDeviceInvalidationLaterDmasFault) {
  AtsAmd h(amd_config(), ats_endpoint_running());
  h.run([](AtsAmd& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/false); });
}

TEST(AmdAts, UnansweredIotlbInvalidationLogsIotlbInvTimeout) {
  driver::AmdViDriverConfig dc;
  dc.inv_timeout = 1;                  // Control.InvTimeOut = 001b: 1 ms
  dc.timing.sync_timeout_us = 3000;    // the driver waits longer than that
  AtsAmd h(amd_config(), ats_endpoint(1, /*respond=*/false), pcie::LinkConfig{}, dc);
  h.run([](AtsAmd& h) {
    // The attach flushes the device's IOTLB (Linux device_flush_dte); it never answers.
    IOMMUSIM_ASSERT_OK(h.drv.init());
    std::string why;
    const auto d = h.drv.create_domain(DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(d.has_value()) << why;
    IOMMUSIM_ASSERT_OK(h.drv.map(*d, kAtsIova, kAtsPa, kPage, {}, kPage));
    h.drv.enable_ats(kAtsRid);
    const uint64_t t0 = common::now_ps();
    const driver::Status s = h.drv.attach(kAtsRid, std::nullopt, *d);
    ASSERT_FALSE(s.ok);
    EXPECT_NE(s.error.find("IOTLB_INV_TIMEOUT"), std::string::npos) << s.error;
    EXPECT_EQ(h.drv.events_seen(EventCode::IotlbInvTimeout), 1u);
    // COMPLETION_WAIT completed at the 1 ms timeout, the driver saw it on its next poll.
    const uint64_t elapsed = common::now_ps() - t0;
    EXPECT_GE(elapsed, 1000000000u);
    EXPECT_LT(elapsed, 1010000000u);
  });
}

TEST(AmdAts, DteIZeroRefusesTranslationRequestsAndTranslatedDmas) {
  AmdHarness h;
  h.run([](AmdHarness& h) {
    attach_devices_without_and_with_ats(h);   // device 1: DTE.I clear; device 2: set
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t data = 0;
    tlm::tlm_response_status st;
    const size_t before = h.events().size();

    common::DmaAttributes a = ats_request(h, common::AtsType::TranslationRequest, 1, kAtsIova, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    a = ats_request(h, common::AtsType::Translated, 1, kAtsPa, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(a.response, IommuResponse::Fault);
    const auto ev = h.events();
    ASSERT_EQ(ev.size(), before + 2);
    EXPECT_EQ(ev[before].code, EventCode::InvalidDeviceRequest);
    EXPECT_EQ(ev[before].device_id, 1u);
    EXPECT_EQ(ev[before].type, 1u);   // a device with I = 0
    EXPECT_TRUE(ev[before].tr);
    EXPECT_EQ(ev[before + 1].code, EventCode::InvalidDeviceRequest);
    EXPECT_EQ(ev[before + 1].type, 1u);
    EXPECT_FALSE(ev[before + 1].tr);

    check_ats_device_served(h, 2);
  });
}

// Two work queues of one device share its ATC (ats_fixture.h, check_shared_atc_invalidations).
TEST(AmdAts, SharedAtcDropsOnlyTheInvalidatedPasidsEntriesAndEveryOneWithoutPasid) {
  AtsAmd h(amd_config(), shared_ats_queue(1, 1), shared_ats_queue(2, 2));
  h.run([](AtsAmd& h) { check_shared_atc_invalidations(h); }, sc_core::sc_time(2, sc_core::SC_MS));
}

TEST(AmdAts, OracleCatchesASharedAtcsPasidInvalidationLeftOut) {
  AtsAmd h(amd_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsAmd& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/true); });
}

TEST(AmdAts, WithTheSharedAtcsPasidInvalidationOnlyThatQueueFaults) {
  AtsAmd h(amd_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsAmd& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/false); });
}

}  // namespace
}  // namespace iommusim::test

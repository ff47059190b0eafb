// VT-d with ATS (docs/ats.md): an endpoint's ATC in front of the remapping unit, over a
// PCIe link. The checks shared by every vendor are in ats_fixture.h; VT-d's part of an ATC
// hit is its request pipeline (2 cycles at 1 GHz) and the context- and PASID-cache
// lookups (3 cycles each) that find the context entry's DTE.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "ats_fixture.h"
#include "vtd_fixture.h"

namespace iommusim::test {
namespace {

using AtsVtd = AtsHarness<vtd::Vtd, vtd::VtdConfig, driver::VtdDriver, driver::VtdDriverConfig>;

TEST(VtdAts, AtcHitAvoidsTheRemappingUnit) {
  AtsVtd h(vtdtest::vtd_config(), ats_endpoint(2));
  h.run([](AtsVtd& h) { check_atc_hit_avoids_the_iommu(h, 2000 + 3000 + 3000); });
}

TEST(VtdAts, StrictUnmapWaitsForTheDeviceTlbInvalidation) {
  AtsVtd h(vtdtest::vtd_config(), ats_endpoint(1));
  h.run([](AtsVtd& h) { check_strict_unmap_waits_for_the_atc(h); });
}

TEST(VtdAts, OracleCatchesADeviceInvalidationLeftOut) {
  AtsVtd h(vtdtest::vtd_config(), ats_endpoint_running());
  h.run([](AtsVtd& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/true); });
}

TEST(VtdAts, WithTheDeviceInvalidationLaterDmasFault) {
  AtsVtd h(vtdtest::vtd_config(), ats_endpoint_running());
  h.run([](AtsVtd& h) { check_unmap_with_dmas_running(h, /*skip_device_invalidation=*/false); });
}

TEST(VtdAts, UnansweredDeviceTlbInvalidationSetsIte) {
  AtsVtd h(vtdtest::vtd_config(), ats_endpoint(1, /*respond=*/false));
  h.run([](AtsVtd& h) {
    const DomainId d = ats_domain(h);   // a first attach has no old entry to flush
    h.run_dmas_until(1);
    const uint64_t t0 = common::now_ps();
    const driver::Status s = h.drv.unmap(d, kAtsIova, kPage);
    ASSERT_FALSE(s.ok);
    // At the error: FSTS.ITE (bit 6), IQER.ITESID = the device's source-id.
    EXPECT_NE(s.error.find("FSTS.ITE"), std::string::npos) << s.error;
    EXPECT_NE(s.error.find("FSTS=0x40"), std::string::npos) << s.error;
    EXPECT_NE(s.error.find("device 0x10 "), std::string::npos) << s.error;
    // After devtlb_inv_timeout_ns (50 us), before the driver's own 100 us timeout.
    const uint64_t elapsed = common::now_ps() - t0;
    EXPECT_GE(elapsed, 50000000u);
    EXPECT_LT(elapsed, 100000000u);
    // The driver cleared ITE; the queue runs again.
    EXPECT_EQ(h.iommu.peek_register(vtd::reg::FSTS, 4) & 0x40, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.sync());
  });
}

TEST(VtdAts, DteClearRefusesTranslationRequestsAndTranslatedDmas) {
  vtdtest::Harness h;
  h.run([](vtdtest::Harness& h) {
    attach_devices_without_and_with_ats(h);   // device 1: context DTE clear; device 2: set
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t data = 0;
    tlm::tlm_response_status st;

    common::DmaAttributes a = ats_request(h, common::AtsType::TranslationRequest, 1, kAtsIova, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    a = ats_request(h, common::AtsType::Translated, 1, kAtsPa, &data, &st);
    EXPECT_NE(st, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(a.response, IommuResponse::Fault);
    const auto faults = h.faults();
    ASSERT_EQ(faults.size(), 2u);
    for (const auto& f : faults) {
      EXPECT_EQ(f.reason, uint8_t(vtd::FaultReason::SM_CONTEXT_DTE_CLEAR));
      EXPECT_EQ(f.sid, 1u);
    }

    check_ats_device_served(h, 2);
    EXPECT_EQ(h.faults().size(), 2u);
  });
}

// Two work queues of one device share its ATC (ats_fixture.h, check_shared_atc_invalidations).
TEST(VtdAts, SharedAtcDropsOnlyTheInvalidatedPasidsEntriesAndEveryOneWithoutPasid) {
  AtsVtd h(vtdtest::vtd_config(), shared_ats_queue(1, 1), shared_ats_queue(2, 2));
  h.run([](AtsVtd& h) { check_shared_atc_invalidations(h); }, sc_core::sc_time(2, sc_core::SC_MS));
}

TEST(VtdAts, OracleCatchesASharedAtcsPasidInvalidationLeftOut) {
  AtsVtd h(vtdtest::vtd_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsVtd& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/true); });
}

TEST(VtdAts, WithTheSharedAtcsPasidInvalidationOnlyThatQueueFaults) {
  AtsVtd h(vtdtest::vtd_config(), shared_ats_running(1), shared_ats_running(2));
  h.run([](AtsVtd& h) { check_shared_atc_pasid_invalidation_left_out(h, /*skip_device_invalidation=*/false); });
}

}  // namespace
}  // namespace iommusim::test

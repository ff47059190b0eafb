// The common model front end (common::IommuBlock), driven through the SMMU's DMA socket
// directly: accesses the endpoint never makes (crossing a 4 KB page).
#include <array>
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

constexpr uint32_t kRid = 0x12;

// Defect: a DMA crossing a 4 KB boundary translated only its first page and wrote its
// tail into the physical page after that page's PA. Each page is translated and forwarded.
TEST(SmmuFrontEnd, DmaCrossingAPageTranslatesEachPage) {
  memory::MemoryConfig keep_payload;
  keep_payload.store_dma_payload = true;   // the test reads what the DMA wrote
  Harness h(smmu_config(), driver::Smmuv3DriverConfig{}, keep_payload);
  h.run([](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    // IOVA 0x10000 -> PA 0x500000 and IOVA 0x11000 -> PA 0x900000: not contiguous.
    const DomainId d = h.stage1_device(kRid, 0x10000, 0x500000);
    ASSERT_NE(d, 0u);
    IOMMUSIM_ASSERT_OK(h.drv.map(d, 0x11000, 0x900000, kPage, {}, kPage));

    // A 64-byte write at IOVA 0x10FE0: 32 bytes in each page.
    std::array<uint8_t, 64> data;
    for (unsigned i = 0; i < 64; ++i) data[i] = uint8_t(0xA0 + i);
    tlm::tlm_generic_payload p;
    common::DmaAttributes ext;
    ext.requester_id = kRid;
    p.set_command(tlm::TLM_WRITE_COMMAND);
    p.set_address(0x10FE0);
    p.set_data_ptr(data.data());
    p.set_data_length(64);
    p.set_streaming_width(64);
    p.set_byte_enable_ptr(nullptr);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    p.set_extension(&ext);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    h.dev->b_transport(p, delay);
    p.clear_extension(&ext);
    EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(ext.response, IommuResponse::Ok);
    EXPECT_EQ(p.get_address(), 0x10FE0u);   // the initiator sees its own payload back
    EXPECT_EQ(p.get_data_length(), 64u);
    EXPECT_EQ(p.get_data_ptr(), data.data());

    std::array<uint8_t, 32> head{}, tail{}, next_frame{};
    h.memory.read(0x500FE0, head.data(), 32);
    h.memory.read(0x900000, tail.data(), 32);
    h.memory.read(0x501000, next_frame.data(), 32);
    EXPECT_EQ(std::memcmp(head.data(), data.data(), 32), 0);
    EXPECT_EQ(std::memcmp(tail.data(), data.data() + 32, 32), 0);
    EXPECT_EQ(next_frame, (std::array<uint8_t, 32>{})) << "the tail must not land after the first page's PA";

    // And a 64-byte read across the same boundary returns both halves.
    std::array<uint8_t, 64> back{};
    p.set_command(tlm::TLM_READ_COMMAND);
    p.set_address(0x10FE0);
    p.set_data_ptr(back.data());
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    p.set_extension(&ext);
    delay = sc_core::SC_ZERO_TIME;
    h.dev->b_transport(p, delay);
    p.clear_extension(&ext);
    EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(back, data);
  });
}

}  // namespace
}  // namespace iommusim::test

// The part the IOMMU model-test fixtures (smmuv3_fixture.h, vtd_fixture.h,
// amdvi_fixture.h) have in common: sparse memory, one IOMMU model, its driver and a test
// initiator on the model's DMA port, wired as platforms/system.cpp wires them, plus the
// DMA helpers, the guest layout of the nested tests and the domain set-up helpers.
// A test body runs in one SC_THREAD (run()); each gtest TEST runs in its own process, so
// each TEST builds one harness and calls run() once.
//
// A vendor fixture derives its harness from IommuHarness (CRTP: run() hands the body the
// derived harness) and adds only what is vendor-specific.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/common/dma_attributes.h"
#include "models/memory/sparse_memory.h"
#include "platforms/driver/driver.h"
#include "platforms/driver/memory_view.h"

namespace iommusim::test {

using common::IommuResponse;
using driver::DomainId;
using driver::DomainKind;
using driver::Prot;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k2M = 2ull << 20;
constexpr uint64_t k1G = 1ull << 30;

// Guest layout used by the nested tests: IPA (GPA) [0, 1 GB) is guest RAM at PA kGuestRamPa.
constexpr uint64_t kGuestRamPa = 0x40000000ull;
constexpr uint64_t kBufferIpa = 0x200000ull;   // a 2 MB region apart from the guest table pool

// A model config with every cache on (the defaults) or with the walk caches and the
// IPA (GPA) cache off (entries = 0).
template <class Config>
Config iommu_config(bool walk_caches) {
  Config c;
  if (!walk_caches) {
    c.translation.s1_walk_cache.entries = 0;
    c.translation.s2_walk_cache.entries = 0;
    c.translation.ipa_cache.entries = 0;
  }
  return c;
}

struct DmaResult {
  tlm::tlm_response_status status = tlm::TLM_INCOMPLETE_RESPONSE;
  IommuResponse response = IommuResponse::None;
  uint64_t data = 0;   // the 8 bytes read (reads only)
  bool ok() const { return status == tlm::TLM_OK_RESPONSE && response == IommuResponse::Ok; }
};

template <class Derived, class Model, class ModelConfig, class Driver, class DriverConfig>
struct IommuHarness : sc_core::sc_module {
  SC_HAS_PROCESS(IommuHarness);

  memory::SparseMemory memory;
  Model iommu;
  Driver drv;
  tlm_utils::simple_initiator_socket<IommuHarness> dev;

  // view: the driver's memory as its CPU sees it (default: `memory` itself).
  IommuHarness(const ModelConfig& cfg, const DriverConfig& drv_cfg, const memory::MemoryConfig& mem_cfg,
               sc_core::sc_module_name name, const char* model_name, driver::MemoryView* view = nullptr)
      : sc_module(name), memory("memory", mem_cfg), iommu(model_name, cfg),
        drv("driver", drv_cfg, iommu, view ? driver::DriverMemoryRef(*view) : driver::DriverMemoryRef(memory)),
        dev("dev") {
    dev.bind(iommu.dma);
    iommu.mem.bind(memory.socket);
    iommu.set_direct_memory(&memory);
    drv.mmio.bind(iommu.mmio);
    SC_THREAD(thread);
  }

  // Runs `body` in an SC_THREAD, simulates until it returns (or `limit` passes) and
  // checks that it ran to its end.
  void run(std::function<void(Derived&)> body, sc_core::sc_time limit = sc_core::sc_time(50, sc_core::SC_MS)) {
    body_ = std::move(body);
    sc_core::sc_start(limit);
    EXPECT_TRUE(started_) << "test thread never ran";
    EXPECT_TRUE(finished_) << "test body did not run to its end (blocked, or stopped by a fatal failure)";
  }

  // One blocking 8-byte DMA from requester `rid` (StreamID / source-id / DeviceID), with
  // SubstreamID / PASID `pasid` if given.
  DmaResult dma(uint32_t rid, std::optional<uint32_t> pasid, uint64_t iova, bool write, uint64_t wdata = 0) {
    tlm::tlm_generic_payload p;
    common::DmaAttributes ext;
    ext.requester_id = rid;
    ext.pasid_valid = pasid.has_value();
    ext.pasid = pasid.value_or(0);
    uint64_t buf = write ? wdata : 0;
    p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_address(iova);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&buf));
    p.set_data_length(8);
    p.set_streaming_width(8);
    p.set_byte_enable_ptr(nullptr);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    p.set_extension(&ext);
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    dev->b_transport(p, delay);
    if (delay != sc_core::SC_ZERO_TIME) sc_core::wait(delay);
    DmaResult r;
    r.status = p.get_response_status();
    r.response = ext.response;
    r.data = write ? 0 : buf;
    EXPECT_EQ(p.get_address(), iova) << "the initiator must see its own address back";
    p.clear_extension(&ext);
    return r;
  }
  DmaResult read(uint32_t rid, uint64_t iova) { return dma(rid, std::nullopt, iova, false); }

  // Creates a Stage-2 (host) domain with guest RAM IPA [0, 1 GB) -> PA kGuestRamPa mapped
  // with `s2_page` leaves (4 KB: only the guest table pool and the buffer region are
  // mapped), and a Nested domain on it. Returns {s2, nested}.
  std::pair<DomainId, DomainId> make_nested(uint64_t s2_page = kPage) {
    const DriverConfig dc;
    std::string why;
    auto s2 = drv.create_domain(DomainKind::Stage2, std::nullopt, &why);
    EXPECT_TRUE(s2.has_value()) << why;
    if (!s2) return {0, 0};
    if (s2_page == kPage) {
      expect_ok(drv.map(*s2, dc.memory.guest_pool_ipa, kGuestRamPa + dc.memory.guest_pool_ipa,
                        dc.memory.guest_pool_bytes, {}, kPage));
      expect_ok(drv.map(*s2, kBufferIpa, kGuestRamPa + kBufferIpa, k2M, {}, kPage));
    } else {
      expect_ok(drv.map(*s2, 0, kGuestRamPa, k1G, {}, s2_page));
    }
    auto s1 = drv.create_domain(DomainKind::Nested, *s2, &why);
    EXPECT_TRUE(s1.has_value()) << why;
    return {*s2, s1.value_or(0)};
  }

  DomainId make_domain(DomainKind kind) {
    std::string why;
    auto d = drv.create_domain(kind, std::nullopt, &why);
    EXPECT_TRUE(d.has_value()) << why;
    return d.value_or(0);
  }

  // A stage-1 domain mapping one page iova -> pa, attached to rid (the common set-up).
  // Returns 0 (after recording a failure) when any step fails.
  DomainId stage1_device(uint32_t rid, uint64_t iova, uint64_t pa) {
    const DomainId d = make_domain(DomainKind::Stage1);
    const driver::Status m = drv.map(d, iova, pa, 4096, {}, 4096);
    const driver::Status a = m.ok ? drv.attach(rid, std::nullopt, d) : m;
    EXPECT_TRUE(a.ok) << a.error;
    return a.ok ? d : 0;
  }

  static void expect_ok(const driver::Status& s) { EXPECT_TRUE(s.ok) << s.error; }

  // A second IOMMU beside the harness whose run() drives the test: its own thread must
  // not end the simulation.
  void second_unit() { second_unit_ = true; }

 private:
  void thread() {
    if (second_unit_) return;
    started_ = true;
    if (body_) body_(static_cast<Derived&>(*this));
    finished_ = !::testing::Test::HasFatalFailure();
    sc_core::sc_stop();
  }

  std::function<void(Derived&)> body_;
  bool started_ = false, finished_ = false, second_unit_ = false;
};

#define IOMMUSIM_ASSERT_OK(expr)                       \
  do {                                                 \
    const ::iommusim::driver::Status st_ = (expr);     \
    ASSERT_TRUE(st_.ok) << #expr << ": " << st_.error; \
  } while (0)

#define IOMMUSIM_EXPECT_OK(expr)                       \
  do {                                                 \
    const ::iommusim::driver::Status st_ = (expr);     \
    EXPECT_TRUE(st_.ok) << #expr << ": " << st_.error; \
  } while (0)

}  // namespace iommusim::test

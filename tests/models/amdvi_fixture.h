// Shared fixture of the AMD IOMMU model tests: sparse memory, the AmdVi model, the AMD
// driver and a test initiator on the model's DMA port, wired as platforms/system.cpp
// wires them. A test body runs in one SC_THREAD (AmdHarness::run); each gtest TEST runs in
// its own process, so each TEST builds one harness and calls run() once.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/amdvi/amdvi.h"
#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"
#include "models/amdvi/structures.h"
#include "models/common/dma_attributes.h"
#include "models/memory/sparse_memory.h"
#include "models/pagetable/table_builder.h"
#include "platforms/driver/amdvi_driver.h"

namespace iommusim::test {

using amdvi::EventCode;
using amdvi::EventRecord;
using common::IommuResponse;
using driver::DomainId;
using driver::DomainKind;
using driver::Prot;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k2M = 2ull << 20;
constexpr uint64_t k1G = 1ull << 30;

// Guest layout of the nested tests: GPA [0, 1 GB) is guest RAM at SPA kGuestRamPa.
constexpr uint64_t kGuestRamPa = 0x40000000ull;
constexpr uint64_t kBufferGpa = 0x200000ull;   // a 2 MB region apart from the guest table pool

// The model with every cache on (defaults), or with the page-directory and GPA caches off.
inline amdvi::AmdViConfig amd_config(bool pdcs = true) {
  amdvi::AmdViConfig c;
  if (!pdcs) {
    c.translation.s1_walk_cache.entries = 0;
    c.translation.s2_walk_cache.entries = 0;
    c.translation.ipa_cache.entries = 0;
  }
  return c;
}

struct AmdDmaResult {
  tlm::tlm_response_status status = tlm::TLM_INCOMPLETE_RESPONSE;
  IommuResponse response = IommuResponse::None;
  uint64_t data = 0;
  bool ok() const { return status == tlm::TLM_OK_RESPONSE && response == IommuResponse::Ok; }
};

// Host page tables written straight into the sparse memory from a bump allocator (tests
// that lay out tables the driver never builds: other modes, level skips, large pages).
class RawTables : public pagetable::TableMemory {
 public:
  RawTables(memory::SparseMemory& m, uint64_t base) : m_(m), next_(base) {}
  uint64_t read_descriptor(uint64_t a) override { return m_.read64(a); }
  void write_descriptor(uint64_t a, uint64_t v) override { m_.write64(a, v); }
  uint64_t allocate_table(uint64_t bytes) override {
    const uint64_t align = bytes < 4096 ? 4096 : bytes;
    next_ = (next_ + align - 1) & ~(align - 1);
    const uint64_t a = next_;
    next_ += bytes;
    return a;
  }
 private:
  memory::SparseMemory& m_;
  uint64_t next_;
};

struct AmdHarness : sc_core::sc_module {
  SC_HAS_PROCESS(AmdHarness);

  memory::SparseMemory memory;
  amdvi::AmdVi iommu;
  driver::AmdViDriver drv;
  tlm_utils::simple_initiator_socket<AmdHarness> dev;

  explicit AmdHarness(const amdvi::AmdViConfig& cfg = amd_config(),
                      const driver::AmdViDriverConfig& drv_cfg = driver::AmdViDriverConfig{},
                      const memory::MemoryConfig& mem_cfg = memory::MemoryConfig{},
                      sc_core::sc_module_name name = "harness")
      : sc_module(name), memory("memory", mem_cfg), iommu("iommu", cfg), drv("driver", drv_cfg, iommu, memory),
        dev("dev") {
    dev.bind(iommu.dma);
    iommu.mem.bind(memory.socket);
    drv.mmio.bind(iommu.mmio);
    SC_THREAD(thread);
  }

  void run(std::function<void(AmdHarness&)> body, sc_core::sc_time limit = sc_core::sc_time(50, sc_core::SC_MS)) {
    body_ = std::move(body);
    sc_core::sc_start(limit);
    EXPECT_TRUE(started_) << "test thread never ran";
    EXPECT_TRUE(finished_) << "test body did not run to its end (blocked, or stopped by a fatal failure)";
  }

  // One blocking 8-byte DMA from DeviceID `rid` (with PASID if given).
  AmdDmaResult dma(uint32_t rid, std::optional<uint32_t> pasid, uint64_t iova, bool write, uint64_t wdata = 0) {
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
    AmdDmaResult r;
    r.status = p.get_response_status();
    r.response = ext.response;
    r.data = write ? 0 : buf;
    EXPECT_EQ(p.get_address(), iova) << "the initiator must see its own address back";
    p.clear_extension(&ext);
    return r;
  }
  AmdDmaResult read(uint32_t rid, uint64_t iova) { return dma(rid, std::nullopt, iova, false); }
  AmdDmaResult read(uint32_t rid, uint32_t pasid, uint64_t iova) { return dma(rid, pasid, iova, false); }

  // Event-log records between 0 and the model's tail. The driver zeroes records it
  // consumes (also while it waits on a submit), so read them before the next submit.
  std::vector<EventRecord> events() {
    const uint64_t tail = iommu.peek_register(amdvi::reg::EVT_LOG_TAIL) & 0x7FFF0ull;
    std::vector<EventRecord> out;
    for (uint64_t off = 0; off < tail; off += 16) {
      amdvi::EventWords w;
      memory.read(drv.evt_log_base() + off, w.data(), 16);
      out.push_back(amdvi::decode_event(w));
    }
    return out;
  }

  // Writes a DTE straight into the device table (tests of encodings the driver never
  // writes) and drops the model's cached copy.
  void write_dte(uint32_t rid, const amdvi::DeviceTableEntry& e) {
    const amdvi::DteWords w = amdvi::encode_dte(e);
    memory.write(drv.dte_address(rid), w.data(), 32);
    expect_ok(drv.submit({amdvi::cmd_inv_devtab_entry(uint16_t(rid))}, "test"));
  }

  DomainId make_domain(DomainKind kind) {
    std::string why;
    auto d = drv.create_domain(kind, std::nullopt, &why);
    EXPECT_TRUE(d.has_value()) << why;
    return d.value_or(0);
  }

  // A v1 host domain with GPA [0, 1 GB) -> SPA kGuestRamPa (4 KB leaves over the guest
  // table pool and the buffer region, or larger leaves over all of it), and a Nested
  // domain on it. Returns {host, nested}.
  std::pair<DomainId, DomainId> make_nested(uint64_t host_page = kPage) {
    const driver::AmdViDriverConfig dc;
    std::string why;
    auto s2 = drv.create_domain(DomainKind::Stage2, std::nullopt, &why);
    EXPECT_TRUE(s2.has_value()) << why;
    if (!s2) return {0, 0};
    if (host_page == kPage) {
      expect_ok(drv.map(*s2, dc.memory.guest_pool_ipa, kGuestRamPa + dc.memory.guest_pool_ipa,
                        dc.memory.guest_pool_bytes, {}, kPage));
      expect_ok(drv.map(*s2, kBufferGpa, kGuestRamPa + kBufferGpa, k2M, {}, kPage));
    } else {
      expect_ok(drv.map(*s2, 0, kGuestRamPa, k1G, {}, host_page));
    }
    auto s1 = drv.create_domain(DomainKind::Nested, *s2, &why);
    EXPECT_TRUE(s1.has_value()) << why;
    return {*s2, s1.value_or(0)};
  }

  static void expect_ok(const driver::Status& s) { EXPECT_TRUE(s.ok) << s.error; }

 private:
  void thread() {
    started_ = true;
    if (body_) body_(*this);
    finished_ = !::testing::Test::HasFatalFailure();
    sc_core::sc_stop();
  }

  std::function<void(AmdHarness&)> body_;
  bool started_ = false, finished_ = false;
};

#define AMD_ASSERT_OK(expr)                            \
  do {                                                 \
    const ::iommusim::driver::Status st_ = (expr);     \
    ASSERT_TRUE(st_.ok) << #expr << ": " << st_.error; \
  } while (0)

}  // namespace iommusim::test

// Fixture of the AMD IOMMU model tests: the shared harness of iommu_fixture.h (sparse
// memory, the model, its driver and a test initiator on the DMA port) around the AmdVi
// model and the AMD driver, plus the event log, raw DTE writes and raw host page tables.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include <systemc>

#include "iommu_fixture.h"
#include "models/amdvi/amdvi.h"
#include "models/amdvi/commands.h"
#include "models/amdvi/events.h"
#include "models/amdvi/registers.h"
#include "models/amdvi/structures.h"
#include "models/pagetable/table_builder.h"
#include "platforms/driver/amdvi_driver.h"

namespace iommusim::test {

using amdvi::EventCode;
using amdvi::EventRecord;

using AmdDmaResult = DmaResult;
constexpr uint64_t kBufferGpa = kBufferIpa;   // the nested tests' buffer region (a GPA)

// The model with every cache on (defaults), or with the page-directory and GPA caches off.
inline amdvi::AmdViConfig amd_config(bool pdcs = true) { return iommu_config<amdvi::AmdViConfig>(pdcs); }

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

struct AmdHarness : IommuHarness<AmdHarness, amdvi::AmdVi, amdvi::AmdViConfig, driver::AmdViDriver,
                                 driver::AmdViDriverConfig> {
  explicit AmdHarness(const amdvi::AmdViConfig& cfg = amd_config(),
                      const driver::AmdViDriverConfig& drv_cfg = driver::AmdViDriverConfig{},
                      const memory::MemoryConfig& mem_cfg = memory::MemoryConfig{},
                      sc_core::sc_module_name name = "harness")
      : IommuHarness(cfg, drv_cfg, mem_cfg, name, "iommu") {}

  using IommuHarness::read;
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

  // An 8-byte access to the model's register window through the hardware vIOMMU's entry
  // (AmdVi::guest_register_access: a guest's VF page, the host's VF_CNTL, or the main
  // registers), as a BAR mapped into a guest makes it. Returns what a read read.
  uint64_t register_access(uint64_t offset, bool write, uint64_t value = 0) {
    tlm::tlm_generic_payload p;
    p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_address(offset);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
    p.set_data_length(8);
    p.set_streaming_width(8);
    p.set_byte_enable_ptr(nullptr);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    iommu.guest_register_access(p);
    EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE) << std::hex << offset;
    return value;
  }

  // Writes a DTE straight into the device table (tests of encodings the driver never
  // writes) and drops the model's cached copy.
  void write_dte(uint32_t rid, const amdvi::DeviceTableEntry& e) {
    const amdvi::DteWords w = amdvi::encode_dte(e);
    memory.write(drv.dte_address(rid), w.data(), 32);
    expect_ok(drv.submit({amdvi::cmd_inv_devtab_entry(uint16_t(rid))}, "test"));
  }
};

#define AMD_ASSERT_OK(expr) IOMMUSIM_ASSERT_OK(expr)

}  // namespace iommusim::test

// Fixture of the VT-d model tests: the shared harness of iommu_fixture.h (sparse memory,
// the model, its driver and a test initiator on the DMA port) around the VT-d unit and
// the VT-d driver, wired as the VT-d lane wires them, plus the fault-recording registers.
#pragma once
#include <cstdint>
#include <vector>

#include <systemc>
#include <tlm>

#include "iommu_fixture.h"
#include "models/vtd/commands.h"
#include "models/vtd/faults.h"
#include "models/vtd/registers.h"
#include "models/vtd/vtd.h"
#include "platforms/driver/vtd_driver.h"

namespace iommusim::vtdtest {

using common::IommuResponse;
using driver::DomainId;
using driver::DomainKind;
using driver::Prot;
using test::DmaResult;
using test::k1G;
using test::k2M;
using test::kBufferIpa;
using test::kGuestRamPa;
using test::kPage;
using vtd::FaultReason;
using vtd::FaultRecord;

// A VT-d config with every cache on (the defaults) or with the paging-structure caches
// and the GPA cache off (entries = 0).
inline vtd::VtdConfig vtd_config(bool walk_caches = true) { return test::iommu_config<vtd::VtdConfig>(walk_caches); }

struct Harness : test::IommuHarness<Harness, vtd::Vtd, vtd::VtdConfig, driver::VtdDriver, driver::VtdDriverConfig> {
  explicit Harness(const vtd::VtdConfig& vtd_cfg = vtd_config(),
                   const driver::VtdDriverConfig& drv_cfg = driver::VtdDriverConfig{},
                   const memory::MemoryConfig& mem_cfg = memory::MemoryConfig{},
                   sc_core::sc_module_name name = "harness")
      : IommuHarness(vtd_cfg, drv_cfg, mem_cfg, name, "vtd") {}

  // The fault records pending in the FRCD registers (read without time), oldest first.
  std::vector<FaultRecord> faults() {
    const auto cap = vtd::reg::decode_cap(iommu.peek_register(vtd::reg::CAP));
    std::vector<FaultRecord> out;
    for (unsigned i = 0; i < cap.num_fault_records; ++i) {
      const uint64_t off = cap.fault_record_offset() + 16ull * i;
      const FaultRecord r = vtd::decode_frcd({iommu.peek_register(off), iommu.peek_register(off + 8)});
      if (r.fault) out.push_back(r);
    }
    return out;
  }
  uint32_t fsts() { return uint32_t(iommu.peek_register(vtd::reg::FSTS, 4)); }
  // A register write through the MMIO port, as the driver's own accesses go (takes time).
  void mmio_write(uint64_t off, uint64_t v, unsigned len) {
    tlm::tlm_generic_payload p;
    p.set_command(tlm::TLM_WRITE_COMMAND);
    p.set_address(off);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    p.set_data_length(len);
    p.set_streaming_width(len);
    p.set_byte_enable_ptr(nullptr);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    drv.mmio->b_transport(p, d);
    EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE) << "MMIO write at " << off;
  }
};

}  // namespace iommusim::vtdtest

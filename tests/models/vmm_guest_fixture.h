// What the vIOMMU tests (test_iommufd_vvtd.cpp, test_vamdvi.cpp, test_vsmmuv3.cpp) share
// for a guest behind the VMM: the guest RAM layout, the guest driver's config, and the
// guest-fault costs of docs/vmm.md ("Guest faults", the defaults of every vmm.<arch>) in
// cycles of the VMM's 2000 MHz clock, for their known answers.
#pragma once
#include <cstdint>

#include "platforms/vmm/trapped_mmio.h"
#include "platforms/vmm/vm.h"

namespace iommusim::test {

// 64 MiB of guest RAM at host `ram_pa`.
inline vmm::VmLayout guest_layout(uint64_t ram_pa) {
  vmm::VmLayout l;
  l.ram_pa = ram_pa;
  l.ram_bytes = 64ull << 20;
  return l;
}

// A guest driver's config: its tables and queues in guest RAM (GPA 16 MiB, 8 MiB), no
// guest pool, and no MMIO time of its own (its accesses trap: the vIOMMU charges them).
template <class DriverConfig>
DriverConfig guest_driver_config() {
  DriverConfig c;
  c.memory.table_pool_base = 16ull << 20;
  c.memory.table_pool_bytes = 8ull << 20;
  c.memory.guest_pool_ipa = 0;
  c.memory.guest_pool_bytes = 0;
  c.timing.mmio_write_ns = c.timing.mmio_read_ns = 0;
  return c;
}

// `Config`: a vIOMMU's config (a TrappedMmioConfig); `veventq_depth` 0 lets the VMM size
// the vEVENTQ after the guest's own fault log.
template <class Config>
Config guest_fault_costs(uint32_t veventq_depth = 0) {
  Config c;
  c.costs.event_irq_cycles = 4000;      // 2000 ns
  c.costs.event_report_cycles = 500;    // 250 ns per record
  c.costs.event_wakeup_cycles = 10000;  // 5000 ns
  c.costs.syscall_cycles = 1000;        // with iommufd_call: 1000 ns per read()
  c.costs.iommufd_call_cycles = 1000;
  c.costs.complete_cycles = 200;        // 100 ns per guest record
  c.costs.irq_inject_cycles = 2000;     // 1000 ns
  c.veventq_depth = veventq_depth;
  return c;
}

}  // namespace iommusim::test

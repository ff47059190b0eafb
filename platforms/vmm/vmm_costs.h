// What each step of the trapped path costs the host CPU, in cycles of the host clock
// (driver.cpu_mhz): the VM exit and entry around a trapped register access, the VMM's
// emulation of the guest's queue, and the ioctls that forward to the host kernel. The host
// driver's own work on the physical queue is its own (driver.*) and the hardware's.
// Defaults and their sources: docs/vmm.md, "Costs".
#pragma once
#include <cstdint>

namespace iommusim::vmm {

struct VmmCosts {
  uint64_t exit_cycles = 0;           // guest MMIO access -> the VMM's handler in user space
  uint64_t entry_cycles = 0;          // the handler's return -> the guest runs again
  uint64_t reg_access_cycles = 0;     // the VMM's MMIO dispatch and register emulation
  uint64_t fetch_cycles = 0;          // read one guest queue entry from guest RAM
  uint64_t decode_cycles = 0;         // decode, check and translate the IDs of one entry
  uint64_t syscall_cycles = 0;        // ioctl entry plus exit
  uint64_t iommufd_call_cycles = 0;   // iommufd's part of one call (object lookup, copies)
  uint64_t iommufd_entry_cycles = 0;  // per invalidation entry in the kernel (conversion)
  uint64_t hwpt_alloc_cycles = 0;     // IOMMU_HWPT_ALLOC of a nested HWPT (before its attach)
  uint64_t destroy_cycles = 0;        // IOMMU_DESTROY
  uint64_t complete_cycles = 0;       // completing the guest's sync (its CONS, MSI or status store)
  uint64_t iothread_wakeup_cycles = 0;   // deferred completion: the VMM's iothread wakes for a doorbell
  uint64_t ioeventfd_exit_cycles = 0;    // a doorbell the host kernel handles (ioeventfd): exit and resume
  unsigned forward_batch = 1;         // guest commands per IOMMU_HWPT_INVALIDATE (QEMU: 1)
  // Guest faults (the vEVENTQ path, docs/vmm.md "Guest faults").
  uint64_t event_irq_cycles = 0;      // the host's event interrupt -> its threaded handler runs
  uint64_t event_report_cycles = 0;   // iommufd_viommu_report_event, per record
  uint64_t event_wakeup_cycles = 0;   // the vEVENTQ's eventfd wakes the VMM's main loop
  uint64_t irq_inject_cycles = 0;     // the VMM injects the guest's event interrupt (irqfd)
};

// When the VMM runs the guest's queue (vmm.completion).
enum class VmmCompletion : uint8_t {
  Synchronous,   // inside the doorbell write's trap, as QEMU does: the guest's first poll sees its sync done
  Deferred,      // in an iothread after the doorbell write returned: the guest polls (and may trap) meanwhile
};

// A VMM bug to inject, to show that the oracle catches what it breaks (vmm.inject).
enum class VmmFault : uint8_t {
  None,
  DropTlbi,     // the guest's TLBIs are never forwarded; its CMD_SYNCs still complete
  DropAtcInv,   // the guest's ATC_INVs are never forwarded (with ATS, the device keeps stale entries)
  DropHostFlush,   // an unmap clears the host PTEs but never invalidates the host IOTLB: a virtio-iommu
                   // UNMAP (a device test hook), or a trapped lane's VMM's IOMMU_IOAS_UNMAP (vmm.inject)
  WrongVintfVmid,  // smmuv3@accelerated: the host programs the guest's VINTF with another VMID than its nest parent's
};

}  // namespace iommusim::vmm

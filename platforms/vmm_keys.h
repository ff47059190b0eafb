// The `vmm` section: which invalidation paths each vendor runs (docs/vmm.md), and what the
// trapped path's steps cost on each host architecture. Apart from system.cpp so the cost
// keys stay next to their sources.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "platforms/config_keys.h"
#include "platforms/driver/tag_policies.h"
#include "platforms/vmm/vmm_costs.h"

namespace iommusim::platforms {

inline constexpr const char* kTrappedPath = "trapped";
inline constexpr const char* kAcceleratedPath = "accelerated";
inline constexpr const char* kVirtioPath = "virtio";
// Every path of vmm.paths, in the order a list must give them (stat_names.h: kNativePath).
inline constexpr const char* kPaths[] = {"native", kTrappedPath, kAcceleratedPath, kVirtioPath};
// A path whose guest owns stage 1 nested over the host's stage 2 behind an emulated vIOMMU:
// trapped, and accelerated (the same VM, its invalidations on a hardware-read queue).
inline bool nested_guest_path(const std::string& path) { return path == kTrappedPath || path == kAcceleratedPath; }

// How the guest's virtio doorbell reaches the VMM (vmm.virtio.notify).
enum class VirtioNotify : uint8_t { Ioeventfd, Trap };

// What the host does for a guest UNMAP (vmm.virtio.host_flush).
enum class VirtioHostFlush : uint8_t { PerChunk, Domain };

// vmm.virtio: the VMM's virtio-iommu device (platforms/vmm/virtio_iommu.h).
struct VirtioSettings {
  VirtioNotify notify = VirtioNotify::Ioeventfd;
  VirtioHostFlush host_flush = VirtioHostFlush::PerChunk;
  uint16_t queue_size = 256;         // QueueNumMax (QEMU VIOMMU_DEFAULT_QUEUE_SIZE)
  uint32_t probe_size = 512;         // config probe_size (QEMU VIOMMU_PROBE_SIZE)
  uint64_t tree_cycles = 300;        // one interval-map operation of the device
  uint64_t pin_page_cycles = 200;    // pinning (or unpinning) one 4 KiB page in IOMMU_IOAS_MAP / UNMAP
};

// One element of vmm.assign: endpoint `endpoint` (traffic.endpoints index) is VM `vm`'s
// device `virt_id` (its vSID, vRID or vDeviceID), whole (its RID) or, with `pasid`, that PASID only.
struct VmAssignment {
  unsigned endpoint = 0, vm = 0;
  uint64_t virt_id = 0;
  std::optional<uint32_t> pasid;
};
inline constexpr unsigned kMaxVms = 4;   // vmm.vms

struct VmmSettings {
  std::string paths = "native";   // a comma list of kPaths, in their order
  unsigned vms = 1;                   // VMs on each trapped lane
  unsigned vcmdqs = 1;                // accelerated (SMMUv3 CMDQV): VCMDQs per VM's VINTF
  std::vector<VmAssignment> assign;   // empty: every endpoint to VM 0, its index as its virtual ID
  std::optional<unsigned> teardown_vm;   // the VM whose memory the VMM unmaps once the traffic is done
  vmm::VmmCosts arm64;        // SMMUv3 hosts
  vmm::VmmCosts x86_intel;    // VT-d hosts
  vmm::VmmCosts x86_amd;      // AMD-Vi hosts
  vmm::VmmFault inject = vmm::VmmFault::None;
  vmm::VmmCompletion completion = vmm::VmmCompletion::Synchronous;
  // Cache-tag policies of the host's nesting (docs/vmm.md, "Cache-tag policies").
  driver::AmdNestedDomainIds amd_domid = driver::AmdNestedDomainIds::PerGuestDomain;
  driver::ArmNestedVmids arm_vmid = driver::ArmNestedVmids::PerViommu;
  VirtioSettings virtio;
};

// The `guest` section: what a trapped lane's guest driver does differently from the host's.
struct GuestSettings {
  driver::AmdGcr3Tables amd_gcr3 = driver::AmdGcr3Tables::PerDevice;
  uint64_t virtio_request_cycles = 200;   // guest.virtio_request_cycles: a virtio-iommu driver's request build
};

// vmm.assign as a trapped lane applies it: the configured list, or the default one (every
// endpoint of `endpoints` whole to VM 0 with its index as virtual ID).
std::vector<VmAssignment> vm_assignment(const VmmSettings& v, size_t endpoints);

// Its keys; VmmSettings's zeros are placeholders (StructDefaults::Own).
Section<VmmSettings> vmm_keys();
Section<GuestSettings> guest_keys();

}  // namespace iommusim::platforms

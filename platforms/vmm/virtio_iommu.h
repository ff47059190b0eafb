// The VMM's virtio-iommu device (QEMU hw/virtio/virtio-iommu.c with its VFIO/iommufd
// backend), over the virtio-mmio transport: a para-virtual IOMMU whose guest sends ATTACH,
// DETACH, MAP, UNMAP and PROBE requests on a virtqueue, and whose host owns one single-stage
// paging domain per endpoint (docs/vmm.md, "virtio-iommu").
//
// What it models
// - The virtio-mmio registers (virtio spec v1.2, "MMIO Device Register Layout"): magic,
//   version 2, device ID 23, feature words, queue select / size / areas / ready, QueueNotify
//   (the doorbell), status, and the device config space at 0x100 (driver::virtio_iommu::
//   Config). Queue 0 is the request queue; queue 1 (events) is accepted and never used.
//   Every guest access traps (TrappedMmio: exit, the big lock, dispatch, entry), but with
//   `ioeventfd` QueueNotify: the host kernel takes that exit itself (ioeventfd_exit_cycles,
//   no big lock) and the device runs in the VMM's main loop after the vCPU resumed.
// - Features offered as QEMU does: VERSION_1, INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE
//   (unless probe_size is 0), BYPASS_CONFIG.
// - Per endpoint (a guest endpoint ID for an assigned device): its own IOAS and an
//   IOMMU_HWPT_ALLOC'd paging HWPT the device is attached to from the VM's start, empty, so
//   an endpoint no domain holds is blocked (config bypass 0).
// - Domains (created by their first ATTACH, freed when their last endpoint detaches, as QEMU's
//   virtio_iommu_detach) with their mappings as an interval map, and the requests as QEMU
//   answers them: ATTACH of an unknown endpoint -> NOENT, unknown flags or a bypass flag
//   unlike the domain's -> INVAL; an endpoint attached elsewhere is detached first; the
//   domain's mappings are replayed onto the new endpoint. DETACH: unknown endpoint -> NOENT,
//   not attached to that domain -> INVAL. MAP: unknown domain -> NOENT, flags outside
//   VIRTIO_IOMMU_MAP_F_MASK or a bypass domain -> INVAL; virt_start, phys_start or
//   virt_end + 1 not aligned on the page granularity -> RANGE (the spec's device
//   requirement; QEMU does not check); a 2^64-byte range or a phys_end past 2^64 - 1 ->
//   RANGE (MODEL CHOICE); an overlapping mapping -> INVAL.
//   A bypass domain's endpoints see guest RAM at IOVA = GPA (one IOMMU_IOAS_MAP of the RAM
//   slot, as QEMU's memory listener maps system memory for them).
//   UNMAP: unknown domain -> NOENT; every mapping wholly inside the range is removed; the
//   first only partly inside stops it with RANGE (what was removed before stays removed).
//   PROBE: unknown endpoint -> NOENT, else the property list (empty: NONE). A type this
//   device does not know -> UNSUPP; a readable part shorter than the type's -> DEVERR.
// - The host side of MAP and UNMAP as QEMU's virtio_iommu_notify_map_unmap does it: for each
//   endpoint of the domain, the range in naturally aligned power-of-two chunks
//   (dma_aligned_pow2_mask), one IOMMU_IOAS_MAP / IOMMU_IOAS_UNMAP per chunk (the host
//   driver's map, or its unmap with its own invalidation and sync). A MAP pins each 4 KiB
//   page in the ioctl (pin_page_cycles); a MAP of memory outside guest RAM answers IOERR and
//   stores nothing, an ioctl that fails answers IOERR (MODEL: QEMU only logs the notifier's
//   error; the mapping stays stored, as in QEMU).
// - domain_flush (vmm.virtio.host_flush = domain, MODEL EXTENSION): the idealised
//   host, which drops what a guest UNMAP removed with one domain-wide invalidation per
//   endpoint (its ASID / DID / DomainID) after clearing each chunk's PTEs without one.
// - Costs: per descriptor read fetch_cycles, per request decode_cycles, per interval-map
//   operation tree_cycles, per ioctl TrappedMmio's ioctl costs, per returned buffer
//   complete_cycles; the spans (vmm, host_kernel, host_queue) go to the guest's doorbell
//   record as every vIOMMU's do.
//
// What it does not model: the event queue and fault reporting, reserved regions (PROBE
// reports none), VIRTIO_IOMMU_F_MMIO, boot bypass (config bypass is stored, unattached
// endpoints stay blocked), interrupts (the guest polls the used
// ring, as Linux's viommu_sync_req does), device reset, virtio-pci.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/stats.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/virtio_iommu_format.h"
#include "platforms/driver/virtqueue.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/iommufd.h"
#include "platforms/vmm/trapped_mmio.h"

namespace iommusim::vmm {

// virtio-mmio register offsets (virtio spec v1.2, "MMIO Device Register Layout").
namespace virtio_mmio {
inline constexpr uint64_t kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00C,
                          kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020,
                          kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
                          kQueueReady = 0x044, kQueueNotify = 0x050, kInterruptStatus = 0x060,
                          kInterruptAck = 0x064, kStatus = 0x070, kQueueDescLow = 0x080, kQueueDescHigh = 0x084,
                          kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0A0,
                          kQueueDeviceHigh = 0x0A4, kConfigGeneration = 0x0FC, kConfig = 0x100;
inline constexpr uint32_t kMagicValue = 0x74726976;   // "virt"
inline constexpr uint32_t kVirtioIommuDeviceId = 23;
inline constexpr uint32_t kQemuVendorId = 0x554D4551;  // "QEMU"
inline constexpr uint64_t kWindowBytes = 0x200;
inline constexpr unsigned kRequestQueue = 0, kEventQueue = 1, kQueues = 2;
}  // namespace virtio_mmio

// QEMU's dma_aligned_pow2_mask(start, end, 64): the mask (size - 1) of the largest naturally
// aligned power-of-two block at `start` that ends at or before `end` (inclusive).
uint64_t aligned_pow2_mask(uint64_t start, uint64_t end);
// Calls f(iova, bytes) for each such chunk of [start, end], in order.
void for_each_pow2_chunk(uint64_t start, uint64_t end, const std::function<void(uint64_t, uint64_t)>& f);

struct VirtioIommuConfig : TrappedMmioConfig {
  uint16_t queue_size_max = 256;          // VIOMMU_DEFAULT_QUEUE_SIZE
  // The config space the guest reads: a 4 KiB granule and every larger size (QEMU: the target
  // page mask), all IOVAs and domain IDs, VIOMMU_PROBE_SIZE; bypass as the guest writes it.
  driver::virtio_iommu::Config space{~0xFFFull, 0, ~0ull, 0, ~0u, 512, 0};
  uint64_t tree_cycles = 300;             // one interval-map operation (GTree insert / lookup / remove)
  uint64_t pin_page_cycles = 200;         // pinning (and unpinning) one 4 KiB page in IOMMU_IOAS_MAP / UNMAP
  // QueueNotify handled in the host kernel (ioeventfd, costs.ioeventfd_exit_cycles): the
  // device runs in the VMM's iothread (completion must be Deferred). false: it traps.
  bool ioeventfd = false;
  // vmm.virtio.host_flush = domain (MODEL EXTENSION, an idealised host): an UNMAP's host
  // unmaps clear PTEs only, then one domain-wide invalidation per endpoint.
  bool domain_flush = false;
  // A VMM bug to inject (VmmFault::DropHostFlush): UNMAP answers OK with the host IOTLB stale.
  VmmFault inject = VmmFault::None;
};

class VirtioIommuDevice : public sc_core::sc_module, public TrappedMmio {
 public:
  tlm_utils::simple_target_socket<VirtioIommuDevice> mmio;

  // Host ioctls through `fd`, whose units hold `host` (the driver that owns the endpoints'
  // paging domains).
  VirtioIommuDevice(sc_core::sc_module_name name, const VirtioIommuConfig& cfg, GuestRam& ram, Iommufd& fd,
                    const driver::DriverBase& host);

  // Endpoint `endpoint` (its guest ID) is iommufd device `dev_id`: its IOAS and paging HWPT,
  // the device attached to it. Untimed (the VM is being built). Fails naming the call.
  driver::Status add_endpoint(uint32_t endpoint, uint32_t dev_id);
  // Observers, for tests and stats.
  uint32_t endpoint_ioas(uint32_t endpoint) const { return endpoints_.at(endpoint).ioas; }
  uint32_t endpoint_hwpt(uint32_t endpoint) const { return endpoints_.at(endpoint).hwpt; }
  std::optional<uint32_t> endpoint_domain(uint32_t endpoint) const;
  bool has_domain(uint32_t domain) const { return domains_.count(domain) != 0; }
  size_t mappings(uint32_t domain) const;
  bool driver_ok() const { return status_ & kStatusDriverOk; }
  bool broken() const { return broken_; }
  // When the last used entry was written: the barrier of the requests it completes.
  uint64_t last_completion_ps() const override { return used_write_ps_; }
  uint64_t requests(driver::virtio_iommu::ReqType t) const { return by_type_[size_t(t)].value(); }
  uint64_t statuses(driver::virtio_iommu::Status s) const { return by_status_[size_t(s)].value(); }
  // The host ioctls and host queue entries of the last request.
  uint64_t last_request_ioctls() const { return last_ioctls_; }
  uint64_t last_request_host_commands() const { return last_host_commands_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

  // The bytes of the config space (driver::virtio_iommu::Config).
  driver::virtio_iommu::Config config_space() const;

 private:
  static constexpr uint32_t kStatusDriverOk = 4;   // VIRTIO_CONFIG_S_DRIVER_OK
  struct Endpoint {
    uint32_t dev_id = 0, ioas = 0, hwpt = 0;
    std::optional<uint32_t> domain;
  };
  struct Mapping {
    uint64_t end = 0, phys = 0;
    uint32_t flags = 0;
  };
  struct Domain {
    bool bypass = false;
    std::set<uint32_t> endpoints;
    std::map<uint64_t, Mapping> mappings;   // by virt_start
  };
  struct Queue {
    uint16_t num = 0;
    bool ready = false;
    uint64_t desc = 0, driver = 0, device = 0;
    std::unique_ptr<driver::virtq::DeviceSide> side;
  };
  using Status = driver::virtio_iommu::Status;
  using Request = driver::virtio_iommu::Request;

  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay);
  uint32_t read_register(uint64_t off) const;
  void write_register(uint64_t off, uint32_t v);
  bool run_queue() override;
  bool write_guest_event(const Vevent&) override { return false; }   // no event queue

  // One popped chain: its request read, handled, its tail (and PROBE properties) written.
  void serve(const driver::virtq::DeviceSide::Chain& c);
  void stop_device();   // QEMU virtio_error: a malformed chain; nothing is served until reset
  Status handle(const Request& r, uint8_t* props, size_t props_bytes);
  Status attach(const Request& r);
  Status detach(const Request& r);
  Status map(const Request& r);
  Status unmap(const Request& r);
  // Removes `ep` from its domain (its mappings unmapped from its IOAS), freeing the domain
  // when it was the last.
  Status detach_endpoint(uint32_t ep);
  // A bypass domain's endpoint: all of guest RAM mapped at IOVA = GPA (or unmapped again).
  Status bypass_ram(const Endpoint& ep, bool map);
  // The host side of one mapping for one endpoint, chunk by chunk.
  Status notify_map(const Endpoint& ep, uint64_t start, const Mapping& m);
  Status notify_unmap(const Endpoint& ep, uint64_t start, const Mapping& m, bool flush = true);
  // Copies `len` bytes at `offset` of the chain's writable part from/to `buf`.
  void write_writable(const driver::virtq::DeviceSide::Chain& c, size_t offset, const uint8_t* buf, size_t len);

  VirtioIommuConfig cfg_;
  GuestRam& ram_;
  Iommufd& fd_;
  uint64_t driver_features_ = 0;
  uint32_t device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0, status_ = 0;
  uint8_t bypass_ = 0;
  std::array<Queue, virtio_mmio::kQueues> queues_;
  std::map<uint32_t, Endpoint> endpoints_;
  std::map<uint32_t, Domain> domains_;
  driver::virtq::DeviceSide::Chain chain_;   // reused per pop
  std::vector<uint8_t> writable_;            // the current request's writable part, reused
  bool broken_ = false;
  uint64_t used_write_ps_ = 0;
  uint64_t ioctl_count_ = 0, last_ioctls_ = 0, last_host_commands_ = 0;
  common::Counter malformed_;
  std::array<common::Counter, 6> by_type_;   // by ReqType value (0 unused)
  std::array<common::Counter, driver::virtio_iommu::kStatusCount> by_status_;
  common::Histogram ioctls_per_request_, host_commands_per_request_;
  common::Counter pinned_pages_;
};

}  // namespace iommusim::vmm

// A guest's virtio-iommu driver (Linux drivers/iommu/virtio-iommu.c): its domains have no
// page tables; every map and unmap is a request on the device's request virtqueue, which
// the VMM's device (platforms/vmm/virtio_iommu.h) turns into host map and unmap calls.
//
// What it models
// - Probe: the virtio-mmio handshake (ACKNOWLEDGE, DRIVER, features: VERSION_1, MAP_UNMAP,
//   INPUT_RANGE, DOMAIN_RANGE, PROBE, BYPASS_CONFIG as offered; FEATURES_OK), the request
//   queue at the device's QueueNumMax in the driver's memory, DRIVER_OK.
// - Requests as viommu_add_req builds them: the body (device-readable) and the tail
//   (device-writable) as a chain of two descriptors, in a per-descriptor buffer; PROBE once
//   per endpoint before its first attach (viommu_probe_device), its properties read.
// - viommu_sync_req: under the global request_lock (one CPU at a time, in arrival order:
//   "lock"), publish avail->idx, write QueueNotify (the doorbell, which traps), then poll
//   the used ring (poll_interval_ns, poll_read_cycles per look) until every queued request
//   is used; a status other than OK fails the operation naming it. A used id that names no
//   outstanding head (Linux virtqueue_get_buf_ctx_split's BAD_RING) breaks the queue: the
//   sync and every later one fail naming the id. When the queue is full, viommu_add_req
//   syncs first and retries.
// - map (iommu_map: viommu_map_pages per chunk + .iotlb_sync_map): the range in chunks
//   naturally aligned in IOVA and PA (iommu_pgsize with every power-of-two size from 4 KiB),
//   per chunk the interval-tree insert and request build (request_cycles) and a MAP, then a sync; its time goes to the map_sync histogram, not
//   the invalidation log. unmap (viommu_unmap_pages + .iotlb_sync): the tree removal, an
//   UNMAP request, a sync, logged as "unmap" with the trapped path's parts. Lazy unmap
//   (IOMMU_CAP_DEFERRED_FLUSH): the UNMAP is queued without a kick; it reaches the device
//   with the next sync of any CPU (another map's, or the DMA API's flush: .flush_iotlb_all
//   = a sync, logged as "invalidate_domain" like a native domain flush).
// - attach (viommu_attach_dev): ATTACH and a sync; the first endpoint of a domain then gets
//   the domain's mappings replayed as MAP requests and a sync (viommu_replay_mappings), so a
//   domain mapped before its attach works; detach (the blocking domain): DETACH.
// - unmap of a range that is not whole mappings fails and changes nothing (Linux's
//   viommu_del_mappings removes whole mappings only; the core then reports the short unmap).
// - The oracle: the guest reports its own mappings, IOVA -> GPA, each domain a Nested space
//   over one stage-2 space of guest RAM (GPA -> PA) it adds at init; a change completes at
//   the time the guest saw its sync's last request used. A new mapping is not blamed for a
//   fault until the guest saw its MAP used (the device makes it on the host meanwhile).
//
// What it does not model: the event queue (faults), reserved regions from PROBE (the device
// reports none), bypass domains (identity), protect/remap (virtio-iommu has no in-place
// change: they fail), several request queues, interrupts (the request queue has none: Linux
// polls it).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/common/stats.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/virtio_iommu_format.h"
#include "platforms/driver/virtqueue.h"

namespace iommusim::driver {

struct VirtioIommuDriverConfig {
  DriverTiming timing;
  DriverMemory memory;   // table_pool_*: the guest memory its queue and request buffers live in
  uint64_t request_cycles = 200;   // guest.virtio.request_cycles: interval-tree op + request build
  // Guest RAM as the host backs it (the oracle's stage-2 space: GPA [0, bytes) -> PA ram_pa).
  uint64_t ram_pa = 0, ram_bytes = 0;
};

class VirtioIommuDriver : public DriverBase {
 public:
  // The oracle space (local ID) of guest RAM, the parent of every domain's space.
  static constexpr uint32_t kRamSpace = 0xFFFFF;

  VirtioIommuDriver(sc_core::sc_module_name name, const VirtioIommuDriverConfig& cfg, DriverMemoryRef mem);

  std::string vendor() const override { return "virtio-iommu"; }
  Status init() override;
  Status map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t page_bytes) override;
  Status unmap(DomainId d, uint64_t iova, uint64_t bytes) override;
  Status unmap_deferred(DomainId d, uint64_t iova, uint64_t bytes, common::CorrectnessOracle::ChangeId* change) override;
  Status protect(DomainId, uint64_t, uint64_t, Prot) override;
  Status remap(DomainId, uint64_t, uint64_t, uint64_t, Prot) override;
  // A range or the whole domain: what is queued reaches the device and completes (a sync).
  Status invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) override;
  Status invalidate_domain(DomainId d) override;
  Status sync() override;

  uint64_t requests_sent() const { return requests_.value(); }
  const common::Histogram& map_sync() const { return map_sync_ps_; }
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 protected:
  std::unique_ptr<Domain> make_domain(DomainKind kind, const Domain* parent, std::string* why) override;
  Status attach_device(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) override;
  Status detach_device(uint32_t rid, std::optional<uint32_t> pasid) override;

 private:
  struct Mapping {   // by start: the domain's mappings (viommu_add_mapping)
    uint64_t end = 0, phys = 0;
    uint32_t flags = 0;   // VIRTIO_IOMMU_MAP_F_*
  };
  struct VDomain {
    std::map<uint64_t, Mapping> mappings;
    std::set<uint32_t> endpoints;
  };
  struct Slot {   // a queued request: where its tail is, what it was
    virtio_iommu::ReqType type = virtio_iommu::ReqType::Map;
    uint64_t tail_gpa = 0;
    bool pending = false;
  };

  // viommu_add_req: queues r (body + tail), syncing first when the queue is full.
  // *lock_ps (when given) grows by the wait for request_lock.
  Status add_req(const virtio_iommu::Request& r, uint32_t writable = virtio_iommu::kTailBytes,
                 uint64_t* lock_ps = nullptr);
  // viommu_sync_req: kick and poll until every queued request is used. `op` names the
  // logged record ("" : not logged); t0 is the operation's start, lock_ps its lock waits so far.
  Status sync_req(const std::string& op, uint64_t t0, uint64_t lock_ps = 0);
  // viommu_unmap_pages: the mappings out of the tree and the oracle, an UNMAP queued.
  Status remove(DomainId d, uint64_t iova, uint64_t bytes, common::CorrectnessOracle::ChangeId* change,
                uint64_t* lock_ps);
  // The sync's body, with request_lock held.
  Status kick_and_wait(uint64_t* t_doorbell);
  uint32_t reg_read(uint64_t off) { return mmio_read32(off); }
  void reg_write(uint64_t off, uint32_t v) { mmio_write32(off, v); }
  Status probe_endpoint(uint32_t ep);

  VirtioIommuDriverConfig cfg_;
  std::unique_ptr<virtq::DriverSide> vq_;
  uint64_t buffers_ = 0, probe_buffer_ = 0;   // per-descriptor request buffers; PROBE's
  std::vector<Slot> slots_;                   // by head descriptor
  unsigned queued_ = 0;                       // added and not yet used
  std::map<DomainId, VDomain> vdomains_;
  std::map<uint32_t, DomainId> attached_;     // endpoint -> its domain
  std::set<uint32_t> probed_;
  uint32_t probe_size_ = 0;
  std::string failed_;                        // the first non-OK status since the last sync
  // request_lock: one CPU in sync at a time, in arrival order.
  uint64_t next_ticket_ = 0, serving_ = 0;
  sc_core::sc_event lock_released_;
  common::Counter requests_, syncs_, full_syncs_;
  common::Histogram map_sync_ps_;
};

}  // namespace iommusim::driver

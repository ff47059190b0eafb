// One VM's iommufd context: the object table a VMM builds its guest's DMA translation from,
// with each call's checks and errno as Linux's drivers/iommu/iommufd returns them.
//
// What it models
// - Objects in one ID table (iommufd_ctx: IDs from 1, the lowest free one reused after
//   IOMMU_DESTROY; an object with users is EBUSY to destroy):
//   device (VFIO_DEVICE_BIND_IOMMUFD: a physical RID behind one host IOMMU), IOAS (the VM's
//   GPA -> PA map), HWPT_PAGING (a host-built domain of an IOAS; with
//   IOMMU_HWPT_ALLOC_NEST_PARENT the stage 2 a guest nests over), HWPT_NESTED (the guest's
//   stage-1 configuration over a parent, user-managed), vIOMMU (the VM's slice of one host
//   IOMMU), vDEVICE (a guest's virtual device ID for a physical one), vEVENTQ (a vIOMMU's
//   queue of virtual events of one type, drivers/iommu/iommufd/eventq.c).
// - The calls: IOMMU_IOAS_ALLOC / MAP / UNMAP, IOMMU_HWPT_ALLOC, IOMMU_VIOMMU_ALLOC,
//   IOMMU_VDEVICE_ALLOC, IOMMU_HWPT_INVALIDATE, VFIO_DEVICE_ATTACH_IOMMUFD_PT (of the RID, or
//   with VFIO_DEVICE_ATTACH_PASID of one PASID) and IOMMU_DESTROY; the core's checks here,
//   the vendor's in its NestingOps
//   (platforms/driver/nesting.h). IOAS_MAP/UNMAP map and unmap every HWPT_PAGING of the IOAS
//   through the host driver (its unmaps are the host's stage-2 invalidations).
// - IOMMU_VEVENTQ_ALLOC and the vEVENTQ's read(): a queue of at most `veventq_depth`
//   events, each {iommufd_vevent_header {flags, sequence}, the vendor's record}; when full,
//   one header with IOMMU_VEVENTQ_FLAG_LOST_EVENTS stands for the lost ones (it stays the
//   last entry, taking a new sequence number per loss); sequence numbers wrap at INT_MAX.
//   The host driver reports into it (driver::ViommuEventSink, iommufd_viommu_report_event).
//   MODEL EXTENSIONS (no upstream type): VeventqType::AmdExt on an AMD vIOMMU, and
//   VeventqType::VtdExt on a VT-d nest parent (HWPT_PAGING): VT-d has no vIOMMU object, so
//   the one object a VM holds per VT-d unit, the parent its nested HWPTs hang on, owns it.
// - IOMMU_HW_QUEUE_ALLOC (iommufd_hw_queue_alloc_ioctl): a HW queue of a vIOMMU (a Tegra241
//   VCMDQ) whose guest memory at nesting_parent_iova the hardware reads by host PA: the
//   core's checks, then the pages pinned through the vIOMMU's nest parent's IOAS
//   (iommufd_hw_queue_alloc_phys: an IOVA not mapped is ENOENT, pages not physically
//   contiguous EFAULT), then the driver's hw_queue_init_phys with the host PA. A queue of
//   index > 0 holds the one before it (iommufd_hw_queue_depend): that one is EBUSY to destroy.
// - Per call: calls and errors (stats), and the errors by errno (errors()).
//
// What it does not model
// - Call timing (syscall, iommufd and VMM costs: the trapped path's cost keys come with the
//   VMM); the host driver's own work is timed by the host driver.
// - IOAS IOVA allocation (only IOMMU_IOAS_MAP_FIXED_IOVA: a VMM maps GPA = IOVA), pinning,
//   copy/iova ranges, dirty tracking, detaching a PASID, refusing IOAS_UNMAP of pages a HW
//   queue pinned, auto domains (attach to an IOAS),
//   IOPF fault queues; the vEVENTQ's file (poll, its fd): read() is a call here,
//   counting records rather than bytes.
// - Device ownership: Linux binds a device to one iommufd context (iommu_device_claim_dma_owner).
//   Binding one RID in two VMs' contexts here stands for PASID-granular assignable interfaces
//   (Intel Scalable IOV work queues), which upstream VFIO does not offer; each context's
//   checks (iommufd_hwpt_pasid_compat) then see its own attachments only, the host driver's
//   see every context's.
// - Freeing a destroyed HWPT's host domain (the host driver never frees domains; it is
//   told of a destroyed HWPT_NESTED, NestingOps::free_nested, to drop what it held for it).
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/common/stats.h"
#include "platforms/driver/driver_base.h"
#include "platforms/driver/nesting.h"
#include "platforms/vmm/errno.h"

namespace iommusim::vmm {

// IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID
inline constexpr uint32_t kHwptAllocNestParent = 1u << 0;
inline constexpr uint32_t kHwptAllocPasid = driver::kHwptAllocPasid;
// IOMMU_NO_PASID, and the PASID width (PCIe: 20 bits)
inline constexpr uint32_t kNoPasid = 0, kPasidBits = 20;
// IOMMU_IOAS_MAP_FIXED_IOVA, _WRITEABLE, _READABLE
inline constexpr uint32_t kIoasMapFixedIova = 1u << 0, kIoasMapWriteable = 1u << 1, kIoasMapReadable = 1u << 2;

enum class ObjType : uint8_t { Device, Ioas, HwptPaging, HwptNested, Viommu, Vdevice, Veventq, HwQueue };

// IOMMU_VEVENTQ_FLAG_LOST_EVENTS
inline constexpr uint32_t kVeventqFlagLostEvents = 1u << 0;
// struct iommufd_vevent_header
struct VeventHeader {
  uint32_t flags = 0;
  uint32_t sequence = 0;
};
// One vEVENTQ entry as read() returns it: the header and, unless it is the lost-events
// header, the vendor's record (struct iommu_vevent_arm_smmuv3: the 32-byte event record;
// the extensions' 16-byte records fill the first two words).
// `recorded_ps` is the model's bookkeeping (when the hardware wrote the record), not uAPI.
struct Vevent {
  VeventHeader header;
  std::array<uint64_t, 4> evt{};
  uint64_t recorded_ps = 0;
};
// A host IOMMU the VM's devices may sit behind: its driver and that driver's nesting half.
struct HostIommu {
  driver::DriverBase* driver = nullptr;
  driver::NestingOps* nesting = nullptr;
};

class Iommufd : public driver::ViommuEventSink {
 public:
  enum class Call : uint8_t {
    BindDevice, IoasAlloc, IoasMap, IoasUnmap, HwptAlloc, ViommuAlloc, VdeviceAlloc, HwptInvalidate, Attach, Destroy,
    VeventqAlloc, VeventqRead, HwQueueAlloc, Count
  };
  static const char* call_name(Call c);

  explicit Iommufd(std::vector<HostIommu> units);

  // VFIO_DEVICE_BIND_IOMMUFD: physical `rid` behind host IOMMU `unit`.
  Errno bind_device(uint32_t rid, unsigned unit, uint32_t* dev_id);
  Errno ioas_alloc(uint32_t flags, uint32_t* ioas_id);
  // Maps [iova, iova + length) to [pa, ...) with the READABLE / WRITEABLE flags.
  Errno ioas_map(uint32_t ioas_id, uint32_t flags, uint64_t iova, uint64_t pa, uint64_t length);
  // Unmaps whole areas in [iova, iova + length) (iova 0 and length ~0: everything).
  // flush = false (MODEL EXTENSION, no uAPI: an idealised host, vmm.virtio.host_flush =
  // domain): the host driver clears the PTEs without invalidating; hwpt_flush follows.
  Errno ioas_unmap(uint32_t ioas_id, uint64_t iova, uint64_t length, uint64_t* unmapped, bool flush = true);
  // MODEL EXTENSION: the host driver invalidates all of HWPT_PAGING `hwpt_id`'s domain (its
  // ASID / DID / DomainID) and waits.
  Errno hwpt_flush(uint32_t hwpt_id);
  // pt_id: an IOAS (a paging HWPT, kNestParent for stage 2), a nest-parent HWPT_PAGING or a
  // vIOMMU (a nested HWPT from the vendor `data`).
  Errno hwpt_alloc(uint32_t flags, uint32_t dev_id, uint32_t pt_id, const driver::UserData& data, uint32_t* hwpt_id);
  Errno viommu_alloc(uint32_t flags, driver::ViommuType type, uint32_t dev_id, uint32_t hwpt_id, uint32_t* viommu_id);
  Errno vdevice_alloc(uint32_t viommu_id, uint32_t dev_id, uint64_t virt_id, uint32_t* vdevice_id);
  // To a HWPT_NESTED or a vIOMMU; *entry_num in: entries, out: handled.
  Errno hwpt_invalidate(uint32_t id, driver::InvalidateDataType type, const void* entries, uint32_t entry_len,
                        uint32_t* entry_num);
  // VFIO_DEVICE_ATTACH_IOMMUFD_PT of the device's RID (or, with a pasid, of that PASID:
  // VFIO_DEVICE_ATTACH_PASID) to a HWPT_PAGING or HWPT_NESTED, replacing what it was
  // attached to (iommufd_device_replace).
  Errno attach(uint32_t dev_id, uint32_t pt_id, std::optional<uint32_t> pasid = std::nullopt);
  Errno destroy(uint32_t id);
  // IOMMU_VEVENTQ_ALLOC: a queue of `depth` events of `type` on vIOMMU `viommu_id` (for
  // VeventqType::VtdExt, a MODEL EXTENSION: on nest-parent HWPT_PAGING `viommu_id`).
  Errno veventq_alloc(uint32_t flags, uint32_t viommu_id, driver::VeventqType type, uint32_t depth,
                      uint32_t* veventq_id);
  // IOMMU_HW_QUEUE_ALLOC: queue `index` of `type` on vIOMMU `viommu_id`, `length` bytes of
  // guest memory at `nesting_parent_iova`.
  Errno hw_queue_alloc(uint32_t flags, uint32_t viommu_id, driver::HwQueueType type, uint32_t index,
                       uint64_t nesting_parent_iova, uint64_t length, uint32_t* hw_queue_id);
  // The HW queues of vIOMMU `viommu_id`, highest index first: the order they can be destroyed in.
  std::vector<uint32_t> hw_queues_of(uint32_t viommu_id) const;
  // read() of the vEVENTQ's fd: up to `max` entries, oldest first, into `out`; *n says how many.
  Errno veventq_read(uint32_t veventq_id, Vevent* out, uint32_t max, uint32_t* n);
  // driver::ViommuEventSink, what the host driver calls: iommufd_viommu_report_event.
  Errno report_event(uint32_t viommu, driver::VeventqType type, const void* data, uint32_t len,
                     uint64_t recorded_ps) override;

  // The host pages behind the memory the VMM maps (4 KB, 2 MB or 1 GB hugepages): the
  // physically contiguous runs iommu_map may use as leaves. Default 1 GB.
  void set_backing_page_bytes(uint64_t bytes) { backing_page_ = bytes; }

  // Observers.
  bool exists(uint32_t id) const { return objects_.count(id) != 0; }
  ObjType type_of(uint32_t id) const { return objects_.at(id).type; }
  driver::DomainId domain_of(uint32_t hwpt_id) const { return objects_.at(hwpt_id).domain; }
  uint32_t users(uint32_t id) const { return objects_.at(id).users; }
  // The HWPT device `dev_id`'s `pasid` (nullopt: its RID) is attached to (0: none).
  uint32_t attached_to(uint32_t dev_id, std::optional<uint32_t> pasid = std::nullopt) const;
  uint64_t calls(Call c) const { return stats_[size_t(c)].calls.value(); }
  // Events waiting in vEVENTQ `id` (the lost-events header not counted: num_events).
  uint32_t veventq_pending(uint32_t id) const { return objects_.at(id).num_events; }
  // Whether a read() of vEVENTQ `id` has an entry to return (its fd polls readable).
  bool veventq_readable(uint32_t id) const { return !objects_.at(id).deliver.empty(); }
  // When the hardware wrote the record the next read() of vEVENTQ `id` returns (0: none, or
  // the lost-events header): the model's bookkeeping, as Vevent::recorded_ps.
  uint64_t veventq_next_recorded_ps(uint32_t id) const {
    const auto& d = objects_.at(id).deliver;
    return d.empty() ? 0 : d.front().recorded_ps;
  }
  // The physical RID of iommufd device `dev_id` (a VMM without vDEVICEs maps IDs itself).
  uint32_t rid_of(uint32_t dev_id) const { return objects_.at(dev_id).rid; }
  // The host driver's handle of vIOMMU `id` (a VMM that calls the driver's vendor ioctls).
  driver::ViommuHandle viommu_handle(uint32_t id) const { return objects_.at(id).handle; }
  uint64_t errors(Call c, Errno e) const;
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  static constexpr size_t kVeventqSlots = 5;   // ARM SMMUv3, Tegra241 CMDQV, VtdExt, AmdExt (0 unused)
  struct Area {
    uint64_t pa = 0, length = 0;
    uint32_t flags = 0;
    uint32_t locks = 0;   // HW queues pinning it (iopt_area num_locks): its unmap is EBUSY
  };
  struct Object {
    ObjType type = ObjType::Device;
    uint32_t users = 0;      // other objects (and attachments) holding it
    unsigned unit = 0;       // its host IOMMU (device, HWPTs, vIOMMU)
    uint32_t rid = 0;        // device
    uint32_t attached = 0;   // device: the HWPT its RID is attached to
    std::map<uint32_t, uint32_t> pasids;   // device: PASID -> the HWPT it is attached to
    uint32_t vdevice = 0;    // device: its vDEVICE
    std::map<uint64_t, Area> areas;   // IOAS: by IOVA
    std::vector<uint32_t> paging;     // IOAS: its HWPT_PAGINGs
    uint32_t ioas = 0;                // HWPT_PAGING; HW queue: the IOAS it pins
    bool nest_parent = false;         // HWPT_PAGING
    bool pasid_compat = false;        // HWPTs: allocated with IOMMU_HWPT_ALLOC_PASID
    uint32_t parent = 0;              // HWPT_NESTED: its HWPT_PAGING; vIOMMU: its nest parent
    uint32_t viommu = 0;              // HWPT_NESTED (through a vIOMMU), vDEVICE
    driver::DomainId domain = 0;      // HWPTs: the host driver's domain
    driver::ViommuHandle handle = 0;  // vIOMMU: the host driver's
    std::map<uint64_t, uint32_t> vdevs;   // vIOMMU: virt_id -> vDEVICE
    uint32_t dev = 0;                     // vDEVICE: its device
    uint64_t virt_id = 0;                 // vDEVICE
    std::array<uint32_t, kVeventqSlots> veventqs{};   // vIOMMU (VT-d: parent): its vEVENTQ per type (0: none)
    driver::VeventqType veventq_type{};   // vEVENTQ
    uint32_t depth = 0, num_events = 0, sequence = 0;   // vEVENTQ
    std::deque<Vevent> deliver;                         // vEVENTQ: oldest first
    uint32_t index = 0;                                 // HW queue: its index on the vIOMMU
    uint32_t prev = 0;                                  // HW queue: the one of index - 1 it holds
    std::vector<uint64_t> pinned;                       // HW queue: the IOAS areas it locks, by IOVA
  };
  struct CallStats {
    common::Counter calls, errors;
    std::array<uint64_t, 128> by_errno{};
  };

  // The slot of a vEVENTQ type in Object::veventqs (nullopt: not a type this core knows).
  static std::optional<size_t> veventq_slot(driver::VeventqType t);
  // A vEVENTQ owner: a vIOMMU, or for VtdExt a nest parent (nullptr: neither).
  Object* veventq_owner(uint32_t id, driver::VeventqType t);
  // iommufd_get_object with a type: an unknown ID or another type is ENOENT.
  Object* get(uint32_t id, ObjType type, Errno* err);
  uint32_t add(Object o);   // the lowest free ID
  Errno done(Call c, Errno e);
  // Maps one IOAS area onto a paging domain, in the largest pages that fit it.
  Errno map_area(const Object& hwpt, uint64_t iova, const Area& a);

  std::vector<HostIommu> units_;
  uint64_t backing_page_ = 1ull << 30;
  std::map<uint32_t, Object> objects_;
  std::array<CallStats, size_t(Call::Count)> stats_;
};

}  // namespace iommusim::vmm

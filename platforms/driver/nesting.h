// The host driver's half of iommufd nesting: what a VMM's iommufd calls ask of the vendor
// driver once the iommufd core (platforms/vmm/iommufd.h) has checked its own part.
//
// What it models
// - A vIOMMU: one VM's slice of one physical IOMMU over a nest-parent stage-2 domain
//   (Linux iommu_ops viommu_init, iommufd_viommu_ops). It owns the VM's cache tag (ARM: the
//   parent's VMID, arm_vsmmu_init) and its virtual -> physical device IDs (vDEVICEs).
// - A user-managed nested domain (HWPT_NESTED, alloc_domain_nested): the guest's own
//   stage-1 configuration as the vendor's user data (ARM: the vSTE's two dwords), checked
//   as Linux checks it and installed on attach as the physical entry Linux builds from it.
// - A nested domain straight on a nest parent, with no vIOMMU (iommu_ops
//   domain_alloc_nested; VT-d: the guest's first-stage table pointer and flags).
// - A nested domain on a PASID (its set_dev_pasid; IOMMU_HWPT_ALLOC_PASID at allocation):
//   only VT-d's, whose PASID entries each carry their own PGTT, DID and stage-2 pointer.
// - Cache invalidation on the vIOMMU (cache_invalidate): the guest's own commands in the
//   hardware's format, converted (tags and device IDs forced to the VM's) and issued on the
//   physical queue with a completion barrier, as Linux does; or on a nested domain
//   (cache_invalidate_hwpt, Linux cache_invalidate_user: VT-d's address ranges, issued
//   with the nested domain's own tags).
// - The uAPI numbering of data types and vIOMMU types (include/uapi/linux/iommufd.h), so
//   a call carries what the real ioctl carries.
// - Virtual events (iommufd_viommu_report_event): the driver hands a guest's fault record,
//   in the vEVENTQ type's format, to the iommufd core through the sink the core gave the
//   vIOMMU (set_event_sink). VT-d has no vIOMMU: its vEVENTQ (a MODEL EXTENSION) hangs on
//   the nest parent, whose sink the core sets with set_parent_event_sink.
//
// What it does not model: copy_from_user and struct sizing (a user struct is its C++
// struct here), vIOMMU types other than the vendor's own (Tegra241 CMDQV), IOPF fault queues.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>

#include "platforms/driver/driver.h"
#include "platforms/vmm/errno.h"

namespace iommusim::driver {

using vmm::Errno;

// IOMMU_HWPT_ALLOC_PASID (enum iommufd_hwpt_alloc_flags): the HWPT may be attached to a
// PASID (iommufd's hwpt->pasid_compat); iommufd passes it to the driver's allocation.
inline constexpr uint32_t kHwptAllocPasid = 1u << 3;

// enum iommu_hwpt_data_type
enum class HwptDataType : uint32_t { None = 0, VtdS1 = 1, ArmSmmuv3 = 2, AmdGuest = 3 };
// enum iommu_hwpt_invalidate_data_type, plus AmdViommuExt: a MODEL EXTENSION (upstream
// Linux has no AMD vIOMMU cache_invalidate: amd_viommu_ops has only .destroy), numbered
// far above the uAPI's so that it can never alias a real type.
enum class InvalidateDataType : uint32_t { VtdS1 = 0, ArmSmmuv3 = 1, AmdViommuExt = 0x80000001u };
// enum iommu_viommu_type (IOMMU_VIOMMU_TYPE_AMD = 3)
enum class ViommuType : uint32_t { Default = 0, ArmSmmuv3 = 1, Tegra241Cmdqv = 2, Amd = 3 };
// enum iommu_hw_queue_type
enum class HwQueueType : uint32_t { Default = 0, Tegra241Cmdqv = 1 };
// enum iommu_veventq_type, plus VtdExt and AmdExt: MODEL EXTENSIONS (upstream Linux has
// vEVENTQ types for ARM SMMUv3 and Tegra241 CMDQV only), numbered far above the uAPI's as
// AmdViommuExt is. VtdExt: one 128-bit fault record (the FRCD image, Intel VT-d spec
// §11.4.11); AmdExt: one 16-byte event-log entry (AMD 48882 §2.5).
enum class VeventqType : uint32_t {
  Default = 0, ArmSmmuv3 = 1, Tegra241Cmdqv = 2, VtdExt = 0x80000001u, AmdExt = 0x80000002u
};

// struct iommu_hwpt_arm_smmuv3: the guest's STE dwords 0 and 1 (little-endian).
struct HwptArmSmmuv3 {
  uint64_t ste[2] = {0, 0};
};
// struct iommu_viommu_arm_smmuv3_invalidate: one 128-bit SMMU command.
struct ViommuArmSmmuv3Invalidate {
  uint64_t cmd[2] = {0, 0};
};

// struct iommu_hwpt_amd_guest: the guest's 256-bit DTE (little-endian quadwords).
struct HwptAmdGuest {
  uint64_t dte[4] = {0, 0, 0, 0};
};
// The entry of InvalidateDataType::AmdViommuExt (MODEL EXTENSION): one 128-bit AMD
// command as the guest wrote it (AMD 48882 §2.4), in ARM's style of
// iommu_viommu_arm_smmuv3_invalidate.
struct ViommuAmdInvalidateExt {
  uint64_t cmd[2] = {0, 0};
};

// struct iommu_hwpt_vtd_s1 with enum iommu_hwpt_vtd_s1_flags: the guest's first-stage
// table (a GPA) and its paging attributes.
inline constexpr uint64_t kVtdS1Sre = 1u << 0, kVtdS1Eafe = 1u << 1, kVtdS1Wpe = 1u << 2;
struct HwptVtdS1 {
  uint64_t flags = 0;
  uint64_t pgtbl_addr = 0;
  uint32_t addr_width = 0;   // 48 (4-level) or 57 (5-level)
  uint32_t reserved = 0;     // __reserved
};
// struct iommu_hwpt_vtd_s1_invalidate with IOMMU_VTD_INV_FLAGS_LEAF: `npages` 4 KiB pages
// from `addr` (addr 0 and npages ~0: everything).
inline constexpr uint32_t kVtdInvFlagsLeaf = 1u << 0;
struct HwptInvalidateVtdS1 {
  uint64_t addr = 0;
  uint64_t npages = 0;
  uint32_t flags = 0;
  uint32_t reserved = 0;     // __reserved
};

// Linux copy_struct_from_user as iommu_copy_struct_from_user uses it, for a struct whose
// last member is the minimum (__reserved): a shorter user struct is EINVAL, a longer one
// with non-zero bytes past the struct E2BIG.
template <class T>
Errno copy_struct_from_user(T* dst, const void* src, uint64_t len) {
  if (!src || len < sizeof(T)) return Errno::Inval;
  const auto* bytes = static_cast<const uint8_t*>(src);
  if (std::any_of(bytes + sizeof(T), bytes + len, [](uint8_t b) { return b != 0; })) return Errno::TooBig;
  std::copy_n(bytes, sizeof(T), reinterpret_cast<uint8_t*>(dst));
  return Errno::Ok;
}

// struct iommu_user_data: a vendor struct, tagged with its type.
struct UserData {
  HwptDataType type = HwptDataType::None;
  const void* data = nullptr;
  uint32_t len = 0;
};

// A vIOMMU as its host driver numbers them (from 1).
using ViommuHandle = uint32_t;

// Where a driver reports a vIOMMU's events (the iommufd core, iommufd_viommu_report_event).
class ViommuEventSink {
 public:
  virtual ~ViommuEventSink() = default;
  // One event of `type` (`len` bytes of `data`) for the vIOMMU the core knows as `viommu`:
  // EOPNOTSUPP when it has no vEVENTQ of that type (the driver then keeps the event).
  // `recorded_ps`, the simulated time the hardware wrote the record, is the model's
  // bookkeeping for latency stats, not part of the uAPI.
  virtual Errno report_event(uint32_t viommu, VeventqType type, const void* data, uint32_t len,
                             uint64_t recorded_ps) = 0;
};

class NestingOps {
 public:
  virtual ~NestingOps() = default;
  // Whether this IOMMU offers vIOMMUs of `type` (Linux get_viommu_size != 0: the type is
  // the driver's and the hardware can nest); iommufd asks before it looks at the parent.
  virtual bool supports_viommu(ViommuType type) const = 0;
  // A vIOMMU of `type` over the nest parent `parent` (a Stage2 domain of this driver):
  // EOPNOTSUPP for a type supports_viommu refuses, EINVAL for a parent that is not this
  // IOMMU's stage-2 domain.
  virtual Errno viommu_init(ViommuType type, DomainId parent, ViommuHandle* out) = 0;
  // A user-managed nested domain from the guest's configuration.
  virtual Errno alloc_nested(ViommuHandle v, uint32_t flags, const UserData& data, DomainId* out) = 0;
  // Whether the driver allocates nested domains straight on a nest parent (Linux
  // iommu_ops domain_alloc_nested is set); iommufd asks before it looks at the parent.
  virtual bool nests_on_parent() const = 0;
  // The same straight on a nest parent, with no vIOMMU (iommu_ops domain_alloc_nested).
  virtual Errno alloc_nested_on_parent(DomainId parent, uint32_t flags, const UserData& data, DomainId* out) = 0;
  // A vDEVICE: the guest's `virt_id` names physical `rid` on this vIOMMU (the iommufd core
  // has checked uniqueness); nullopt removes it.
  virtual Errno set_vdevice(ViommuHandle v, uint64_t virt_id, std::optional<uint32_t> rid) = 0;
  // A user-managed nested domain's HWPT was destroyed (its iommu_domain_ops free): the
  // driver drops what it held for it (AMD: the gDomID's reference, nested_domain_free).
  virtual void free_nested(DomainId) {}
  // Points `rid` at a nested domain (the physical entry and its configuration
  // invalidation); Errno, unlike IommuDriver::attach, because iommufd reports it.
  virtual Errno attach_nested(uint32_t rid, DomainId nested) = 0;
  // Points (rid, pasid) at a nested domain (the nested domain's set_dev_pasid). A driver
  // whose nested domains have none is EOPNOTSUPP, as the iommu core answers
  // (iommu_attach_device_pasid): SMMUv3 (arm_smmu_nested_ops) and AMD (nested_domain_ops).
  virtual Errno attach_nested_pasid(uint32_t rid, uint32_t pasid, DomainId nested) {
    (void)rid; (void)pasid; (void)nested;
    return Errno::OpNotSupp;
  }
  // IOMMU_HWPT_INVALIDATE to the vIOMMU: `*entry_num` entries of `entry_len` bytes in;
  // the number handled out (the ioctl's entry_num). entry_num 0 only checks the type.
  virtual Errno cache_invalidate(ViommuHandle v, InvalidateDataType type, const void* entries, uint32_t entry_len,
                                 uint32_t* entry_num) = 0;
  // IOMMU_HWPT_INVALIDATE to a HWPT_NESTED (its domain's cache_invalidate_user), entries
  // and entry_num as cache_invalidate; EOPNOTSUPP from a driver whose nested domains
  // have none.
  virtual Errno cache_invalidate_hwpt(DomainId nested, InvalidateDataType type, const void* entries,
                                      uint32_t entry_len, uint32_t* entry_num) = 0;
  // The tag the vIOMMU's guest invalidations are forced to (ARM: its VMID).
  virtual uint32_t viommu_tag(ViommuHandle v) const = 0;
  // The host cache tags (VMIDs, hDomIDs) the vIOMMUs' nested domains use now (the
  // vmm.*_domid / arm_vmid policies, platforms/driver/tag_policies.h); nullopt: not counted.
  virtual std::optional<uint64_t> nested_tags_in_use() const { return std::nullopt; }
  // IOMMU_HW_QUEUE_ALLOC's driver half (iommufd_viommu_ops get_hw_queue_size and
  // hw_queue_init_phys): whether vIOMMU `v` has HW queues of `type`, then queue `index` of
  // `length` bytes at host PA `base_pa` (the core pinned the guest pages and checked them
  // contiguous); hw_queue_destroy undoes it.
  virtual bool supports_hw_queue(ViommuHandle v, HwQueueType type) const {
    (void)v; (void)type;
    return false;
  }
  virtual Errno hw_queue_init_phys(ViommuHandle v, HwQueueType type, uint32_t index, uint64_t base_pa,
                                   uint64_t length) {
    (void)v; (void)type; (void)index; (void)base_pa; (void)length;
    return Errno::OpNotSupp;
  }
  virtual void hw_queue_destroy(ViommuHandle v, uint32_t index) { (void)v; (void)index; }
  // IOMMU_DESTROY of vIOMMU `v` (iommufd_viommu_ops destroy): the driver frees what it
  // holds for it (a Tegra241 CMDQV VINTF). Its HW queues, vDEVICEs and HWPTs went first.
  virtual void viommu_destroy(ViommuHandle v) { (void)v; }
  // The core's sink for vIOMMU `v`'s events, reported as `viommu` (its object ID); nullptr
  // stops them. AMD reports through its MODEL EXTENSION type (VeventqType::AmdExt).
  virtual void set_event_sink(ViommuHandle v, ViommuEventSink* sink, uint32_t viommu) {
    (void)v; (void)sink; (void)viommu;
  }
  // The same for a driver with no vIOMMU (VT-d, MODEL EXTENSION): the events of devices
  // nested over nest parent `parent` go to `sink` as object `owner` (the parent's HWPT).
  virtual void set_parent_event_sink(DomainId parent, ViommuEventSink* sink, uint32_t owner) {
    (void)parent; (void)sink; (void)owner;
  }
};

}  // namespace iommusim::driver

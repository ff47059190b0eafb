// One VM as its VMM builds it with iommufd: guest RAM, and the objects that nest the
// guest's stage 1 over a host stage 2 (docs/vmm.md, "Building a VM").
//
// What it models
// - Guest RAM (GuestRam) mapped into an IOAS at GPA 0 (IOMMU_IOAS_MAP with FIXED_IOVA),
//   in leaves no larger than the host pages backing it.
// - The sequence a VMM such as QEMU runs for devices assigned to the guest behind a vIOMMU:
//   VFIO_DEVICE_BIND_IOMMUFD per device, IOMMU_IOAS_ALLOC and MAP, IOMMU_HWPT_ALLOC of a
//   nest parent (the host builds stage 2), IOMMU_VIOMMU_ALLOC of the vendor's type, and an
//   IOMMU_VDEVICE_ALLOC per device with the guest's ID for it. A vendor without a vIOMMU
//   type (VT-d upstream) makes neither call: its VMM keeps the guest's device IDs itself
//   and allocates nested HWPTs straight on the nest parent.
// - The oracle scope the guest's driver reports through: its own space IDs, its stage-1
//   domains nested over the parent's stage 2, its virtual device IDs mapped to physical ones.
//
// - Host-side stage-2 changes while the guest runs: the VMM moves a guest page to another
//   host page (IOMMU_IOAS_UNMAP then MAP), as ballooning and migration do; the host driver
//   invalidates its stage 2 (and the guest's stage-1 entries of the VM) as for any unmap.
//
// - Several physical IOMMUs: per unit that has devices of the VM, one nest parent of the
//   VM's IOAS (a domain serves one IOMMU: arm_vsmmu_init refuses a parent of another SMMU)
//   and one vIOMMU over it; each device's vDEVICE lives on its unit's vIOMMU. IOAS
//   map/unmap reach every parent.
//
// - A work queue (one PASID of a device, vmm.assign pasid) on a vendor with a vIOMMU object
//   (SMMUv3, AMD), whose per-RID guest configuration (vSTE, guest DTE) cannot carry a guest
//   stage 1 for one PASID: the VMM tries what VT-d does, a nested HWPT allocated with
//   IOMMU_HWPT_ALLOC_PASID (the guest's configuration "no stage 1": a bypass vSTE, a guest
//   DTE without GV) attached to (RID, PASID); when iommufd refuses (its errno, checked) it
//   falls back to a paging HWPT of the VM's IOAS, allocated with IOMMU_HWPT_ALLOC_PASID and
//   attached to (RID, PASID) (docs/vmm.md, "The topology as a run"). Either way the guest
//   sees the queue untranslated: its DMAs address GPAs, and no guest driver programs it.
//   The VMM reports the VM's GPA map (what IOAS_MAP / UNMAP hold) to the oracle as one
//   space the queue is attached to, each change complete when its ioctl returns (the VMM
//   then reuses the page), so a DMA through a translation the host did not invalidate by
//   then is a violation.
//
// What it does not model: memory slots other than one, copying a
// moved page's contents, the VMM's own CPU time for building the VM or moving pages (only
// the host driver's work is timed).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/common/correctness_oracle.h"
#include "platforms/driver/driver.h"
#include "platforms/driver/nesting.h"
#include "platforms/vmm/guest_ram.h"
#include "platforms/vmm/iommufd.h"

namespace iommusim::vmm {

// A physical device assigned to the VM and the ID its guest knows it by (vSID, vRID, vDeviceID).
struct AssignedDevice {
  uint32_t rid = 0;
  uint64_t virt_id = 0;
  uint32_t dev_id = 0;   // iommufd device, once bound
  unsigned unit = 0;     // the physical IOMMU it sits behind
  // The guest's whole device is PASID `pasid` of the physical one (a work queue), or its RID.
  bool by_pasid = false;
  uint32_t pasid = 0;
  // Set by Vm::build: the guest sees this work queue with no vIOMMU translation (DMAs by
  // GPA), its (RID, PASID) attached to a HWPT of the VM's IOAS.
  bool untranslated = false;
  std::optional<uint32_t> host_pasid() const { return by_pasid ? std::optional<uint32_t>(pasid) : std::nullopt; }
};

struct VmLayout {
  uint64_t ram_pa = 0, ram_bytes = 0;
  uint64_t backing_page_bytes = 4096;   // host pages behind guest RAM: the largest stage-2 leaf
  uint32_t oracle_space_base = 0x40u << 24;   // the guest driver's space IDs start here
  // GPAs the VMM may move to other host pages while the guest runs (ballooning,
  // migration): mapped one backing page per IOAS area, so each can be unmapped alone.
  uint64_t movable_gpa = 0, movable_bytes = 0;
};

class Vm {
 public:
  // Whether a VM of a host whose vIOMMU object is `type` (none: VT-d) gives its work queues
  // (AssignedDevice::by_pasid) no vIOMMU translation. VT-d's PASID entries each carry their
  // own stage 2, so its vVT-d nests the guest's entry for the queue instead.
  static bool untranslated_work_queues(std::optional<driver::ViommuType> type) { return type.has_value(); }

  // `units`: the host IOMMUs the VM's devices may sit behind, by unit number.
  Vm(memory::SparseMemory& host_memory, const VmLayout& layout, std::vector<HostIommu> units);

  GuestRam& ram() { return ram_; }
  const GuestRam& ram() const { return ram_; }
  Iommufd& iommufd() { return fd_; }
  const Iommufd& iommufd() const { return fd_; }

  // Binds `devices`, maps guest RAM into a new IOAS, allocates per unit the nest parent and,
  // given a `type`, a vIOMMU of it over the parent, and a vDEVICE per device on its unit's
  // vIOMMU. A unit without devices gets neither (they are allocated for a device). Fails
  // naming the call and its errno.
  driver::Status build(std::vector<AssignedDevice>& devices, std::optional<driver::ViommuType> type);
  // The VMM moves guest page(s) [gpa, gpa + bytes) of the movable range to host `pa`:
  // IOMMU_IOAS_UNMAP (the host invalidates its stage 2) then IOMMU_IOAS_MAP.
  driver::Status move_page(uint64_t gpa, uint64_t pa, uint64_t bytes);
  // The VMM tears the VM down: it destroys its vIOMMUs' HW queues (their pinned guest pages
  // cannot be unmapped before: EBUSY), then unmaps all of guest RAM (IOMMU_IOAS_UNMAP of
  // everything): every parent and paging HWPT of the IOAS loses it, and the host invalidates.
  driver::Status unmap_all();
  // host_commands_per_ioas_unmap: the host queue entries (commands and barriers, every
  // unit) each IOMMU_IOAS_UNMAP cost, the stage-2 fan-out of a VMM change; the work queues
  // put on a paging HWPT after the nested attempt was refused, and the refusals' errnos.
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;
  // The lane's oracle, before build(): the VM's GPA map, which its untranslated work queues
  // use, is reported there (space layout.oracle_space_base + kGpaMapSpace).
  void set_oracle(common::CorrectnessOracle* oracle) { oracle_ = oracle; }
  // vmm.inject = drop_host_flush: the VMM's IOAS unmaps clear the host PTEs without the
  // host's invalidation (a bug for the oracle to catch).
  void set_drop_host_flush(bool on) { drop_host_flush_ = on; }
  static constexpr uint32_t kGpaMapSpace = 0xF << 20;   // apart from the guest drivers' (unit << 20)
  // Unit k's nest parent and vIOMMU (0: none).
  uint32_t parent_id(unsigned k = 0) const { return parents_.at(k); }
  uint32_t viommu_id(unsigned k = 0) const { return viommus_.at(k); }
  // The scope unit k's guest driver reports to the lane's oracle through: its own space IDs,
  // its stage 1 over unit k's parent (which the host driver reports from `host_space_base`),
  // the devices behind unit k (a PASID-backed one's RID attachments reaching its PASID).
  common::OracleScope guest_oracle_scope(const std::vector<AssignedDevice>& devices, unsigned k = 0,
                                         uint32_t host_space_base = 0) const;

 private:
  // IOMMU_IOAS_UNMAP of [gpa, gpa + bytes), its host queue entries recorded.
  driver::Status unmap(uint64_t gpa, uint64_t bytes);
  // IOMMU_IOAS_MAP of [gpa, gpa + bytes) at host `pa`, read-write.
  Errno map(uint64_t gpa, uint64_t pa, uint64_t bytes);
  // Attaches work queue `d` behind unit `k` (see the header): the nested attempt, then the
  // paging fallback.
  driver::Status attach_work_queue(AssignedDevice& d, std::optional<driver::ViommuType> type);
  // The oracle space of the GPA map (0: not reported: the VM has no untranslated queue).
  uint32_t gpa_space() const { return gpa_space_on_ ? layout_.oracle_space_base + kGpaMapSpace : 0; }

  VmLayout layout_;
  std::vector<HostIommu> hosts_;
  common::Histogram host_commands_per_unmap_;
  common::Counter pasid_fallbacks_;
  common::Histogram pasid_refusal_errno_;
  common::CorrectnessOracle* oracle_ = nullptr;
  bool gpa_space_on_ = false;
  bool drop_host_flush_ = false;
  GuestRam ram_;
  Iommufd fd_;
  unsigned units_;
  uint32_t ioas_ = 0;
  std::vector<uint32_t> parents_, viommus_;   // per unit
};

}  // namespace iommusim::vmm

// A guest's view of its VM's Tegra241 CMDQV VINTF, as QEMU's vCMDQV gives it (the
// accelerated path, docs/vmm.md "Accelerated guest queues (SMMUv3 CMDQV)").
//
// What it models
// - The VINTF's logical VCMDQ page 0 (CONS, PROD, CONFIG, STATUS, GERROR, GERRORN), which
//   the VMM maps into the guest (iommufd_viommu_alloc_mmap of VINTFi_PAGE0): the guest's
//   accesses reach the CMDQV without a trap and cost the hardware's MMIO time
//   (driver.timing.mmio_read_ns / mmio_write_ns, the host's figures).
// - The page-1 BASE write, which traps: the VMM's handler (the vSMMU's, set_base) issues
//   IOMMU_HW_QUEUE_ALLOC with the guest's GPA, and the host programs the host PA.
//
// What it does not model: the vCMDQV's global and VINTF registers the guest reads at probe
// (CMDQV_PARAM and the like: the guest is given the LVCMDQ count), CONS_INDX_BASE.
#pragma once
#include <cstdint>
#include <functional>

#include "models/smmuv3/cmdqv.h"
#include "models/smmuv3/register_block.h"

namespace iommusim::vmm {

class GuestVintf : public smmuv3::GuestCmdqv {
 public:
  // set_base: the trapped BASE write's handler (false: the allocation failed).
  GuestVintf(smmuv3::Cmdqv& cmdqv, unsigned vintf, unsigned lvcmdqs, double mmio_read_ns, double mmio_write_ns,
             std::function<bool(unsigned lidx, uint64_t base)> set_base);

  unsigned lvcmdqs() const override { return lvcmdqs_; }
  bool set_base(unsigned lidx, uint64_t base) override { return lidx < lvcmdqs_ && set_base_(lidx, base); }
  uint32_t read32(unsigned lidx, uint64_t reg) override;
  void write32(unsigned lidx, uint64_t reg, uint32_t value) override;
  uint32_t peek32(unsigned lidx, uint64_t reg) override;
  void set_command_probe(unsigned lidx, std::function<void(const common::CommandTrace&)> probe) override;

  unsigned vintf() const { return vintf_; }
  // The global VCMDQ behind LVCMDQ `lidx` (the host maps them in order: VINTF x per-VINTF + lidx).
  unsigned global_queue(unsigned lidx) const { return vintf_ * cmdqv_.lvcmdqs_per_vintf() + lidx; }

 private:
  uint64_t page0(unsigned lidx) const { return smmuv3::cmdqv::VINTFi_LVCMDQ_PAGE0(vintf_, lidx); }
  smmuv3::Cmdqv& cmdqv_;
  unsigned vintf_, lvcmdqs_;
  sc_core::sc_time read_time_, write_time_;
  std::function<bool(unsigned, uint64_t)> set_base_;
};

}  // namespace iommusim::vmm

// NVIDIA Tegra241 CMDQV (command-queue virtualisation) beside an SMMUv3: virtual command
// queues (VCMDQs) the SMMU reads from memory like its own CMDQ, grouped into virtual
// interfaces (VINTFs), one of which a hypervisor hands to each VM. Register layout and
// field names: Linux drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c (TEGRA241_* macros);
// NVIDIA publishes no register manual, so the kernel driver is the source.
//
// What it models
// - The MMIO block at its real offsets: page 0 the global registers (CMDQV_CONFIG.CMDQV_EN,
//   CMDQV_PARAM with NUM_SID_PER_VM_LOG2 / NUM_VINTF_LOG2 / NUM_VCMDQ_LOG2 / VER,
//   CMDQV_STATUS.ENABLED, VINTF_ERR_MAP, VINTF_INT_MASK, CMDQ_ERR_MAP(m), CMDQ_ALLOC(q) with
//   VINTF / LVCMDQ / ALLOCATED), the VINTF(v) registers at 0x1000 + 0x100 v (CONFIG with EN,
//   VMID, HYP_OWN; STATUS.ENABLED; SID_MATCH(s) / SID_REPLACE(s); LVCMDQ_ERR_MAP_64(m));
//   page 1 (0x10000 + 0x80 q) each global VCMDQ's CONS (with ERR), PROD, CONFIG.VCMDQ_EN,
//   STATUS.VCMDQ_ENABLED, GERROR, GERRORN; page 2 (0x20000 + 0x80 q) its BASE (VCMDQ_ADDR,
//   VCMDQ_LOG2SIZE) and CONS_INDX_BASE; and from 0x30000 the VINTF logical pages
//   (VINTFi_LVCMDQ_PAGE0/1(i, lidx)), which reach the global VCMDQ that CMDQ_ALLOC maps to
//   (VINTF i, LVCMDQ lidx). A logical page with no allocated VCMDQ behind it reads 0 and
//   ignores writes (MODEL CHOICE: the driver never touches one).
// - Each VCMDQ is a command queue of the SMMU (Smmuv3::add_command_queue): its ring of
//   16-byte SMMU commands is read from memory at BASE with memory time, decoded and executed
//   by the SMMU beside the main CMDQ and the other VCMDQs. It runs while CMDQV_EN, its
//   VINTF's EN, its VCMDQ_EN and ALLOCATED are set and GERROR.CMDQ_ERR equals GERRORN's.
// - A VINTF with HYP_OWN = 1 (the host's VINTF0) runs every command as written. One with
//   HYP_OWN = 0 (a guest's) admits only the guest subset of Linux's
//   tegra241_guest_vcmdq_supports_cmd, TLBI_NH_ASID, TLBI_NH_VA and ATC_INV, plus CMD_SYNC
//   (which every arm_smmu_cmdq issues); the hardware puts the VINTF's VMID into TLBI_NH_*
//   (whatever VMID the guest wrote) and replaces an ATC_INV's StreamID by SID_REPLACE(s) of
//   the enabled SID_MATCH(s) whose vSID matches (tegra241_vintf_init_vsid: MATCH = vSID << 1
//   | 1). MODEL CHOICE: every other command (TLBI_NH_ALL, TLBI_NH_VAA, CFGI_*, TLBI_S2_IPA,
//   TLBI_EL2_*, ...) and an ATC_INV whose vSID matches nothing is that queue's error; the
//   issue's list (TLBI_NH_*, CFGI_CD*) is wider than what Linux sends to a guest queue and
//   NVIDIA documents nothing more.
// - A queue's error: CONS.ERR = CERROR_ILL (or CERROR_ABT for a failed fetch), its
//   GERROR.CMDQ_ERR toggled, its bit in the VINTF's LVCMDQ_ERR_MAP_64, the global
//   CMDQ_ERR_MAP and VINTF_ERR_MAP; the queue stops on the bad command (nothing after it
//   executes) until GERRORN acknowledges, which clears the map bits. No other queue is affected.
// - Stats per VCMDQ: fetches, commands executed and by type, errors, StreamIDs replaced.
//
// What it does not model
// - The CMDQV interrupt (its ISR reads the error maps; the model's state is read instead),
//   VINTF_INT_MASK's effect, CONS_INDX_BASE writes of CONS to memory, CMDQ_ALLOC ordering
//   rules (map ascending, unmap descending: the host driver keeps them), VINTF_STATUS's
//   error field, the hardware's own MMIO latency (the accessor charges it).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <systemc>

#include "models/common/bits.h"
#include "models/common/command_queue.h"
#include "models/common/register_file.h"
#include "models/common/stats.h"
#include "models/smmuv3/smmuv3.h"

namespace iommusim::smmuv3 {

namespace cmdqv {
using common::Field;
// Pages (TEGRA241_CMDQV_CONFIG_BASE, _VCMDQ_PAGE0_BASE, _VCMDQ_PAGE1_BASE, _VINTF_PAGE_BASE).
constexpr uint64_t kPageBytes = 0x10000;
constexpr uint64_t VCMDQ_PAGE0_BASE = 0x10000, VCMDQ_PAGE1_BASE = 0x20000, VINTF_PAGE_BASE = 0x30000;
// Global registers.
constexpr uint64_t CONFIG = 0x0000, PARAM = 0x0004, STATUS = 0x0008, VINTF_ERR_MAP = 0x0014,
                   VINTF_INT_MASK = 0x001C;
constexpr uint64_t CMDQ_ERR_MAP(unsigned m) { return 0x0024 + 0x4 * m; }
constexpr uint64_t CMDQ_ALLOC(unsigned q) { return 0x0200 + 0x4 * q; }
using CMDQV_EN = Field<0, 0>;
using CMDQV_ENABLED = Field<0, 0>;
using CMDQV_NUM_SID_PER_VM_LOG2 = Field<15, 12>;
using CMDQV_NUM_VINTF_LOG2 = Field<11, 8>;
using CMDQV_NUM_VCMDQ_LOG2 = Field<7, 4>;
using CMDQV_VER = Field<3, 0>;
using CMDQV_CMDQ_ALLOC_VINTF = Field<20, 15>;
using CMDQV_CMDQ_ALLOC_LVCMDQ = Field<7, 1>;
using CMDQV_CMDQ_ALLOCATED = Field<0, 0>;
// VINTF(v) registers.
constexpr uint64_t VINTF(unsigned v) { return 0x1000 + 0x100 * v; }
constexpr uint64_t VINTF_CONFIG = 0x0000, VINTF_STATUS = 0x0004;
constexpr uint64_t VINTF_SID_MATCH(unsigned s) { return 0x0040 + 0x4 * s; }
constexpr uint64_t VINTF_SID_REPLACE(unsigned s) { return 0x0080 + 0x4 * s; }
constexpr uint64_t VINTF_LVCMDQ_ERR_MAP_64(unsigned m) { return 0x00C0 + 0x8 * m; }
constexpr unsigned LVCMDQ_ERR_MAP_NUM_64 = 2;
using VINTF_HYP_OWN = Field<17, 17>;
using VINTF_VMID = Field<16, 1>;
using VINTF_EN = Field<0, 0>;
using VINTF_ENABLED = Field<0, 0>;
// VCMDQ registers: page 0 (TEGRA241_VCMDQ_PAGE0(q) = 0x10000 + 0x80 q) and page 1.
constexpr uint64_t VCMDQ_PAGE0(unsigned q) { return VCMDQ_PAGE0_BASE + 0x80 * q; }
constexpr uint64_t VCMDQ_PAGE1(unsigned q) { return VCMDQ_PAGE1_BASE + 0x80 * q; }
constexpr uint64_t VCMDQ_CONS = 0x00, VCMDQ_PROD = 0x04, VCMDQ_CONFIG = 0x08, VCMDQ_STATUS = 0x0C,
                   VCMDQ_GERROR = 0x10, VCMDQ_GERRORN = 0x14;
constexpr uint64_t VCMDQ_BASE = 0x00, VCMDQ_CONS_INDX_BASE = 0x08;
using VCMDQ_CONS_ERR = Field<30, 24>;
using VCMDQ_EN = Field<0, 0>;
using VCMDQ_ENABLED = Field<0, 0>;
using VCMDQ_ADDR = Field<47, 5>;
using VCMDQ_LOG2SIZE = Field<4, 0>;
// VINTF logical-VCMDQ pages: 128 KB per VINTF (TEGRA241_VINTFi_PAGE0/1).
constexpr uint64_t VINTFi_PAGE0(unsigned i) { return VINTF_PAGE_BASE + 0x20000ull * i; }
constexpr uint64_t VINTFi_PAGE1(unsigned i) { return VINTFi_PAGE0(i) + kPageBytes; }
constexpr uint64_t VINTFi_LVCMDQ_PAGE0(unsigned i, unsigned q) { return VINTFi_PAGE0(i) + 0x80 * q; }
constexpr uint64_t VINTFi_LVCMDQ_PAGE1(unsigned i, unsigned q) { return VINTFi_PAGE1(i) + 0x80 * q; }
}  // namespace cmdqv

struct CmdqvConfig {
  // CMDQV_PARAM. ESTIMATE: Linux reads these from the hardware and publishes no Grace
  // values; 4 VINTFs (the host's VINTF0 and three guests), 16 VCMDQs (4 per VINTF) and 16
  // StreamID pairs per VINTF keep a run small.
  unsigned vintfs_log2 = 2;
  unsigned vcmdqs_log2 = 4;
  unsigned sids_per_vintf_log2 = 4;
  unsigned version = 1;   // CMDQV_VER
};
std::string validate(const CmdqvConfig& c);   // "" or a message naming the field

class Cmdqv : public sc_core::sc_module {   // a module: its queues' threads are the SMMU's
 public:
  Cmdqv(sc_core::sc_module_name name, const CmdqvConfig& cfg, Smmuv3& smmu);
  ~Cmdqv() override;

  unsigned vintfs() const { return 1u << cfg_.vintfs_log2; }
  unsigned vcmdqs() const { return 1u << cfg_.vcmdqs_log2; }
  unsigned lvcmdqs_per_vintf() const { return vcmdqs() / vintfs(); }
  unsigned sids_per_vintf() const { return 1u << cfg_.sids_per_vintf_log2; }
  uint64_t mmio_bytes() const { return cmdqv::VINTFi_PAGE0(vintfs()); }

  // Register access at `offset` in the block's window (logical pages included), with the
  // write rules and handlers. Untimed: the accessor (a host driver, or a guest through its
  // mapped VINTF page) charges its own MMIO time, as it does for the SMMU's registers.
  uint32_t read32(uint64_t offset);
  uint64_t read64(uint64_t offset);
  void write32(uint64_t offset, uint32_t value);
  void write64(uint64_t offset, uint64_t value);

  // Global VCMDQ q's engine (its stats; its probe for a driver's latency breakdown).
  common::CommandQueue& queue(unsigned q);
  uint64_t sids_replaced(unsigned q) const;
  // <prefix>.vcmdq<q>.* of the global VCMDQs `queues`.
  void register_stats(common::StatRegistry& reg, const std::string& prefix, const std::vector<unsigned>& queues) const;

 private:
  class Vcmdq;
  // A window offset in a VINTF logical page as the global VCMDQ page offset it reaches
  // (false: no allocated VCMDQ behind it).
  bool logical_to_global(uint64_t offset, uint64_t* global) const;
  uint64_t read64_len(uint64_t offset, unsigned len);
  void write_len(uint64_t offset, unsigned len, uint64_t value);
  // The global VCMDQ that CMDQ_ALLOC maps to (VINTF v, LVCMDQ lidx), or -1.
  int allocated_queue(unsigned v, unsigned lidx) const;
  void kick_all();
  void update_error_maps();

  CmdqvConfig cfg_;
  Smmuv3& smmu_;
  common::RegisterFile regs_;
  using R32 = common::Reg<uint32_t>;
  using R64 = common::Reg<uint64_t>;
  R32 config_, param_, status_, vintf_err_map_lo_, vintf_err_map_hi_, vintf_int_mask_;
  std::vector<std::unique_ptr<R32>> cmdq_err_map_, cmdq_alloc_;
  struct Vintf {
    std::unique_ptr<R32> config, status;
    std::vector<std::unique_ptr<R32>> sid_match, sid_replace;
    std::vector<std::unique_ptr<R64>> lvcmdq_err_map;
  };
  std::vector<Vintf> vintf_;
  std::vector<std::unique_ptr<Vcmdq>> vcmdq_;
};

}  // namespace iommusim::smmuv3

// SMMUv3 register offsets and ID-register fields (Arm SMMUv3 architecture specification,
// IHI 0070, chapter 6: memory map and registers; Linux ARM_SMMU_* offsets).
#pragma once
#include <cstdint>

#include "models/common/bits.h"

namespace iommusim::smmuv3::reg {

using common::Field;

constexpr uint64_t IDR0 = 0x000, IDR1 = 0x004, IDR2 = 0x008, IDR3 = 0x00C, IDR4 = 0x010, IDR5 = 0x014,
                   IIDR = 0x018, AIDR = 0x01C, CR0 = 0x020, CR0ACK = 0x024, CR1 = 0x028, CR2 = 0x02C,
                   GBPA = 0x044, IRQ_CTRL = 0x050, IRQ_CTRLACK = 0x054, GERROR = 0x060, GERRORN = 0x064,
                   GERROR_IRQ_CFG0 = 0x068, GERROR_IRQ_CFG1 = 0x070, GERROR_IRQ_CFG2 = 0x074, STRTAB_BASE = 0x080, STRTAB_BASE_CFG = 0x088,
                   CMDQ_BASE = 0x090, CMDQ_PROD = 0x098, CMDQ_CONS = 0x09C, EVTQ_BASE = 0x0A0,
                   EVTQ_IRQ_CFG0 = 0x0B0, EVTQ_IRQ_CFG1 = 0x0B8, EVTQ_IRQ_CFG2 = 0x0BC,
                   EVTQ_PROD = 0x100A8, EVTQ_CONS = 0x100AC,   // page 1 (also aliased at 0xA8/0xAC)
                   EVTQ_PROD_PAGE0 = 0x0A8, EVTQ_CONS_PAGE0 = 0x0AC, IDR6 = 0x190;
constexpr uint64_t kMmioBytes = 0x20000;   // two 64 KB pages

// IDR0
using IDR0_S2P = Field<0, 0>; using IDR0_S1P = Field<1, 1>; using IDR0_TTF = Field<3, 2>;
using IDR0_COHACC = Field<4, 4>; using IDR0_HTTU = Field<7, 6>; using IDR0_ASID16 = Field<12, 12>; using IDR0_MSI = Field<13, 13>;
using IDR0_SEV = Field<14, 14>; using IDR0_VMID16 = Field<18, 18>; using IDR0_TTENDIAN = Field<22, 21>;
using IDR0_STALL_MODEL = Field<25, 24>; using IDR0_TERM_MODEL = Field<26, 26>; using IDR0_ST_LEVEL = Field<28, 27>;
// IDR1
using IDR1_SIDSIZE = Field<5, 0>; using IDR1_SSIDSIZE = Field<10, 6>; using IDR1_EVTQS = Field<20, 16>;
using IDR1_CMDQS = Field<25, 21>;
// IDR1.ECMDQ (SMMUv3.3): Enhanced Command queue interfaces present (Linux series
// "iommu/arm-smmu-v3: Add support for ECMDQ register mode": IDR1_ECMDQ (1 << 31)).
using IDR1_ECMDQ = Field<31, 31>;
// IDR6 (0x190, SMMUv3.3; the series' ARM_SMMU_IDR6, IDR6_LOG2NUMP GENMASK(27, 24),
// IDR6_LOG2NUMQ GENMASK(19, 16)): log2 of the command queue control pages, log2 of the
// ECMDQs in each page. IDR6_BA_DOORBELLS GENMASK(9, 0) is the series' (the doorbell base);
// IHI 0070 has IDR6[15:0] RES0. The model reads 0 there either way.
using IDR6_LOG2NUMQ = Field<19, 16>; using IDR6_LOG2NUMP = Field<27, 24>; using IDR6_BA_DOORBELLS = Field<9, 0>;
// IDR3 / IDR5
using IDR3_RIL = Field<10, 10>;
using IDR5_OAS = Field<2, 0>; using IDR5_GRAN4K = Field<4, 4>; using IDR5_GRAN16K = Field<5, 5>;
using IDR5_GRAN64K = Field<6, 6>;
// CR0
// AIDR: ArchMajorRev[7:4] (0 = SMMUv3), ArchMinorRev[3:0] (2 = v3.2).
using AIDR_MAJOR = Field<7, 4>; using AIDR_MINOR = Field<3, 0>;
using CR0_SMMUEN = Field<0, 0>; using CR0_EVTQEN = Field<2, 2>; using CR0_CMDQEN = Field<3, 3>;
// GBPA
using GBPA_ABORT = Field<20, 20>; using GBPA_UPDATE = Field<31, 31>;
// GERROR
using GERROR_CMDQ_ERR = Field<0, 0>;
// An ECMDQ reported a command error (the series' GERROR_CMDQP_ERR (1 << 9); Marvell
// Odyssey CSR SMMU()_GERROR.CMDQP_ERR, bit 9).
using GERROR_CMDQP_ERR = Field<9, 9>;
// STRTAB_BASE / _CFG
using STRTAB_BASE_ADDR = Field<51, 6>;
using STRTAB_CFG_LOG2SIZE = Field<5, 0>; using STRTAB_CFG_SPLIT = Field<10, 6>; using STRTAB_CFG_FMT = Field<17, 16>;
// Queue base registers (CMDQ_BASE, EVTQ_BASE)
using Q_BASE_LOG2SIZE = Field<4, 0>; using Q_BASE_ADDR = Field<51, 5>;
// CMDQ_CONS error field
using CMDQ_CONS_ERR = Field<30, 24>;
constexpr uint32_t CERROR_NONE = 0, CERROR_ILL = 1, CERROR_ABT = 2, CERROR_ATC_INV_SYNC = 3;
// EVTQ_PROD overflow flag
using EVTQ_PROD_OVFLG = Field<31, 31>;

// ---- Enhanced Command queue interfaces (SMMUv3.3, IHI 0070 "Enhanced Command queue
// interfaces"). Positions from the Linux series "iommu/arm-smmu-v3: Add support for ECMDQ
// register mode" (Zhen Lei, resent by Tanmay Jagdale, v3 2024; not merged upstream) and the
// Marvell Odyssey CSR definitions (SMMU()_ECMDQ_PROD/CONS/BASE, SMMU()_CMDQ_CONTROL_PAGE_BASE),
// which agree bit for bit.
// SMMU_CMDQ_CONTROL_PAGE_BASE<n> (page 0, 0x4000 + 32n; the series' ARM_SMMU_ECMDQ_CP_BASE):
// PRESET[0] (1: register mode, the only one Linux accepts), CMDQGS[2:1] (the control page's
// granule, 0b01: 64 KB, IHI 0070 §6.3.49), ADDR[55:16], the control page's offset from the
// SMMU's base (Linux masks GENMASK(51, 12); the same for a 64 KB-aligned page below 2^52).
constexpr uint64_t CMDQ_CONTROL_PAGE_BASE(unsigned n) { return 0x4000 + 32ull * n; }
using CP_PRESET = Field<0, 0>; using CP_CMDQGS = Field<2, 1>; using CP_ADDR = Field<55, 16>;
constexpr uint64_t kCmdqgs64K = 1;   // CMDQGS 0b01
constexpr uint64_t kControlPageBytes = 0x10000;   // the series' ECMDQ_CP_RRESET_SIZE
// MODEL CHOICE: the one control page sits right after page 1 (Odyssey has its at 0x180000;
// software finds it through CMDQ_CONTROL_PAGE_BASE0.ADDR either way).
constexpr uint64_t kEcmdqControlPage = 0x20000;
// ECMDQ n of a page is at n x (64 KB >> IDR6.LOG2NUMQ) in it (Linux arm_smmu_ecmdq_probe's
// `gap`; Odyssey: 128 queues 0x200 apart), its registers at:
constexpr uint64_t ECMDQ_BASE = 0x00, ECMDQ_PROD = 0x08, ECMDQ_CONS = 0x0C;
constexpr uint64_t ecmdq_stride(unsigned log2numq) { return kControlPageBytes >> log2numq; }
// IDR6.LOG2NUMQ of a control page holding `queues` ECMDQs (a power of two; 0 for none).
constexpr unsigned ecmdq_log2numq(unsigned queues) {
  unsigned log2 = 0;
  while ((2u << log2) <= queues) ++log2;
  return log2;
}
// ECMDQ_BASE: as CMDQ_BASE (ADDR[51:5], LOG2SIZE[4:0], RA[62]).
// ECMDQ_PROD: WR[19:0] (index + wrap), ERRACK[23], EN[31] (ECMDQ_PROD_ERRACK, ECMDQ_PROD_EN).
using ECMDQ_PROD_ERRACK = Field<23, 23>; using ECMDQ_PROD_EN = Field<31, 31>;
// ECMDQ_CONS: RD[19:0], ERR[23] (toggles on an error; the queue is stopped while it differs
// from PROD.ERRACK), ERR_REASON[26:24] (the CERROR_* codes of CMDQ_CONS.ERR), ENACK[31]
// (ECMDQ_CONS_ERR, ECMDQ_CONS_ENACK; Odyssey ERR_REASON bits 26:24).
using ECMDQ_CONS_ERR = Field<23, 23>; using ECMDQ_CONS_ERR_REASON = Field<26, 24>; using ECMDQ_CONS_ENACK = Field<31, 31>;
constexpr uint32_t kEcmdqPointerMask = 0xFFFFF;   // WR / RD [19:0]

}  // namespace iommusim::smmuv3::reg

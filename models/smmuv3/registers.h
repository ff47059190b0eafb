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
                   EVTQ_PROD_PAGE0 = 0x0A8, EVTQ_CONS_PAGE0 = 0x0AC;
constexpr uint64_t kMmioBytes = 0x20000;   // two 64 KB pages

// IDR0
using IDR0_S2P = Field<0, 0>; using IDR0_S1P = Field<1, 1>; using IDR0_TTF = Field<3, 2>;
using IDR0_COHACC = Field<4, 4>; using IDR0_HTTU = Field<7, 6>; using IDR0_ASID16 = Field<12, 12>; using IDR0_MSI = Field<13, 13>;
using IDR0_SEV = Field<14, 14>; using IDR0_VMID16 = Field<18, 18>; using IDR0_TTENDIAN = Field<22, 21>;
using IDR0_STALL_MODEL = Field<25, 24>; using IDR0_TERM_MODEL = Field<26, 26>; using IDR0_ST_LEVEL = Field<28, 27>;
// IDR1
using IDR1_SIDSIZE = Field<5, 0>; using IDR1_SSIDSIZE = Field<10, 6>; using IDR1_EVTQS = Field<20, 16>;
using IDR1_CMDQS = Field<25, 21>;
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

}  // namespace iommusim::smmuv3::reg

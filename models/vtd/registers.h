// Intel VT-d (scalable mode) register offsets and register fields
// (Intel VT-d architecture specification, chapter 11: register descriptions; Linux
// intel/iommu.h; QEMU intel_iommu_internal.h).
// Models: the DMA-remapping register block with QEMU's placement of the IOTLB
// registers (0xF0) and fault-recording registers (0x220), the CAP/ECAP fields of VT-d
// sections 11.4.2/11.4.3 (not ECAP bit 28), CAP/ECAP builders and parsers.
// Does not model: MTRRs, PMRs, perfmon, ECMD, VCMD, the page-request queue fields,
// interrupt remapping (IRTA is only an offset here).
#pragma once
#include <cassert>
#include <cstdint>

#include "models/common/bits.h"

namespace iommusim::vtd::reg {

using common::Field;

constexpr uint64_t VER = 0x00, CAP = 0x08, ECAP = 0x10, GCMD = 0x18, GSTS = 0x1C, RTADDR = 0x20,
                   CCMD = 0x28, FSTS = 0x34, FECTL = 0x38, FEDATA = 0x3C, FEADDR = 0x40, FEUADDR = 0x44,
                   AFLOG = 0x58, PMEN = 0x64, PLMBASE = 0x68, PLMLIMIT = 0x6C, PHMBASE = 0x70,
                   PHMLIMIT = 0x78, IQH = 0x80, IQT = 0x88, IQA = 0x90, ICS = 0x9C, IECTL = 0xA0,
                   IEDATA = 0xA4, IEADDR = 0xA8, IEUADDR = 0xAC, IQER = 0xB0, IRTA = 0xB8, PQH = 0xC0,
                   PQT = 0xC8, PQA = 0xD0, PRS = 0xDC, PECTL = 0xE0, PEDATA = 0xE4, PEADDR = 0xE8,
                   PEUADDR = 0xEC, PERFCAP = 0x300;

// The IOTLB and fault-recording registers move with ECAP.IRO / CAP.FRO (units of 16 B).
// QEMU's placement: IVA at 0xF0, IOTLB at 0xF8, FRCD[0] at 0x220.
constexpr uint64_t IVA = 0xF0, IOTLB = IVA + 8;
constexpr uint64_t FRCD_BASE = 0x220;
constexpr uint64_t kFrcdBytes = 16;
constexpr uint64_t frcd(unsigned i) { return FRCD_BASE + kFrcdBytes * i; }
constexpr uint16_t kEcapIro = IVA / 16;        // 0x00F
constexpr uint16_t kCapFro = FRCD_BASE / 16;   // 0x022
static_assert(IVA % 16 == 0 && FRCD_BASE % 16 == 0, "IRO/FRO count 16-byte units");
// Fault records must end before PERFCAP (0x300): (0x300 - 0x220) / 16 = 14.
constexpr unsigned kMaxFaultRecords = (PERFCAP - FRCD_BASE) / kFrcdBytes;
constexpr uint64_t kMmioBytes = 0x1000;   // one 4 KiB page, as Linux maps it

// VER
using VER_MIN = Field<3, 0>; using VER_MAX = Field<7, 4>;

// CAP (64-bit)
using CAP_ND = Field<2, 0>;          // #domains = 2^(4 + 2*ND)
using CAP_AFL = Field<3, 3>; using CAP_RWBF = Field<4, 4>; using CAP_PLMR = Field<5, 5>;
using CAP_PHMR = Field<6, 6>; using CAP_CM = Field<7, 7>;
using CAP_SAGAW = Field<12, 8>;      // bit1 = 39-bit/3-level, bit2 = 48/4, bit3 = 57/5
using CAP_MGAW = Field<21, 16>;      // MGAW - 1
using CAP_ZLR = Field<22, 22>; using CAP_ISOCH = Field<23, 23>;
using CAP_FRO = Field<33, 24>;       // fault-recording offset / 16
using CAP_SLLPS = Field<37, 34>;     // bit0 = 2 MiB, bit1 = 1 GiB second-stage pages
using CAP_PSI = Field<39, 39>;
using CAP_NFR = Field<47, 40>;       // number of fault-recording registers - 1
using CAP_MAMV = Field<53, 48>;
using CAP_DWD = Field<54, 54>; using CAP_DRD = Field<55, 55>; using CAP_FL1GP = Field<56, 56>;
using CAP_PI = Field<59, 59>; using CAP_FL5LP = Field<60, 60>; using CAP_ECMDS = Field<61, 61>;
using CAP_ESIRTPS = Field<62, 62>; using CAP_ESRTPS = Field<63, 63>;

// ECAP (64-bit)
using ECAP_C = Field<0, 0>; using ECAP_QI = Field<1, 1>; using ECAP_DT = Field<2, 2>;
using ECAP_IR = Field<3, 3>; using ECAP_EIM = Field<4, 4>; using ECAP_PT = Field<6, 6>;
using ECAP_SC = Field<7, 7>;
using ECAP_IRO = Field<17, 8>;       // IOTLB-register offset / 16
using ECAP_MHMV = Field<23, 20>;
using ECAP_MTS = Field<25, 25>; using ECAP_NEST = Field<26, 26>; using ECAP_DIS = Field<27, 27>;
using ECAP_PRS = Field<29, 29>; using ECAP_ERS = Field<30, 30>; using ECAP_SRS = Field<31, 31>;
using ECAP_NWFS = Field<33, 33>; using ECAP_EAFS = Field<34, 34>;
using ECAP_PSS = Field<39, 35>;      // PASID bits - 1
using ECAP_PASID = Field<40, 40>; using ECAP_DIT = Field<41, 41>; using ECAP_PDS = Field<42, 42>;
using ECAP_SMTS = Field<43, 43>; using ECAP_VCS = Field<44, 44>; using ECAP_SSADS = Field<45, 45>;
using ECAP_SSTS = Field<46, 46>; using ECAP_FSTS = Field<47, 47>; using ECAP_SMPWCS = Field<48, 48>;
using ECAP_RPS = Field<49, 49>; using ECAP_PMS = Field<51, 51>;

// GCMD (write) / GSTS (read back): the same bit positions.
using GCMD_CFI = Field<23, 23>; using GCMD_SIRTP = Field<24, 24>; using GCMD_IRE = Field<25, 25>;
using GCMD_QIE = Field<26, 26>; using GCMD_WBF = Field<27, 27>; using GCMD_EAFL = Field<28, 28>;
using GCMD_SFL = Field<29, 29>; using GCMD_SRTP = Field<30, 30>; using GCMD_TE = Field<31, 31>;
using GSTS_CFIS = Field<23, 23>; using GSTS_IRTPS = Field<24, 24>; using GSTS_IRES = Field<25, 25>;
using GSTS_QIES = Field<26, 26>; using GSTS_WBFS = Field<27, 27>; using GSTS_AFLS = Field<28, 28>;
using GSTS_FLS = Field<29, 29>; using GSTS_RTPS = Field<30, 30>; using GSTS_TES = Field<31, 31>;

// RTADDR
using RTADDR_TTM = Field<11, 10>;
using RTADDR_RTA = Field<63, 12>;
constexpr uint8_t TTM_LEGACY = 0, TTM_SCALABLE = 1;  // 2 and 3 are not modelled

// CCMD (register-based context-cache invalidation)
using CCMD_DID = Field<15, 0>; using CCMD_SID = Field<31, 16>; using CCMD_FM = Field<33, 32>;
using CCMD_CAIG = Field<60, 59>; using CCMD_CIRG = Field<62, 61>; using CCMD_ICC = Field<63, 63>;

// IVA / IOTLB (register-based IOTLB invalidation)
using IVA_AM = Field<5, 0>; using IVA_IH = Field<6, 6>; using IVA_ADDR = Field<63, 12>;
using IOTLB_DID = Field<47, 32>; using IOTLB_DW = Field<48, 48>; using IOTLB_DR = Field<49, 49>;
using IOTLB_IAIG = Field<58, 57>; using IOTLB_IIRG = Field<61, 60>; using IOTLB_IVT = Field<63, 63>;
// CIRG/CAIG and IIRG/IAIG granularity values.
constexpr uint8_t GRAN_GLOBAL = 1, GRAN_DOMAIN = 2, GRAN_DEVICE_OR_PAGE = 3;

// FSTS (RW1C status bits, FRI read-only)
using FSTS_PFO = Field<0, 0>; using FSTS_PPF = Field<1, 1>; using FSTS_IQE = Field<4, 4>;
using FSTS_ICE = Field<5, 5>; using FSTS_ITE = Field<6, 6>; using FSTS_PRO = Field<7, 7>;
using FSTS_FRI = Field<15, 8>;

// FECTL / IECTL / PECTL: interrupt mask and pending.
using ECTL_IP = Field<30, 30>; using ECTL_IM = Field<31, 31>;
using FECTL_IP = ECTL_IP; using FECTL_IM = ECTL_IM;
using IECTL_IP = ECTL_IP; using IECTL_IM = ECTL_IM;
// FEDATA/IEDATA: 32-bit data; FEADDR/IEADDR: dword-aligned address [31:2].
using EADDR_MA = Field<31, 2>;

// Invalidation queue
using IQA_QS = Field<2, 0>;          // queue size = 2^QS 4 KiB pages
using IQA_DW = Field<11, 11>;        // 1 = 256-bit descriptors
using IQA_IQA = Field<63, 12>;
using IQH_QH = Field<18, 4>;         // byte offset of the next descriptor
using IQT_QT = Field<18, 4>;
using ICS_IWC = Field<0, 0>;
using IQER_IQEI = Field<3, 0>; using IQER_ITESID = Field<47, 32>; using IQER_ICESID = Field<63, 48>;

// IQER.IQEI: why FSTS.IQE was set (VT-d spec, Invalidation Queue Error Record Register;
// values 0-6, ITE-related ones are not modelled).
enum class Iqei : uint8_t {
  NoInfo = 0,
  InvalidTail = 1,        // IQT beyond the queue
  FetchError = 2,
  InvalidType = 3,        // unknown type, or a 256-bit-only type in a 128-bit queue
  ReservedField = 4,      // reserved bit or reserved encoding in a known type
  InvalidWidth = 5,       // IQA.DW holds a descriptor width the hardware does not accept
  TailMisaligned = 6,     // IQA.DW=1 (256-bit descriptors) and IQT bit 4 set
};

// Queue geometry: 128-bit descriptors are 16 B, 256-bit ones 32 B (Linux qi_shift).
constexpr unsigned iq_shift(bool dw256) { return dw256 ? 5 : 4; }
constexpr uint64_t iq_entries(unsigned qs, bool dw256) { return (uint64_t{4096} << qs) >> iq_shift(dw256); }
constexpr uint64_t iq_index(uint64_t iqh_or_iqt, bool dw256) {
  return (iqh_or_iqt & common::mask(IQT_QT::hi, IQT_QT::lo)) >> iq_shift(dw256);
}
constexpr uint64_t iq_reg_value(uint64_t index, bool dw256) { return index << iq_shift(dw256); }
// With 256-bit descriptors IQT bit 4 is reserved: a tail with it set is an invalid tail.
constexpr uint64_t kIqtBit4 = uint64_t{1} << 4;

// ---- CAP / ECAP as named members: builders for a model, parsers for a driver ----

struct Capability {
  uint8_t nd = 6;                 // 16-bit DIDs
  bool afl = false, rwbf = false, plmr = false, phmr = false, cm = false;
  uint8_t sagaw = 0x4;            // 48-bit, 4-level
  unsigned mgaw_bits = 48;        // field holds mgaw_bits - 1
  bool zlr = false, isoch = false;
  uint16_t fro = kCapFro;
  uint8_t sllps = 0;
  bool psi = true;
  unsigned num_fault_records = 1; // field holds count - 1
  uint8_t mamv = 18;              // QEMU VTD_MAMV
  bool dwd = false, drd = false, fl1gp = false, pi = false, fl5lp = false, ecmds = false;
  bool esirtps = false, esrtps = false;

  unsigned did_bits() const { return 4 + 2 * nd; }
  uint64_t fault_record_offset() const { return uint64_t{fro} * 16; }
};

struct ExtCapability {
  bool c = false, qi = true, dt = false, ir = false, eim = false, pt = true, sc = false;
  uint16_t iro = kEcapIro;
  uint8_t mhmv = 0;
  bool mts = false, nest = false, dis = false, prs = false, ers = false, srs = false;
  bool nwfs = false, eafs = false;
  uint8_t pss = 19;               // PASID bits - 1
  bool pasid = true, dit = false, pds = false, smts = true, vcs = false;
  bool ssads = false, ssts = true, fsts = true, smpwcs = false, rps = false, pms = false;

  unsigned pasid_bits() const { return pss + 1u; }
  uint64_t iotlb_reg_offset() const { return uint64_t{iro} * 16; }
};

// Asserts that every field fits (mgaw_bits 1..64, num_fault_records 1..256).
inline uint64_t encode_cap(const Capability& c) {
  assert(c.mgaw_bits >= 1 && c.num_fault_records >= 1);
  uint64_t v = 0;
  CAP_ND::put(v, c.nd);
  CAP_AFL::put(v, c.afl);
  CAP_RWBF::put(v, c.rwbf);
  CAP_PLMR::put(v, c.plmr);
  CAP_PHMR::put(v, c.phmr);
  CAP_CM::put(v, c.cm);
  CAP_SAGAW::put(v, c.sagaw);
  CAP_MGAW::put(v, c.mgaw_bits - 1);
  CAP_ZLR::put(v, c.zlr);
  CAP_ISOCH::put(v, c.isoch);
  CAP_FRO::put(v, c.fro);
  CAP_SLLPS::put(v, c.sllps);
  CAP_PSI::put(v, c.psi);
  CAP_NFR::put(v, c.num_fault_records - 1);
  CAP_MAMV::put(v, c.mamv);
  CAP_DWD::put(v, c.dwd);
  CAP_DRD::put(v, c.drd);
  CAP_FL1GP::put(v, c.fl1gp);
  CAP_PI::put(v, c.pi);
  CAP_FL5LP::put(v, c.fl5lp);
  CAP_ECMDS::put(v, c.ecmds);
  CAP_ESIRTPS::put(v, c.esirtps);
  CAP_ESRTPS::put(v, c.esrtps);
  return v;
}

inline Capability decode_cap(uint64_t v) {
  Capability c;
  c.nd = CAP_ND::get(v);
  c.afl = CAP_AFL::get(v);
  c.rwbf = CAP_RWBF::get(v);
  c.plmr = CAP_PLMR::get(v);
  c.phmr = CAP_PHMR::get(v);
  c.cm = CAP_CM::get(v);
  c.sagaw = CAP_SAGAW::get(v);
  c.mgaw_bits = CAP_MGAW::get(v) + 1;
  c.zlr = CAP_ZLR::get(v);
  c.isoch = CAP_ISOCH::get(v);
  c.fro = CAP_FRO::get(v);
  c.sllps = CAP_SLLPS::get(v);
  c.psi = CAP_PSI::get(v);
  c.num_fault_records = CAP_NFR::get(v) + 1;
  c.mamv = CAP_MAMV::get(v);
  c.dwd = CAP_DWD::get(v);
  c.drd = CAP_DRD::get(v);
  c.fl1gp = CAP_FL1GP::get(v);
  c.pi = CAP_PI::get(v);
  c.fl5lp = CAP_FL5LP::get(v);
  c.ecmds = CAP_ECMDS::get(v);
  c.esirtps = CAP_ESIRTPS::get(v);
  c.esrtps = CAP_ESRTPS::get(v);
  return c;
}

inline uint64_t encode_ecap(const ExtCapability& e) {
  uint64_t v = 0;
  ECAP_C::put(v, e.c);
  ECAP_QI::put(v, e.qi);
  ECAP_DT::put(v, e.dt);
  ECAP_IR::put(v, e.ir);
  ECAP_EIM::put(v, e.eim);
  ECAP_PT::put(v, e.pt);
  ECAP_SC::put(v, e.sc);
  ECAP_IRO::put(v, e.iro);
  ECAP_MHMV::put(v, e.mhmv);
  ECAP_MTS::put(v, e.mts);
  ECAP_NEST::put(v, e.nest);
  ECAP_DIS::put(v, e.dis);
  ECAP_PRS::put(v, e.prs);
  ECAP_ERS::put(v, e.ers);
  ECAP_SRS::put(v, e.srs);
  ECAP_NWFS::put(v, e.nwfs);
  ECAP_EAFS::put(v, e.eafs);
  ECAP_PSS::put(v, e.pss);
  ECAP_PASID::put(v, e.pasid);
  ECAP_DIT::put(v, e.dit);
  ECAP_PDS::put(v, e.pds);
  ECAP_SMTS::put(v, e.smts);
  ECAP_VCS::put(v, e.vcs);
  ECAP_SSADS::put(v, e.ssads);
  ECAP_SSTS::put(v, e.ssts);
  ECAP_FSTS::put(v, e.fsts);
  ECAP_SMPWCS::put(v, e.smpwcs);
  ECAP_RPS::put(v, e.rps);
  ECAP_PMS::put(v, e.pms);
  return v;
}

inline ExtCapability decode_ecap(uint64_t v) {
  ExtCapability e;
  e.c = ECAP_C::get(v);
  e.qi = ECAP_QI::get(v);
  e.dt = ECAP_DT::get(v);
  e.ir = ECAP_IR::get(v);
  e.eim = ECAP_EIM::get(v);
  e.pt = ECAP_PT::get(v);
  e.sc = ECAP_SC::get(v);
  e.iro = ECAP_IRO::get(v);
  e.mhmv = ECAP_MHMV::get(v);
  e.mts = ECAP_MTS::get(v);
  e.nest = ECAP_NEST::get(v);
  e.dis = ECAP_DIS::get(v);
  e.prs = ECAP_PRS::get(v);
  e.ers = ECAP_ERS::get(v);
  e.srs = ECAP_SRS::get(v);
  e.nwfs = ECAP_NWFS::get(v);
  e.eafs = ECAP_EAFS::get(v);
  e.pss = ECAP_PSS::get(v);
  e.pasid = ECAP_PASID::get(v);
  e.dit = ECAP_DIT::get(v);
  e.pds = ECAP_PDS::get(v);
  e.smts = ECAP_SMTS::get(v);
  e.vcs = ECAP_VCS::get(v);
  e.ssads = ECAP_SSADS::get(v);
  e.ssts = ECAP_SSTS::get(v);
  e.fsts = ECAP_FSTS::get(v);
  e.smpwcs = ECAP_SMPWCS::get(v);
  e.rps = ECAP_RPS::get(v);
  e.pms = ECAP_PMS::get(v);
  return e;
}

}  // namespace iommusim::vtd::reg

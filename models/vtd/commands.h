// VT-d queued-invalidation descriptors: builders (what a driver writes), the one
// decoder the model's invalidation-queue consumer uses, the device-TLB size
// encoding, and Linux's page-selective invalidation planner
// (Intel VT-d architecture specification, section 6.5.2 (queued invalidation descriptors);
// Linux intel/iommu.h, dmar.c, cache.c; QEMU masks).
// Models: descriptor types 1-9. The type is 7 bits, qw0[11:9]:qw0[3:0] (QEMU follows
// the spec here), so bits 11:9 are never "reserved": a nonzero value is another type.
// Types 6-9 are 256-bit descriptors and are invalid in a 128-bit queue (IQA.DW=0);
// in a 256-bit queue qw2/qw3 of every type must be zero.
// Does not model: page-stream response (0xA) and types above it (decoded as
// invalid), interrupt-remapping semantics of the IEC descriptor (fields only).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/vtd/registers.h"
#include "models/vtd/structures.h"  // kPageShift, SID helpers

namespace iommusim::vtd {

enum class DescType : uint8_t {
  ContextCache = 0x1, Iotlb = 0x2, DevTlb = 0x3, Iec = 0x4, InvWait = 0x5,
  PasidIotlb = 0x6, PasidCache = 0x7, PasidDevTlb = 0x8, PageGroupResp = 0x9,
  PageStreamResp = 0xA  // named for messages only: always decoded as invalid
};

// Granularity (G) encodings, per descriptor type. Values not listed are reserved.
enum class CcGran : uint8_t { Global = 1, Domain = 2, Device = 3 };
enum class IotlbGran : uint8_t { Global = 1, Domain = 2, Page = 3 };
enum class PiotlbGran : uint8_t { Pasid = 2 /* all of a PASID, non-global */, Page = 3 };
enum class PcGran : uint8_t { Domain = 0, Pasid = 1, Global = 3 };
// IEC G: Linux QI_IEC_SELECTIVE sets the bit for index-selective; QEMU's code also
// treats G=0 as global (only its struct comment says otherwise).
enum class IecGran : uint8_t { Global = 0, Index = 1 };

// Page-group response codes (others are reserved).
constexpr uint8_t kRespSuccess = 0x0, kRespInvalid = 0x1, kRespFailure = 0xF;

// qw0..qw3. A 128-bit descriptor is qw0/qw1; builders leave qw2/qw3 zero.
using DescWords = std::array<uint64_t, 4>;

struct Descriptor {  // decoded form; fields not used by a type are zero
  DescType type = DescType::InvWait;
  uint8_t g = 0;          // granularity as encoded (see the *Gran enums)
  uint16_t did = 0;
  uint16_t sid = 0;       // CC, device-TLB, P_DEV_TLB; page-group response RID
  uint8_t fm = 0;         // CC function mask (ignore the low FM bits of the devfn)
  uint32_t pasid = 0;
  // IOTLB / P_IOTLB
  bool dr = false, dw = false;  // drain reads / writes (IOTLB only)
  uint8_t am = 0;               // 2^AM pages
  bool ih = false;              // invalidation hint: only leaf entries changed
  uint64_t addr = 0;            // IOTLB/P_IOTLB page address; device-TLB ADDR field as encoded
  // Device-TLB / P_DEV_TLB
  uint16_t pfsid = 0;     // physical-function SID, only with ECAP.DIT
  uint8_t mip = 0;        // MIP / Linux "qdep"
  bool size = false;      // S: ADDR's low bits encode the span (decode_devtlb_range)
  bool global = false;    // P_DEV_TLB G: all PASIDs of the device
  // IEC
  uint8_t im = 0;
  uint16_t iidx = 0;
  // Invalidation wait
  bool iflag = false, sw = false, fn = false, pd = false;
  uint32_t status_data = 0;
  uint64_t status_addr = 0;  // 4-byte aligned
  // Page-group response
  bool pasid_present = false;
  uint8_t resp_code = 0;
  uint16_t prg_index = 0;
  bool lpig = false;          // qw1 bit 2 in older specs; kept, not interpreted
};

// ---- Builders (assert that every field fits) ----
DescWords desc_context_cache(CcGran g, uint16_t did = 0, uint16_t sid = 0, uint8_t fm = 0);
// addr/am/ih only matter for IotlbGran::Page; addr must be aligned to 2^am pages.
DescWords desc_iotlb(IotlbGran g, uint16_t did, uint64_t addr = 0, uint8_t am = 0, bool ih = false,
                     bool dr = false, bool dw = false);
// Linux qi_flush_dev_iotlb: span 4 KiB << size_order from a naturally aligned addr.
// mip: invalidations pending (Linux passes the ATS queue depth; 0 = 32).
DescWords desc_dev_tlb(uint16_t sid, uint16_t pfsid, uint8_t mip, uint64_t addr, unsigned size_order);
DescWords desc_iec(IecGran g, uint16_t iidx = 0, uint8_t im = 0);
struct WaitFlags {
  bool iflag = false;  // IF: set ICS.IWC (and raise the completion event)
  bool sw = false;     // SW: write status_data to status_addr
  bool fn = false;     // FN: fence
  bool pd = false;     // PD: page-request drain (needs ECAP.PDS)
};
DescWords desc_inv_wait(WaitFlags f, uint32_t status_data = 0, uint64_t status_addr = 0);
// addr/am/ih only matter for PiotlbGran::Page.
DescWords desc_pasid_iotlb(PiotlbGran g, uint16_t did, uint32_t pasid, uint64_t addr = 0, uint8_t am = 0,
                           bool ih = false);
DescWords desc_pasid_cache(PcGran g, uint16_t did, uint32_t pasid = 0);
DescWords desc_pasid_dev_tlb(uint16_t sid, uint16_t pfsid, uint32_t pasid, uint8_t mip, uint64_t addr,
                             unsigned size_order, bool global = false);

// ---- Device-TLB address/size encoding (VT-d 6.5.2.5 device-TLB invalidate; PCIe ATS) ----
// order 0: S=0, one page. order n>0: S=1, ADDR bits [12+n-2:12] set, bit 12+n-1 clear.
// order 52 with addr 0 covers the whole 64-bit space (Linux's "flush all").
struct DevTlbAddr {
  uint64_t addr;  // ADDR field value (bits [63:12])
  bool s;
};
DevTlbAddr encode_devtlb_range(uint64_t addr, unsigned size_order);
struct DevTlbSpan {
  uint64_t base;        // aligned start
  unsigned log2_bytes;  // 12 = one page; 64 = everything
};
DevTlbSpan decode_devtlb_range(uint64_t addr, bool s);

// ---- Decoder ----
struct QiCaps {
  bool dw256 = true;           // IQA.DW: 256-bit descriptors (Linux, scalable mode)
  uint8_t mamv = 18;           // CAP.MAMV
  bool psi = true;             // CAP.PSI (IOTLB page-selective)
  unsigned did_bits = 16;      // 4 + 2 * CAP.ND
  unsigned pasid_bits = 20;    // ECAP.PSS + 1
  bool device_tlb = true;      // ECAP.DT
  bool pds = false;            // ECAP.PDS (inv_wait PD)
  bool dit = false;            // ECAP.DIT: PFSID fields meaningful, else reserved (QEMU)
};

// The caps a model exposes, read back from its CAP/ECAP and IQA.DW.
QiCaps make_qi_caps(const reg::Capability& cap, const reg::ExtCapability& ecap, bool iqa_dw);

// Decodes one descriptor. w[2]/w[3] are only looked at when caps.dw256.
// Invalid (the model sets FSTS.IQE, IQER.IQEI) -> nullopt, *why names the field and
// *iqei says InvalidType or ReservedField.
std::optional<Descriptor> decode_descriptor(const DescWords& w, const QiCaps& caps, std::string* why,
                                            reg::Iqei* iqei = nullptr);
const char* desc_type_name(DescType);
// The 7-bit type of a descriptor from its qw0 (qw0[11:9]:qw0[3:0]), known or not.
constexpr uint8_t raw_desc_type(uint64_t qw0) { return uint8_t((qw0 & 0xF) | ((qw0 >> 5) & 0x70)); }
// Every type the decoder accepts, with its name: the invalidation queue's stats by type.
std::vector<std::pair<uint8_t, std::string>> descriptor_type_names();

// ---- Page-selective invalidation planning (Linux cache.c / qi_flush_piotlb) ----
// One naturally aligned 2^am-page region covering [start, start+size), as Linux's
// calculate_psi_aligned_address. fallback=true: use a domain-selective IOTLB /
// all-in-PASID P_IOTLB instead (no PSI, am > MAMV, or size == kFlushAll).
constexpr uint64_t kFlushAll = ~uint64_t{0};
struct PsiPlan {
  bool fallback = false;
  uint64_t addr = 0;
  uint8_t am = 0;
};
PsiPlan plan_psi(uint64_t start, uint64_t size, uint8_t mamv, bool psi_supported = true);
// Exact alternative: split [start, start+size) into naturally aligned power-of-two
// chunks, each with am <= mamv (no over-invalidation). Both ends are widened to pages.
struct PsiChunk {
  uint64_t addr;
  uint8_t am;
};
std::vector<PsiChunk> split_psi(uint64_t start, uint64_t size, uint8_t mamv);
// The largest useful address mask: 2^(12 + 52) bytes is the whole 64-bit address space.
// CAP.MAMV and the AM fields are 6 bits wide, but a larger mask covers nothing more.
constexpr unsigned kMaxAddressMask = 52;
// Bytes covered by a page-selective IOTLB/P_IOTLB invalidation with mask `am`; 0 when it
// covers the whole 64-bit space (am >= 52), which is also what an InvalidationScope's
// bytes = 0 means. Never shifts by 64 or more.
constexpr uint64_t psi_bytes(uint8_t am) { return am >= kMaxAddressMask ? 0 : uint64_t{1} << (12 + am); }

}  // namespace iommusim::vtd

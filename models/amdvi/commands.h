// AMD-Vi command-buffer entries (16 bytes = 4 x u32, opcode data[1][31:28]):
// builders (what a driver writes, following Linux drivers/iommu/amd/iommu.c
// build_*), the one decoder the model's command processor uses, and the
// address/S range encoding (Linux build_inv_address) with its inverse.
// Positions: AMD IOMMU Specification (48882), section 2.4 (commands), cross-checked
// with the reserved-bit checks
// of QEMU hw/i386/amd_iommu.c and VirtualBox's AMD IOMMU command unions.
// Models all eight commands of the spec; does not model the IOTLB invalidation
// Type field (InvIotlbTypeSup), vIOMMU commands or SNP-specific behaviour.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/amdvi/registers.h"

namespace iommusim::amdvi {

enum class Opcode : uint8_t {
  CompletionWait = 0x1, InvalidateDevtabEntry = 0x2, InvalidateIommuPages = 0x3,
  InvalidateIotlbPages = 0x4, InvalidateInterruptTable = 0x5, PrefetchIommuPages = 0x6,
  CompletePprRequest = 0x7, InvalidateIommuAll = 0x8
};

// u64[0] = data[1] << 32 | data[0], u64[1] = data[3] << 32 | data[2].
using CmdWords = std::array<uint64_t, 2>;

struct Command {  // decoded form; fields an opcode does not have are zero
  Opcode op = Opcode::CompletionWait;
  // COMPLETION_WAIT
  bool store = false;      // S: write store_data to store_addr
  bool interrupt = false;  // I: set Status.ComWaitInt (and interrupt if enabled)
  bool flush = false;      // F: flush queue
  uint64_t store_addr = 0;  // byte address, bits [51:3]
  uint64_t store_data = 0;
  // invalidations, prefetch, PPR completion
  uint16_t device_id = 0;
  uint16_t domain_id = 0;
  bool gn = false;     // guest (PASID-tagged) request
  uint32_t pasid = 0;  // meaningful only with gn; read as 0 when GN=0
  bool s = false;      // address encodes a naturally aligned range (see inv_range)
  bool pde = false;    // also drop cached page-directory entries
  uint64_t address = 0;  // bits [63:12] as encoded, range bits included
  uint8_t maxpend = 0;    // INVALIDATE_IOTLB_PAGES: device's ATS invalidate queue depth
  uint16_t queue_id = 0;  // INVALIDATE_IOTLB_PAGES (Linux writes the DeviceID)
  uint8_t pf_count = 0;   // PREFETCH_IOMMU_PAGES
  bool inval = false;     // PREFETCH_IOMMU_PAGES: invalidate before prefetching
  uint16_t completion_tag = 0;  // COMPLETE_PPR_REQUEST: PRG index [8:0]
  uint8_t ppr_status = 0;       // COMPLETE_PPR_REQUEST: PRG response code [15:12]
};

// Linux CMD_INV_IOMMU_ALL_PAGES_ADDRESS: Linux passes it as the *size* to flush a
// whole domain; it encodes to kInvAllPagesAddress with S=1.
constexpr uint64_t kInvAllPagesSize = 0x7FFFFFFFFFFFFFFFull;
constexpr uint64_t kInvAllPagesAddress = 0x7FFFFFFFFFFFF000ull;

// Linux build_inv_address: one page -> page address, S=0; otherwise set every
// bit below the most significant bit that differs between the first and last
// byte, clear [11:0] and set S; if that bit is above 51, "all". Returns the
// address field with S in bit 0 (as it goes into data[2]/data[3]). size > 0.
uint64_t inv_address(uint64_t address, uint64_t size);

// The naturally aligned range an (address, S) pair covers. S=0: the 4 KB page.
// S=1: 2^(n+1) bytes where n is the lowest zero bit at or above bit 12; n >= 51
// means everything (spec "example page size encodings", as QEMU decodes it).
struct InvRange {
  uint64_t base = 0;
  uint64_t last = 0;  // inclusive, so "everything" fits
  bool all() const { return base == 0 && last == ~uint64_t{0}; }
  uint64_t bytes() const { return last - base + 1; }  // 0 when all() (2^64)
  // Does [addr, addr+len) touch the range? (Written to avoid overflow at 2^64.)
  bool overlaps(uint64_t addr, uint64_t len) const {
    if (len == 0 || addr > last) return false;
    return addr >= base || base - addr < len;
  }
};
InvRange inv_range(uint64_t address, bool s);

// Builders. Encoders assert that every field fits.
CmdWords cmd_completion_wait(bool store, bool interrupt, uint64_t store_addr = 0, uint64_t store_data = 0,
                             bool flush = false);
CmdWords cmd_inv_devtab_entry(uint16_t device_id);
// Linux always sets PDE. gn selects the PASID-tagged (guest) form.
CmdWords cmd_inv_iommu_pages(uint16_t domain_id, uint64_t address, uint64_t size, bool pde = true,
                             bool gn = false, uint32_t pasid = 0);
// Linux layout: PASID[15:8] in data[0][23:16], PASID[7:0] in data[1][23:16];
// PASID[19:16] goes to data[1][27:24] (Linux never sets it). QueueID = DeviceID.
CmdWords cmd_inv_iotlb_pages(uint16_t device_id, uint8_t maxpend, uint64_t address, uint64_t size,
                             bool gn = false, uint32_t pasid = 0);
CmdWords cmd_inv_interrupt_table(uint16_t device_id);
CmdWords cmd_prefetch_iommu_pages(uint16_t device_id, uint8_t pf_count, uint64_t address, bool s, bool inval,
                                  bool gn = false, uint32_t pasid = 0);
// Linux build_complete_ppr: PASID and GN only when gn; tag [8:0], status [15:12].
CmdWords cmd_complete_ppr(uint16_t device_id, uint32_t pasid, uint8_t status, uint16_t tag, bool gn);
CmdWords cmd_inv_iommu_all();

// Decodes one entry. An illegal command (the model logs ILLEGAL_COMMAND_ERROR and
// stops the command buffer) returns std::nullopt and sets *why (if non-null):
// unknown opcode (0, 0x9..0xF); any reserved bit set; INVALIDATE_IOTLB_PAGES Type
// != 0; INVALIDATE_IOMMU_ALL without IASup; PREFETCH without PreFSup;
// COMPLETE_PPR_REQUEST without PPRSup; GN=1 without GTSup (IOMMU_PAGES, PREFETCH);
// a GN=1 PASID wider than PASmax+1 bits.
// COMPLETION_WAIT with S=I=F=0 is legal: a pure ordering barrier (the spec makes
// store and interrupt optional; QEMU accepts it too).
std::optional<Command> decode_command(const CmdWords&, const Caps&, std::string* why);
const char* opcode_name(Opcode);
// Every opcode the decoder accepts, with its name: the command buffer's stats by type.
std::vector<std::pair<uint8_t, std::string>> command_type_names();

}  // namespace iommusim::amdvi

// AMD-Vi event-log entries (16 bytes = 4 x u32, event code event[1][31:28]).
// Knows the ten event codes 0x1-0xA of the AMD I/O Virtualization Technology (IOMMU)
// Specification (48882), section 2.5 event log, table "Event Codes": ILLEGAL_DEV_TABLE_ENTRY
// .. INVALID_DEVICE_REQUEST with their DeviceID, D/P (DomainID or PASID), flag and
// hardware-error-type fields, INVALID_PPR_REQUEST (0x9, the PPR request's DeviceID,
// PASID and tag, as Linux amd_iommu_print_event decodes it) and EVENT_COUNTER_ZERO (0xA:
// the model has no performance counters, so only the code and the address word are
// carried). Does not know the guest-event or RMP events. Positions: Linux
// amd_iommu_types.h (EVENT_*; flags = event[1][27:16], RW 0x020, I 0x008; PPR_PASID1/2)
// and the VirtualBox AMD IOMMU event unions.
#pragma once
#include <array>
#include <cstdint>

namespace iommusim::amdvi {

enum class EventCode : uint8_t {
  IllegalDevTableEntry = 0x1, IoPageFault = 0x2, DevTabHwError = 0x3, PageTabHwError = 0x4,
  IllegalCommandError = 0x5, CommandHwError = 0x6, IotlbInvTimeout = 0x7, InvalidDeviceRequest = 0x8,
  InvalidPprRequest = 0x9, EventCounterZero = 0xA
};

// u64[0] = event[1] << 32 | event[0]; u64[1] = address (event[3] << 32 | event[2]).
using EventWords = std::array<uint64_t, 2>;

// Hardware-error Type (DEV_TAB / PAGE_TAB / COMMAND_HW_ERROR).
constexpr uint8_t kHwErrMasterAbort = 1, kHwErrTargetAbort = 2, kHwErrDataError = 3;

struct EventRecord {
  EventCode code = EventCode::IoPageFault;
  uint16_t device_id = 0;
  // D/P: DomainID (GN=0) or PASID[19:0] (GN=1). [15:0] sit in event[1][15:0],
  // PASID[19:16] in event[0][19:16] (Linux EVENT_DOMID_MASK_HI).
  uint32_t domain_or_pasid = 0;
  bool gn = false;  // guest (PASID-tagged) request
  bool nx = false;  // instruction fetch
  bool us = false;  // user access
  bool i = false;   // interrupt request (not a memory access)
  bool pr = false;  // the entry was present (so: permission / reserved-bit fault)
  bool rw = false;  // write
  bool pe = false;  // permission violation
  bool rz = false;  // reserved bit set (or bad level encoding)
  bool tr = false;  // translation request (ATS) rather than a transaction
  uint8_t type = 0;  // hardware-error type [58:57]; INVALID_DEVICE_REQUEST type [59:57]
  uint16_t tag = 0;  // INVALID_PPR_REQUEST: the PPR request's tag [41:32]
  // IOVA (ILLEGAL_DEV_TABLE_ENTRY, IO_PAGE_FAULT, INVALID_DEVICE_REQUEST), the
  // system address of the DTE / PTE / command (HW errors, ILLEGAL_COMMAND_ERROR),
  // or the timed-out command's address (IOTLB_INV_TIMEOUT, bits [63:4]).
  uint64_t address = 0;
};

// Asserts that only fields the code defines are set (a stray field is a model
// bug). Fields per code (u64[0] bits):
//   ILLEGAL_DEV_TABLE_ENTRY: DeviceID, D/P, GN, I, RW, RZ, TR
//   IO_PAGE_FAULT:           DeviceID, D/P, GN, NX, US, I, PR, RW, PE, RZ, TR
//   DEV_TAB_HW_ERROR:        DeviceID, I, RW, TR, Type[58:57]
//   PAGE_TAB_HW_ERROR:       DeviceID, D/P[15:0], GN, I, RW, TR, Type[58:57]
//   ILLEGAL_COMMAND_ERROR:   (address only)
//   COMMAND_HW_ERROR:        Type[58:57]
//   IOTLB_INV_TIMEOUT:       DeviceID (address masked to [63:4])
//   INVALID_DEVICE_REQUEST:  DeviceID, D/P, GN, US, TR, Type[59:57]
//   INVALID_PPR_REQUEST:     DeviceID, PASID[15:0] at [31:16], Tag[41:32], PASID[19:16] at
//                            [45:42], flags [59:48] (GN, NX, US, I, PR, RW, PE, RZ, TR, Type)
//   EVENT_COUNTER_ZERO:      (address only)
EventWords encode_event(const EventRecord&);
// Any code is accepted and every field is read back as stored.
EventRecord decode_event(const EventWords&);
const char* event_name(EventCode);

}  // namespace iommusim::amdvi

// SMMUv3 event-queue records (32 bytes). Field positions: Arm SMMUv3 architecture
// specification (IHI 0070), section 7.3 (event records); Linux EVTQ_* masks.
#pragma once
#include <array>
#include <cstdint>

namespace iommusim::smmuv3 {

enum class EventId : uint8_t {
  F_UUT = 0x01, C_BAD_STREAMID = 0x02, F_STE_FETCH = 0x03, C_BAD_STE = 0x04, F_BAD_ATS_TREQ = 0x05,
  F_STREAM_DISABLED = 0x06, F_TRANSL_FORBIDDEN = 0x07, C_BAD_SUBSTREAMID = 0x08, F_CD_FETCH = 0x09,
  C_BAD_CD = 0x0A, F_WALK_EABT = 0x0B, F_TRANSLATION = 0x10, F_ADDR_SIZE = 0x11, F_ACCESS = 0x12,
  F_PERMISSION = 0x13, F_TLB_CONFLICT = 0x20, F_CFG_CONFLICT = 0x21
};

// CLASS of a stage-2 fault (IHI 0070, 7.3 event records): which access faulted.
enum class EventClass : uint8_t { Cd = 0, TranslationTable = 1, Input = 2 };

using EventWords = std::array<uint64_t, 4>;

struct EventRecord {
  EventId id = EventId::F_UUT;
  bool ssv = false;
  uint32_t ssid = 0;
  uint32_t sid = 0;
  uint16_t stag = 0;
  bool stall = false;
  bool pnu = false, ind = false, rnw = false, s2 = false;
  uint8_t cls = 0;  // CLASS: 0 CD fetch, 1 TT fetch, 2 input address
  bool ttrnw = false;
  uint64_t input_addr = 0;
  // dw3, meaning chosen by id (see event_dw3_form): IPA (4K-aligned byte address)
  // or the fetch address of the aborted STE/CD/descriptor (8-byte aligned).
  uint64_t ipa_or_fetch_addr = 0;
};

enum class Dw3Form { None, Ipa, FetchAddr };
// dw3 layout by event id:
//   FetchAddr[51:3]: F_STE_FETCH, F_CD_FETCH, F_WALK_EABT (external abort on a config/table fetch)
//   IPA[51:12]:      F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_TLB_CONFLICT
//   none (dw3 = 0):  everything else
Dw3Form event_dw3_form(EventId);

// Asserts that every field fits. The dw3 address is masked to its form's bits.
EventWords encode_event(const EventRecord&);
// Any EventID byte is accepted (the value is kept as is; event_name says UNKNOWN).
EventRecord decode_event(const EventWords&);
const char* event_name(EventId);

}  // namespace iommusim::smmuv3

#include "models/amdvi/events.h"

#include <cassert>

#include "models/common/bits.h"

namespace iommusim::amdvi {
namespace {

using common::Field;
using common::mask;

// u64[0]: the same flag positions in every event (Linux EVENT_FLAG_* are global).
using DeviceId = Field<15, 0>;
using PasidHi = Field<19, 16>;  // PASID[19:16]
using DpLo = Field<47, 32>;     // DomainID or PASID[15:0]
using Gn = Field<48, 48>;
using Nx = Field<49, 49>;
using Us = Field<50, 50>;
using I = Field<51, 51>;
using Pr = Field<52, 52>;
using Rw = Field<53, 53>;
using Pe = Field<54, 54>;
using Rz = Field<55, 55>;
using Tr = Field<56, 56>;
using Type = Field<59, 57>;
using Code = Field<63, 60>;
// INVALID_PPR_REQUEST carries the PPR request's own layout (Linux PPR_PASID1/PPR_PASID2).
using PprPasidLo = Field<31, 16>;
using PprTag = Field<41, 32>;
using PprPasidHi = Field<45, 42>;

constexpr uint64_t bitm(unsigned b) { return uint64_t{1} << b; }
constexpr uint64_t kDevId = mask(15, 0), kDp = mask(19, 16) | mask(47, 32), kHwType = mask(58, 57);

// Only used by encode_event's assert.
[[maybe_unused]] uint64_t allowed_w0(EventCode code) {
  switch (code) {
    case EventCode::IllegalDevTableEntry:
      return kDevId | kDp | bitm(48) | bitm(51) | bitm(53) | bitm(55) | bitm(56);
    case EventCode::IoPageFault:
      return kDevId | kDp | mask(56, 48);
    case EventCode::DevTabHwError:
      return kDevId | bitm(51) | bitm(53) | bitm(56) | kHwType;
    case EventCode::PageTabHwError:
      return kDevId | mask(47, 32) | bitm(48) | bitm(51) | bitm(53) | bitm(56) | kHwType;
    case EventCode::IllegalCommandError:
      return 0;
    case EventCode::CommandHwError:
      return kHwType;
    case EventCode::IotlbInvTimeout:
      return kDevId;
    case EventCode::InvalidDeviceRequest:
      return kDevId | kDp | bitm(48) | bitm(50) | bitm(56) | mask(59, 57);
    case EventCode::InvalidPprRequest:
      return kDevId | mask(31, 16) | mask(45, 32) | mask(59, 48);
    case EventCode::EventCounterZero:
      return 0;
  }
  return 0;
}

}  // namespace

EventWords encode_event(const EventRecord& e) {
  EventWords w{};
  DeviceId::put(w[0], e.device_id);
  assert((e.domain_or_pasid >> 20) == 0 && "D/P is at most a 20-bit PASID");
  if (e.code == EventCode::InvalidPprRequest) {
    PprPasidLo::put(w[0], common::extract(e.domain_or_pasid, 15, 0));
    PprPasidHi::put(w[0], common::extract(e.domain_or_pasid, 19, 16));
    PprTag::put(w[0], e.tag);
  } else {
    PasidHi::put(w[0], common::extract(e.domain_or_pasid, 19, 16));
    DpLo::put(w[0], common::extract(e.domain_or_pasid, 15, 0));
  }
  Gn::put(w[0], e.gn);
  Nx::put(w[0], e.nx);
  Us::put(w[0], e.us);
  I::put(w[0], e.i);
  Pr::put(w[0], e.pr);
  Rw::put(w[0], e.rw);
  Pe::put(w[0], e.pe);
  Rz::put(w[0], e.rz);
  Tr::put(w[0], e.tr);
  Type::put(w[0], e.type);
  assert((w[0] & ~allowed_w0(e.code)) == 0 && "field not defined for this event code");
  Code::put(w[0], static_cast<uint8_t>(e.code));
  // The timed-out command's address is 16-byte aligned; its low nibble is reserved.
  w[1] = e.code == EventCode::IotlbInvTimeout ? e.address & ~mask(3, 0) : e.address;
  return w;
}

EventRecord decode_event(const EventWords& w) {
  EventRecord e;
  e.code = static_cast<EventCode>(Code::get(w[0]));
  e.device_id = DeviceId::get(w[0]);
  if (e.code == EventCode::InvalidPprRequest) {
    e.domain_or_pasid = static_cast<uint32_t>((PprPasidHi::get(w[0]) << 16) | PprPasidLo::get(w[0]));
    e.tag = static_cast<uint16_t>(PprTag::get(w[0]));
  } else {
    e.domain_or_pasid = static_cast<uint32_t>((PasidHi::get(w[0]) << 16) | DpLo::get(w[0]));
  }
  e.gn = Gn::get(w[0]);
  e.nx = Nx::get(w[0]);
  e.us = Us::get(w[0]);
  e.i = I::get(w[0]);
  e.pr = Pr::get(w[0]);
  e.rw = Rw::get(w[0]);
  e.pe = Pe::get(w[0]);
  e.rz = Rz::get(w[0]);
  e.tr = Tr::get(w[0]);
  e.type = Type::get(w[0]);
  e.address = w[1];
  return e;
}

const char* event_name(EventCode code) {
  switch (code) {
    case EventCode::IllegalDevTableEntry: return "ILLEGAL_DEV_TABLE_ENTRY";
    case EventCode::IoPageFault: return "IO_PAGE_FAULT";
    case EventCode::DevTabHwError: return "DEV_TAB_HARDWARE_ERROR";
    case EventCode::PageTabHwError: return "PAGE_TAB_HARDWARE_ERROR";
    case EventCode::IllegalCommandError: return "ILLEGAL_COMMAND_ERROR";
    case EventCode::CommandHwError: return "COMMAND_HARDWARE_ERROR";
    case EventCode::IotlbInvTimeout: return "IOTLB_INV_TIMEOUT";
    case EventCode::InvalidDeviceRequest: return "INVALID_DEVICE_REQUEST";
    case EventCode::InvalidPprRequest: return "INVALID_PPR_REQUEST";
    case EventCode::EventCounterZero: return "EVENT_COUNTER_ZERO";
  }
  return "UNKNOWN";
}

}  // namespace iommusim::amdvi

#include "models/smmuv3/events.h"

#include <cassert>

#include "models/common/bits.h"

namespace iommusim::smmuv3 {
namespace {

using common::Field;
using common::mask;


// dw0
using EventIdF = Field<7, 0>;
using Ssv = Field<11, 11>;
using Ssid = Field<31, 12>;
using Sid = Field<63, 32>;
// dw1
using Stag = Field<15, 0>;
using Stall = Field<31, 31>;
using PnU = Field<33, 33>;
using InD = Field<34, 34>;
using RnW = Field<35, 35>;
using S2 = Field<39, 39>;
using Class = Field<41, 40>;
using TTRnW = Field<44, 44>;
// dw3
constexpr uint64_t kIpaMask = mask(51, 12);
constexpr uint64_t kFetchAddrMask = mask(51, 3);

uint64_t dw3_mask(EventId id) {
  switch (event_dw3_form(id)) {
    case Dw3Form::Ipa: return kIpaMask;
    case Dw3Form::FetchAddr: return kFetchAddrMask;
    case Dw3Form::None: break;
  }
  return 0;
}

}  // namespace

Dw3Form event_dw3_form(EventId id) {
  switch (id) {
    case EventId::F_STE_FETCH:
    case EventId::F_CD_FETCH:
    case EventId::F_WALK_EABT:
      return Dw3Form::FetchAddr;
    case EventId::F_TRANSLATION:
    case EventId::F_ADDR_SIZE:
    case EventId::F_ACCESS:
    case EventId::F_PERMISSION:
    case EventId::F_TLB_CONFLICT:
      return Dw3Form::Ipa;
    default:
      return Dw3Form::None;
  }
}

EventWords encode_event(const EventRecord& e) {
  EventWords w{};
  EventIdF::put(w[0], static_cast<uint8_t>(e.id));
  Ssv::put(w[0], e.ssv);
  Ssid::put(w[0], e.ssid);
  Sid::put(w[0], e.sid);
  Stag::put(w[1], e.stag);
  Stall::put(w[1], e.stall);
  PnU::put(w[1], e.pnu);
  InD::put(w[1], e.ind);
  RnW::put(w[1], e.rnw);
  S2::put(w[1], e.s2);
  Class::put(w[1], e.cls);
  TTRnW::put(w[1], e.ttrnw);
  w[2] = e.input_addr;
  w[3] = e.ipa_or_fetch_addr & dw3_mask(e.id);
  return w;
}

EventRecord decode_event(const EventWords& w) {
  EventRecord e;
  e.id = static_cast<EventId>(EventIdF::get(w[0]));
  e.ssv = Ssv::get(w[0]);
  e.ssid = Ssid::get(w[0]);
  e.sid = Sid::get(w[0]);
  e.stag = Stag::get(w[1]);
  e.stall = Stall::get(w[1]);
  e.pnu = PnU::get(w[1]);
  e.ind = InD::get(w[1]);
  e.rnw = RnW::get(w[1]);
  e.s2 = S2::get(w[1]);
  e.cls = Class::get(w[1]);
  e.ttrnw = TTRnW::get(w[1]);
  e.input_addr = w[2];
  e.ipa_or_fetch_addr = w[3] & dw3_mask(e.id);
  return e;
}

const char* event_name(EventId id) {
  switch (id) {
    case EventId::F_UUT: return "F_UUT";
    case EventId::C_BAD_STREAMID: return "C_BAD_STREAMID";
    case EventId::F_STE_FETCH: return "F_STE_FETCH";
    case EventId::C_BAD_STE: return "C_BAD_STE";
    case EventId::F_BAD_ATS_TREQ: return "F_BAD_ATS_TREQ";
    case EventId::F_STREAM_DISABLED: return "F_STREAM_DISABLED";
    case EventId::F_TRANSL_FORBIDDEN: return "F_TRANSL_FORBIDDEN";
    case EventId::C_BAD_SUBSTREAMID: return "C_BAD_SUBSTREAMID";
    case EventId::F_CD_FETCH: return "F_CD_FETCH";
    case EventId::C_BAD_CD: return "C_BAD_CD";
    case EventId::F_WALK_EABT: return "F_WALK_EABT";
    case EventId::F_TRANSLATION: return "F_TRANSLATION";
    case EventId::F_ADDR_SIZE: return "F_ADDR_SIZE";
    case EventId::F_ACCESS: return "F_ACCESS";
    case EventId::F_PERMISSION: return "F_PERMISSION";
    case EventId::F_TLB_CONFLICT: return "F_TLB_CONFLICT";
    case EventId::F_CFG_CONFLICT: return "F_CFG_CONFLICT";
  }
  return "UNKNOWN";
}

}  // namespace iommusim::smmuv3

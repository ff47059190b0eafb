#include "models/vtd/register_block.h"

#include <algorithm>
#include <string>

#include "models/common/bits.h"

namespace iommusim::vtd {

using namespace reg;

namespace {
constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }
// FSTS bits software clears by writing 1: PFO, IQE, ICE, ITE, PRO. PPF is read-only, the
// OR of the FRCDs' F bits (VT-d spec, Fault Status Register): a driver that writes it back
// (Linux dmar_fault does) must not clear it while a record is still pending.
constexpr uint64_t kFstsW1c = bit(0) | bit(4) | bit(5) | bit(6) | bit(7);
constexpr uint64_t kFrcdF = bit(63);
std::string frcd_name(unsigned i, bool hi) { return "FRCD" + std::to_string(i) + (hi ? "_HI" : "_LO"); }
}  // namespace

RegisterBlock::RegisterBlock(common::RegisterFile& f, const Features& ft, Hooks hooks)
    : ver{f, "VER", VER}, cap{f, "CAP", CAP}, ecap{f, "ECAP", ECAP}, gcmd{f, "GCMD", GCMD}, gsts{f, "GSTS", GSTS},
      rtaddr{f, "RTADDR", RTADDR}, ccmd{f, "CCMD", CCMD}, fsts{f, "FSTS", FSTS}, fectl{f, "FECTL", FECTL},
      fedata{f, "FEDATA", FEDATA}, feaddr{f, "FEADDR", FEADDR}, feuaddr{f, "FEUADDR", FEUADDR}, iqh{f, "IQH", IQH},
      iqt{f, "IQT", IQT}, iqa{f, "IQA", IQA}, ics{f, "ICS", ICS}, iectl{f, "IECTL", IECTL},
      iedata{f, "IEDATA", IEDATA}, ieaddr{f, "IEADDR", IEADDR}, ieuaddr{f, "IEUADDR", IEUADDR},
      iqer{f, "IQER", IQER}, iva{f, "IVA", IVA}, iotlb{f, "IOTLB", IOTLB}, f_(ft), hooks_(std::move(hooks)) {
  ver.read_only().reset(0x10);   // 1.0
  cap.read_only().reset(encode_cap(f_.cap));
  ecap.read_only().reset(encode_ecap(f_.ecap));
  gsts.read_only();
  gcmd.on_write([this](uint32_t, uint32_t v) {
    uint64_t s = gsts.get();
    s = GSTS_TES::set(s, GCMD_TE::get(v));
    const bool qie_was = GSTS_QIES::get(s);
    s = GSTS_QIES::set(s, GCMD_QIE::get(v));
    if (GCMD_QIE::get(v) && !qie_was) iqh.set(0);   // enabling QI resets the head
    s = GSTS_WBFS::set(s, 0);                       // write-buffer flush completes at once
    if (GCMD_SRTP::get(v)) s = GSTS_RTPS::set(s, 1);
    gsts.set(uint32_t(s));
    if (GCMD_SRTP::get(v)) {
      const uint64_t rt = rtaddr.get();
      root_table_ = RTADDR_RTA::get(rt) << 12;
      ttm_ = uint8_t(RTADDR_TTM::get(rt));
      if (hooks_.root_table_latched) hooks_.root_table_latched();
    }
    gcmd.set(0);   // GCMD reads as 0: software keeps its own copy (Linux gcmd)
    hooks_.queue_may_run();
  });
  rtaddr.writable(common::mask(63, 12) | common::mask(11, 10));
  ccmd.on_write([this](uint64_t, uint64_t v) {
    if (!CCMD_ICC::get(v)) return;
    const uint8_t g = uint8_t(CCMD_CIRG::get(v));
    hooks_.context_invalidate(g, uint16_t(CCMD_SID::get(v)), uint8_t(CCMD_FM::get(v)));
    ccmd.set(CCMD_CAIG::set(CCMD_ICC::set(v, 0), g));
  });
  fsts.read_only().w1c(uint32_t(kFstsW1c)).on_write([this](uint32_t, uint32_t) {
    hooks_.queue_may_run();   // clearing IQE (or ITE) restarts the queue
  });
  fectl.reset(uint32_t(FECTL_IM::set(0, 1))).writable(uint32_t(FECTL_IM::set(0, 1)));
  feaddr.writable(uint32_t(common::mask(31, 2)));
  iqh.read_only();
  iqt.writable(common::mask(18, 4)).on_write([this](uint64_t, uint64_t) { hooks_.queue_may_run(); });
  iqa.writable(common::mask(63, 12) | common::mask(11, 11) | common::mask(2, 0));
  ics.read_only().w1c(1);
  iectl.reset(uint32_t(IECTL_IM::set(0, 1))).writable(uint32_t(IECTL_IM::set(0, 1)));
  ieaddr.writable(uint32_t(common::mask(31, 2)));
  iqer.read_only();
  iva.writable(common::mask(63, 12) | common::mask(6, 0));
  iotlb.on_write([this](uint64_t, uint64_t v) {
    if (!IOTLB_IVT::get(v)) return;
    const uint64_t a = iva.get();
    uint8_t g = uint8_t(IOTLB_IIRG::get(v));
    const uint8_t am = uint8_t(IVA_AM::get(a));
    // A page-selective request with AM above CAP.MAMV is incorrect: hardware ignores it
    // and reports IAIG = 00b (VT-d 11.4.8.1, IOTLB_REG.IAIG).
    if (g == GRAN_DEVICE_OR_PAGE && am > f_.cap.mamv) {
      g = 0;
    } else {
      hooks_.iotlb_invalidate(g, uint16_t(IOTLB_DID::get(v)), IVA_ADDR::get(a) << 12, am, IVA_IH::get(a),
                              IOTLB_DR::get(v) || IOTLB_DW::get(v));
    }
    iotlb.set(IOTLB_IAIG::set(IOTLB_IVT::set(v, 0), g));
  });
  for (unsigned i = 0; i < f_.cap.num_fault_records; ++i) {
    frcd_lo.emplace_back(f, frcd_name(i, false), frcd(i));
    frcd_lo.back().read_only();
    frcd_hi.emplace_back(f, frcd_name(i, true), frcd(i) + 8);
    frcd_hi.back().read_only().w1c(kFrcdF).on_write([this](uint64_t, uint64_t) { update_ppf(); });
  }
}

common::QueueState RegisterBlock::iq_state() const {
  common::QueueState q;
  const uint64_t a = iqa.get();
  const bool dw256 = IQA_DW::get(a);
  const unsigned qs = unsigned(IQA_QS::get(a));
  const uint64_t head_reg = iqh.get(), tail_reg = iqt.get();
  // 2^QS 4 KiB pages of 16- or 32-byte descriptors; IQH/IQT hold byte offsets.
  q.ring = common::IndexRing{12 + std::min(qs, f_.iq_max_qs) - iq_shift(dw256), false};
  q.base = IQA_IQA::get(a) << 12;
  q.entry_bytes = dw256 ? 32 : 16;
  q.head = uint32_t(iq_index(head_reg, dw256));
  q.tail = uint32_t(iq_index(tail_reg, dw256));
  if (!gsts.get<GSTS_QIES>() || fsts.get<FSTS_IQE>() || fsts.get<FSTS_ITE>() || head_reg == tail_reg) return q;
  q.status = common::QueueState::Status::BadPointer;
  if (dw256 && (tail_reg & kIqtBit4)) {   // a 256-bit queue's tail must be 32-byte aligned
    q.error_code = uint32_t(Iqei::TailMisaligned);
  } else if (qs > f_.iq_max_qs || q.tail >= q.ring.entries()) {
    q.error_code = uint32_t(Iqei::InvalidTail);
  } else {
    q.status = common::QueueState::Status::Ready;
  }
  return q;
}

void RegisterBlock::iq_consumed(const common::QueueState& q, uint32_t head) {
  iqh.set(iq_reg_value(head, q.entry_bytes == 32));
}

void RegisterBlock::iq_halt(const common::QueueError& e) {
  if (e.kind == common::QueueError::Kind::Completion) {   // a device-TLB invalidation timed out
    fsts.set<FSTS_ITE>(1);
    iqer.set<IQER_ITESID>(e.code);
    return;
  }
  const Iqei why = e.kind == common::QueueError::Kind::FetchAbort ? Iqei::FetchError : Iqei(e.code);
  fsts.set<FSTS_IQE>(1);
  iqer.set<IQER_IQEI>(uint64_t(why));
}

void RegisterBlock::wait_completed_interrupt() {
  ics.set(1);
  if (!iectl.get<IECTL_IM>()) iectl.set<IECTL_IP>(1);
}

std::optional<unsigned> RegisterBlock::record_fault(const FaultRecord& r) {
  const unsigned i = next_fault_;
  if (frcd_hi[i].get() & kFrcdF) {   // the next record is still pending: overflow
    fault_overflow();
    return std::nullopt;
  }
  const FrcdWords w = encode_frcd(r);
  frcd_lo[i].set(w[0]);
  frcd_hi[i].set(w[1]);
  const bool was_pending = fsts.get<FSTS_PPF>();
  fsts.set<FSTS_PPF>(1);
  if (!was_pending) fsts.set<FSTS_FRI>(i);
  if (!fectl.get<FECTL_IM>()) fectl.set<FECTL_IP>(1);
  next_fault_ = (i + 1) % unsigned(frcd_hi.size());
  return i;
}

// PPF is the OR of the F bits; FRI names the oldest pending record.
void RegisterBlock::update_ppf() {
  uint64_t s = fsts.get();
  bool any = false;
  const unsigned n = unsigned(frcd_hi.size());
  unsigned first = unsigned(FSTS_FRI::get(s));
  for (unsigned k = 0; k < n; ++k) {
    const unsigned i = (first + k) % n;
    if (frcd_hi[i].get() & kFrcdF) { any = true; first = i; break; }
  }
  s = FSTS_PPF::set(s, any);
  if (any) s = FSTS_FRI::set(s, first);
  fsts.set(uint32_t(s));
}

common::Decoded RegisterBlock::decode_queue_entry(const uint64_t* e, const common::QueueState& q, Descriptor& out) const {
  QiCaps caps = qi_caps();
  caps.dw256 = q.entry_bytes == 32;
  reg::Iqei iqei = reg::Iqei::NoInfo;
  const auto desc =
      decode_descriptor(DescWords{e[0], e[1], caps.dw256 ? e[2] : 0, caps.dw256 ? e[3] : 0}, caps, nullptr, &iqei);
  common::Decoded d;
  if (!desc) { d.error_code = uint32_t(iqei); return d; }
  out = *desc;
  d.legal = true;
  d.type = uint8_t(desc->type);
  d.barrier = desc->type == DescType::InvWait;
  return d;
}

}  // namespace iommusim::vtd

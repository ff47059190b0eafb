// sc_spawn lives behind this macro; the include it guards sits outside <systemc>'s include
// guard, so defining it here works even if <systemc> was included before.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "traffic/endpoint.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace iommusim::traffic {

std::optional<Pattern> parse_pattern(const std::string& s) {
  if (s == "sequential") return Pattern::Sequential;
  if (s == "random") return Pattern::Random;
  if (s == "strided") return Pattern::Strided;
  return std::nullopt;
}

const char* to_string(Pattern p) {
  switch (p) {
    case Pattern::Sequential: return "sequential";
    case Pattern::Random: return "random";
    case Pattern::Strided: return "strided";
  }
  return "?";
}

std::string validate(const EndpointConfig& c) {
  constexpr uint64_t kPage = AddressGenerator::kPage;
  std::ostringstream m;
  if (c.outstanding == 0) return "outstanding must be >= 1";
  if (c.transfer_bytes == 0 || c.transfer_bytes > kMaxTransferBytes) {
    m << "transfer_bytes must be in 1.." << kMaxTransferBytes << " (got " << c.transfer_bytes << ")";
    return m.str();
  }
  if (uint64_t(c.outstanding) * c.transfer_bytes > kMaxBufferBytes) {
    m << "outstanding * transfer_bytes (" << uint64_t(c.outstanding) * c.transfer_bytes << ") exceeds the "
      << (kMaxBufferBytes >> 20) << " MiB an endpoint may buffer";
    return m.str();
  }
  if (c.window_bytes == 0) return "window_bytes must be > 0";
  if (c.window_bytes < c.transfer_bytes) {
    m << "window_bytes (" << c.window_bytes << ") is smaller than transfer_bytes (" << c.transfer_bytes << ")";
    return m.str();
  }
  if (c.window_base > std::numeric_limits<uint64_t>::max() - c.window_bytes)
    return "window_base + window_bytes overflows 64 bits";
  if (c.transfer_bytes <= kPage) {
    // Some access of transfer_bytes must fit inside the window and inside one 4 KB page.
    const uint64_t end = c.window_base + c.window_bytes, len = c.transfer_bytes;
    uint64_t a = c.window_base;
    if (a % kPage + len > kPage) a += kPage - a % kPage;  // next page (0 past the top of memory)
    if (a < c.window_base || a > end || end - a < len)
      return "window_base/window_bytes: the window holds no transfer_bytes access within one 4 KB page";
  }
  if (c.pattern == Pattern::Strided && c.stride_bytes == 0) return "stride_bytes must be > 0 for the strided pattern";
  if (!(c.read_fraction >= 0.0 && c.read_fraction <= 1.0)) {
    m << "read_fraction must be in [0, 1] (got " << c.read_fraction << ")";
    return m.str();
  }
  if (!(c.issue_gap_ns >= 0.0) || !std::isfinite(c.issue_gap_ns)) return "issue_gap_ns must be a finite value >= 0";
  if (!(c.clock_mhz > 0.0) || !std::isfinite(c.clock_mhz)) return "clock_mhz must be > 0";
  return validate(c.ats);
}

// ---------------------------------------------------------------------------------------
// AddressGenerator

AddressGenerator::AddressGenerator(const EndpointConfig& cfg)
    : pattern_(cfg.pattern), base_(cfg.window_base), bytes_(cfg.window_bytes), stride_(cfg.stride_bytes),
      len_(cfg.transfer_bytes), read_fraction_(cfg.read_fraction), slots_(cfg.outstanding),
      rng_(cfg.seed * 1000003ull) {
  if (len_ && bytes_ >= len_) random_choices_ = (bytes_ - len_) / len_ + 1;
  if ((random_choices_ & (random_choices_ - 1)) == 0) random_mask_ = random_choices_ - 1;
}

uint64_t AddressGenerator::fit(uint64_t addr) const {
  if (len_ > kPage || addr % kPage + len_ <= kPage) return addr;
  const uint64_t page_end = addr - addr % kPage + kPage;  // crossing: a next page exists
  if (page_end - len_ >= base_) return page_end - len_;           // down to the end of its page
  if (page_end + len_ <= base_ + bytes_) return page_end;         // up to the next page
  return addr;                                                    // excluded by validate()
}

uint64_t AddressGenerator::next_sequential() {
  for (int guard = 0; guard < 4; ++guard) {
    if (cursor_ > bytes_ - len_) cursor_ = 0;  // wrap at the window end
    const uint64_t addr = base_ + cursor_;
    if (len_ <= kPage && addr % kPage + len_ > kPage) {  // would cross a page: skip to the next one
      cursor_ += kPage - addr % kPage;
      continue;
    }
    cursor_ += len_;
    return addr;
  }
  return base_;  // excluded by validate()
}

uint64_t AddressGenerator::next_strided() {
  if (cursor_ > bytes_ - len_) cursor_ = 0;  // wrap at the window end
  const uint64_t addr = fit(base_ + cursor_);
  cursor_ += stride_;
  if (cursor_ < stride_) cursor_ = bytes_;  // overflow: wrap on the next call
  return addr;
}

uint64_t AddressGenerator::next_random() {
  const uint64_t r = rng_();
  return fit(base_ + (random_mask_ || random_choices_ == 1 ? r & random_mask_ : r % random_choices_) * len_);
}

AddressGenerator::Access AddressGenerator::next(unsigned) {
  Access a{};
  switch (pattern_) {
    case Pattern::Sequential: a.addr = next_sequential(); break;
    case Pattern::Strided: a.addr = next_strided(); break;
    case Pattern::Random: a.addr = next_random(); break;
  }
  const double u = double(rng_() >> 11) * 0x1.0p-53;  // [0, 1), same on every platform
  a.is_read = u < read_fraction_;
  return a;
}

// ---------------------------------------------------------------------------------------
// DmaStats

void DmaStats::record(const Dma& d) {
  transactions_.inc();
  if (d.read) reads_.inc();
  else writes_.inc();
  if (d.outcome == Outcome::Fault) faults_.inc();
  else if (d.outcome == Outcome::Error) errors_.inc();
  else {
    bytes_.inc(d.bytes);
    (d.read ? down_bytes_ : up_bytes_).inc(d.bytes);
  }
  latency_ps_.record(d.latency);
  translation_ps_.record(d.translation);
  memory_ps_.record(d.memory);
  // What the IOMMU did not spend is the link's and the root complex's (0 without a link).
  link_ps_.record(d.latency - std::min(d.latency, d.translation + d.memory));
  if (transactions_.value() == milestone_at_) milestone_();
}

void DmaStats::on_completed(uint64_t n, std::function<void()> fn) {
  if (n == 0) throw std::invalid_argument("on_completed: n must be at least 1");
  milestone_at_ = n;
  milestone_ = std::move(fn);
}

void DmaStats::register_stats(common::StatRegistry& reg, const std::string& pre) const {
  reg.add(pre + ".transactions", transactions_, "count", "DMAs completed (any outcome)");
  reg.add(pre + ".reads", reads_, "count", "read DMAs completed");
  reg.add(pre + ".writes", writes_, "count", "write DMAs completed");
  reg.add(pre + ".faults", faults_, "count", "DMAs the IOMMU answered with Fault or Aborted");
  reg.add(pre + ".errors", errors_, "count", "DMAs with another non-OK response status");
  reg.add(pre + ".bytes", bytes_, "bytes", "bytes moved by successful DMAs");
  reg.add(pre + ".up_bytes", up_bytes_, "bytes", "bytes successful writes moved from the device to memory");
  reg.add(pre + ".down_bytes", down_bytes_, "bytes", "bytes successful reads moved from memory to the device");
  reg.add(pre + ".latency", latency_ps_, "ns", "time from issue to b_transport return, per DMA", 1e-3);
  reg.add(pre + ".translation_latency", translation_ps_, "ns",
          "part of a DMA's latency spent translating (its last page's, when it spans pages)", 1e-3);
  reg.add(pre + ".memory_latency", memory_ps_, "ns",
          "part of a DMA's latency spent in the memory access (its last page's, when it spans pages)", 1e-3);
  reg.add(pre + ".link_latency", link_ps_, "ns",
          "the rest of a DMA's latency: PCIe link and root complex, with their queueing (0 without a link)", 1e-3);
}

// ---------------------------------------------------------------------------------------
// Endpoint

namespace {
const EndpointConfig& checked(const EndpointConfig& cfg) {
  const std::string err = validate(cfg);
  if (!err.empty()) throw std::invalid_argument("endpoint config: " + err);
  return cfg;
}
}  // namespace

Endpoint::Endpoint(sc_core::sc_module_name name, const EndpointConfig& cfg)
    : sc_module(name), socket("socket"), cfg_(checked(cfg)), clk_(common::Clock::from_mhz(cfg.clock_mhz)),
      gap_(cfg.issue_gap_ns * 1000.0, sc_core::SC_PS), issue_ps_(clk_.cycles_ps(cfg.issue_cycles)),
      issue_time_(common::from_ps(issue_ps_)), gen_(cfg_), done_("done") {
  slots_.reserve(cfg_.outstanding);
  for (unsigned i = 0; i < cfg_.outstanding; ++i) {
    auto s = std::make_unique<Slot>();
    s->ext = new common::DmaAttributes;
    s->ext->requester_id = cfg_.requester_id;
    s->ext->pasid_valid = cfg_.pasid_valid;
    s->ext->pasid = cfg_.pasid;
    s->ext->ats = common::AtsType::Untranslated;
    s->data.assign(cfg_.transfer_bytes, static_cast<unsigned char>(i));
    tlm::tlm_generic_payload& p = s->payload;
    p.set_data_ptr(s->data.data());
    p.set_data_length(cfg_.transfer_bytes);
    p.set_streaming_width(cfg_.transfer_bytes);
    p.set_byte_enable_ptr(nullptr);
    p.set_byte_enable_length(0);
    p.set_extension(s->ext);  // the payload owns it from here
    slots_.push_back(std::move(s));
  }
  if (cfg_.ats.enabled) {
    own_atc_ = std::make_unique<Atc>(std::string(basename()) + ".atc", cfg_.ats, clk_, cfg_.outstanding);
    atc_ = own_atc_.get();
  }
  running_slots_ = cfg_.outstanding;
  for (unsigned i = 0; i < cfg_.outstanding; ++i) {
    const std::string n = "slot_" + std::to_string(i);
    sc_core::sc_spawn([this, i] { slot_thread(i); }, n.c_str());
  }
}

void Endpoint::start(sc_core::sc_event& go) { go_ = &go; }

void Endpoint::share_atc_of(Endpoint& device) {
  const AtsConfig& a = cfg_.ats;
  const AtsConfig& b = device.cfg_.ats;
  if (&device == this || !device.atc_ || !atc_ || device.cfg_.requester_id != cfg_.requester_id)
    throw std::invalid_argument("share_atc_of: both endpoints need ATS and the same requester ID");
  if (!same_atc(a, b) || cfg_.clock_mhz != device.cfg_.clock_mhz)
    throw std::invalid_argument("share_atc_of: the ATC settings and clock must be the device's");
  own_atc_.reset();
  atc_ = device.atc_;
  atc_slot_ = atc_->add_slots(cfg_.outstanding);
}

void Endpoint::stop() { stop_requested_ = true; }

void Endpoint::on_completed(uint64_t n, std::function<void()> fn) { stats_.on_completed(n, std::move(fn)); }

void Endpoint::notify_done() {
  if (done_notified_) return;
  done_notified_ = true;
  done_.notify(sc_core::SC_ZERO_TIME);
}

void Endpoint::slot_exited() {
  if (--running_slots_ == 0) notify_done();
}

bool Endpoint::next_dma(unsigned idx, bool first, const sc_core::sc_time& last_issue, DmaJob& job) {
  if (stop_requested_) return false;
  if (jobs_) {
    if (!jobs_->next_job(idx, job) || stop_requested_) return false;
    common::wait_until(job.not_before);
    return !stop_requested_;
  }
  const uint64_t total = cfg_.total_transactions;
  if (total && issued_ >= total) return false;
  if (!first && gap_ != sc_core::SC_ZERO_TIME) {  // rate limit: issue starts >= gap apart
    const sc_core::sc_time next = last_issue + gap_, now = sc_core::sc_time_stamp();
    if (now < next) {
      sc_core::wait(next - now);
      if (stop_requested_ || (total && issued_ >= total)) return false;
    }
  }
  const AddressGenerator::Access acc = gen_.next(idx);
  job.iova = address_map_ ? address_map_(acc.addr) : acc.addr;
  job.bytes = cfg_.transfer_bytes;
  job.read = acc.is_read;
  job.pasid_valid = cfg_.pasid_valid;
  job.pasid = cfg_.pasid;
  return true;
}

void Endpoint::slot_thread(unsigned idx) {
  Slot& s = *slots_[idx];
  tlm::tlm_generic_payload& p = s.payload;
  common::DmaAttributes& ext = *s.ext;
  const uint64_t total = cfg_.total_transactions;
  if (go_) sc_core::wait(*go_);

  bool first = true;
  sc_core::sc_time issue_start;
  DmaJob job;
  while (next_dma(idx, first, issue_start, job)) {
    first = false;
    ++issued_;
    issue_start = sc_core::sc_time_stamp();
    DmaStats::Dma d;
    d.read = job.read;
    d.bytes = job.bytes;
    if (job.bytes == 0 || job.bytes > cfg_.transfer_bytes) {   // a job the slot's buffer cannot hold
      d.outcome = DmaStats::Outcome::Error;
      stats_.record(d);
      if (lane_) lane_->record(d);
      if (jobs_) jobs_->job_done(idx, job, d.outcome);
      continue;
    }

    p.set_command(job.read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
    p.set_address(job.iova);
    p.set_data_ptr(s.data.data());
    p.set_data_length(job.bytes);
    p.set_streaming_width(job.bytes);
    p.set_dmi_allowed(false);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    ext.requester_id = cfg_.requester_id;
    ext.pasid_valid = job.pasid_valid;
    ext.pasid = job.pasid;
    ext.ats = common::AtsType::Untranslated;
    ext.response = common::IommuResponse::None;
    ext.translation_ps = ext.memory_ps = 0;

    if (atc_) {
      ats_transfer(idx, s, job, common::to_ps(issue_start) + issue_ps_, d);
    } else {
      // The issue overhead and everything downstream accumulate in `delay` (TLM-2.0 loosely
      // timed); the slot synchronises once, at the DMA's completion.
      sc_core::sc_time delay = issue_time_;
      socket->b_transport(p, delay);
      sc_core::wait(delay);
      d.translation = ext.translation_ps;
      d.memory = ext.memory_ps;
      if (ext.response == common::IommuResponse::Fault || ext.response == common::IommuResponse::Aborted)
        d.outcome = DmaStats::Outcome::Fault;
      else if (p.get_response_status() != tlm::TLM_OK_RESPONSE)
        d.outcome = DmaStats::Outcome::Error;
    }
    // From the end of the issue overhead (a target may also have waited instead of annotating).
    d.latency = common::now_ps() - (common::to_ps(issue_start) + issue_ps_);
    stats_.record(d);
    if (lane_) lane_->record(d);
    if (address_done_) address_done_(p.get_address());
    if (jobs_) jobs_->job_done(idx, job, d.outcome);
    if (timeline_) trace_dma(idx, s, common::to_ps(issue_start), job.read);
    if (!jobs_ && total && stats_.transactions() == total) notify_done();
  }
  slot_exited();
}

std::optional<Atc::Entry> Endpoint::request_translation(unsigned idx, Slot& s, const Atc::Key& key, bool is_read,
                                                        common::Ps& t, common::Ps& sent_at) {
  tlm::tlm_generic_payload& p = s.payload;
  common::DmaAttributes& ext = *s.ext;
  for (;;) {
    atc_->translation_sent(atc_slot_ + idx, key);
    // A read-like request for the page; a write asks for write permission (No Write = 0).
    p.set_command(is_read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
    p.set_address(key.page << 12);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    ext.ats = common::AtsType::TranslationRequest;
    ext.response = common::IommuResponse::None;
    const common::Ps sent = t;
    sent_at = common::now_ps();   // the IOMMU answers it in this process's turn (loosely timed)
    sc_core::sc_time delay = common::from_ps(t - common::now_ps());
    socket->b_transport(p, delay);
    sc_core::wait(delay);
    t = common::now_ps();
    atc_->count_translation_request(t - sent);
    const bool overtaken = atc_->translation_overtaken(atc_slot_ + idx);
    if (ext.response != common::IommuResponse::Ok || p.get_response_status() != tlm::TLM_OK_RESPONSE)
      return std::nullopt;   // Unsupported Request: ATS is not enabled for this function
    // An invalidation covering the page arrived meanwhile: the translation may be stale (§10.3.1).
    if (overtaken) {
      atc_->count_discarded_completion();
      continue;
    }
    const Atc::Entry e{ext.translated_addr >> 12, ext.granted_read, ext.granted_write};
    if (!(is_read ? e.read : e.write)) return std::nullopt;   // R = W = 0: no translation
    atc_->fill(key, e, t);
    return e;
  }
}

void Endpoint::ats_transfer(unsigned idx, Slot& s, const DmaJob& job, common::Ps t, DmaStats::Dma& d) {
  tlm::tlm_generic_payload& p = s.payload;
  common::DmaAttributes& ext = *s.ext;
  const uint64_t iova = job.iova;
  const bool is_read = job.read;
  const unsigned len = job.bytes;
  common::DmaRequest rq;   // what the oracle is told, per page
  rq.requester_id = cfg_.requester_id;
  rq.pasid_valid = job.pasid_valid;
  rq.pasid = job.pasid_valid ? job.pasid : 0;
  rq.access.write = !is_read;
  common::Ps translation = 0, memory = 0;
  for (unsigned done = 0; done < len;) {
    const uint64_t addr = iova + done;
    const unsigned piece = unsigned(std::min<uint64_t>(len - done, AddressGenerator::kPage - addr % AddressGenerator::kPage));
    const Atc::Key key{job.pasid_valid ? job.pasid : Atc::kNoPasid, addr >> 12};
    const common::Ps looked_up = t;
    common::Ps sent_at = 0;
    std::optional<Atc::Entry> e = atc_->lookup(key, !is_read, t);
    if (!e) e = request_translation(idx, s, key, is_read, t, sent_at);
    translation += t - looked_up;
    rq.input = addr;
    common::DmaOutcome o;
    if (!e) {
      // Judged from when its last Translation Request was sent: the IOMMU answered it
      // then, in this process's turn, although its annotated arrival was later.
      d.outcome = DmaStats::Outcome::Fault;
      if (observer_) observer_->dma_completed(rq, o, sent_at, t);
      break;
    }
    // The page goes as a Translated request at its translated address.
    const uint64_t pa = (e->pa_page << 12) | (addr & 0xFFF);
    p.set_command(is_read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND);
    p.set_address(pa);
    p.set_data_ptr(s.data.data() + done);
    p.set_data_length(piece);
    p.set_streaming_width(piece);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    ext.ats = common::AtsType::Translated;
    ext.response = common::IommuResponse::None;
    ext.translation_ps = ext.memory_ps = 0;
    const common::Ps issued = t;
    sc_core::sc_time delay = common::from_ps(t - common::now_ps());
    socket->b_transport(p, delay);
    const common::Ps end = common::now_ps() + common::to_ps(delay);
    atc_->dma_in_flight(atc_slot_ + idx, issued, end);   // an invalidation arriving now waits for it
    o.ok = ext.response == common::IommuResponse::Ok;
    o.output = pa;
    if (observer_) observer_->dma_completed(rq, o, issued, end);
    sc_core::wait(delay);
    atc_->dma_done(atc_slot_ + idx);
    t = common::now_ps();
    translation += ext.translation_ps;   // the IOMMU's check of the Translated request
    memory += ext.memory_ps;
    if (ext.response == common::IommuResponse::Fault || ext.response == common::IommuResponse::Aborted) {
      d.outcome = DmaStats::Outcome::Fault;
      break;
    }
    if (p.get_response_status() != tlm::TLM_OK_RESPONSE) {
      d.outcome = DmaStats::Outcome::Error;
      break;
    }
    done += piece;
  }
  common::wait_until(t);
  // The slot's payload as the non-ATS path leaves it.
  p.set_address(iova);
  p.set_data_ptr(s.data.data());
  p.set_data_length(len);
  p.set_streaming_width(len);
  d.translation = translation;
  d.memory = memory;
}

void Endpoint::set_timeline(common::Timeline& timeline, uint32_t pid, const std::string& device) {
  timeline_ = &timeline;
  slot_tracks_.clear();
  for (unsigned i = 0; i < cfg_.outstanding; ++i)
    slot_tracks_.push_back(timeline.track(pid, "device " + device + " / slot " + std::to_string(i)));
}

void Endpoint::trace_dma(unsigned idx, const Slot& s, common::Ps issue_start, bool is_read) {
  const common::DmaAttributes& ext = *s.ext;
  const common::Ps issued = issue_start + issue_ps_, done = common::now_ps();
  // The IOMMU reports translation and memory time; the rest is the link and root complex
  // (both directions, drawn as one phase before translation). The timeline cuts phases at
  // the slice's end should a multi-page DMA's parts overlap.
  const common::Ps span = done - issued;
  const common::Ps translation = std::min<common::Ps>(ext.translation_ps, span);
  const common::Ps memory = std::min<common::Ps>(ext.memory_ps, span - translation);
  const common::Ps link = span - translation - memory;
  // As the counters classify it.
  const char* result = "ok";
  if (ext.response == common::IommuResponse::Fault) result = "fault";
  else if (ext.response == common::IommuResponse::Aborted) result = "aborted";
  else if (s.payload.get_response_status() != tlm::TLM_OK_RESPONSE) result = "error";
  char args[160];
  std::snprintf(args, sizeof args, "{\"address\":\"0x%" PRIx64 "\",\"access\":\"%s\",\"rid\":%u,\"pasid\":%" PRId64 ",\"result\":\"%s\"}",
                uint64_t(s.payload.get_address()), is_read ? "read" : "write", unsigned(ext.requester_id),
                ext.pasid_valid ? int64_t(ext.pasid) : int64_t(-1), result);
  timeline_->nested(slot_tracks_[idx], "dma", is_read ? "DMA read" : "DMA write", issue_start, done - issue_start, args,
                    {{"issue", issued - issue_start}, {"link", link}, {"translation", translation}, {"memory", memory}});
}

}  // namespace iommusim::traffic

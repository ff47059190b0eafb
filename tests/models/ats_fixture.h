// Fixture of the ATS tests (docs/ats.md): sparse memory, one IOMMU model and its driver,
// a root complex with its PCIe link, and one endpoint with an ATC behind it, wired as
// platforms/system.cpp wires a lane with traffic.ats.enabled (optionally a second work
// queue of the same device, sharing its RID and ATC); plus the lane's correctness
// oracle, told every mapping by the driver and every DMA by the model and the endpoints.
// The endpoint starts when the test body notifies `go`. A body runs in one SC_THREAD; each
// gtest TEST runs in its own process and builds one harness.
//
// The checks every vendor passes alike are here too (check_*), with known answers worked
// out by hand from the default configs:
//   link Gen3 x8: 8 GT/s x 8 lanes, 128b/130b: a byte takes 8 * 130 / 128 / 64 ns, rounded
//   up to the next ps per run of TLPs; link latency 50 ns, root complex 125 ns each way;
//   memory: 80 ns first word + 64 B / 32 B per cycle at 1 GHz = 82 ns for 64 bytes;
//   endpoint at 250 MHz: ATC lookup 1 cycle = 4 ns; device response 500 ns.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <systemc>

#include "models/common/correctness_oracle.h"
#include "models/memory/sparse_memory.h"
#include "models/pcie/root_complex.h"
#include "platforms/driver/driver.h"
#include "traffic/endpoint.h"
#include "iommu_fixture.h"

namespace iommusim::test {

constexpr uint32_t kAtsRid = 0x10;
constexpr uint64_t kAtsIova = 0x10000000ull;
constexpr uint64_t kAtsPa = 0x40200000ull;   // below 4 GB: 3 DW request headers

// One 64-byte read at a time into the one page at kAtsIova, `dmas` of them.
inline traffic::EndpointConfig ats_endpoint(uint64_t dmas, bool respond = true) {
  traffic::EndpointConfig e;
  e.requester_id = kAtsRid;
  e.outstanding = 1;
  e.pattern = traffic::Pattern::Sequential;
  e.window_base = kAtsIova;
  e.window_bytes = 4096;
  e.transfer_bytes = 64;
  e.read_fraction = 1.0;
  e.total_transactions = dmas;
  e.ats.enabled = true;
  e.ats.respond = respond;
  return e;
}

template <class Model, class ModelConfig, class Driver, class DriverConfig>
struct AtsHarness : sc_core::sc_module {
  SC_HAS_PROCESS(AtsHarness);

  memory::SparseMemory memory;
  Model iommu;
  Driver drv;
  pcie::RootComplex rc;
  traffic::Endpoint ep;
  common::CorrectnessOracle oracle;
  sc_core::sc_event go;

  AtsHarness(const ModelConfig& mc, const traffic::EndpointConfig& ec, const pcie::LinkConfig& link = {},
             const DriverConfig& dc = DriverConfig{}, sc_core::sc_module_name name = "ats_harness")
      : sc_module(name), memory("memory", memory::MemoryConfig{}), iommu("iommu", mc),
        drv("driver", dc, iommu, memory), rc("rc", link), ep("ep", ec), oracle("test") {
    iommu.mem.bind(memory.socket);
    iommu.set_direct_memory(&memory);
    drv.mmio.bind(iommu.mmio);
    rc.to_iommu.bind(iommu.dma);
    ep.socket.bind(rc.from_devices);
    ep.start(go);
    ep.atc()->set_link(&rc.link());
    iommu.attach_ats_device(ec.requester_id, ep.atc());
    iommu.set_observer(&oracle);
    drv.set_oracle(&oracle);
    ep.set_observer(&oracle);
    SC_THREAD(thread);
  }
  // With a second work queue of the device: `wq_cfg` has ec's RID and a PASID of its own,
  // and uses ep's ATC (as platforms/system.cpp wires endpoints that share a RID).
  AtsHarness(const ModelConfig& mc, const traffic::EndpointConfig& ec, const traffic::EndpointConfig& wq_cfg)
      : AtsHarness(mc, ec) {
    wq = std::make_unique<traffic::Endpoint>("wq", wq_cfg);
    wq->socket.bind(rc.from_devices);
    wq->start(go);
    wq->share_atc_of(ep);
    wq->set_observer(&oracle);
  }
  std::unique_ptr<traffic::Endpoint> wq;   // the device's second work queue, or none

  // Runs `body`, then lets the simulation end; checks that the body ran to its end.
  void run(std::function<void(AtsHarness&)> body, sc_core::sc_time limit = sc_core::sc_time(50, sc_core::SC_MS)) {
    body_ = std::move(body);
    sc_core::sc_start(limit);
    EXPECT_TRUE(finished_) << "test body did not run to its end";
  }

  // Starts the endpoint and waits until it has completed `n` DMAs in all.
  void run_dmas_until(uint64_t n) {
    go.notify(sc_core::SC_ZERO_TIME);
    while (ep.completed() < n && !ep.done()) sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));
  }

 private:
  void thread() {
    if (body_) body_(*this);
    finished_ = !::testing::Test::HasFatalFailure();
    sc_core::sc_stop();
  }
  std::function<void(AtsHarness&)> body_;
  bool finished_ = false;
};

// Serialisation of `bytes` on Gen3 x8, in ps, rounded up (bytes * 8 * 130 / 128 / 64 ns).
constexpr uint64_t wire_ps(uint64_t bytes) { return (bytes * 8 * 130 * 1000 + 8191) / 8192; }
// An ATC hit of one 64-byte read: ATC lookup, the read request up (8 B framing + 3 DW
// header), the root complex, the IOMMU's check that the device may use ATS (`check_ps`),
// memory, the root complex, the 64-byte completion down (8 + 12 + 64 B).
constexpr uint64_t atc_hit_ps(uint64_t check_ps) {
  return 4000 + wire_ps(20) + 50000 + 125000 + check_ps + 82000 + 125000 + wire_ps(84) + 50000;
}
// An Invalidate Request through the root complex and down the link (8 B framing + 4 DW
// header + 8 B data), the device's 500 ns, the Invalidate Completion up (8 + 16 B) and
// through the root complex.
constexpr uint64_t kAtcInvalidationPs = 125000 + wire_ps(32) + 50000 + 500000 + wire_ps(24) + 50000 + 125000;
static_assert(kAtcInvalidationPs == 857110, "worked by hand: 125 + 4.063 + 50 + 500 + 3.047 + 50 + 125 ns");

// A stage-1 domain mapping the page kAtsIova -> kAtsPa, attached to kAtsRid with ATS
// enabled (or not) in its driver.
template <class H>
driver::DomainId ats_domain(H& h, bool enable_ats = true) {
  std::string why;
  EXPECT_TRUE(h.drv.init().ok);
  const auto d = h.drv.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
  EXPECT_TRUE(d.has_value()) << why;
  if (!d) return 0;
  EXPECT_TRUE(h.drv.map(*d, kAtsIova, kAtsPa, 4096, {}, 4096).ok);
  if (enable_ats) h.drv.enable_ats(kAtsRid);
  const driver::Status a = h.drv.attach(kAtsRid, std::nullopt, *d);
  EXPECT_TRUE(a.ok) << a.error;
  return *d;
}

// Two DMAs to one page: the first misses and asks the IOMMU (one IOTLB lookup), the second
// hits the ATC and costs atc_hit_ps(check_ps). Needs ats_endpoint(2).
template <class H>
void check_atc_hit_avoids_the_iommu(H& h, uint64_t check_ps) {
  ats_domain(h);
  h.run_dmas_until(2);
  ASSERT_EQ(h.ep.completed(), 2u);
  EXPECT_EQ(h.ep.faulted(), 0u);
  EXPECT_EQ(h.ep.atc()->cache_stats().misses.value(), 1u);
  EXPECT_EQ(h.ep.atc()->cache_stats().hits.value(), 1u);
  EXPECT_EQ(h.ep.atc()->translation_requests(), 1u);
  EXPECT_EQ(h.iommu.iotlb_stats().hits.value() + h.iommu.iotlb_stats().misses.value(), 1u);
  EXPECT_EQ(h.ep.latency_ps().min(), atc_hit_ps(check_ps));
  EXPECT_EQ(h.oracle.violations(), 0u);
}

// After one DMA filled the ATC, a strict unmap completes only once the device's
// Invalidate Completion is back. Needs ats_endpoint(1).
template <class H>
void check_strict_unmap_waits_for_the_atc(H& h) {
  const driver::DomainId d = ats_domain(h);
  h.run_dmas_until(1);
  const uint64_t t0 = common::now_ps(), before = h.ep.atc()->invalidations();
  const driver::Status s = h.drv.unmap(d, kAtsIova, 4096);
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(h.ep.atc()->invalidations(), before + 1);
  EXPECT_EQ(h.ep.atc()->invalidation_latency_ps().min(), kAtcInvalidationPs);
  EXPECT_EQ(h.ep.atc()->invalidation_latency_ps().max(), kAtcInvalidationPs);
  EXPECT_GE(h.drv.last_barrier_ps(), t0 + kAtcInvalidationPs);   // the barrier waited for it
  common::Ps t = common::now_ps();
  EXPECT_FALSE(h.ep.atc()->lookup({traffic::Atc::kNoPasid, kAtsIova >> 12}, false, t).has_value());
  EXPECT_EQ(h.oracle.violations(), 0u);
}

// The endpoint keeps DMAing to the page while it is unmapped. With the device invalidation
// left out (skip), the ATC keeps the translation and the oracle reports the DMAs that used
// it after the barrier; with it, those DMAs fault and the oracle is content. Needs an
// endpoint of 400 DMAs, 100 ns apart.
template <class H>
void check_unmap_with_dmas_running(H& h, bool skip_device_invalidation) {
  const driver::DomainId d = ats_domain(h);
  h.run_dmas_until(10);
  h.drv.skip_device_invalidations_for_test(skip_device_invalidation);
  const driver::Status s = h.drv.unmap(d, kAtsIova, 4096);
  ASSERT_TRUE(s.ok) << s.error;
  h.run_dmas_until(400);
  h.oracle.finish();
  if (skip_device_invalidation) {
    EXPECT_EQ(h.ep.faulted(), 0u);
    EXPECT_GT(h.oracle.violations(), 0u);
  } else {
    EXPECT_GT(h.ep.faulted(), 0u);
    EXPECT_EQ(h.oracle.violations(), 0u);
  }
}

// One 8-byte ATS read of `type` from the test initiator of an IommuHarness (no link);
// returns the DmaAttributes the IOMMU answered, its data and status.
template <class H>
common::DmaAttributes ats_request(H& h, common::AtsType type, uint32_t sid, uint64_t addr, uint64_t* data,
                                  tlm::tlm_response_status* status) {
  tlm::tlm_generic_payload p;
  common::DmaAttributes ext;
  ext.requester_id = sid;
  ext.ats = type;
  p.set_command(tlm::TLM_READ_COMMAND);
  p.set_address(addr);
  p.set_data_ptr(reinterpret_cast<unsigned char*>(data));
  p.set_data_length(8);
  p.set_streaming_width(8);
  p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  p.set_extension(&ext);
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  h.dev->b_transport(p, delay);
  sc_core::wait(delay);
  *status = p.get_response_status();
  p.clear_extension(&ext);
  return ext;
}

// The enable-bit tests' setup on an IommuHarness: one stage-1 domain mapping kAtsIova ->
// kAtsPa, attached to device 1 without ATS (STE.EATS / context DTE / DTE.I clear) and to
// device 2 with it. Fails the test (ASSERT) when the driver refuses.
template <class H>
void attach_devices_without_and_with_ats(H& h) {
  IOMMUSIM_ASSERT_OK(h.drv.init());
  const driver::DomainId d = h.make_domain(driver::DomainKind::Stage1);
  IOMMUSIM_ASSERT_OK(h.drv.map(d, kAtsIova, kAtsPa, kPage, {}, kPage));
  IOMMUSIM_ASSERT_OK(h.drv.attach(1, std::nullopt, d));
  h.drv.enable_ats(2);
  IOMMUSIM_ASSERT_OK(h.drv.attach(2, std::nullopt, d));
}

// Device `rid` has ATS enabled: its Translation Request for kAtsIova comes back with
// kAtsPa and R, and its Translated read of kAtsPa returns the 0x1234 stored there without
// an IOTLB lookup. `h` is an IommuHarness (no link).
template <class H>
void check_ats_device_served(H& h, uint32_t rid) {
  h.memory.write64(kAtsPa, 0x1234);
  uint64_t data = 0;
  tlm::tlm_response_status st;
  common::DmaAttributes a = ats_request(h, common::AtsType::TranslationRequest, rid, kAtsIova, &data, &st);
  EXPECT_EQ(st, tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(a.translated_addr, kAtsPa);
  EXPECT_TRUE(a.granted_read);
  EXPECT_FALSE(a.granted_write);
  const uint64_t lookups = h.iommu.iotlb_stats().hits.value() + h.iommu.iotlb_stats().misses.value();
  a = ats_request(h, common::AtsType::Translated, rid, kAtsPa, &data, &st);
  EXPECT_EQ(st, tlm::TLM_OK_RESPONSE);
  EXPECT_EQ(data, 0x1234u);
  EXPECT_EQ(h.iommu.iotlb_stats().hits.value() + h.iommu.iotlb_stats().misses.value(), lookups);
}

// Shared ATC (two work queues of device kAtsRid: PASID 1 is `ep`, PASID 2 is `wq`, one ATC).
// Both read IOVA kAtsIova, each through its own domain: PASID 1's maps it to kAtsPa,
// PASID 2's to kAtsPa + 4 KB, so the ATC holds two entries for one page, told apart by
// PASID. `wq` reads again 200 us later (its issue gap).
inline traffic::EndpointConfig shared_ats_queue(uint32_t pasid, uint64_t dmas) {
  traffic::EndpointConfig e = ats_endpoint(dmas);
  e.pasid_valid = true;
  e.pasid = pasid;
  e.issue_gap_ns = 200000;
  return e;
}

// A stage-1 domain mapping the page kAtsIova -> `pa` (not attached).
template <class H>
driver::DomainId ats_page_domain(H& h, uint64_t pa) {
  std::string why;
  const auto d = h.drv.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
  EXPECT_TRUE(d.has_value()) << why;
  EXPECT_TRUE(d && h.drv.map(*d, kAtsIova, pa, 4096, {}, 4096).ok);
  return d.value_or(0);
}

// The driver up, ATS on for kAtsRid, PASID 1 attached to a domain mapping kAtsIova to
// kAtsPa (d1), PASID 2 to one mapping it to kAtsPa + 4 KB (d2). ASSERTs.
template <class H>
void attach_two_queues(H& h, driver::DomainId& d1, driver::DomainId& d2) {
  ASSERT_TRUE(h.wq);
  IOMMUSIM_ASSERT_OK(h.drv.init());
  d1 = ats_page_domain(h, kAtsPa);
  d2 = ats_page_domain(h, kAtsPa + 0x1000);
  h.drv.enable_ats(kAtsRid);
  IOMMUSIM_ASSERT_OK(h.drv.attach(kAtsRid, 1, d1));
  IOMMUSIM_ASSERT_OK(h.drv.attach(kAtsRid, 2, d2));
}

// PCIe 6.0 §10.3.1 (docs/ats.md, "The shared ATC"):
// 1. unmapping PASID 1's page sends one Invalidate Request with PASID 1 (SMMU CMD_ATC_INV
//    SID+SSID 1, VT-d PASID-based dev-TLB of PASID 1, AMD INVALIDATE_IOTLB_PAGES with GN and
//    PASID 1): the device's one ATC receives it once, drops PASID 1's entry and keeps PASID
//    2's (still kAtsPa + 4 KB);
// 2. with a third domain on the RID itself (no PASID; kAtsIova -> kAtsPa + 8 KB), PASID 2's
//    entry filled again by wq's second read, unmapping the RID's page sends an Invalidate
//    Request without PASID (SMMU SSV = 0, VT-d dev-TLB without PASID, AMD without GN), which
//    drops every PASID's entries in the range: PASID 2's entry goes too.
// The oracle judges every DMA of both queues. Needs ep = shared_ats_queue(1, 1), wq =
// shared_ats_queue(2, 2).
template <class H>
void check_shared_atc_invalidations(H& h) {
  using traffic::Atc;
  constexpr uint64_t kPa2 = kAtsPa + 0x1000, kPa0 = kAtsPa + 0x2000, kPage = kAtsIova >> 12;
  ASSERT_EQ(h.wq->atc(), h.ep.atc());   // one ATC for the device
  driver::DomainId d1 = 0, d2 = 0;
  attach_two_queues(h, d1, d2);
  if (::testing::Test::HasFatalFailure()) return;
  h.go.notify(sc_core::SC_ZERO_TIME);
  while (h.ep.completed() < 1 || h.wq->completed() < 1) sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));
  Atc& atc = *h.ep.atc();
  auto entry = [&](uint32_t pasid) {
    common::Ps t = common::now_ps();
    return atc.lookup({pasid, kPage}, false, t);
  };
  ASSERT_TRUE(entry(1).has_value());
  ASSERT_TRUE(entry(2).has_value());
  EXPECT_EQ(entry(1)->pa_page, kAtsPa >> 12);
  EXPECT_EQ(entry(2)->pa_page, kPa2 >> 12);

  // 1. PASID 1's domain.
  // One request, reaching the device once (an ATC per queue would make it 2 here).
  const uint64_t received = atc.invalidations();
  IOMMUSIM_ASSERT_OK(h.drv.unmap(d1, kAtsIova, 4096));
  EXPECT_EQ(atc.invalidations(), received + 1);
  EXPECT_FALSE(entry(1).has_value());
  ASSERT_TRUE(entry(2).has_value());
  EXPECT_EQ(entry(2)->pa_page, kPa2 >> 12);

  // 2. The RID's own domain: a request without PASID.
  const driver::DomainId d0 = ats_page_domain(h, kPa0);
  IOMMUSIM_ASSERT_OK(h.drv.attach(kAtsRid, std::nullopt, d0));
  while (h.wq->completed() < 2) sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
  ASSERT_TRUE(entry(2).has_value());   // filled again by wq's second read
  EXPECT_EQ(entry(2)->pa_page, kPa2 >> 12);
  // A PASID 2 entry for another page in the same ATC set (page + entries: the set index is
  // the page modulo the sets, which divide the entries): outside the request's range, so
  // it stays (PCIe ATS Invalidate Request without PASID: every entry *in the range*).
  const Atc::Key other{2, kPage + atc.config().entries};
  atc.fill(other, Atc::Entry{kPa2 >> 12, true, false}, common::now_ps());
  ASSERT_TRUE(entry(2).has_value());   // the set holds both
  const uint64_t before_rid = atc.invalidations();
  IOMMUSIM_ASSERT_OK(h.drv.unmap(d0, kAtsIova, 4096));
  EXPECT_EQ(atc.invalidations(), before_rid + 1);
  EXPECT_FALSE(entry(2).has_value());
  EXPECT_FALSE(entry(1).has_value());
  common::Ps t = common::now_ps();
  EXPECT_TRUE(atc.lookup(other, false, t).has_value()) << "a PASID entry outside the range survives";
  h.oracle.finish();
  EXPECT_EQ(h.ep.faulted() + h.wq->faulted(), 0u);
  EXPECT_EQ(h.oracle.violations(), 0u);
}

// Both work queues keep reading kAtsIova (400 DMAs each, 100 ns apart) while PASID 2's
// page is unmapped. The one device invalidation that unmap needs is PASID 2's (PASID 1's
// domain does not change). Left out (skip): the shared ATC keeps PASID 2's translation, and
// the oracle reports wq's DMAs that used it after the barrier, every one of them
// (kAtsRid, PASID 2), while ep (PASID 1) reads on without fault or violation. With it,
// wq's later DMAs fault and the oracle is content. Needs ep = shared_ats_running(1), wq =
// shared_ats_running(2).
inline traffic::EndpointConfig shared_ats_running(uint32_t pasid) {
  traffic::EndpointConfig e = shared_ats_queue(pasid, 400);
  e.issue_gap_ns = 100;
  return e;
}
template <class H>
void check_shared_atc_pasid_invalidation_left_out(H& h, bool skip_device_invalidation) {
  driver::DomainId d1 = 0, d2 = 0;
  attach_two_queues(h, d1, d2);
  if (::testing::Test::HasFatalFailure()) return;
  h.go.notify(sc_core::SC_ZERO_TIME);
  while (h.ep.completed() < 10 || h.wq->completed() < 10) sc_core::wait(sc_core::sc_time(10, sc_core::SC_NS));
  h.drv.skip_device_invalidations_for_test(skip_device_invalidation);
  IOMMUSIM_ASSERT_OK(h.drv.unmap(d2, kAtsIova, 4096));
  while (!h.ep.done() || !h.wq->done()) sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
  h.oracle.finish();
  EXPECT_EQ(h.ep.faulted(), 0u);   // PASID 1's domain never changed
  if (skip_device_invalidation) {
    EXPECT_EQ(h.wq->faulted(), 0u);
    EXPECT_GT(h.oracle.violations(), 0u);
    const nlohmann::json v = h.oracle.violations_json();
    ASSERT_FALSE(v.empty());
    for (const auto& e : v) {
      EXPECT_EQ(e["requester_id"], kAtsRid);
      EXPECT_EQ(e["pasid"], 2);
    }
  } else {
    EXPECT_GT(h.wq->faulted(), 0u);
    EXPECT_EQ(h.oracle.violations(), 0u);
  }
}

inline traffic::EndpointConfig ats_endpoint_running() {
  traffic::EndpointConfig e = ats_endpoint(400);
  e.issue_gap_ns = 100;
  return e;
}

}  // namespace iommusim::test

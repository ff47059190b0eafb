// The correctness oracle on scripted histories, with verdicts worked out by hand from the
// rules in models/common/correctness_oracle.h. Each script runs in one SC_THREAD so that
// changes, barrier times and DMA completions happen at chosen simulated times.
#include <functional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <systemc>

#include "models/common/correctness_oracle.h"

namespace iommusim::common {
namespace {

using K = CorrectnessOracle::SpaceKind;
constexpr uint32_t kRid = 0x10;
constexpr uint64_t kIova = 0x40000000, kPa = 0x200000000, kPa2 = 0x300000000;

struct Script : sc_core::sc_module {
  SC_HAS_PROCESS(Script);
  CorrectnessOracle oracle{"test"};
  std::function<void(Script&)> body;
  Script(sc_core::sc_module_name n, std::function<void(Script&)> b) : sc_module(n), body(std::move(b)) { SC_THREAD(run); }
  void run() { body(*this); }
  static void at_ns(double ns) { sc_core::wait(sc_core::sc_time(ns, sc_core::SC_NS) - sc_core::sc_time_stamp()); }
  // A DMA issued at issue_ns that completes now, with output `out` (or a fault).
  void dma(double issue_ns, uint64_t iova, bool write, bool ok, uint64_t out, uint32_t rid = kRid) {
    DmaRequest rq;
    rq.requester_id = rid;
    rq.input = iova;
    rq.access.write = write;
    DmaOutcome o;
    o.ok = ok;
    o.output = out;
    oracle.dma_completed(rq, o, uint64_t(issue_ns * 1000), now_ps());
  }
  // One stage-1 domain 1 mapping kIova -> kPa (4 KB, read-write), attached at time 0.
  void basic() {
    oracle.add_space(1, K::Stage1);
    oracle.map(1, kIova, kPa, 4096, Rights{});
    oracle.complete(oracle.attach(kRid, std::nullopt, 1), 0);
  }
};

void run(std::function<void(Script&)> body, uint64_t checked, uint64_t stale, uint64_t violations) {
  Script s("script", std::move(body));
  sc_core::sc_start();
  EXPECT_EQ(s.oracle.checked(), checked);
  EXPECT_EQ(s.oracle.permitted_stale(), stale);
  EXPECT_EQ(s.oracle.violations(), violations) << s.oracle.violations_json().dump(1);
}

TEST(Oracle, LiveMappingIsCorrect) {
  run([](Script& s) {
    s.basic();
    Script::at_ns(10);
    s.dma(5, kIova + 0x40, false, true, kPa + 0x40);
    s.dma(6, kIova + 0x80, true, true, kPa + 0x80);
  }, 2, 0, 0);
}

TEST(Oracle, OldTargetBeforeTheBarrierIsPermittedStale) {
  // Remap at 100 ns; the DMA completes at 150 ns with the old PA; the barrier completed at
  // 200 ns (reported at 250 ns): 150 <= 200, so the architecture allows it.
  run([](Script& s) {
    s.basic();
    Script::at_ns(100);
    const auto c = s.oracle.change(1, kIova, 4096, kPa2, Rights{});
    Script::at_ns(150);
    s.dma(90, kIova, false, true, kPa);
    Script::at_ns(250);
    s.oracle.complete(c, 200000);
  }, 1, 1, 0);
}

TEST(Oracle, OldTargetAfterTheBarrierIsAViolationEvenWhenReportedLate) {
  // The barrier completed at 120 ns but the driver reported it at 250 ns; a DMA that
  // completed at 150 ns with the old PA outlived the barrier.
  run([](Script& s) {
    s.basic();
    Script::at_ns(100);
    const auto c = s.oracle.change(1, kIova, 4096, kPa2, Rights{});
    Script::at_ns(150);
    s.dma(90, kIova, false, true, kPa);
    Script::at_ns(250);
    s.oracle.complete(c, 120000);
    Script::at_ns(300);
    s.dma(260, kIova, false, true, kPa);    // and after the report: still a violation
    s.dma(261, kIova, false, true, kPa2);   // the new target: correct
  }, 3, 0, 2);
}

TEST(Oracle, IovaReusedBeforeItsFlushIsAViolationWhilePending) {
  // Unmapped at 100 ns (its barrier never reported), mapped anew at 110 ns; a DMA issued
  // at 120 ns that still reaches the old PA shows IOVA reuse before the flush.
  run([](Script& s) {
    s.basic();
    Script::at_ns(100);
    s.oracle.unmap(1, kIova, 4096);
    Script::at_ns(110);
    s.oracle.map(1, kIova, kPa2, 4096, Rights{});
    Script::at_ns(130);
    s.dma(120, kIova, false, true, kPa);
    s.dma(105, kIova, false, true, kPa);   // issued before the new map: permitted (judged at finish)
    s.oracle.finish();
  }, 2, 1, 1);
}

TEST(Oracle, WriteToReadOnlyPageIsAViolation) {
  run([](Script& s) {
    s.oracle.add_space(1, K::Stage1);
    s.oracle.map(1, kIova, kPa, 4096, Rights{true, false, false, true});
    s.oracle.complete(s.oracle.attach(kRid, std::nullopt, 1), 0);
    Script::at_ns(10);
    s.dma(5, kIova, false, true, kPa);   // read: fine
    s.dma(5, kIova, true, true, kPa);    // write: beyond its rights
    s.dma(5, kIova, true, false, 0);     // write fault: correct
  }, 3, 0, 1);
}

TEST(Oracle, AnotherDomainsTablesAreAViolation) {
  // Device kRid is attached to domain 1; domain 2 maps the same IOVA elsewhere.
  run([](Script& s) {
    s.basic();
    s.oracle.add_space(2, K::Stage1);
    s.oracle.map(2, kIova, kPa2, 4096, Rights{});
    s.oracle.complete(s.oracle.attach(kRid + 1, std::nullopt, 2), 0);
    Script::at_ns(10);
    s.dma(5, kIova, false, true, kPa2);              // kRid through domain 2's tables
    s.dma(5, kIova, false, true, kPa2, kRid + 1);    // kRid+1: its own
    s.dma(5, kIova, false, true, kPa, 0x99);         // a device never attached
  }, 3, 0, 2);
}

TEST(Oracle, FaultDespiteAStableMappingIsAViolation) {
  run([](Script& s) {
    s.basic();
    Script::at_ns(100);
    s.dma(50, kIova, false, false, 0);          // mapped since 0, nothing pending: violation
    s.dma(50, kIova + 4096, false, false, 0);   // never mapped: correct
    const auto c = s.oracle.change_rights(1, kIova, 4096, Rights{true, false, false, true});   // RW -> RO
    Script::at_ns(105);
    s.oracle.complete(c, 104000);
    Script::at_ns(110);
    const auto c2 = s.oracle.change_rights(1, kIova, 4096, Rights{});   // RO -> RW, barrier pending
    Script::at_ns(120);
    s.dma(112, kIova, true, false, 0);   // a stale read-only entry may still fault it: permitted
    s.oracle.complete(c2, 125000);
  }, 3, 1, 1);
}

// A mapping another agent makes (a virtio-iommu device, while serving the guest's MAP):
// mapped at 0 but not yet visible, a fault is not blamed and a hit is explained; made visible
// at 100 ns, a fault of a DMA issued at 150 is a violation, one issued at 90 is not.
TEST(Oracle, AMappingIsNotBlamedForFaultsBeforeItIsVisible) {
  run([](Script& s) {
    s.basic();
    s.oracle.visible_from(1, kIova, 4096, CorrectnessOracle::kNotYetVisible);
    Script::at_ns(50);
    s.dma(20, kIova, false, false, 0);       // not yet visible: correct
    s.dma(30, kIova, false, true, kPa);      // found it already: correct
    Script::at_ns(100);
    s.oracle.visible_from(1, kIova, 4096, now_ps());
    Script::at_ns(200);
    s.dma(90, kIova, false, false, 0);       // issued before it was visible: correct
    s.dma(150, kIova, false, false, 0);      // visible since 100: a violation
  }, 4, 0, 1);
}

TEST(Oracle, NestedComposesBothStagesAndTheirChanges) {
  // Stage 1 (space 2) maps kIova -> IPA 0x1000; stage 2 (space 1) maps IPA 0x1000 -> kPa.
  run([](Script& s) {
    s.oracle.add_space(1, K::Stage2);
    s.oracle.map(1, 0x1000, kPa, 4096, Rights{});
    s.oracle.add_space(2, K::Nested, 1);
    s.oracle.map(2, kIova, 0x1000, 4096, Rights{});
    s.oracle.complete(s.oracle.attach(kRid, 3, 2), 0);
    Script::at_ns(10);
    DmaRequest rq;
    rq.requester_id = kRid; rq.pasid_valid = true; rq.pasid = 3; rq.input = kIova;
    DmaOutcome ok{true, false, kPa};
    s.oracle.dma_completed(rq, ok, 5000, now_ps());                                  // correct
    const auto c = s.oracle.change(1, 0x1000, 4096, kPa2, Rights{});       // the VMM moves the page
    Script::at_ns(20);
    s.oracle.dma_completed(rq, ok, 15000, now_ps());                                 // old PA, barrier pending
    Script::at_ns(30);
    s.oracle.complete(c, 25000);
    Script::at_ns(40);
    s.oracle.dma_completed(rq, ok, 35000, now_ps());                                 // old PA after the barrier
    s.oracle.dma_completed(rq, DmaOutcome{true, false, kPa2}, 35000, now_ps());      // new PA: correct
  }, 4, 1, 1);
}

TEST(Oracle, ScopesNamespaceSpacesNestAGuestsStage1AndMapItsDeviceIds) {
  // The host (scope base 0) has Stage2 domain 1: IPA 0x1000 -> kPa. A guest driver (base
  // 0x40 << 24, its Stage1 over the host's space 1) also numbers its first domain 1, maps
  // kIova -> GPA 0x1000 there and attaches its vRID 3, which is physical kRid.
  run([](Script& s) {
    ScopedOracle host(&s.oracle, OracleScope{});
    OracleScope gs;
    gs.space_base = 0x40u << 24;
    gs.stage1_parent = host.space(1);
    gs.virtual_rids = true;
    ScopedOracle guest(&s.oracle, gs);
    guest.set_rid(3, kRid);
    host.add_space(1, K::Stage2, 0);
    host.map(1, 0x1000, kPa, 4096, Rights{});
    guest.add_space(1, K::Stage1, 0);
    EXPECT_EQ(guest.space(1), 0x40000001u);
    guest.map(1, kIova, 0x1000, 4096, Rights{});
    EXPECT_EQ(guest.attach(7, std::nullopt, 1), 0u) << "vRID 7 has no vDEVICE: nothing to report";
    guest.complete(guest.attach(3, std::nullopt, 1), 0);
    Script::at_ns(10);
    s.dma(5, kIova, false, true, kPa);    // composed: kIova -> 0x1000 -> kPa: correct
    s.dma(6, kIova, false, true, 0x1000); // the GPA itself: a violation (stage 2 skipped)
    // The guest's unmap completes at its own barrier (20 ns); a use after it is a violation.
    const auto c = guest.unmap(1, kIova, 4096);
    Script::at_ns(30);
    guest.complete(c, 20000);
    s.dma(25, kIova, false, true, kPa);
  }, 3, 0, 2);
}

TEST(Oracle, ReattachedDeviceMayUseItsOldDomainOnlyUntilTheBarrier) {
  run([](Script& s) {
    s.basic();
    s.oracle.add_space(2, K::Stage1);
    s.oracle.map(2, kIova, kPa2, 4096, Rights{});
    Script::at_ns(100);
    const auto c = s.oracle.attach(kRid, std::nullopt, 2);
    Script::at_ns(110);
    s.dma(95, kIova, false, true, kPa);    // old domain, barrier not yet: waits
    Script::at_ns(130);
    s.oracle.complete(c, 120000);          // -> permitted stale (110 <= 120)
    Script::at_ns(140);
    s.dma(125, kIova, false, true, kPa);   // old domain after the barrier: violation
    s.dma(125, kIova, false, true, kPa2);  // new domain: correct
    const auto d = s.oracle.detach(kRid, std::nullopt);
    Script::at_ns(150);
    s.oracle.complete(d, 145000);
    Script::at_ns(160);
    s.dma(155, kIova, false, false, 0);    // detached: a fault is correct
    s.dma(155, kIova, false, true, kPa2);  // but a translation is not
  }, 5, 1, 2);
}

// Long runs forget completed changes (memory stays bounded) and still judge: a DMA that
// reaches a long-retired target is a violation, the current target is correct.
TEST(Oracle, ForgottenChangesAreStillJudged) {
  run([](Script& s) {
    s.basic();
    for (unsigned i = 1; i <= 2000; ++i) {   // the page moves 2000 times, each barrier 1 ns later
      Script::at_ns(10.0 * i);
      const auto c = s.oracle.change(1, kIova, 4096, (i & 1) ? kPa2 : kPa, Rights{});
      Script::at_ns(10.0 * i + 5);
      s.oracle.complete(c, uint64_t(10.0 * i + 1) * 1000);
    }
    Script::at_ns(30000);
    s.dma(29000, kIova, false, true, kPa2);   // the previous target, its barrier long past
    s.dma(29000, kIova, false, true, kPa);    // the current one (2000 is even)
  }, 2, 0, 1);
}

TEST(Oracle, BypassPassesEverythingUntranslated) {
  run([](Script& s) {
    s.oracle.set_bypass(true);
    Script::at_ns(10);
    s.dma(5, kIova, false, true, kIova);
    s.dma(5, kIova, false, true, kPa);
  }, 2, 0, 1);
}

}  // namespace
}  // namespace iommusim::common

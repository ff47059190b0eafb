// Simulator speed, in host CPU time (Release build): each case runs in its own forked
// process (one SystemC simulation per process), REPEATS times; the median CPU time of the
// simulation (elaboration excluded unless the case says so) is reported, with DMAs per
// CPU second and the ratio to the one-wait floor measured in the same run.
//
//   floor        a bare SystemC program: 8 initiator threads -> pass-through target ->
//                memory target, latency annotated in `delay`, one wait per DMA. Every
//                DMA takes the same time, so the 8 threads wake together: one kernel
//                time step per 8 DMAs (checked)
//   floor_distinct  the same with thread i's DMAs 0.125 ns x i longer, so that the
//                threads wake at distinct times, as a model's DMAs do once contention
//                and the address make their latencies differ: one time step per DMA
//                (checked at more than 0.95); reported beside the floor
//   floor_lanes  floor_distinct with 24 threads, as three lanes of 8 slots in one process
//                have: the kernel's own cost of more threads, beside the lanes ratio
// Every case also reports kernel steps per DMA (sc_delta_count: evaluation phases).
//   hit          nested translation on a 1 MiB window (inside the IOTLB's reach): checked
//                to hit the IOTLB on more than 99% of DMAs
//   nested_miss  the same window with the IOTLB off: checked to hit on less than 1%
//   bypass       the same window, translation off (iommu.translation=bypass)
//   default      the default run (three vendors side by side, 100k DMAs each, unmap loop on)
//   lanes        each vendor of the default run alone; the sum is compared with `default`
//   setup_gib    elaboration and table setup of a 1 GiB window, 4 KB pages at both stages
//   nic_off      configs/examples/nic.json (12 ms of NIC traffic, lazy DMA API, the 10 ms
//                flush timer fires): checked to have no link and no ATC
//   nic_on       the same with the PCIe link and ATS on: checked to send TLPs and hit the
//                ATC; reported with DMAs and TLPs per CPU second and CPU per DMA vs nic_off
//   inv_native   SMMUv3 nested churn with back-to-back unmaps (unmap_interval_ns 100) beside
//                one DMA in flight, less the same DMAs without unmaps: CPU per invalidation;
//                checked to invalidate and to have no trapped parts
//   inv_trapped  the same on smmuv3@trapped (vmm.paths=trapped): CPU per guest
//                invalidation; checked to trap on every one (issue 12 target: at most 3x
//                inv_native)
// Every case runs with the correctness oracle at its default (on) and must not fault.
//
//   bench_core [--transactions N] [--repeats R] [--vendors a,b] [--quick]
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "platforms/config.h"
#include "platforms/iommu_lane.h"
#include "platforms/system.h"

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// What a case measured in its child process.
struct Sample {
  double cpu_s = -1;       // < 0: the case failed (message on stderr)
  double hit_rate = -1;    // IOTLB hit rate over all lanes (-1: not translated)
  double dmas = 0, tlps = 0;   // nic_* and floors: DMAs completed; nic_*: TLPs on the link (both directions)
  double invalidations = 0;    // inv_*: invalidation records of the lane
  double steps = -1;           // kernel evaluation phases (sc_delta_count) per DMA
};

// ------------------------------------------------------------------ the one-wait floor

struct FloorMemory : sc_core::sc_module {
  tlm_utils::simple_target_socket<FloorMemory> socket{"socket"};
  explicit FloorMemory(sc_core::sc_module_name n) : sc_module(n) {
    socket.register_b_transport(this, &FloorMemory::b_transport);
  }
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
    delay += sc_core::sc_time(80, sc_core::SC_NS);
    p.set_response_status(tlm::TLM_OK_RESPONSE);
  }
};

struct FloorIommu : sc_core::sc_module {
  tlm_utils::simple_target_socket<FloorIommu> in{"in"};
  tlm_utils::simple_initiator_socket<FloorIommu> out{"out"};
  explicit FloorIommu(sc_core::sc_module_name n) : sc_module(n) {
    in.register_b_transport(this, &FloorIommu::b_transport);
  }
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& delay) {
    delay += sc_core::sc_time(6, sc_core::SC_NS);   // a "translation"
    out->b_transport(p, delay);
  }
};

struct FloorEndpoint : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<FloorEndpoint> socket{"socket"};
  uint64_t per_thread;
  uint64_t stagger_ps;            // thread i's DMAs take i x this longer
  FloorEndpoint(sc_core::sc_module_name n, uint64_t total, uint64_t stagger, unsigned threads)
      : sc_module(n), per_thread(total / threads), stagger_ps(stagger) {
    for (unsigned i = 0; i < threads; ++i)
      sc_core::sc_spawn([this, i] { slot(i); }, ("slot_" + std::to_string(i)).c_str());
  }
  void slot(unsigned i) {
    const sc_core::sc_time issue = sc_core::sc_time(4, sc_core::SC_NS) + sc_core::sc_time(double(i * stagger_ps), sc_core::SC_PS);
    tlm::tlm_generic_payload p;
    unsigned char data[64] = {};
    p.set_data_ptr(data);
    p.set_data_length(64);
    p.set_streaming_width(64);
    for (uint64_t k = 0; k < per_thread; ++k) {
      p.set_command(k & 1 ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
      p.set_address(k * 64);
      sc_core::sc_time delay = issue;
      socket->b_transport(p, delay);
      sc_core::wait(delay);   // the one synchronisation per DMA
    }
  }
};

// The floor program; `stagger_ps` 0 is the floor, > 0 floor_distinct (with `threads`
// threads: 24 is floor_lanes). Fails unless the threads woke together (floor) or apart
// (the others) as the case says.
Sample run_floor(uint64_t transactions, uint64_t stagger_ps, unsigned threads = 8) {
  FloorEndpoint ep("ep", transactions, stagger_ps, threads);
  FloorIommu iommu("iommu");
  FloorMemory mem("mem");
  ep.socket.bind(iommu.in);
  iommu.out.bind(mem.socket);
  const double t0 = cpu_seconds();
  sc_core::sc_start();
  const double cpu = cpu_seconds() - t0;
  Sample s;
  // The DMAs actually run (n rounded down to whole threads); the step at time 0 starts
  // the threads and is not a DMA's.
  s.dmas = double(ep.per_thread * threads);
  const uint64_t phases = sc_core::sc_delta_count();
  s.steps = double(phases ? phases - 1 : 0) / s.dmas;
  const bool as_labelled = stagger_ps ? s.steps > 0.95 : s.steps < 0.13;
  if (!as_labelled) {
    std::fprintf(stderr, "floor (stagger %llu ps, %u threads): %.3f kernel steps per DMA\n",
                 (unsigned long long)stagger_ps, threads, s.steps);
    return Sample{};
  }
  s.cpu_s = cpu;
  return s;
}

// ------------------------------------------------------------------ platform cases

struct Case {
  std::string label;
  std::vector<std::string> vendors;     // lanes in the run
  std::vector<std::string> overrides;
  uint64_t transactions;
  bool include_elaboration = false;
  enum class Check { None, Hits, Misses } check = Check::None;
};

Sample run_platform(const Case& c) {
  std::vector<std::string> o = c.overrides;
  std::string vendors;
  for (const auto& v : c.vendors) vendors += (vendors.empty() ? "" : ",") + v;
  o.push_back("iommu.vendor=" + vendors);
  o.push_back("traffic.transactions=" + std::to_string(c.transactions));
  o.push_back("sim.progress=false");
  const double t_elab = cpu_seconds();
  auto cfg = iommusim::platforms::load_config("", o);
  iommusim::platforms::System sys(cfg);
  const double t0 = cpu_seconds();
  const auto r = sys.run();
  Sample s;
  s.cpu_s = cpu_seconds() - (c.include_elaboration ? t_elab : t0);
  if (!r.ok) { std::fprintf(stderr, "%s: run failed: %s\n", c.label.c_str(), r.error.c_str()); s.cpu_s = -1; return s; }
  s.steps = double(sc_core::sc_delta_count()) / double(c.transactions * c.vendors.size());
  uint64_t hits = 0, lookups = 0, walks = 0;
  for (const auto& v : c.vendors) {
    const auto* faults = sys.stats().find_counter(v + ".endpoint.faults");
    const auto* done = sys.stats().find_counter(v + ".endpoint.transactions");
    if (!faults || faults->value() != 0 || !done || done->value() != c.transactions) {
      std::fprintf(stderr, "%s: %s faulted or did not finish; not a valid measurement\n", c.label.c_str(), v.c_str());
      s.cpu_s = -1;
      return s;
    }
    if (const auto* h = sys.stats().find_counter(v + ".iommu.iotlb.hits")) {
      hits += h->value();
      lookups += h->value() + sys.stats().find_counter(v + ".iommu.iotlb.misses")->value();
    }
    if (const auto* w = sys.stats().find_histogram(v + ".iommu.walk_reads")) walks += w->count();
  }
  // A disabled IOTLB counts no lookups: every DMA that walked missed it.
  if (lookups) s.hit_rate = double(hits) / double(lookups);
  else if (walks) s.hit_rate = 1.0 - double(std::min<uint64_t>(walks, c.transactions * c.vendors.size())) /
                                         double(c.transactions * c.vendors.size());
  const bool ok = c.check == Case::Check::None || (c.check == Case::Check::Hits && s.hit_rate > 0.99) ||
                  (c.check == Case::Check::Misses && s.hit_rate >= 0 && s.hit_rate < 0.01);
  if (!ok) {
    std::fprintf(stderr, "%s: IOTLB hit rate %.4f does not match the case's label\n", c.label.c_str(), s.hit_rate);
    s.cpu_s = -1;
  }
  return s;
}

// The NIC example on one vendor, with the link and ATS off or on. Each case checks that it
// does what its label says: the lazy flush timer fired, no DMA faulted, and the link and
// ATC were used exactly when on.
Sample run_nic(const std::string& vendor, bool link_and_ats) {
  std::vector<std::string> o{"iommu.vendor=" + vendor, "sim.progress=false"};
  if (link_and_ats) o.insert(o.end(), {"pcie.enabled=true", "traffic.ats.enabled=true"});
  auto cfg = iommusim::platforms::load_config(IOMMUSIM_SOURCE_DIR "/configs/examples/nic.json", o);
  iommusim::platforms::System sys(cfg);
  const double t0 = cpu_seconds();
  const auto r = sys.run();
  Sample s;
  s.cpu_s = cpu_seconds() - t0;
  const char* label = link_and_ats ? "nic_on" : "nic_off";
  auto counter = [&](const std::string& name) { return sys.stats().find_counter(vendor + "." + name); };
  auto value = [&](const std::string& name) { const auto* c = counter(name); return c ? double(c->value()) : 0.0; };
  const char* wrong = !r.ok                                                      ? "the run failed"
                      : value("endpoint.faults") != 0                            ? "a DMA faulted"
                      : value("dma_api.flushes_timer") < 1                       ? "the 10 ms flush timer never fired"
                      : link_and_ats && value("pcie.up.tlps") == 0               ? "no TLP crossed the link"
                      : link_and_ats && value("endpoint.atc.hits") == 0          ? "the ATC never hit"
                      : !link_and_ats && (counter("pcie.up.tlps") || counter("endpoint.atc.hits")) ? "the link or ATC is on"
                                                                                 : nullptr;
  if (wrong) {
    std::fprintf(stderr, "%s %s: %s; not a valid measurement %s\n", vendor.c_str(), label, wrong, r.error.c_str());
    return Sample{};
  }
  s.dmas = value("endpoint.transactions");
  s.tlps = value("pcie.up.tlps") + value("pcie.down.tlps");
  return s;
}

// SMMUv3 nested churn on the native or the trapped path, unmapping back to back or not
// at all (the same DMAs either way). Checked: no fault, every DMA done, invalidations exactly
// when unmapping, and trapped parts exactly on the trapped path.
Sample run_invalidations(bool trapped, bool unmaps, uint64_t transactions) {
  std::vector<std::string> o{"iommu.vendor=smmuv3", "iommu.translation=nested", "sim.progress=false",
                             "traffic.transactions=" + std::to_string(transactions),
                             "traffic.window_bytes=1048576", "traffic.outstanding=1",
                             std::string("workload.unmap_interval_ns=") + (unmaps ? "100" : "0"),
                             std::string("vmm.paths=") + (trapped ? "trapped" : "native")};
  auto cfg = iommusim::platforms::load_config("", o);
  iommusim::platforms::System sys(cfg);
  const double t0 = cpu_seconds();
  const auto r = sys.run();
  Sample s;
  s.cpu_s = cpu_seconds() - t0;
  const std::string lane = trapped ? "smmuv3@trapped." : "smmuv3.";
  const auto* faults = sys.stats().find_counter(lane + "endpoint.faults");
  const auto* done = sys.stats().find_counter(lane + "endpoint.transactions");
  const auto* records = sys.stats().find_histogram(lane + "driver.invalidation.latency");
  const auto* trap = sys.stats().find_histogram(lane + "driver.invalidation.trap");
  const char* wrong = !r.ok                                                   ? "the run failed"
                      : !faults || faults->value() || !done || done->value() != transactions ? "DMAs faulted or did not finish"
                      : !records || (records->count() > 0) != unmaps          ? "invalidated when it should not (or not when it should)"
                      : trapped != (trap != nullptr)                          ? "trapped parts on the wrong path"
                      : trapped && unmaps && trap->count() != records->count() ? "an invalidation did not trap"
                                                                              : nullptr;
  if (wrong) {
    std::fprintf(stderr, "inv_%s: %s; not a valid measurement %s\n", trapped ? "trapped" : "native", wrong, r.error.c_str());
    return Sample{};
  }
  s.invalidations = double(records->count());
  return s;
}

template <class F>
Sample in_child(F&& f) {
  int fd[2];
  if (pipe(fd) != 0) return {};
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    const Sample s = f();
    const bool sent = write(fd[1], &s, sizeof s) == ssize_t(sizeof s);
    _exit(sent ? 0 : 1);
  }
  close(fd[1]);
  Sample s;
  if (read(fd[0], &s, sizeof s) != ssize_t(sizeof s)) s = Sample{};
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return s;
}

// Median of the repetitions; any failed repetition fails the case.
Sample median(std::vector<Sample> v) {
  for (const auto& s : v)
    if (s.cpu_s < 0) return Sample{};
  std::sort(v.begin(), v.end(), [](const Sample& a, const Sample& b) { return a.cpu_s < b.cpu_s; });
  return v[v.size() / 2];
}

template <class F>
Sample measure(int repeats, F&& f) {
  std::vector<Sample> v;
  for (int r = 0; r < repeats; ++r) v.push_back(in_child(f));
  return median(v);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos <= s.size();) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    if (comma > pos) out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

int g_argc;
char** g_argv;

}  // namespace

int sc_main(int, char**) {
  uint64_t n = 400000;
  int repeats = 5;
  std::vector<std::string> vendors{"smmuv3", "vtd", "amdvi"};
  // A whole positive decimal number, or nullopt ("12abc", "-3" and "" are not).
  auto number = [](const char* s) -> std::optional<uint64_t> {
    if (!s || *s < '0' || *s > '9') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || *end) return std::nullopt;
    return uint64_t(v);
  };
  for (int i = 1; i < g_argc; ++i) {
    const std::string a = g_argv[i];
    const char* value = i + 1 < g_argc ? g_argv[i + 1] : nullptr;
    if (a == "--quick") { n = 50000; repeats = 1; continue; }
    if (a != "--transactions" && a != "--repeats" && a != "--vendors") {
      std::fprintf(stderr, "usage: bench_core [--transactions N] [--repeats R] [--vendors a,b] [--quick]\n");
      return 2;
    }
    if (!value) { std::fprintf(stderr, "bench_core: %s needs a value\n", a.c_str()); return 2; }
    ++i;
    if (a == "--vendors") { vendors = split(value); continue; }
    const auto v = number(value);
    // The floors' step checks need many DMAs per thread.
    const uint64_t least = a == "--transactions" ? 1000 : 1, most = a == "--transactions" ? (1ull << 40) : 1000;
    if (!v || *v < least || *v > most) {
      std::fprintf(stderr, "bench_core: %s must be a whole number from %llu to %llu, got '%s'\n", a.c_str(),
                   (unsigned long long)least, (unsigned long long)most, value);
      return 2;
    }
    if (a == "--transactions") n = *v; else repeats = int(*v);
  }
  // An unknown or repeated vendor is refused before any case runs.
  const std::vector<std::string> known = iommusim::platforms::known_vendors();
  for (size_t i = 0; i < vendors.size(); ++i) {
    const bool unknown = std::find(known.begin(), known.end(), vendors[i]) == known.end();
    const bool repeated = std::find(vendors.begin(), vendors.begin() + long(i), vendors[i]) != vendors.begin() + long(i);
    if (unknown || repeated) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      std::fprintf(stderr, "bench_core: --vendors: '%s' is %s (known: %s)\n", vendors[i].c_str(),
                   unknown ? "not a vendor" : "given twice", list.c_str());
      return 2;
    }
  }
  if (vendors.empty()) { std::fprintf(stderr, "bench_core: --vendors names no vendor\n"); return 2; }
  bool failed = false;
  const Sample floor = measure(repeats, [&] { return run_floor(n, 0); });
  const Sample floor_distinct = measure(repeats, [&] { return run_floor(n, 125); });
  const Sample floor_lanes = measure(repeats, [&] { return run_floor(n, 125, 24); });
  if (floor.cpu_s <= 0 || floor_distinct.cpu_s <= 0 || floor_lanes.cpu_s <= 0) {
    std::fprintf(stderr, "the floor program failed\n");
    return 1;
  }
  const double floor_rate = floor.dmas / floor.cpu_s;
  std::printf("median CPU time of %d run(s); %llu DMAs per case unless noted; oracle on\n", repeats,
              (unsigned long long)n);
  std::printf("%-8s %-15s %8s %12s %10s %9s %9s\n", "vendor", "case", "CPU s", "DMAs/CPU s", "case/floor", "IOTLB hit",
              "steps/DMA");
  auto report = [&](const std::string& v, const std::string& label, const Sample& s, uint64_t dmas) {
    if (s.cpu_s < 0) { std::printf("%-8s %-15s %8s\n", v.c_str(), label.c_str(), "FAILED"); failed = true; return; }
    const double rate = (s.dmas > 0 ? s.dmas : double(dmas)) / s.cpu_s;
    char hit[16] = "-";
    if (s.hit_rate >= 0) std::snprintf(hit, sizeof hit, "%.2f%%", 100 * s.hit_rate);
    std::printf("%-8s %-15s %8.3f %12.0f %9.2fx %9s %9.3f\n", v.c_str(), label.c_str(), s.cpu_s, rate,
                floor_rate / rate, hit, s.steps);
  };
  report("-", "floor", floor, n);
  report("-", "floor_distinct", floor_distinct, n);
  report("-", "floor_lanes", floor_lanes, n);
  const std::vector<std::string> same_window{"traffic.window_bytes=1048576", "workload.unmap_interval_ns=0"};
  for (const auto& v : vendors) {
    Case hit{"hit", {v}, same_window, n, false, Case::Check::Hits};
    Case miss{"nested_miss", {v}, same_window, n, false, Case::Check::Misses};
    miss.overrides.push_back("iommu." + v + ".iotlb.entries=0");
    Case bypass{"bypass", {v}, same_window, n};
    bypass.overrides.push_back("iommu.translation=bypass");
    // Repetitions interleaved (floor_distinct, hit, nested_miss, bypass, then again), so
    // that a slow phase of the host falls on every case of a round alike; the ratios are
    // medians of each round's ratio.
    std::vector<Sample> rounds[4];
    for (int r = 0; r < repeats; ++r) {
      rounds[0].push_back(in_child([&] { return run_floor(n, 125); }));
      for (int k = 0; k < 3; ++k) {
        const Case* c = k == 0 ? &hit : k == 1 ? &miss : &bypass;
        rounds[k + 1].push_back(in_child([&] { return run_platform(*c); }));
      }
    }
    if (median(rounds[0]).cpu_s < 0) report(v, "floor_distinct", Sample{}, n);   // a failed round fails the bench
    report(v, hit.label, median(rounds[1]), n);
    report(v, miss.label, median(rounds[2]), n);
    report(v, bypass.label, median(rounds[3]), n);
    auto ratio = [&](int a, int b) {
      std::vector<double> q;
      for (int r = 0; r < repeats; ++r) {
        if (rounds[a][size_t(r)].cpu_s <= 0 || rounds[b][size_t(r)].cpu_s <= 0) return -1.0;
        q.push_back(rounds[a][size_t(r)].cpu_s / rounds[b][size_t(r)].cpu_s);
      }
      std::sort(q.begin(), q.end());
      return q[q.size() / 2];
    };
    if (ratio(1, 0) > 0 && ratio(1, 3) > 0)
      std::printf("%-8s hit / floor_distinct: %.2fx; hit / bypass: %.2fx (medians of %d interleaved rounds)\n",
                  v.c_str(), ratio(1, 0), ratio(1, 3), repeats);
  }
  // The default run, and its lanes alone.
  const uint64_t dflt = 100000;
  const Case all{"default", vendors, {}, dflt};
  const Sample together = measure(repeats, [&] { return run_platform(all); });
  report("all", all.label, together, dflt * vendors.size());
  double separate = 0;
  for (const auto& v : vendors) {
    const Case one{"lanes", {v}, {}, dflt};
    const Sample s = measure(repeats, [&] { return run_platform(one); });
    report(v, one.label, s, dflt);
    separate = s.cpu_s < 0 || separate < 0 ? -1 : separate + s.cpu_s;
  }
  if (together.cpu_s > 0 && separate > 0)
    std::printf("%zu lanes in one process / separate runs: %.3fx (the bare kernel, floor_lanes / floor_distinct: "
                "%.3fx)\n",
                vendors.size(), together.cpu_s / separate, floor_lanes.cpu_s / floor_distinct.cpu_s);
  // Table setup of a 1 GiB window (4 KB pages at both stages), elaboration included.
  const Case setup{"setup_gib", {vendors.front()},
                   {"traffic.window_bytes=1073741824", "platform.guest_ram_bytes=2147483648",
                    "platform.guest_table_pool_bytes=33554432", "workload.unmap_interval_ns=0"},
                   8, true};
  const Sample s = measure(repeats, [&] { return run_platform(setup); });
  if (s.cpu_s < 0) { std::printf("%-8s %-12s FAILED\n", vendors.front().c_str(), "setup_gib"); failed = true; }
  else std::printf("%-8s %-12s %10.3f s per GiB of window (elaboration and tables, 8 DMAs)\n", vendors.front().c_str(),
                   "setup_gib", s.cpu_s);
  // The NIC workload with the link and ATS off and on (issue target: on costs at most 2x
  // the CPU time per DMA of off).
  for (const auto& v : vendors) {
    const Sample off = measure(repeats, [&] { return run_nic(v, false); });
    const Sample on = measure(repeats, [&] { return run_nic(v, true); });
    for (const auto* c : {&off, &on}) {
      const char* label = c == &off ? "nic_off" : "nic_on";
      if (c->cpu_s < 0) { std::printf("%-8s %-12s FAILED\n", v.c_str(), label); failed = true; continue; }
      std::printf("%-8s %-12s %10.3f %14.0f DMAs/CPU s, %.0f DMAs", v.c_str(), label, c->cpu_s, c->dmas / c->cpu_s, c->dmas);
      if (c->tlps > 0) std::printf(", %.0f TLPs/CPU s", c->tlps / c->cpu_s);
      std::printf("\n");
    }
    if (off.cpu_s > 0 && on.cpu_s > 0)
      std::printf("%-8s nic CPU per DMA, link and ATS on / off: %.2fx (target <= 2x)\n", v.c_str(),
                  (on.cpu_s / on.dmas) / (off.cpu_s / off.dmas));
  }
  // Host CPU per invalidation, native and trapped (SMMUv3): the run with unmaps less the
  // same traffic without.
  double per_inv[2] = {-1, -1};
  for (bool trapped : {false, true}) {
    const uint64_t dmas = std::max<uint64_t>(n, 200000);   // one in flight: about 20 ms simulated per 200k
    const Sample with = measure(repeats, [&] { return run_invalidations(trapped, true, dmas); });
    const Sample without = measure(repeats, [&] { return run_invalidations(trapped, false, dmas); });
    const char* label = trapped ? "inv_trapped" : "inv_native";
    if (with.cpu_s < 0 || without.cpu_s < 0 || with.invalidations <= 0) {
      std::printf("%-8s %-12s FAILED\n", "smmuv3", label);
      failed = true;
      continue;
    }
    if (with.cpu_s <= without.cpu_s) {   // the host's noise exceeded the invalidations' cost: no figure
      std::printf("%-8s %-12s %10.3f s with unmaps, %.3f s without: not measurable in this run (repeat it)\n",
                  "smmuv3", label, with.cpu_s, without.cpu_s);
      continue;
    }
    per_inv[trapped] = (with.cpu_s - without.cpu_s) / with.invalidations;
    std::printf("%-8s %-12s %10.3f s with unmaps, %.3f s without, %.0f invalidations: %.2f us CPU each\n", "smmuv3",
                label, with.cpu_s, without.cpu_s, with.invalidations, 1e6 * per_inv[trapped]);
  }
  if (per_inv[0] > 0 && per_inv[1] > 0)
    std::printf("smmuv3   CPU per invalidation, trapped / native: %.2fx (target <= 3x)\n", per_inv[1] / per_inv[0]);
  return failed ? 1 : 0;
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
  g_argc = argc;
  g_argv = argv;
  return sc_core::sc_elab_and_sim(argc, argv);
}

// Simulator speed: simulated translations per host second for three kinds of traffic, per
// vendor.
//   iotlb_hit   - nested translation, DMA window inside the IOTLB reach (steady-state hits)
//   nested_miss - nested translation with the IOTLB off, so every DMA is a nested walk
//                 (walk caches on)
//   bypass      - the IOMMU passes DMA untranslated: the floor set by the SystemC kernel
//                 and the memory model
// Each case runs in its own forked process (one SystemC simulation per process).
//   bench_translate [TRANSACTIONS] [REPEATS] [VENDORS (comma-separated; default: all)]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <systemc>

#include "platforms/config.h"
#include "platforms/system.h"

namespace {
int g_argc;
char** g_argv;

struct Case { std::string vendor; const char* name; std::vector<std::string> overrides; };

double run_case(const Case& c, uint64_t transactions) {
  std::vector<std::string> o = c.overrides;
  o.push_back("iommu.vendor=" + c.vendor);
  o.push_back("traffic.transactions=" + std::to_string(transactions));
  o.push_back("workload.unmap_interval_ns=0");
  o.push_back("sim.progress=false");
  auto cfg = iommusim::platforms::load_config("", o);
  iommusim::platforms::System sys(cfg);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = sys.run();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok) { std::fprintf(stderr, "%s failed: %s\n", c.name, r.error.c_str()); return -1; }
  const auto* faults = sys.stats().find_counter(c.vendor + ".endpoint.faults");
  if (!faults || faults->value() != 0) { std::fprintf(stderr, "%s: DMAs faulted; not a valid measurement\n", c.name); return -1; }
  return double(transactions) / s;
}

// Runs one case in a child process and returns translations per second.
double fork_case(const Case& c, uint64_t transactions) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    double v = run_case(c, transactions);
    if (write(fd[1], &v, sizeof v) != sizeof v) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  double v = -1;
  if (read(fd[0], &v, sizeof v) != sizeof v) v = -1;
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return v;
}
}  // namespace

int sc_main(int, char**) {
  const uint64_t n = g_argc > 1 ? std::strtoull(g_argv[1], nullptr, 10) : 400000;
  const int repeats = g_argc > 2 ? std::atoi(g_argv[2]) : 3;
  const std::string vendors = g_argc > 3 ? g_argv[3] : "smmuv3,vtd,amdvi";
  std::printf("%-8s %-12s %14s   (best of %d runs, %llu DMAs each, 8 outstanding)\n", "vendor", "traffic",
              "translations/s", repeats, (unsigned long long)n);
  for (size_t pos = 0; pos <= vendors.size();) {
    const size_t comma = std::min(vendors.find(',', pos), vendors.size());
    const std::string v = vendors.substr(pos, comma - pos);
    pos = comma + 1;
    const std::vector<Case> cases = {
        {v, "iotlb_hit", {"traffic.window_bytes=1048576"}},
        {v, "nested_miss", {"iommu." + v + ".iotlb.entries=0"}},
        {v, "bypass", {"iommu.translation=bypass"}},
    };
    double best[3] = {0, 0, 0};
    for (size_t i = 0; i < cases.size(); ++i) {
      for (int r = 0; r < repeats; ++r) best[i] = std::max(best[i], fork_case(cases[i], n));
      std::printf("%-8s %-12s %14.0f\n", v.c_str(), cases[i].name, best[i]);
    }
    if (best[0] > 0 && best[2] > 0)
      std::printf("%-8s bypass / iotlb_hit speed ratio: %.2fx (target <= 1.5x)\n", v.c_str(), best[2] / best[0]);
  }
  return 0;
}

int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
  g_argc = argc;
  g_argv = argv;
  return sc_core::sc_elab_and_sim(argc, argv);
}

// A local process pool for sweeps: runs jobs, at most N at a time, each in its own process
// (SystemC elaborates one simulation per process) with its stdout and stderr in a log file.
// A job is a function run in a child forked from this process, which has loaded and
// initialised everything once, so a point pays no exec, dynamic linking or static
// initialisation (a fifth of a short point's CPU time; docs/sweep.md). The forking process
// must not have elaborated a SystemC model. The caller learns of each end in its own
// thread, in the order they end.
// What it does not do: retry, time out, or decide what a point's outcome means.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace iommusim::app {

struct PoolJob {
  size_t index = 0;                 // the caller's id for the job
  std::function<int()> work;        // runs in the child; returns its exit status
  std::string log_path;             // stdout and stderr go here (truncated first)
};

struct PoolResult {
  size_t index = 0;
  int exit_code = -1;               // the exit status, -1 when killed by a signal
  int signal = 0;                   // the signal that killed it, 0 when it exited
  double seconds = 0;               // wall time from spawn to exit
};

// Runs every job. on_start(index) runs just before a job is spawned (prepare its folder),
// on_done(result) as each ends, after the next job was started in its place (handling a
// result overlaps the jobs still running). Returns false when SIGINT or SIGTERM stopped the pool: the
// running jobs are then sent SIGTERM and reaped, without on_done. A job that cannot be
// started (no process, no log file) ends with exit code 127 and, where possible, the
// reason in its log.
bool run_pool(const std::vector<PoolJob>& jobs, unsigned parallel, const std::function<void(size_t)>& on_start,
              const std::function<void(const PoolResult&)>& on_done);

// The CPUs this process may run on (its affinity mask), at least 1.
unsigned usable_cpus();

// The absolute path of the running executable.
std::string self_executable();

// Runs this program again (same arguments) with glibc's malloc asking for transparent huge
// pages (GLIBC_TUNABLES glibc.malloc.hugetlb=1), unless the tunable is already set; returns
// only when it is set or the program cannot be run again. The tunable is read at start-up
// only, and forked points inherit it. Why: a point's heap is new memory, so without it each
// 4 KB page costs a fault; measured on a 2-vCPU VM, 300 default points with 10k DMAs each
// cost 25-40% less system time with it, and two points at once slow each other less.
void prefer_huge_pages_for_points(int argc, const char* const* argv);

}  // namespace iommusim::app

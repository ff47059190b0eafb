#include "apps/iommusim/sweep_pool.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace iommusim::app {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

// SIGINT and SIGTERM set g_stop and interrupt waitpid (no SA_RESTART) while the pool runs.
class StopSignals {
 public:
  StopSignals() {
    g_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    // An inherited "ignore SIGCHLD" would reap the points itself: waitpid would then see
    // no children and the pool could not tell how they ended.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old_chld_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGCHLD, &old_chld_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_chld_ {};
};

struct Running {
  size_t index;
  std::chrono::steady_clock::time_point start;
};

pid_t spawn(const PoolJob& job) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);   // nothing buffered here may be written twice, by the child too
  // SIGINT/SIGTERM stay pending across fork until the child has its default handlers back,
  // so a stop that arrives meanwhile ends the point instead of setting the pool's flag in it.
  sigset_t stop, before;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, &before);
  const pid_t pid = fork();
  if (pid != 0) {
    const int err = errno;
    sigprocmask(SIG_SETMASK, &before, nullptr);
    if (pid < 0) std::ofstream(job.log_path) << "cannot start the point: fork: " << std::strerror(err) << "\n";
    return pid;
  }
  // The child: the pool's own signal handlers only set a flag; a point stops on SIGTERM.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigprocmask(SIG_SETMASK, &before, nullptr);
  const int log = open(job.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int null = open("/dev/null", O_RDONLY);
  if (log < 0 || null < 0) _exit(127);
  dup2(log, STDOUT_FILENO);
  dup2(log, STDERR_FILENO);
  dup2(null, STDIN_FILENO);
  close(log);
  close(null);
  int code = 1;
  try {
    code = job.work();
  } catch (const std::exception& e) {
    std::cerr << "iommusim: " << e.what() << "\n";
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  _exit(code);   // no destructors or atexit handlers of the pool's process
}

}  // namespace

bool run_pool(const std::vector<PoolJob>& jobs, unsigned parallel, const std::function<void(size_t)>& on_start,
              const std::function<void(const PoolResult&)>& on_done) {
  StopSignals signals;
  std::map<pid_t, Running> running;
  size_t next = 0;
  if (parallel == 0) parallel = 1;
  auto fill = [&] {
    while (!g_stop && next < jobs.size() && running.size() < parallel) {
      const PoolJob& job = jobs[next++];
      on_start(job.index);
      const auto start = std::chrono::steady_clock::now();
      const pid_t pid = spawn(job);
      if (pid < 0) {
        on_done(PoolResult{job.index, 127, 0, 0});
        continue;
      }
      running[pid] = Running{job.index, start};
    }
  };
  while (next < jobs.size() || !running.empty()) {
    fill();
    if (g_stop) break;
    if (running.empty()) continue;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;   // ECHILD: nothing left to wait for
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    PoolResult r;
    r.index = it->second.index;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.start).count();
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    running.erase(it);
    fill();   // the next point starts before this one's results are handled
    on_done(r);
  }
  if (!g_stop) return true;
  for (auto& [pid, run] : running) kill(pid, SIGTERM);
  for (auto& [pid, run] : running) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return false;
}

unsigned usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return unsigned(CPU_COUNT(&set));
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? unsigned(n) : 1;
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, size_t(n));
}

void prefer_huge_pages_for_points(int argc, const char* const* argv) {
#ifdef __GLIBC__
  constexpr const char* kTunable = "glibc.malloc.hugetlb";
  const char* had = std::getenv("GLIBC_TUNABLES");
  const std::string before = had ? had : "";
  if (before.find(kTunable) != std::string::npos || argc < 1) return;   // set (by us or by the user)
  const std::string exe = self_executable();
  if (exe.empty()) return;
  const std::string tunables = (before.empty() ? "" : before + ":") + kTunable + "=1";
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) args.push_back(const_cast<char*>(argv[i]));
  args.push_back(nullptr);
  std::cout.flush();
  std::cerr.flush();
  execv(exe.c_str(), args.data());
  // Not run again: carry on as we are, without the tunable in our children's environment.
  if (had) setenv("GLIBC_TUNABLES", had, 1); else unsetenv("GLIBC_TUNABLES");
#else
  (void)argc;
  (void)argv;
#endif
}

}  // namespace iommusim::app

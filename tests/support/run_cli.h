// Runs the iommusim binary (IOMMUSIM_BINARY, set by tests/CMakeLists.txt) as a user would,
// capturing stdout and stderr together, and its exit status.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace iommusim::test {

struct CliRun { int exit_code; std::string out; };

inline CliRun run_cli(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + std::string(IOMMUSIM_BINARY) + " " + args + " 2>&1";
  CliRun r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A run that stops in the middle of an operation (a run failure, sim.max_sim_time_us)
// leaves SystemC threads suspended, their stacks never unwound: under LeakSanitizer (make
// test-sanitize) what those frames own reads as leaked. Such runs go without leak checks.
inline CliRun run_cli_stopped_midway(const std::string& args) {
  return run_cli(args, "ASAN_OPTIONS=\"${ASAN_OPTIONS}:detect_leaks=0\" ");
}

}  // namespace iommusim::test

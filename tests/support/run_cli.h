// Runs the iommusim binary (IOMMUSIM_BINARY, set by tests/CMakeLists.txt) as a user would,
// capturing stdout and stderr together, and its exit status.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// A run the config refuses: `params` after `prefix` must exit 2 with a message containing `says`.
struct ConfigErrorCase {
  std::string params;
  std::string says;
};
inline void expect_config_errors(const std::string& dir, const std::string& prefix,
                                 const std::vector<ConfigErrorCase>& cases) {
  for (const ConfigErrorCase& c : cases) {
    const CliRun r = run_cli("run --force -o " + dir + " " + prefix + " " + c.params);
    EXPECT_EQ(r.exit_code, 2) << c.params << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.params << "\n" << r.out;
  }
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A run with an injected bug (vmm.inject) into `dir`: it must exit 3 (violations); its stats.
inline nlohmann::json run_expecting_violations(const std::string& dir, const std::string& params) {
  const CliRun r = run_cli("run --force -o " + dir + " " + params);
  EXPECT_EQ(r.exit_code, 3) << r.out;
  return read_json(dir + "/stats.json");
}

// A stat's field from a stats.json ("value" for counters and values, "count", "mean", ...
// for histograms); a test failure and -1 when there is no such stat.
inline double stat(const nlohmann::json& stats, const std::string& name, const char* field = "value") {
  for (auto& s : stats["stats"]) if (s["name"] == name) return s[field].get<double>();
  ADD_FAILURE() << "no stat " << name;
  return -1;
}

inline bool has_stat(const nlohmann::json& stats, const std::string& name) {
  for (const auto& s : stats["stats"])
    if (s["name"] == name) return true;
  return false;
}

// How many samples histogram `name` holds at exactly `value` (its buckets are exact below 64).
inline double bucket_count(const nlohmann::json& stats, const std::string& name, double value) {
  for (const auto& s : stats["stats"])
    if (s["name"] == name)
      for (const auto& b : s["buckets"])
        if (b[0].get<double>() == value && b[1].get<double>() == value + 1) return b[2].get<double>();
  return 0;
}

}  // namespace iommusim::test

#include "apps/iommusim/sweep.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <systemc>

#include "apps/iommusim/run.h"
#include "apps/iommusim/sweep_pool.h"
#include "platforms/progress.h"
#include "platforms/sweep_folder.h"
#include "platforms/sweep_results.h"

namespace iommusim::app {
namespace {

namespace fs = std::filesystem;
namespace sw = iommusim::platforms::sweep;
using Clock = std::chrono::steady_clock;

// "iommu.smmuv3.iotlb.entries=512 memory.latency_cycles=40 sim.seed=1"
std::string describe(const sw::Spec& spec, const sw::Point& p) {
  std::string s;
  for (size_t k = 0; k < spec.keys.size(); ++k) s += spec.keys[k] + "=" + sw::format_value(p.values[k]) + " ";
  return s + sw::kSeedKey + "=" + std::to_string(p.seed);
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

// A point's run: `iommusim run BASE -p ... -o POINT --force`, its output in POINT/run.log.
PoolJob point_job(const sw::Folder& folder, size_t index) {
  PoolJob job;
  job.index = index;
  RunOptions run;
  if (!folder.spec().base.empty()) run.config_path = absolute(folder.spec().base);
  run.overrides = folder.points()[index].params;
  run.out_dir = folder.point_dir(index);
  run.force = true;
  const sw::Spec* spec = &folder.spec();
  const std::string kept = (fs::path(run.out_dir) / sw::kChosenStatsFile).string();
  run.after_outputs = [spec, kept, index](const nlohmann::json& stats) {
    sw::write_atomically(kept, sw::chosen_stats(*spec, stats, index).dump() + "\n");
  };
  job.work = [run] { return run_simulation(run); };
  job.log_path = (fs::path(folder.point_dir(index)) / sw::kRunLog).string();
  return job;
}

// One progress line on stderr, redrawn every half second and as points end; nothing at all
// when stderr is not a terminal. Messages (failures) print above it.
class ProgressLine {
 public:
  ProgressLine(size_t total, size_t done_before)
      : enabled_(isatty(STDERR_FILENO) != 0), total_(total), done_(done_before), done_before_(done_before) {
    if (enabled_) ticker_ = std::thread([this] { tick(); });
  }
  ~ProgressLine() { finish(); }
  void point_ended(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    (ok ? done_ : failed_)++;
    draw();
  }
  void message(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    if (enabled_) std::fputs("\r\x1b[K", stderr);
    std::fputs(text.c_str(), stderr);
    draw();
  }
  void finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!enabled_ || stopped_) return;
      stopped_ = true;
      std::fputs("\r\x1b[K", stderr);
    }
    cv_.notify_all();
    ticker_.join();
  }

 private:
  void draw() {
    if (!enabled_ || stopped_) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    std::string line = "\r  sweep: " + platforms::progress_text(done_ + failed_, total_, elapsed, "points", done_before_);
    if (failed_) line += ", " + std::to_string(failed_) + " failed";
    std::fputs((line + "\x1b[K").c_str(), stderr);
    std::fflush(stderr);
  }
  void tick() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_) {
      draw();
      cv_.wait_for(lock, std::chrono::milliseconds(500));
    }
  }

  const bool enabled_;
  const size_t total_;
  size_t done_, failed_ = 0;
  const size_t done_before_;
  bool stopped_ = false;
  const Clock::time_point start_ = Clock::now();
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread ticker_;
};

struct Outcome {
  size_t ran = 0, failed = 0;
  int last_exit = 0;   // the last failed point's exit status (128 + signal when killed)
  bool interrupted = false;
};

// Runs the given points on the pool, marking each done or failed as it ends.
Outcome run_points(const sw::Folder& folder, const std::vector<size_t>& todo, unsigned parallel, ProgressLine& progress) {
  std::vector<PoolJob> jobs;
  jobs.reserve(todo.size());
  for (size_t i : todo) jobs.push_back(point_job(folder, i));
  Outcome out;
  const bool completed = run_pool(
      jobs, parallel, [&](size_t i) { folder.begin_point(i); },
      [&](const PoolResult& r) {
        ++out.ran;
        if (r.exit_code == 0 && r.signal == 0) {
          folder.mark_done(r.index, r.seconds);
          progress.point_ended(true);
          return;
        }
        ++out.failed;
        out.last_exit = r.signal ? 128 + r.signal : r.exit_code;
        const std::string log = (fs::path(folder.point_dir(r.index)) / sw::kRunLog).string();
        const std::string tail = sw::tail_lines(log, 8);
        folder.mark_failed(r.index, r.exit_code, r.signal, tail);
        std::string text = "iommusim sweep: point " + std::to_string(r.index) + " failed (" +
                           (r.signal ? "killed by signal " + std::to_string(r.signal) : "exit " + std::to_string(r.exit_code)) +
                           "): " + describe(folder.spec(), folder.points()[r.index]) + "\n  " + log + " ends:\n";
        std::istringstream lines(tail);
        for (std::string l; std::getline(lines, l);) text += "    " + l + "\n";
        progress.message(text);
        progress.point_ended(false);
      });
  out.interrupted = !completed;
  return out;
}

// "0-3,5,7-9" for Slurm's --array.
std::string index_ranges(const std::vector<size_t>& indices) {
  std::string s;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + std::to_string(indices[i]) + (j > i ? "-" + std::to_string(indices[j]) : "");
    i = j + 1;
  }
  return s;
}

// Runs a shell command; returns its exit status and stdout (its stderr goes to ours).
std::pair<int, std::string> shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "cannot run " + cmd};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

SweepCommand::SweepCommand(CLI::App& app) {
  sub_ = app.add_subcommand("sweep", "run a sweep spec's points on a local pool or a Slurm array (docs/sweep.md)");
  sub_->add_option("spec", spec_, "sweep spec (JSON, comments allowed)")->required();
  sub_->add_option("-o,--out", out_, "sweep folder (default: results/sweeps/<spec name>)");
  sub_->add_option("-j,--jobs", jobs_, "points run at once (default: the usable CPUs)")->check(CLI::Range(1u, 4096u));
  auto* list = sub_->add_flag("--list", list_, "print the points and whether each is done");
  auto* index = sub_->add_option("--index", index_, "run point I only (a Slurm array task)")->check(CLI::NonNegativeNumber);
  auto* merge = sub_->add_flag("--merge", merge_, "write results.csv from the points done so far");
  auto* slurm = sub_->add_flag("--slurm", slurm_, "write DIR/sweep.sbatch, an array job of the points not done");
  sub_->add_flag("--submit", submit_, "with --slurm: submit it with sbatch, and a merge job after it")->needs(slurm);
  sub_->add_option("--sbatch", sbatch_options_, "with --slurm: an #SBATCH option line, e.g. --sbatch=--partition=short")
      ->needs(slurm);
  sub_->add_flag("--force", force_, "discard an earlier sweep in DIR and run every point again (with --index: rerun point I)");
  list->excludes(index, merge, slurm);
  index->excludes(merge, slurm);
  merge->excludes(slurm);
}

int SweepCommand::exec() const {
  try {
    const sw::Spec spec = sw::read_spec(spec_);
    const std::string dir = out_.empty() ? "results/sweeps/" + fs::path(spec_).stem().string() : out_;
    const sw::Folder folder(dir, spec);
    const auto& points = folder.points();

    if (list_) {
      folder.check_existing();
      for (const auto& p : points)
        std::cout << p.index << "  " << sw::Folder::status_name(folder.status(p.index)) << "  " << describe(spec, p) << "\n";
      return 0;
    }
    if (merge_) {
      if (!fs::exists(fs::path(dir) / sw::kManifestFile))
        throw sw::SweepError(dir + " holds no sweep (no " + std::string(sw::kManifestFile) + "): run the sweep first");
      folder.check_existing();
      const auto missing = folder.merge();
      std::cout << "iommusim sweep: " << dir << "/" << sw::kResultsFile << " from " << points.size() - missing.size() << " of "
                << points.size() << " points";
      if (!missing.empty()) std::cout << "; not done: " << index_ranges(missing);
      std::cout << "\n";
      return missing.empty() ? 0 : 1;
    }
    if (index_ >= 0) {
      if (size_t(index_) >= points.size())
        throw sw::SweepError("--index " + std::to_string(index_) + ": the sweep has " + std::to_string(points.size()) +
                             " points (0 to " + std::to_string(points.size() - 1) + ")");
      const size_t i = size_t(index_);
      folder.prepare(/*discard=*/false);
      if (folder.status(i) == sw::Folder::Status::kDone && !force_) {
        std::cout << "iommusim sweep: point " << i << " is done (" << folder.point_dir(i) << ")\n";
        return 0;
      }
      ProgressLine progress(1, 0);
      const Outcome o = run_points(folder, {i}, 1, progress);
      progress.finish();
      if (o.interrupted) return 130;
      if (o.failed) return o.last_exit ? o.last_exit : 1;
      std::cout << "iommusim sweep: point " << i << " done: " << describe(spec, points[i]) << "\n";
      return 0;
    }

    if (!slurm_) prefer_huge_pages_for_points(sc_core::sc_argc(), sc_core::sc_argv());
    folder.prepare(force_);
    std::vector<size_t> todo;
    for (const auto& p : points)
      if (folder.status(p.index) != sw::Folder::Status::kDone) todo.push_back(p.index);
    const size_t done_before = points.size() - todo.size();

    if (slurm_) {
      if (todo.empty()) {
        folder.merge();
        std::cout << "iommusim sweep: all " << points.size() << " points are done; " << dir << "/" << sw::kResultsFile
                  << " merged\n";
        return 0;
      }
      const std::string exe = self_executable(), adir = absolute(dir), aspec = absolute(spec_);
      const std::string script_path = (fs::path(dir) / sw::kSbatchFile).string();
      std::error_code ec;
      fs::create_directories(fs::path(dir) / sw::kSlurmLogDir, ec);
      std::ostringstream s;
      s << "#!/bin/bash\n"
        << "# iommusim sweep " << aspec << ": one array task per point not yet done (docs/sweep.md).\n"
        << "#SBATCH --job-name=iommusim-sweep\n"
        << "#SBATCH --array=" << index_ranges(todo) << "\n"
        << "#SBATCH --output=" << adir << "/" << sw::kSlurmLogDir << "/%A_%a.out\n"
        << "#SBATCH --ntasks=1\n"
        << "#SBATCH --cpus-per-task=1\n";
      for (const auto& o : sbatch_options_) s << "#SBATCH " << o << "\n";
      s << "exec " << shell_quote(exe) << " sweep " << shell_quote(aspec) << " -o " << shell_quote(adir)
        << " --index \"$SLURM_ARRAY_TASK_ID\"\n";
      sw::write_atomically(script_path, s.str());
      fs::permissions(script_path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
      const std::string merge_cmd =
          shell_quote(exe) + " sweep " + shell_quote(aspec) + " -o " + shell_quote(adir) + " --merge";
      if (!submit_) {
        std::cout << "iommusim sweep: wrote " << script_path << " (" << todo.size() << " array tasks, " << done_before
                  << " points already done)\n  submit: sbatch " << script_path << "\n  when it ends: " << merge_cmd << "\n";
        return 0;
      }
      // sbatch --parsable prints "JOBID" or "JOBID;CLUSTER".
      auto job_id = [](const std::string& out) { return out.substr(0, out.find_first_of(";\n")); };
      auto [rc, out] = shell("sbatch --parsable " + shell_quote(script_path));
      const std::string array_id = job_id(out);
      if (rc != 0 || array_id.empty() || array_id.find_first_not_of("0123456789") != std::string::npos) {
        std::cerr << "iommusim sweep: sbatch " << script_path << " failed (exit " << rc << ", printed \"" << out << "\")\n";
        return 1;
      }
      auto [rc2, out2] = shell("sbatch --parsable --job-name=iommusim-sweep-merge --dependency=afterany:" + array_id +
                               " --output=" + shell_quote(adir + "/" + sw::kSlurmLogDir + "/merge_%j.out") + " --wrap=" +
                               shell_quote("exec " + merge_cmd));
      if (rc2 != 0) {
        std::cerr << "iommusim sweep: submitting the merge job failed (exit " << rc2 << "); the array job " << array_id
                  << " runs; merge by hand when it ends: " << merge_cmd << "\n";
        return 1;
      }
      std::cout << "iommusim sweep: submitted array job " << array_id << " (" << todo.size() << " tasks) and merge job "
                << job_id(out2) << "; results in " << dir << "/" << sw::kResultsFile << " when both end\n";
      return 0;
    }

    const unsigned parallel = jobs_ ? jobs_ : usable_cpus();
    const auto start = Clock::now();
    ProgressLine progress(points.size(), done_before);
    const Outcome o = run_points(folder, todo, parallel, progress);
    progress.finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (o.interrupted) {
      std::cerr << "iommusim sweep: interrupted; " << done_before + o.ran - o.failed << " of " << points.size()
                << " points are done; run the same command again to resume\n";
      return 130;
    }
    const auto missing = folder.merge();
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.2f", seconds > 0 ? double(o.ran) / seconds : 0.0);
    std::cout << "iommusim sweep: " << points.size() << " points: " << o.ran - o.failed << " ran, " << done_before
              << " were done, " << o.failed << " failed; " << platforms::format_duration(seconds) << " on " << parallel
              << " processes (" << rate << " points/s); " << dir << "/" << sw::kResultsFile << " from "
              << points.size() - missing.size() << " points\n";
    return o.failed || !missing.empty() ? 1 : 0;
  } catch (const sw::SweepError& e) {
    std::cerr << "iommusim sweep: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {   // a file system error on the way
    std::cerr << "iommusim sweep: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace iommusim::app

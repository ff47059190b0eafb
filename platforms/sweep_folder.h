// A sweep folder (docs/sweep.md, "The sweep folder"): the manifest that ties the folder to
// one spec, one run folder per point, the markers that say a point is done (written last,
// by rename) or failed, and the merged results.csv. Every way of running points (the local
// pool, a Slurm array task) goes through here, so they share one layout and can finish
// each other's sweeps.
// What it does not do: start processes (apps/iommusim/sweep_pool.h) or lock the folder
// against two pools running the same points at once.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platforms/sweep_spec.h"

namespace iommusim::platforms::sweep {

inline constexpr const char* kManifestFile = "sweep.json";
inline constexpr const char* kResultsFile = "results.csv";
inline constexpr const char* kPointsDir = "points";
inline constexpr const char* kDoneMarker = "done.json";
inline constexpr const char* kFailedMarker = "failed.json";
inline constexpr const char* kRunLog = "run.log";
inline constexpr const char* kChosenStatsFile = "chosen_stats.json";   // sweep_results.h chosen_stats()
inline constexpr const char* kSbatchFile = "sweep.sbatch";
inline constexpr const char* kSlurmLogDir = "slurm";

// Writes path through a temporary file in the same folder and a rename, so a reader sees
// the old file or the whole new one, never part of it.
void write_atomically(const std::string& path, const std::string& text);
// The last `lines` lines of a file (at most its last max_bytes), "" when unreadable.
std::string tail_lines(const std::string& path, size_t lines, size_t max_bytes = 4096);

class Folder {
 public:
  Folder(std::string dir, Spec spec);
  const std::string& dir() const { return dir_; }
  const Spec& spec() const { return spec_; }
  const std::vector<Point>& points() const { return points_; }

  // A point's run folder: DIR/points/0007 (at least 4 digits, as many as the largest index).
  std::string point_dir(size_t index) const;
  std::string point_rel_dir(size_t index) const;   // points/0007
  // The manifest this sweep writes (format in docs/sweep.md).
  nlohmann::ordered_json manifest() const;

  // Throws SweepError when DIR/sweep.json belongs to another sweep (other points, seeds,
  // parameters or base config), naming the first difference. A missing manifest is fine.
  void check_existing() const;
  // Makes the folder this sweep's: discard=true first removes what an earlier sweep left
  // (manifest, points, results, Slurm files); otherwise check_existing() must pass. Then
  // writes the manifest unless an identical one is there.
  void prepare(bool discard) const;

  enum class Status { kTodo, kDone, kFailed };
  Status status(size_t index) const;
  static const char* status_name(Status s);

  // Before a point runs: its folder exists and holds no marker.
  void begin_point(size_t index) const;
  // After it ran: the marker, written last.
  void mark_done(size_t index, double host_seconds) const;
  void mark_failed(size_t index, int exit_code, int signal, const std::string& output_tail) const;

  // Reads every done point's stats.json and writes results.csv atomically. Returns the
  // indices of the points that are not done. Throws SweepError on a bad stat selection or
  // an unreadable stats.json.
  std::vector<size_t> merge() const;

 private:
  std::string dir_;
  Spec spec_;
  std::vector<Point> points_;
  std::string base_hash_;
  size_t digits_;
};

}  // namespace iommusim::platforms::sweep

#include "platforms/sweep_folder.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "platforms/sweep_results.h"

namespace iommusim::platforms::sweep {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What makes two sweeps the same: the base config (by hash) and each point's parameters.
// The description (about, stats, the spec's path) may change without rerunning anything.
std::string first_difference(const ojson& old, const ojson& now) {
  if (!old.is_object() || !old.contains("points") || !old["points"].is_array())
    return "its " + std::string(kManifestFile) + " is not a sweep manifest";
  if (old.value("base_hash", std::string()) != now["base_hash"].get<std::string>())
    return "its base config differs (base + set, hash " + old.value("base_hash", std::string("none")) + ", now " +
           now["base_hash"].get<std::string>() + ")";
  const auto& a = old["points"];
  const auto& b = now["points"];
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (!a[i].is_object() || a[i].value("params", ojson()) != b[i]["params"])
      return "its point " + std::to_string(i) + " ran with " + a[i].value("params", ojson()).dump() + ", this spec gives " +
             b[i]["params"].dump();
  if (a.size() != b.size())
    return "it has " + std::to_string(a.size()) + " points, this spec " + std::to_string(b.size());
  return "";
}

}  // namespace

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw SweepError("cannot write " + path);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw SweepError("cannot write " + path + ": " + ec.message());
  }
}

std::string tail_lines(const std::string& path, size_t lines, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > std::streamoff(max_bytes) ? size - std::streamoff(max_bytes) : 0;
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> all;
  std::istringstream ss(text);
  for (std::string line; std::getline(ss, line);) all.push_back(line);
  while (!all.empty() && all.back().empty()) all.pop_back();
  std::string tail;
  const size_t first = all.size() > lines ? all.size() - lines : 0;
  for (size_t i = first; i < all.size(); ++i) tail += (i > first ? "\n" : "") + all[i];
  return tail;
}

Folder::Folder(std::string dir, Spec spec) : dir_(std::move(dir)), spec_(std::move(spec)) {
  points_ = expand(spec_);
  base_hash_ = fnv1a_hex(spec_.base_config.dump());
  digits_ = std::max<size_t>(4, std::to_string(points_.empty() ? 0 : points_.size() - 1).size());
}

std::string Folder::point_rel_dir(size_t index) const {
  std::string n = std::to_string(index);
  return std::string(kPointsDir) + "/" + std::string(digits_ > n.size() ? digits_ - n.size() : 0, '0') + n;
}

std::string Folder::point_dir(size_t index) const { return (fs::path(dir_) / point_rel_dir(index)).string(); }

ojson Folder::manifest() const {
  ojson m;
  m["format"] = 1;
  m["spec"] = spec_.file.empty() ? std::string() : fs::absolute(spec_.file).lexically_normal().string();
  m["about"] = spec_.about;
  m["base"] = spec_.base.empty() ? std::string() : fs::absolute(spec_.base).lexically_normal().string();
  m["base_hash"] = base_hash_;
  m["keys"] = spec_.keys;
  m["seeds"] = spec_.seeds;
  m["stats"] = spec_.stats;
  ojson points = ojson::array();
  for (const Point& p : points_) {
    ojson e;
    e["index"] = p.index;
    e["dir"] = point_rel_dir(p.index);
    ojson values = ojson::object();
    for (size_t k = 0; k < spec_.keys.size(); ++k) values[spec_.keys[k]] = ojson::parse(p.values[k].dump());
    e["values"] = values;
    e["seed"] = p.seed;
    e["params"] = p.params;
    points.push_back(std::move(e));
  }
  m["points"] = std::move(points);
  return m;
}

void Folder::check_existing() const {
  const fs::path path = fs::path(dir_) / kManifestFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  ojson old;
  try {
    old = ojson::parse(read_text(path));
  } catch (const ojson::exception&) {
    old = nullptr;
  }
  const std::string diff = first_difference(old, manifest());
  if (!diff.empty())
    throw SweepError(dir_ + " holds another sweep: " + diff + "; pass --force to discard it, or -o another folder");
}

void Folder::prepare(bool discard) const {
  std::error_code ec;
  const fs::path dir(dir_);
  if (discard) {
    for (const char* f : {kManifestFile, kResultsFile, kSbatchFile}) fs::remove(dir / f, ec);
    for (const char* d : {kPointsDir, kSlurmLogDir}) fs::remove_all(dir / d, ec);
  } else {
    check_existing();
  }
  fs::create_directories(dir / kPointsDir, ec);
  if (ec) throw SweepError("cannot create " + (dir / kPointsDir).string() + ": " + ec.message());
  const std::string text = manifest().dump(1) + "\n";
  if (read_text(dir / kManifestFile) != text) write_atomically((dir / kManifestFile).string(), text);
}

Folder::Status Folder::status(size_t index) const {
  std::error_code ec;
  const fs::path d = point_dir(index);
  if (fs::exists(d / kDoneMarker, ec)) return Status::kDone;
  if (fs::exists(d / kFailedMarker, ec)) return Status::kFailed;
  return Status::kTodo;
}

const char* Folder::status_name(Status s) {
  return s == Status::kDone ? "done" : s == Status::kFailed ? "failed" : "todo";
}

void Folder::begin_point(size_t index) const {
  const fs::path d = point_dir(index);
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw SweepError("cannot create " + d.string() + ": " + ec.message());
  fs::remove(d / kDoneMarker, ec);
  fs::remove(d / kFailedMarker, ec);
}

void Folder::mark_done(size_t index, double host_seconds) const {
  const Point& p = points_.at(index);
  const json marker = {{"index", p.index}, {"seed", p.seed}, {"exit", 0}, {"host_seconds", host_seconds}};
  write_atomically((fs::path(point_dir(index)) / kDoneMarker).string(), marker.dump(1) + "\n");
}

void Folder::mark_failed(size_t index, int exit_code, int signal, const std::string& output_tail) const {
  const Point& p = points_.at(index);
  const json marker = {{"index", p.index}, {"seed", p.seed}, {"exit", exit_code}, {"signal", signal}, {"output_tail", output_tail}};
  write_atomically((fs::path(point_dir(index)) / kFailedMarker).string(), marker.dump(1) + "\n");
}

std::vector<size_t> Folder::merge() const {
  CsvMerger merger(spec_, points_);
  std::vector<size_t> missing;
  for (const Point& p : points_) {
    if (status(p.index) != Status::kDone) {
      missing.push_back(p.index);
      continue;
    }
    // A point keeps its chosen stats beside stats.json; older points, or a spec whose
    // stats changed since, are merged from stats.json itself.
    const fs::path kept = fs::path(point_dir(p.index)) / kChosenStatsFile;
    if (fs::exists(kept)) {
      try {
        if (merger.add_chosen(p.index, json::parse(read_text(kept)))) continue;
      } catch (const json::exception&) {   // unreadable: stats.json decides
      }
    }
    const fs::path f = fs::path(point_dir(p.index)) / "stats.json";
    try {
      merger.add(p.index, json::parse(read_text(f)));
    } catch (const json::exception& e) {
      throw SweepError(f.string() + ": not valid JSON (" + e.what() + "); rerun the point with --index " +
                       std::to_string(p.index) + " --force");
    }
  }
  write_atomically((fs::path(dir_) / kResultsFile).string(), merger.csv());
  return missing;
}

}  // namespace iommusim::platforms::sweep

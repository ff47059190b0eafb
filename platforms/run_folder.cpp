#include "platforms/run_folder.h"

#include <filesystem>

namespace iommusim::platforms {

const std::vector<std::string>& run_files() {
  static const std::vector<std::string> files = {"config.resolved.json", "stats.json", "invalidations.json",
                                                 "summary.txt"};
  return files;
}

std::vector<std::string> existing_run_files(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& f : run_files())
    if (std::filesystem::exists(std::filesystem::path(dir) / f, ec)) found.push_back(f);
  return found;
}

}  // namespace iommusim::platforms

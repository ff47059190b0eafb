// Run folders: every run writes its own folder, and a run never overwrites an earlier one
// silently (`iommusim run` refuses unless --force).
#pragma once
#include <string>
#include <vector>

namespace iommusim::platforms {

// The files a run writes into its folder.
const std::vector<std::string>& run_files();

// The run files dir already holds (empty when dir is missing, empty or holds other files).
std::vector<std::string> existing_run_files(const std::string& dir);

}  // namespace iommusim::platforms

// Progress lines for a terminal: how much is done, the rate, and the time left. Shared by a
// long `iommusim run` (DMAs) and `iommusim sweep` (points). Callers decide whether stderr
// is a terminal (they stay quiet when it is not).
#pragma once
#include <cstdint>
#include <string>

namespace iommusim::platforms {

// "45s", "5m 10s", "2h 03m".
std::string format_duration(double seconds);

// "37 / 1000 points (3.7%), 3.1 points/s, 5m 10s left": `done_before` of `done` were done
// before `elapsed_s` started (a resumed sweep), so they do not count toward the rate.
std::string progress_text(uint64_t done, uint64_t total, double elapsed_s, const std::string& unit,
                          uint64_t done_before = 0);

}  // namespace iommusim::platforms

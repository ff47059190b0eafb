#include "platforms/progress.h"

#include <cmath>
#include <cstdio>

namespace iommusim::platforms {

std::string format_duration(double seconds) {
  char buf[64];
  const long long s = std::llround(seconds < 0 ? 0 : seconds);
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm %02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", s / 3600, (s % 3600) / 60);
  return buf;
}

std::string progress_text(uint64_t done, uint64_t total, double elapsed_s, const std::string& unit,
                          uint64_t done_before) {
  char buf[160];
  const double pct = total ? 100.0 * double(done) / double(total) : 100.0;
  std::string text;
  std::snprintf(buf, sizeof buf, "%llu / %llu %s (%.1f%%)", (unsigned long long)done, (unsigned long long)total,
                unit.c_str(), pct);
  text = buf;
  const double rate = elapsed_s > 0 && done > done_before ? double(done - done_before) / elapsed_s : 0;
  if (rate > 0) {
    std::snprintf(buf, sizeof buf, ", %.*f %s/s, %s left", rate < 10 ? 2 : 0, rate, unit.c_str(),
                  format_duration(double(total - done) / rate).c_str());
    text += buf;
  }
  return text;
}

}  // namespace iommusim::platforms

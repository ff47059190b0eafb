#include "platforms/stat_names.h"

namespace iommusim::platforms {

namespace {
bool is_word(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}
}  // namespace

std::string lane_name(const std::string& vendor, const std::string& path) {
  return path.empty() || path == kNativePath ? vendor : vendor + "@" + path;
}

StatName split_stat_name(const std::string& name) {
  StatName s;
  const size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name.size()) return s;
  const std::string lane = name.substr(0, dot);
  s.stat = name.substr(dot + 1);
  const size_t at = lane.find('@');
  s.vendor = lane.substr(0, at);
  s.path = at == std::string::npos ? kNativePath : lane.substr(at + 1);
  s.valid = is_word(s.vendor) && is_word(s.path);
  return s;
}

}  // namespace iommusim::platforms

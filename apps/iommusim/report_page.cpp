// Helpers the run and sweep pages share: lanes from stat names, files, numbers, and the
// Vega-Lite skeleton and colours every plot starts from.
#include "apps/iommusim/report_page.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace iommusim::app::report {

using nlohmann::json;

Lane make_lane(const std::string& vendor, const std::string& path) {
  const bool native = path.empty() || path == "native";
  return {native ? vendor : vendor + "@" + path, vendor, native ? "native" : path};
}

Lane lane_of(const std::string& stat_name) {
  const std::string name = stat_name.substr(0, stat_name.find('.'));
  const size_t at = name.find('@');
  return make_lane(name.substr(0, at), at == std::string::npos ? "" : name.substr(at + 1));
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ReportError("cannot read " + path);
  try {
    return json::parse(in, nullptr, true, true);
  } catch (const json::exception& e) {
    throw ReportError(path + ": not valid JSON (" + e.what() + ")");
  }
}

std::string format_number(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream os;
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    os << static_cast<long long>(v);
  } else {
    os.precision(4);
    os << v;
  }
  return os.str();
}

json vega_lite(json rows, int width, int height) {
  return {{"$schema", "https://vega.github.io/schema/vega-lite/v6.json"},
          {"width", width},
          {"height", height},
          {"data", {{"values", std::move(rows)}}}};
}

LaneStyle::LaneStyle(const std::vector<Lane>& lanes) {
  for (auto& l : lanes) {
    if (std::find(vendors.begin(), vendors.end(), l.vendor) == vendors.end()) vendors.push_back(l.vendor);
    if (std::find(paths.begin(), paths.end(), l.path) == paths.end()) paths.push_back(l.path);
  }
}

void LaneStyle::apply(json& encoding) const {
  // Tableau 10, whose first colours stay apart for colour-blind readers.
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  json range = json::array();
  for (size_t i = 0; i < vendors.size(); ++i) range.push_back(palette[i % std::size(palette)]);
  encoding["color"] = {{"field", "vendor"}, {"type", "nominal"}, {"title", "vendor"},
                       {"scale", {{"domain", vendors}, {"range", range}}}};
  if (paths.size() > 1)
    encoding["strokeDash"] = {{"field", "path"}, {"type", "nominal"}, {"title", "invalidation path"},
                              {"scale", {{"domain", paths}}}};
}

}  // namespace iommusim::app::report

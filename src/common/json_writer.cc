// JSON string escaping and number formatting (RFC 8259 section 7).
#include "cepheus/common/json_writer.h"

#include <cmath>
#include <iterator>

#include <fmt/format.h>

namespace cepheus {

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(*out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string FormatNumber(double v) {
  std::string out;
  AppendJsonNumber(&out, v);
  return out;
}

void AppendJsonNumber(std::string* out, double v) {
  if (!std::isfinite(v)) {
    out->append("null");
  } else if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    fmt::format_to(std::back_inserter(*out), "{}", static_cast<long long>(v));  // 1500, not 1500.0 nor 1.5e+03
  } else {
    // The shortest text that reads back to exactly v (fmt's Dragonbox):
    // 66.66666666666667, and 0.1 + 0.2 as 0.30000000000000004 (round() or
    // a format such as {x:.2f} when a message wants fewer digits).
    fmt::format_to(std::back_inserter(*out), "{}", v);
  }
}



}  // namespace cepheus

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
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e15) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  if (!std::isfinite(v)) return "null";
  // 15 significant digits: sums like 0.1 + 0.2 print as 0.3, not
  // 0.30000000000000004 (a double holds 15 decimal digits exactly).
  return fmt::format("{:.15g}", v);
}

void AppendJsonNumber(std::string* out, double v) { out->append(FormatNumber(v)); }

void AppendExactJsonNumber(std::string* out, double v) {
  if (!std::isfinite(v)) {
    out->append("null");
  } else if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    fmt::format_to(std::back_inserter(*out), "{}", static_cast<long long>(v));
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", v);  // shortest text that reads back to v
  }
}

}  // namespace cepheus

// Number formats of message holes: a small parser for `[,][.N][f|e|%]` and
// fmt for the digits. Grouping inserts a comma every three digits of the
// integer part, after fmt has rounded, so 999.995 with `,.2f` is "1,000.00".
#include "cepheus/common/number_format.h"

#include <cmath>

#include <fmt/format.h>

#include "cepheus/common/json_writer.h"

namespace cepheus {

std::optional<NumberFormat> ParseNumberFormat(std::string_view spec, std::string* error) {
  NumberFormat f;
  std::string_view s = spec;
  auto fail = [&](std::string why) -> std::optional<NumberFormat> {
    *error = fmt::format("bad number format '{}': {}; write [,][.N][f|e|%], for example .2f, , or ,.0f", spec, why);
    return std::nullopt;
  };
  if (s.empty()) return fail("it is empty");
  if (s.front() == ',') f.grouping = true, s.remove_prefix(1);
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    int digits = 0, n = 0;
    while (!s.empty() && s.front() >= '0' && s.front() <= '9' && n < 3) digits = digits * 10 + (s.front() - '0'), s.remove_prefix(1), ++n;
    if (n == 0) return fail("'.' needs a number of decimals");
    if (digits > kMaxFormatPrecision) return fail(fmt::format("at most {} decimals", kMaxFormatPrecision));
    f.precision = digits;
  }
  if (!s.empty() && (s.front() == 'f' || s.front() == 'e' || s.front() == '%')) f.type = s.front(), s.remove_prefix(1);
  if (!s.empty()) return fail(fmt::format("'{}' is not understood", s));
  if (f.precision >= 0 && f.type == 0) return fail(fmt::format("say how: .{}f for decimals, .{}e for an exponent", f.precision, f.precision));
  if (f.type == 'e' && f.grouping) return fail("',' does not go with 'e'");
  return f;
}

namespace {

// Commas every three digits of the integer part of `text` (a sign, digits,
// then maybe '.' and more).
std::string Grouped(const std::string& text) {
  size_t begin = text[0] == '-' ? 1 : 0;
  size_t end = text.find_first_not_of("0123456789", begin);
  if (end == std::string::npos) end = text.size();
  std::string out = text.substr(0, begin);
  for (size_t i = begin; i < end; ++i) {
    if (i > begin && (end - i) % 3 == 0) out += ',';
    out += text[i];
  }
  return out + text.substr(end);
}

}  // namespace

std::string FormatNumber(double v, const NumberFormat& f) {
  if (!std::isfinite(v)) return "null";
  int precision = f.precision >= 0 ? f.precision : 6;
  std::string text;
  switch (f.type) {
    case 'f': text = fmt::format("{:.{}f}", v, precision); break;
    case 'e': text = fmt::format("{:.{}e}", v, precision); break;
    case '%': text = fmt::format("{:.{}f}", v * 100, precision); break;
    default: text = FormatNumber(v); break;
  }
  if (text.starts_with("-0") && text.find_first_not_of("-0.") == std::string::npos) {
    text.erase(0, 1);  // no "-0.00" for a small negative rounded away
  }
  if (f.grouping && text.find('e') == std::string::npos) text = Grouped(text);
  return f.type == '%' ? text + "%" : text;
}

}  // namespace cepheus

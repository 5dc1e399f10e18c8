// Durations and RFC 3339 timestamps.
//
// RFC 3339 is parsed by hand with a fixed layout check (it is a fixed-width
// format, not a grammar) and converted with Howard Hinnant's days_from_civil
// arithmetic, so no time zone database or locale is involved.
#include "cepheus/common/time.h"

#include <cctype>

#include <fmt/format.h>

namespace cepheus {
namespace {

constexpr Millis kSecond = 1000, kMinute = 60 * kSecond, kHour = 60 * kMinute;
static_assert(kDay == 24 * kHour);

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

bool LooksLikeDuration(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string_view unit = text.substr(i);
  return i > 0 && (unit == "ms" || unit == "s" || unit == "m" || unit == "h" || unit == "d");
}

std::optional<Millis> ParseDuration(std::string_view text) {
  size_t i = 0;
  Millis n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    n = n * 10 + (text[i] - '0');
    if (n > kMaxDuration) return std::nullopt;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  Millis mult;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = kSecond;
  else if (unit == "m") mult = kMinute;
  else if (unit == "h") mult = kHour;
  else if (unit == "d") mult = kDay;
  else return std::nullopt;
  if (n > kMaxDuration / mult) return std::nullopt;
  return n * mult;
}

std::string FormatDuration(Millis ms) {
  if (ms != 0) {
    if (ms % kDay == 0) return fmt::format("{}d", ms / kDay);
    if (ms % kHour == 0) return fmt::format("{}h", ms / kHour);
    if (ms % kMinute == 0) return fmt::format("{}m", ms / kMinute);
    if (ms % kSecond == 0) return fmt::format("{}s", ms / kSecond);
  }
  return fmt::format("{}ms", ms);
}

std::optional<Millis> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &se)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t pos = 19;
  Millis frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) frac = frac * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int k = digits; k < 3; ++k) frac *= 10;
  }
  Millis offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * kHour + om * kMinute) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  Millis days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return days * kDay + h * kHour + mi * kMinute + se * kSecond + frac - offset;
}

}  // namespace cepheus

namespace cepheus {

std::string FormatRfc3339(Millis ms) {
  // Civil from days (Howard Hinnant's algorithm), for any year.
  Millis day_ms = 86400000;
  int64_t days = ms >= 0 ? ms / day_ms : -((-ms + day_ms - 1) / day_ms);
  Millis in_day = ms - days * day_ms;
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, m, d, in_day / 3600000, in_day / 60000 % 60,
                     in_day / 1000 % 60, in_day % 1000);
}

}  // namespace cepheus

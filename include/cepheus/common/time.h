// Event time: durations of the rule language and RFC 3339 timestamps.
//
// All event times are int64 epoch milliseconds. kMaxTime stands for the
// watermark at the end of a finite input ("+infinity").
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace cepheus {

using Millis = int64_t;
inline constexpr Millis kMaxTime = std::numeric_limits<int64_t>::max() / 4;
inline constexpr Millis kMinTime = std::numeric_limits<int64_t>::min() / 4;
// The event times accepted from input (the decoder) and from stored state:
// half the range of Millis either way, so that adding any window (or a
// duration up to 100 years) to one cannot overflow.
inline constexpr Millis kMaxEventTime = kMaxTime / 2;
inline constexpr Millis kMinEventTime = kMinTime / 2;
inline constexpr bool InEventTimeRange(Millis t) { return t >= kMinEventTime && t <= kMaxEventTime; }

inline constexpr Millis kDay = 24LL * 60 * 60 * 1000;
// The longest duration a rule or the configuration may give: 100 years.
inline constexpr Millis kMaxDuration = 36500 * kDay;

// Parses "<digits><unit>" with unit ms, s, m, h or d. Returns nullopt when the
// text is not exactly that or the value is past kMaxDuration.
std::optional<Millis> ParseDuration(std::string_view text);
// True when `text` has that shape, whatever its value (so a caller can say
// "too long" rather than "not a duration").
bool LooksLikeDuration(std::string_view text);

// The shortest exact rendering: 120000 -> "2m", 1500 -> "1500ms".
std::string FormatDuration(Millis ms);

// Parses an RFC 3339 date-time ("2024-01-31T12:00:00.250Z", offsets allowed)
// to epoch milliseconds. Fractions beyond milliseconds are truncated.
std::optional<Millis> ParseRfc3339(std::string_view text);
// RFC 3339 in UTC with milliseconds: 2023-11-14T22:13:20.000Z.
std::string FormatRfc3339(Millis ms);

}  // namespace cepheus

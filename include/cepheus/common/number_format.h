// Numbers in alert messages: the shortest text that reads back to the same
// double, or a format spec written in the message (`{avg(o.amount):.2f}`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cepheus {

// `[,][.N][f|e|%]`, a subset of Python's format mini-language: `,` groups
// the integer part's thousands, `.N` is the number of decimals (0 to 15),
// `f` fixed, `e` exponent, `%` a percentage (x 100, then `%`). `.N` needs a
// type; a type without `.N` has 6 decimals, as in Python.
struct NumberFormat {
  bool grouping = false;
  int precision = -1;  // -1: not given
  char type = 0;       // 'f', 'e', '%' or 0 (the shortest text)
};
inline constexpr int kMaxFormatPrecision = 15;

// The format of `spec`, or nullopt with the reason in `error`.
std::optional<NumberFormat> ParseNumberFormat(std::string_view spec, std::string* error);
// `v` as the format says ("null" when not finite).
std::string FormatNumber(double v, const NumberFormat& f);

}  // namespace cepheus

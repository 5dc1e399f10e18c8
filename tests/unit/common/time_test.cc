#include <doctest/doctest.h>

#include "cepheus/common/json_writer.h"
#include "cepheus/common/time.h"

using namespace cepheus;

TEST_CASE("durations parse in every unit and refuse everything else") {
  CHECK(ParseDuration("90s") == 90000);
  CHECK(ParseDuration("2m") == 120000);
  CHECK(ParseDuration("1500ms") == 1500);
  CHECK(ParseDuration("3h") == 3 * 3600000LL);
  CHECK(ParseDuration("1d") == 86400000LL);
  CHECK_FALSE(ParseDuration("2x").has_value());
  CHECK_FALSE(ParseDuration("m").has_value());
  CHECK_FALSE(ParseDuration("1.5m").has_value());
  CHECK_FALSE(ParseDuration("-1m").has_value());
  CHECK_FALSE(ParseDuration("99999999999d").has_value());
}

TEST_CASE("durations format in their largest exact unit") {
  CHECK(FormatDuration(120000) == "2m");
  CHECK(FormatDuration(1500) == "1500ms");
  CHECK(FormatDuration(86400000) == "1d");
  CHECK(FormatDuration(0) == "0ms");
}

TEST_CASE("RFC 3339 times convert to epoch milliseconds") {
  CHECK(ParseRfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339("2023-11-14T22:13:20Z") == 1700000000000);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.250Z") == 1700000000250);
  CHECK(ParseRfc3339("2023-11-14T23:13:20+01:00") == 1700000000000);
  CHECK(ParseRfc3339("2024-02-29T00:00:00.123456Z") == 1709164800123);
  CHECK_FALSE(ParseRfc3339("2023-11-14 22:13").has_value());
  CHECK_FALSE(ParseRfc3339("2023-13-14T22:13:20Z").has_value());
  CHECK_FALSE(ParseRfc3339("2023-11-14T22:13:20").has_value());
  CHECK_FALSE(ParseRfc3339("2023-11-14T22:13:20Zjunk").has_value());
}

TEST_CASE("JSON strings escape quotes, backslashes and control characters") {
  std::string out;
  AppendJsonString(&out, "a\"b\\c\nd\x01");
  CHECK(out == "\"a\\\"b\\\\c\\nd\\u0001\"");
  CHECK(FormatNumber(3) == "3");
  CHECK(FormatNumber(1500.25) == "1500.25");
  CHECK(FormatNumber(-0.5) == "-0.5");
}

TEST_CASE("numbers print with at most 15 significant digits") {
  CHECK(FormatNumber(0.1 + 0.2) == "0.3");
  CHECK(FormatNumber(4514.950000000001) == "4514.95");
  CHECK(FormatNumber(1e20) == "1e+20");
}

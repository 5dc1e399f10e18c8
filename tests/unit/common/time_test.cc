#include <cstdlib>

#include <doctest/doctest.h>

#include "cepheus/common/json_writer.h"
#include "cepheus/common/number_format.h"
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

TEST_CASE("numbers print in the shortest text that reads back to the same double") {
  CHECK(FormatNumber(200.0 / 3) == "66.66666666666667");
  CHECK(FormatNumber(1500.0) == "1500");
  CHECK(FormatNumber(0.1 + 0.2) == "0.30000000000000004");
  CHECK(FormatNumber(4514.95) == "4514.95");
  CHECK(FormatNumber(-0.5) == "-0.5");
  CHECK(FormatNumber(1e20) == "1e+20");
  for (double v : {200.0 / 3, 0.1 + 0.2, 1e-7, 123456.789, 2.0 / 7e10}) {
    CAPTURE(v);
    CHECK(std::strtod(FormatNumber(v).c_str(), nullptr) == v);
  }
}

TEST_CASE("a number format in a message groups thousands, fixes decimals or prints a percentage") {
  auto as = [](double v, const char* spec) {
    std::string error;
    auto f = cepheus::ParseNumberFormat(spec, &error);
    REQUIRE_MESSAGE(f.has_value(), error);
    return cepheus::FormatNumber(v, *f);
  };
  CHECK(as(200.0 / 3, ".2f") == "66.67");
  CHECK(as(1234567.891, ",") == "1,234,567.891");
  CHECK(as(1234567.891, ",.0f") == "1,234,568");
  CHECK(as(-1234.5, ",.2f") == "-1,234.50");
  CHECK(as(999.995, ",.1f") == "1,000.0");
  CHECK(as(0.1234, ".1%") == "12.3%");
  CHECK(as(1500, "e") == "1.500000e+03");
  CHECK(as(2.5, "f") == "2.500000");
  CHECK(as(-0.001, ".2f") == "0.00");  // never "-0.00"
  CHECK(as(100, ",") == "100");
  std::string error;
  CHECK_FALSE(cepheus::ParseNumberFormat(".2", &error));
  CHECK(error.find(".2f for decimals") != std::string::npos);
  CHECK_FALSE(cepheus::ParseNumberFormat("", &error));
  CHECK_FALSE(cepheus::ParseNumberFormat(".16f", &error));
  CHECK(error.find("at most 15 decimals") != std::string::npos);
  CHECK_FALSE(cepheus::ParseNumberFormat("x", &error));
  CHECK_FALSE(cepheus::ParseNumberFormat(",e", &error));
}

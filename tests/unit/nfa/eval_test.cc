// Expressions as compiled programs: operators, null and mixed-type rules,
// functions and aggregates, evaluated through one-step rules whose filter is
// the expression under test.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "test_util.h"

using cepheus::testing::Run;

namespace {

// True when `expr` holds for the event with `fields` (a JSON fragment).
bool Holds(const std::string& expr, const std::string& fields) {
  auto got = Run(fmt::format("rule r key user_id match e: x[{}] within 1m", expr),
                 {fmt::format(R"({{"id":"e","type":"x","ts":1,"user_id":"u"{}{}}})", fields.empty() ? "" : ",",
                              fields)});
  return !got.empty();
}

}  // namespace

TEST_CASE("expressions evaluate as section 4.3 says") {
  struct Row {
    const char* expr;
    const char* fields;
    bool want;
  } rows[] = {
      {"a + b * 2 == 7", R"("a":1,"b":3)", true},
      {"(a + b) * 2 == 8", R"("a":1,"b":3)", true},
      {"a / 0 == null", R"("a":1)", true},
      {"-a < 0", R"("a":1)", true},
      {"a - -1 == 2", R"("a":1)", true},
      {"missing == null", "", true},
      {"missing != null", "", false},
      {"missing > 1 or missing < 1", "", false},
      {"missing != 5", "", false},
      {"missing == missing2", "", false},
      {"null != missing", "", false},
      {"5 != null", "", true},
      {"null == null", "", true},
      {"not (missing != 5)", "", true},
      {"s == 5 or s != 5", R"("s":"5")", false},
      {"s < \"b\" and s >= \"a\"", R"("s":"a")", true},
      {"not (a > 1)", R"("a":1)", true},
      {"not missing", "", true},
      {"a and true", R"("a":1)", false},
      {"c in [\"FR\", \"DE\"] and c not in [\"US\"]", R"("c":"DE")", true},
      {"missing in [1] or missing not in [1]", "", false},
      {"t in tags and len(tags) == 2", R"("t":"b","tags":["a","b"])", true},
      {"abs(a) == 3 and len(s) == 3", R"("a":-3,"s":"abc")", true},
      {"lower(s) == \"abc\" and upper(s) == \"ABC\"", R"("s":"aBc")", true},
      {"n.m.o == true", R"("n":{"m":{"o":true}})", true},
      {"big == 12345678901", R"("big":12345678901)", true},
      {"d == 0.5", R"("d":0.5)", true},
      // Strings of up to 8 bytes are held in the Value: equality and byte
      // order must not depend on where a string is held.
      {"s == \"abcdefgh\" and s != \"abcdefghi\"", R"("s":"abcdefgh")", true},
      {"s == \"abcdefghi\" and s != \"abcdefgh\"", R"("s":"abcdefghi")", true},
      {"s < \"abcdefghi\" and s > \"abcdefg\" and s > \"\"", R"("s":"abcdefgh")", true},
      {"s > \"abcdefgh\" and s < \"abcdefgi\" and s < \"b\"", R"("s":"abcdefghi")", true},
      {"s > \"a\" and s < \"ab\" and s != \"a\"", R"("s":"a\u0000")", true},
      {"s > \"z\" and s > \"~\" and s < \"z\"", R"("s":"\u00e9")", false},
      {"s > \"z\" and s > \"~\"", R"("s":"\u00e9")", true},
      {"s > \"~\" or s < \"~\"", R"("s":"~")", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expr);
    CAPTURE(row.fields);
    CHECK(Holds(row.expr, row.fields) == row.want);
  }
}

TEST_CASE("aggregates over no values are zero or null") {
  // The filter of a counted step sees its own list before the current event:
  // empty for the first event.
  CHECK(Run("rule r key user_id match o: x[count(o) == 0 and sum(o.a) == 0 and distinct(o.a) == 0 and "
            "avg(o.a) == null and min(o.a) == null and max(o.a) == null and first(o.a) == null and "
            "last(o.a) == null]{1} within 1m",
            {R"({"id":"e","type":"x","ts":1,"user_id":"u","a":1})"})
            .size() == 1);
}

TEST_CASE("messages print numbers, strings and lists readably") {
  cepheus::engine::CollectingSink sink;
  Run(R"(rule r key user_id match o: x{2} within 1m emit "{key} {sum(o.a)} {avg(o.a)} {o.c} {max(o.c)} {count(o)} {o.missing}")",
      {R"({"id":"e1","type":"x","ts":1,"user_id":"u","a":0.1,"c":"FR"})",
       R"({"id":"e2","type":"x","ts":2,"user_id":"u","a":0.2,"c":"DE"})"},
      0, &sink);
  REQUIRE(sink.alerts.size() == 1);
  // 0.1 + 0.2 prints as the double it is: the shortest text that reads back
  // to it (round() or {sum(o.a):.1f} when a message wants fewer digits).
  CHECK(sink.alerts[0].json.find(R"("message":"u 0.30000000000000004 0.15000000000000002 FR, DE FR 2 null, null")") !=
        std::string::npos);
}

TEST_CASE("a message's number formats apply to numbers and to each number of a list") {
  cepheus::engine::CollectingSink sink;
  Run(R"(rule r key user_id match o: x{3} within 1m emit "{avg(o.a)} {avg(o.a):.2f} {sum(o.a) * 1000:,} {o.a:.1f} {o.c:.1f} {max(o.a) / sum(o.a):.0%}")",
      {R"({"id":"e1","type":"x","ts":1,"user_id":"u","a":100,"c":"FR"})",
       R"({"id":"e2","type":"x","ts":2,"user_id":"u","a":50,"c":"DE"})",
       R"({"id":"e3","type":"x","ts":3,"user_id":"u","a":50,"c":"DE"})"},
      0, &sink);
  REQUIRE(sink.alerts.size() == 1);
  CHECK(sink.alerts[0].json.find(R"("message":"66.66666666666667 66.67 200,000 100.0, 50.0, 50.0 FR, DE, DE 50%")") !=
        std::string::npos);
}

namespace {

// The text `expr` prints as in a message, for the event with `fields`
// (time 2024-03-01T11:00:00Z, a Friday).
std::string Text(const std::string& expr, const std::string& fields) {
  cepheus::engine::CollectingSink sink;
  Run(fmt::format("rule r key user_id match e: x within 1m emit \"{{{}}}\"", expr),
      {fmt::format(R"({{"id":"e","type":"x","ts":"2024-03-01T11:00:00Z","user_id":"u"{}{}}})",
                   fields.empty() ? "" : ",", fields)},
      0, &sink);
  if (sink.alerts.size() != 1) return "(no alert)";
  const std::string& json = sink.alerts[0].json;
  size_t at = json.find(R"("message":")") + 11;
  return json.substr(at, json.find('"', at) - at);
}

}  // namespace

TEST_CASE("the arithmetic functions: %, round, floor, ceil, min and max of two") {
  struct Row {
    const char* expr;
    const char* fields;
    const char* want;
  } rows[] = {
      {"e.a % 7", R"("a":23)", "2"},
      {"e.a % 7", R"("a":-23)", "-2"},  // the sign of the dividend, as in C, Java and SQL
      {"e.a % 0", R"("a":23)", "null"},
      {"e.a % 2.5", R"("a":7)", "2"},
      {"round(e.a)", R"("a":2.5)", "3"},  // halves away from zero
      {"round(e.a)", R"("a":-2.5)", "-3"},
      {"round(e.a, 2)", R"("a":66.666666)", "66.67"},
      {"round(e.a, 2)", R"("a":"x")", "null"},
      {"floor(e.a)", R"("a":-1.5)", "-2"},
      {"ceil(e.a)", R"("a":-1.5)", "-1"},
      {"min(e.a, e.b)", R"("a":3,"b":-4)", "-4"},
      {"max(e.a, e.b)", R"("a":3,"b":-4)", "3"},
      {"max(e.s, e.t)", R"("s":"FR","t":"DE")", "FR"},
      {"min(e.a, e.s)", R"("a":3,"s":"FR")", "null"},
      {"min(e.a, e.missing)", R"("a":3)", "null"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expr);
    CAPTURE(row.fields);
    CHECK(Text(row.expr, row.fields) == row.want);
  }
}

TEST_CASE("if() and coalesce() evaluate only what they return") {
  CHECK(Text("if(e.a > 1, 'big', 'small')", R"("a":3)") == "big");
  CHECK(Text("if(e.missing > 1, 'big', 'small')", "") == "small");  // null is not true
  CHECK(Text("coalesce(e.missing, e.other, 'none')", "") == "none");
  CHECK(Text("coalesce(e.missing, e.a, 'none')", R"("a":0)") == "0");
  CHECK(Text("coalesce(e.missing, e.missing2)", "") == "null");
}

TEST_CASE("the string functions count characters, not bytes, and give null or false for non-strings") {
  struct Row {
    const char* expr;
    const char* fields;
    const char* want;
  } rows[] = {
      {"starts_with(e.s, 'bo')", R"("s":"bob@mail.ru")", "true"},
      {"ends_with(e.s, '.ru')", R"("s":"bob@mail.ru")", "true"},
      {"contains(e.s, '@mail')", R"("s":"bob@mail.ru")", "true"},
      {"contains(e.s, 'x')", R"("s":"bob@mail.ru")", "false"},
      {"starts_with(e.missing, '')", "", "false"},
      {"contains(e.n, '1')", R"("n":123)", "false"},
      {"matches(e.s, '^[a-z]+@(mail|inbox)\\\\.ru$')", R"("s":"bob@mail.ru")", "true"},
      {"matches(e.s, 'mail')", R"("s":"bob@mail.ru")", "true"},  // anywhere in the text
      {"matches(e.s, '^mail')", R"("s":"bob@mail.ru")", "false"},
      {"matches(e.n, '1')", R"("n":1)", "false"},
      {"substr(e.s, 1, 3)", R"("s":"bob@mail.ru")", "bob"},
      {"substr(e.s, 5)", R"("s":"bob@mail.ru")", "mail.ru"},
      {"substr(e.s, -2)", R"("s":"bob@mail.ru")", "ru"},
      {"substr(e.s, -20, 2)", R"("s":"bob@mail.ru")", "bo"},
      {"substr(e.s, 40)", R"("s":"bob@mail.ru")", ""},
      {"substr(e.s, 2, 2)", R"("s":"zoë@x")", "oë"},
      {"substr(e.s, 3, 1)", R"("s":"zoë@x")", "ë"},
      {"substr(e.s, 0)", R"("s":"abc")", "null"},
      {"substr(e.s, 1.5)", R"("s":"abc")", "null"},
      {"substr(e.s, 1, -1)", R"("s":"abc")", "null"},
      {"split_part(e.s, '@', 1)", R"("s":"bob@mail.ru")", "bob"},
      {"split_part(e.s, '@', -1)", R"("s":"bob@mail.ru")", "mail.ru"},
      {"split_part(e.s, '.', 2)", R"("s":"a.b.c")", "b"},
      {"split_part(e.s, '.', -2)", R"("s":"a.b.c")", "b"},
      {"split_part(e.s, '.', 4)", R"("s":"a.b.c")", ""},
      {"split_part(e.s, '.', -4)", R"("s":"a.b.c")", ""},
      {"split_part(e.s, '::', 2)", R"("s":"a::b::c")", "b"},
      {"split_part(e.s, '', 1)", R"("s":"abc")", "null"},
      {"split_part(e.s, '.', 0)", R"("s":"abc")", "null"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expr);
    CAPTURE(row.fields);
    CHECK(Text(row.expr, row.fields) == row.want);
  }
}

TEST_CASE("time: durations are milliseconds, the time field a number, hour and weekday in a zone") {
  // 2024-03-01T11:00:00Z is a Friday; Paris is at UTC+1 in March, Auckland
  // at UTC+13 (already Saturday 00:00), New York at UTC-5.
  CHECK(Text("30s + 1m + 1h + 1d + 250ms", "") == "90090250");
  CHECK(Text("e.ts", "") == "1709290800000");
  CHECK(Text("e.ts - e.t0 < 2h", R"("t0":1709287200000)") == "true");
  CHECK(Text("hour(e.ts)", "") == "11");
  CHECK(Text("hour(e.ts, 'Europe/Paris')", "") == "12");
  CHECK(Text("hour(e.ts, 'America/New_York')", "") == "6");
  CHECK(Text("weekday(e.ts)", "") == "5");
  CHECK(Text("weekday(e.ts, 'Pacific/Auckland')", "") == "6");
  CHECK(Text("hour(e.created, 'Europe/Paris')", R"("created":"2024-07-01T23:30:00Z")") == "1");  // summer time
  CHECK(Text("hour(e.created)", R"("created":"yesterday")") == "null");
  CHECK(Text("weekday(e.missing)", "") == "null");
  // A zone read from the data (a profile's, say) is looked up when the rule runs.
  CHECK(Text("hour(e.ts, e.tz)", R"("tz":"Asia/Tokyo")") == "20");
  CHECK(Text("hour(e.ts, e.tz)", R"("tz":"Mars/Olympus_Mons")") == "null");
  CHECK(Text("hour(e.ts, e.tz)", "") == "null");
}

TEST_CASE("geo_km is the great-circle distance, null without four numbers") {
  // Paris to New York: 5837 km; one degree of latitude: 111.19 km.
  CHECK(Text("round(geo_km(48.8566, 2.3522, 40.7128, -74.0060))", "") == "5837");
  CHECK(Text("round(geo_km(0, 0, 1, 0), 2)", "") == "111.19");
  CHECK(Text("geo_km(e.a, e.a, e.a, e.a)", R"("a":10)") == "0");
  CHECK(Text("geo_km(1, 2, 3, e.missing)", "") == "null");
  // Impossible travel as the issue writes it: 5837 km in one hour.
  CHECK(Holds("geo_km(48.8566, 2.3522, lat, lon) / ((ts - t0) / 1h) > 900",
              R"("lat":40.7128,"lon":-74.006,"t0":-3599999)"));
}

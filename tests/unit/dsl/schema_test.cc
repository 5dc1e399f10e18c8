// Event schemas: `event` declarations make a misspelt field an error while
// undeclared types keep v1's behaviour; a declaration in one file applies to
// rules of every file.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "test_util.h"

using namespace cepheus;

namespace {

using Parsed = testing::ParsedSet;
Parsed Parse(std::vector<std::pair<std::string, std::string>> files) { return testing::ParseFiles(std::move(files)); }

const char* kOrder = "event order { user_id: string, amount: number, country: string, ts: time, card: { bin: string } }\n";

}  // namespace

TEST_CASE("an event declaration lists its fields with their types, nested objects included") {
  auto p = Parse({{"events.rules", kOrder}});
  REQUIRE_MESSAGE(p.ok, p.diagnostics);
  REQUIRE(p.set.events.size() == 1);
  const dsl::EventSchema& e = p.set.events[0];
  CHECK(e.name == "order");
  REQUIRE(e.fields.size() == 5);
  CHECK(e.fields[1].name == "amount");
  CHECK(e.fields[1].type == dsl::FieldType::kNumber);
  CHECK(e.fields[3].type == dsl::FieldType::kTime);
  CHECK(e.fields[4].type == dsl::FieldType::kObject);
  REQUIRE(e.fields[4].fields.size() == 1);
  CHECK(e.fields[4].fields[0].name == "bin");
}

TEST_CASE("a declaration in one file checks the rules of another, whichever file comes first") {
  const char* rule = "rule r key user_id match o: order[contry == \"FR\"] within 1m\n";
  for (bool schema_first : {true, false}) {
    CAPTURE(schema_first);
    auto p = schema_first ? Parse({{"events.rules", kOrder}, {"r.rules", rule}})
                          : Parse({{"r.rules", rule}, {"events.rules", kOrder}});
    CHECK_FALSE(p.ok);
    CHECK(p.diagnostics.find("r.rules:1:35: error: event type 'order' has no field 'contry': did you mean "
                             "'country'?") != std::string::npos);
  }
}

TEST_CASE("without a declaration of its types a rule reads any field, as in v1") {
  auto p = Parse({{"events.rules", kOrder},
                  {"r.rules", "rule r key user_id match p: payment[contry == \"FR\"] -> o: any[whatever > 1] within 1m\n"}});
  CHECK_MESSAGE(p.ok, p.diagnostics);
}

TEST_CASE("the role fields type, ts and id need no declaration, and ts reads as a number") {
  auto p = Parse({{"events.rules", "event order { amount: number }\n"},
                  {"r.rules", "rule r key user_id match a: order[type == \"order\" and id != null] -> "
                              "b: order[ts - a.ts < 30s] within 1m\n"}});
  // user_id, the key, is not declared by order: that is an error too.
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("has no field 'user_id'") != std::string::npos);
  CHECK(p.diagnostics.find("'type'") == std::string::npos);
  CHECK(p.diagnostics.find("'ts'") == std::string::npos);
  CHECK(p.diagnostics.find("'id'") == std::string::npos);
}

TEST_CASE("a step of several types needs the field in each declared one") {
  auto p = Parse({{"events.rules", std::string(kOrder) + "event refund { user_id: string, amount: number }\n"},
                  {"r.rules", "rule r key user_id match o: (order | refund)[country == \"FR\"] within 1m\n"}});
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("event type 'refund' has no field 'country'") != std::string::npos);
  auto q = Parse({{"events.rules", std::string(kOrder) + "event refund { user_id: string, amount: number }\n"},
                  {"r.rules", "rule r key user_id match o: (order | refund)[amount > 5] within 1m\n"}});
  CHECK_MESSAGE(q.ok, q.diagnostics);
}

TEST_CASE("comparing a declared field with a value of another type is an error; undeclared, a warning") {
  auto p = Parse({{"events.rules", kOrder}, {"r.rules", "rule r key user_id match o: order[amount == \"5\"] within 1m\n"}});
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("error: '==' compares a number with a string, which is always false") != std::string::npos);
  auto q = Parse({{"r.rules", "rule r key user_id match o: order[len(country) == \"5\"] within 1m\n"}});
  CHECK(q.ok);
  CHECK(q.diagnostics.find("warning: comparing a string with a number is always false") != std::string::npos);
}

TEST_CASE("an event declaration nests objects 64 levels deep, and one more is refused where it goes past") {
  auto nested = [](int levels) {
    std::string s = "event deep { ";
    for (int i = 1; i < levels; ++i) s += "f" + std::to_string(i) + ": { ";
    s += "x: number";
    for (int i = 1; i < levels; ++i) s += " }";
    return s + " }\n";
  };
  auto ok = Parse({{"deep.rules", nested(64)}});
  CHECK_MESSAGE(ok.ok, ok.diagnostics);
  std::string text = nested(65);
  size_t at = 0;  // the 65th '{', where the error points
  for (int i = 0; i < 65; ++i) at = text.find('{', i == 0 ? 0 : at + 1);
  auto deep = Parse({{"deep.rules", text}});
  CHECK_FALSE(deep.ok);
  CHECK(deep.diagnostics.find(fmt::format("deep.rules:1:{}: error: expressions nest deeper than 64 levels", at + 1)) !=
        std::string::npos);
}

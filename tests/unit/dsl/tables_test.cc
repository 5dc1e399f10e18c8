// Tables and named lists in the language (section 6.1): declarations,
// lookups, `in TABLE`, and the checker's errors, each with its position.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "test_util.h"
#include "cepheus/nfa/program.h"

using namespace cepheus;

namespace {

using Parsed = testing::ParsedSet;
Parsed Parse(std::vector<std::pair<std::string, std::string>> files) { return testing::ParseFiles(std::move(files)); }

Parsed Parse(const std::string& text) { return Parse({{"t.rules", text}}); }

const std::string kTable = "table profiles\n  key user_id\n  time updated_at\n  history 30d\n";

}  // namespace

TEST_CASE("a table declaration gives its key, time and history, and history defaults to 7 days") {
  auto p = Parse(kTable + "table blocked key card\n");
  REQUIRE(p.ok);
  REQUIRE(p.set.tables.size() == 2);
  CHECK(p.set.tables[0].name == "profiles");
  CHECK(p.set.tables[0].key == std::vector<std::string>{"user_id"});
  CHECK(p.set.tables[0].time == std::vector<std::string>{"updated_at"});
  CHECK(p.set.tables[0].history == 30LL * 86400000);
  CHECK(p.set.tables[1].time.empty());
  CHECK(p.set.tables[1].history == dsl::kDefaultHistory);
}

TEST_CASE("lookups parse in filters, where and emit, and a rule may read a table declared in another file") {
  auto p = Parse({{"a.rules",
                   "rule r\n  key user_id\n  match o: order[country != profiles[user_id].country]\n"
                   "  where profiles[o.user_id].address.zip != null\n  within 1m\n"
                   "  emit \"home {profiles[o.user_id].country}\"\n"},
                  {"b.rules", kTable}});
  INFO(p.diagnostics);
  REQUIRE(p.ok);
  CHECK(dsl::DumpExpr(*p.set.rules[0].pattern.steps[0].filter) == "(country != profiles[user_id].country)");
  CHECK(dsl::DumpExpr(*p.set.rules[0].where) == "(profiles[o.user_id].address.zip != null)");
}

TEST_CASE("a named list is used with in, and a table name with in tests for a live record") {
  auto p = Parse(kTable + "list risky_bins = [\"411111\", \"550000\", 4]\n"
                 "rule r key user_id match p: payment[bin in risky_bins and user_id in profiles] within 1m\n");
  INFO(p.diagnostics);
  REQUIRE(p.ok);
  CHECK(dsl::DumpExpr(*p.set.rules[0].pattern.steps[0].filter) == "((bin in risky_bins) and (user_id in profiles))");
  CHECK(dsl::DumpRuleSet(p.set).find("list risky_bins = [\"411111\", \"550000\", 4]") != std::string::npos);
}

TEST_CASE("an unknown table is refused at its name, with the tables declared") {
  auto p = Parse(kTable + "rule r key user_id match o: order[profile[user_id].country == \"FR\"] within 1m\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("t.rules:5:35: error: unknown table 'profile' (declared: profiles)") != std::string::npos);
}

TEST_CASE("a list used as a table, and a table used as a value, are refused with what to write instead") {
  auto p = Parse(kTable + "list vip = [\"u1\"]\n"
                 "rule r key user_id match o: order[vip[user_id].x == 1] within 1m\n"
                 "rule s key user_id match o: order[profiles == 1] within 1m\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("t.rules:6:35: error: 'vip' is a list, not a table: test a value with x in vip") !=
        std::string::npos);
  CHECK(p.diagnostics.find("t.rules:7:35: error: table 'profiles' is not a value: read a field with "
                           "profiles[KEY].FIELD, or test a key with KEY in profiles") != std::string::npos);
}

TEST_CASE("a lookup needs a field after its brackets, and a key that is one value") {
  auto p = Parse(kTable + "rule r key user_id match o: order[profiles[user_id] == 1] within 1m\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("expected '.' and a field of the table's record") != std::string::npos);
  auto q = Parse(kTable + "rule r key user_id match o: order{2} where profiles[o.user_id].x == 1 within 1m\n");
  CHECK_FALSE(q.ok);
  CHECK(q.diagnostics.find("a key of table 'profiles' is one value, not a list") != std::string::npos);
}

TEST_CASE("a rule that reads a table in where or emit further back than the table's history is refused") {
  auto p = Parse("table t key k history 1h\n"
                 "rule r key user_id match a: login -> b: order where t[b.user_id].x == 1 within 2h\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("rule 'r' reads table 't' in where or emit as of its last bound event, up to 2h back "
                           "('within'), but the table keeps 1h of history: give the table `history 2h` or more") !=
        std::string::npos);
  // In a filter a table is read as of the event tested: no history needed.
  CHECK(Parse("table t key k history 1h\n"
              "rule r key user_id match a: login -> b: order[t[user_id].x == 1] within 2h\n")
            .ok);
}

TEST_CASE("names are unique across rules, tables and lists") {
  auto p = Parse(kTable + "list profiles = [1]\nrule profiles key u match order within 1m\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("t.rules:5:6: error: list name 'profiles' is already used by a table at t.rules:1:7") !=
        std::string::npos);
  CHECK(p.diagnostics.find("t.rules:6:6: error: rule name 'profiles' is already used by a table at t.rules:1:7") !=
        std::string::npos);
}

TEST_CASE("a table without a key, a clause given twice, a bad history and list items that are not literals are refused") {
  auto p = Parse("table a time t\ntable b key k key j\ntable c key k history soon\nlist l = [1 + 2, x]\n");
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("t.rules:1:7: error: table 'a' has no 'key' clause") != std::string::npos);
  CHECK(p.diagnostics.find("t.rules:2:15: error: 'key' is given twice in table 'b'") != std::string::npos);
  CHECK(p.diagnostics.find("t.rules:3:23: error: bad duration 'soon' for 'history'") != std::string::npos);
  CHECK(p.diagnostics.find("t.rules:4:11: error: a list item must be a string or a number, not an expression") !=
        std::string::npos);
  CHECK(p.diagnostics.find("t.rules:4:18: error: a list item must be a string or a number") != std::string::npos);
}

TEST_CASE("a bound name wins over a table or list of the same name, and a declared name over an event field") {
  auto p = Parse("list country = [\"FR\"]\n"
                 "rule r key user_id match country: order -> b: order[b_country in country.x] within 1m\n"
                 "rule s key user_id match o: order[home in country] within 1m\n");
  INFO(p.diagnostics);
  REQUIRE(p.ok);
  CHECK(dsl::DumpExpr(*p.set.rules[0].pattern.steps[1].filter) == "(b_country in country.x)");
  CHECK(dsl::DumpExpr(*p.set.rules[1].pattern.steps[0].filter) == "(home in country)");
}

TEST_CASE("explain says which steps read which tables, and as of when") {
  auto p = Parse(kTable + "rule r key user_id match o: order[country != profiles[user_id].country] -> "
                 "x: payment where profiles[x.user_id].tier == \"gold\" within 1m\n");
  REQUIRE(p.ok);
  auto set = std::make_shared<const dsl::RuleSet>(std::move(p.set));
  auto compiled = nfa::Compile(set);
  REQUIRE(compiled.ok());
  const auto& c = *compiled.value();
  std::string text = nfa::DumpProgram(*c.programs[0], c.fields);
  CHECK(text.find("s0 reads tables: profiles (as of the event tested)") != std::string::npos);
  CHECK(text.find("where/emit/fields read tables: profiles (as of the match's last event") != std::string::npos);
  CHECK(text.find("(event.country != profiles[event.user_id].country)") != std::string::npos);
}

TEST_CASE("lookups nest like brackets: at the depth limit they check, one past it is refused with its position") {
  auto nested = [](int depth) {
    std::string key = "user_id";
    for (int i = 0; i < depth; ++i) key = "t[" + key + "].k";
    return "table t key k\nrule r key user_id match o: order[" + key + " == 1] within 1m\n";
  };
  // The step's own brackets are one level: 63 lookups inside them reach 64.
  auto at = Parse(nested(63));
  INFO(at.diagnostics);
  CHECK(at.ok);
  auto past = Parse(nested(64));
  CHECK_FALSE(past.ok);
  CHECK(past.diagnostics.find("t.rules:2:") != std::string::npos);
  CHECK(past.diagnostics.find("expressions nest deeper than 64 levels") != std::string::npos);
}

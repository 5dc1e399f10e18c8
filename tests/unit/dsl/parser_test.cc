// The parser and checker: positions, recovery, limits and each rule of the
// grammar that the golden files do not already pin down.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <map>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "dsl/clauses.h"

using namespace cepheus;

namespace {

struct Parsed {
  bool ok;
  dsl::RuleSet set;
  std::string diagnostics;
  int errors;
};

Parsed Parse(const std::string& text) {
  Parsed p;
  DiagnosticSink diags;
  p.ok = dsl::ParseSource(std::make_shared<const SourceFile>("t.rules", text), &p.set, &diags);
  p.diagnostics = diags.FormatAll();
  p.errors = diags.error_count();
  return p;
}

}  // namespace

TEST_CASE("a minimal rule parses with every default filled in") {
  auto p = Parse("rule r key user_id match order within 2m");
  REQUIRE(p.ok);
  REQUIRE(p.set.rules.size() == 1);
  const auto& r = p.set.rules[0];
  CHECK(r.name == "r");
  CHECK(r.severity == dsl::Severity::kMedium);
  CHECK(r.skip == dsl::SkipPolicy::kPastLast);
  CHECK(r.limit == dsl::kDefaultLimit);
  CHECK(r.within == 120000);
  CHECK_FALSE(r.cooldown.has_value());
  CHECK(r.pattern.steps.size() == 1);
  CHECK(r.pattern.steps[0].min == 1);
  CHECK(r.pattern.steps[0].max == 1);
  CHECK_FALSE(r.pattern.steps[0].counted);
}

TEST_CASE("every node of a rule carries the span of its source text") {
  std::string text = "rule spans\n  key user_id\n  match o: order[amount > 5]{2,}\n  within 90s\n";
  auto p = Parse(text);
  REQUIRE(p.ok);
  const auto& r = p.set.rules[0];
  auto span_text = [&](Span s) { return text.substr(s.begin, s.end - s.begin); };
  CHECK(span_text(r.name_span) == "spans");
  CHECK(span_text(r.key_span) == "user_id");
  const auto& step = r.pattern.steps[0];
  CHECK(span_text(step.name_span) == "o");
  CHECK(span_text(step.types_span) == "order");
  CHECK(span_text(step.quantifier_span) == "{2,}");
  REQUIRE(step.filter.has_value());
  CHECK(span_text(step.filter->span) == "amount > 5");
  CHECK(span_text(step.filter->args[1].span) == "5");
}

TEST_CASE("keywords are reserved only where the grammar expects them") {
  auto p = Parse("rule within key match match match: absent[key == 1 and within > 2] within 1m");
  INFO(p.diagnostics);
  REQUIRE(p.ok);
  const auto& r = p.set.rules[0];
  CHECK(r.name == "within");
  CHECK(r.key == std::vector<std::string>{"match"});
  CHECK(r.pattern.steps[0].name == "match");
  CHECK(r.pattern.steps[0].types == std::vector<std::string>{"absent"});
  CHECK_FALSE(r.pattern.steps[0].absent);
  // A clause keyword cannot be a bare event type: the pattern ends before it.
  auto q = Parse("rule r key u match a: x -> within 1m");
  CHECK_FALSE(q.ok);
  CHECK(q.diagnostics.find("expected a pattern step, found 'within'") != std::string::npos);
}

TEST_CASE("a word that starts with a keyword is a name, not the keyword") {
  auto p = Parse("rule r key user_id match o: order[android == 1 or notes != null or index in [1]] within 1m");
  INFO(p.diagnostics);
  CHECK(p.ok);
}

TEST_CASE("one error does not hide the errors of later rules") {
  auto p = Parse("rule a key user_id match o: order[ within 1m\nrule b key user_id match o: order within 2x\n");
  CHECK_FALSE(p.ok);
  CHECK(p.errors == 2);
  CHECK(p.diagnostics.find("t.rules:1:") != std::string::npos);
  CHECK(p.diagnostics.find("t.rules:2:") != std::string::npos);
}

TEST_CASE("a syntax error inside a clause still lets later clauses of the rule be read") {
  auto p = Parse("rule a\n  key user_id\n  match o: order[amount >]\n  within 1m\n  bogus 3\n");
  CHECK(p.errors == 2);  // the filter, then the unknown clause
  CHECK(p.diagnostics.find("t.rules:5:3: error: unknown clause 'bogus'") != std::string::npos);
}

TEST_CASE("an empty file and a file of comments hold no rules and no errors") {
  CHECK(Parse("").ok);
  CHECK(Parse("# nothing here\n   # nor here").ok);
  CHECK(Parse("# nothing here\n").set.rules.empty());
}

TEST_CASE("strings unescape their four escapes") {
  auto p = Parse(R"(rule r key u match x within 1m description "a\"b\\c\nd\te")");
  REQUIRE(p.ok);
  CHECK(p.set.rules[0].description == "a\"b\\c\nd\te");
}

TEST_CASE("emit templates split into text, expressions and the key") {
  auto p = Parse(R"(rule r key u match o: x{2} within 1m emit "k={key} n={count(o)} {{lit}}")");
  REQUIRE(p.ok);
  const auto& emit = p.set.rules[0].emit;
  REQUIRE(emit.size() == 5);
  CHECK(emit[0].text == "k=");
  CHECK(emit[1].key);
  CHECK(emit[2].text == " n=");
  CHECK(emit[3].expr.has_value());
  CHECK(emit[4].text == " {lit}");
  auto q = Parse(R"(rule r key u match o: x{2} within 1m emit "a {count(o)} {{b}}")");
  REQUIRE(q.ok);
  CHECK(q.set.rules[0].emit.back().text == " {b}");
}

TEST_CASE("a rule file above the size limit is refused") {
  std::string big(dsl::kMaxRuleFileBytes + 1, '#');
  auto p = Parse(big);
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("larger than") != std::string::npos);
}

TEST_CASE("brackets nested past the limit are refused without exhausting the stack") {
  std::string deep = "rule r key u match o: x[" + std::string(100000, '(') + "1" +
                     std::string(100000, ')') + "] within 1m";
  auto p = Parse(deep);
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("nest deeper than 64") != std::string::npos);
  // Operators without brackets are bounded by the same guard in the checker.
  std::string nots = "rule r key u match o: x[";
  for (int i = 0; i < 5000; ++i) nots += "not ";
  nots += "true] within 1m";
  CHECK_NOTHROW(Parse(nots));
}

TEST_CASE("a pattern longer than the step limit is refused") {
  std::string text = "rule r key u match a0: x";
  for (int i = 1; i <= dsl::kMaxSteps; ++i) text += " -> a" + std::to_string(i) + ": x";
  text += " within 1m";
  auto p = Parse(text);
  CHECK_FALSE(p.ok);
  CHECK(p.diagnostics.find("at most 32 steps") != std::string::npos);
}

TEST_CASE("loading a directory reads its .rules files in name order") {
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet({std::string(CEPHEUS_SOURCE_DIR) + "/tests/golden/parse"}, &diags);
  INFO(diags.FormatAll());
  REQUIRE(set.has_value());
  REQUIRE(set->rules.size() >= 3);
  CHECK(set->rules[0].name == "everything");  // every_clause.rules sorts first
}

TEST_CASE("a missing path is an error that names it") {
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet({"/nonexistent/rules"}, &diags);
  CHECK_FALSE(set.has_value());
  CHECK(diags.FormatAll().find("/nonexistent/rules: no such file or directory") != std::string::npos);
}

TEST_CASE("the rule fingerprint changes with the rule's text and only with it") {
  auto a = Parse("rule r key u match x within 1m\nrule s key u match y within 1m");
  auto b = Parse("rule r key u match x within 1m\nrule s key u match y within 2m");
  REQUIRE(a.ok);
  REQUIRE(b.ok);
  CHECK(a.set.rules[0].fingerprint == b.set.rules[0].fingerprint);
  CHECK(a.set.rules[1].fingerprint != b.set.rules[1].fingerprint);
}

TEST_CASE("a step without a name binds no name (regression: X3 kept a half-parsed binding)") {
  auto p = Parse("rule r key u match o: order -> payment -> payment within 1m");
  INFO(p.diagnostics);
  REQUIRE(p.ok);
  const auto& steps = p.set.rules[0].pattern.steps;
  CHECK(steps[0].name == "o");
  CHECK(steps[1].name.empty());
  CHECK(steps[2].name.empty());
  CHECK_FALSE(Parse("rule r key u match o: order -> refund where count(refund) > 0 within 1m").ok);
}

TEST_CASE("deep nesting inside a message's holes and long runs of prefix operators are refused") {
  // Found by the fuzzer: brackets inside an emit hole were not counted.
  std::string hole = "rule r key u match o: x within 1m emit \"total {sum(" + std::string(200, '(') + "\"";
  auto a = Parse(hole);
  CHECK_FALSE(a.ok);
  CHECK(a.diagnostics.find("nest deeper than 64") != std::string::npos);
  std::string minus = "rule r key u match o: x[" + std::string(100000, '-') + "1 > 0] within 1m";
  CHECK(Parse(minus).diagnostics.find("prefix operators") != std::string::npos);
  std::string nots = "rule r key u match o: x[";
  for (int i = 0; i < 100; ++i) nots += "not ";
  nots += "true] within 1m";
  CHECK_FALSE(Parse(nots).ok);
  // Within the limits all of these are fine, and brackets in message text are text.
  CHECK(Parse("rule r key u match o: x[a - -1 > not_a and not (b)] within 1m "
              "emit \"(((( {count(o)} {{((\"").ok);
}

TEST_CASE("the fuzzer's crash inputs are rejected cleanly") {
  for (const char* name : {"regression-template-nesting.rules"}) {
    std::ifstream in(std::string(CEPHEUS_SOURCE_DIR) + "/tests/fuzz/corpus/" + name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    REQUIRE_FALSE(text.str().empty());
    auto p = Parse(text.str());
    CHECK_FALSE(p.ok);
  }
}

TEST_CASE("every clause keyword of the one list is parsed as its clause, and only the required ones are required") {
  // One valid line per keyword: a keyword added to kClauses without an
  // example here, or without its grammar alternative, fails this test.
  const std::map<std::string, std::string> example = {
      {"description", "description \"d\""}, {"severity", "severity high"},  {"key", "key user_id"},
      {"match", "match o: order"},          {"where", "where o.amount > 1"}, {"within", "within 1m"},
      {"skip", "skip past_last"},           {"cooldown", "cooldown 5m"},     {"limit", "limit 10"},
      {"emit", "emit \"x\""},               {"tags", "tags \"a\""},         {"fields", "fields { n: count(o) }"},
  };
  std::string all;
  for (const auto& c : dsl::kClauses) {
    INFO("keyword: " << c.word);
    REQUIRE(example.count(std::string(c.word)) == 1);
    all += example.at(std::string(c.word)) + "\n";
  }
  CHECK(example.size() == std::size(dsl::kClauses));
  auto p = Parse("rule r\n" + all);
  INFO(p.diagnostics);
  CHECK(p.ok);
  for (const auto& c : dsl::kClauses) {
    INFO("without: " << c.word);
    std::string text = "rule r\n";
    for (const auto& d : dsl::kClauses) {
      if (d.word != c.word) text += example.at(std::string(d.word)) + "\n";
    }
    auto q = Parse(text);
    CHECK(q.ok == !c.required);
    if (c.required) {
      CHECK(q.diagnostics.find(fmt::format("has no '{}' clause (key, match and within are required)", c.word)) !=
            std::string::npos);
    }
  }
  auto unknown = Parse("rule r key user_id match order within 2m windw 5m");
  CHECK(unknown.diagnostics.find("unknown clause 'windw' (expected description, severity, key, match, where, "
                                 "within, skip, cooldown, limit, emit, tags or fields)") != std::string::npos);
}

// Counters (section 6.2) against the reference matcher: random counters (each
// function, random `over` and `resolution`), a rule that reads one in its
// filter and one in `where`, random streams with out-of-order events; the
// engine's alerts must equal the reference's, which keeps every counted
// event and sums the window afresh at each read.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/source.h"
#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/replay.h"
#include "cepheus/nfa/program.h"
#include "reference/reference_matcher.h"

using namespace cepheus;

namespace {

std::shared_ptr<dsl::RuleSet> Parse(const std::string& text, std::string* error) {
  auto set = std::make_shared<dsl::RuleSet>();
  DiagnosticSink diags;
  auto file = std::make_shared<const SourceFile>("counters.rules", text);
  diags.Retain(file);
  if (!dsl::ParseSource(file, set.get(), &diags)) {
    *error = diags.FormatAll();
    return nullptr;
  }
  return set;
}

std::vector<reference::ReducedAlert> Engine(const std::shared_ptr<const nfa::CompiledRuleSet>& compiled,
                                            const std::vector<std::string>& events, Millis d) {
  std::string text;
  for (const auto& e : events) text += e + "\n";
  simdjson::padded_string input(text);
  engine::EngineOptions options;
  options.out_of_order = d;
  engine::CollectingSink sink;
  engine::ReplayText(std::string_view(input.data(), input.size()), compiled, options, engine::EventFieldNames{},
                     &sink, [](uint64_t, const std::string&) {});
  std::vector<reference::ReducedAlert> out;
  simdjson::dom::parser parser;
  for (const auto& a : sink.alerts) {
    simdjson::dom::element root = parser.parse(a.json);
    reference::ReducedAlert r;
    r.rule = std::string(std::string_view(root["rule"]));
    r.key = std::string(std::string_view(root["key"]));
    r.reason = std::string(std::string_view(root["reason"]));
    for (auto field : simdjson::dom::object(root["events"])) {
      std::vector<std::string> ids;
      for (simdjson::dom::element e : simdjson::dom::array(field.value)) ids.emplace_back(std::string_view(e["id"]));
      if (!ids.empty()) r.events[std::string(field.key)] = ids;
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("random counters read in filters and where give the reference's alerts, out-of-order events included") {
  std::mt19937_64 rng(20261205);
  const char* fns[] = {"count", "sum", "avg", "min", "max", "distinct"};
  int cases = 0, alerts = 0;
  for (int round = 0; round < 300; ++round) {
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    int res = 1 + pick(5);                    // seconds
    int over = res * (1 + pick(6));
    std::string f1 = fns[pick(6)], f2 = fns[pick(6)];
    auto source = [&](const std::string& fn) {
      std::string filter = pick(2) ? "[amount > 20]" : "";
      if (fn == "count") return fmt::format("order{}", filter);
      return fmt::format("order{}.{}", filter, fn == "distinct" ? "country" : "amount");
    };
    double threshold = f1 == "count" || f1 == "distinct" ? 1 + pick(3) : 10 + pick(60);
    std::string rules = fmt::format(
        "counter c1\n  key user_id\n  {} {}\n  over {}s\n  resolution {}s\n"
        "counter c2\n  key user_id\n  {} {}\n  over {}s\n"
        "rule r\n  key user_id\n  match a: order[c1 >= {}] -> b: (order|payment)\n  where c2 != null and c2 >= 0\n"
        "  within {}s\n  skip {}\n",
        f1, source(f1), over, res, f2, source(f2), over * 2, threshold, 1 + pick(8),
        pick(2) ? "past_last" : "none");
    std::string error;
    auto set = Parse(rules, &error);
    REQUIRE_MESSAGE(set != nullptr, error);
    auto compiled = nfa::Compile(set);
    REQUIRE(compiled.ok());
    std::vector<std::string> events;
    Millis ts = 1700000000000;
    const char* countries[] = {"FR", "DE", "US"};
    for (int i = 0; i < 40; ++i) {
      ts += pick(2500);
      Millis skew = pick(5) == 0 ? pick(2000) : 0;
      events.push_back(fmt::format(R"({{"id":"e{}","type":"{}","ts":{},"user_id":"u{}","amount":{},"country":"{}"}})", i,
                                   pick(4) == 0 ? "payment" : "order", ts - skew, pick(2), pick(80),
                                   countries[pick(3)]));
    }
    Millis d = pick(3) * 1000;
    auto want = reference::RunReference(set->rules[0], events, d, {}, &set->counters).alerts;
    std::sort(want.begin(), want.end());
    auto got = Engine(compiled.value(), events, d);
    CAPTURE(rules);
    CAPTURE(d);
    std::string all;
    for (const auto& e : events) all += e + "\n";
    CAPTURE(all);
    CHECK(got == want);
    ++cases;
    alerts += static_cast<int>(want.size());
  }
  MESSAGE(cases << " cases, " << alerts << " alerts");
  CHECK(alerts > 300);
}

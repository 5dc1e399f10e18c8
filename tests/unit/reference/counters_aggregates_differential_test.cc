// Counters (section 6.2) and aggregates (6.3) against the reference matcher.
// Counters: random counters (each function, random `over` and `resolution`),
// a rule that reads one in its filter and one in `where`, random streams with
// out-of-order events; the engine's alerts must equal the reference's, which
// keeps every counted event and sums the window afresh at each read.
// Aggregates: random declarations (types, filter, group, tumbling or hopping
// windows, computed fields, `alert when` with previous_*), random streams
// with out-of-order and late events, missing groups and non-numeric amounts;
// records (exact values), alerts and late events must equal the reference's,
// which lists every window of every group at the end.
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

// The rule set of `text`, checked and compiled (the test fails otherwise).
std::shared_ptr<const nfa::CompiledRuleSet> Compiled(const std::string& text) {
  std::string error;
  auto set = Parse(text, &error);
  REQUIRE_MESSAGE(set != nullptr, error);
  auto compiled = nfa::Compile(set);
  REQUIRE(compiled.ok());
  return compiled.value();
}

// What `cepheus replay` publishes for `events`, allowed out-of-orderness `d`.
engine::CollectingSink Replay(const std::shared_ptr<const nfa::CompiledRuleSet>& compiled,
                              const std::vector<std::string>& events, Millis d) {
  std::string text;
  for (const auto& e : events) text += e + "\n";
  simdjson::padded_string input(text);
  engine::EngineOptions options;
  options.out_of_order = d;
  engine::CollectingSink sink;
  engine::ReplayText(std::string_view(input.data(), input.size()), compiled, options, engine::EventFieldNames{},
                     &sink, [](uint64_t, const std::string&) {});
  return sink;
}

std::vector<reference::ReducedAlert> Engine(const std::shared_ptr<const nfa::CompiledRuleSet>& compiled,
                                            const std::vector<std::string>& events, Millis d) {
  engine::CollectingSink sink = Replay(compiled, events, d);
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
    auto compiled = Compiled(rules);
    const dsl::RuleSet& set = *compiled->source;
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
    auto want = reference::RunReference(set.rules[0], events, d, {}, &set.counters).alerts;
    std::sort(want.begin(), want.end());
    auto got = Engine(compiled, events, d);
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

namespace {

struct AggregateOutcome {
  std::vector<std::string> records;
  std::vector<reference::ReducedAlert> alerts;
  std::vector<std::string> late;
};

AggregateOutcome EngineAggregate(const std::shared_ptr<const nfa::CompiledRuleSet>& compiled,
                                 const std::vector<std::string>& events, Millis d) {
  engine::CollectingSink sink = Replay(compiled, events, d);
  AggregateOutcome out;
  simdjson::dom::parser parser;
  const dsl::Aggregate& a = compiled->source->aggregates[0];
  for (const auto& r : sink.records) {
    simdjson::padded_string json(r.json);
    simdjson::dom::element root = parser.parse(json);
    std::string line = fmt::format("{}|{}|{}|{}", std::string_view(root["aggregate"]), std::string_view(root["group"]),
                                   int64_t(root["window_start"]), int64_t(root["window_end"]));
    for (const auto& c : a.compute) {
      double v;
      line += fmt::format("|{}={}", c.name,
                          root[c.name].get_double().get(v) == simdjson::SUCCESS ? fmt::format("{}", v) : "null");
    }
    out.records.push_back(line);
  }
  for (const auto& al : sink.alerts) {
    simdjson::dom::element root = parser.parse(al.json);
    out.alerts.push_back({std::string(std::string_view(root["rule"])), std::string(std::string_view(root["key"])),
                          std::string(std::string_view(root["reason"])), {}, ""});
  }
  out.late = sink.late;
  std::sort(out.records.begin(), out.records.end());
  std::sort(out.alerts.begin(), out.alerts.end());
  std::sort(out.late.begin(), out.late.end());
  return out;
}

}  // namespace

TEST_CASE("random aggregates give the reference's records and alerts, out-of-order and late events included") {
  std::mt19937_64 rng(6320261205);
  const char* fns[] = {"count", "sum", "avg", "min", "max", "distinct"};
  int cases = 0, records = 0, alerts = 0, late = 0;
  for (int round = 0; round < 300; ++round) {
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    int every = 2 + pick(6);  // seconds
    bool hopping = pick(2) == 1;
    int size = hopping ? every * (1 + pick(3)) : every;
    std::vector<std::string> compute;
    std::vector<std::string> names;
    int n_fields = 1 + pick(3);
    for (int f = 0; f < n_fields; ++f) {
      std::string fn = fns[pick(6)];
      std::string arg = fn == "count" ? "" : fn == "distinct" ? (pick(2) ? "user_id" : "amount") : "amount";
      names.push_back(fmt::format("f{}", f));
      compute.push_back(fmt::format("f{} = {}({})", f, fn, arg));
    }
    std::string when = fmt::format("f0 {} {} * previous_{}(f{}, {})", pick(2) ? ">" : ">=", 1 + pick(3),
                                   pick(2) ? "avg" : "max", pick(n_fields), 1 + pick(4));
    if (pick(2)) when += fmt::format(" and {} != null", names[static_cast<size_t>(pick(n_fields))]);
    std::string rules = fmt::format(
        "aggregate a\n  from {}{}\n  group by {}\n  window {}\n  compute {}\n  alert when {}\n",
        pick(3) == 0 ? "any" : pick(2) ? "order" : "(order|payment)", pick(2) ? "[amount > 10]" : "",
        pick(2) ? "category" : "user_id",
        hopping ? fmt::format("hopping {}s every {}s", size, every) : fmt::format("tumbling {}s", size),
        fmt::join(compute, ", "), when);
    auto compiled = Compiled(rules);
    const dsl::RuleSet& set = *compiled->source;
    std::vector<std::string> events;
    Millis ts = 1700000000000;
    const char* categories[] = {"books", "toys", "home"};
    for (int i = 0; i < 60; ++i) {
      ts += pick(1500);
      Millis skew = pick(4) == 0 ? pick(4000) : 0;
      std::string amount = pick(10) == 0 ? "\"n/a\"" : std::to_string(pick(60));
      std::string category = pick(12) == 0 ? "" : fmt::format(R"(,"category":"{}")", categories[pick(3)]);
      events.push_back(fmt::format(R"({{"id":"e{}","type":"{}","ts":{},"user_id":"u{}","amount":{}{}}})", i,
                                   pick(3) == 0 ? "payment" : pick(5) == 0 ? "login" : "order", ts - skew, pick(3),
                                   amount, category));
    }
    Millis d = pick(3) * 1000;
    auto want = reference::RunReferenceAggregate(set.aggregates[0], events, d);
    auto got = EngineAggregate(compiled, events, d);
    CAPTURE(rules);
    CAPTURE(d);
    std::string all;
    for (const auto& e : events) all += e + "\n";
    CAPTURE(all);
    if (got.records != want.records) {
      std::vector<std::string> only_got, only_want;
      std::set_difference(got.records.begin(), got.records.end(), want.records.begin(), want.records.end(),
                          std::back_inserter(only_got));
      std::set_difference(want.records.begin(), want.records.end(), got.records.begin(), got.records.end(),
                          std::back_inserter(only_want));
      FAIL_CHECK("records differ; engine only: " << fmt::format("{}", fmt::join(only_got, "; "))
                                                 << "\nreference only: " << fmt::format("{}", fmt::join(only_want, "; ")));
    }
    CHECK(got.alerts == want.alerts);
    CHECK(got.late == want.late);
    ++cases;
    records += static_cast<int>(want.records.size());
    alerts += static_cast<int>(want.alerts.size());
    late += static_cast<int>(want.late.size());
  }
  MESSAGE(cases << " cases, " << records << " records, " << alerts << " alerts, " << late << " late");
  CHECK(alerts > 100);
  CHECK(late > 50);
}

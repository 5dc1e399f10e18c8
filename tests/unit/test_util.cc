#include "test_util.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace cepheus::testing {

std::shared_ptr<const nfa::CompiledRuleSet> CompileRules(const std::string& text) {
  DiagnosticSink diags;
  dsl::RuleSet set;
  bool ok = dsl::ParseSource(std::make_shared<const SourceFile>("test.rules", text), &set, &diags);
  INFO(diags.FormatAll());
  REQUIRE(ok);
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(set)));
  REQUIRE(compiled.ok());
  return compiled.value();
}

std::string Reduce(const engine::Alert& a) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(a.json);
  std::string out = fmt::format("{}|{}|{}|", std::string_view(doc["rule"]), std::string_view(doc["key"]),
                                std::string_view(doc["reason"]));
  std::map<std::string, std::vector<std::string>> names;
  for (auto field : doc["events"].get_object()) {
    auto& ids = names[std::string(field.key)];
    for (auto e : field.value.get_array()) ids.emplace_back(std::string_view(e["id"]));
  }
  bool first = true;
  for (const auto& [name, ids] : names) {
    out += fmt::format("{}{}={}", first ? "" : ";", name, fmt::join(ids, ","));
    first = false;
  }
  return out;
}

std::vector<std::string> Reduce(const std::vector<engine::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(Reduce(a));
  return out;
}

std::vector<std::string> Run(const std::string& rules, const std::vector<std::string>& events,
                             Millis out_of_order, engine::CollectingSink* sink_out) {
  auto compiled = CompileRules(rules);
  std::string text;
  for (const auto& e : events) text += e + "\n";
  simdjson::padded_string input(text);
  engine::CollectingSink local;
  engine::CollectingSink* sink = sink_out ? sink_out : &local;
  engine::EngineOptions options;
  options.out_of_order = out_of_order;
  daemon::ReplayText(std::string_view(input.data(), input.size()), compiled, options, {}, sink,
                     [](uint64_t line, const std::string& why) { FAIL("malformed line " << line << ": " << why); });
  return Reduce(sink->alerts);
}

}  // namespace cepheus::testing

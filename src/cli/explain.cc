// `cepheus explain`: each rule's compiled automaton, as text or Graphviz dot.
#include "cli/explain.h"

#include <iostream>
#include <optional>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/nfa/program.h"
#include "cepheus/daemon/config.h"
#include "cepheus/daemon/rekey_plan.h"
#include "cepheus/daemon/rules_loader.h"

namespace cepheus::cli {

namespace {

// One comment line: on the input partitions, or after re-keying through which
// topic (section 6.4).
std::string WhereItRuns(const nfa::CompiledRuleSet& rules, const nfa::Program& p, const daemon::Config& config) {
  const std::string& partition_key = config.kafka.partition_key;
  std::string field = daemon::KeyField(rules, p);
  if (field == partition_key) {
    return fmt::format("# runs on the input partitions (keyed on the partition key '{}')\n", partition_key);
  }
  if (!config.kafka.rekey) {
    return fmt::format("# runs on the input partitions, which are partitioned by '{}' not '{}': each sees only its "
                       "own events of a {} (kafka.rekey: true re-keys it)\n",
                       partition_key, field, field);
  }
  const daemon::Plan plan = daemon::MakePlan(rules, partition_key, config.kafka.group_id);
  const daemon::RekeyStage* s = plan.Find(field);
  return fmt::format("# runs after re-keying by '{}' through topic {} ({})\n", field, s->topic,
                     s->all_types ? std::string("every event forwarded")
                                  : fmt::format("events forwarded: {}", fmt::join(s->types, ", ")));
}

}  // namespace

int RunExplain(const ExplainOptions& o) {
  auto rules = daemon::LoadAndCompile(o.paths, std::cerr);
  if (!rules) return 1;
  std::optional<daemon::Config> config;
  if (!o.config.empty()) {
    auto c = daemon::LoadConfig(o.config);
    if (!c.ok()) {
      std::cerr << "cepheus: error: " << c.status().message() << "\n";
      return 1;
    }
    config = std::move(c).value();
  }
  bool found = false;
  for (const auto& p : rules->programs) {
    if (!o.rule.empty() && p->name != o.rule) continue;
    found = true;
    if (config && o.format == "text") std::cout << WhereItRuns(*rules, *p, *config);
    std::cout << (o.format == "dot" ? nfa::DumpProgramDot(*p, rules->fields)
                                    : nfa::DumpProgram(*p, rules->fields));
  }
  if (o.format == "text") {
    for (const auto& c : rules->counters) {
      if (!o.rule.empty() && c.name != o.rule) continue;
      found = true;
      std::cout << nfa::DumpCounter(c, rules->fields);
    }
    for (const auto& a : rules->aggregates) {
      if (!o.rule.empty() && a.name != o.rule) continue;
      found = true;
      std::cout << nfa::DumpAggregate(a, rules->fields);
    }
  }
  if (!found) {
    std::cerr << fmt::format("cepheus: error: no rule, counter or aggregate named '{}'\n", o.rule);
    return 1;
  }
  return 0;
}

Command AddExplain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  auto* sub = app.add_subcommand("explain", "Print each rule's compiled automaton");
  sub->add_option("RULES", o->paths, "Rule files or directories")->required();
  sub->add_option("--rule", o->rule, "Only this rule");
  sub->add_option("--format", o->format, "text or dot (Graphviz)")->check(CLI::IsMember({"text", "dot"}));
  sub->add_option("--config", o->config, "cepheus.yaml: say where each rule runs (re-keying, kafka.rekey)");
  return {sub, [o] { return RunExplain(*o); }};
}

}  // namespace cepheus::cli

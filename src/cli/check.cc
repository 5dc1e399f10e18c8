// `cepheus check`: load, check and compile the rules; print the diagnostics
// and, with --config, the re-keying plan (section 6.4) on standard output
// when kafka.rekey is on, else a warning for each rule, counter or aggregate
// keyed (grouped) on another field than the input's partition key; then "N rules OK" (", N counters, N
// aggregates" when there are some).
#include "cli/check.h"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/nfa/program.h"
#include "cepheus/daemon/config.h"
#include "cepheus/daemon/rekey_plan.h"
#include "cepheus/daemon/rules_loader.h"

namespace cepheus::cli {
namespace {

// With kafka.rekey off: counters keyed, and aggregates grouped, off the
// partition key get per-partition results (a count per partition, a record
// per partition for one group's window).
void WarnPerPartitionDeclarations(const dsl::RuleSet& set, const std::string& partition_key) {
  auto warn = [&](const SourceFile* file, Span span, std::string msg) {
    std::cerr << FormatDiagnostic(Diagnostic{Severity::kWarning, file, span, std::move(msg)});
  };
  for (const auto& c : set.counters) {
    std::string key = fmt::format("{}", fmt::join(c.key, "."));
    if (key == partition_key) continue;
    warn(c.file, c.key_span,
         fmt::format("counter '{}' keys on '{}' but the input topics are partitioned by '{}': each partition keeps "
                     "its own count of a {} (kafka.rekey: true runs it after re-keying)",
                     c.name, key, partition_key, key));
  }
  for (const auto& a : set.aggregates) {
    std::string group = fmt::format("{}", fmt::join(a.group, "."));
    if (group == partition_key) continue;
    warn(a.file, a.group_span,
         fmt::format("aggregate '{}' groups by '{}' but the input topics are partitioned by '{}': each partition "
                     "publishes its own record of a group's window, from its events only (kafka.rekey: true runs "
                     "it after re-keying)",
                     a.name, group, partition_key));
  }
}

}  // namespace

int RunCheck(const CheckOptions& o) {
  auto rules = daemon::LoadAndCompile(o.paths, std::cerr);
  if (!rules) return 1;
  if (!o.config.empty()) {
    auto config = daemon::LoadConfig(o.config);
    if (!config.ok()) {
      std::cerr << "cepheus: error: " << config.status().message() << "\n";
      return 1;
    }
    if (Status st = daemon::CheckTablesConfigured(*rules, config.value()); !st.ok()) {
      std::cerr << st.message() << "\n";
      return 1;
    }
    const std::string& partition_key = config.value().kafka.partition_key;
    if (config.value().kafka.rekey) {
      std::cout << daemon::FormatPlan(daemon::MakePlan(*rules, partition_key, config.value().kafka.group_id));
    }
    for (const auto& r : rules->source->rules) {
      if (config.value().kafka.rekey) break;  // the plan says where each rule runs
      std::string key = fmt::format("{}", fmt::join(r.key, "."));
      if (key == partition_key) continue;
      Diagnostic d{Severity::kWarning, r.file, r.key_span,
                   fmt::format("rule '{}' keys on '{}' but the input topics are partitioned by '{}': the events "
                               "of one {} can land on several partitions, each with its own state and order "
                               "(kafka.rekey: true runs it after re-keying)",
                               r.name, key, partition_key, key)};
      std::cerr << FormatDiagnostic(d);
    }
    if (!config.value().kafka.rekey) WarnPerPartitionDeclarations(*rules->source, partition_key);
  }
  if (o.dump) std::cout << dsl::DumpRuleSet(*rules->source);
  auto n = [](size_t k, const char* what) { return fmt::format("{} {}{}", k, what, k == 1 ? "" : "s"); };
  std::string counted = n(rules->programs.size(), "rule");
  if (!rules->counters.empty()) counted += ", " + n(rules->counters.size(), "counter");
  if (!rules->aggregates.empty()) counted += ", " + n(rules->aggregates.size(), "aggregate");
  if (!rules->source->events.empty()) counted += ", " + n(rules->source->events.size(), "event type");
  std::cerr << counted << " OK\n";
  return 0;
}

Command AddCheck(CLI::App& app) {
  auto o = std::make_shared<CheckOptions>();
  auto* sub = app.add_subcommand("check", "Parse, check and compile rule files or directories");
  sub->add_option("RULES", o->paths, "Rule files or directories")->required();
  sub->add_flag("--dump", o->dump, "Print the checked rules in canonical form");
  sub->add_option("--config", o->config,
                  "cepheus.yaml: also check the tables' sources and print the re-keying plan (or, without "
                  "kafka.rekey, warn about rules keyed on another field than the partition key)");
  return {sub, [o] { return RunCheck(*o); }};
}

}  // namespace cepheus::cli

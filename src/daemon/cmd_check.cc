// `cepheus check` and `cepheus explain`: load, check, compile, print.
#include <iostream>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/nfa/program.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/rules_loader.h"

namespace cepheus::daemon {

std::shared_ptr<const nfa::CompiledRuleSet> LoadAndCompile(const std::vector<std::string>& paths,
                                                           std::ostream& err) {
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet(paths, &diags);
  err << diags.FormatAll();
  if (!set) {
    err << fmt::format("{} error{}\n", diags.error_count(), diags.error_count() == 1 ? "" : "s");
    return nullptr;
  }
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set)));
  if (!compiled.ok()) {
    err << "cepheus: error: " << compiled.status().message() << "\n";
    return nullptr;
  }
  return compiled.value();
}

int RunCheck(const std::vector<std::string>& paths, bool dump, const std::string& config_path) {
  auto rules = LoadAndCompile(paths, std::cerr);
  if (!rules) return 1;
  if (!config_path.empty()) {
    auto config = LoadConfig(config_path);
    if (!config.ok()) {
      std::cerr << "cepheus: error: " << config.status().message() << "\n";
      return 1;
    }
    const std::string& partition_key = config.value().kafka.partition_key;
    for (const auto& r : rules->source->rules) {
      std::string key = fmt::format("{}", fmt::join(r.key, "."));
      if (key == partition_key) continue;
      Diagnostic d{Severity::kWarning, r.file, r.key_span,
                   fmt::format("rule '{}' keys on '{}' but the input topics are partitioned by '{}': the events "
                               "of one {} can land on several partitions, each with its own state and order",
                               r.name, key, partition_key, key)};
      std::cerr << FormatDiagnostic(d);
    }
  }
  if (dump) std::cout << dsl::DumpRuleSet(*rules->source);
  std::cerr << fmt::format("{} rule{} OK\n", rules->programs.size(),
                           rules->programs.size() == 1 ? "" : "s");
  return 0;
}

int RunExplain(const ExplainOptions& o) {
  auto rules = LoadAndCompile(o.paths, std::cerr);
  if (!rules) return 1;
  bool found = false;
  for (const auto& p : rules->programs) {
    if (!o.rule.empty() && p->name != o.rule) continue;
    found = true;
    std::cout << (o.format == "dot" ? nfa::DumpProgramDot(*p, rules->fields)
                                    : nfa::DumpProgram(*p, rules->fields));
  }
  if (!found) {
    std::cerr << fmt::format("cepheus: error: no rule named '{}'\n", o.rule);
    return 1;
  }
  return 0;
}

}  // namespace cepheus::daemon

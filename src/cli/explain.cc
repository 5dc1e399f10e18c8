// `cepheus explain`: each rule's compiled automaton, as text or Graphviz dot.
#include "cli/explain.h"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/nfa/program.h"
#include "cepheus/daemon/rules_loader.h"

namespace cepheus::cli {

int RunExplain(const ExplainOptions& o) {
  auto rules = daemon::LoadAndCompile(o.paths, std::cerr);
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

Command AddExplain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  auto* sub = app.add_subcommand("explain", "Print each rule's compiled automaton");
  sub->add_option("RULES", o->paths, "Rule files or directories")->required();
  sub->add_option("--rule", o->rule, "Only this rule");
  sub->add_option("--format", o->format, "text or dot (Graphviz)")->check(CLI::IsMember({"text", "dot"}));
  return {sub, [o] { return RunExplain(*o); }};
}

}  // namespace cepheus::cli

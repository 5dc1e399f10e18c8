// LoadAndCompile: dsl::LoadRuleSet, then nfa::Compile; every diagnostic, and
// the error count when there are errors, is printed to the stream given.
#include "cepheus/daemon/rules_loader.h"

#include <fmt/format.h>

#include "cepheus/common/source.h"
#include "cepheus/daemon/config.h"
#include "cepheus/dsl/parser.h"

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

Status CheckTablesConfigured(const nfa::CompiledRuleSet& rules, const Config& config) {
  for (const auto& t : rules.tables) {
    if (!t.read || config.tables.count(t.name)) continue;
    const dsl::Table* decl = rules.source->FindTable(t.name);
    auto at = decl->file->Locate(decl->name_span.begin);
    return Status::FailedPrecondition(
        fmt::format("{}:{}:{}: table '{}' is read by the rules but has no source in the configuration: add "
                    "`tables: {{{}: {{topic: TOPIC}}}}`",
                    decl->file->name(), at.line, at.col, t.name, t.name));
  }
  return Status::Ok();
}

}  // namespace cepheus::daemon

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
  // Counters and aggregates run in replay and test; the daemon does not keep
  // their state in LMDB and the changelog yet, so a restart would lose it:
  // refused rather than silently wrong.
  auto refuse = [](const SourceFile* file, Span span, const char* what, const std::string& name) {
    auto at = file->Locate(span.begin);
    return Status::FailedPrecondition(fmt::format(
        "{}:{}:{}: {} '{}': the daemon does not run counters and aggregates yet (cepheus replay and cepheus test "
        "do); keep them out of the daemon's rules.path",
        file->name(), at.line, at.col, what, name));
  };
  for (const auto& c : rules.source->counters) return refuse(c.file, c.name_span, "counter", c.name);
  for (const auto& a : rules.source->aggregates) return refuse(a.file, a.name_span, "aggregate", a.name);
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

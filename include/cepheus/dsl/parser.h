// Entry point of the dsl module: rule files in, a checked RuleSet out.
//
//   DiagnosticSink diags;
//   auto set = dsl::LoadRuleSet({"rules/"}, &diags);
//   if (!set) { std::cerr << diags.FormatAll(); ... }
//
// Reading, parsing (Spirit X3), lowering and semantic checks all report into
// the sink as compiler-style diagnostics; nothing throws.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cepheus/common/source.h"
#include "cepheus/dsl/rule.h"

namespace cepheus::dsl {

// Limits on rule text, so a hostile or broken file fails cleanly.
inline constexpr size_t kMaxRuleFileBytes = 1 << 20;  // 1 MiB per file
inline constexpr int kMaxExprDepth = 64;              // nesting of parentheses and operators
inline constexpr int kMaxSteps = 32;                  // steps in one pattern
inline constexpr int kMaxQuantifier = 100000;         // a step's {n} or {n,m} (grammar_def.h names it)
// Nodes of one expression (a filter, `where`, or an emit hole): operators,
// operands, call arguments and list items. Every walk over an expression
// (checker, compiler, evaluator, printer, explain) recurses at most this deep.
inline constexpr int kMaxExprNodes = 1024;
inline constexpr size_t kMaxStringBytes = 4096;       // one string literal, after escapes

// Parses and checks in-memory files as one set, appending their rules,
// tables and lists to `set`: declarations of every file first, so a rule may
// read a table or list declared in another file; names are unique across the
// set. Returns false when a file had errors (diagnostics are in `diags`).
bool ParseSources(std::vector<std::shared_ptr<const SourceFile>> files, RuleSet* set, DiagnosticSink* diags);
// ParseSources of one file.
bool ParseSource(std::shared_ptr<const SourceFile> file, RuleSet* set, DiagnosticSink* diags);

// Loads files and directories (all *.rules inside, sorted by name), then runs
// the checks that span files (duplicate rule names). Returns nullopt when any
// error was reported.
std::optional<RuleSet> LoadRuleSet(const std::vector<std::string>& paths, DiagnosticSink* diags);

// A text dump of the checked rules, one clause per line; used for golden tests.
std::string DumpRuleSet(const RuleSet& set);
std::string DumpExpr(const Expr& e);

}  // namespace cepheus::dsl

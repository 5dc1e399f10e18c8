// Loading a rule set: files and directories in, checked rules out.
//
// Files are read whole (bounded by kMaxRuleFileBytes), parsed by the X3
// grammar, lowered and checked per rule, and finally checked together for
// duplicate rule names. A directory contributes its *.rules files sorted by
// name, so the rule order (and therefore alert order) is deterministic.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"

#include "cepheus/common/file.h"
#include "dsl/checker.h"
#include "dsl/schema.h"
#include "dsl/grammar.h"

namespace cepheus::dsl {

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kLow: return "low";
    case Severity::kMedium: return "medium";
    case Severity::kHigh: return "high";
    case Severity::kCritical: return "critical";
  }
  return "medium";
}

const char* AggFnName(AggFn f) {
  switch (f) {
    case AggFn::kCount: return "count";
    case AggFn::kSum: return "sum";
    case AggFn::kAvg: return "avg";
    case AggFn::kMin: return "min";
    case AggFn::kMax: return "max";
    case AggFn::kDistinct: return "distinct";
  }
  return "count";
}

const char* SkipPolicyName(SkipPolicy s) {
  switch (s) {
    case SkipPolicy::kPastLast: return "past_last";
    case SkipPolicy::kToNext: return "to_next";
    case SkipPolicy::kNone: return "none";
  }
  return "past_last";
}

namespace {

// Names are unique across the set: rules, tables, lists, counters and aggregates together. Reports
// each declaration whose name an earlier one took.
void CheckNamesUnique(const RuleSet& set, DiagnosticSink* diags) {
  struct Decl {
    const SourceFile* file;
    Span span;
    const char* what;
  };
  std::map<std::string, Decl> first;
  auto add = [&](const std::string& name, const SourceFile* file, Span span, const char* what) {
    auto [it, fresh] = first.emplace(name, Decl{file, span, what});
    if (fresh) return;
    auto at = it->second.file->Locate(it->second.span.begin);
    diags->Error(file, span,
                 fmt::format("{} name '{}' is already used by a {} at {}:{}:{}", what, name, it->second.what,
                             it->second.file->name(), at.line, at.col));
  };
  // In file order, so "already used" points at the earlier declaration.
  for (const auto& f : set.files) {
    for (const auto& t : set.tables) {
      if (t.file == f.get()) add(t.name, t.file, t.name_span, "table");
    }
    for (const auto& l : set.lists) {
      if (l.file == f.get()) add(l.name, l.file, l.name_span, "list");
    }
    for (const auto& c : set.counters) {
      if (c.file == f.get()) add(c.name, c.file, c.name_span, "counter");
    }
    for (const auto& a : set.aggregates) {
      if (a.file == f.get()) add(a.name, a.file, a.name_span, "aggregate");
    }
    for (const auto& r : set.rules) {
      if (r.file == f.get()) add(r.name, r.file, r.name_span, "rule");
    }
  }
}

}  // namespace

bool ParseSources(std::vector<std::shared_ptr<const SourceFile>> files, RuleSet* set, DiagnosticSink* diags) {
  int errors_before = diags->error_count();
  std::vector<std::pair<const SourceFile*, ast::File>> parsed;
  for (auto& file : files) {
    diags->Retain(file);
    const SourceFile& f = *file;
    set->files.push_back(std::move(file));
    if (f.text().size() > kMaxRuleFileBytes) {
      diags->Error(&f, {0, 0}, fmt::format("rule file is larger than the {} byte limit", kMaxRuleFileBytes));
      continue;
    }
    if (f.text().find('\0') != std::string::npos) {
      auto at = static_cast<uint32_t>(f.text().find('\0'));
      diags->Error(&f, {at, at + 1}, "rule file contains a NUL byte");
      continue;
    }
    parsed.emplace_back(&f, ParseFile(f, diags));
  }
  // Event types first (every declaration reads them), then the other
  // declarations, so a rule may read a table or a list of any file.
  for (const auto& [f, p] : parsed) CheckEventDeclarations(*f, p.events, set, diags);
  for (const auto& [f, p] : parsed) CheckDeclarations(*f, p, set, diags);
  for (const auto& [f, p] : parsed) CheckRules(*f, p.rules, set, diags);
  CheckNamesUnique(*set, diags);
  return diags->error_count() == errors_before;
}

bool ParseSource(std::shared_ptr<const SourceFile> file, RuleSet* set, DiagnosticSink* diags) {
  return ParseSources({std::move(file)}, set, diags);
}

std::optional<RuleSet> LoadRuleSet(const std::vector<std::string>& paths, DiagnosticSink* diags) {
  namespace fs = std::filesystem;
  RuleSet set;
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (entry.path().extension() == ".rules" && entry.is_regular_file()) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        diags->Error(nullptr, {}, fmt::format("{}: no .rules files in this directory", p));
      }
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      diags->Error(nullptr, {}, fmt::format("{}: no such file or directory", p));
    }
  }
  std::vector<std::shared_ptr<const SourceFile>> sources;
  for (const auto& name : files) {
    std::string text;
    if (Status st = ReadWholeFile(name, &text, 0, kMaxRuleFileBytes); !st.ok()) {
      // Past the limit the read stops (a rule path that is /dev/zero or a
      // pipe that never ends costs the limit, not all memory).
      diags->Error(nullptr, {},
                   st.code() == Status::Code::kLimitExceeded
                       ? fmt::format("{}: rule file is larger than the {} byte limit", name, kMaxRuleFileBytes)
                       : st.message());
      continue;
    }
    sources.push_back(std::make_shared<const SourceFile>(name, std::move(text)));
  }
  ParseSources(std::move(sources), &set, diags);
  if (diags->has_errors()) return std::nullopt;
  return set;
}

}  // namespace cepheus::dsl

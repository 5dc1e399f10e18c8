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

const char* SkipPolicyName(SkipPolicy s) {
  switch (s) {
    case SkipPolicy::kPastLast: return "past_last";
    case SkipPolicy::kToNext: return "to_next";
    case SkipPolicy::kNone: return "none";
  }
  return "past_last";
}

bool ParseSource(std::shared_ptr<const SourceFile> file, RuleSet* set, DiagnosticSink* diags) {
  diags->Retain(file);
  int errors_before = diags->error_count();
  if (file->text().size() > kMaxRuleFileBytes) {
    diags->Error(file.get(), {0, 0},
                 fmt::format("rule file is larger than the {} byte limit", kMaxRuleFileBytes));
    set->files.push_back(std::move(file));
    return false;
  }
  if (file->text().find('\0') != std::string::npos) {
    auto at = static_cast<uint32_t>(file->text().find('\0'));
    diags->Error(file.get(), {at, at + 1}, "rule file contains a NUL byte");
    set->files.push_back(std::move(file));
    return false;
  }
  const SourceFile& f = *file;
  set->files.push_back(std::move(file));
  auto parsed = ParseRules(f, diags);
  size_t first_new = set->rules.size();
  CheckRules(f, parsed, set, diags);
  // Names are unique across the whole set, this file's rules included.
  for (size_t i = first_new; i < set->rules.size(); ++i) {
    const Rule& r = set->rules[i];
    for (size_t j = 0; j < i; ++j) {
      const Rule& prev = set->rules[j];
      if (prev.name != r.name) continue;
      auto at = prev.file->Locate(prev.name_span.begin);
      diags->Error(r.file, r.name_span,
                   fmt::format("rule name '{}' is already used at {}:{}:{}", r.name, prev.file->name(),
                               at.line, at.col));
      break;
    }
  }
  return diags->error_count() == errors_before;
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
    ParseSource(std::make_shared<const SourceFile>(name, std::move(text)), &set, diags);
  }
  if (diags->has_errors()) return std::nullopt;
  return set;
}

}  // namespace cepheus::dsl

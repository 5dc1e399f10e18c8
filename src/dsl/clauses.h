// The clause keywords of a rule (section 2 of the rule-language spec): the
// one list the grammar (what may not be an event type, where error recovery
// resumes), the parser's "unknown clause" message and the checker's
// "required" check read. Each keyword's argument is parsed by its own
// alternative of grammar_def.h's `clause`; a unit test parses every keyword
// here through it.
#pragma once

#include <string>
#include <string_view>

namespace cepheus::dsl {

struct ClauseKeyword {
  std::string_view word;
  bool required;
};

inline constexpr ClauseKeyword kClauses[] = {
    {"description", false}, {"severity", false}, {"key", true},       {"match", true},
    {"where", false},       {"within", true},     {"skip", false},    {"cooldown", false},
    {"limit", false},       {"emit", false},      {"tags", false},    {"fields", false},
};

// The words that start a declaration at the top of a file.
inline constexpr const char* kDeclarations[] = {"rule", "table", "list", "counter", "aggregate", "event"};

// "a, b or c" for a message: every clause keyword, or the required ones
// ("key, match and within").
inline std::string ClauseList(bool required_only) {
  std::string out;
  size_t n = 0, total = 0;
  for (const auto& c : kClauses) total += !required_only || c.required;
  for (const auto& c : kClauses) {
    if (required_only && !c.required) continue;
    if (n > 0) out += n + 1 == total ? (required_only ? " and " : " or ") : ", ";
    out += c.word;
    ++n;
  }
  return out;
}

}  // namespace cepheus::dsl

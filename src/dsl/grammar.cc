// Instantiates the X3 grammar and drives it over one file.
//
// The driver parses one `rule` at a time so it can recover: after a syntax
// error it reports it and jumps to the next line whose first word is `rule`.
// X3 on Boost 1.74 reports expectation failures by exception; they are caught
// here, once, and turned into diagnostics. Before parsing, a linear pre-scan
// bounds the nesting of brackets (kMaxExprDepth) so a hostile file cannot
// exhaust the stack of the recursive-descent parser.
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "dsl/grammar.h"
#include "dsl/clauses.h"
#include "dsl/grammar_def.h"

namespace cepheus::dsl {
namespace {

namespace x3 = boost::spirit::x3;

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The token at `p`, for "found '...'" in messages.
std::string TokenAt(const char* p, const char* end) {
  if (p >= end) return "end of file";
  const char* q = p;
  if (IsWordChar(*q)) {
    while (q < end && IsWordChar(*q) && q - p < 40) ++q;
  } else if (*q == '\n' || *q == '\r') {
    return "end of line";
  } else {
    ++q;
  }
  return fmt::format("'{}'", std::string(p, q));
}

bool AtWord(const char* p, const char* end, std::string_view w) {
  if (static_cast<size_t>(end - p) < w.size() || std::string_view(p, w.size()) != w) return false;
  return p + w.size() == end || !IsWordChar(p[w.size()]);
}

const char* SkipSpace(const char* p, const char* end) {
  x3::parse(p, end, *grammar::skipper);
  return p;
}

bool AtClause(const char* p, const char* end) {
  for (const auto& c : kClauses) {
    if (AtWord(p, end, c.word)) return true;
  }
  return false;
}

// The first word of the next line that starts with `rule` (or, when
// `clauses` is set, with a clause keyword), or `end`.
const char* NextLine(const char* p, const char* end, bool clauses) {
  while (p < end) {
    while (p < end && *p != '\n') ++p;
    if (p < end) ++p;
    const char* q = p;
    while (q < end && (*q == ' ' || *q == '\t')) ++q;
    if (AtWord(q, end, "rule") || (clauses && AtClause(q, end))) return q;
  }
  return end;
}

// What a rule file may hold: outside strings and comments, printable ASCII,
// tabs and line ends (the grammar's character classes are ASCII's; a
// non-ASCII byte there was undefined behaviour); inside strings and comments
// also UTF-8 characters. Never a control byte, nor bytes that are not UTF-8.
// Returns the first byte out of place (and why), or nullptr.
const char* BadCharacter(const char* p, const char* end, std::string* why) {
  bool in_string = false, in_comment = false;
  std::vector<bool> brackets;  // open brackets in code; true: a message's `{` hole
  for (; p < end; ++p) {
    auto c = static_cast<unsigned char>(*p);
    if (c == '\n') {
      in_comment = in_string = false;  // an unterminated string is the parser's to report
      continue;
    }
    if (c == '\t' || c == '\r') continue;
    if (c < 0x20 || c == 0x7F) {
      *why = fmt::format("control character U+{:04X} in the file (rule files are text)", c);
      return p;
    }
    if (c >= 0x80) {
      uint32_t cp = 0;
      size_t n = DecodeUtf8(p, end, &cp);
      if (n == 0) {
        *why = fmt::format("byte 0x{:02X} is not UTF-8 (rule files are UTF-8 text)", c);
        return p;
      }
      if (!in_string && !in_comment) {
        *why = fmt::format("'{}' (U+{:04X}) outside a string or a comment: names, keywords and operators are ASCII",
                           std::string(p, n), cp);
        return p;
      }
      p += n - 1;
      continue;
    }
    if (in_comment) continue;
    if (in_string) {
      if (c == '\\' && p + 1 < end && static_cast<unsigned char>(p[1]) >= 0x20 &&
          static_cast<unsigned char>(p[1]) < 0x80) {
        ++p;
      } else if (c == '"') {
        in_string = false;
      } else if (c == '{' && p + 1 < end && p[1] == '{') {
        ++p;
      } else if (c == '{') {
        in_string = false;
        brackets.push_back(true);
      }
      continue;
    }
    if (c == '#') {
      in_comment = true;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(false);
    } else if ((c == ')' || c == ']' || c == '}') && !brackets.empty()) {
      bool hole = brackets.back();
      brackets.pop_back();
      if (hole && c == '}') in_string = true;
    }
  }
  return nullptr;
}

// Finds the first place where the recursive-descent parser would recurse
// deeper than the limit: brackets nested too deep (counting the `{...}` holes
// of messages and the brackets inside them), or too many prefix operators in a
// row (`- - - x`, `not not x`), which the grammar also parses by recursion.
// Returns nullptr when the file is within the limit.
const char* TooDeep(const char* p, const char* end) {
  // Each frame is a code context; `hole` frames were opened by '{' in a string
  // and close back into that string.
  struct Frame {
    bool hole;
  };
  std::vector<Frame> stack;
  int depth = 0;
  int prefix_run = 0;
  bool in_string = false;
  for (; p < end; ++p) {
    char c = *p;
    if (in_string) {
      if (c == '\\' && p + 1 < end) {
        ++p;
      } else if (c == '"' || c == '\n') {
        in_string = false;
      } else if (c == '{' && p + 1 < end && p[1] == '{') {
        ++p;  // a literal brace
      } else if (c == '{') {
        in_string = false;
        stack.push_back({true});
        if (++depth > kMaxExprDepth) return p;
      }
      continue;
    }
    if (c == '#') {
      while (p < end && *p != '\n') ++p;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '-' || (c == 'n' && AtWord(p, end, "not"))) {
      if (++prefix_run > kMaxExprDepth) return p;
      if (c == 'n') p += 2;
      continue;
    }
    prefix_run = 0;
    if (c == '"') {
      in_string = true;
    } else if (c == '(' || c == '[' || c == '{') {
      stack.push_back({false});
      if (++depth > kMaxExprDepth) return p;
    } else if (c == ')' || c == ']' || c == '}') {
      if (!stack.empty()) {
        bool hole = stack.back().hole;
        stack.pop_back();
        --depth;
        if (hole && c == '}') in_string = true;  // back into the message
      }
    }
  }
  return nullptr;
}

}  // namespace

std::vector<ast::Rule> ParseRules(const SourceFile& file, DiagnosticSink* diags) {
  std::vector<ast::Rule> rules;
  const char* base = file.text().data();
  const char* end = base + file.text().size();
  auto offset = [&](const char* p) { return static_cast<uint32_t>(p - base); };
  auto error_at = [&](const char* p, std::string msg) {
    const char* q = p;
    while (q < end && IsWordChar(*q)) ++q;
    diags->Error(&file, {offset(p), offset(q == p ? p + 1 : q)}, std::move(msg));
  };

  std::string why;
  if (const char* bad = BadCharacter(base, end, &why)) {
    diags->Error(&file, {offset(bad), offset(bad) + 1}, why);
    return rules;
  }
  if (const char* deep = TooDeep(base, end)) {
    error_at(deep, fmt::format("expressions nest deeper than {} levels (brackets, or prefix operators "
                               "such as - and not in a row)",
                               kMaxExprDepth));
    return rules;
  }

  auto report = [&](const x3::expectation_failure<grammar::iterator_type>& e) {
    const std::string& which = e.which();
    if (!which.empty() && which[0] == '!') {
      error_at(e.where(), which.substr(1));  // points at the opening quote
    } else {
      const char* at = e.where();
      while (at < end && (*at == ' ' || *at == '\t')) ++at;
      error_at(at, fmt::format("expected {}, found {}", which, TokenAt(at, end)));
    }
  };
  const auto rule_parser = x3::with<grammar::source_base_tag>(base)[grammar::rule_];
  const auto clauses_parser = x3::with<grammar::source_base_tag>(base)[*grammar::clause];
  const char* p = SkipSpace(base, end);
  while (p < end) {
    if (!AtWord(p, end, "rule")) {
      error_at(p, fmt::format("expected 'rule', found {}", TokenAt(p, end)));
      p = NextLine(p, end, false);
      continue;
    }
    ast::Rule rule;
    bool broken = false;  // a clause failed to parse: do not check the rule
    const char* it = p;
    try {
      x3::phrase_parse(it, end, rule_parser, grammar::skipper, rule);
    } catch (const x3::expectation_failure<grammar::iterator_type>& e) {
      report(e);
      broken = true;
      it = NextLine(e.where(), end, true);
    }
    // Resume after errors at the next clause of the same rule.
    for (it = SkipSpace(it, end); it < end && !AtWord(it, end, "rule"); it = SkipSpace(it, end)) {
      if (AtClause(it, end)) {
        try {
          x3::phrase_parse(it, end, clauses_parser, grammar::skipper, rule.clauses);
        } catch (const x3::expectation_failure<grammar::iterator_type>& e) {
          report(e);
          broken = true;
          it = NextLine(e.where(), end, true);
        }
        continue;
      }
      if (IsWordChar(*it)) {
        error_at(it, fmt::format("unknown clause {} (expected {})", TokenAt(it, end), ClauseList(false)));
      } else {
        error_at(it, fmt::format("unexpected {} after a clause", TokenAt(it, end)));
      }
      it = NextLine(it, end, true);
    }
    if (!broken) rules.push_back(std::move(rule));
    p = it;
  }
  return rules;
}

}  // namespace cepheus::dsl

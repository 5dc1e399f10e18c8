// Instantiates the X3 grammar and drives it over one file.
//
// The driver parses one declaration (`rule`, `table`, `list`) at a time so it
// can recover: after a syntax error it reports it and jumps to the next line
// that starts a declaration (or, inside a rule, a clause).
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

// True at a word that starts a declaration (rule, table, list).
bool AtDeclaration(const char* p, const char* end) {
  for (const char* w : kDeclarations) {
    if (AtWord(p, end, w)) return true;
  }
  return false;
}

// The first word of the next line that starts a declaration (or, when
// `clauses` is set, with a clause keyword), or `end`.
const char* NextLine(const char* p, const char* end, bool clauses) {
  while (p < end) {
    while (p < end && *p != '\n') ++p;
    if (p < end) ++p;
    const char* q = p;
    while (q < end && (*q == ' ' || *q == '\t')) ++q;
    if (AtDeclaration(q, end) || (clauses && AtClause(q, end))) return q;
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
  bool single = false;  // the string is in single quotes: no holes
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
      } else if (c == (single ? '\'' : '"')) {
        in_string = false;
      } else if (single) {
        continue;
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
    } else if (c == '"' || c == '\'') {
      in_string = true;
      single = c == '\'';
    } else if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(false);
    } else if ((c == ')' || c == ']' || c == '}') && !brackets.empty()) {
      bool hole = brackets.back();
      brackets.pop_back();
      if (hole && c == '}') in_string = true, single = false;
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
  bool single = false;  // in single quotes: no holes
  for (; p < end; ++p) {
    char c = *p;
    if (in_string) {
      if (c == '\\' && p + 1 < end) {
        ++p;
      } else if (c == (single ? '\'' : '"') || c == '\n') {
        in_string = false;
      } else if (single) {
        continue;
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
    if (c == '"' || c == '\'') {
      in_string = true;
      single = c == '\'';
    } else if (c == '(' || c == '[' || c == '{') {
      stack.push_back({false});
      if (++depth > kMaxExprDepth) return p;
    } else if (c == ')' || c == ']' || c == '}') {
      if (!stack.empty()) {
        bool hole = stack.back().hole;
        stack.pop_back();
        --depth;
        if (hole && c == '}') in_string = true, single = false;  // back into the message
      }
    }
  }
  return nullptr;
}

// The driver over one file: declarations one at a time, each parsed whole or
// reported and skipped to where parsing can resume.
class FileParser {
 public:
  FileParser(const SourceFile& file, DiagnosticSink* diags)
      : file_(file), diags_(diags), base_(file.text().data()), end_(base_ + file.text().size()) {}

  ast::File Parse() {
    ast::File out;
    std::string why;
    if (const char* bad = BadCharacter(base_, end_, &why)) {
      diags_->Error(&file_, {Offset(bad), Offset(bad) + 1}, why);
      return out;
    }
    if (const char* deep = TooDeep(base_, end_)) {
      ErrorAt(deep, fmt::format("expressions nest deeper than {} levels (brackets, or prefix operators "
                                "such as - and not in a row)",
                                kMaxExprDepth));
      return out;
    }
    const auto table_parser = x3::with<grammar::source_base_tag>(base_)[grammar::table_];
    const auto list_parser = x3::with<grammar::source_base_tag>(base_)[grammar::named_list];
    const auto counter_parser = x3::with<grammar::source_base_tag>(base_)[grammar::counter_];
    const auto aggregate_parser = x3::with<grammar::source_base_tag>(base_)[grammar::aggregate_];
    const auto event_parser = x3::with<grammar::source_base_tag>(base_)[grammar::event_decl];
    const char* p = SkipSpace(base_, end_);
    while (p < end_) {
      if (AtWord(p, end_, "table")) {
        p = Declaration(p, table_parser, &out.tables);
      } else if (AtWord(p, end_, "list")) {
        p = Declaration(p, list_parser, &out.lists);
      } else if (AtWord(p, end_, "counter")) {
        p = Declaration(p, counter_parser, &out.counters);
      } else if (AtWord(p, end_, "aggregate")) {
        p = Declaration(p, aggregate_parser, &out.aggregates);
      } else if (AtWord(p, end_, "event")) {
        p = Declaration(p, event_parser, &out.events);
      } else if (AtWord(p, end_, "rule")) {
        p = Rule(p, &out.rules);
      } else {
        ErrorAt(p, fmt::format("expected 'rule', 'table', 'list', 'counter', 'aggregate' or 'event', found {}",
                               TokenAt(p, end_)));
        p = NextLine(p, end_, false);
      }
    }
    return out;
  }

 private:
  uint32_t Offset(const char* p) const { return static_cast<uint32_t>(p - base_); }

  void ErrorAt(const char* p, std::string msg) {
    const char* q = p;
    while (q < end_ && IsWordChar(*q)) ++q;
    diags_->Error(&file_, {Offset(p), Offset(q == p ? p + 1 : q)}, std::move(msg));
  }

  void Report(const x3::expectation_failure<grammar::iterator_type>& e) {
    const std::string& which = e.which();
    if (!which.empty() && which[0] == '!') {
      ErrorAt(e.where(), which.substr(1));  // points at the opening quote
    } else {
      const char* at = e.where();
      while (at < end_ && (*at == ' ' || *at == '\t')) ++at;
      ErrorAt(at, fmt::format("expected {}, found {}", which, TokenAt(at, end_)));
    }
  }

  // A table, list, counter or aggregate declaration; returns where the next one starts.
  template <class Parser, class Decl>
  const char* Declaration(const char* p, const Parser& parser, std::vector<Decl>* into) {
    Decl decl;
    const char* it = p;
    try {
      x3::phrase_parse(it, end_, parser, grammar::skipper, decl);
    } catch (const x3::expectation_failure<grammar::iterator_type>& e) {
      Report(e);
      return NextLine(e.where(), end_, false);
    }
    it = SkipSpace(it, end_);
    if (it < end_ && !AtDeclaration(it, end_)) {
      const char* what = AtWord(p, end_, "table")     ? "table"
                         : AtWord(p, end_, "list")    ? "list"
                         : AtWord(p, end_, "counter") ? "counter"
                         : AtWord(p, end_, "event")   ? "event"
                                                      : "aggregate";
      ErrorAt(it, fmt::format("unexpected {} in a {} declaration", TokenAt(it, end_), what));
      return NextLine(it, end_, false);
    }
    into->push_back(std::move(decl));
    return it;
  }

  // A rule: after an error, parsing resumes at the next clause of the same
  // rule, so one typo does not hide the others; a rule with a clause that
  // failed to parse is not kept (nor checked).
  const char* Rule(const char* p, std::vector<ast::Rule>* rules) {
    const auto rule_parser = x3::with<grammar::source_base_tag>(base_)[grammar::rule_];
    const auto clauses_parser = x3::with<grammar::source_base_tag>(base_)[*grammar::clause];
    ast::Rule rule;
    bool broken = false;
    const char* it = p;
    try {
      x3::phrase_parse(it, end_, rule_parser, grammar::skipper, rule);
    } catch (const x3::expectation_failure<grammar::iterator_type>& e) {
      Report(e);
      broken = true;
      it = NextLine(e.where(), end_, true);
    }
    for (it = SkipSpace(it, end_); it < end_ && !AtDeclaration(it, end_); it = SkipSpace(it, end_)) {
      if (AtClause(it, end_)) {
        try {
          x3::phrase_parse(it, end_, clauses_parser, grammar::skipper, rule.clauses);
        } catch (const x3::expectation_failure<grammar::iterator_type>& e) {
          Report(e);
          broken = true;
          it = NextLine(e.where(), end_, true);
        }
        continue;
      }
      if (IsWordChar(*it)) {
        ErrorAt(it, fmt::format("unknown clause {} (expected {})", TokenAt(it, end_), ClauseList(false)));
      } else {
        ErrorAt(it, fmt::format("unexpected {} after a clause", TokenAt(it, end_)));
      }
      it = NextLine(it, end_, true);
    }
    if (!broken) rules->push_back(std::move(rule));
    return it;
  }

  const SourceFile& file_;
  DiagnosticSink* diags_;
  const char* base_;
  const char* end_;
};

}  // namespace

ast::File ParseFile(const SourceFile& file, DiagnosticSink* diags) { return FileParser(file, diags).Parse(); }

}  // namespace cepheus::dsl

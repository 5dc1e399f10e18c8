// libFuzzer target for the checker and the compiler on deep and long
// expressions (build with -DCEPHEUS_FUZZ=ON and clang).
//
// Random bytes rarely spell an expression of a thousand terms, so the input
// is a recipe instead: pairs of bytes (piece, count), each appending one
// piece of expression text up to 256 times -- an operand with a binary operator of some
// precedence level, a unary operator, an opening bracket, a call, a list, a
// string literal (64 KiB of text at most). Brackets left open are closed at the
// end, so most recipes parse, and the checker, the compiler and the program
// printer then walk ASTs around the expression limits (kMaxExprNodes, the
// nesting depth, the string length): each must either compile the rule or
// refuse it with a diagnostic, never crash or recurse without bound. The
// expression goes into a filter, a `where` and an emit hole in turn.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cepheus/dsl/parser.h"
#include "cepheus/nfa/program.h"

namespace {

struct Piece {
  const char* text;
  const char* close;  // what closes it at the end ("" if nothing)
};

// Operands end with a binary operator, so any run of them stays an
// expression; the recipe's end appends a last operand.
constexpr Piece kPieces[] = {
    {"1 + ", ""},       {"a.amount - ", ""},  {"2 * ", ""},          {"x / ", ""},
    {"1 < ", ""},       {"1 == ", ""},        {"\"s\" != ", ""},     {"true and ", ""},
    {"false or ", ""},  {"not ", ""},         {"-", ""},             {"(", ")"},
    {"abs(", ")"},      {"lower(", ")"},      {"[1, ", "]"},         {"x in [", "]"},
    {"first(a.amount) + ", ""}, {"len(\"", "\")"}, {"\"abcdefghijklmnopqrstuvwxyz", "\" == \"\""},
    {"country not in a.country or ", ""},
};

std::string Expression(const uint8_t* data, size_t size) {
  std::string e;
  std::vector<const char*> open;
  for (size_t i = 0; i + 1 < size; i += 2) {
    const Piece& p = kPieces[data[i] % (sizeof kPieces / sizeof kPieces[0])];
    int times = 1 + data[i + 1];  // up to 256
    for (int t = 0; t < times && e.size() < (64u << 10); ++t) {
      e += p.text;
      if (*p.close) open.push_back(p.close);
    }
  }
  e += "1";
  for (auto it = open.rbegin(); it != open.rend(); ++it) e += *it;
  return e;
}

void CompileText(std::string text) {
  cepheus::DiagnosticSink diags;
  cepheus::dsl::RuleSet set;
  auto file = std::make_shared<const cepheus::SourceFile>("fuzz.rules", std::move(text));
  if (cepheus::dsl::ParseSource(file, &set, &diags)) {
    auto compiled = cepheus::nfa::Compile(std::make_shared<const cepheus::dsl::RuleSet>(std::move(set)));
    if (compiled.ok()) {
      for (const auto& p : compiled.value()->programs) (void)cepheus::nfa::DumpProgram(*p, compiled.value()->fields);
    }
  } else {
    (void)diags.FormatAll();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string e = Expression(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      CompileText("rule r\n  key user_id\n  match a: order[" + e + "] -> b: order\n  within 1m\n");
      break;
    case 1:
      CompileText("rule r\n  key user_id\n  match a: order -> b: order\n  where " + e + "\n  within 1m\n");
      break;
    default:
      CompileText("rule r\n  key user_id\n  match a: order\n  emit \"v={" + e + "}\"\n  within 1m\n");
      break;
  }
  return 0;
}

// The limits on one expression's size and nesting, at the limit and one past
// it, for every kind of growth: a binary chain at each precedence level,
// comparisons joined by `and`, unary chains, brackets, lists and strings.
// At the limit a rule goes through every walk over its expression (checker,
// printer, compiler, program dump, evaluation of an event); one past it, the
// file is refused with a located message, and nothing deep is built.
#include <doctest/doctest.h>

#include <string>

#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "test_util.h"

using namespace cepheus;

namespace {

struct Outcome {
  bool ok = false;
  std::string diagnostics;
  size_t alerts = 0;
};

// Checks, prints, compiles, dumps and runs `rule r key user_id match o: order
// where WHERE within 1m` over one order.
Outcome Run(const std::string& where) {
  Outcome out;
  std::string text = "rule r\n  key user_id\n  match o: order\n  where " + where + "\n  within 1m\n";
  auto set = std::make_shared<dsl::RuleSet>();
  DiagnosticSink diags;
  out.ok = dsl::ParseSource(std::make_shared<const SourceFile>("limits.rules", text), set.get(), &diags);
  out.diagnostics = diags.FormatAll();
  if (!out.ok) return out;
  CHECK(!dsl::DumpRuleSet(*set).empty());
  auto compiled = nfa::Compile(set);
  REQUIRE(compiled.ok());
  CHECK(!nfa::DumpProgram(*compiled.value()->programs[0], compiled.value()->fields).empty());
  engine::EventDecoder decoder(compiled.value(), {});
  engine::CollectingSink sink;
  engine::Engine eng(compiled.value(), {}, &sink);
  eng.Push(decoder.Decode(R"({"id":"a","type":"order","ts":1,"user_id":"u"})", {}).value());
  eng.Finish();
  out.alerts = sink.alerts.size();
  return out;
}

// `first OP x OP x ...` with exactly `nodes` nodes (operands and operators),
// the first operand prefixed by `unary` when the count needs one more node.
std::string Chain(int nodes, const std::string& op, const std::string& x, const std::string& unary) {
  std::string e;
  int operands = (nodes + 1) / 2;
  if (nodes % 2 == 0) e = unary;  // 2k nodes: k operands, k - 1 operators, one unary
  for (int i = 0; i < operands; ++i) e += (i ? " " + op + " " : "") + x;
  return e;
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

const std::string kTooLarge = "expression too large: more than 1024 operators, operands and list items";

}  // namespace

TEST_CASE("a binary chain at each precedence level is accepted at the node limit and refused one past it") {
  struct Level {
    const char* op;
    std::string where_of_nodes(int n) const {
      std::string o = op;
      if (o == "or" || o == "and") return Chain(n, o, "true", "not ");
      return Chain(n - 2, o, "1", "-") + " != 0";  // `!= 0` adds two nodes
    }
  };
  for (const char* op : {"or", "and", "+", "-", "*", "/"}) {
    Level level{op};
    INFO("operator: " << op);
    Outcome at = Run(level.where_of_nodes(dsl::kMaxExprNodes));
    INFO(at.diagnostics);
    CHECK(at.ok);
    Outcome past = Run(level.where_of_nodes(dsl::kMaxExprNodes + 1));
    CHECK_FALSE(past.ok);
    CHECK(past.diagnostics.find(kTooLarge) != std::string::npos);
    CHECK(past.diagnostics.find("limits.rules:4:") != std::string::npos);  // located on the where line
  }
}

TEST_CASE("comparisons joined by and count toward the same limit") {
  // `1 == 1` is three nodes and each `and` one: 256 comparisons are 1023.
  std::string cmp;
  for (int i = 0; i < 256; ++i) cmp += (i ? " and " : "") + std::string("1 == 1");
  Outcome at = Run("not " + cmp);  // 1024
  INFO(at.diagnostics);
  CHECK(at.ok);
  Outcome past = Run(cmp + " and true");  // 1025
  CHECK_FALSE(past.ok);
  CHECK(past.diagnostics.find(kTooLarge) != std::string::npos);
}

TEST_CASE("the 25 000-term sum that overflowed the stack is refused with a located message") {
  Outcome past = Run(Chain(2 * 25000 - 1, "+", "1", "-") + " > 0");
  CHECK_FALSE(past.ok);
  CHECK(past.diagnostics.find(kTooLarge) != std::string::npos);
}

TEST_CASE("unary chains and brackets are accepted at the nesting limit and refused one past it") {
  const int n = dsl::kMaxExprDepth;
  CHECK(Run(Repeat("not ", n) + "false").ok == true);
  CHECK(Run(Repeat("- ", n) + "1 != 0").ok == true);
  CHECK(Run(Repeat("(", n) + "true" + Repeat(")", n)).ok == true);
  for (const std::string& past : {Repeat("not ", n + 1) + "false", Repeat("- ", n + 1) + "1 != 0",
                                  Repeat("(", n + 1) + "true" + Repeat(")", n + 1)}) {
    Outcome o = Run(past);
    CHECK_FALSE(o.ok);
    CHECK(o.diagnostics.find("expressions nest deeper than 64 levels") != std::string::npos);
  }
}

TEST_CASE("a list is accepted up to the node limit and refused one item past it") {
  // `1 in [items]`: the `in`, the 1 and the list are three nodes.
  auto list = [](int items) {
    std::string e = "1 in [";
    for (int i = 0; i < items; ++i) e += (i ? ", " : "") + std::to_string(i);
    return e + "]";
  };
  Outcome at = Run(list(dsl::kMaxExprNodes - 3));
  CHECK(at.ok);
  CHECK(at.alerts == 1);  // 1 is in the list: the evaluator walked it
  Outcome past = Run(list(dsl::kMaxExprNodes - 2));
  CHECK_FALSE(past.ok);
  CHECK(past.diagnostics.find(kTooLarge) != std::string::npos);
}

TEST_CASE("a string literal is accepted at the byte limit and refused one byte past it") {
  std::string at(dsl::kMaxStringBytes, 'a');
  Outcome ok = Run("\"" + at + "\" != \"b\"");
  CHECK(ok.ok);
  CHECK(ok.alerts == 1);
  Outcome past = Run("\"" + at + "a\" != \"b\"");
  CHECK_FALSE(past.ok);
  CHECK(past.diagnostics.find("a string is 4097 bytes long; the limit is 4096") != std::string::npos);
}

TEST_CASE("a rule whose expressions together pass the compiled node limit is refused with its file and line") {
  std::string match;
  for (int i = 0; i < 5; ++i) match += (i ? " -> s" : "s") + std::to_string(i) + ": order[" + Chain(999, "+", "1", "-") + " > 0]";
  std::string text = "# five filters of 1001 nodes each\nrule big\n  key user_id\n  match " + match + "\n  within 1m\n";
  auto set = std::make_shared<dsl::RuleSet>();
  DiagnosticSink diags;
  REQUIRE(dsl::ParseSource(std::make_shared<const SourceFile>("big.rules", text), set.get(), &diags));
  auto compiled = nfa::Compile(set);
  REQUIRE_FALSE(compiled.ok());
  CHECK(compiled.status().message().rfind("big.rules:2:1: rule 'big' compiles to more than 4096 expression nodes", 0) ==
        0);
}

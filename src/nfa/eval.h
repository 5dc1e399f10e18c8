// Internal: evaluation of compiled expressions.
#pragma once

#include <deque>
#include <string>

#include "cepheus/nfa/matcher.h"

namespace cepheus::nfa {

// What an expression can see: the current event (in a filter) and the run's
// bindings (either may be null), and the tables as of `at` (the current
// event's time in a filter; in `where` and `emit`, the match's last bound
// event's, or for an absence the deadline).
struct EvalContext {
  const Event* current = nullptr;
  const Run* run = nullptr;
  const TableReader* tables = nullptr;
  Millis at = 0;
  const CounterReader* counters = nullptr;  // the key's counters (section 6.2)
};

// An empty expression is true; otherwise only a `true` result is.
bool EvaluateCondition(const CompiledExpr& expr, const EvalContext& ctx);
// Why a condition is not true, with the false sub-expression as written in
// `file` and its values (for `cepheus trace`); "" for an empty condition.
std::string ExplainFalse(const CompiledExpr& expr, const EvalContext& ctx, const SourceFile* file);
// The value as alert-message text ("FR, DE" for a list).
std::string EvaluateToText(const CompiledExpr& expr, const EvalContext& ctx, const NumberFormat* format = nullptr);

}  // namespace cepheus::nfa

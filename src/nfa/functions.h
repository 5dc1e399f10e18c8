// Internal: the scalar functions of the rule language (dsl/functions.h), on
// values already evaluated. if() and coalesce() are lazy and live in the
// evaluator; the rest are here.
#pragma once

#include <memory>
#include <span>

#include <absl/time/time.h>
#include <re2/re2.h>

#include "cepheus/nfa/program.h"

namespace cepheus::nfa {

struct FunctionData {
  std::unique_ptr<const re2::RE2> regex;  // matches()
  absl::TimeZone zone;                    // hour(), weekday(): UTC unless a zone is given
};

// What a call to `fn` compiles once from its literal argument (the checker
// has vetted it), or null when the function needs nothing.
std::shared_ptr<const FunctionData> MakeFunctionData(dsl::ScalarFn fn, const dsl::Expr* literal);

// `fn` over `args`. Strings it returns are views into an argument's string
// (or held in the Value when short), so nothing is allocated.
// REQUIRES: fn is neither kIf nor kCoalesce.
Value CallScalar(dsl::ScalarFn fn, const FunctionData* data, std::span<const Value> args);

}  // namespace cepheus::nfa

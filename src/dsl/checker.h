// Internal: lowers parsed rules of one file into checked dsl::Rule values.
#pragma once

#include <vector>

#include "cepheus/dsl/rule.h"
#include "dsl/ast.h"

namespace cepheus::dsl {

// Appends the rules that pass every check to `set`; reports the others to
// `diags`. Returns false when any rule had an error.
bool CheckRules(const SourceFile& file, const std::vector<ast::Rule>& parsed, RuleSet* set,
                DiagnosticSink* diags);

}  // namespace cepheus::dsl

// Internal: lowers parsed rules of one file into checked dsl::Rule values.
#pragma once

#include <vector>

#include "cepheus/dsl/rule.h"
#include "dsl/ast.h"

namespace cepheus::dsl {

// Appends the tables and lists of one file to `set` (checked alone; names
// are checked across the set by the parser). Returns false on an error.
bool CheckDeclarations(const SourceFile& file, const ast::File& parsed, RuleSet* set, DiagnosticSink* diags);

// Appends the rules that pass every check to `set`, whose tables and lists
// they may read; reports the others to `diags`. Returns false when any rule
// had an error.
bool CheckRules(const SourceFile& file, const std::vector<ast::Rule>& parsed, RuleSet* set,
                DiagnosticSink* diags);

}  // namespace cepheus::dsl

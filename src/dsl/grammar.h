// The declaring header of the rule grammar (X3 style: this file declares,
// grammar_def.h defines, grammar.cc instantiates and drives).
#pragma once

#include <vector>

#include "cepheus/common/source.h"
#include "dsl/ast.h"

namespace cepheus::dsl {

// Parses every declaration of `file` (rules, tables, lists). Syntax errors are
// reported to `diags`; after an error the parser resumes at the next line that
// starts a declaration, so one typo does not hide the rest of the file. Only
// declarations that parsed cleanly are returned. Never throws.
ast::File ParseFile(const SourceFile& file, DiagnosticSink* diags);

}  // namespace cepheus::dsl

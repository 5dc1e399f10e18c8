// Internal: event declarations (`event order { ... }`) and what they say of
// the field paths rules read.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cepheus/dsl/rule.h"
#include "dsl/ast.h"

namespace cepheus::dsl {

// Appends one file's event declarations to `set`; false on an error (an
// unknown type word, a field declared twice, too many fields).
bool CheckEventDeclarations(const SourceFile& file, const std::vector<ast::EventDecl>& in, RuleSet* set,
                            DiagnosticSink* diags);

// What the declarations say of `path` read from events of `types`.
struct PathCheck {
  enum class Kind { kUndeclared, kDeclared, kMissing };
  Kind kind = Kind::kUndeclared;
  // kDeclared: the declared type; kAny when the types disagree, when one of
  // them is undeclared, or when the path goes into an `any` or a list.
  FieldType type = FieldType::kAny;
  // kMissing: the message (which type lacks what, and a close name if any),
  // and the index of the path segment that is not declared.
  std::string message;
  size_t segment = 0;
};
// `type`, `ts` and `id` (the default role fields) are always declared.
PathCheck CheckPath(const RuleSet& set, const std::vector<std::string>& types, const std::vector<std::string>& path);

}  // namespace cepheus::dsl

// Loading and compiling a rule set for the commands, diagnostics to `err`.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/nfa/program.h"

namespace cepheus::daemon {

struct Config;

// nullptr (after printing the diagnostics) when the rules do not check.
std::shared_ptr<const nfa::CompiledRuleSet> LoadAndCompile(const std::vector<std::string>& paths,
                                                           std::ostream& err);

// Every table a rule reads must have a source in the configuration (section
// 6.1). FailedPrecondition at the first that has none, located at the
// table's declaration (FILE:LINE:COL: ...).
Status CheckTablesConfigured(const nfa::CompiledRuleSet& rules, const Config& config);

}  // namespace cepheus::daemon

// Loading and compiling a rule set for the commands, diagnostics to `err`.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cepheus/nfa/program.h"

namespace cepheus::daemon {

// nullptr (after printing the diagnostics) when the rules do not check.
std::shared_ptr<const nfa::CompiledRuleSet> LoadAndCompile(const std::vector<std::string>& paths,
                                                           std::ostream& err);

}  // namespace cepheus::daemon

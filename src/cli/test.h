// `cepheus test CASES`: rule test files in YAML.
#pragma once

#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

int RunTests(const std::vector<std::string>& paths, bool verbose);
Command AddTest(CLI::App& app);

}  // namespace cepheus::cli

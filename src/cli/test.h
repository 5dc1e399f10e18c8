// `cepheus test CASES`: rule test files in YAML.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cepheus/nfa/program.h"
#include "cli/command.h"

namespace cepheus::cli {

// A test file is read whole up to this size (a test file that names
// /dev/zero, or a runaway generator, costs this much and no more).
constexpr size_t kMaxTestFileBytes = 64u << 20;

// Loads the rule files a test file names (paths already resolved against the
// test file's folder); nullptr after writing diagnostics to the stream.
using RulesLoader = std::function<std::shared_ptr<const nfa::CompiledRuleSet>(const std::vector<std::string>& paths,
                                                                              std::ostream& diagnostics)>;

struct TestResult {
  int passed = 0;
  int failed = 0;
};

// Runs one test file given as text (`path` names it in messages and anchors
// its relative rule paths): a PASS or FAIL line per case to `out`. Never
// throws: a file that is not a test file is one failure.
TestResult RunTestDocument(const std::string& text, const std::string& path, const RulesLoader& load, bool verbose,
                           std::ostream& out);

int RunTests(const std::vector<std::string>& paths, bool verbose);
Command AddTest(CLI::App& app);

}  // namespace cepheus::cli

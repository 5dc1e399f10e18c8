// libFuzzer target for the rule-test loader (`cepheus test`), built with
// -DCEPHEUS_FUZZ=ON and clang. The input is a test file's text; the rules it
// names are replaced by the shipped rule set (compiled once), so the fuzzer
// spends its time on the YAML: shapes, aliases, duplicate keys, events given
// as maps or JSON strings, expected alerts. Any input must give PASS or FAIL
// lines, never a crash, an uncaught exception or unbounded memory. Seeds:
// rules/tests/*.test.yaml.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cepheus/daemon/rules_loader.h"
#include "cli/test.h"

namespace {

std::shared_ptr<const cepheus::nfa::CompiledRuleSet> ShippedRules() {
  static const auto rules = [] {
    std::vector<std::string> paths;
    for (const auto& e : std::filesystem::directory_iterator(CEPHEUS_SOURCE_DIR "/rules")) {
      if (e.path().extension() == ".rules") paths.push_back(e.path().string());
    }
    std::ostringstream diags;
    return cepheus::daemon::LoadAndCompile(paths, diags);
  }();
  return rules;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::ostringstream out;
  auto load = [](const std::vector<std::string>&, std::ostream&) { return ShippedRules(); };
  (void)cepheus::cli::RunTestDocument(std::string(reinterpret_cast<const char*>(data), size),
                                      "/fuzz/case.test.yaml", load, false, out);
  return 0;
}

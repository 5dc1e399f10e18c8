// libFuzzer target for the rule parser and checker (build with
// -DCEPHEUS_FUZZ=ON and clang). Any input must produce either rules or
// diagnostics: no crash, no sanitizer report, no unbounded recursion.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cepheus/dsl/parser.h"
#include "cepheus/nfa/program.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cepheus::DiagnosticSink diags;
  cepheus::dsl::RuleSet set;
  auto file = std::make_shared<const cepheus::SourceFile>(
      "fuzz.rules", std::string(reinterpret_cast<const char*>(data), size));
  if (cepheus::dsl::ParseSource(file, &set, &diags)) {
    auto compiled = cepheus::nfa::Compile(std::make_shared<const cepheus::dsl::RuleSet>(std::move(set)));
    if (compiled.ok()) {
      for (const auto& p : compiled.value()->programs) {
        (void)cepheus::nfa::DumpProgram(*p, compiled.value()->fields);
      }
    }
  } else {
    (void)diags.FormatAll();
  }
  return 0;
}

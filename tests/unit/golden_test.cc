// Golden-file tests: every intermediate form has a text dump, and each dump
// is compared with a checked-in .expect file (re2's and X3's habit).
//
//   tests/golden/parse/NAME.rules        -> NAME.expect  (dsl::DumpRuleSet)
//   tests/golden/diagnostics/NAME.rules  -> NAME.expect  (what `cepheus check` prints)
//   tests/golden/programs/NAME.rules     -> NAME.expect  (`cepheus explain`, text and dot)
//   tests/golden/alerts/NAME.rules + NAME.jsonl -> NAME.expect (alerts, in full)
//
// Set CEPHEUS_UPDATE_GOLDEN=1 to rewrite the .expect files after a deliberate
// change, then review the diff.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <simdjson.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/nfa/program.h"
#include "cepheus/engine/replay.h"

namespace {

namespace fs = std::filesystem;
using namespace cepheus;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> Inputs(const std::string& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(CEPHEUS_SOURCE_DIR) / "tests/golden" / dir)) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Compare(const fs::path& input, const std::string& got) {
  fs::path expect = fs::path(input).replace_extension(".expect");
  if (std::getenv("CEPHEUS_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(expect, std::ios::binary) << got;
    return;
  }
  INFO("golden file: " << expect.string());
  REQUIRE(fs::exists(expect));
  CHECK(got == Read(expect));
}

// Loads one file under a stable relative name so diagnostics are portable.
std::optional<dsl::RuleSet> Load(const fs::path& p, DiagnosticSink* diags) {
  dsl::RuleSet set;
  std::string name = fs::relative(p, CEPHEUS_SOURCE_DIR).string();
  bool ok = dsl::ParseSource(std::make_shared<const SourceFile>(name, Read(p)), &set, diags);
  if (!ok) return std::nullopt;
  return set;
}

// Loads and compiles one golden input; REQUIREs that both succeed.
std::shared_ptr<const nfa::CompiledRuleSet> Compiled(const fs::path& p) {
  DiagnosticSink diags;
  auto set = Load(p, &diags);
  INFO(p.string() << "\n" << diags.FormatAll());
  REQUIRE(set.has_value());
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set)));
  REQUIRE(compiled.ok());
  return compiled.value();
}

}  // namespace

TEST_CASE("parse dumps match their golden files") {
  auto inputs = Inputs("parse", ".rules");
  REQUIRE(inputs.size() >= 3);
  for (const auto& p : inputs) {
    DiagnosticSink diags;
    auto set = Load(p, &diags);
    INFO(p.string() << "\n" << diags.FormatAll());
    REQUIRE(set.has_value());
    Compare(p, dsl::DumpRuleSet(*set));
  }
}

TEST_CASE("diagnostics of broken rule files match their golden files") {
  auto inputs = Inputs("diagnostics", ".rules");
  REQUIRE(inputs.size() >= 10);
  for (const auto& p : inputs) {
    DiagnosticSink diags;
    auto set = Load(p, &diags);
    INFO(p.string());
    CHECK_FALSE(set.has_value());  // every file here is broken
    CHECK(diags.has_errors());
    Compare(p, diags.FormatAll());
  }
}

TEST_CASE("compiled programs match their golden files") {
  auto inputs = Inputs("programs", ".rules");
  REQUIRE(inputs.size() >= 3);
  for (const auto& p : inputs) {
    auto compiled = Compiled(p);
    std::string out;
    for (const auto& prog : compiled->programs) {
      out += nfa::DumpProgram(*prog, compiled->fields);
      out += nfa::DumpProgramDot(*prog, compiled->fields);
    }
    for (const auto& c : compiled->counters) out += nfa::DumpCounter(c, compiled->fields);
    for (const auto& a : compiled->aggregates) out += nfa::DumpAggregate(a, compiled->fields);
    Compare(p, out);
  }
}

TEST_CASE("alerts match their golden files byte for byte") {
  auto inputs = Inputs("alerts", ".rules");
  REQUIRE(inputs.size() >= 2);
  for (const auto& p : inputs) {
    auto compiled = Compiled(p);
    simdjson::padded_string events(Read(fs::path(p).replace_extension(".jsonl")));
    engine::CollectingSink sink;
    engine::ReplayText(std::string_view(events.data(), events.size()), compiled, {}, {}, &sink,
                       nullptr);
    std::string out;
    for (const auto& a : sink.alerts) out += a.json + "\n";
    Compare(p, out);
  }
}

// `cepheus test` refuses a test file it cannot trust: a mistyped key, a key
// given twice, a case that is not a mapping, a document that explodes
// through its aliases. Each would otherwise pass (or abort), hiding the rule
// it was meant to test.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "cli/test.h"

namespace cepheus::cli {
namespace {

struct Ran {
  int exit_code;
  std::string out;
};

// Writes `body` (after a `rules:` line naming the shipped card_testing rule)
// to a test file and runs `cepheus test` on it, capturing what it prints.
Ran RunTestFile(const std::string& body) {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-case-" + std::to_string(::getpid()) + ".test.yaml");
  std::ofstream(path) << "rules: " << CEPHEUS_SOURCE_DIR << "/rules/card_testing.rules\n" << body;
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int code = RunTests({path.string()}, false);
  std::cout.rdbuf(old);
  std::filesystem::remove(path);
  return {code, captured.str()};
}

TEST_CASE("a mistyped key in a case fails the file with its line instead of passing") {
  Ran r = RunTestFile(
      "cases:\n"
      "  - name: typo\n"
      "    events:\n"
      "      - {type: payment, ts: 1000, user_id: u1, card_id: c1, amount: 1}\n"
      "    expectd:\n"
      "      - {rule: card_testing, key: c1}\n");
  CHECK(r.exit_code == 1);
  CHECK(r.out.find(":6:5: unknown key 'expectd' in a case (expected name, events, expect, late, out_of_order, tables or aggregates)") !=
        std::string::npos);
  CHECK(r.out.find("PASS") == std::string::npos);
}

TEST_CASE("a key given twice in a test file is an error naming both lines") {
  Ran r = RunTestFile("cases:\n  - name: one\n    events: []\n    expect: []\n    name: two\n");
  CHECK(r.exit_code == 1);
  CHECK(r.out.find(":6:5: key 'name' is given twice (first at line 3)") != std::string::npos);
}

TEST_CASE("a case that is not a mapping is an error, not a pass or an abort") {
  Ran r = RunTestFile("cases:\n  - just a string\n");
  CHECK(r.exit_code == 1);
  CHECK(r.out.find(":3:5: a case must be a mapping") != std::string::npos);
  Ran unknown_in_alert = RunTestFile("cases:\n  - name: x\n    events: []\n    expect:\n      - {rul: card_testing}\n");
  CHECK(unknown_in_alert.out.find("unknown key 'rul' in an expected alert") != std::string::npos);
}

TEST_CASE("nested anchors that expand past the node budget are refused before any event is built") {
  std::string body = "cases:\n  - name: laughs\n    expect: []\n    events:\n      - type: payment\n"
                     "        ts: 1000\n        x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 7; ++i) {
    body += "        x" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) body += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
    body += "]\n";
  }
  Ran r = RunTestFile(body);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("more than 2000000 nodes once its aliases are expanded") != std::string::npos);
}

TEST_CASE("a test file whose values have the wrong shapes fails with a message instead of aborting") {
  for (const char* body : {"cases: []\nout_of_order: [1, 2]\n",
                           "cases:\n  - name: [a, b]\n    events: []\n",
                           "cases:\n  - events: [[1, 2]]\n",
                           "cases:\n  - events: []\n    expect:\n      - {rule: [x], key: k}\n",
                           "cases:\n  - events: []\n    expect:\n      - {rule: r, key: k, events: [a, b]}\n"}) {
    CAPTURE(body);
    Ran r = RunTestFile(body);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("FAIL") != std::string::npos);
    CHECK(r.out.find("PASS") == std::string::npos);
  }
}

TEST_CASE("a test file that is not a mapping, or names its rules with a mapping, is one failure") {
  std::ostringstream out;
  auto never = [](const std::vector<std::string>&, std::ostream&) -> std::shared_ptr<const nfa::CompiledRuleSet> {
    FAIL("no rules should be loaded");
    return nullptr;
  };
  TestResult r = RunTestDocument("rules: {a: b}\ncases: []\n", "x.test.yaml", never, false, out);
  CHECK(r.failed == 1);
  CHECK(r.passed == 0);
  CHECK(out.str().find("FAIL x.test.yaml: cannot read the test file:") == 0);
  out.str("");
  r = RunTestDocument("just text", "y.test.yaml", never, false, out);
  CHECK(r.failed == 1);
  CHECK(out.str().find("FAIL y.test.yaml") == 0);
}

TEST_CASE("a test file that names an endless device as its rules is refused at the rule file size limit") {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-zero-" + std::to_string(::getpid()) + ".test.yaml");
  std::ofstream(path) << "rules: /dev/zero\ncases:\n  - events: []\n";
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int code = RunTests({path.string()}, false);
  std::cout.rdbuf(old);
  std::filesystem::remove(path);
  CHECK(code == 1);
  CHECK(captured.str().find("/dev/zero: rule file is larger than the 1048576 byte limit") != std::string::npos);
}

}  // namespace
}  // namespace cepheus::cli

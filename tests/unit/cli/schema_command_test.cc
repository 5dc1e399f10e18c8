// `cepheus schema`: declarations inferred from a sample are a rule file the
// checker accepts, with each field's kind as seen, `any` where kinds differ.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <unistd.h>

#include "cepheus/dsl/parser.h"
#include "cli/schema.h"

namespace cepheus::cli {
namespace {

struct Ran {
  int code;
  std::string out, err;
};

Ran Schema(const std::string& lines) {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-schema-" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path) << lines;
  SchemaOptions o;
  o.events = path.string();
  std::ostringstream out, err;
  int code = RunSchema(o, out, err);
  std::filesystem::remove(path);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("schema infers each type's fields, nested objects, the time field, and any where kinds differ") {
  Ran r = Schema(
      R"({"type":"order","id":"e1","ts":1,"user_id":"u1","amount":5,"card":{"bin":"4111","3ds":true},"tags":["a"]})" "\n"
      R"({"type":"order","id":"e2","ts":2,"user_id":"u2","amount":"5.0","card":{"bin":"5500"}})" "\n"
      "not json\n"
      R"({"type":"login","ts":3,"user_id":"u1","vip":false,"note":null})" "\n");
  REQUIRE(r.code == 0);
  CHECK(r.err.find(":3: skipped: not a JSON object") != std::string::npos);
  CHECK(r.out.find("(3 events of 2 types, 1 lines skipped)") != std::string::npos);
  CHECK(r.out.find("event login {  # 1 event\n  ts: time,\n  user_id: string,\n  vip: bool,\n  note: any\n}") != std::string::npos);
  CHECK(r.out.find("  amount: any,") != std::string::npos);  // a number once, a string once
  CHECK(r.out.find("  card: {\n    # left out: '3ds' (not a name a rule can write)\n    bin: string\n  },") !=
        std::string::npos);
  CHECK(r.out.find("  tags: list  # in 1 of 2") != std::string::npos);
  CHECK(r.out.find("  id:") == std::string::npos);  // role fields are implicit

  // What it prints is a rule file the checker accepts.
  dsl::RuleSet set;
  DiagnosticSink diags;
  CHECK_MESSAGE(dsl::ParseSource(std::make_shared<const SourceFile>("inferred.rules", r.out), &set, &diags),
                diags.FormatAll());
  CHECK(set.events.size() == 2);
}

TEST_CASE("schema on a file without events fails with the reason") {
  Ran r = Schema("{\"no_type\": 1}\n");
  CHECK(r.code == 1);
  CHECK(r.err.find("holds no event with a 'type' field") != std::string::npos);
}
TEST_CASE("schema declares objects nested past 16 levels as any, so its own recursion is bounded") {
  auto nested = [](int levels) {  // {"type":"x","a1":{"a2":{...{"v":1}}}}, `levels` objects below the event
    std::string s = R"({"type":"x")";
    for (int i = 1; i <= levels; ++i) s += ",\"a" + std::to_string(i) + "\":{\"v\":1";
    return s + std::string(static_cast<size_t>(levels) + 1, '}') + "\n";
  };
  Ran at = Schema(nested(15));
  CHECK(at.out.find("a15: {\n") != std::string::npos);
  Ran past = Schema(nested(16));
  CHECK(past.out.find("a15: {\n") != std::string::npos);
  CHECK(past.out.find("a16: any") != std::string::npos);
}

}  // namespace cepheus::cli

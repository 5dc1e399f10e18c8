// Decoding events: the fixed-role fields, field extraction, and the reasons
// given for malformed records.
#include <doctest/doctest.h>

#include "cepheus/engine/event_decoder.h"
#include "test_util.h"

using namespace cepheus;

namespace {

Status DecodeStatus(const std::string& raw) {
  auto compiled = testing::CompileRules("rule t key user_id match o: order[card.bin == 4 and tags != null] within 1m");
  engine::EventDecoder dec(compiled, {});
  auto r = dec.Decode(raw, {});
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace

TEST_CASE("malformed records are refused with a reason a person can act on") {
  struct Row {
    std::string raw;
    std::string reason;
  } rows[] = {
      {"not json", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"ts":1})", "no 'type' field"},
      {R"({"type":"","ts":1})", "'type' is not a non-empty string"},
      {R"({"type":5,"ts":1})", "'type' is not a non-empty string"},
      {R"({"type":"order"})", "no 'ts' field"},
      {R"({"type":"order","ts":"yesterday"})", "not an RFC 3339 time"},
      {R"({"type":"order","ts":true})", "not an integer of epoch milliseconds"},
      {R"({"type":"order","ts":1.5})", "not an integer of epoch milliseconds"},
      {R"({"type":"order","ts":18446744073709551615})", "out of range"},
      {R"({"type":"order","ts":1e300})", "out of range"},  // a double beyond int64 (fuzz)
      {R"({"type":"order","ts":-1e300})", "out of range"},
      {"{\"type\":\"order\",\"ts\":1,\"x\":\"\xff\"}", "not valid JSON"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    Status st = DecodeStatus(row.raw);
    CHECK_FALSE(st.ok());
    CHECK(st.message().find(row.reason) != std::string::npos);
  }
}

TEST_CASE("decoding keeps the raw text and extracts nested fields and arrays") {
  auto compiled = testing::CompileRules("rule t key user_id match o: order[card.bin == 4 and \"a\" in tags] within 1m");
  engine::EventDecoder dec(compiled, {});
  std::string raw = R"({"id":7,"type":"order","ts":"2023-11-14T22:13:20Z","user_id":"u","card":{"bin":4},"tags":["a","b"]})";
  auto r = dec.Decode(raw + "\r\n", {"t", 3, 9});
  REQUIRE(r.ok());
  const auto& e = *r.value();
  CHECK(e.raw == raw);
  CHECK(e.ts == 1700000000000);
  CHECK(e.id == "7");
  CHECK(e.type == "order");
  CHECK(e.pos.partition == 3);
  const auto& paths = compiled->fields.paths();
  for (size_t slot = 0; slot < paths.size(); ++slot) {
    if (paths[slot] == std::vector<std::string>{"card", "bin"}) CHECK(e.fields[slot].number == 4);
    if (paths[slot] == std::vector<std::string>{"tags"}) {
      REQUIRE(e.fields[slot].kind == nfa::Value::Kind::kList);
      CHECK(e.fields[slot].list().size() == 2);
      CHECK(e.fields[slot].list()[1].str() == "b");
    }
  }
}

TEST_CASE("the event field names come from the configuration") {
  auto compiled = testing::CompileRules("rule t key user_id match o: order within 1m");
  engine::EventDecoder dec(compiled, {"kind", "time", "uuid"});
  auto r = dec.Decode(R"({"kind":"order","time":5,"uuid":"x","user_id":"u"})", {});
  REQUIRE(r.ok());
  CHECK(r.value()->ts == 5);
  CHECK(r.value()->id == "x");
  CHECK_FALSE(dec.Decode(R"({"type":"order","ts":5})", {}).ok());
}

// Alerts: the format of section 5 and the deterministic id.
#include <doctest/doctest.h>

#include <simdjson.h>

#include "test_util.h"

using namespace cepheus;

namespace {

std::vector<engine::Alert> Alerts(const std::string& rules, const std::vector<std::string>& events,
                                  const std::string& topic = "") {
  auto compiled = testing::CompileRules(rules);
  engine::EventDecoder dec(compiled, {});
  engine::CollectingSink sink;
  engine::Engine eng(compiled, {}, &sink);
  for (size_t i = 0; i < events.size(); ++i) eng.Push(dec.Decode(events[i], {topic, 0, int64_t(i + 1)}).value());
  eng.Finish();
  return sink.alerts;
}

const char* kRule = R"(rule r severity high key user_id match o: order{2} within 1m tags "a" emit "{key}: {sum(o.amount)} from {o.country}")";

}  // namespace

TEST_CASE("an alert carries every field of section 5 with the events exactly as received") {
  auto alerts = Alerts(kRule, {R"({"type":"order", "ts":1,"user_id":"u9","amount":2.5,"country":"FR"})",
                               R"({"type":"order","ts":2,"user_id":"u9","amount":3,"country":"DE"})"});
  REQUIRE(alerts.size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element a = parser.parse(alerts[0].json);
  CHECK(std::string_view(a["rule"]) == "r");
  CHECK(int64_t(a["rule_version"]) == 1);
  CHECK(std::string_view(a["key"]) == "u9");
  CHECK(std::string_view(a["severity"]) == "high");
  CHECK(std::string_view(a["reason"]) == "match");
  CHECK(int64_t(a["first_ts"]) == 1);
  CHECK(int64_t(a["last_ts"]) == 2);
  CHECK(int64_t(a["detected_at"]) == 2);
  CHECK(std::string_view(a["message"]) == "u9: 5.5 from FR, DE");
  CHECK(std::string_view(a["tags"].at(0)) == "a");
  CHECK(std::string_view(a["alert_id"]).size() == 32);
  CHECK(alerts[0].json.find(R"([{"type":"order", "ts":1,)") != std::string::npos);  // verbatim
}

TEST_CASE("a rule's fields reach the alert as typed JSON values, and a rule without fields adds none") {
  const char* rule = R"(rule r key user_id match o: order{2} -> p: payment within 1m
      fields { total: sum(o.amount), countries: distinct(o.country), first_country: first(o.country),
               amounts: o.amount, big: max(o.amount) > 2, paid: p.amount, missing: p.nothing, ratio: p.amount / 3 })";
  auto alerts = Alerts(rule, {R"({"type":"order","ts":1,"user_id":"u9","amount":2.5,"country":"FR"})",
                              R"({"type":"order","ts":2,"user_id":"u9","amount":3,"country":"DE"})",
                              R"({"type":"payment","ts":3,"user_id":"u9","amount":200})"});
  REQUIRE(alerts.size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element f = parser.parse(alerts[0].json)["fields"];
  CHECK(double(f["total"]) == 5.5);
  CHECK(int64_t(f["countries"]) == 2);
  CHECK(std::string_view(f["first_country"]) == "FR");
  CHECK(double(f["amounts"].at(0)) == 2.5);
  CHECK(int64_t(f["amounts"].at(1)) == 3);
  CHECK(bool(f["big"]) == true);
  CHECK(int64_t(f["paid"]) == 200);
  CHECK(f["missing"].is_null());
  CHECK(double(f["ratio"]) == 200.0 / 3);  // the exact double, as the JSON number reads back
  CHECK(alerts[0].json.find(R"("fields":{"total":5.5,"countries":2,)") != std::string::npos);  // in declared order

  auto plain = Alerts(kRule, {R"({"type":"order","ts":1,"user_id":"u9","amount":2.5})",
                              R"({"type":"order","ts":2,"user_id":"u9","amount":3})"});
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].json.find("\"fields\"") == std::string::npos);
}

TEST_CASE("the alert id depends on the bound events' positions, not on when it is computed") {
  std::vector<std::string> evs = {R"({"type":"order","ts":1,"user_id":"u","amount":1,"country":"FR"})",
                                  R"({"type":"order","ts":2,"user_id":"u","amount":1,"country":"FR"})"};
  auto a = Alerts(kRule, evs);
  auto b = Alerts(kRule, evs);
  auto other_topic = Alerts(kRule, evs, "orders");
  REQUIRE(a.size() == 1);
  CHECK(a[0].alert_id == b[0].alert_id);
  CHECK(a[0].alert_id != other_topic[0].alert_id);
  auto shifted = Alerts(kRule, {R"({"type":"login","ts":0,"user_id":"u"})", evs[0], evs[1]});
  REQUIRE(shifted.size() == 1);
  CHECK(shifted[0].alert_id != a[0].alert_id);
}

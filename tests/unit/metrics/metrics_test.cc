// The metrics probe, read back over HTTP as Prometheus would.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <vector>

#include "cepheus/metrics/metrics.h"
#include "test_util.h"

using namespace cepheus;

namespace {

void PushOrders(engine::Engine* eng, engine::EventDecoder* dec, int n) {
  for (int i = 0; i < n; ++i) {
    eng->Push(dec->Decode(R"({"type":"order","ts":)" + std::to_string(i + 1) + R"(,"user_id":"u)" +
                              std::to_string(i) + R"("})",
                          {})
                  .value());
  }
  eng->AdvanceWatermark(n + 1);
}

}  // namespace

TEST_CASE("a partition whose engine is replaced neither rewinds nor inflates the counters and gauges") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{2} within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(m.ok());
  engine::CollectingSink sink;
  engine::EventDecoder dec(rules, {});
  auto first = std::make_unique<engine::Engine>(rules, engine::EngineOptions{}, &sink);
  PushOrders(first.get(), &dec, 5);
  m.value()->UpdateEngine(0, *first, 0);
  std::string s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_events_total{outcome=\"evaluated\"}") == 5);
  CHECK(testing::Sample(s, "cepheus_runs_active{rule=\"r\"}") == 5);
  CHECK(testing::Sample(s, "cepheus_keys_active") == 5);

  // Rolled back (an abort) to an engine holding fewer runs, fresh counters.
  m.value()->ForgetPartition(0);
  auto second = std::make_unique<engine::Engine>(rules, engine::EngineOptions{}, &sink);
  PushOrders(second.get(), &dec, 2);
  m.value()->UpdateEngine(0, *second, 0);
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_events_total{outcome=\"evaluated\"}") == 7);  // work done, never rewound
  CHECK(testing::Sample(s, "cepheus_runs_active{rule=\"r\"}") == 2);
  CHECK(testing::Sample(s, "cepheus_keys_active") == 2);
}

TEST_CASE("keys held in LMDB only are a gauge and keys read back a counter, and a replaced engine takes its own off") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{2} within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(m.ok());
  engine::CollectingSink sink;
  engine::EventDecoder dec(rules, {});
  engine::MemoryStateStore store;
  engine::EngineOptions options;
  options.max_resident_keys = 2;
  engine::Engine eng(rules, options, &sink);
  eng.set_cold_store(&store, &dec);
  PushOrders(&eng, &dec, 5);  // u0..u4, one order each
  REQUIRE(eng.SaveChanges(&store).ok());
  REQUIRE(eng.EvictColdKeys() == 3);
  m.value()->UpdateEngine(0, eng, 0);
  std::string s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_keys_active") == 5);
  CHECK(testing::Sample(s, "cepheus_keys_cold") == 3);
  CHECK(testing::Sample(s, "cepheus_keys_read_back_total") == 0);
  // A second order of u0 reads its key back and completes its run.
  eng.Push(dec.Decode(R"({"type":"order","ts":10,"user_id":"u0"})", {}).value());
  eng.AdvanceWatermark(11);
  REQUIRE(sink.alerts.size() == 1);
  m.value()->UpdateEngine(0, eng, 0);
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_keys_cold") == 2);
  CHECK(testing::Sample(s, "cepheus_keys_read_back_total") == 1);
  m.value()->ForgetPartition(0);
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_keys_cold") == 0);
  CHECK(testing::Sample(s, "cepheus_keys_read_back_total") == 1);  // work done, never rewound
}

TEST_CASE("after a rule reload the series of removed rules are gone and those of kept rules keep their counts") {
  auto v1 = testing::CompileRules(
      "rule kept key user_id match o: order within 1h\n"
      "rule gone key user_id match o: order{2} within 1h");
  auto v2 = testing::CompileRules(
      "rule kept key user_id match o: order within 1h\n"
      "rule fresh key user_id match p: payment within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *v1);
  REQUIRE(m.ok());
  engine::CollectingSink sink;
  engine::EventDecoder dec(v1, {});
  engine::Engine eng(v1, {}, &sink);
  PushOrders(&eng, &dec, 3);
  m.value()->UpdateEngine(0, eng, 0);
  std::string s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_alerts_total{rule=\"kept\",severity=\"medium\"}") == 3);
  CHECK(testing::Sample(s, "cepheus_runs_active{rule=\"gone\"}") == 3);
  CHECK(testing::Sample(s, "cepheus_rules_loaded") == 2);

  m.value()->SetRules(*v2);
  m.value()->CountReload(true);
  m.value()->CountRuleStateDropped(0, 3);
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_runs_active{rule=\"gone\"}") == -1);
  CHECK(testing::Sample(s, "cepheus_alerts_total{rule=\"gone\",severity=\"medium\"}") == -1);
  CHECK(testing::Sample(s, "cepheus_runs_active{rule=\"fresh\"}") == 0);
  CHECK(testing::Sample(s, "cepheus_alerts_total{rule=\"kept\",severity=\"medium\"}") == 3);
  CHECK(testing::Sample(s, "cepheus_rule_reloads_total{outcome=\"success\"}") == 1);
  CHECK(testing::Sample(s, "cepheus_rule_state_dropped_total{reason=\"removed\"}") == 3);
  CHECK(testing::Sample(s, "cepheus_rules_last_reload_successful") == 1);
  m.value()->CountReload(false);
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_rules_last_reload_successful") == 0);
}

TEST_CASE("limit hits are counted by limit and the ratios are the fullest partition's use of each") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{2} within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(m.ok());
  engine::CollectingSink sink;
  engine::EventDecoder dec(rules, {});
  engine::EngineOptions o;
  o.max_keys = 4;
  o.max_buffered = 10;
  engine::Engine full(rules, o, &sink), half(rules, o, &sink);
  PushOrders(&full, &dec, 6);  // 4 keys kept, 2 refused
  PushOrders(&half, &dec, 2);
  m.value()->UpdateEngine(0, full, 0);
  m.value()->UpdateEngine(1, half, 0);
  std::string s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_limit_hits_total{limit=\"keys_per_partition\"}") == 2);
  CHECK(testing::Sample(s, "cepheus_limit_hits_total{limit=\"reorder_buffer\"}") == 0);
  CHECK(testing::Sample(s, "cepheus_limit_used_ratio{limit=\"keys_per_partition\"}") == doctest::Approx(1.0));
  m.value()->ForgetPartition(0);  // the full partition moves away: the other one's use is shown
  s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_limit_used_ratio{limit=\"keys_per_partition\"}") == doctest::Approx(0.5));
  CHECK(testing::Sample(s, "cepheus_limit_hits_total{limit=\"keys_per_partition\"}") == 2);  // never rewound
}

TEST_CASE("the map-used ratio is the state's bytes over the largest map allowed") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(m.ok());
  m.value()->SetStateBytes(800, 1000);
  std::string s = testing::Scrape(m.value()->port());
  CHECK(testing::Sample(s, "cepheus_state_bytes") == 800);
  CHECK(testing::Sample(s, "cepheus_lmdb_map_used_ratio") == doctest::Approx(0.8));
}

TEST_CASE("with credentials configured, /metrics answers 401 without them and the metrics with them") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1h");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules, "prom", "s3cret");
  REQUIRE(m.ok());
  std::string none = testing::Scrape(m.value()->port());
  CHECK(none.rfind("HTTP/1.1 401", 0) == 0);
  CHECK(none.find("cepheus_") == std::string::npos);
  std::string wrong = testing::Scrape(m.value()->port(), "Basic cHJvbTp3cm9uZw==");  // prom:wrong
  CHECK(wrong.rfind("HTTP/1.1 401", 0) == 0);
  std::string right = testing::Scrape(m.value()->port(), "Basic cHJvbTpzM2NyZXQ=");  // prom:s3cret
  CHECK(right.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(testing::Sample(right, "cepheus_rules_loaded") == 1);
}

TEST_CASE("an address in use is named as such, not as civetweb's null context") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1m");
  auto first = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(first.ok());
  std::string taken = "127.0.0.1:" + std::to_string(first.value()->port());
  auto second = metrics::Metrics::Start(taken, "test", *rules);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().message() == "cannot serve metrics on " + taken + ": Address already in use");
}

namespace {

// A TCP connection to the exposer that sends `bytes` and then nothing.
int Connect(int port, const std::string& bytes) {
  int fd = testing::ConnectLoopback(port);
  if (!bytes.empty()) REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  return fd;
}

}  // namespace

TEST_CASE("idle and half-sent connections do not hold /metrics past a scrape's timeout") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1m");
  auto m = metrics::Metrics::Start("127.0.0.1:0", "test", *rules);
  REQUIRE(m.ok());
  int port = m.value()->port();
  std::vector<int> held;
  for (int i = 0; i < 6; ++i) held.push_back(Connect(port, ""));                            // idle
  for (int i = 0; i < 6; ++i) held.push_back(Connect(port, "GET /metrics HTTP/1.1\r\nHo"));  // half-sent
  auto started = std::chrono::steady_clock::now();
  std::string scrape = testing::Scrape(port);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (int fd : held) ::close(fd);
  CHECK(scrape.find("cepheus_events_total") != std::string::npos);
  // Prometheus gives up after 10 s by default; an answer must come well before.
  CHECK(seconds < 5.0);
}

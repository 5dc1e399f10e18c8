// Counters and aggregates in the daemon (sections 6.2, 6.3) on the in-memory
// Kafka: window records go to the aggregates topic in the transaction, once
// each through aborts and restarts, grouped after re-keying, and equal one
// engine's over the same input.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "cepheus/daemon/daemon.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "fake_kafka.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using testing::FakeKafka;

namespace {

constexpr const char* kRules = R"(
counter orders_10m
  key user_id
  count order
  over 10m
  resolution 1m
rule busy_user
  key user_id
  match o: order[orders_10m >= 4]
  within 1m
  emit "{key}: {orders_10m} orders"
aggregate sales
  from order
  group by category
  window tumbling 5m
  compute total = sum(amount), orders = count()
  alert when total > 2 * previous_avg(total, 2) and orders >= 3
  emit "{group}: {total}"
)";

constexpr int64_t kMin = 60000;

std::string Order(int i, const std::string& user, const std::string& category, int64_t ts, int amount) {
  return fmt::format(R"({{"id":"e{}","type":"order","ts":{},"user_id":"{}","category":"{}","amount":{}}})", i, ts, user,
                     category, amount);
}

struct World {
  World() : dir(std::filesystem::temp_directory_path() / ("cepheus-agg-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    kafka.CreateTopic("events", 2);
    for (const char* t : {"alerts", "dead", "aggregates"}) kafka.CreateTopic(t, 1);
    kafka.CreateTopic("ag-changelog", 2);
  }
  ~World() { std::filesystem::remove_all(dir); }
  daemon::Config Config() const {
    auto c = testing::TestConfig("fake:9092", "ag");
    c.state.directory = (dir / "state").string();
    c.state.commit_interval = 20;
    c.metrics.listen = "";
    c.kafka.rekey = true;  // sales is grouped by category, the input partitioned by user
    c.out_of_order = 0;
    return c;
  }
  std::filesystem::path dir;
  FakeKafka kafka;
};

// Users u0..u5 on partition (user % 2), categories books/toys; the books
// spend jumps in the 4th window; at the end both partitions move past every
// window.
std::vector<std::pair<int32_t, std::string>> Input() {
  std::vector<std::pair<int32_t, std::string>> in;
  int i = 0;
  for (int64_t minute = 0; minute < 20; ++minute) {
    for (int k = 0; k < 3; ++k, ++i) {
      int user = (i * 7) % 6;
      int amount = minute >= 15 && k < 2 ? 200 : 10 + k;
      in.emplace_back(user % 2, Order(i, fmt::format("u{}", user), k == 2 ? "toys" : "books", minute * kMin + k * 1000,
                                      amount));
    }
  }
  for (int32_t p : {0, 1}) in.emplace_back(p, Order(1000 + p, fmt::format("u{}", p), "books", 60 * kMin, 1));
  return in;
}

// What one engine over the input publishes: alert ids and records.
std::pair<std::multiset<std::string>, std::multiset<std::string>> OneEngine(
    const std::vector<std::pair<int32_t, std::string>>& input) {
  struct Sink : engine::CollectingSink {
    void PublishAggregate(const engine::AggregateRecord& r) override { records.insert(r.json); }
    std::multiset<std::string> records;
  } sink;
  auto rules = testing::CompileRules(kRules);
  engine::EventDecoder decoder(rules, {});
  engine::Engine eng(rules, {}, &sink);
  int64_t offsets[2] = {0, 0};
  for (const auto& [p, text] : input) eng.Push(decoder.Decode(text, nfa::Position{"events", p, offsets[p]++}).value());
  std::multiset<std::string> ids;
  for (const auto& a : sink.alerts) ids.insert(a.alert_id);
  return {ids, sink.records};
}

std::multiset<std::string> AlertIds(const FakeKafka& kafka) {
  std::multiset<std::string> ids;
  for (const auto& v : kafka.CommittedValues("alerts")) {
    auto at = v.find("\"alert_id\":\"");
    ids.insert(v.substr(at + 12, 32));
  }
  return ids;
}

bool Drained(const FakeKafka& kafka, const int64_t counts[2]) {
  for (int32_t p : {0, 1}) {
    if (kafka.GroupOffset("events", p) != counts[p]) return false;
    if (testing::CommittedRead(kafka, "ag-changelog", "ag-rekey-category", p) < kafka.EndOffset("ag-rekey-category", p)) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("window records and alerts are committed once each through aborts, as one engine over the input gives them") {
  World w;
  daemon::Daemon d(w.Config(), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  auto input = Input();
  int64_t counts[2] = {0, 0};
  for (size_t i = 0; i < input.size(); ++i) {
    w.kafka.Append("events", input[i].first, input[i].second);
    ++counts[input[i].first];
    if (i % 9 == 8) {
      w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kAbort, 1);
      REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", input[i].first) == counts[input[i].first]; },
                                  std::chrono::seconds(5)));
    }
  }
  REQUIRE(testing::Eventually([&] { return Drained(w.kafka, counts); }, std::chrono::seconds(10)));
  CHECK(run.Stop() == 0);
  CHECK(w.kafka.aborts() >= 5);
  auto [ids, records] = OneEngine(input);
  auto committed = w.kafka.CommittedValues("aggregates");
  CHECK(records.size() >= 8);
  CHECK(std::multiset<std::string>(committed.begin(), committed.end()) == records);
  CHECK(AlertIds(w.kafka) == ids);
  size_t aggregate_alerts = 0;
  for (const auto& v : w.kafka.CommittedValues("alerts")) aggregate_alerts += v.find("\"reason\":\"aggregate\"") != std::string::npos;
  CHECK(aggregate_alerts >= 1);
}

TEST_CASE("a daemon restarted mid-window keeps its counters and open windows: every record and alert once") {
  World w;
  auto input = Input();
  int64_t counts[2] = {0, 0};
  size_t half = input.size() / 2;
  {
    daemon::Daemon d(w.Config(), testing::CompileRules(kRules), &w.kafka);
    testing::DaemonThread run(d);
    for (size_t i = 0; i < half; ++i) {
      w.kafka.Append("events", input[i].first, input[i].second);
      ++counts[input[i].first];
    }
    REQUIRE(testing::Eventually([&] { return Drained(w.kafka, counts); }, std::chrono::seconds(10)));
    CHECK(run.Stop() == 0);
  }
  daemon::Daemon again(w.Config(), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(again);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0, 1});
  w.kafka.Assign(1, "ag-rekey-category", {0, 1});
  for (size_t i = half; i < input.size(); ++i) {
    w.kafka.Append("events", input[i].first, input[i].second);
    ++counts[input[i].first];
  }
  REQUIRE(testing::Eventually([&] { return Drained(w.kafka, counts); }, std::chrono::seconds(10)));
  CHECK(run.Stop() == 0);
  auto [ids, records] = OneEngine(input);
  auto committed = w.kafka.CommittedValues("aggregates");
  CHECK(std::multiset<std::string>(committed.begin(), committed.end()) == records);
  CHECK(AlertIds(w.kafka) == ids);
}

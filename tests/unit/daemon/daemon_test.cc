// `cepheus run` on librdkafka's mock cluster (fast; the mock cannot prove
// exactly-once, the real-broker tests do): the alerts it publishes equal, byte
// for byte, those of an engine replaying each partition's records in order.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "cepheus/io/kafka.h"
#include "daemon/commands.h"
#include "daemon/daemon.h"
#include "test_util.h"

using namespace cepheus;

namespace {

std::vector<engine::RawRecord> ReadAll(const std::string& brokers, const std::string& topic, size_t want) {
  auto consumer = io::KafkaConsumer::Create(brokers, "reader-" + topic, {topic}, {});
  REQUIRE(consumer.ok());
  std::vector<engine::RawRecord> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto quiet_since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = consumer.value()->Poll(200);
    REQUIRE(r.ok());
    if (r.value()) {
      out.push_back(*r.value());
      quiet_since = std::chrono::steady_clock::now();
    } else if (out.size() >= want && std::chrono::steady_clock::now() - quiet_since > std::chrono::seconds(2)) {
      break;
    }
  }
  consumer.value()->Close();
  return out;
}

}  // namespace

TEST_CASE("the daemon's alerts equal a per-partition replay of the same records") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair{"events", 3}, {"alerts", 1}, {"dead", 1}}) REQUIRE(cluster.value()->CreateTopic(t, n).ok());

  daemon::GenCommandOptions g;
  g.events = 4000;
  g.users = 30;
  g.fraud_rate = 0.05;
  g.kafka = brokers;
  g.topic = "events";
  REQUIRE(daemon::RunGen(g) == 0);

  auto config = daemon::DefaultConfig();
  config.rules_path = std::string(CEPHEUS_SOURCE_DIR) + "/rules";
  config.kafka.brokers = brokers;
  config.kafka.group_id = "cepheus-test";
  config.kafka.input_topics = {"events"};
  config.kafka.alerts_topic = "alerts";
  config.kafka.dead_letter_topic = "dead";
  config.kafka.transactional_id = "cepheus-test-" + std::to_string(::getpid());
  config.metrics.listen = "127.0.0.1:0";
  config.idle_timeout = 3600000;  // no wall-clock watermark in this test
  config.max_future_skew = 100LL * 365 * 86400000;
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-daemon-" + std::to_string(::getpid()));
  config.state.directory = dir.string();
  config.state.map_size = 1 << 20;

  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet({config.rules_path}, &diags);
  REQUIRE(set.has_value());
  auto rules = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set))).value();

  std::atomic<bool> stop{false};
  daemon::Daemon d(config, rules);
  int exit_code = -1;
  std::thread t([&] { exit_code = d.Run(stop); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (d.records_handled() < 4000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  t.join();
  CHECK(exit_code == 0);
  CHECK(d.records_handled() == 4000);
  CHECK(d.commits() > 0);
  CHECK(d.aborts() == 0);

  // The expectation: each partition's records, in offset order, through an
  // engine of its own (the watermark is per partition, and never finished).
  auto records = ReadAll(brokers, "events", 4000);
  REQUIRE(records.size() == 4000);
  std::map<int32_t, std::vector<engine::RawRecord>> by_partition;
  for (auto& r : records) by_partition[r.pos.partition].push_back(r);
  std::multiset<std::string> want;
  for (auto& [p, recs] : by_partition) {
    std::sort(recs.begin(), recs.end(), [](const auto& a, const auto& b) { return a.pos.offset < b.pos.offset; });
    engine::CollectingSink sink;
    engine::EventDecoder dec(rules, {});
    engine::Engine eng(rules, {}, &sink);
    for (const auto& r : recs) eng.Push(dec.Decode(r.payload, r.pos).value());
    for (const auto& a : sink.alerts) want.insert(a.json);
  }
  REQUIRE(want.size() >= 20);
  auto alerts = ReadAll(brokers, "alerts", want.size());
  std::multiset<std::string> got;
  for (const auto& a : alerts) got.insert(a.payload);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(d.alerts_published() == want.size());
  std::filesystem::remove_all(dir);
}

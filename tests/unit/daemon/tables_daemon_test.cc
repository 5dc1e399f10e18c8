// The daemon's tables (section 6.1) on librdkafka's mock cluster: a table
// topic read whole before READY, updates applied as they come, refused
// records in the dead-letter topic, and the table's metrics.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "cepheus/daemon/daemon.h"
#include "cepheus/daemon/rules_loader.h"
#include "cepheus/io/kafka.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;

namespace {

const char* kRules = R"(
table profiles
  key user_id
  time updated_at
rule foreign_order
  key user_id
  match o: order[profiles[user_id].country != null and country != profiles[user_id].country]
  within 1m
)";

std::shared_ptr<const nfa::CompiledRuleSet> Rules() { return testing::CompileRules(kRules); }

std::string Order(const std::string& id, const std::string& user, int64_t ts, const std::string& country) {
  return fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"{}","country":"{}"}})", id, ts, user, country);
}

}  // namespace

TEST_CASE("the daemon reads a table topic whole before it is ready, then applies updates as they come") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 1}, {"alerts", 1}, {"dead", 1}, {"profiles", 2},
                      {"cepheus-tables-changelog", 1}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  auto producer = io::KafkaProducer::Create(brokers, {});
  REQUIRE(producer.ok());
  // Profiles in two partitions, one record not JSON.
  for (int u = 0; u < 50; ++u) {
    std::string user = fmt::format("u{}", u);
    REQUIRE(producer.value()
                ->Produce("profiles", user, fmt::format(R"({{"user_id":"{}","updated_at":0,"country":"FR"}})", user))
                .ok());
  }
  REQUIRE(producer.value()->Produce("profiles", "u99", "not json").ok());
  REQUIRE(producer.value()->Flush(10000).ok());

  auto config = testing::TestConfig(brokers, "cepheus-tables");
  config.tables["profiles"] = {"profiles", 1000};
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-tables-" + std::to_string(::getpid()));
  config.state.directory = dir.string();
  auto rules = Rules();
  REQUIRE(daemon::CheckTablesConfigured(*rules, config).ok());

  daemon::Daemon d(config, rules);
  testing::DaemonThread running(d);
  REQUIRE(testing::Eventually([&] { return d.ready(); }));
  std::string scrape = testing::Scrape(d.metrics_port());
  CHECK(testing::Sample(scrape, "cepheus_table_keys{table=\"profiles\"}") == 50);  // read whole before READY
  CHECK(testing::Sample(scrape, "cepheus_table_records_refused_total{reason=\"malformed\",table=\"profiles\"}") == 1);
  CHECK(testing::Sample(scrape, "cepheus_table_bootstrap_seconds{table=\"profiles\"}") >= 0);

  // u1 at home, u2 abroad: one alert.
  REQUIRE(producer.value()->Produce("events", "u1", Order("a", "u1", 1000, "FR")).ok());
  REQUIRE(producer.value()->Produce("events", "u2", Order("b", "u2", 2000, "DE")).ok());
  REQUIRE(producer.value()->Flush(10000).ok());
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 2; }));
  // u3 moves to DE from ts 5000; the update arrives before the order of 6000.
  REQUIRE(producer.value()->Produce("profiles", "u3", R"({"user_id":"u3","updated_at":5000,"country":"DE"})").ok());
  REQUIRE(producer.value()->Flush(10000).ok());
  REQUIRE(testing::Eventually([&] {
    return testing::Sample(testing::Scrape(d.metrics_port()), "cepheus_table_records_total{table=\"profiles\"}") >= 51;
  }));
  REQUIRE(producer.value()->Produce("events", "u3", Order("c", "u3", 6000, "DE")).ok());
  REQUIRE(producer.value()->Produce("events", "u3", Order("d", "u3", 7000, "FR")).ok());
  REQUIRE(producer.value()->Flush(10000).ok());
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 4 && d.alerts_published() >= 2; }));
  CHECK(running.Stop() == 0);
  CHECK(d.alerts_published() == 2);  // b (DE, home FR) and d (FR, home DE from 5000)
  CHECK(d.malformed() == 1);         // the table record, sent to the dead-letter topic
  std::filesystem::remove_all(dir);
}

TEST_CASE("a daemon whose rules read a table with no source in the configuration does not start") {
  auto config = testing::TestConfig("127.0.0.1:1", "cepheus-no-table");
  Status st = daemon::CheckTablesConfigured(*Rules(), config);
  CHECK(st.code() == Status::Code::kFailedPrecondition);
  CHECK(st.message().find("table 'profiles' is read by the rules but has no source in the configuration: add "
                          "`tables: {profiles: {topic: TOPIC}}`") != std::string::npos);
}

TEST_CASE("a table past its max_versions refuses the records beyond, counts them, logs it and dead-letters them") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 1}, {"alerts", 1}, {"dead", 1}, {"profiles", 1}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  auto producer = io::KafkaProducer::Create(brokers, {});
  REQUIRE(producer.ok());
  for (int u = 0; u < 20; ++u) {
    std::string user = fmt::format("u{}", u);
    REQUIRE(producer.value()
                ->Produce("profiles", user, fmt::format(R"({{"user_id":"{}","updated_at":0,"country":"FR"}})", user))
                .ok());
  }
  REQUIRE(producer.value()->Flush(10000).ok());
  auto config = testing::TestConfig(brokers, "cepheus-table-limit");
  config.tables["profiles"] = {"profiles", 12};
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-table-limit-" + std::to_string(::getpid()));
  config.state.directory = dir.string();
  testing::CapturedStderr log;
  daemon::Daemon d(config, Rules());
  testing::DaemonThread running(d);
  REQUIRE(testing::Eventually([&] { return d.ready(); }));
  REQUIRE(testing::Eventually([&] {
    std::string scrape = testing::Scrape(d.metrics_port());
    return testing::Sample(scrape, "cepheus_table_records_refused_total{reason=\"limit\",table=\"profiles\"}") == 8;
  }));
  CHECK(testing::Sample(testing::Scrape(d.metrics_port()), "cepheus_table_keys{table=\"profiles\"}") == 12);
  CHECK(running.Stop() == 0);
  CHECK(d.malformed() == 8);  // each refused record went to the dead-letter topic
  CHECK(log.text().find("table profiles: 8 records refused at its limit of 12 versions (tables.profiles.max_versions)") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a restarted daemon loads its tables from the state directory and reads only the records after them") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 1}, {"alerts", 1}, {"dead", 1}, {"profiles", 2}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  auto producer = io::KafkaProducer::Create(brokers, {});
  REQUIRE(producer.ok());
  auto profile = [&](int u, const char* country) {
    std::string user = fmt::format("u{}", u);
    REQUIRE(producer.value()
                ->Produce("profiles", user,
                          fmt::format(R"({{"user_id":"{}","updated_at":0,"country":"{}"}})", user, country))
                .ok());
  };
  for (int u = 0; u < 20; ++u) profile(u, "FR");
  REQUIRE(producer.value()->Flush(10000).ok());
  auto config = testing::TestConfig(brokers, "cepheus-table-restart");
  config.tables["profiles"] = {"profiles", 1000};
  // The mock cluster keeps a closed member until its session times out.
  config.kafka.consumer = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-table-restart-" + std::to_string(::getpid()));
  config.state.directory = dir.string();
  {
    daemon::Daemon d(config, Rules());
    testing::DaemonThread running(d);
    REQUIRE(testing::Eventually([&] { return d.ready(); }));
    CHECK(running.Stop() == 0);
  }
  for (int u = 20; u < 25; ++u) profile(u, "DE");
  REQUIRE(producer.value()->Flush(10000).ok());
  testing::CapturedStderr log;
  daemon::Daemon d(config, Rules());
  testing::DaemonThread running(d);
  REQUIRE(testing::Eventually([&] { return d.ready(); }));
  CHECK(testing::Sample(testing::Scrape(d.metrics_port()), "cepheus_table_keys{table=\"profiles\"}") == 25);
  // u3's profile came from the state directory, u22's from the topic.
  REQUIRE(producer.value()->Produce("events", "u3", Order("a", "u3", 1000, "DE")).ok());
  REQUIRE(producer.value()->Produce("events", "u22", Order("b", "u22", 2000, "FR")).ok());
  REQUIRE(producer.value()->Flush(10000).ok());
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 2 && d.alerts_published() >= 2; }));
  CHECK(running.Stop() == 0);
  CHECK(d.alerts_published() == 2);
  CHECK(log.text().find("table profiles: 20 versions kept from the last run, 5 records read from profiles") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}

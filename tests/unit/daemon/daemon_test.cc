// `cepheus run` on librdkafka's mock cluster (fast; the mock cannot prove
// exactly-once, the real-broker tests do): the alerts it publishes equal, byte
// for byte, those of an engine replaying each partition's records in order.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "cepheus/io/kafka.h"
#include "cli/gen.h"
#include "cepheus/daemon/daemon.h"
#include "cepheus/gen/generator.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using testing::ShippedRules;
using testing::TestConfig;

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

std::multiset<std::string> ExpectedAlerts(const std::vector<engine::RawRecord>& records,
                                          const std::shared_ptr<const nfa::CompiledRuleSet>& rules) {
  std::map<int32_t, std::vector<engine::RawRecord>> by_partition;
  for (const auto& r : records) by_partition[r.pos.partition].push_back(r);
  std::multiset<std::string> want;
  for (auto& [p, recs] : by_partition) {
    std::sort(recs.begin(), recs.end(), [](const auto& a, const auto& b) { return a.pos.offset < b.pos.offset; });
    engine::CollectingSink sink;
    engine::EventDecoder dec(rules, {});
    engine::Engine eng(rules, {}, &sink);
    for (const auto& r : recs) eng.Push(dec.Decode(r.payload, r.pos).value());
    for (const auto& a : sink.alerts) want.insert(a.json);
  }
  return want;
}

enum class Second {
  kSameDirectory,   // a restart
  kEmptyDirectory,  // another machine: the state can only come from the changelog
  kCorruptedFiles,  // data.mdb truncated while stopped: set aside, rebuilt from the changelog
  kDamagedRecords,  // bytes of stored events changed inside sound pages: caught by the checksums, as above
};

// Changes every `"type":"order"` in the file into `"type":"ordex"`: a valid
// event still, so only a checksum can tell. Returns how many.
int DamageStoredEvents(const std::filesystem::path& file) {
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string from = R"("type":"order")", to = R"("type":"ordex")";
  int n = 0;
  for (size_t at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at + 1), ++n) {
    bytes.replace(at, to.size(), to);
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return n;
}

// Runs the generated events through a daemon stopped halfway and a second
// one started after it, as `second` says.
void StopAndStartAgain(Second second) {
  bool move = second == Second::kEmptyDirectory;
  const bool damaged = second == Second::kCorruptedFiles || second == Second::kDamagedRecords;
  std::string name = move                                 ? "cepheus-move"
                     : second == Second::kCorruptedFiles ? "cepheus-corrupt"
                     : second == Second::kDamagedRecords ? "cepheus-damaged"
                                                         : "cepheus-restart";
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 2}, {"alerts", 1}, {"dead", 1}, {name + "-changelog", 2}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  // 3000 generated events, produced in two halves: the daemon is stopped
  // after the first and a new one started for the second.
  std::vector<std::string> lines;
  gen::GenOptions g;
  g.events = 3000;
  g.users = 20;
  g.fraud_rate = 0.05;
  g.seed = 11;
  gen::GenerateEvents(g, [&](std::string_view l) { lines.emplace_back(l); });
  auto producer = io::KafkaProducer::Create(brokers, {});
  REQUIRE(producer.ok());
  auto produce = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      REQUIRE(producer.value()->Produce("events", testing::UserOf(lines[i]), lines[i]).ok());
    }
    REQUIRE(producer.value()->Flush(10000).ok());
  };

  auto config = TestConfig(brokers, name);
  // The mock cluster keeps a closed member until its session times out.
  config.kafka.consumer = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  auto dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  config.state.directory = (dir / "first").string();
  auto rules = ShippedRules();

  uint64_t handled = 0, published = 0, restored_runs_seen = 0;
  for (uint64_t stop_after : {1500ULL, 3000ULL}) {
    produce(stop_after - 1500, stop_after);
    if (stop_after == 3000 && move) config.state.directory = (dir / "second").string();
    if (stop_after == 3000 && second == Second::kCorruptedFiles) {
      std::filesystem::resize_file(dir / "first" / "data.mdb", 8192);
    }
    if (stop_after == 3000 && second == Second::kDamagedRecords) {
      REQUIRE(DamageStoredEvents(dir / "first" / "data.mdb") > 0);
    }
    daemon::Daemon d(config, rules);
    testing::DaemonThread running(d);
    REQUIRE(testing::Eventually([&] { return handled + d.records_handled() >= stop_after; }, std::chrono::seconds(60)));
    // The restore of its partitions is timed (reliability test C1).
    std::string scrape = testing::Scrape(d.metrics_port());
    CHECK(testing::Sample(scrape, "cepheus_state_restore_seconds_count") >= 1);
    CHECK(testing::Sample(scrape, "cepheus_state_quarantined_files") == (damaged && stop_after == 3000 ? 1 : 0));
    CHECK(running.Stop() == 0);
    handled += d.records_handled();
    published += d.alerts_published();
    restored_runs_seen += d.restored_runs();
  }
  CHECK(handled == 3000);      // nothing read twice, nothing skipped
  CHECK(restored_runs_seen > 0);  // the second daemon started from the first one's runs

  auto records = ReadAll(brokers, "events", 3000);
  REQUIRE(records.size() == 3000);
  auto want = ExpectedAlerts(records, rules);
  auto alerts = ReadAll(brokers, "alerts", want.size());
  std::multiset<std::string> got;
  for (const auto& a : alerts) got.insert(a.payload);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(published == want.size());
  if (damaged) {
    int aside = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir / "first")) {
      aside += e.path().filename().string().rfind("corrupt-", 0) == 0 && std::filesystem::exists(e.path() / "data.mdb");
    }
    CHECK(aside == 1);  // the damaged files are kept for a post-mortem
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a daemon stopped and started again publishes every alert once, patterns spanning the restart included") {
  StopAndStartAgain(Second::kSameDirectory);
}

TEST_CASE("a partition's partial matches follow it to a daemon with an empty state directory") {
  StopAndStartAgain(Second::kEmptyDirectory);
}

TEST_CASE("damaged state files are set aside and the state is rebuilt from the changelog, with no alert lost or repeated") {
  StopAndStartAgain(Second::kCorruptedFiles);
}

TEST_CASE("stored events changed inside sound pages fail their checksums: the file is set aside and the state rebuilt "
          "from the changelog, with no alert lost or repeated") {
  StopAndStartAgain(Second::kDamagedRecords);
}

TEST_CASE("the daemon's alerts equal a per-partition replay of the same records") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair{"events", 3}, {"alerts", 1}, {"dead", 1}, {"cepheus-test-changelog", 3}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }

  cli::GenCommandOptions g;
  g.events = 4000;
  g.users = 30;
  g.fraud_rate = 0.05;
  g.kafka = brokers;
  g.topic = "events";
  REQUIRE(cli::RunGen(g) == 0);

  auto config = TestConfig(brokers, "cepheus-test");
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-daemon-" + std::to_string(::getpid()));
  config.state.directory = dir.string();
  config.state.map_size = 1 << 20;

  auto rules = ShippedRules();

  daemon::Daemon d(config, rules);
  testing::DaemonThread running(d);
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 4000; }, std::chrono::seconds(60)));
  CHECK(running.Stop() == 0);
  CHECK(d.records_handled() == 4000);
  CHECK(d.commits() > 0);
  CHECK(d.aborts() == 0);

  // The expectation: each partition's records, in offset order, through an
  // engine of its own (the watermark is per partition, and never finished).
  auto records = ReadAll(brokers, "events", 4000);
  REQUIRE(records.size() == 4000);
  auto want = ExpectedAlerts(records, rules);
  REQUIRE(want.size() >= 20);
  auto alerts = ReadAll(brokers, "alerts", want.size());
  std::multiset<std::string> got;
  for (const auto& a : alerts) got.insert(a.payload);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(d.alerts_published() == want.size());
  std::filesystem::remove_all(dir);
}

TEST_CASE("a crash failpoint names a side of the Kafka commit and a commit counted from 1") {
  auto after = daemon::ParseFailpoint("after-kafka-commit:20");
  REQUIRE(after.ok());
  CHECK(after.value().point == daemon::Failpoint::Point::kAfterKafkaCommit);
  CHECK(after.value().commit == 20);
  auto before = daemon::ParseFailpoint("before-kafka-commit:1");
  REQUIRE(before.ok());
  CHECK(before.value().point == daemon::Failpoint::Point::kBeforeKafkaCommit);
  for (const char* bad : {"after-kafka-commit:0", "after-kafka-commit", "during-kafka-commit:3", "after-kafka-commit:3x",
                          ""}) {
    CAPTURE(bad);
    CHECK(daemon::ParseFailpoint(bad).status().message().find("expected before-kafka-commit:N") !=
          std::string::npos);
  }
}

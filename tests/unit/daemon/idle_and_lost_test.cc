// Wall-clock behaviour of the daemon on librdkafka's mock cluster: a quiet
// partition's absence alerts still fire (its watermark follows the clock after
// the idle timeout) and its next records are not late (reliability F1); a
// loop stalled past max.poll.interval.ms loses its assignment, aborts, and
// carries on once the group gives the partitions back, with every record in
// the state once (C2); an alert's batch is committed as soon as the loop has
// handled every fetched record, not at the end of the commit interval.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "cepheus/io/kafka.h"
#include "cepheus/daemon/daemon.h"
#include "cepheus/daemon/rules_loader.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using Clock = std::chrono::steady_clock;

using testing::Eventually;
using testing::TestConfig;

namespace {

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}


struct Setup {
  std::unique_ptr<io::MockCluster> cluster;
  std::unique_ptr<io::KafkaProducer> producer;
  daemon::Config config;
  std::filesystem::path dir;

  Setup(const std::string& name, const std::string& rules_text) {
    auto c = io::MockCluster::Create(1);
    REQUIRE(c.ok());
    cluster = std::move(c).value();
    for (auto [t, n] : {std::pair<std::string, int>{"events", 2}, {"alerts", 1}, {"dead", 1}, {name + "-changelog", 2}}) {
      REQUIRE(cluster->CreateTopic(t, n).ok());
    }
    auto p = io::KafkaProducer::Create(cluster->bootstraps(), {});
    REQUIRE(p.ok());
    producer = std::move(p).value();
    dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "rules");
    std::ofstream(dir / "rules" / "r.rules") << rules_text;
    config = TestConfig(cluster->bootstraps(), name);
    config.rules_paths = {(dir / "rules").string()};
    config.state.directory = (dir / "state").string();
  }
  ~Setup() { std::filesystem::remove_all(dir); }
  void Send(const std::string& user, const std::string& json) {
    REQUIRE(producer->Produce("events", user, json).ok());
    REQUIRE(producer->Flush(10000).ok());
  }
};

}  // namespace

TEST_CASE("a quiet partition's absence alert fires by the wall clock, and its next records are not late") {
  Setup s("cepheus-idle-f1",
          "rule unpaid key user_id match o: order -> absent p: payment[order_id == o.order_id] within 3s\n");
  s.config.idle_timeout = 1000;
  s.config.out_of_order = 500;
  s.config.max_future_skew = 60000;
  auto rules = daemon::LoadAndCompile(s.config.rules_paths, std::cerr);
  REQUIRE(rules);
  std::mutex mu;
  std::vector<std::pair<std::string, Clock::time_point>> alerts;
  daemon::Daemon d(s.config, rules);
  d.set_on_alert([&](const engine::Alert& a) {
    std::lock_guard<std::mutex> lock(mu);
    alerts.emplace_back(a.json, Clock::now());
  });
  testing::DaemonThread running(d);
  REQUIRE(Eventually([&] { return d.ready(); }, std::chrono::seconds(30)));  // partitions assigned

  // One order, then the partition falls silent.
  auto sent = Clock::now();  // the order's time is the clock now
  s.Send("u1", R"({"type":"order","order_id":"o1","user_id":"u1","ts":)" + std::to_string(NowMs()) + "}");
  bool fired = Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !alerts.empty();
  }, std::chrono::seconds(15));
  INFO("records handled: " << d.records_handled() << ", late: " << d.late_events());
  REQUIRE(fired);
  double after = std::chrono::duration<double>(alerts[0].second - sent).count();
  CHECK(alerts[0].first.find("\"reason\":\"absence\"") != std::string::npos);
  // Due when the quiet partition's watermark (the clock - idle timeout 1 s -
  // out-of-orderness 0.5 s) passes the window's end (3 s): 4.5 s after the
  // order, then at most one probe of the clock (0.5 s) and a commit.
  CHECK(after >= 4.5);
  CHECK(after < 4.5 + 0.5 + 1.0);
  MESSAGE("absence alert " << after << " s after the order, with the partition silent");

  // The partition resumes with a record of now: evaluated, not late.
  uint64_t late_before = d.late_events();
  s.Send("u1", R"({"type":"login","user_id":"u1","ts":)" + std::to_string(NowMs()) + "}");
  REQUIRE(Eventually([&] { return d.records_handled() == 2; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(d.late_events() == late_before);
}

TEST_CASE("an alert is committed once every fetched record is handled, without waiting for the commit interval") {
  Setup s("cepheus-eager-commit", "rule logins key user_id match l: login{2} within 1h\n");
  s.config.state.commit_interval = 60000;  // a minute: only the eager commit can be seen in the test
  auto rules = daemon::LoadAndCompile(s.config.rules_paths, std::cerr);
  REQUIRE(rules);
  daemon::Daemon d(s.config, rules);
  testing::DaemonThread running(d);
  REQUIRE(Eventually([&] { return d.ready(); }, std::chrono::seconds(30)));
  auto committed_alerts = [&] {
    return testing::Sample(testing::Scrape(d.metrics_port()), "cepheus_event_to_alert_seconds_count");
  };

  // Records that raise no alert wait for the interval.
  uint64_t commits_before = d.commits();
  s.Send("u1", R"({"type":"login","user_id":"u1","ts":1000})");
  s.Send("u2", R"({"type":"login","user_id":"u2","ts":1001})");
  REQUIRE(Eventually([&] { return d.records_handled() == 2; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(d.commits() == commits_before);
  CHECK(committed_alerts() == 0);

  // The second login of u1 raises an alert: its batch is committed at once.
  auto sent = Clock::now();
  s.Send("u1", R"({"type":"login","user_id":"u1","ts":1002})");
  REQUIRE(Eventually([&] { return committed_alerts() == 1; }, std::chrono::seconds(10)));
  double after = std::chrono::duration<double>(Clock::now() - sent).count();
  CHECK(after < 5.0);  // far inside the minute of the interval
  CHECK(d.commits() == commits_before + 1);
  MESSAGE("alert committed " << after << " s after its record was produced, with a 60 s commit interval");
}

TEST_CASE("a loop stalled past max.poll.interval.ms loses its assignment, aborts, and carries on with every record "
          "in the state once") {
  Setup s("cepheus-lost-c2", "rule logins key user_id match l: login{2} within 1h\n");
  // The consumer leaves the group when the application does not poll for 4 s.
  s.config.kafka.consumer = {{"max.poll.interval.ms", "4000"},
                             {"session.timeout.ms", "3000"},
                             {"heartbeat.interval.ms", "500"}};
  auto rules = daemon::LoadAndCompile(s.config.rules_paths, std::cerr);
  REQUIRE(rules);
  std::atomic<bool> stall{false};
  auto owned = std::make_unique<daemon::Daemon>(s.config, rules);
  daemon::Daemon& d = *owned;
  d.set_on_alert([&](const engine::Alert&) {
    if (stall.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(6000));
  });
  testing::DaemonThread running(d);
  REQUIRE(Eventually([&] { return d.ready(); }, std::chrono::seconds(30)));

  long long ts = 1000;
  for (int i = 0; i < 50; ++i) s.Send("u" + std::to_string(i % 5), R"({"type":"login","user_id":"u)" + std::to_string(i % 5) + R"(","ts":)" + std::to_string(ts++) + "}");
  REQUIRE(Eventually([&] { return d.records_handled() >= 50; }, std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // committed
  uint64_t aborts_before = d.aborts();

  // The next alert stalls the loop for 6 s: more than max.poll.interval.ms.
  stall = true;
  for (int i = 0; i < 50; ++i) s.Send("u" + std::to_string(i % 5), R"({"type":"login","user_id":"u)" + std::to_string(i % 5) + R"(","ts":)" + std::to_string(ts++) + "}");
  REQUIRE(Eventually([&] { return d.aborts() > aborts_before; }, std::chrono::seconds(60)));  // the lost assignment
  // The group gives the partitions back; what the aborted batch held is read again.
  for (int i = 0; i < 50; ++i) s.Send("u" + std::to_string(i % 5), R"({"type":"login","user_id":"u)" + std::to_string(i % 5) + R"(","ts":)" + std::to_string(ts++) + "}");
  CHECK(testing::EventuallyQuiet([&] { return d.records_handled(); }, 150));
  running.Stop();
  CHECK(d.aborts() > aborts_before);
  owned.reset();
  int64_t committed = testing::CommittedRecords(s.config);
  CHECK(committed == 150);
}

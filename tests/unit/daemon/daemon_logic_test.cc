// The daemon's own logic on an in-memory Kafka (fake_kafka.h): what is
// committed together, what an abort undoes, where a moved partition's state
// comes from, what a reload keeps. Each case runs in well under a second; the
// mock-cluster and real-broker tests keep librdkafka's side honest.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "cepheus/daemon/daemon.h"
#include "fake_kafka.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using testing::FakeKafka;

namespace {

constexpr const char* kRule = "rule two_orders\n  key user_id\n  match o: order{2}\n  within 1h\n";

std::string Order(const std::string& id, const std::string& user, int64_t ts) {
  return "{\"id\":\"" + id + "\",\"type\":\"order\",\"ts\":" + std::to_string(ts) + ",\"user_id\":\"" + user + "\"}";
}

// A fake cluster with the daemon's topics, and a configuration for it whose
// state lives in a fresh directory.
struct World {
  World() : dir(std::filesystem::temp_directory_path() / ("cepheus-logic-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    for (const char* t : {"events", "alerts", "dead", "late"}) kafka.CreateTopic(t, t == std::string("events") ? 2 : 1);
    kafka.CreateTopic("logic-changelog", 2);
  }
  ~World() { std::filesystem::remove_all(dir); }
  daemon::Config Config(const std::string& state) const {
    auto c = testing::TestConfig("fake:9092", "logic");
    c.state.directory = (dir / state).string();
    c.state.commit_interval = 20;
    c.kafka.late_topic = "late";
    c.rules_paths = {(dir / "rules").string()};
    c.metrics.listen = "";  // no HTTP endpoint: stopping civetweb's takes 2 s
    return c;
  }
  std::filesystem::path dir;
  FakeKafka kafka;
};

}  // namespace

TEST_CASE("an alert and the offsets that produced it are committed in one transaction, with the state change") {
  World w;
  daemon::Daemon d(w.Config("a"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run(d);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  auto alerts = w.kafka.Committed("alerts");
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].key == "u1");
  CHECK(alerts[0].value->find("\"rule\":\"two_orders\"") != std::string::npos);
  // The changelog holds the partition's offset record beside the engine's.
  bool offset_logged = false;
  for (const auto& r : w.kafka.Committed("logic-changelog")) offset_logged |= r.key == "p/events/0/offset";
  CHECK(offset_logged);
  CHECK(run.Stop() == 0);
}

TEST_CASE("a malformed record goes to the dead-letter topic with its reason and origin, and the next one is read") {
  World w;
  daemon::Daemon d(w.Config("a"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run(d);
  w.kafka.Append("events", 1, "{not json");
  w.kafka.Append("events", 1, Order("a", "u1", 1000));
  w.kafka.Append("events", 1, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 1) == 3; }, std::chrono::seconds(5)));
  auto dead = w.kafka.Committed("dead");
  REQUIRE(dead.size() == 1);
  CHECK(*dead[0].value == "{not json");
  std::map<std::string, std::string> headers(dead[0].headers.begin(), dead[0].headers.end());
  CHECK(headers["cepheus.error"].find("not valid JSON") != std::string::npos);
  CHECK(headers["cepheus.origin.partition"] == "1");
  CHECK(headers["cepheus.origin.offset"] == "0");
  CHECK(w.kafka.Committed("alerts").size() == 1);
  CHECK(d.malformed() == 1);
  CHECK(run.Stop() == 0);
}

TEST_CASE("an aborted transaction is read again from the state it rolled back to, and its alert is published once") {
  World w;
  w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kAbort);
  daemon::Daemon d(w.Config("a"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run(d);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  CHECK(w.kafka.aborts() >= 1);
  CHECK(d.aborts() >= 1);
  CHECK(w.kafka.Committed("alerts").size() == 1);
  CHECK(run.Stop() == 0);
}

TEST_CASE("a fenced producer stops the daemon with exit code 1 and commits nothing more") {
  World w;
  w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kFatal);
  daemon::Daemon d(w.Config("a"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run(d);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return run.finished(); }, std::chrono::seconds(5)));
  CHECK(run.Stop() == 1);
  CHECK(w.kafka.Committed("alerts").empty());
  CHECK(w.kafka.GroupOffset("events", 0) == -1);
}

TEST_CASE("a partition moved to another daemon brings its partial matches through the changelog") {
  World w;
  daemon::Daemon first(w.Config("first"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run_first(first);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 1; }, std::chrono::seconds(5)));
  REQUIRE(first.active_runs() == 1);

  daemon::Daemon second(w.Config("second"), testing::CompileRules(kRule), &w.kafka);  // empty state directory
  testing::DaemonThread run_second(second);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0, 1});
  REQUIRE(testing::Eventually([&] { return second.active_runs() == 1 && first.active_runs() == 0; },
                              std::chrono::seconds(5)));
  CHECK(second.restored_runs() == 1);
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  auto alerts = w.kafka.Committed("alerts");
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].value->find("\"a\"") != std::string::npos);  // the first order came with the state
  CHECK(first.alerts_published() == 0);
  CHECK(second.alerts_published() == 1);
  CHECK(run_second.Stop() == 0);
  CHECK(run_first.Stop() == 0);
}

TEST_CASE("a 10 KB key is kept in LMDB and the changelog under its digest and follows its partition to another daemon") {
  World w;
  const std::string user(10 * 1024, 'u');
  daemon::Daemon first(w.Config("first"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run_first(first);
  w.kafka.Append("events", 0, Order("a", user, 1000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 1; }, std::chrono::seconds(5)));
  REQUIRE(first.active_runs() == 1);
  size_t longest = 0;
  for (const auto& r : w.kafka.Committed("logic-changelog")) longest = std::max(longest, r.key.size());
  CHECK(longest < 64);  // "p/events/0/engine/h/" and 16 bytes

  daemon::Daemon second(w.Config("second"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run_second(second);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0, 1});
  REQUIRE(testing::Eventually([&] { return second.active_runs() == 1; }, std::chrono::seconds(5)));
  w.kafka.Append("events", 0, Order("b", user, 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  auto alerts = w.kafka.Committed("alerts");
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].key == user);
  CHECK(run_second.Stop() == 0);
  CHECK(run_first.Stop() == 0);
}

TEST_CASE("under a backlog a batch is committed every state.commit_records records, not every commit interval") {
  World w;
  auto config = w.Config("a");
  config.state.commit_interval = 1;  // by time alone, nearly every turn of 1000 records would commit
  config.state.commit_records = 5000;
  constexpr int kRecords = 20000;  // fetched before the daemon starts: a backlog
  for (int i = 0; i < kRecords; ++i) {
    w.kafka.Append("events", i % 2, Order("e" + std::to_string(i), "u" + std::to_string(i), 1000 + i));
  }
  daemon::Daemon d(config, testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run(d);
  REQUIRE(testing::Eventually([&] {
    return w.kafka.GroupOffset("events", 0) == kRecords / 2 && w.kafka.GroupOffset("events", 1) == kRecords / 2;
  }, std::chrono::seconds(20)));
  CHECK(run.Stop() == 0);
  // 20 000 records in batches of 5 000, and the batch in hand when the
  // loop caught up; at most one more at the end.
  CHECK(d.commits() >= kRecords / 5000);
  CHECK(d.commits() <= kRecords / 5000 + 2);
}

TEST_CASE("a lost assignment aborts the open batch: nothing of it is committed, and the next owner reads it again") {
  World w;
  auto config = w.Config("first");
  config.state.commit_interval = 3600000;  // only an alert (or the loss) ends a batch
  daemon::Daemon first(config, testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run_first(first);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  REQUIRE(testing::Eventually([&] { return first.records_handled() == 1; }, std::chrono::seconds(5)));
  w.kafka.Revoke(0, "events", {0}, /*lost=*/true);
  REQUIRE(testing::Eventually([&] { return first.aborts() == 1; }, std::chrono::seconds(5)));
  CHECK(w.kafka.GroupOffset("events", 0) == -1);

  daemon::Daemon second(w.Config("second"), testing::CompileRules(kRule), &w.kafka);
  testing::DaemonThread run_second(second);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0});
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  CHECK(second.records_handled() == 2);  // both orders, the lost batch's included
  CHECK(w.kafka.Committed("alerts").size() == 1);
  CHECK(run_second.Stop() == 0);
  CHECK(run_first.Stop() == 0);
}

TEST_CASE("a reload keeps the partial matches of an unchanged rule and drops those of a changed one") {
  World w;
  std::filesystem::create_directories(w.dir / "rules");
  const std::string kept = kRule;
  const std::string changed = "rule three_orders\n  key user_id\n  match o: order{3}\n  within 1h\n";
  std::ofstream(w.dir / "rules" / "r.rules") << kept << changed;
  auto config = w.Config("a");
  daemon::Daemon d(config, testing::CompileRules(kept + changed), &w.kafka);
  std::atomic<bool> reload{false};
  testing::DaemonThread run(d, &reload);
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 1 && d.active_runs() == 2; },
                              std::chrono::seconds(5)));
  std::ofstream(w.dir / "rules" / "r.rules", std::ios::trunc)
      << kept << "rule three_orders\n  key user_id\n  match o: order{3}\n  within 2h\n";
  reload = true;
  REQUIRE(testing::Eventually([&] { return d.rule_state_dropped() == 1; }, std::chrono::seconds(5)));
  CHECK(d.active_runs() == 1);
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  auto alerts = w.kafka.CommittedValues("alerts");
  REQUIRE(alerts.size() == 1);  // two_orders kept its first order; three_orders started again
  CHECK(alerts[0].find("two_orders") != std::string::npos);
  CHECK(run.Stop() == 0);
}

TEST_CASE("a reload of a rule whose expression is too large is refused and the running rules go on") {
  World w;
  std::filesystem::create_directories(w.dir / "rules");
  std::ofstream(w.dir / "rules" / "r.rules") << kRule;
  daemon::Daemon d(w.Config("a"), testing::CompileRules(kRule), &w.kafka);
  std::atomic<bool> reload{false};
  testing::DaemonThread run(d, &reload);
  // The 25 000-term sum that once overflowed the checker's stack (and so
  // killed the daemon on SIGHUP).
  std::string sum = "1";
  for (int i = 1; i < 25000; ++i) sum += " + 1";
  std::ofstream(w.dir / "rules" / "r.rules", std::ios::trunc)
      << "rule long\n  key user_id\n  match o: order\n  where " << sum << " > 0\n  within 1m\n";
  reload = true;
  REQUIRE(testing::Eventually([&] { return !reload.load(); }, std::chrono::seconds(5)));
  w.kafka.Append("events", 0, Order("a", "u1", 1000));
  w.kafka.Append("events", 0, Order("b", "u1", 2000));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  CHECK(w.kafka.Committed("alerts").size() == 1);  // two_orders still runs
  CHECK_FALSE(run.finished());
  CHECK(run.Stop() == 0);
}

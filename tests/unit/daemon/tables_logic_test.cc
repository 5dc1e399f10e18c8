// The daemon's tables on the in-memory Kafka (fake_kafka.h): what happens to
// a table's dead letters when a transaction aborts, and a rule reload that
// adds a table while the running rules and tables go on.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cepheus/daemon/daemon.h"
#include "fake_kafka.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using testing::FakeKafka;

namespace {

constexpr const char* kProfiles = R"(
table profiles
  key user_id
  time updated_at
rule foreign_order
  key user_id
  match o: order[profiles[user_id].country != null and country != profiles[user_id].country]
  within 1m
)";

constexpr const char* kBlocked = R"(
table blocked
  key card
rule blocked_card
  key user_id
  match p: payment[card in blocked]
  within 1m
)";

std::string Order(const std::string& id, const std::string& user, int64_t ts, const std::string& country) {
  return fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"{}","country":"{}"}})", id, ts, user, country);
}

std::string Profile(const std::string& user, const std::string& country) {
  return fmt::format(R"({{"user_id":"{}","updated_at":0,"country":"{}"}})", user, country);
}

struct World {
  World() : dir(std::filesystem::temp_directory_path() / ("cepheus-tables-logic-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "rules");
    for (const char* t : {"events", "alerts", "dead", "profiles", "blocked"}) kafka.CreateTopic(t, 1);
    kafka.CreateTopic("logic-changelog", 1);
  }
  ~World() { std::filesystem::remove_all(dir); }
  daemon::Config Config() const {
    auto c = testing::TestConfig("fake:9092", "logic");
    c.state.directory = (dir / "state").string();
    c.state.commit_interval = 20;
    c.rules_paths = {(dir / "rules").string()};
    c.metrics.listen = "";
    c.tables["profiles"] = {"profiles", 1000};
    c.tables["blocked"] = {"blocked", 1000};
    return c;
  }
  size_t Alerts(const std::string& rule) const {
    size_t n = 0;
    for (const auto& v : kafka.CommittedValues("alerts")) n += v.find("\"rule\":\"" + rule + "\"") != std::string::npos;
    return n;
  }
  std::filesystem::path dir;
  FakeKafka kafka;
};

}  // namespace

TEST_CASE("a table record refused in a transaction that aborts is dead-lettered again, once, and not after a restart") {
  World w;
  w.kafka.Append("profiles", 0, Profile("u1", "FR"));
  w.kafka.Append("profiles", 0, "not json");
  w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kAbort);
  {
    daemon::Daemon d(w.Config(), testing::CompileRules(kProfiles), &w.kafka);
    testing::DaemonThread run(d);
    REQUIRE(testing::Eventually([&] { return w.kafka.Committed("dead").size() == 1; }, std::chrono::seconds(5)));
    CHECK(w.kafka.aborts() >= 1);  // the first transaction, which held the dead letter, aborted
    CHECK(run.Stop() == 0);
  }
  auto dead = w.kafka.Committed("dead");
  std::map<std::string, std::string> headers(dead[0].headers.begin(), dead[0].headers.end());
  CHECK(*dead[0].value == "not json");
  CHECK(headers["cepheus.error"].find("table profiles: not valid JSON") == 0);
  CHECK(headers["cepheus.origin.topic"] == "profiles");
  CHECK(headers["cepheus.origin.offset"] == "1");
  // The table was kept with its offsets once the letter was committed: a
  // restart reads nothing again, and sends nothing again.
  daemon::Daemon again(w.Config(), testing::CompileRules(kProfiles), &w.kafka);
  testing::DaemonThread run(again);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0});  // the first consumer is gone
  REQUIRE(testing::Eventually([&] { return again.ready(); }, std::chrono::seconds(5)));
  w.kafka.Append("events", 0, Order("a", "u1", 1000, "DE"));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 1; }, std::chrono::seconds(5)));
  CHECK(w.Alerts("foreign_order") == 1);  // the stored table serves the lookup
  CHECK(w.kafka.Committed("dead").size() == 1);
  CHECK(run.Stop() == 0);
}

TEST_CASE("a reload that adds a table reads it while the running rules and tables go on, then swaps the rules in") {
  World w;
  w.kafka.Append("profiles", 0, Profile("u1", "FR"));
  w.kafka.Append("blocked", 0, R"({"card":"c1"})");
  std::ofstream(w.dir / "rules" / "r.rules") << kProfiles;
  daemon::Daemon d(w.Config(), testing::CompileRules(kProfiles), &w.kafka);
  std::atomic<bool> reload{false};
  testing::DaemonThread run(d, &reload);
  REQUIRE(testing::Eventually([&] { return d.ready(); }, std::chrono::seconds(5)));
  CHECK(w.kafka.readers() == 1);

  // The new table takes long to read: the reload waits for it.
  w.kafka.HoldReads("blocked", true);
  std::ofstream(w.dir / "rules" / "r.rules", std::ios::trunc) << kProfiles << kBlocked;
  reload = true;
  REQUIRE(testing::Eventually([&] { return d.reload_pending(); }, std::chrono::seconds(5)));
  // Meanwhile the running rule alerts, on a profile that arrives meanwhile.
  w.kafka.Append("profiles", 0, Profile("u2", "FR"));
  w.kafka.Append("events", 0, Order("a", "u1", 1000, "DE"));
  w.kafka.Append("events", 0, R"({"id":"p1","type":"payment","ts":1500,"user_id":"u3","card":"c1"})");
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 2; }, std::chrono::seconds(5)));
  w.kafka.Append("events", 0, Order("b", "u2", 2000, "DE"));
  REQUIRE(testing::Eventually([&] { return w.Alerts("foreign_order") == 2; }, std::chrono::seconds(5)));
  CHECK(d.reload_pending());
  CHECK(w.Alerts("blocked_card") == 0);  // not yet a rule
  CHECK(d.rules().programs.size() == 1);

  w.kafka.HoldReads("blocked", false);
  REQUIRE(testing::Eventually([&] { return !d.reload_pending(); }, std::chrono::seconds(5)));
  CHECK(d.rules().programs.size() == 2);
  CHECK(w.kafka.readers() == 2);  // profiles was taken over, not read again
  w.kafka.Append("events", 0, R"({"id":"p2","type":"payment","ts":3000,"user_id":"u3","card":"c1"})");
  w.kafka.Append("events", 0, Order("c", "u2", 3500, "ES"));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 5; }, std::chrono::seconds(5)));
  CHECK(w.Alerts("blocked_card") == 1);
  CHECK(w.Alerts("foreign_order") == 3);  // the profiles taken over still serve lookups
  CHECK(run.Stop() == 0);
}

TEST_CASE("a table whose topic does not exist stops the start with exit 78, naming the table and the topic") {
  World w;
  auto config = w.Config();
  config.tables["profiles"] = {"profiles-typo", 1000};
  testing::CapturedStderr log;
  daemon::Daemon d(config, testing::CompileRules(kProfiles), &w.kafka);
  std::atomic<bool> stop{false};
  CHECK(d.Run(stop) == 78);  // EX_CONFIG: systemd does not restart it in a loop
  CHECK_FALSE(d.ready());
  CHECK(log.text().find("cannot start: table 'profiles': unknown topic profiles-typo") != std::string::npos);
}

TEST_CASE("a reload whose new table's topic does not exist is refused, and the running rules and tables go on") {
  World w;
  w.kafka.Append("profiles", 0, Profile("u1", "FR"));
  std::ofstream(w.dir / "rules" / "r.rules") << kProfiles;
  auto config = w.Config();
  config.tables["blocked"] = {"blocked-typo", 1000};
  testing::CapturedStderr log;
  daemon::Daemon d(config, testing::CompileRules(kProfiles), &w.kafka);
  std::atomic<bool> reload{false};
  testing::DaemonThread run(d, &reload);
  REQUIRE(testing::Eventually([&] { return d.ready(); }, std::chrono::seconds(5)));
  std::ofstream(w.dir / "rules" / "r.rules", std::ios::trunc) << kProfiles << kBlocked;
  reload = true;
  REQUIRE(testing::Eventually([&] { return log.text().find("rule reload refused") != std::string::npos; },
                              std::chrono::seconds(5)));
  CHECK(log.text().find("rule reload refused: cannot load the tables of the new rules: table 'blocked': unknown "
                        "topic blocked-typo; the 1 running rules go on") != std::string::npos);
  w.kafka.Append("events", 0, Order("a", "u1", 1000, "DE"));
  REQUIRE(testing::Eventually([&] { return w.Alerts("foreign_order") == 1; }, std::chrono::seconds(5)));
  CHECK(d.rules().programs.size() == 1);
  CHECK(run.Stop() == 0);
}

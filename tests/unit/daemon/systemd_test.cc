// The daemon under systemd: the notify protocol against a fake NOTIFY_SOCKET
// (a datagram socket this test binds, as systemd does), the watchdog, the
// stop, and rule reloads (bad set refused, good set swapped keeping the
// partial matches of unchanged rules), all on librdkafka's mock cluster with
// the metrics read over HTTP.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "cepheus/engine/state_codec.h"
#include "cepheus/io/kafka.h"
#include "cepheus/daemon/daemon.h"
#include "cepheus/daemon/log.h"
#include "cepheus/state/lmdb_store.h"
#include "cepheus/daemon/rules_loader.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using Clock = std::chrono::steady_clock;

using testing::Eventually;
using testing::TestConfig;

namespace {

// Plays systemd's side of sd_notify(3): binds a datagram socket, points
// NOTIFY_SOCKET (and WATCHDOG_USEC) at it, and records every message with the
// time it came.
class FakeSystemd {
 public:
  struct Message {
    std::string text;
    Clock::time_point at;
  };

  explicit FakeSystemd(std::chrono::microseconds watchdog) {
    path_ = std::filesystem::temp_directory_path() / ("cepheus-notify-" + std::to_string(::getpid()));
    std::filesystem::remove(path_);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    ::setenv("WATCHDOG_USEC", std::to_string(watchdog.count()).c_str(), 1);
    reader_ = std::thread([this] {
      char buf[4096];
      while (!done_) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        std::lock_guard<std::mutex> lock(mu_);
        messages_.push_back({std::string(buf, static_cast<size_t>(n)), Clock::now()});
      }
    });
  }
  ~FakeSystemd() {
    done_ = true;
    reader_.join();
    ::close(fd_);
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    std::filesystem::remove(path_);
  }
  std::vector<Message> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  // Index of the first message at or after `from` that contains `text`, or -1.
  int Find(const std::string& text, size_t from = 0) {
    auto m = messages();
    for (size_t i = from; i < m.size(); ++i) {
      if (m[i].text.find(text) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  }
  // Waits up to `seconds` for a message containing `text` at or after `from`.
  int WaitFor(const std::string& text, size_t from = 0, int seconds = 30) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    int i;
    while ((i = Find(text, from)) < 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return i;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> done_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<Message> messages_;
};

struct Cluster {
  std::unique_ptr<io::MockCluster> mock;
  std::unique_ptr<io::KafkaProducer> producer;
  std::string brokers;

  explicit Cluster(const std::string& name) {
    auto c = io::MockCluster::Create(1);
    REQUIRE(c.ok());
    mock = std::move(c).value();
    brokers = mock->bootstraps();
    for (auto [t, n] : {std::pair<std::string, int>{"events", 2}, {"alerts", 1}, {"dead", 1}, {name + "-changelog", 2}}) {
      REQUIRE(mock->CreateTopic(t, n).ok());
    }
    auto p = io::KafkaProducer::Create(brokers, {});
    REQUIRE(p.ok());
    producer = std::move(p).value();
  }
  void Send(const std::string& user, const std::string& type, long long ts) {
    std::string json = "{\"type\":\"" + type + "\",\"ts\":" + std::to_string(ts) + ",\"user_id\":\"" + user + "\"}";
    REQUIRE(producer->Produce("events", user, json).ok());
    REQUIRE(producer->Flush(10000).ok());
  }
};

void WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}


}  // namespace

TEST_CASE("under systemd the daemon reports each start-up step, is ready once its partitions are restored, "
          "pings the watchdog from its loop only while the loop turns, and says when it stops") {
  FakeSystemd systemd(std::chrono::milliseconds(2000));
  Cluster cluster("cepheus-notify");
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-notify-state-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "rules");
  WriteFile(dir / "rules" / "every_login.rules", "rule every_login key user_id match l: login within 1m\n");
  auto config = TestConfig(cluster.brokers, "cepheus-notify");
  config.state.directory = (dir / "state").string();
  config.rules_paths = {(dir / "rules").string()};
  auto rules = daemon::LoadAndCompile(config.rules_paths, std::cerr);
  REQUIRE(rules);

  std::atomic<bool> wedge{false};
  daemon::Daemon d(config, rules);
  d.set_on_alert([&](const engine::Alert&) {
    // An alert sink that hangs: the processing loop is wedged for 3.5 s.
    if (wedge.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  });
  testing::DaemonThread running(d);

  int ready = systemd.WaitFor("READY=1");
  REQUIRE(ready >= 0);
  auto messages = systemd.messages();
  CHECK(messages[static_cast<size_t>(ready)].text.find("STATUS=processing 2 partitions") != std::string::npos);
  // Every start-up step came before READY=1, in order.
  int last = -1;
  for (const char* step : {"STATUS=opening state", "STATUS=serving metrics", "STATUS=connecting the transactional",
                           "STATUS=joining group", "STATUS=waiting for partitions"}) {
    int at = systemd.Find(step);
    CAPTURE(step);
    CHECK(at > last);
    CHECK(at < ready);
    last = at;
  }

  // The watchdog: pinged at least every half interval while the loop turns.
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  wedge = true;
  cluster.Send("u1", "login", 1000);
  REQUIRE(Eventually([&] { return d.alerts_published() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(5000));  // 3.5 s wedged, then pings resume
  CHECK(running.Stop() == 0);

  std::vector<Clock::time_point> pings;
  for (const auto& m : systemd.messages()) {
    if (m.text == "WATCHDOG=1") pings.push_back(m.at);
  }
  REQUIRE(pings.size() >= 5);
  std::vector<double> gaps;
  for (size_t i = 1; i < pings.size(); ++i) gaps.push_back(std::chrono::duration<double>(pings[i] - pings[i - 1]).count());
  std::sort(gaps.begin(), gaps.end());
  CHECK(gaps.back() >= 3.4);  // the wedged loop sent nothing for 3.5 s
  CHECK(gaps[gaps.size() - 2] <= 1.0);  // every other gap: at most half of WatchdogSec=2s
  int stopping = systemd.Find("STOPPING=1");
  CHECK(stopping > ready);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a reload refuses a rule set that does not check and keeps the running rules, and a good set is swapped in, "
          "keeping the partial matches of unchanged rules and dropping those of changed or removed ones") {
  FakeSystemd systemd(std::chrono::seconds(10));
  Cluster cluster("cepheus-reload");
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-reload-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "rules");
  const std::string kept = "rule kept key user_id match l: login -> o: order within 1h\n";
  WriteFile(dir / "rules" / "kept.rules", kept);
  WriteFile(dir / "rules" / "changed.rules", "rule changed key user_id match o: order{3} within 1h\n");
  WriteFile(dir / "rules" / "removed.rules", "rule removed key user_id match o: order -> p: payment within 1h\n");
  auto config = TestConfig(cluster.brokers, "cepheus-reload");
  config.state.directory = (dir / "state").string();
  config.rules_paths = {(dir / "rules").string()};
  auto rules = daemon::LoadAndCompile(config.rules_paths, std::cerr);
  REQUIRE(rules);

  std::vector<std::string> fired;
  std::mutex fired_mu;
  std::atomic<bool> reload{false};
  auto owned = std::make_unique<daemon::Daemon>(config, rules);
  daemon::Daemon& d = *owned;
  d.set_on_alert([&](const engine::Alert& a) {
    std::lock_guard<std::mutex> lock(fired_mu);
    fired.push_back(a.json);
  });
  testing::DaemonThread running(d, &reload);
  REQUIRE(systemd.WaitFor("READY=1") >= 0);

  // u1 logs in (kept: one run), u2 orders twice (changed: runs; removed: runs).
  cluster.Send("u1", "login", 1000);
  cluster.Send("u2", "order", 1001);
  cluster.Send("u2", "order", 1002);
  REQUIRE(Eventually([&] { return d.records_handled() == 3; }));
  REQUIRE(Eventually([&] { return d.active_runs() >= 3; }));
  int64_t runs_before = d.active_runs();

  // A set that does not check: refused, the old rules go on.
  WriteFile(dir / "rules" / "changed.rules", "rule changed key user_id match o: order{3} within\n");
  size_t from = systemd.messages().size();
  reload = true;
  int reloading = systemd.WaitFor("RELOADING=1", from);
  REQUIRE(reloading >= 0);
  int ready = systemd.WaitFor("READY=1", static_cast<size_t>(reloading));
  REQUIRE(ready > reloading);
  CHECK(systemd.messages()[static_cast<size_t>(ready)].text.find("refused") != std::string::npos);
  CHECK(d.rules().programs.size() == 3);
  CHECK(d.active_runs() == runs_before);
  std::string scrape = testing::Scrape(d.metrics_port());
  CHECK(testing::Sample(scrape, "cepheus_rule_reloads_total{outcome=\"error\"}") == 1);
  CHECK(testing::Sample(scrape, "cepheus_rule_reloads_total{outcome=\"success\"}") == 0);
  CHECK(testing::Sample(scrape, "cepheus_rules_last_reload_successful") == 0);

  // A good set: `kept` unchanged, `changed` edited, `removed` gone, `added` new.
  WriteFile(dir / "rules" / "changed.rules", "rule changed key user_id match o: order{4} within 1h\n");
  std::filesystem::remove(dir / "rules" / "removed.rules");
  WriteFile(dir / "rules" / "added.rules", "rule added key user_id match p: payment within 1h\n");
  from = systemd.messages().size();
  reload = true;
  reloading = systemd.WaitFor("RELOADING=1", from);
  REQUIRE(reloading >= 0);
  REQUIRE(systemd.WaitFor("READY=1", static_cast<size_t>(reloading)) > reloading);
  std::vector<std::string> names;
  for (const auto& p : d.rules().programs) names.push_back(p->name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"added", "changed", "kept"});
  CHECK(d.active_runs() == 1);  // u1's login, waiting for its order
  CHECK(d.rule_state_dropped() == static_cast<uint64_t>(runs_before - 1));
  REQUIRE(Eventually([&] {
    std::string s = testing::Scrape(d.metrics_port());
    return testing::Sample(s, "cepheus_runs_active{rule=\"kept\"}") == 1;
  }));
  scrape = testing::Scrape(d.metrics_port());
  CHECK(testing::Sample(scrape, "cepheus_rule_reloads_total{outcome=\"success\"}") == 1);
  CHECK(testing::Sample(scrape, "cepheus_rules_last_reload_successful") == 1);
  CHECK(testing::Sample(scrape, "cepheus_rules_loaded") == 3);
  CHECK(testing::Sample(scrape, "cepheus_runs_active{rule=\"removed\"}") == -1);  // its series is gone
  CHECK(testing::Sample(scrape, "cepheus_rule_state_dropped_total{reason=\"changed\"}") +
            testing::Sample(scrape, "cepheus_rule_state_dropped_total{reason=\"removed\"}") ==
        static_cast<double>(runs_before - 1));
  CHECK(testing::Sample(scrape, "cepheus_rule_state_dropped_total{reason=\"removed\"}") >= 1);

  // The pattern that spans the reload still fires: u1's order completes `kept`.
  cluster.Send("u1", "order", 2000);
  REQUIRE(Eventually([&] {
    std::lock_guard<std::mutex> lock(fired_mu);
    return !fired.empty();
  }));
  {
    std::lock_guard<std::mutex> lock(fired_mu);
    CHECK(fired.size() == 1);
    CHECK(fired[0].find("\"rule\":\"kept\"") != std::string::npos);
  }
  CHECK(running.Stop() == 0);
  std::set<std::pair<std::string, uint64_t>> current;
  for (const auto& p : d.rules().programs) current.emplace(p->name, p->fingerprint);

  owned.reset();  // closes LMDB

  // The dropped state is gone from LMDB too (so neither a restart nor another
  // daemon loads it): u2's record (only old `changed` and `removed` state) is
  // deleted, and every rule section left was written for a rule of the new
  // set. (u1's order after the reload started a run of the new `changed`.)
  auto store = state::LmdbStore::Open({config.state.directory, config.state.map_size, config.state.max_map_size});
  REQUIRE(store.ok());
  int stale = 0, records = 0;
  REQUIRE(store.value()->Scan("", [&](std::string_view k, std::string_view v) {
    using namespace std::string_view_literals;
    if (k.find("/engine/h/"sv) == std::string_view::npos) return;
    ++records;
    auto sk = engine::SplitStoredKey(v);
    REQUIRE(sk.ok());
    if (sk.value().key == "u2") {
      ++stale;
      MESSAGE("stale record left: " << std::string(k));
    }
    auto sections = engine::DecodeKeyRecord(sk.value().record, nullptr, [](std::string_view) { return nullptr; });
    REQUIRE(sections.ok());
    for (const auto& s : sections.value()) {
      if (!current.count({s.rule, s.fingerprint})) {
        ++stale;
        MESSAGE("stale state of rule " << s.rule << " left in " << std::string(k));
      }
    }
  }).ok());
  CHECK(records > 0);
  CHECK(stale == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("log lines carry a syslog priority and no timestamp under journald, a timestamp and a level otherwise") {
  CHECK(daemon::FormatLogLine(daemon::LogLevel::kError, "cannot commit", true, 0) == "<3>cannot commit");
  CHECK(daemon::FormatLogLine(daemon::LogLevel::kInfo, "ready", true, 0) == "<6>ready");
  CHECK(daemon::FormatLogLine(daemon::LogLevel::kWarning, "aborting", false, 1795660000123) ==
        "2026-11-26T02:26:40.123Z warning: aborting");
}

// (The cooperative protocol calls the rebalance callback with an empty
// assignment too: that call is the standby's readiness.)
TEST_CASE("a daemon that the group gives no partition is ready all the same") {
  FakeSystemd systemd(std::chrono::seconds(10));
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 1}, {"alerts", 1}, {"dead", 1}, {"cepheus-idle-changelog", 1}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  auto dir = std::filesystem::temp_directory_path() / ("cepheus-idle-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto rules = daemon::LoadAndCompile(TestConfig(brokers, "x").rules_paths, std::cerr);
  REQUIRE(rules);
  std::vector<std::unique_ptr<daemon::Daemon>> daemons;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (const char* member : {"one", "two"}) {
    auto config = TestConfig(brokers, "cepheus-idle");
    config.kafka.transactional_id += member;
    config.kafka.consumer = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    config.state.directory = (dir / member).string();
    daemons.push_back(std::make_unique<daemon::Daemon>(config, rules));
    threads.emplace_back([&, d = daemons.back().get()] { d->Run(stop); });
    REQUIRE(systemd.WaitFor("READY=1", 0) >= 0);  // the first is ready before the second starts
  }
  auto count_ready = [&] {
    int n = 0;
    for (const auto& m : systemd.messages()) n += m.text.find("READY=1") != std::string::npos;
    return n;
  };
  CHECK(Eventually([&] { return count_ready() == 2; }, std::chrono::seconds(40)));
  stop = true;
  for (auto& t : threads) t.join();
  std::filesystem::remove_all(dir);
}

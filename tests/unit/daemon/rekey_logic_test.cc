// Re-keying in the daemon (section 6.4, kafka.rekey) on the in-memory Kafka:
// a rule keyed on another field than the partition key sees the events of
// every input partition, its windows close by the least of the sources'
// watermarks, and a silent source is released by the idle timeout.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "cepheus/daemon/daemon.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/source_marks.h"
#include "cepheus/state/lmdb_store.h"
#include "fake_kafka.h"
#include "harness.h"
#include "test_util.h"

using namespace cepheus;
using testing::FakeKafka;

namespace {

constexpr const char* kRules = R"(
rule two_orders
  key user_id
  match o: order{2}
  within 1h
rule card_two_users
  key card_id
  match a: order -> b: order[user_id != a.user_id]
  within 1h
rule card_unpaid
  key card_id
  match o: order -> absent p: payment[order_id == o.order_id]
  within 1m
)";

std::string Order(const std::string& id, const std::string& user, const std::string& card, int64_t ts) {
  return fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"{}","card_id":"{}","order_id":"{}"}})", id, ts,
                     user, card, id);
}
std::string Payment(const std::string& id, const std::string& user, const std::string& card, int64_t ts,
                    const std::string& order) {
  return fmt::format(R"({{"id":"{}","type":"payment","ts":{},"user_id":"{}","card_id":"{}","order_id":"{}"}})", id,
                     ts, user, card, order);
}

struct World {
  World() : dir(std::filesystem::temp_directory_path() / ("cepheus-rekey-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    kafka.CreateTopic("events", 2);
    for (const char* t : {"alerts", "dead"}) kafka.CreateTopic(t, 1);
    kafka.CreateTopic("rk-changelog", 2);
  }
  ~World() { std::filesystem::remove_all(dir); }
  daemon::Config Config(bool rekey) const {
    auto c = testing::TestConfig("fake:9092", "rk");
    c.state.directory = (dir / "state").string();
    c.state.commit_interval = 20;
    c.metrics.listen = "";
    c.kafka.rekey = rekey;
    c.out_of_order = 1000;
    return c;
  }
  std::vector<std::string> Alerts(const std::string& rule) const {
    std::vector<std::string> keys;
    for (const auto& r : kafka.Committed("alerts")) {
      if (r.value->find("\"rule\":\"" + rule + "\"") != std::string::npos) keys.push_back(r.key);
    }
    return keys;
  }
  std::filesystem::path dir;
  FakeKafka kafka;
};

// Two users on the two input partitions share card c1, 1 s apart; later
// orders on both partitions move both sources' watermarks past them (and
// make two orders of each user).
void Feed(World& w) {
  w.kafka.Append("events", 0, Order("a", "u1", "c1", 1000));
  w.kafka.Append("events", 1, Order("b", "u2", "c1", 2000));
  w.kafka.Append("events", 0, Order("c", "u1", "c9", 100000));
  w.kafka.Append("events", 1, Order("d", "u2", "c8", 100000));
  w.kafka.Append("events", 0, Order("e", "u1", "c7", 200000));
  w.kafka.Append("events", 1, Order("f", "u2", "c6", 200000));
}

// Card c1's order a (user u1, partition 0) and, after both sources sent a
// mark, order b (user u2, partition 1) out of order at its source: that
// source's watermark does not move, so no mark follows b, which waits in
// its stage partition's buffer. Returns once the daemon has handled both
// (two inputs, two forwarded, four marks; then one input, one forwarded).
void FeedAnEventThatWaits(World& w, const daemon::Daemon& d) {
  w.kafka.Append("events", 0, Order("a", "u1", "c1", 5000));
  w.kafka.Append("events", 1, Order("x", "u2", "c5", 5000));
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 2 + 2 + 4; }, std::chrono::seconds(5)));
  w.kafka.Append("events", 1, Order("b", "u2", "c1", 4500));
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 2 + 2 + 4 + 2; }, std::chrono::seconds(5)));
}

// The stage partition and offset of the forwarded event with id `id`
// ({-1, -1} when none).
std::pair<int32_t, int64_t> StagePosition(const World& w, const std::string& id) {
  const auto staged = w.kafka.Committed("rk-rekey-card_id");  // partition 0's records, then 1's
  const auto first_of_1 = static_cast<size_t>(w.kafka.EndOffset("rk-rekey-card_id", 0));
  for (size_t i = 0; i < staged.size(); ++i) {
    if (staged[i].value->find("\"id\":\"" + id + "\"") == std::string::npos) continue;
    return {i < first_of_1 ? 0 : 1, static_cast<int64_t>(i < first_of_1 ? i : i - first_of_1)};
  }
  return {-1, -1};
}

// A second daemon on the state `config` names, given every partition (as a
// restart's rebalance would); then both sources move to 100 s, which
// releases every waiting event, and a card_two_users alert is committed.
struct Restarted {
  Restarted(World& w, const daemon::Config& config) : d(config, testing::CompileRules(kRules), &w.kafka), run(d) {
    REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
    w.kafka.Assign(1, "events", {0, 1});
    w.kafka.Assign(1, "rk-rekey-card_id", {0, 1});
    w.kafka.Append("events", 0, Order("c", "u1", "c9", 100000));
    w.kafka.Append("events", 1, Order("d", "u2", "c8", 100000));
    REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  }
  daemon::Daemon d;
  testing::DaemonThread run;
};

using Input = std::vector<std::pair<int32_t, std::string>>;  // (input partition, event)

// The alert ids one engine gives over `input` (each event at its input
// position), none finished past the last watermark.
std::multiset<std::string> OneEngineAlertIds(const Input& input, Millis out_of_order) {
  auto rules = testing::CompileRules(kRules);
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::EngineOptions eo;
  eo.out_of_order = out_of_order;
  engine::Engine eng(rules, eo, &sink);
  int64_t offsets[2] = {0, 0};
  for (const auto& [p, text] : input) {
    auto e = decoder.Decode(text, nfa::Position{"events", p, offsets[p]++});
    REQUIRE(e.ok());
    eng.Push(std::move(e).value());
  }
  std::multiset<std::string> ids;
  for (const auto& a : sink.alerts) ids.insert(a.alert_id);
  return ids;
}

std::multiset<std::string> CommittedAlertIds(const World& w) {
  std::multiset<std::string> ids;
  for (const auto& r : w.kafka.Committed("alerts")) {
    auto at = r.value->find("\"alert_id\":\"");
    REQUIRE(at != std::string::npos);
    ids.insert(r.value->substr(at + 12, r.value->find('"', at + 12) - at - 12));
  }
  return ids;
}

// Waiting events a stage partition's LMDB state holds (the daemon is gone).
int SavedWaitingEvents(const daemon::Config& config, int32_t partition) {
  auto store = state::LmdbStore::Open({config.state.directory, config.state.map_size, config.state.max_map_size});
  REQUIRE(store.ok());
  int buffered = 0;
  REQUIRE(store.value()->Scan(fmt::format("p/rk-rekey-card_id/{}/engine/b/", partition),
                              [&](std::string_view, std::string_view) { ++buffered; }).ok());
  return buffered;
}

}  // namespace

TEST_CASE("with kafka.rekey a rule keyed on the card sees the card's events from every input partition") {
  World w;
  daemon::Daemon d(w.Config(true), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  Feed(w);
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});
  CHECK(w.Alerts("two_orders") == std::vector<std::string>{"u1", "u2"});  // on the partition key: direct
  // The stage topic, created by the daemon with the input's partition count,
  // holds the forwarded orders and the sources' marks.
  auto staged = w.kafka.Committed("rk-rekey-card_id");
  size_t marks = 0, events = 0;
  for (const auto& r : staged) (engine::IsMarkRecord(*r.value) ? marks : events)++;
  CHECK(events == 6);
  CHECK(marks >= 4);  // both sources, into both partitions
  CHECK(run.Stop() == 0);
}

TEST_CASE("without kafka.rekey the same rule sees each partition's events alone, as in v1") {
  World w;
  daemon::Daemon d(w.Config(false), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  Feed(w);
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 1) == 3; }, std::chrono::seconds(5)));
  REQUIRE(testing::Eventually([&] { return w.Alerts("two_orders").size() == 2; }, std::chrono::seconds(5)));
  CHECK(w.Alerts("card_two_users").empty());
  CHECK(run.Stop() == 0);
}

TEST_CASE("a re-keyed window waits for every source, and a silent source is released by the idle timeout") {
  World w;
  auto config = w.Config(true);
  config.idle_timeout = 300;
  daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  // Only partition 0 speaks: an unpaid order of c1, then time moves on there.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  w.kafka.Append("events", 0, Order("a", "u1", "c1", now - 300000));
  w.kafka.Append("events", 0, Payment("p", "u1", "c1", now - 299000, "zzz"));  // pays another order
  // Partition 1 never speaks: its idle timeout lets its watermark follow the
  // clock, so the stage's watermark passes a's window and the absence fires.
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_unpaid").empty(); }, std::chrono::seconds(5)));
  CHECK(w.Alerts("card_unpaid") == std::vector<std::string>{"c1"});
  CHECK(run.Stop() == 0);
}

TEST_CASE("an aborted batch forwards its events again and the re-keyed alert is published once") {
  World w;
  w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kAbort, 2);
  daemon::Daemon d(w.Config(true), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  Feed(w);
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 3 && w.kafka.GroupOffset("events", 1) == 3; },
                              std::chrono::seconds(5)));
  CHECK(w.kafka.aborts() >= 1);
  size_t events = 0;
  for (const auto& r : w.kafka.Committed("rk-rekey-card_id")) events += !engine::IsMarkRecord(*r.value);
  CHECK(events == 6);  // the aborted forwards are not committed
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});
  CHECK(run.Stop() == 0);
}

TEST_CASE("a restarted daemon keeps its stage partitions' marks and windows: a card pattern spanning the restart fires once") {
  World w;
  {
    daemon::Daemon d(w.Config(true), testing::CompileRules(kRules), &w.kafka);
    testing::DaemonThread run(d);
    w.kafka.Append("events", 0, Order("a", "u1", "c1", 1000));
    w.kafka.Append("events", 1, Order("x", "u2", "c5", 1500));
    REQUIRE(testing::Eventually([&] {
      return testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", 0) +
                 testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", 1) >= 2;
    }, std::chrono::seconds(5)));
    CHECK(run.Stop() == 0);
  }
  daemon::Daemon again(w.Config(true), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(again);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0, 1});
  w.kafka.Assign(1, "rk-rekey-card_id", {0, 1});
  w.kafka.Append("events", 1, Order("b", "u2", "c1", 2000));
  w.kafka.Append("events", 0, Order("c", "u1", "c9", 100000));
  w.kafka.Append("events", 1, Order("d", "u2", "c8", 100000));
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});  // a (before the restart), then b
  CHECK(run.Stop() == 0);
}

TEST_CASE("a stage partition's events that wait for a watermark mark are not saved but read again after a restart") {
  World w;
  auto config = w.Config(true);
  {
    daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
    testing::DaemonThread run(d);
    FeedAnEventThatWaits(w, d);
    CHECK(run.Stop() == 0);
  }
  // Its stage partition saved neither waiting event (a, which a mark came
  // after, nor b), and its committed offset is a's own, so a restart reads
  // both again.
  auto [a_partition, a_offset] = StagePosition(w, "a");
  REQUIRE(a_partition >= 0);
  CHECK(StagePosition(w, "b").first == a_partition);  // card c1's
  CHECK(w.kafka.GroupOffset("rk-rekey-card_id", a_partition) == a_offset);
  CHECK(testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", a_partition) ==
        w.kafka.EndOffset("rk-rekey-card_id", a_partition));
  CHECK(SavedWaitingEvents(config, a_partition) == 0);
  Restarted again(w, config);
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});  // b, then a: once
  CHECK(again.run.Stop() == 0);
}

TEST_CASE("after a restart an event a mark released behind the restore point is passed over, not read again as late") {
  World w;
  auto config = w.Config(true);
  config.kafka.late_topic = "late";
  w.kafka.CreateTopic("late", 1);
  {
    daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
    testing::DaemonThread run(d);
    // Both sources at 9 s; then card c1's later order B (user u1) waits at
    // its stage for partition 1, whose order A of c1 (user u2, earlier) comes
    // after B, and whose next order moves its mark past A but not past B:
    // A is evaluated, B still waits, and the restore point is B's record,
    // before A's.
    w.kafka.Append("events", 0, Order("a0", "u1", "c9", 10000));
    w.kafka.Append("events", 1, Order("x", "u2", "c5", 10000));
    REQUIRE(testing::Eventually([&] { return d.records_handled() >= 2 + 2 + 4; }, std::chrono::seconds(5)));
    w.kafka.Append("events", 0, Order("B", "u1", "c1", 30000));
    REQUIRE(testing::Eventually([&] { return d.records_handled() >= 8 + 1 + 1 + 2; }, std::chrono::seconds(5)));
    w.kafka.Append("events", 1, Order("A", "u2", "c1", 12000));
    w.kafka.Append("events", 1, Order("y", "u2", "c7", 20000));
    REQUIRE(testing::Eventually([&] { return d.records_handled() >= 12 + 2 + 2 + 2; }, std::chrono::seconds(5)));
    CHECK(run.Stop() == 0);
  }
  auto [b_partition, b_offset] = StagePosition(w, "B");
  REQUIRE(b_partition >= 0);
  CHECK(StagePosition(w, "A").first == b_partition);
  CHECK(StagePosition(w, "A").second > b_offset);
  CHECK(w.kafka.GroupOffset("rk-rekey-card_id", b_partition) == b_offset);
  CHECK(SavedWaitingEvents(config, b_partition) == 0);
  Restarted again(w, config);
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});  // A, then B: once
  CHECK(w.kafka.Committed("late").empty());  // A was not pushed again behind the watermark
  CHECK(again.run.Stop() == 0);
}

TEST_CASE("a reload keeps a stage partition's waiting events: they are read again from the re-keying topic") {
  World w;
  std::filesystem::create_directories(w.dir / "rules");
  std::ofstream(w.dir / "rules" / "r.rules") << kRules;
  auto config = w.Config(true);
  config.rules_paths = {(w.dir / "rules").string()};
  daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
  std::atomic<bool> reload{false};
  testing::DaemonThread run(d, &reload);
  FeedAnEventThatWaits(w, d);
  std::string changed = kRules;
  changed.replace(changed.find("within 1h"), 9, "within 2h");  // two_orders
  std::ofstream(w.dir / "rules" / "r.rules", std::ios::trunc) << changed;
  {
    testing::CapturedStderr log;
    reload = true;
    REQUIRE(testing::Eventually([&] { return log.text().find("rules reloaded") != std::string::npos; },
                                std::chrono::seconds(5)));
  }
  w.kafka.Append("events", 0, Order("c", "u1", "c9", 100000));
  w.kafka.Append("events", 1, Order("d", "u2", "c8", 100000));
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  CHECK(w.Alerts("card_two_users") == std::vector<std::string>{"c1"});
  CHECK(run.Stop() == 0);
}

TEST_CASE("a re-keyed alert's id names its events' input positions, as one engine over the input gives it") {
  World w;
  daemon::Daemon d(w.Config(true), testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  Feed(w);
  REQUIRE(testing::Eventually([&] { return !w.Alerts("card_two_users").empty(); }, std::chrono::seconds(5)));
  CHECK(run.Stop() == 0);
  std::string committed;
  for (const auto& r : w.kafka.Committed("alerts")) {
    if (r.value->find("\"rule\":\"card_two_users\"") != std::string::npos) committed = *r.value;
  }
  // The same two events at their input positions (events/0 offset 0,
  // events/1 offset 0), through one engine.
  auto rules = testing::CompileRules(kRules);
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  int32_t partition = 0;
  for (const std::string& text : {Order("a", "u1", "c1", 1000), Order("b", "u2", "c1", 2000)}) {
    auto e = decoder.Decode(text, nfa::Position{"events", partition++, 0});
    REQUIRE(e.ok());
    eng.Push(std::move(e).value());
  }
  eng.Finish();
  std::string id;
  for (const auto& a : sink.alerts) {
    if (a.json.find("\"rule\":\"card_two_users\"") != std::string::npos) id = a.alert_id;
  }
  REQUIRE_FALSE(id.empty());
  CHECK(committed.find("\"alert_id\":\"" + id + "\"") != std::string::npos);
}

TEST_CASE("aborts at many points of a re-keyed stream lose and duplicate nothing: the alerts are one engine's over the input") {
  uint64_t resident = 0;
  SUBCASE("every key in memory") { resident = 0; }
  SUBCASE("one key a partition in memory, the others read back from LMDB") { resident = 1; }
  World w;
  auto config = w.Config(true);
  config.state.max_resident_keys = resident;
  daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(d);
  // Events in time order, each on its user's partition; cards shared across
  // users (so across partitions), payments for some orders.
  Input input;
  uint64_t x = 7;
  auto next = [&] { return x = x * 6364136223846793005ULL + 1442695040888963407ULL, x >> 33; };
  for (int i = 0; i < 240; ++i) {
    int user = static_cast<int>(next() % 8);
    std::string card = fmt::format("c{}", next() % 5);
    int64_t ts = 1000 + i * 7000;
    std::string id = fmt::format("e{}", i);
    input.emplace_back(user % 2, next() % 3 == 0 ? Payment(id, fmt::format("u{}", user), card, ts,
                                                            fmt::format("e{}", i - 1 - static_cast<int>(next() % 4)))
                                                 : Order(id, fmt::format("u{}", user), card, ts));
  }
  for (int32_t p : {0, 1}) input.emplace_back(p, Order(fmt::format("end{}", p), fmt::format("u{}", p), "c0", 10000000));
  int64_t counts[2] = {0, 0};
  uint64_t injected = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    w.kafka.Append("events", input[i].first, input[i].second);
    ++counts[input[i].first];
    if (i % 30 == 29) {  // an abort every few batches, at whatever point the daemon is
      w.kafka.FailNext(FakeKafka::Call::kCommit, io::TxnOutcome::kAbort, 1);
      ++injected;
      REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == counts[0] &&
                                               w.kafka.GroupOffset("events", 1) == counts[1]; },
                                  std::chrono::seconds(5)));
    }
  }
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == counts[0] &&
                                           w.kafka.GroupOffset("events", 1) == counts[1]; },
                              std::chrono::seconds(5)));
  // The stage's last marks are committed, then read: wait for its commits
  // to have read to the topic's end.
  REQUIRE(testing::Eventually([&] {
    for (int32_t p : {0, 1}) {
      if (testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", p) <
          w.kafka.EndOffset("rk-rekey-card_id", p)) {
        return false;
      }
    }
    return true;
  }, std::chrono::seconds(5)));
  CHECK(run.Stop() == 0);
  CHECK(w.kafka.aborts() >= 8);
  if (resident > 0) CHECK(d.keys_let_go() >= 50);
  CHECK(d.aborts() == injected);  // a key read back from LMDB failed none

  const auto want = OneEngineAlertIds(input, config.out_of_order);
  CHECK(want.size() > 20);
  CHECK(CommittedAlertIds(w) == want);
}

TEST_CASE("an event that waits further back than state.max_reread is saved, and the restore point moves on past it") {
  World w;
  auto config = w.Config(true);
  config.state.max_reread = 4;
  // a waits at card c1's stage partition (partition 1's source stays at 4 s),
  // and so do the eight c1 orders after it: a is more than 4 records back.
  Input input = {{0, Order("a", "u1", "c1", 5000)}, {1, Order("x", "u2", "c5", 5000)}};
  for (int i = 0; i < 8; ++i) input.emplace_back(0, Order(fmt::format("w{}", i), i % 2 ? "u1" : "u3", "c1", 6000 + i * 1000));
  int32_t a_partition = -1;  // plain variables: clang 14 captures no structured binding in a lambda
  int64_t a_offset = -1;
  {
    daemon::Daemon d(config, testing::CompileRules(kRules), &w.kafka);
    testing::DaemonThread run(d);
    for (const auto& [p, text] : input) w.kafka.Append("events", p, text);
    REQUIRE(testing::Eventually([&] {
      std::tie(a_partition, a_offset) = StagePosition(w, "w7");
      return a_partition >= 0 && testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", a_partition) ==
                                     w.kafka.EndOffset("rk-rekey-card_id", a_partition);
    }, std::chrono::seconds(5)));
    CHECK(run.Stop() == 0);
  }
  std::tie(a_partition, a_offset) = StagePosition(w, "a");
  const int64_t end = w.kafka.EndOffset("rk-rekey-card_id", a_partition);
  CHECK(end - a_offset > 4);
  CHECK(w.kafka.GroupOffset("rk-rekey-card_id", a_partition) > a_offset);
  CHECK(end - w.kafka.GroupOffset("rk-rekey-card_id", a_partition) <= 4);
  CHECK(SavedWaitingEvents(config, a_partition) >= 1);  // a, at least

  daemon::Daemon again(config, testing::CompileRules(kRules), &w.kafka);
  testing::DaemonThread run(again);
  REQUIRE(testing::Eventually([&] { return w.kafka.consumers() == 2; }, std::chrono::seconds(5)));
  w.kafka.Assign(1, "events", {0, 1});
  w.kafka.Assign(1, "rk-rekey-card_id", {0, 1});
  for (int32_t p : {0, 1}) {
    input.emplace_back(p, Order(fmt::format("end{}", p), fmt::format("u{}", p), "c0", 10000000));
    w.kafka.Append("events", p, input.back().second);
  }
  REQUIRE(testing::Eventually([&] { return w.kafka.GroupOffset("events", 0) == 10 && w.kafka.GroupOffset("events", 1) == 2; },
                              std::chrono::seconds(5)));
  REQUIRE(testing::Eventually([&] {
    for (int32_t p : {0, 1}) {
      if (testing::CommittedRead(w.kafka, "rk-changelog", "rk-rekey-card_id", p) < w.kafka.EndOffset("rk-rekey-card_id", p)) {
        return false;
      }
    }
    return true;
  }, std::chrono::seconds(5)));
  CHECK(run.Stop() == 0);
  const auto want = OneEngineAlertIds(input, config.out_of_order);
  CHECK(want.size() >= 9);  // c1's pairs of users, and every unpaid order
  CHECK(CommittedAlertIds(w) == want);
}

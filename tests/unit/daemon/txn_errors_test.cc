// Kafka errors injected into the daemon's transactions (reliability test B2),
// on librdkafka's mock cluster, one class at a time as librdkafka's
// transactions example sorts them: retriable errors are retried with no
// abort, abortable ones abort the transaction, roll the engines back to LMDB
// and rewind the input (and processing goes on), fatal ones stop the daemon
// with exit 1. (The mock shows aborted records to readers, so the output is
// compared on a real broker, in tests/kafka; here the branches are.)
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "cepheus/io/kafka.h"
#include "daemon/commands.h"
#include "cepheus/state/lmdb_store.h"
#include "daemon/daemon.h"

using namespace cepheus;

daemon::Config TestConfig(const std::string& brokers, const std::string& name);  // daemon_test.cc
std::shared_ptr<const nfa::CompiledRuleSet> ShippedRules();                      // daemon_test.cc

namespace {

// Kafka API keys and error codes (the protocol's numbers).
constexpr int16_t kAddPartitionsToTxn = 24, kAddOffsetsToTxn = 25, kEndTxn = 26, kTxnOffsetCommit = 28;
constexpr int kCoordinatorLoadInProgress = 14, kCoordinatorNotAvailable = 15, kNotCoordinator = 16,
              kTopicAuthorizationFailed = 29, kInvalidProducerEpoch = 47, kProducerFenced = 90;

struct Outcome {
  int exit_code = -1;
  uint64_t aborts = 0;
  uint64_t handled = 0;
  int64_t committed = 0;  // records the state in LMDB reflects (sum of the partitions' offsets)
};

// 2000 generated events through a daemon; once it has handled a few hundred,
// `inject` pushes errors into the mock; the daemon runs until it has handled
// every record (some twice, after an abort), or until it stops by itself.
Outcome RunWithErrors(const std::string& name, const std::function<void(io::MockCluster&)>& inject) {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 2}, {"alerts", 1}, {"dead", 1}, {name + "-changelog", 2}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  daemon::GenCommandOptions g;
  g.events = 2000;
  g.users = 30;
  g.fraud_rate = 0.05;
  g.kafka = brokers;
  g.topic = "events";
  REQUIRE(daemon::RunGen(g) == 0);

  auto config = TestConfig(brokers, name);
  auto dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  config.state.directory = dir.string();
  config.state.commit_interval = 50;
  auto owned = std::make_unique<daemon::Daemon>(config, ShippedRules());
  daemon::Daemon& d = *owned;
  std::atomic<bool> stop{false};
  Outcome out;
  std::atomic<bool> done{false};
  std::thread t([&] {
    out.exit_code = d.Run(stop);
    done = true;
  });
  auto wait = [&](const std::function<bool()>& f, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!f() && !done && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return f();
  };
  REQUIRE(wait([&] { return d.records_handled() >= 300; }, 60));
  inject(*cluster.value());
  // Until every record was handled and nothing more comes (a re-read after
  // an abort is over) for a second and a half.
  uint64_t seen = 0;
  auto quiet_since = std::chrono::steady_clock::now();
  wait([&] {
    uint64_t n = d.records_handled();
    if (n != seen) {
      seen = n;
      quiet_since = std::chrono::steady_clock::now();
    }
    return n >= 2000 && std::chrono::steady_clock::now() - quiet_since > std::chrono::milliseconds(1500);
  }, 90);
  stop = true;
  t.join();
  out.aborts = d.aborts();
  out.handled = d.records_handled();
  owned.reset();  // closes LMDB
  auto store = state::LmdbStore::Open({config.state.directory, config.state.map_size, config.state.max_map_size});
  REQUIRE(store.ok());
  REQUIRE(store.value()->Scan("p/", [&](std::string_view k, std::string_view v) {
    if (k.size() > 7 && k.substr(k.size() - 7) == "/offset") out.committed += std::stoll(std::string(v));
  }).ok());
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

TEST_CASE("retriable transaction errors are retried: no abort, every record handled, a clean stop") {
  Outcome o = RunWithErrors("cepheus-txn-retry", [](io::MockCluster& m) {
    m.PushRequestErrors(kEndTxn, {kCoordinatorLoadInProgress, kNotCoordinator});
    m.PushRequestErrors(kAddOffsetsToTxn, {kCoordinatorNotAvailable});
    m.PushRequestErrors(kTxnOffsetCommit, {kCoordinatorLoadInProgress});
  });
  CHECK(o.exit_code == 0);
  CHECK(o.aborts == 0);
  CHECK(o.handled == 2000);
  CHECK(o.committed == 2000);
}

TEST_CASE("an abortable transaction error aborts, rolls back and rewinds, and processing goes on") {
  Outcome o = RunWithErrors("cepheus-txn-abort", [](io::MockCluster& m) {
    m.PushRequestErrors(kAddPartitionsToTxn, {kTopicAuthorizationFailed});
  });
  CHECK(o.exit_code == 0);
  CHECK(o.aborts >= 1);
  CHECK(o.handled > 2000);     // the aborted batch was read again
  CHECK(o.committed == 2000);  // and its records are in the state once
}

TEST_CASE("a fatal transaction error (the producer fenced) stops the daemon with exit 1") {
  Outcome o = RunWithErrors("cepheus-txn-fatal", [](io::MockCluster& m) {
    m.PushRequestErrors(kEndTxn, {kProducerFenced, kInvalidProducerEpoch});
  });
  CHECK(o.exit_code == 1);
  CHECK(o.committed < 2000);  // the fenced batch never reached LMDB
}

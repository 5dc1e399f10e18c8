// Kafka faults under a running daemon, on librdkafka's mock cluster.
//
// Errors injected into its transactions (reliability test B2), one class at a
// time as librdkafka's transactions example sorts them: retriable errors are
// retried with no abort, abortable ones abort the transaction, roll the
// engines back to LMDB and rewind the input (and processing goes on), fatal
// ones stop the daemon with exit 1. Broker bounces chasing the partition
// leaders and the coordinators (B1), and a slow network (B4): processing
// goes on with no fatal error and every record ends up in the state once.
// (The mock shows aborted records to readers, so the output itself is
// compared on a real broker, in tests/kafka.)
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "cepheus/io/kafka.h"
#include "cepheus/gen/generator.h"
#include "cepheus/daemon/daemon.h"
#include "harness.h"

using namespace cepheus;

using testing::ShippedRules;
using testing::TestConfig;

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

// 2000 generated events through a daemon on a mock cluster of `brokers`:
// 1000 before it starts, 1000 more at 250 a second while `inject` runs (it
// starts once the daemon has handled a few hundred and may take a while).
// The daemon runs until it has handled every record (some twice, after an
// abort) and is quiet, or until it stops by itself.
Outcome RunWithFaults(const std::string& name, int brokers_n, const std::function<void(io::MockCluster&)>& inject) {
  auto cluster = io::MockCluster::Create(brokers_n);
  REQUIRE(cluster.ok());
  std::string brokers = cluster.value()->bootstraps();
  for (auto [t, n] : {std::pair<std::string, int>{"events", 2}, {"alerts", 1}, {"dead", 1}, {name + "-changelog", 2}}) {
    REQUIRE(cluster.value()->CreateTopic(t, n).ok());
  }
  std::vector<std::string> lines;
  gen::GenOptions g;
  g.events = 2000;
  g.users = 30;
  g.fraud_rate = 0.05;
  gen::GenerateEvents(g, [&](std::string_view l) { lines.emplace_back(l); });
  auto producer = io::KafkaProducer::Create(brokers, {});
  REQUIRE(producer.ok());
  auto produce = [&](size_t i) { (void)producer.value()->Produce("events", testing::UserOf(lines[i]), lines[i]); };
  for (size_t i = 0; i < 1000; ++i) produce(i);
  REQUIRE(producer.value()->Flush(10000).ok());

  auto config = TestConfig(brokers, name);
  auto dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  config.state.directory = dir.string();
  config.state.commit_interval = 50;
  auto owned = std::make_unique<daemon::Daemon>(config, ShippedRules());
  daemon::Daemon& d = *owned;
  Outcome out;
  testing::DaemonThread running(d);
  REQUIRE(testing::Eventually([&] { return d.records_handled() >= 300 || running.finished(); },
                              std::chrono::seconds(60)));
  REQUIRE(d.records_handled() >= 300);
  std::thread feeder([&] {
    for (size_t i = 1000; i < lines.size(); ++i) {
      produce(i);
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
    }
    (void)producer.value()->Flush(60000);
  });
  inject(*cluster.value());
  feeder.join();
  CHECK(testing::EventuallyQuiet([&] { return running.finished() ? UINT64_MAX : d.records_handled(); }, 2000));
  out.exit_code = running.Stop();
  out.aborts = d.aborts();
  out.handled = d.records_handled();
  owned.reset();  // closes LMDB
  out.committed = testing::CommittedRecords(config);
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

TEST_CASE("retriable transaction errors are retried: no abort, every record handled, a clean stop") {
  Outcome o = RunWithFaults("cepheus-txn-retry", 1, [](io::MockCluster& m) {
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
  Outcome o = RunWithFaults("cepheus-txn-abort", 1, [](io::MockCluster& m) {
    m.PushRequestErrors(kAddPartitionsToTxn, {kTopicAuthorizationFailed});
  });
  CHECK(o.exit_code == 0);
  CHECK(o.aborts >= 1);
  CHECK(o.handled > 2000);     // the aborted batch was read again
  CHECK(o.committed == 2000);  // and its records are in the state once
}

TEST_CASE("a fatal transaction error (the producer fenced) stops the daemon with exit 1 and a log line naming "
          "the transactional id") {
  Outcome o;
  std::string log;
  {
    testing::CapturedStderr captured;
    o = RunWithFaults("cepheus-txn-fatal", 1, [](io::MockCluster& m) {
      m.PushRequestErrors(kEndTxn, {kProducerFenced, kInvalidProducerEpoch});
    });
    log = captured.text();
  }
  CHECK(o.exit_code == 1);
  CHECK(o.committed < 2000);  // the fenced batch never reached LMDB
  std::string id = TestConfig("", "cepheus-txn-fatal").kafka.transactional_id;
  CAPTURE(log);
  CHECK(log.find("fatal Kafka error, stopping: ") != std::string::npos);
  CHECK(log.find("(another process uses transactional_id '" + id + "'") != std::string::npos);
}

TEST_CASE("brokers bounced five times, chasing the partition leaders and the coordinators: no fatal error, every "
          "record in the state once") {
  const std::string name = "cepheus-bounce";
  Outcome o = RunWithFaults(name, 3, [&](io::MockCluster& m) {
    for (int bounce = 0; bounce < 5; ++bounce) {
      int32_t broker = 1 + bounce % 3, next = 1 + (bounce + 1) % 3;
      // Leaders and coordinators move to the next broker, then this one goes
      // down for a second (a hard bounce) and comes back.
      for (int32_t p = 0; p < 2; ++p) m.SetPartitionLeader("events", p, next);
      m.SetCoordinator("group", name, next);
      m.SetCoordinator("transaction", TestConfig("", name).kafka.transactional_id, next);
      m.SetBrokerDown(broker, true);
      std::this_thread::sleep_for(std::chrono::milliseconds(1000));
      m.SetBrokerDown(broker, false);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  CHECK(o.exit_code == 0);
  CHECK(o.handled >= 2000);
  CHECK(o.committed == 2000);
}

TEST_CASE("a 500 ms round trip to every broker for five seconds slows the daemon without an error") {
  Outcome o = RunWithFaults("cepheus-slow", 1, [](io::MockCluster& m) {
    m.SetBrokerRtt(-1, 500);
    std::this_thread::sleep_for(std::chrono::seconds(5));
    m.SetBrokerRtt(-1, 0);
  });
  CHECK(o.exit_code == 0);
  CHECK(o.committed == 2000);
}

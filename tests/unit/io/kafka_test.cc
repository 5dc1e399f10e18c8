// The Kafka clients against librdkafka's in-process mock cluster: what `gen
// --kafka` produces comes back to a consumer, keyed by the entity.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <set>

#include "cepheus/io/kafka.h"
#include "cli/gen.h"

using namespace cepheus;

TEST_CASE("events produced by gen --kafka are consumed back, keyed by user") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  REQUIRE(cluster.value()->CreateTopic("ev", 3).ok());
  cli::GenCommandOptions g;
  g.events = 500;
  g.users = 20;
  g.kafka = cluster.value()->bootstraps();
  g.topic = "ev";
  REQUIRE(cli::RunGen(g) == 0);

  auto consumer = io::KafkaConsumer::Create(cluster.value()->bootstraps(), "t", {"ev"}, {});
  REQUIRE(consumer.ok());
  std::map<std::string, std::set<int32_t>> partitions_of_key;
  int got = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got < 500 && std::chrono::steady_clock::now() < deadline) {
    auto r = consumer.value()->Poll(200);
    REQUIRE(r.ok());
    if (!r.value()) continue;
    ++got;
    const auto& rec = *r.value();
    CHECK(rec.pos.topic == "ev");
    auto at = rec.payload.find("\"user_id\":\"");
    REQUIRE(at != std::string::npos);
    std::string user = rec.payload.substr(at + 11, rec.payload.find('"', at + 11) - at - 11);
    partitions_of_key[user].insert(rec.pos.partition);
  }
  consumer.value()->Close();
  CHECK(got == 500);
  for (const auto& entry : partitions_of_key) {
    INFO("user: " << entry.first);
    CHECK(entry.second.size() == 1);  // one user, one partition: the key is the user
  }
  CHECK(partitions_of_key.size() > 3);
}

TEST_CASE("a producer pointed at no broker reports the failure instead of hanging") {
  auto producer = io::KafkaProducer::Create("127.0.0.1:1", {{"message.timeout.ms", "1000"}});
  REQUIRE(producer.ok());
  REQUIRE(producer.value()->Produce("t", "k", "v").ok());  // queued locally
  bool flushed = producer.value()->Flush(3000).ok();
  bool delivered = flushed && producer.value()->delivery_failures() == 0;
  CHECK_FALSE(delivered);
}

// A transactional producer whose EndTxn the mock answers with `error`: what
// CommitTransaction reports.
io::TxnResult CommitAnswered(int error) {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  REQUIRE(cluster.value()->CreateTopic("out", 1).ok());
  auto producer = io::KafkaProducer::CreateTransactional(cluster.value()->bootstraps(),
                                                         "fence-" + std::to_string(error), {});
  REQUIRE(producer.ok());
  REQUIRE(producer.value()->InitTransactions(10000).ok());
  REQUIRE(producer.value()->BeginTransaction().ok());
  REQUIRE(producer.value()->Produce("out", "k", "v").ok());
  constexpr int16_t kEndTxn = 26;
  cluster.value()->PushRequestErrors(kEndTxn, {error});
  return producer.value()->CommitTransaction(10000);
}

TEST_CASE("a producer fenced at commit says so from the error code, for each code a fencing comes as") {
  struct Case {
    int error;
    const char* name;
  };
  for (Case c : {Case{90, "PRODUCER_FENCED"}, Case{47, "INVALID_PRODUCER_EPOCH"}}) {
    CAPTURE(c.name);
    io::TxnResult r = CommitAnswered(c.error);
    CAPTURE(r.message);
    CHECK(r.outcome == io::TxnOutcome::kFatal);
    CHECK(r.fenced);
  }
}

TEST_CASE("an abortable commit error is not taken for a fencing") {
  constexpr int kTopicAuthorizationFailed = 29;
  io::TxnResult r = CommitAnswered(kTopicAuthorizationFailed);
  CAPTURE(r.message);
  CHECK(r.outcome != io::TxnOutcome::kOk);
  CHECK(r.outcome != io::TxnOutcome::kFatal);
  CHECK_FALSE(r.fenced);
}

// CreateTopic itself needs a real broker (librdkafka 2.0.2's mock cluster
// does not answer CreateTopics): tests/kafka/rekey_test.py has the daemon
// create its re-keying topics.
TEST_CASE("asking for a topic's partition count does not create it, and tells a missing topic apart") {
  auto cluster = io::MockCluster::Create(1);
  REQUIRE(cluster.ok());
  auto producer = io::KafkaProducer::Create(cluster.value()->bootstraps(), {});
  REQUIRE(producer.ok());
  CHECK(producer.value()->PartitionCount("g-rekey-card_id", 5000).status().code() == Status::Code::kNotFound);
  CHECK(producer.value()->PartitionCount("g-rekey-card_id", 5000).status().code() == Status::Code::kNotFound);
  REQUIRE(cluster.value()->CreateTopic("g-rekey-card_id", 3).ok());
  auto n = producer.value()->PartitionCount("g-rekey-card_id", 5000);
  REQUIRE(n.ok());
  CHECK(n.value() == 3);
}

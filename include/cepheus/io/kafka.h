// Kafka: the consumer that feeds engines and the producer that publishes
// alerts and dead letters (librdkafka's C++ API), and librdkafka's in-process
// mock cluster for `cepheus demo` and the fast tests.
//
// Thread-safety: a KafkaConsumer is driven from one thread; a KafkaProducer's
// Produce may be called from any thread (librdkafka's own guarantee).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/seams.h"
#include "cepheus/io/clients.h"

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace cepheus::io {

// Where the log lines of librdkafka and of this module go, with their syslog
// priority (0 emergency .. 7 debug). Without a handler they go to stderr as
// librdkafka prints them. Set it once, before any client is created; it is
// called from librdkafka's threads too, so it must be thread-safe.
using LogHandler = void (*)(int priority, std::string_view line);
void SetLogHandler(LogHandler handler);

// The librdkafka properties each client is created with: the user's (the
// configuration's kafka.producer / kafka.consumer), then what cepheus sets
// itself, which wins. `run --print-config` prints these.
Properties ProducerProperties(const std::string& brokers, const Properties& extra);
Properties TransactionalProducerProperties(const std::string& brokers, const std::string& transactional_id,
                                           const Properties& extra);
Properties ConsumerProperties(const std::string& brokers, const std::string& group, const Properties& extra);

// An in-process Kafka cluster (librdkafka's mock). Not a real broker: it is
// for demos and fast tests only (no exactly-once guarantees).
class MockCluster {
 public:
  static Result<std::unique_ptr<MockCluster>> Create(int brokers);
  ~MockCluster();
  const std::string& bootstraps() const { return bootstraps_; }
  Status CreateTopic(const std::string& name, int partitions);
  // Fault injection: the next requests of Kafka API `api_key` (0 Produce,
  // 22 InitProducerId, 24 AddPartitionsToTxn, 25 AddOffsetsToTxn, 26 EndTxn,
  // 28 TxnOffsetCommit, ...) fail with these Kafka error codes, one each, in
  // order (librdkafka's rd_kafka_mock_push_request_errors).
  void PushRequestErrors(int16_t api_key, const std::vector<int>& errors);
  // Network faults (broker ids count from 1; -1 for every broker): a broker
  // down drops its connections and refuses new ones (leaders do not move);
  // a round-trip delay slows every answer.
  void SetBrokerDown(int32_t broker, bool down);
  void SetBrokerRtt(int32_t broker, int rtt_ms);
  // Moves a partition's leader, or the coordinator of a group or a
  // transactional id (`type` "group" or "transaction").
  void SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker);
  void SetCoordinator(const std::string& type, const std::string& key, int32_t broker);

 private:
  MockCluster() = default;
  rd_kafka_s* handle_ = nullptr;  // the client handle the cluster lives in
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstraps_;
};

class KafkaProducer : public TxnProducer {
 public:
  static Result<std::unique_ptr<KafkaProducer>> Create(const std::string& brokers, const Properties& extra);
  // A transactional producer (idempotent, acks=all); InitTransactions fences
  // older instances with the same id.
  static Result<std::unique_ptr<KafkaProducer>> CreateTransactional(const std::string& brokers,
                                                                    const std::string& transactional_id,
                                                                    const Properties& extra);
  TxnResult InitTransactions(int timeout_ms) override;
  TxnResult BeginTransaction() override;
  // Adds the consumed offsets to the open transaction (KIP-447: fenced by the
  // consumer's group generation).
  TxnResult SendOffsets(const std::vector<TopicOffset>& offsets, Consumer* consumer, int timeout_ms) override;
  TxnResult CommitTransaction(int timeout_ms) override;
  TxnResult AbortTransaction(int timeout_ms) override;
  ~KafkaProducer() override;
  // Queues one message; the partition follows the key (librdkafka's default
  // partitioner). Fails when the local queue is full after waiting for it.
  Status Produce(const std::string& topic, std::string_view key, std::string_view value,
                 const Headers& headers = {}) override;
  // Queues one message to an explicit partition; a null value is a tombstone
  // (a compacted topic's delete).
  Status ProduceTo(const std::string& topic, int32_t partition, std::string_view key,
                   std::optional<std::string_view> value) override;
  // Fetches the metadata of `topics` now, so the first message to each is not
  // held until librdkafka's next metadata refresh (up to a second). Returns
  // the first topic the brokers do not know, or another failure.
  Status LoadMetadata(const std::vector<std::string>& topics, int timeout_ms) override;
  Result<int32_t> PartitionCount(const std::string& topic, int timeout_ms) override;
  // Through the Admin API (CreateTopics) on the producer's own connection.
  Status CreateTopic(const std::string& topic, int32_t partitions, int timeout_ms) override;
  // Serves delivery reports; returns the number of failed deliveries seen.
  int Poll(int timeout_ms) override;
  Status Flush(int timeout_ms) override;
  uint64_t delivery_failures() const;

 private:
  KafkaProducer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class KafkaConsumer : public Consumer {
 public:
  // Subscribes `group` to `topics` (cooperative-sticky assignment).
  static Result<std::unique_ptr<KafkaConsumer>> Create(const std::string& brokers, const std::string& group,
                                                       const std::vector<std::string>& topics,
                                                       const Properties& extra,
                                                       RebalanceListener* listener = nullptr);
  // The partition's end offset as last seen by the fetcher (no request), or
  // -1 when unknown.
  int64_t HighWatermark(const std::string& topic, int32_t partition) override;
  // Moves the read position of an assigned partition (to.offset may be
  // kOffsetBeginning).
  Status Seek(const TopicOffset& to, int timeout_ms) override;
  void* group_metadata_handle();  // RdKafka::ConsumerGroupMetadata*, owned by the caller
  ~KafkaConsumer() override;
  // The next record, nullopt when none came within the timeout; a non-OK
  // status for errors that need the caller's attention (others are logged).
  Result<std::optional<engine::RawRecord>> Poll(int timeout_ms);
  // The same into `out`, whose buffers are reused: true when a record came.
  Result<bool> Poll(int timeout_ms, engine::RawRecord* out) override;
  void Close() override;

 private:
  KafkaConsumer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads partitions of a compacted topic from their start to their end
// (read_committed: the end is the last stable offset) with one consumer,
// keeping the last value of each key; tombstones remove the key. Empty
// partitions cost one metadata request. For restoring state from a changelog.
Result<CompactedLog> ReadCompacted(const std::string& brokers, const std::string& topic,
                                  const std::vector<int32_t>& partitions, const Properties& extra, int timeout_ms);

// The daemon's clients on a real cluster (or librdkafka's mock): transactional
// producers, cooperative-sticky group consumers, ReadCompacted above.
class KafkaClients : public Clients {
 public:
  explicit KafkaClients(std::string brokers) : brokers_(std::move(brokers)) {}
  Result<std::unique_ptr<TxnProducer>> Producer(const std::string& transactional_id, const Properties& extra) override;
  Result<std::unique_ptr<Consumer>> GroupConsumer(const std::string& group, const std::vector<std::string>& topics,
                                                  const Properties& extra, RebalanceListener* listener) override;
  Result<CompactedLog> ReadCompacted(const std::string& topic, const std::vector<int32_t>& partitions,
                                     const Properties& extra, int timeout_ms) override;
  Result<std::unique_ptr<TopicReader>> Reader(const std::string& topic, const Properties& extra) override;

 private:
  std::string brokers_;
};

}  // namespace cepheus::io

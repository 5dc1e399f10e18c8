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

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace cepheus::io {

using Properties = std::map<std::string, std::string>;

// The logical offset "the partition's first record", for Seek.
constexpr int64_t kOffsetBeginning = -2;

// Where the log lines of librdkafka and of this module go, with their syslog
// priority (0 emergency .. 7 debug). Without a handler they go to stderr as
// librdkafka prints them. Set it once, before any client is created; it is
// called from librdkafka's threads too, so it must be thread-safe.
using LogHandler = void (*)(int priority, std::string_view line);
void SetLogHandler(LogHandler handler);
using Headers = std::vector<std::pair<std::string, std::string>>;

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

// What to do after a transactional call failed, as librdkafka's transactions
// example classifies errors.
enum class TxnOutcome { kOk, kRetry, kAbort, kFatal };

struct TxnResult {
  TxnOutcome outcome = TxnOutcome::kOk;
  std::string message;
  // Another producer with the same transactional id took over (a newer
  // epoch): set from the error code, not its wording. The codes are
  // RD_KAFKA_RESP_ERR__FENCED, _PRODUCER_FENCED and _INVALID_PRODUCER_EPOCH,
  // those of the error itself or, for a fatal error, of the fatal error
  // behind it (rd_kafka_fatal_error). Always with kFatal or kAbort.
  bool fenced = false;
  bool ok() const { return outcome == TxnOutcome::kOk; }
};

// A consumed position to commit: the next offset to read.
struct TopicOffset {
  std::string topic;
  int32_t partition;
  int64_t offset;
};

class KafkaConsumer;

class KafkaProducer {
 public:
  static Result<std::unique_ptr<KafkaProducer>> Create(const std::string& brokers, const Properties& extra);
  // A transactional producer (idempotent, acks=all); InitTransactions fences
  // older instances with the same id.
  static Result<std::unique_ptr<KafkaProducer>> CreateTransactional(const std::string& brokers,
                                                                    const std::string& transactional_id,
                                                                    const Properties& extra);
  TxnResult InitTransactions(int timeout_ms);
  TxnResult BeginTransaction();
  // Adds the consumed offsets to the open transaction (KIP-447: fenced by the
  // consumer's group generation).
  TxnResult SendOffsets(const std::vector<TopicOffset>& offsets, KafkaConsumer* consumer, int timeout_ms);
  TxnResult CommitTransaction(int timeout_ms);
  TxnResult AbortTransaction(int timeout_ms);
  ~KafkaProducer();
  // Queues one message; the partition follows the key (librdkafka's default
  // partitioner). Fails when the local queue is full after waiting for it.
  Status Produce(const std::string& topic, std::string_view key, std::string_view value,
                 const Headers& headers = {});
  // Queues one message to an explicit partition; a null value is a tombstone
  // (a compacted topic's delete).
  Status ProduceTo(const std::string& topic, int32_t partition, std::string_view key,
                   std::optional<std::string_view> value);
  // Fetches the metadata of `topics` now, so the first message to each is not
  // held until librdkafka's next metadata refresh (up to a second). Returns
  // the first topic the brokers do not know, or another failure.
  Status LoadMetadata(const std::vector<std::string>& topics, int timeout_ms);
  // Serves delivery reports; returns the number of failed deliveries seen.
  int Poll(int timeout_ms);
  Status Flush(int timeout_ms);
  uint64_t delivery_failures() const;

 private:
  KafkaProducer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Told about partitions as the group assigns and revokes them; called from
// inside KafkaConsumer::Poll, on the polling thread.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // Returns, per partition, the offset to start from (or -1 for the group's
  // committed offset). `committed` holds the group's committed offsets (-1
  // when none).
  virtual std::vector<int64_t> OnAssigned(const std::vector<TopicOffset>& committed) = 0;
  // Called before the partitions are taken away; `lost` when the assignment
  // was lost (session timeout) and nothing may be committed for them.
  virtual void OnRevoked(const std::vector<TopicOffset>& partitions, bool lost) = 0;
};

class KafkaConsumer {
 public:
  // Subscribes `group` to `topics` (cooperative-sticky assignment).
  static Result<std::unique_ptr<KafkaConsumer>> Create(const std::string& brokers, const std::string& group,
                                                       const std::vector<std::string>& topics,
                                                       const Properties& extra,
                                                       RebalanceListener* listener = nullptr);
  // The partition's end offset as last seen by the fetcher (no request), or
  // -1 when unknown.
  int64_t HighWatermark(const std::string& topic, int32_t partition);
  // Moves the read position of an assigned partition (to.offset may be
  // kOffsetBeginning).
  Status Seek(const TopicOffset& to, int timeout_ms);
  void* group_metadata_handle();  // RdKafka::ConsumerGroupMetadata*, owned by the caller
  ~KafkaConsumer();
  // The next record, nullopt when none came within the timeout; a non-OK
  // status for errors that need the caller's attention (others are logged).
  Result<std::optional<engine::RawRecord>> Poll(int timeout_ms);
  // The same into `out`, whose buffers are reused: true when a record came.
  Result<bool> Poll(int timeout_ms, engine::RawRecord* out);
  void Close();

 private:
  KafkaConsumer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads partitions of a compacted topic from their start to their end
// (read_committed: the end is the last stable offset) with one consumer,
// keeping the last value of each key; tombstones remove the key. Empty
// partitions cost one metadata request. For restoring state from a changelog.
Result<std::map<int32_t, std::map<std::string, std::string>>> ReadCompacted(
    const std::string& brokers, const std::string& topic, const std::vector<int32_t>& partitions,
    const Properties& extra, int timeout_ms);

}  // namespace cepheus::io

// The daemon's view of Kafka, as three small interfaces: a transactional
// producer, a group consumer, and the maker of both (which also reads a
// compacted topic back). io/kafka.h implements them on librdkafka; the daemon's
// unit tests implement them in memory, so its logic (batches, commits,
// aborts, rebalances, reload) runs in milliseconds without a broker.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cepheus/common/status.h"
#include "cepheus/engine/seams.h"

namespace cepheus::io {

using Properties = std::map<std::string, std::string>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// The logical offset "the partition's first record", for Seek.
constexpr int64_t kOffsetBeginning = -2;

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

// Told about partitions as the group assigns and revokes them; called from
// inside Consumer::Poll, on the polling thread.
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

class Consumer {
 public:
  virtual ~Consumer() = default;
  // The next record into `out` (its buffers are reused): true when one came
  // within the timeout; a non-OK status for errors that need the caller.
  virtual Result<bool> Poll(int timeout_ms, engine::RawRecord* out) = 0;
  // Moves the read position of an assigned partition (to.offset may be
  // kOffsetBeginning).
  virtual Status Seek(const TopicOffset& to, int timeout_ms) = 0;
  // The partition's end offset as last seen (no request), or -1 when unknown.
  virtual int64_t HighWatermark(const std::string& topic, int32_t partition) = 0;
  // Leaves the group (revoking what it holds).
  virtual void Close() = 0;
};

class TxnProducer {
 public:
  virtual ~TxnProducer() = default;
  virtual TxnResult InitTransactions(int timeout_ms) = 0;
  virtual TxnResult BeginTransaction() = 0;
  // Adds the consumed offsets of `consumer`'s group to the open transaction.
  virtual TxnResult SendOffsets(const std::vector<TopicOffset>& offsets, Consumer* consumer, int timeout_ms) = 0;
  virtual TxnResult CommitTransaction(int timeout_ms) = 0;
  virtual TxnResult AbortTransaction(int timeout_ms) = 0;
  // Queues one message; the partition follows the key.
  virtual Status Produce(const std::string& topic, std::string_view key, std::string_view value,
                         const Headers& headers = {}) = 0;
  // Queues one message to an explicit partition; a null value is a tombstone.
  virtual Status ProduceTo(const std::string& topic, int32_t partition, std::string_view key,
                           std::optional<std::string_view> value) = 0;
  // Fetches the metadata of `topics` now; the first unknown topic is an error.
  virtual Status LoadMetadata(const std::vector<std::string>& topics, int timeout_ms) = 0;
  // The number of partitions of `topic`; NotFound when the brokers do not
  // know it.
  virtual Result<int32_t> PartitionCount(const std::string& topic, int timeout_ms) = 0;
  // Creates `topic` with `partitions` partitions and the brokers' default
  // replication; a topic that exists already is not an error.
  virtual Status CreateTopic(const std::string& topic, int32_t partitions, int timeout_ms) = 0;
  // Serves delivery reports; returns the number of failed deliveries seen.
  virtual int Poll(int timeout_ms) = 0;
  virtual Status Flush(int timeout_ms) = 0;
};

// The last value of each key of a compacted topic's partitions, by partition.
using CompactedLog = std::map<int32_t, std::map<std::string, std::string>>;

// Makes the daemon's clients of one cluster.
// One record of a topic read whole (a table's topic): the message key, and
// no value for a tombstone.
struct TopicRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  Millis timestamp = 0;  // the message's time
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: a tombstone
};

// Reads every partition of one topic from given offsets, outside any group
// (a table's topic: every daemon reads all of it).
class TopicReader {
 public:
  virtual ~TopicReader() = default;
  // Every partition of the topic with its end offset now (read_committed:
  // the last stable offset).
  virtual Result<std::map<int32_t, int64_t>> EndOffsets(int timeout_ms) = 0;
  // Reads each partition from its offset (kOffsetBeginning for the first).
  virtual Status Assign(const std::map<int32_t, int64_t>& from) = 0;
  // The next record into `out`: true when one came within the timeout.
  virtual Result<bool> Poll(int timeout_ms, TopicRecord* out) = 0;
  // A partition's end offset as the fetcher last saw it (no request); -1
  // when unknown.
  virtual int64_t CachedEnd(int32_t partition) = 0;
  // The next offset the reader will consume from a partition (past the
  // transaction markers it skipped, which no record carries), or -1.
  virtual int64_t Position(int32_t partition) = 0;
};

class Clients {
 public:
  virtual ~Clients() = default;
  virtual Result<std::unique_ptr<TxnProducer>> Producer(const std::string& transactional_id,
                                                        const Properties& extra) = 0;
  // Subscribes `group` to `topics`.
  virtual Result<std::unique_ptr<Consumer>> GroupConsumer(const std::string& group,
                                                          const std::vector<std::string>& topics,
                                                          const Properties& extra, RebalanceListener* listener) = 0;
  // Reads partitions of a compacted topic from their start to their end,
  // keeping the last value of each key; tombstones remove the key.
  virtual Result<CompactedLog> ReadCompacted(const std::string& topic, const std::vector<int32_t>& partitions,
                                             const Properties& extra, int timeout_ms) = 0;
  // A reader of every partition of `topic`.
  virtual Result<std::unique_ptr<TopicReader>> Reader(const std::string& topic, const Properties& extra) {
    (void)extra;
    return Status::FailedPrecondition(fmt::format("these clients cannot read topic {} whole", topic));
  }
};

}  // namespace cepheus::io

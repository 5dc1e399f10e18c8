// An in-memory Kafka behind the daemon's client interfaces (io/clients.h), so
// the daemon's own logic (batches, transactions, aborts, rebalances, state
// moving between daemons, reload) is tested in milliseconds, with no broker
// and no librdkafka.
//
// What it models, and only that: topics of partitions of records; a
// transaction's records and offsets become visible together at commit and
// vanish at abort (consumers see committed records only, as read_committed);
// one group's committed offsets; one transactional id per live producer (a
// newer one fences the older); an assignment the test moves with Assign and
// Revoke, delivered to the consumer's listener at its next Poll, as
// librdkafka does. Faults are injected per call (FailNext). Thread-safe: the
// daemon runs on its own thread while the test appends and reads.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cepheus/io/clients.h"

namespace cepheus::testing {

class FakeKafka : public io::Clients {
 public:
  struct Record {
    std::string key;
    std::optional<std::string> value;  // nullopt: a tombstone
    io::Headers headers;
  };
  // The calls a fault can be injected into.
  enum class Call { kProduce, kSendOffsets, kCommit };

  void CreateTopic(const std::string& name, int partitions);
  // Appends an input record (committed at once); returns its offset.
  int64_t Append(const std::string& topic, int32_t partition, const std::string& value);
  // The committed records of a topic, partition by partition, in offset order.
  std::vector<Record> Committed(const std::string& topic) const;
  std::vector<std::string> CommittedValues(const std::string& topic) const;
  // The end of a partition's committed records (its next offset).
  int64_t EndOffset(const std::string& topic, int32_t partition) const;
  // The group's committed offset of a partition (-1 when none).
  int64_t GroupOffset(const std::string& topic, int32_t partition) const;
  // The next `times` calls of `call` fail with `outcome` (kRetry, kAbort or
  // kFatal; a produce fails with an IoError whatever the outcome).
  void FailNext(Call call, io::TxnOutcome outcome, int times = 1);
  // Moves partitions of `topic` to the consumer created `consumer`-th (from
  // 0): the partitions are revoked from whoever holds them (OnRevoked, not
  // lost) and assigned to it (OnAssigned), each at its consumer's next Poll.
  void Assign(size_t consumer, const std::string& topic, const std::vector<int32_t>& partitions);
  // Takes partitions away from the consumer created `consumer`-th; `lost`
  // as after a session timeout.
  void Revoke(size_t consumer, const std::string& topic, const std::vector<int32_t>& partitions, bool lost);
  // Group consumers created so far (Assign and Revoke name them by index).
  size_t consumers() const;
  // Transactions committed and aborted so far, over every producer.
  int commits() const;
  int aborts() const;

  // io::Clients. A new group consumer is given every partition of its topics
  // when it is the first consumer; later ones get what Assign gives them.
  Result<std::unique_ptr<io::TxnProducer>> Producer(const std::string& transactional_id,
                                                    const io::Properties& extra) override;
  Result<std::unique_ptr<io::Consumer>> GroupConsumer(const std::string& group, const std::vector<std::string>& topics,
                                                      const io::Properties& extra,
                                                      io::RebalanceListener* listener) override;
  Result<io::CompactedLog> ReadCompacted(const std::string& topic, const std::vector<int32_t>& partitions,
                                         const io::Properties& extra, int timeout_ms) override;
  // A reader of a whole topic (a table's), reading committed records.
  Result<std::unique_ptr<io::TopicReader>> Reader(const std::string& topic, const io::Properties& extra) override;
  // While held, readers of `topic` see its end offsets but read nothing (a
  // table that takes long to load).
  void HoldReads(const std::string& topic, bool held);
  // Readers made so far (Reader calls).
  int readers() const;

 private:
  class FakeProducer;
  class FakeConsumer;
  class FakeReader;
  struct Move {
    bool assign;
    bool lost;
    std::vector<io::TopicOffset> partitions;
  };
  struct Member {
    std::deque<Move> moves;          // delivered at its next Poll
    std::set<std::pair<std::string, int32_t>> owned;
    std::map<std::pair<std::string, int32_t>, int64_t> position;
    bool closed = false;
  };
  // Pops an injected fault of `call`, if one is pending.
  std::optional<io::TxnOutcome> TakeFault(Call call);  // mu_ held

  mutable std::mutex mu_;
  std::condition_variable appended_;
  std::map<std::string, std::vector<std::vector<Record>>> topics_;
  std::map<std::pair<std::string, int32_t>, int64_t> group_offsets_;
  std::map<Call, std::deque<io::TxnOutcome>> faults_;
  std::map<std::string, uint64_t> epochs_;  // by transactional id
  int readers_ = 0;
  std::set<std::string> held_;              // topics whose readers read nothing (HoldReads)
  std::vector<Member> members_;
  int commits_ = 0;
  int aborts_ = 0;
};

// How far the daemon had read a re-keying (stage) partition at its last
// commit: the last "read" record of that partition in the changelog, -1 when
// none. (Its committed group offset stays on its oldest waiting event.)
int64_t CommittedRead(const FakeKafka& kafka, const std::string& changelog, const std::string& topic,
                      int32_t partition);

}  // namespace cepheus::testing

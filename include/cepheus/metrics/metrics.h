// Prometheus metrics (prometheus-cpp): the registry, the HTTP exposer
// (/metrics and a liveness answer at /healthz), and the engine probe.
//
// Label values are rule names, severities, outcomes and partition numbers
// only: never a user, card or account id, so the series count does not grow
// with the number of keys.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cepheus/common/status.h"
#include "cepheus/common/time.h"

namespace prometheus {
class Registry;
class Exposer;
}  // namespace prometheus

namespace cepheus::engine {
class Engine;
struct TableStats;
}  // namespace cepheus::engine
namespace cepheus::nfa {
struct CompiledRuleSet;
}  // namespace cepheus::nfa

namespace cepheus::metrics {

class Metrics {
 public:
  // Binds the exposer to `listen` ("127.0.0.1:9464"; port 0 picks a free one;
  // empty: nothing is served, for tests that need no HTTP and no exposer's
  // two-second stop).
  // With a non-empty `username`, /metrics answers 401 to requests without
  // those basic-auth credentials; /healthz stays open.
  static Result<std::unique_ptr<Metrics>> Start(const std::string& listen, const std::string& version,
                                                const nfa::CompiledRuleSet& rules, const std::string& username = "",
                                                const std::string& password = "");
  ~Metrics();
  int port() const;

  // The engine probe: publishes one partition's engine. Counters advance by
  // what changed since the last call for that partition; gauges are summed
  // over partitions.
  // `partition` is the label value: the partition's number for an input
  // partition, "FIELD/N" for partition N of a re-keying topic.
  void UpdateEngine(const std::string& partition, const engine::Engine& engine, Millis wall_now_ms);
  void UpdateEngine(int32_t partition, const engine::Engine& engine, Millis wall_now_ms) {
    UpdateEngine(std::to_string(partition), engine, wall_now_ms);
  }
  void CountMalformed(uint64_t n);
  void CountRecord();  // a record read from Kafka, whatever became of it
  void ObserveEventToAlert(double seconds);
  // Daemon probes.
  void ObserveStateCommit(double seconds);
  // The state of newly assigned partitions brought up: changelog catch-up and
  // LMDB load, once per assignment that adds partitions.
  void ObserveStateRestore(double seconds);
  // LMDB bytes in use, and their share of `max_bytes` (state.max_map_size).
  void SetStateBytes(uint64_t bytes, uint64_t max_bytes);
  // Damaged state files set aside in the state directory.
  void SetQuarantinedFiles(int n);
  // One table's figures (section 6.1): its counters advance by what `stats`
  // gained since the last call (a table rebuilt by a reload starts again).
  void SetTable(const std::string& table, const engine::TableStats& stats, int64_t lag, double bootstrap_seconds);
  void CountTransactionAbort();
  void SetConsumerLag(const std::string& partition, int64_t lag);
  void SetConsumerLag(int32_t partition, int64_t lag) { SetConsumerLag(std::to_string(partition), lag); }
  // Events forwarded to a re-keying topic, and events without its key field
  // (not forwarded), by key field (section 6.4).
  void CountRekeyed(const std::string& field, uint64_t forwarded, uint64_t missing_key);
  // Records (events and marks) read from a re-keying topic, by its field;
  // cepheus_records_read_total counts them too.
  void CountRekeyRead(const std::string& field, uint64_t records);
  // A partition's engine was dropped or replaced (revoked, or rolled back to
  // LMDB after an abort): its share of the gauges goes, and the next
  // UpdateEngine for it starts from zero.
  void ForgetPartition(const std::string& partition);
  void ForgetPartition(int32_t partition) { ForgetPartition(std::to_string(partition)); }
  // A rule reload: the per-rule series now follow `rules` (which must outlive
  // this object or the next SetRules). Every engine is assumed replaced.
  void SetRules(const nfa::CompiledRuleSet& rules);
  void CountReload(bool ok);
  // A closed window's record published to the aggregates topic (section 6.3).
  void CountAggregateRecord(const std::string& aggregate);
  void CountRuleStateDropped(uint64_t changed, uint64_t removed);

 private:
  Metrics() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cepheus::metrics

// `cepheus run`: Kafka in, alerts out, state in LMDB, exactly once.
//
// One engine per assigned input partition. Alerts, dead letters and late
// events are produced inside a Kafka transaction together with the consumed
// offsets; every commit interval the engines' changes and the offsets they
// reflect are staged in LMDB, the Kafka transaction is committed, and only
// then the LMDB batch. A crash between the two commits leaves LMDB one batch
// behind Kafka: at restart the partition is re-read from LMDB's offset with
// the engines restored from LMDB, and the alerts of records below the group's
// committed offset (already published) are not published again. Every state
// change also goes to a changelog topic in the same transaction, so when a
// partition moves to another daemon (or LMDB lags Kafka), its state is
// rebuilt from the changelog before the partition is read.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cepheus/engine/engine.h"
#include "cepheus/io/clients.h"
#include "cepheus/metrics/metrics.h"
#include "cepheus/state/lmdb_store.h"
#include "cepheus/daemon/config.h"
#include "cepheus/daemon/rekey_plan.h"
#include "cepheus/daemon/table_feed.h"
#include "cepheus/daemon/log.h"
#include "cepheus/daemon/systemd.h"

namespace cepheus::state {
class PrefixStore;  // state/prefix_store.h
}  // namespace cepheus::state

namespace cepheus::daemon {

class Rekeyer;  // daemon/rekeyer.h

// A place to kill the daemon at, for the crash tests (reliability test A3):
// at its Nth commit, just before or just after the Kafka transaction commits.
// After: Kafka holds the batch and LMDB does not (the restore rolls LMDB
// forward from the changelog). Before: neither holds it.
struct Failpoint {
  enum class Point { kNone, kBeforeKafkaCommit, kAfterKafkaCommit };
  Point point = Point::kNone;
  uint64_t commit = 0;  // 1 = the first commit
};
// Parses "before-kafka-commit:N" or "after-kafka-commit:N" (N >= 1).
Result<Failpoint> ParseFailpoint(const std::string& text);

class Daemon : public io::RebalanceListener {
 public:
  // `clients` makes the Kafka clients (not owned; null: librdkafka's, on
  // config.kafka.brokers). The daemon's unit tests give in-memory ones.
  Daemon(Config config, std::shared_ptr<const nfa::CompiledRuleSet> rules, io::Clients* clients = nullptr);
  ~Daemon() override;

  // Runs until `stop` becomes true or a fatal error. Returns the process exit
  // code: 0 after a clean stop, 1 on a fatal error. Calls Start() first unless
  // it was called already. When `reload` is given and becomes true (SIGHUP),
  // the loop resets it and reloads the rules (see Reload).
  int Run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);
  // The start-up steps: state, metrics, producer, consumer. On failure the
  // daemon must not Run.
  Status Start();
  // Called with every alert once it is produced (inside its transaction).
  void set_on_alert(std::function<void(const engine::Alert&)> f) { on_alert_ = std::move(f); }
  // Called for each window record produced (section 6.3), like on_alert.
  void set_on_record(std::function<void(const engine::AggregateRecord&)> f) { on_record_ = std::move(f); }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  uint64_t malformed() const { return malformed_.load(); }

  std::vector<int64_t> OnAssigned(const std::vector<io::TopicOffset>& committed) override;
  void OnRevoked(const std::vector<io::TopicOffset>& partitions, bool lost) override;

  // Re-reads the rules from config.rules.path, between two batches. A set
  // that does not check is refused: its diagnostics are logged, the running
  // rules go on, and false is returned. A good set is swapped in whole: the
  // open batch is committed, then every partition's engine is rebuilt on the
  // new rules from LMDB, so the partial matches of rules whose text did not
  // change are kept, while those of changed or removed rules are dropped,
  // counted, and deleted from LMDB and the changelog. When the new rules read
  // a table the running ones do not, that table is read first, between
  // batches, while the running rules (and tables) go on; the swap happens
  // once it is caught up (reload_pending() until then). A newer reload
  // replaces a pending one.
  bool Reload();

  // For tests.
  void set_failpoint(Failpoint f) { failpoint_ = f; }
  uint64_t alerts_published() const { return alerts_published_.load(); }
  const nfa::CompiledRuleSet& rules() const { return *rules_; }
  uint64_t rule_state_dropped() const { return rule_state_dropped_.load(); }
  uint64_t late_events() const { return late_events_.load(); }
  bool ready() const { return ready_.load(); }
  bool reload_pending() const { return reload_pending_.load(); }
  int64_t active_runs() const { return active_runs_.load(); }
  uint64_t records_handled() const { return records_handled_.load(); }
  uint64_t restored_runs() const { return restored_runs_.load(); }
  uint64_t commits() const { return commits_.load(); }
  uint64_t aborts() const { return aborts_.load(); }
  // Keys let go from memory so far (state.max_resident_keys).
  uint64_t keys_let_go() const { return keys_let_go_.load(); }

 private:
  struct Part;
  void Handle(engine::RawRecord& r);
  void Publish(Part& p, int64_t offset, Millis source_time);
  // Commits the open transaction and the LMDB batch. Returns false on a
  // fatal error (the daemon must stop).
  bool Commit();
  // Commit's first part: the stage partitions' marks sent, the engines'
  // reads from LMDB checked; a failure aborts the batch.
  Status PrepareCommit();
  // Every 500 ms of the loop: idle partitions follow the clock, and the
  // engine gauges and consumer lag are updated.
  void Tick();
  // Logs that a partition's engine hit state.max_keys or events.max_buffered
  // since the last report (at most once a minute per partition).
  void LogLimits(Part& p, Millis wall);
  // At start: reads the rules' tables from their topics (none when no rule
  // reads one) into feed_, before READY.
  Status LoadTables();
  // Opens <state>/tables when a rule first reads a table.
  Status OpenTableStore();
  // Table records the tables refused go to the dead-letter topic; the
  // tables' versions past `history` are folded; the tables are kept in
  // their store unless dead letters await the commit; metrics updated.
  void TickTables();
  // feed_->Persist; false (and fatal) when the store fails.
  bool PersistTables();
  // A reload that checks but reads tables the running rules do not: its
  // tables load, a turn at a time (StepPendingReload), while the running
  // rules go on; once read, FinishReload swaps the rules in.
  struct PendingReload {
    std::shared_ptr<const nfa::CompiledRuleSet> rules;
    std::unique_ptr<TableFeed> feed;
  };
  void StepPendingReload();
  // Commits, takes the running tables over into `next_feed`, and rebuilds
  // every partition's engine on `next` from LMDB.
  bool FinishReload(std::shared_ptr<const nfa::CompiledRuleSet> next, std::unique_ptr<TableFeed> next_feed);
  // Logs why a reload was refused; the running rules go on. Returns false.
  bool RefuseReload(const std::string& why);
  // The end of Run: the last commit, the state writer, the consumer and the
  // producer closed; the exit code.
  int Shutdown();
  // Aborts the open transaction, puts every engine back to its LMDB state and
  // rewinds the consumer there.
  bool Abort(const std::string& why);
  bool Rewind(Part& p, int64_t to);
  // One record of a partition; true when it was an event pushed into the
  // engine (Handle moves a stage partition's restore point on the others).
  bool HandleRecord(Part& p, engine::RawRecord& r);
  void NoteRecord(Part& p, const engine::RawRecord& r);
  void Reread(Part& p, engine::RawRecord& r);
  int64_t StageRestorePoint(Part& p);
  // Whether the loop commits now (see the cadence in daemon.cc).
  bool CommitDue(bool caught_up, std::chrono::steady_clock::time_point now) const;
  // A watermark mark on a stage partition (section 6.4).
  void HandleMark(Part& p, const engine::RawRecord& r);
  // With kafka.rekey: plan_, sources_, the stage topics (created when
  // missing) and rekeyer_.
  Status PlanRekeying();
  // The changelog partition of a partition's state: the same number, modulo
  // the changelog's partition count when known (stage topics may have more).
  int32_t ChangelogPartition(int32_t partition) const;
  // Rebuilds `p`'s decoder and engine on rules_ from LMDB. State of changed
  // or removed rules is deleted (in LMDB's open batch and, as tombstones, in
  // the changelog of the open transaction); `dropped` counts its runs.
  Status ReadPositions(Part& p, const state::PrefixStore& view, int64_t* lmdb_offset);
  Status Restore(Part& p, int64_t* lmdb_offset, uint64_t* dropped_changed = nullptr,
                 uint64_t* dropped_removed = nullptr);
  Status CatchUpFromChangelog(const std::string& topic, int32_t partition,
                              const std::map<std::string, std::string>& log);
  std::string Prefix(const std::string& topic, int32_t partition) const;
  void Log(const std::string& line) const { daemon::Log(LogLevel::kInfo, line); }
  void LogError(const std::string& line) const { daemon::Log(LogLevel::kError, line); }
  // A fatal librdkafka error; a fencing names the transactional id in conflict.
  void LogFatalKafka(const io::TxnResult& r) const;

  Config config_;
  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  std::unique_ptr<state::LmdbStore> store_;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<io::Clients> own_clients_;  // when none were given
  io::Clients* clients_;
  std::unique_ptr<io::TxnProducer> producer_;
  std::unique_ptr<io::Consumer> consumer_;
  std::unique_ptr<TableFeed> feed_;  // the rules' tables; null when no rule reads one
  std::unique_ptr<state::LmdbStore> table_store_;  // <state>/tables, opened when a rule first reads a table
  Plan plan_;                          // the re-keying plan (no stage unless kafka.rekey)
  std::unique_ptr<Rekeyer> rekeyer_;  // null when nothing is re-keyed
  std::vector<std::string> sources_;  // every input partition, "topic/partition": a stage partition's sources
  int32_t changelog_partitions_ = 0;  // 0: unknown
  std::unique_ptr<PendingReload> pending_;         // a reload whose tables are loading
  std::atomic<bool> reload_pending_{false};
  std::vector<TableFeed::Refused> table_letters_;        // dead letters of tables in the open transaction
  std::vector<TableFeed::Refused> table_letters_again_;  // those of an aborted one, to send again
  std::map<std::pair<std::string, int32_t>, std::unique_ptr<Part>> parts_;
  Part* last_part_ = nullptr;  // the part of the last record handled (records come in runs)
  Millis turn_wall_ = 0;       // the wall clock at the start of the loop's turn
  engine::RawRecord record_;   // the record at hand (its buffers are reused)
  nfa::Position origin_;       // a forwarded record's input position (reused)
  Notifier notify_;
  bool fatal_ = false;
  bool started_ = false;
  std::atomic<bool> ready_{false};  // READY=1 sent
  std::atomic<uint64_t> rule_state_dropped_{0};
  std::atomic<uint64_t> malformed_{0};
  std::function<void(const engine::Alert&)> on_alert_;
  std::function<void(const engine::AggregateRecord&)> on_record_;
  bool dirty_ = false;  // records handled since the last commit
  std::atomic<uint64_t> alerts_published_{0};
  std::atomic<uint64_t> records_handled_{0};
  std::atomic<uint64_t> late_events_{0};
  std::atomic<uint64_t> restored_runs_{0};
  uint64_t uncommitted_alerts_ = 0;              // alerts produced in the open transaction
  std::vector<Millis> uncommitted_alert_times_;  // Kafka times of the records behind this batch's alerts
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> aborts_{0};
  std::atomic<uint64_t> keys_let_go_{0};
  // The counters above and this are read by tests from other threads.
  std::atomic<int64_t> active_runs_{0};
  std::chrono::steady_clock::time_point last_commit_;
  uint64_t handled_at_commit_ = 0;  // handled_ at the last commit
  uint64_t handled_ = 0;  // records handled (the loop's own count; records_handled_ is its published copy)
  // Sets active_runs_ from the engines and publishes records_handled_ (the
  // loop's thread): after each turn, a rebalance, an abort and a reload.
  void CountRuns();
  Failpoint failpoint_;
  // Kills the process (SIGKILL) when the failpoint names this point of the
  // commit under way.
  void MaybeCrash(Failpoint::Point at) const;
};

}  // namespace cepheus::daemon

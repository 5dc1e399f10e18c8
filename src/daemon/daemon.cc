// The daemon's loop, as a list of steps (redpanda's application::run).
//
// Start: open the LMDB state, serve metrics, create the transactional
// producer (InitTransactions fences an older instance with the same id),
// subscribe the consumer, begin the first transaction. Loop, in turns of up
// to kRecordsPerTurn records: decode each (malformed records go to the
// dead-letter topic with the reason and origin in headers), push it into its
// partition's engine, produce what the engine published inside the
// transaction; commit at a cadence that follows the load (CommitDue: caught
// up, every commit interval and at once when an alert waits; under a
// backlog, every commit_records records). After the idle timeout a quiet
// partition's watermark follows the wall clock, idle_timeout + out_of_order
// behind it.
//
// Commit order is the heart of exactly-once: (1) stage each engine's changes
// and its next offset in LMDB, (2) wait for the previous LMDB batch and stop
// if it failed, (3) add the consumed offsets to the Kafka transaction and
// commit it, (4) write the LMDB batch in the background (its fsync overlaps
// the next batch's processing; step 2 of the next commit waits for it). Kafka
// is therefore never more than one batch ahead of LMDB. Errors follow
// librdkafka's classes: retriable calls are retried, an abortable error aborts
// the transaction and rolls every engine back to LMDB and the consumer back
// to LMDB's offsets, a fatal error (fenced) stops the daemon with exit 1.
//
// systemd hears of each start-up step (STATUS=), of readiness once the first
// assignment is restored (READY=1), of reloads and of the stop; the loop pings
// the watchdog. A rule reload (SIGHUP) happens between batches: commit, then
// rebuild every engine on the new rules from LMDB, where the state of rules
// whose fingerprint (source text) changed does not load and is deleted.
#include "cepheus/daemon/daemon.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/source_marks.h"
#include "daemon/rekeyer.h"
#include "cepheus/engine/pump.h"
#include "cepheus/io/kafka.h"
#include "cepheus/state/prefix_store.h"
#include "cepheus/version.h"
#include "cepheus/daemon/rules_loader.h"

namespace cepheus::daemon {
namespace {

// An offset record's value: decimal digits, as written by Commit ("" reads
// as -1, no offset). Anything else is a damaged record, reported, never thrown.
Result<int64_t> ParseOffset(std::string_view v) {
  if (v.empty()) return int64_t{-1};
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < -1) {
    return Status::Corruption(fmt::format("offset record is not a number: '{}'", v.substr(0, 40)));
  }
  return n;
}

Millis WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int kTxnTimeoutMs = 30000;
constexpr const char* kStateCommitFailed =
    "cannot commit the state (the next start catches up from the last good batch): ";
constexpr int kRecordsPerTurn = 1000;  // records handled between two looks at the clocks
constexpr std::chrono::seconds kBacklogCommitEvery{1};  // the longest batch under a backlog
constexpr const char* kReadKey = "read";  // a stage partition's read position, beside "offset"
constexpr int kExitConfig = 78;  // EX_CONFIG: the set-up is wrong, a restart will not help

// The state of one partition at a commit: each write goes to the store under
// the partition's prefix and, as the same change, to the changelog topic
// (key: the full state key, a tombstone for a delete), in the open
// transaction. The full key is built once per write, in a reused buffer.
class TeeStore : public engine::StateStore {
 public:
  TeeStore(engine::StateStore* base, std::string prefix, io::TxnProducer* producer, const std::string* topic,
           int32_t partition)
      : base_(base), prefix_size_(prefix.size()), full_(std::move(prefix)), producer_(producer), topic_(topic),
        partition_(partition) {}
  Status Put(std::string_view key, std::string_view value) override {
    std::string_view full = FullKey(key);
    if (Status st = producer_->ProduceTo(*topic_, partition_, full, value); !st.ok()) return st;
    return base_->Put(full, value);
  }
  Status Delete(std::string_view key) override {
    std::string_view full = FullKey(key);
    if (Status st = producer_->ProduceTo(*topic_, partition_, full, std::nullopt); !st.ok()) return st;
    return base_->Delete(full);
  }
  Status Scan(std::string_view prefix,
              const std::function<void(std::string_view, std::string_view)>& fn) const override {
    std::string from = full_.substr(0, prefix_size_);
    from.append(prefix);
    size_t n = prefix_size_;
    return base_->Scan(from, [&](std::string_view k, std::string_view v) { fn(k.substr(n), v); });
  }

 private:
  std::string_view FullKey(std::string_view key) {
    full_.resize(prefix_size_);
    full_.append(key);
    return full_;
  }
  engine::StateStore* base_;
  size_t prefix_size_;
  std::string full_;  // the prefix, then the key of the write at hand
  io::TxnProducer* producer_;
  const std::string* topic_;
  int32_t partition_;
};

// What the last engine call of a partition produced; Publish sends it to
// Kafka right after, in the open transaction, and empties it.
class Outbox : public engine::AlertSink {
 public:
  void Publish(const engine::Alert& alert) override { alerts.push_back(alert); }
  void Late(const nfa::Event& event) override { late.emplace_back(event.raw); }
  void PublishAggregate(const engine::AggregateRecord& r) override { records.push_back(r); }
  void Clear() {
    alerts.clear();
    late.clear();
    records.clear();
  }
  std::vector<engine::Alert> alerts;
  std::vector<std::string> late;  // late events, as received
  std::vector<engine::AggregateRecord> records;  // closed windows (section 6.3)
};

}  // namespace

struct Daemon::Part {
  std::string topic;
  int32_t partition = 0;
  Outbox outbox;  // what the last engine call produced
  std::unique_ptr<engine::EventDecoder> decoder;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<engine::Pump> pump;  // decoder -> engine; a refused record's reason in `refused`
  // The partition's view of LMDB, where the engine reads back the keys it
  // let go from memory (state.max_resident_keys).
  std::unique_ptr<state::PrefixStore> cold;
  std::string refused;
  int64_t next_offset = -1;     // after the last record handled
  // A stage partition's watermark moves at its sources' marks alone, so its
  // events wait in the reorder buffer for the next mark. They are not saved:
  // its restore point (the LMDB and group offset) is the record of the
  // oldest event still waiting (StageRestorePoint), and a restore reads them
  // again from the re-keying topic. Below skip_until (where the restored
  // state had read) that second reading passes over what the state already
  // holds: marks, and events at or before its watermark (evaluated or late).
  // An event that waits more than state.max_reread records behind is saved
  // instead (arrivals up to saved_through are in LMDB), so the restore point
  // keeps up. `pushed`: (arrival, offset) of the events pushed since the
  // restore, oldest first, trimmed at each commit.
  int64_t skip_until = -1;
  uint64_t saved_through = 0;
  std::deque<std::pair<uint64_t, int64_t>> pushed;
  int64_t suppress_until = -1;  // records below were published before a crash
  int64_t assigned_from = -1;   // where reading started at assignment (-1: the group's position)
  Millis last_wall = 0;
  // The engine's limit counters as of the last log line about them, and
  // when that was (a limit hit is logged at most once a minute).
  uint64_t logged_refused = 0, logged_forced = 0;
  Millis limit_logged_at = 0;
  // Re-keying (section 6.4). A stage partition (stage >= 0) runs the rules
  // of its stage, its watermark the least of its sources' marks; an input
  // partition sends its watermark as a mark when it moved.
  int stage = -1;
  std::unique_ptr<engine::SourceMarks> marks;  // a stage partition's
  bool marks_dirty = false;
  Millis mark_sent = kMinTime;
  bool replaying = false;      // the record at hand was published before a crash
  std::string forward_error;   // a failed forward of the record at hand
  std::string Label() const { return label.empty() ? std::to_string(partition) : label; }
  std::string label;           // the metrics' partition label of a stage partition ("card_id/3")
  uint64_t read_since_tick = 0;  // a stage partition's records read since the last Tick
};

Daemon::Daemon(Config config, std::shared_ptr<const nfa::CompiledRuleSet> rules, io::Clients* clients)
    : config_(std::move(config)), rules_(std::move(rules)), clients_(clients) {
  if (clients_ == nullptr) {
    own_clients_ = std::make_unique<io::KafkaClients>(config_.kafka.brokers);
    clients_ = own_clients_.get();
  }
  if (config_.kafka.changelog_topic.empty()) config_.kafka.changelog_topic = config_.kafka.group_id + "-changelog";
}

Daemon::~Daemon() {
  consumer_.reset();  // close the consumer first: its revoke callback may commit
}

void Daemon::LogFatalKafka(const io::TxnResult& r) const {
  // Fenced comes from the error code (io::TxnResult::fenced), whatever words
  // librdkafka or the broker put around it ("fenced by a newer instance", "an
  // old epoch"): another producer took this transactional id.
  LogError(fmt::format("fatal Kafka error, stopping: {}{}", r.message,
                       r.fenced ? fmt::format(" (another process uses transactional_id '{}'; each daemon needs its "
                                              "own kafka.transactional_id)",
                                              config_.kafka.transactional_id)
                                : ""));
}

void Daemon::CountRuns() {
  int64_t n = 0;
  for (const auto& [key, p] : parts_) n += p->engine->active_runs();
  // Published together, runs first: a reader that sees N records handled
  // sees the runs they left (a test waits for the records, then reads runs).
  active_runs_ = n;
  records_handled_ = handled_;
}

std::string Daemon::Prefix(const std::string& topic, int32_t partition) const {
  return fmt::format("p/{}/{}/", topic, partition);
}

namespace {

// Opens the LMDB environment of `options`. A damaged one (Corruption) has its
// files moved to STATE_DIR/PREFIX-<ms>/ for a post-mortem and is opened again,
// empty; `then` tells the log what fills it again. The folder is inside the
// state directory: under the unit's sandbox the only place cepheus may write.
Result<std::unique_ptr<state::LmdbStore>> OpenOrSetAside(const state::LmdbOptions& options,
                                                        const std::string& state_dir, const std::string& prefix,
                                                        const std::string& then) {
  auto store = state::LmdbStore::Open(options);
  if (store.ok() || store.status().code() != Status::Code::kCorruption) return store;
  auto aside = std::filesystem::path(state_dir) / fmt::format("{}-{}", prefix, WallMs());
  daemon::Log(LogLevel::kError,
              fmt::format("{}; moving its files to {} and {}", store.status().message(), aside.string(), then));
  std::error_code ec;
  std::filesystem::create_directory(aside, ec);
  for (const char* f : {"data.mdb", "lock.mdb"}) {
    auto from = std::filesystem::path(options.directory) / f;
    if (!ec && std::filesystem::exists(from)) std::filesystem::rename(from, aside / f, ec);
  }
  if (ec) return Status::IoError(fmt::format("cannot move the damaged state to {}: {}", aside.string(), ec.message()));
  return state::LmdbStore::Open(options);
}

}  // namespace

Status Daemon::Start() {
  auto step = [this](const std::string& what) {
    Log(what);
    notify_.Status(what);
  };
  step(fmt::format("opening state in {}", config_.state.directory));
  state::LmdbOptions lmdb{config_.state.directory, config_.state.map_size, config_.state.max_map_size};
  auto store = OpenOrSetAside(lmdb, config_.state.directory, "corrupt", "rebuilding the state from the changelog");
  if (!store.ok()) return store.status();
  store_ = std::move(store).value();

  step(fmt::format("serving metrics on {}", config_.metrics.listen));
  auto m = metrics::Metrics::Start(config_.metrics.listen, CEPHEUS_VERSION, *rules_, config_.metrics.username,
                                   config_.metrics.password);
  if (!m.ok()) return m.status();
  metrics_ = std::move(m).value();

  metrics_->SetStateBytes(store_->used_bytes(), config_.state.max_map_size);
  int quarantined = 0;
  std::error_code dir_ec;
  for (const auto& e : std::filesystem::directory_iterator(config_.state.directory, dir_ec)) {
    quarantined += e.is_directory() && e.path().filename().string().rfind("corrupt-", 0) == 0;
  }
  metrics_->SetQuarantinedFiles(quarantined);

  step(fmt::format("connecting the transactional producer ({}) to {}", config_.kafka.transactional_id,
                   config_.kafka.brokers));
  auto p = clients_->Producer(config_.kafka.transactional_id, config_.kafka.producer);
  if (!p.ok()) return p.status();
  producer_ = std::move(p).value();
  for (int attempt = 0;; ++attempt) {
    io::TxnResult r = producer_->InitTransactions(kTxnTimeoutMs);
    if (r.ok()) break;
    if (r.outcome != io::TxnOutcome::kRetry || attempt >= 5) {
      return Status::IoError("init_transactions: " + r.message);
    }
  }
  if (io::TxnResult r = producer_->BeginTransaction(); !r.ok()) return Status::IoError("begin: " + r.message);
  // Without this, the first alert after a start waits for librdkafka's next
  // metadata refresh (~0.7 s). A topic the brokers do not know is logged, not
  // fatal: it may be created on first use, and if not, producing to it fails
  // and says so.
  std::vector<std::string> outputs = {config_.kafka.alerts_topic, config_.kafka.changelog_topic,
                                      config_.kafka.dead_letter_topic};
  if (!config_.kafka.late_topic.empty()) outputs.push_back(config_.kafka.late_topic);
  if (!rules_->aggregates.empty()) outputs.push_back(config_.kafka.aggregates_topic);
  if (Status st = producer_->LoadMetadata(outputs, 10000); !st.ok()) {
    daemon::Log(LogLevel::kWarning, "output topics: " + st.message());
  }

  if (Status st = LoadTables(); !st.ok()) return st;

  step(fmt::format("joining group {} on {}", config_.kafka.group_id, fmt::join(config_.kafka.input_topics, ", ")));
  if (Status st = PlanRekeying(); !st.ok()) return st;
  std::vector<std::string> topics = config_.kafka.input_topics;
  for (const auto& s : plan_.stages) topics.push_back(s.topic);
  auto c = clients_->GroupConsumer(config_.kafka.group_id, topics, GroupConsumerProperties(config_), this);
  if (!c.ok()) return c.status();
  consumer_ = std::move(c).value();
  started_ = true;
  notify_.Status(fmt::format("waiting for partitions of {} from group {}", fmt::join(config_.kafka.input_topics, ", "),
                             config_.kafka.group_id));
  return Status::Ok();
}

Status Daemon::Restore(Part& p, int64_t* lmdb_offset, uint64_t* dropped_changed, uint64_t* dropped_removed) {
  metrics_->ForgetPartition(p.Label());  // its engine is replaced
  p.decoder = std::make_unique<engine::EventDecoder>(rules_, config_.events);
  engine::EngineOptions eo;
  eo.out_of_order = config_.out_of_order;
  eo.max_buffered = config_.max_buffered;
  eo.max_keys = config_.state.max_keys;
  eo.max_resident_keys = config_.state.max_resident_keys;
  if (rekeyer_) {
    eo.key_fields = p.stage < 0 ? plan_.DirectFields() : std::vector<std::string>{plan_.stages[static_cast<size_t>(p.stage)].field};
    eo.watermark_from_events = p.stage < 0;
  }
  p.mark_sent = kMinTime;
  p.logged_refused = p.logged_forced = 0;
  p.outbox.Clear();
  p.engine = std::make_unique<engine::Engine>(rules_, eo, &p.outbox);
  p.engine->set_tables(feed_ ? feed_->tables() : nullptr);
  p.cold = std::make_unique<state::PrefixStore>(store_.get(), Prefix(p.topic, p.partition));
  p.engine->set_cold_store(p.cold.get(), p.decoder.get());
  // The pump only notes why a record was refused: Handle sends the dead
  // letter after Feed returns (a failed send aborts, which rebuilds the pump).
  p.pump = std::make_unique<engine::Pump>(
      p.decoder.get(), p.engine.get(),
      [&p](std::string_view, const nfa::Position&, const Status& why) { p.refused = why.message(); },
      [this, &p](const nfa::Event& e) {
        if (e.ts > p.last_wall + config_.max_future_skew) {
          return Status::InvalidArgument(fmt::format("time {} is more than {} ahead of the wall clock", e.ts,
                                                     FormatDuration(config_.max_future_skew)));
        }
        // An input partition's event goes on to the stages that read it; a
        // failure to queue it aborts the batch (Handle, after Feed).
        if (rekeyer_ && p.stage < 0 && !p.replaying) {
          if (Status st = rekeyer_->Forward(e); !st.ok()) p.forward_error = st.message();
        }
        return Status::Ok();
      });
  std::string prefix = Prefix(p.topic, p.partition);
  state::PrefixStore view(store_.get(), prefix);
  engine::Engine::LoadReport report;
  if (Status st = p.engine->Load(view, p.decoder.get(), &report); !st.ok()) return st;
  keys_let_go_ += p.engine->stats().keys_evicted;  // past state.max_resident_keys as they loaded
  p.saved_through = p.engine->arrivals();  // the buffered events LMDB held are loaded
  p.pushed.clear();
  // Records of changed or removed rules (never loaded into a mismatched
  // automaton) and records moved to their digest key: deleted here and in
  // the changelog, so neither a restart nor another daemon loads them again.
  for (const auto& k : report.stale_keys) {
    if (Status st = view.Delete(k); !st.ok()) return st;
    if (Status st = producer_->ProduceTo(config_.kafka.changelog_topic, ChangelogPartition(p.partition), prefix + k,
                                         std::nullopt);
        !st.ok()) {
      return st;
    }
    dirty_ = true;
  }
  if (report.keys_dropped > 0) {
    Log(fmt::format("{}/{}: dropped {} partial matches of changed rules and {} of removed rules ({} keys)", p.topic,
                    p.partition, report.runs_changed, report.runs_removed, report.keys_dropped));
  }
  if (dropped_changed) *dropped_changed += report.runs_changed;
  if (dropped_removed) *dropped_removed += report.runs_removed;
  return ReadPositions(p, view, lmdb_offset);
}

// A restored partition's positions in LMDB: its offset (-1: none), a stage
// partition's read position and its sources' marks.
Status Daemon::ReadPositions(Part& p, const state::PrefixStore& view, int64_t* lmdb_offset) {
  *lmdb_offset = -1;
  p.skip_until = -1;
  Status bad;
  Status st = view.Scan("offset", [&](std::string_view k, std::string_view v) {
    if (k != "offset") return;
    auto n = ParseOffset(v);
    if (n.ok()) *lmdb_offset = n.value();
    else bad = n.status();
  });
  if (st.ok()) {
    st = view.Scan(kReadKey, [&](std::string_view k, std::string_view v) {
      if (k != kReadKey) return;
      auto n = ParseOffset(v);
      if (n.ok()) p.skip_until = n.value();
      else bad = n.status();
    });
  }
  if (!st.ok()) return st;
  if (!bad.ok()) return Status::Corruption(fmt::format("{}/{}: {}", p.topic, p.partition, bad.message()));
  if (p.stage >= 0) {
    // A stage partition's sources' marks, as of the batch LMDB holds.
    p.marks = std::make_unique<engine::SourceMarks>(sources_);
    p.marks_dirty = false;
    Status marks = Status::Ok();
    st = view.Scan("marks", [&](std::string_view k, std::string_view v) {
      if (k == "marks") marks = p.marks->Decode(v);
    });
    if (!st.ok()) return st;
    if (!marks.ok()) return Status::Corruption(fmt::format("{}/{}: {}", p.topic, p.partition, marks.message()));
    p.engine->AdvanceWatermark(p.marks->watermark());
  }
  return Status::Ok();
}

// Brings LMDB's copy of a partition up to the changelog: when the changelog
// holds a newer position than LMDB (the partition was processed by another
// daemon, or this one crashed between the Kafka and the LMDB commit), the
// partition's keys in LMDB are replaced by the changelog's. The position is
// the offset record's, or for a stage partition its read record's (its
// offset may stay on a waiting event while it reads on).
Status Daemon::CatchUpFromChangelog(const std::string& topic, int32_t partition,
                                    const std::map<std::string, std::string>& log) {
  const std::string prefix = Prefix(topic, partition);
  const std::string read_key = prefix + kReadKey;
  const std::string offset_key = log.count(read_key) ? read_key : prefix + "offset";
  auto in_log = log.find(offset_key);
  if (in_log == log.end()) return Status::Ok();  // the changelog knows nothing newer
  auto parsed_log = ParseOffset(in_log->second);
  if (!parsed_log.ok()) {
    return Status::Corruption(fmt::format("{}/{}: the changelog's {}", topic, partition, parsed_log.status().message()));
  }
  int64_t log_offset = parsed_log.value();
  int64_t local_offset = -1;
  std::vector<std::string> local_keys;
  Status bad;
  Status st = store_->Scan(prefix, [&](std::string_view k, std::string_view v) {
    local_keys.emplace_back(k);
    if (k != offset_key) return;
    auto n = ParseOffset(v);
    if (n.ok()) local_offset = n.value();
    else bad = n.status();  // a damaged local offset: the changelog's copy wins
  });
  if (!st.ok()) return st;
  if (!bad.ok()) {
    LogError(fmt::format("{}/{}: the state file's {}; taking the changelog's", topic, partition, bad.message()));
  }
  if (local_offset >= log_offset) return Status::Ok();
  for (const auto& k : local_keys) {
    if (st = store_->Delete(k); !st.ok()) return st;
  }
  size_t n = 0;
  for (const auto& [k, v] : log) {
    if (k.compare(0, prefix.size(), prefix) != 0) continue;
    if (st = store_->Put(k, v); !st.ok()) return st;
    ++n;
  }
  if (st = store_->Commit(); !st.ok()) return st;
  Log(fmt::format("{}/{}: state restored from the changelog ({} records, offset {} -> {})", topic, partition, n,
                  local_offset, log_offset));
  return Status::Ok();
}

std::vector<int64_t> Daemon::OnAssigned(const std::vector<io::TopicOffset>& committed) {
  // LMDB may hold staged changes of partitions we keep: commit them first, so
  // a restore below commits nothing but itself (Kafka Streams does the same).
  if (dirty_ && !fatal_ && !Commit()) fatal_ = true;
  auto restore_started = std::chrono::steady_clock::now();
  std::vector<int32_t> numbers;
  for (const auto& tp : committed) numbers.push_back(ChangelogPartition(tp.partition));
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  auto logs = clients_->ReadCompacted(config_.kafka.changelog_topic, numbers,
                                config_.kafka.consumer, 120000);
  if (!logs.ok()) {
    LogError("cannot read the changelog: " + logs.status().message());
    fatal_ = true;
  }
  std::vector<int64_t> start;
  uint64_t dropped_changed = 0, dropped_removed = 0;
  for (const auto& tp : committed) {
    notify_.MaybePingWatchdog();  // restoring many partitions takes a while
    static const std::map<std::string, std::string> kNone;
    const auto& log = logs.ok() ? logs.value()[ChangelogPartition(tp.partition)] : kNone;
    if (Status st = CatchUpFromChangelog(tp.topic, tp.partition, log); !st.ok()) {
      LogError(fmt::format("{}/{}: cannot restore from the changelog: {}", tp.topic, tp.partition, st.message()));
      fatal_ = true;
    }
    auto part = std::make_unique<Part>();
    part->topic = tp.topic;
    part->partition = tp.partition;
    part->last_wall = WallMs();
    part->stage = rekeyer_ ? rekeyer_->StageOf(tp.topic) : -1;
    if (part->stage >= 0) {
      part->label = fmt::format("{}/{}", plan_.stages[static_cast<size_t>(part->stage)].field, tp.partition);
    }
    int64_t lmdb_offset = -1;
    if (Status st = Restore(*part, &lmdb_offset, &dropped_changed, &dropped_removed); !st.ok()) {
      LogError(fmt::format("{}/{}: cannot restore its state: {}", tp.topic, tp.partition, st.message()));
      fatal_ = true;
    }
    restored_runs_ += static_cast<uint64_t>(part->engine->active_runs());
    int64_t from = lmdb_offset >= 0 ? lmdb_offset : tp.offset;
    if (lmdb_offset >= 0 && tp.offset > lmdb_offset) part->suppress_until = tp.offset;  // crash between commits
    part->next_offset = from;
    part->assigned_from = from;
    Log(fmt::format("assigned {}/{}: {} runs restored, reading from {}{}", tp.topic, tp.partition,
                    part->engine->active_runs(), from >= 0 ? fmt::format("offset {}", from) : "the group's position",
                    part->suppress_until >= 0 ? fmt::format(" (alerts before {} were already published)", part->suppress_until) : ""));
    start.push_back(from);
    last_part_ = nullptr;
    parts_[{tp.topic, tp.partition}] = std::move(part);
  }
  if (!committed.empty()) {
    metrics_->ObserveStateRestore(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - restore_started).count());
  }
  metrics_->CountRuleStateDropped(dropped_changed, dropped_removed);
  rule_state_dropped_ += dropped_changed + dropped_removed;
  CountRuns();
  std::string status = fmt::format("processing {} partitions", parts_.size());
  if (!ready_ && !fatal_) {
    ready_ = true;
    Log("ready: " + status);
    notify_.Ready(status);
  } else {
    notify_.Status(status);
  }
  return start;
}

void Daemon::OnRevoked(const std::vector<io::TopicOffset>& partitions, bool lost) {
  if (lost) {
    Abort("the assignment was lost");
  } else if (!fatal_) {
    if (!Commit()) fatal_ = true;
  }
  for (const auto& tp : partitions) {
    Log(fmt::format("revoked {}/{}", tp.topic, tp.partition));
    last_part_ = nullptr;
    auto it = parts_.find({tp.topic, tp.partition});
    if (it == parts_.end()) continue;
    metrics_->ForgetPartition(it->second->Label());
    parts_.erase(it);
  }
  CountRuns();
  notify_.Status(fmt::format("processing {} partitions", parts_.size()));
}

void Daemon::Publish(Part& p, int64_t offset, Millis source_time) {
  bool replaying = offset >= 0 && offset < p.suppress_until;
  for (const auto& a : p.outbox.alerts) {
    if (replaying) continue;
    if (Status st = producer_->Produce(config_.kafka.alerts_topic, a.key, a.json); !st.ok()) {
      Abort(st.message());
      return;
    }
    ++alerts_published_;
    ++uncommitted_alerts_;
    if (source_time > 0) uncommitted_alert_times_.push_back(source_time);
    if (on_alert_) on_alert_(a);
  }
  for (const auto& r : p.outbox.records) {
    // A window's record, like an alert: in the transaction, once.
    if (replaying) continue;
    if (Status st = producer_->Produce(config_.kafka.aggregates_topic, r.group, r.json); !st.ok()) {
      Abort(st.message());
      return;
    }
    metrics_->CountAggregateRecord(r.aggregate);
    if (on_record_) on_record_(r);
  }
  late_events_ += p.outbox.late.size();
  if (!config_.kafka.late_topic.empty() && !replaying) {
    for (const auto& l : p.outbox.late) {
      // Lost late events would be lost input: as for an alert, the batch is
      // aborted and read again.
      if (Status st = producer_->Produce(config_.kafka.late_topic, "", l); !st.ok()) {
        Abort(st.message());
        return;
      }
    }
  }
  p.outbox.Clear();
}

void Daemon::Handle(engine::RawRecord& r) {
  if (last_part_ == nullptr || last_part_->partition != r.pos.partition || last_part_->topic != r.pos.topic) {
    auto it = parts_.find({r.pos.topic, r.pos.partition});
    if (it == parts_.end()) return;  // not ours any more
    last_part_ = it->second.get();
  }
  Part& p = *last_part_;
  if (p.stage < 0) {
    HandleRecord(p, r);
    return;
  }
  if (r.pos.offset < p.skip_until) {
    Reread(p, r);
    return;
  }
  const uint64_t aborts = aborts_;
  const bool pushed = HandleRecord(p, r);
  if (pushed && aborts_ == aborts) p.pushed.emplace_back(p.engine->arrivals(), r.pos.offset);
}

// A stage partition's record read again after a restore, below where the
// restored state had read: a mark is in its marks already, an event at or
// before its watermark was evaluated (or late) then; a later event waited in
// the buffer then, and waits there again. (A refused record is passed over
// too: only an event a source accepted is forwarded, and the stage's check,
// against a later wall clock, refused none of those.)
void Daemon::Reread(Part& p, engine::RawRecord& r) {
  NoteRecord(p, r);
  if (engine::IsMarkRecord(r.payload)) return;
  const nfa::Position* pos = Rekeyer::OriginOf(r.key, &origin_) ? &origin_ : &r.pos;
  bool padded = r.payload.capacity() >= r.payload.size() + engine::kPayloadPadding;
  auto ev = p.decoder->Decode(r.payload, *pos, padded);
  if (!ev.ok() || ev.value()->ts <= p.engine->watermark()) return;
  p.engine->Push(std::move(ev).value());
  p.pushed.emplace_back(p.engine->arrivals(), r.pos.offset);
  Publish(p, r.pos.offset, r.source_time);  // nothing, unless a smaller max_buffered forced a release
}

// Where a stage partition's restore reads from (see Part): the record of
// its oldest waiting event that is not saved. Raises saved_through so that
// this is at most state.max_reread records behind the partition's position.
int64_t Daemon::StageRestorePoint(Part& p) {
  for (;;) {
    const uint64_t oldest = p.engine->OldestBufferedArrival(p.saved_through);
    while (!p.pushed.empty() && p.pushed.front().first < oldest) p.pushed.pop_front();
    if (p.pushed.empty()) return p.next_offset;
    const auto max_reread = static_cast<int64_t>(config_.state.max_reread);
    if (p.next_offset - p.pushed.front().second <= max_reread) return p.pushed.front().second;
    // Too far behind: the events that wait from further back are saved.
    auto within = std::find_if(p.pushed.begin(), p.pushed.end(),
                               [&](const auto& e) { return p.next_offset - e.second <= max_reread; });
    p.saved_through = within == p.pushed.end() ? p.engine->arrivals() : within->first - 1;
  }
}

// A record of `p` read: its position, the counts, the batch now holds it.
void Daemon::NoteRecord(Part& p, const engine::RawRecord& r) {
  p.next_offset = r.pos.offset + 1;
  ++handled_;
  metrics_->CountRecord();
  p.last_wall = turn_wall_;
  dirty_ = true;
  if (p.stage >= 0) ++p.read_since_tick;
}

// Returns true when the record was an event pushed into the engine.
bool Daemon::HandleRecord(Part& p, engine::RawRecord& r) {
  NoteRecord(p, r);
  if (p.stage >= 0 && engine::IsMarkRecord(r.payload)) {
    HandleMark(p, r);
    return false;
  }
  p.replaying = r.pos.offset < p.suppress_until;
  bool padded = r.payload.capacity() >= r.payload.size() + engine::kPayloadPadding;
  // A forwarded event takes back its input position (alert ids name it).
  const nfa::Position* pos = &r.pos;
  if (p.stage >= 0 && Rekeyer::OriginOf(r.key, &origin_)) pos = &origin_;
  if (p.pump->Feed(r.payload, *pos, padded)) {
    if (!p.forward_error.empty()) {
      Abort("cannot forward an event to its re-keying topic: " + std::exchange(p.forward_error, {}));
      return false;
    }
    Publish(p, r.pos.offset, r.source_time);
    return true;
  }
  metrics_->CountMalformed(1);
  ++malformed_;
  if (r.pos.offset < p.suppress_until) return false;
  Status st = producer_->Produce(config_.kafka.dead_letter_topic, "", r.payload,
                                 {{"cepheus.error", p.refused},
                                  {"cepheus.origin.topic", r.pos.topic},
                                  {"cepheus.origin.partition", std::to_string(r.pos.partition)},
                                  {"cepheus.origin.offset", std::to_string(r.pos.offset)}});
  if (!st.ok()) Abort(st.message());
  return false;
}

// A source's watermark mark on a stage partition: the partition's watermark
// becomes the least of its sources' marks, which may close windows.
void Daemon::HandleMark(Part& p, const engine::RawRecord& r) {
  auto mark = engine::ParseMarkRecord(r.payload);
  if (!mark.ok()) {
    LogError(fmt::format("{}/{} offset {}: {}; skipped", r.pos.topic, r.pos.partition, r.pos.offset,
                         mark.status().message()));
    return;
  }
  p.marks->Mark(mark.value().first, mark.value().second);
  p.marks_dirty = true;
  p.engine->AdvanceWatermark(p.marks->watermark());
  Publish(p, r.pos.offset, 0);
}

int32_t Daemon::ChangelogPartition(int32_t partition) const {
  return changelog_partitions_ > 0 ? partition % changelog_partitions_ : partition;
}

// With kafka.rekey, the plan of the rules; each stage's topic checked, or
// created with the input's partition count.
Status Daemon::PlanRekeying() {
  plan_ = Plan{};
  rekeyer_.reset();
  if (!config_.kafka.rekey) return Status::Ok();
  plan_ = MakePlan(*rules_, config_.kafka.partition_key, config_.kafka.group_id);
  std::istringstream plan(FormatPlan(plan_));
  for (std::string line; std::getline(plan, line);) Log(line);
  if (plan_.stages.empty()) return Status::Ok();
  int32_t input_partitions = 0;
  sources_.clear();
  for (const auto& topic : config_.kafka.input_topics) {
    auto n = producer_->PartitionCount(topic, 10000);
    if (!n.ok()) return Status::FailedPrecondition(fmt::format("input topic {}: {}", topic, n.status().message()));
    for (int32_t p = 0; p < n.value(); ++p) sources_.push_back(fmt::format("{}/{}", topic, p));
    input_partitions = std::max(input_partitions, n.value());
  }
  auto changelog = producer_->PartitionCount(config_.kafka.changelog_topic, 10000);
  changelog_partitions_ = changelog.ok() ? changelog.value() : 0;
  std::vector<int32_t> partitions;
  for (const auto& s : plan_.stages) {
    auto n = producer_->PartitionCount(s.topic, 10000);
    if (!n.ok() && n.status().code() == Status::Code::kNotFound) {
      Log(fmt::format("creating the re-keying topic {} with {} partitions", s.topic, input_partitions));
      if (Status st = producer_->CreateTopic(s.topic, input_partitions, 30000); !st.ok()) {
        // Brokers without the Admin API (librdkafka's mock cluster) may still
        // create a topic a metadata request names, with their default count.
        daemon::Log(LogLevel::kWarning, fmt::format("{}; trying the brokers' topic auto-creation", st.message()));
        if (Status meta = producer_->LoadMetadata({s.topic}, 10000); !meta.ok()) {
          return Status::FailedPrecondition(fmt::format("{}; create it with {} partitions", st.message(),
                                                        input_partitions));
        }
      }
      for (int attempt = 0; attempt < 50 && !(n = producer_->PartitionCount(s.topic, 10000)).ok(); ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (!n.ok()) return Status::FailedPrecondition(fmt::format("re-keying topic {}: {}", s.topic, n.status().message()));
    partitions.push_back(n.value());
  }
  rekeyer_ = std::make_unique<Rekeyer>(plan_, std::move(partitions), producer_.get());
  return Status::Ok();
}

// Before a commit: each input partition's watermark, when it moved, to
// every stage partition, in this transaction (after the events it covers).
// A key let go from memory that could not be read back fails it too (the
// batch went on without its state): Commit aborts, and the batch is read
// again from LMDB's state.
Status Daemon::PrepareCommit() {
  for (auto& [key, p] : parts_) {
    if (Status st = p->engine->cold_status(); !st.ok()) {
      return Status::IoError(fmt::format("{}/{}: {}", p->topic, p->partition, st.message()));
    }
  }
  if (!rekeyer_) return Status::Ok();
  for (auto& [key, p] : parts_) {
    Millis w = p->engine->watermark();
    if (p->stage >= 0 || w <= p->mark_sent || w == kMinTime || p->next_offset < p->suppress_until) continue;
    if (Status st = rekeyer_->SendMarks(fmt::format("{}/{}", p->topic, p->partition), w); !st.ok()) return st;
    p->mark_sent = w;
  }
  return Status::Ok();
}

bool Daemon::Commit() {
  if (!dirty_) return true;
  if (Status st = PrepareCommit(); !st.ok()) return Abort(st.message());
  std::vector<io::TopicOffset> offsets;
  for (auto& [key, p] : parts_) {
    TeeStore tee(store_.get(), Prefix(p->topic, p->partition), producer_.get(), &config_.kafka.changelog_topic,
                 ChangelogPartition(p->partition));
    if (p->stage >= 0 && p->marks_dirty) {
      if (Status st = tee.Put("marks", p->marks->Encode()); !st.ok()) return Abort(st.message());
      p->marks_dirty = false;
    }
    const bool stage = p->stage >= 0;
    const int64_t offset = stage ? StageRestorePoint(*p) : p->next_offset;
    if (Status st = p->engine->SaveChanges(&tee, stage ? p->saved_through : UINT64_MAX); !st.ok()) {
      return Abort(st.message());
    }
    if (offset >= 0) {
      if (Status st = tee.Put("offset", std::to_string(offset)); !st.ok()) return Abort(st.message());
      // How far a stage partition had read (its restore point may stay on a
      // waiting event while this moves on): a restore's second reading stops
      // skipping here, and the changelog's copy is newer when this is.
      if (stage && p->next_offset >= 0) {
        if (Status st = tee.Put(kReadKey, std::to_string(p->next_offset)); !st.ok()) return Abort(st.message());
      }
      offsets.push_back({p->topic, p->partition, offset});
    }
  }
  auto started = std::chrono::steady_clock::now();
  // The previous batch's LMDB write must have succeeded before Kafka moves
  // on: Kafka is then at most one batch ahead of LMDB, which the restore
  // rolls forward from the changelog.
  if (Status st = store_->WaitForBackgroundCommit(); !st.ok()) {
    LogError(kStateCommitFailed + st.message());
    return false;
  }
  io::TxnResult r;
  if (!offsets.empty()) r = producer_->SendOffsets(offsets, consumer_.get(), kTxnTimeoutMs);
  if (r.ok()) MaybeCrash(Failpoint::Point::kBeforeKafkaCommit);
  for (int attempt = 0; r.ok() || r.outcome == io::TxnOutcome::kRetry; ++attempt) {
    if (r.ok()) r = producer_->CommitTransaction(kTxnTimeoutMs);
    if (r.ok() || r.outcome != io::TxnOutcome::kRetry || attempt >= 5) break;
  }
  if (r.outcome == io::TxnOutcome::kFatal) {
    LogFatalKafka(r);
    return false;
  }
  if (!r.ok()) return Abort(r.message);
  MaybeCrash(Failpoint::Point::kAfterKafkaCommit);
  // The alerts are committed (visible to read_committed consumers): each
  // counts from its record's Kafka time to now.
  Millis now = WallMs();
  for (Millis t : uncommitted_alert_times_) metrics_->ObserveEventToAlert(static_cast<double>(now - t) / 1000.0);
  uncommitted_alert_times_.clear();
  uncommitted_alerts_ = 0;
  table_letters_.clear();  // in the dead-letter topic: their tables can be kept
  if (!PersistTables()) return false;
  // Kafka has the alerts and the offsets: now the state that reflects them,
  // written while the loop goes on (the next commit waits for it).
  store_->CommitInBackground();
  // Every key is saved now: the least used go from memory, down to
  // state.max_resident_keys a partition (read back from LMDB when needed).
  for (auto& [key, p] : parts_) keys_let_go_ += p->engine->EvictColdKeys();
  ++commits_;
  dirty_ = false;
  metrics_->ObserveStateCommit(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  metrics_->SetStateBytes(store_->used_bytes(), config_.state.max_map_size);
  if (io::TxnResult b = producer_->BeginTransaction(); !b.ok()) {
    LogError("cannot begin a transaction: " + b.message);
    return false;
  }
  return true;
}

void Daemon::MaybeCrash(Failpoint::Point at) const {
  if (failpoint_.point != at || failpoint_.commit != commits_.load() + 1) return;
  LogError(fmt::format("failpoint: killing the process {} the Kafka commit of batch {}",
                       at == Failpoint::Point::kBeforeKafkaCommit ? "before" : "after", failpoint_.commit));
  std::fflush(stderr);
  std::raise(SIGKILL);  // like kill -9: no destructor, no flush, no LMDB commit
}

Result<Failpoint> ParseFailpoint(const std::string& text) {
  Failpoint f;
  size_t colon = text.rfind(':');
  std::string point = text.substr(0, colon);
  if (point == "before-kafka-commit") f.point = Failpoint::Point::kBeforeKafkaCommit;
  if (point == "after-kafka-commit") f.point = Failpoint::Point::kAfterKafkaCommit;
  char* end = nullptr;
  unsigned long long n = colon == std::string::npos ? 0 : std::strtoull(text.c_str() + colon + 1, &end, 10);
  if (f.point == Failpoint::Point::kNone || n == 0 || end == nullptr || *end != '\0') {
    return Status::InvalidArgument(fmt::format(
        "--crash-at '{}': expected before-kafka-commit:N or after-kafka-commit:N, with N >= 1", text));
  }
  f.commit = n;
  return f;
}

bool Daemon::Abort(const std::string& why) {
  ++aborts_;
  metrics_->CountTransactionAbort();
  daemon::Log(LogLevel::kWarning, "aborting the transaction: " + why);
  io::TxnResult r = producer_->AbortTransaction(kTxnTimeoutMs);
  if (r.outcome == io::TxnOutcome::kFatal) {
    LogFatalKafka(r);
    fatal_ = true;
    return false;
  }
  store_->Rollback();
  for (auto& r : table_letters_) table_letters_again_.push_back(std::move(r));
  table_letters_.clear();
  uncommitted_alert_times_.clear();
  uncommitted_alerts_ = 0;
  dirty_ = false;
  // The next transaction opens first: a restore may write to it.
  if (io::TxnResult b = producer_->BeginTransaction(); !b.ok()) {
    LogError("cannot begin a transaction: " + b.message);
    fatal_ = true;
    return false;
  }
  for (auto& [key, p] : parts_) {
    int64_t lmdb_offset = -1;
    if (Status st = Restore(*p, &lmdb_offset); !st.ok()) {
      fatal_ = true;
      return false;
    }
    // Back to what LMDB reflects; with nothing in LMDB yet, back to where
    // the assignment started (the group's committed offset, or the beginning
    // of the partition for a new group: auto.offset.reset is earliest).
    int64_t to = lmdb_offset >= 0 ? lmdb_offset : p->assigned_from >= 0 ? p->assigned_from : io::kOffsetBeginning;
    if (!Rewind(*p, to)) return false;  // going on would skip the aborted records
  }
  CountRuns();
  return true;
}

// Reads a partition again from `to` (an offset, or io::kOffsetBeginning),
// which becomes its next offset. A failed seek is fatal.
bool Daemon::Rewind(Part& p, int64_t to) {
  p.next_offset = to >= 0 ? to : -1;
  if (Status st = consumer_->Seek({p.topic, p.partition, to}, 10000); !st.ok()) {
    LogError(fmt::format("{}/{}: cannot rewind: {}", p.topic, p.partition, st.message()));
    fatal_ = true;
    return false;
  }
  Log(fmt::format("{}/{}: rewound to {}", p.topic, p.partition,
                  to >= 0 ? fmt::format("offset {}", to) : std::string("the beginning")));
  return true;
}

bool Daemon::Reload() {
  const std::string from = fmt::format("{}", fmt::join(config_.rules_paths, ", "));
  notify_.Reloading(fmt::format("reloading the rules from {}", from));
  Log(fmt::format("reloading the rules from {}", from));
  std::ostringstream diagnostics;
  auto next = LoadAndCompile(config_.rules_paths, diagnostics);
  if (next) {
    if (Status st = CheckTablesConfigured(*next, config_); !st.ok()) {
      diagnostics << st.message() << "\n";
      next = nullptr;
    }
  }
  if (pending_) {
    Log(fmt::format("this reload replaces the one still loading table {}",
                    fmt::join(pending_->feed->loading(), ", ")));
    pending_.reset();
    reload_pending_ = false;
  }
  if (!next) {
    std::istringstream lines(diagnostics.str());
    for (std::string line; std::getline(lines, line);) LogError(line);
    return RefuseReload(fmt::format("{} does not check", from));
  }
  if (config_.kafka.rekey) {
    // The stage topics are subscribed at start: a reload keeps them.
    auto topics = [](const Plan& plan) {
      std::vector<std::string> out;
      for (const auto& s : plan.stages) out.push_back(s.topic);
      return out;
    };
    Plan next_plan = MakePlan(*next, config_.kafka.partition_key, config_.kafka.group_id);
    if (topics(next_plan) != topics(plan_)) {
      return RefuseReload(fmt::format("the new rules re-key through [{}] but the running ones through [{}]; restart "
                                      "the daemon to change the re-keying topics",
                                      fmt::join(topics(next_plan), ", "), fmt::join(topics(plan_), ", ")));
    }
  }
  std::unique_ptr<TableFeed> next_feed;
  if (TableFeed::Needed(*next)) {
    if (Status st = OpenTableStore(); !st.ok()) return RefuseReload(st.message());
    next_feed = std::make_unique<TableFeed>(config_, next, clients_, table_store_.get());
    // Tables the running rules read already are taken over whole at the
    // swap; only the others are read, while the running rules go on.
    if (Status st = next_feed->Begin(feed_.get()); !st.ok()) {
      return RefuseReload("cannot load the tables of the new rules: " + st.message());
    }
    if (!next_feed->loading().empty()) {
      std::string tables = fmt::format("{}", fmt::join(next_feed->loading(), ", "));
      Log(fmt::format("reload: loading table {} for the new rules; the {} running rules go on until it is read",
                      tables, rules_->programs.size()));
      notify_.Status(fmt::format("reloading: loading table {}", tables));
      pending_ = std::make_unique<PendingReload>(PendingReload{next, std::move(next_feed)});
      reload_pending_ = true;
      return true;
    }
  }
  return FinishReload(std::move(next), std::move(next_feed));
}

bool Daemon::RefuseReload(const std::string& why) {
  LogError(fmt::format("rule reload refused: {}; the {} running rules go on", why, rules_->programs.size()));
  metrics_->CountReload(false);
  notify_.Ready(fmt::format("processing {} partitions; the last rule reload was refused", parts_.size()));
  return false;
}

void Daemon::StepPendingReload() {
  auto done = pending_->feed->Load(kRecordsPerTurn, 0, [this](const std::string& what) {
    if (!what.empty()) notify_.Status("reloading: " + what);
  });
  if (!done.ok()) {
    pending_.reset();
    reload_pending_ = false;
    RefuseReload("cannot load the tables of the new rules: " + done.status().message());
    return;
  }
  if (!done.value()) return;
  auto pending = std::move(pending_);
  FinishReload(std::move(pending->rules), std::move(pending->feed));
  reload_pending_ = false;  // after the swap: a test that sees false may read rules()
}

bool Daemon::FinishReload(std::shared_ptr<const nfa::CompiledRuleSet> next, std::unique_ptr<TableFeed> next_feed) {
  // The running tables' dead letters go with this batch; then LMDB equals
  // memory, so every engine can be rebuilt from it.
  TickTables();
  if (fatal_ || !Commit()) {
    fatal_ = true;
    return false;
  }
  if (next_feed && feed_) {
    if (Status st = next_feed->Adopt(*feed_); !st.ok()) {
      LogError("rule reload: cannot take over the running tables: " + st.message());
      fatal_ = true;
      return false;
    }
  }
  std::map<std::string, uint64_t> before;
  for (const auto& p : rules_->programs) before[p->name] = p->fingerprint;
  int added = 0, changed = 0, kept = 0;
  for (const auto& p : next->programs) {
    auto it = before.find(p->name);
    (it == before.end() ? added : it->second == p->fingerprint ? kept : changed)++;
  }
  int removed = static_cast<int>(rules_->programs.size()) - kept - changed;
  metrics_->SetRules(*next);  // while the old set is still alive
  rules_ = std::move(next);
  feed_ = std::move(next_feed);
  if (rekeyer_) {  // the same topics (Reload checked), other rules and types
    std::vector<int32_t> partitions;
    for (size_t s = 0; s < plan_.stages.size(); ++s) partitions.push_back(rekeyer_->partitions(s));
    plan_ = MakePlan(*rules_, config_.kafka.partition_key, config_.kafka.group_id);
    rekeyer_ = std::make_unique<Rekeyer>(plan_, std::move(partitions), producer_.get());
  }
  uint64_t dropped_changed = 0, dropped_removed = 0;
  for (auto& [key, p] : parts_) {
    int64_t lmdb_offset = -1;
    if (Status st = Restore(*p, &lmdb_offset, &dropped_changed, &dropped_removed); !st.ok()) {
      LogError(fmt::format("{}/{}: cannot rebuild its state on the new rules: {}", p->topic, p->partition,
                           st.message()));
      fatal_ = true;
      return false;
    }
    // A stage partition's events read since its restore point were not
    // saved: read them again.
    if (lmdb_offset >= 0 && lmdb_offset < p->next_offset && !Rewind(*p, lmdb_offset)) return false;
  }
  metrics_->CountRuleStateDropped(dropped_changed, dropped_removed);
  metrics_->CountReload(true);
  rule_state_dropped_ += dropped_changed + dropped_removed;
  CountRuns();
  TickTables();
  Log(fmt::format("rules reloaded: {} rules ({} unchanged, {} changed, {} added, {} removed); {} partial matches "
                  "of changed or removed rules dropped",
                  rules_->programs.size(), kept, changed, added, removed, dropped_changed + dropped_removed));
  notify_.Ready(fmt::format("processing {} partitions", parts_.size()));
  return true;
}

int Daemon::Run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  if (!started_) {
    if (Status st = Start(); !st.ok()) {
      LogError("cannot start: " + st.message());
      return st.code() == Status::Code::kFailedPrecondition || st.code() == Status::Code::kInvalidArgument
                 ? kExitConfig
                 : 1;
    }
  }
  Log("running");
  last_commit_ = std::chrono::steady_clock::now();
  handled_at_commit_ = handled_;
  auto next_tick = std::chrono::steady_clock::now();
  while (!stop && !fatal_) {
    notify_.MaybePingWatchdog();
    if (reload != nullptr && reload->exchange(false)) {
      Reload();
      continue;
    }
    if (pending_) StepPendingReload();
    // A turn: wait up to 50 ms for a record, then take what is already
    // fetched (up to kRecordsPerTurn) before looking at the clocks again.
    turn_wall_ = WallMs();
    auto rec = consumer_->Poll(50, &record_);
    bool caught_up = true;  // every record fetched so far is handled
    for (int n = 0; rec.ok() && rec.value() && !fatal_;) {
      Handle(record_);
      if (++n == kRecordsPerTurn) {
        caught_up = false;
        break;
      }
      rec = consumer_->Poll(0, &record_);
    }
    if (!rec.ok()) {
      LogError(rec.status().message());
      fatal_ = true;
      break;
    }
    if (feed_) {  // table updates, between records
      if (Status st = feed_->Poll(kRecordsPerTurn); !st.ok()) {
        LogError(st.message());
        fatal_ = true;
        break;
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      next_tick = now + std::chrono::milliseconds(500);
      Tick();
    }
    if (CommitDue(caught_up, now)) {
      last_commit_ = now;
      handled_at_commit_ = handled_;
      if (!Commit()) fatal_ = true;
    }
    producer_->Poll(0);
    CountRuns();
  }
  return Shutdown();
}

// The commit cadence adapts to the load. Caught up (every fetched record
// handled): a batch holding an alert is committed at once, any other every
// commit_interval. Under a backlog (the turn ended with records still
// fetched): every commit_records records, and at least once a second; a
// key's state is written once per batch, so bigger batches cost less per
// event. (Measured and dropped: committing every commit_interval under a
// backlog too, or only once the records at hand are over a second old: a
// commit blocks the loop for a broker round trip or two, and at 10 000
// events/s either put p50 latency at 1-3 s against 0.13-0.2 s.)
bool Daemon::CommitDue(bool caught_up, std::chrono::steady_clock::time_point now) const {
  if (caught_up) {
    return uncommitted_alerts_ > 0 || now >= last_commit_ + std::chrono::milliseconds(config_.state.commit_interval);
  }
  return handled_ - handled_at_commit_ >= config_.state.commit_records || now >= last_commit_ + kBacklogCommitEvery;
}

Status Daemon::OpenTableStore() {
  if (table_store_) return Status::Ok();
  // The tables' own LMDB environment: their commits never share a batch
  // with the engines' (which an aborted transaction rolls back).
  state::LmdbOptions lmdb{(std::filesystem::path(config_.state.directory) / "tables").string(),
                          config_.state.map_size, config_.state.max_map_size};
  auto store = OpenOrSetAside(lmdb, config_.state.directory, "corrupt-tables", "reading the tables from their topics");
  if (!store.ok()) return store.status();
  table_store_ = std::move(store).value();
  return Status::Ok();
}

Status Daemon::LoadTables() {
  feed_.reset();
  if (Status st = CheckTablesConfigured(*rules_, config_); !st.ok()) return st;
  if (!TableFeed::Needed(*rules_)) return Status::Ok();
  if (Status st = OpenTableStore(); !st.ok()) return st;
  auto feed = std::make_unique<TableFeed>(config_, rules_, clients_, table_store_.get());
  Log("loading the rules' tables from their topics");
  notify_.Status("loading the rules' tables");
  Status st = feed->Bootstrap([this](const std::string& what) {
    if (!what.empty()) notify_.Status(what);
    notify_.MaybePingWatchdog();
  });
  if (!st.ok()) return st;
  feed_ = std::move(feed);
  TickTables();
  return Status::Ok();
}

void Daemon::TickTables() {
  if (!feed_) return;
  // Refused table records go to the dead-letter topic in the open
  // transaction; the tables (and the offsets past those records) are kept
  // only once it is committed, so a crash or an abort sends them again.
  std::vector<TableFeed::Refused> letters = std::exchange(table_letters_again_, {});
  const size_t again = letters.size();
  for (auto& r : feed_->TakeRefused()) letters.push_back(std::move(r));
  std::map<std::string, int> at_limit;  // by table: records refused at max_versions this tick
  for (size_t i = 0; i < letters.size(); ++i) {
    const TableFeed::Refused& r = letters[i];
    if (i >= again) {
      if (r.why.code() == Status::Code::kLimitExceeded) ++at_limit[r.table];
      ++malformed_;
      metrics_->CountMalformed(1);
    }
    Status st = producer_->Produce(config_.kafka.dead_letter_topic, r.record.key.value_or(""),
                                   r.record.value.value_or(""),
                                   {{"cepheus.error", "table " + r.table + ": " + r.why.message()},
                                    {"cepheus.origin.topic", config_.tables.at(r.table).topic},
                                    {"cepheus.origin.partition", std::to_string(r.record.partition)},
                                    {"cepheus.origin.offset", std::to_string(r.record.offset)}});
    table_letters_.push_back(std::move(letters[i]));
    dirty_ = true;
    if (!st.ok()) {
      for (size_t j = i + 1; j < letters.size(); ++j) table_letters_again_.push_back(std::move(letters[j]));
      Abort(fmt::format("table {}: cannot send a refused record to the dead-letter topic: {}", r.table,
                        st.message()));
      break;
    }
  }
  for (const auto& [table, n] : at_limit) {
    daemon::Log(LogLevel::kWarning,
                fmt::format("table {}: {} records refused at its limit of {} versions (tables.{}.max_versions); "
                            "they are in the dead-letter topic",
                            table, n, config_.tables.at(table).max_versions, table));
  }
  // Versions older than a table's history behind the slowest partition's
  // watermark are folded (no lookup of a partition reads before it); the
  // fold is saved with the next records.
  Millis slowest = kMaxTime;
  for (const auto& [key, p] : parts_) slowest = std::min(slowest, p->engine->watermark());
  if (slowest != kMaxTime && slowest > kMinTime) feed_->tables()->Fold(slowest);
  if (table_letters_.empty()) PersistTables();  // else after the commit (Commit)
  for (const auto& prog : feed_->progress()) {
    int32_t t = feed_->tables()->Index(prog.table);
    metrics_->SetTable(prog.table, feed_->tables()->stats(t), prog.lag, prog.bootstrap_seconds);
  }
}

bool Daemon::PersistTables() {
  if (!feed_) return true;
  if (Status st = feed_->Persist(); !st.ok()) {
    LogError("cannot keep the tables in the state directory: " + st.message());
    fatal_ = true;
    return false;
  }
  return true;
}

void Daemon::Tick() {
  TickTables();
  Millis wall = WallMs();
  if (rekeyer_) {
    auto counts = rekeyer_->TakeCounts();
    for (size_t s = 0; s < counts.size(); ++s) {
      metrics_->CountRekeyed(plan_.stages[s].field, counts[s].forwarded, counts[s].missing_key);
    }
  }
  for (auto& [key, p] : parts_) {
    // A stage partition's watermark comes from its sources' marks only (an
    // idle source's mark follows the clock at the source).
    if (p->stage < 0 && wall - p->last_wall >= config_.idle_timeout) {
      Millis before = p->engine->watermark();
      // A quiet partition follows the clock, idle_timeout + out_of_order
      // behind it: a record that was on its way (produced with the time
      // of its producer's clock) is not late unless it took longer.
      p->engine->AdvanceWatermark(wall - config_.out_of_order - config_.idle_timeout);
      if (p->engine->watermark() != before) dirty_ = true;
      Publish(*p, -1, 0);
    }
    metrics_->UpdateEngine(p->Label(), *p->engine, wall);
    if (p->stage >= 0) {
      metrics_->CountRekeyRead(plan_.stages[static_cast<size_t>(p->stage)].field, std::exchange(p->read_since_tick, 0));
    }
    LogLimits(*p, wall);
    int64_t high = consumer_->HighWatermark(p->topic, p->partition);
    if (high >= 0 && p->next_offset >= 0) metrics_->SetConsumerLag(p->Label(), high - p->next_offset);
  }
}

void Daemon::LogLimits(Part& p, Millis wall) {
  const engine::EngineStats& s = p.engine->stats();
  if (s.keys_refused == p.logged_refused && s.buffer_forced == p.logged_forced) return;
  if (wall - p.limit_logged_at < 60000) return;
  if (s.keys_refused > p.logged_refused) {
    daemon::Log(LogLevel::kWarning,
                fmt::format("{}/{}: at state.max_keys ({} keys hold state): {} events of keys without state started "
                            "nothing since the last report; raise state.max_keys if memory allows",
                            p.topic, p.partition, p.engine->active_keys(), s.keys_refused - p.logged_refused));
  }
  if (s.buffer_forced > p.logged_forced) {
    daemon::Log(LogLevel::kWarning,
                fmt::format("{}/{}: at events.max_buffered ({} events): {} events were evaluated before the "
                            "watermark reached them since the last report (later ones older than them are late); "
                            "raise events.max_buffered or lower events.out_of_order",
                            p.topic, p.partition, config_.max_buffered, s.buffer_forced - p.logged_forced));
  }
  p.logged_refused = s.keys_refused;
  p.logged_forced = s.buffer_forced;
  p.limit_logged_at = wall;
}

int Daemon::Shutdown() {
  notify_.Stopping(fatal_ ? "stopping after a fatal error" : "stopping: committing the last batch");
  if (!fatal_) {
    Log("stopping: committing the last batch");
    if (!Commit()) fatal_ = true;
  }
  if (Status st = store_->WaitForBackgroundCommit(); !st.ok() && !fatal_) {
    LogError(kStateCommitFailed + st.message());
    fatal_ = true;
  }
  consumer_->Close();  // revokes: commits nothing new (not dirty)
  // Everything that matters was committed in a transaction; what is left is
  // at most the producer's own bookkeeping.
  if (Status st = producer_->Flush(10000); !st.ok()) LogError("the producer did not flush at stop: " + st.message());
  Log(fatal_ ? "stopped after a fatal error" : "stopped");
  return fatal_ ? 1 : 0;
}

}  // namespace cepheus::daemon

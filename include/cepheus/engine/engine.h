// The engine: decoded events in arrival order -> alerts, in event time.
//
// Owns the reorder buffer and watermark of one ordered input (a replay file,
// or one Kafka partition in the daemon), and for every rule the KeyRuns of
// each key. Events at or before the watermark are released in (time, arrival)
// order; before each one, every window that closed before its time is closed
// (absence alerts fire here); late events go to AlertSink::Late. Keys whose
// runs are all gone are forgotten, so state is bounded by the live windows.
//
// Thread-safety: none; one Engine per input, driven from one thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include <tsl/robin_set.h>

#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/seams.h"
#include "cepheus/engine/state_codec.h"
#include "cepheus/nfa/matcher.h"

namespace cepheus::engine {

struct EngineOptions {
  Millis out_of_order = 0;  // allowed out-of-orderness D: watermark = max ts - D
};

struct RuleStats {
  uint64_t alerts = 0;
  uint64_t suppressed = 0;
  uint64_t evicted = 0;
  int64_t runs = 0;  // live runs now
};

struct EngineStats {
  uint64_t received = 0;
  uint64_t evaluated = 0;
  uint64_t late = 0;
  uint64_t alerts = 0;
  std::vector<RuleStats> rules;  // by rule index
};

class Engine {
 public:
  // `sink` is not owned and must outlive the engine.
  Engine(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options, AlertSink* sink);
  Engine(const Engine&) = delete;  // the key indexes point into the engine
  Engine& operator=(const Engine&) = delete;
  ~Engine();

  // Takes one event in arrival order.
  void Push(nfa::EventRef e);
  // Raises the watermark to `w` if it is higher (idle timeout in the daemon).
  void AdvanceWatermark(Millis w);
  // End of a finite input: the watermark moves to +infinity.
  void Finish() { AdvanceWatermark(kMaxTime); }

  Millis watermark() const { return watermark_; }
  const EngineStats& stats() const { return stats_; }
  int64_t active_keys() const;
  int64_t active_runs() const;
  size_t buffered() const { return buffer_.size(); }

  // Writes the whole state (runs of every key, watermark, buffered events) to
  // `store`, replacing what was there under the "engine/" prefix.
  Status Save(StateStore* store);
  // Writes only what changed since the last Save or SaveChanges: the meta and
  // buffer records, the keys touched since (or their deletion when they no
  // longer hold state). The daemon calls it at every commit, so a commit costs
  // what changed, not the whole state.
  Status SaveChanges(StateStore* store);
  // Replaces this engine's state with what Save wrote. Rules whose text
  // changed since (different fingerprint) or that are no longer in the rule
  // set start empty: their stored state is not loaded, and `report` (when
  // given) counts it and lists its store keys, so the caller can delete them.
  // Events are re-decoded with `decoder`.
  struct LoadReport {
    uint64_t keys_dropped = 0;   // (rule, key) states not loaded
    uint64_t runs_changed = 0;   // their partial matches, rule text changed
    uint64_t runs_removed = 0;   // their partial matches, rule removed
    std::vector<std::string> stale_keys;  // store keys of the dropped states
  };
  Status Load(const StateStore& store, EventDecoder* decoder, LoadReport* report = nullptr);

 private:
  // The state of one rule for one key.
  struct KeyState {
    nfa::KeyRuns runs;
    Millis timer_at = kMaxTime;  // the live wake-up; heap entries at other times are stale
    // Rules whose closings are silent: the one pending closing of the key (at
    // its oldest run's deadline); kMaxTime when none is pending.
    Millis armed_at = kMaxTime;
  };
  // One key of one key field, with the state of every rule keyed on that field.
  // Entries live in a slab; a timer names (slot, generation) so a reused slot
  // cannot be mistaken for the key it held before.
  struct KeyEntry {
    std::string key;
    uint32_t generation = 0;
    uint32_t group = 0;
    bool dirty = false;  // changed since the last save
    bool stored = false; // the store holds a record of it (as of the last save)
    std::vector<KeyState> rules;  // by position in the group
  };
  // The index of one key field's keys: the ids of their entries in an open
  // addressing table (robin hood, with 32 bits of each hash stored beside the
  // id), looked up by the key's text, which lives in the entry. A lookup
  // reads one bucket, then the entry it needs anyway.
  struct IndexHash {
    using is_transparent = void;
    const std::vector<KeyEntry>* entries;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
    size_t operator()(uint32_t id) const { return (*this)((*entries)[id].key); }
  };
  struct IndexEq {
    using is_transparent = void;
    const std::vector<KeyEntry>* entries;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(std::string_view key, uint32_t id) const { return (*entries)[id].key == key; }
    bool operator()(uint32_t id, std::string_view key) const { return (*entries)[id].key == key; }
  };
  using KeyIndex = tsl::robin_set<uint32_t, IndexHash, IndexEq, std::allocator<uint32_t>, true>;
  // The rules that share a key field, and the index of that field's keys.
  struct KeyGroup {
    int32_t slot;
    std::string field;  // the key field's path ("user_id"), naming its records
    std::vector<uint32_t> rules;  // rule indices
    KeyIndex index;               // entry ids, by key
    // Event types (TypeTable ids; the last entry: unknown types) that some
    // rule of the group reads; the others skip the key lookup.
    std::vector<uint8_t> reads;
  };
  struct RuleState {
    const nfa::Program* program;
    nfa::Matcher matcher;
    uint32_t group;
    uint32_t pos;  // position in the group
    bool silent;   // no trailing absent step: closings only drop runs
  };
  // A window closing. Runs of a rule start in event-time order and share one
  // `within`, so their deadlines come in order: a FIFO per rule suffices. A
  // rule with a trailing absent step (its closings fire alerts) has one entry
  // per run, so closings keep the order of the runs' starts. A rule whose
  // closings only drop runs has one entry per key (KeyState::armed_at), at its
  // oldest run's deadline; when it fires and runs are left, the key is armed
  // again at the new oldest deadline (in the FIFO when that keeps it ordered,
  // else in the timer heap). A key that keeps a steady stream of events is
  // then visited once per window, not once per event.
  struct Deadline {
    Millis at;
    uint32_t entry;
    uint32_t generation;
  };
  // A key kept only for its cooldown; rare, so a heap.
  struct Timer {
    Millis at;
    uint64_t order;
    uint32_t entry;
    uint32_t generation;
    uint32_t rule;
    bool closing;  // an armed closing (else a cooldown wake-up)
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : order > o.order; }
  };
  // An event in the reorder buffer; its time and arrival are copied beside
  // the reference, so the heap orders without reading the events.
  struct Buffered {
    Millis ts;
    uint64_t arrival;
    nfa::EventRef e;
    explicit Buffered(nfa::EventRef ev) : ts(ev->ts), arrival(ev->arrival), e(std::move(ev)) {}
    bool operator>(const Buffered& o) const { return ts != o.ts ? ts > o.ts : arrival > o.arrival; }
  };

  void Drain();
  void CloseUntil(Millis t);
  void Evaluate(const nfa::EventRef& e);
  // Schedules the wake-up of (entry, rule) when it holds no run but must be
  // kept (cooldown).
  void Schedule(uint32_t entry, uint32_t rule, Millis now);
  // Closes the windows of (entry, rule) that ended at or before `at`.
  void Fire(uint32_t entry, uint32_t generation, uint32_t rule, Millis at);
  // Arms the closing of (entry, rule) at `at` (rules with silent closings).
  void Arm(uint32_t entry, uint32_t rule, Millis at);
  // Frees the entry when no rule needs it any more.
  void MaybeForget(uint32_t entry, Millis now);
  uint32_t NewEntry(uint32_t group, std::string_view key);
  void MarkDirty(uint32_t entry);
  Status PutMeta(StateStore* store) const;
  // The parts of Load (persist: meta, reorder buffer, one key's record).
  Status LoadMeta(std::string_view v);
  Status LoadBuffer(std::string_view v, EventDecoder* decoder);
  Status LoadKey(std::string_view k, std::string_view v, EventDecoder* decoder, LoadReport* report,
                 std::vector<uint32_t>* loaded);
  static void CountDropped(LoadReport* report, uint64_t runs, bool removed);
  // Writes the record of one key of `group` (the state of every rule that
  // needs it kept), or deletes it when `entry` is null. Returns in *wrote
  // whether a record was written.
  Status PutKey(StateStore* store, uint32_t group, std::string_view key, const KeyEntry* entry, bool* wrote);
  // Once a rule's closing FIFO has doubled since its last pass, drops the
  // entries that can close nothing: their key is gone, or the key's oldest
  // open window ends after them and a later entry of the key follows (runs
  // dropped at the limit, or prefix runs gone, leave theirs behind). Keeps a
  // hot key's FIFO at about its live runs rather than its events per window.
  void CompactDeadlines(uint32_t rule);
  // True when the key holds state that must be kept (and saved).
  bool Needed(const nfa::Program& p, const nfa::KeyRuns& k, Millis now) const;
  void Publish(uint32_t rule, const std::string& key, std::vector<nfa::Match>* matches);

  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  EngineOptions options_;
  AlertSink* sink_;
  std::vector<RuleState> states_;
  std::vector<KeyGroup> groups_;
  std::vector<KeyEntry> entries_;
  std::vector<uint32_t> free_entries_;
  std::priority_queue<Buffered, std::vector<Buffered>, std::greater<>> buffer_;
  std::vector<std::deque<Deadline>> deadlines_;  // by rule
  std::vector<size_t> compact_at_;               // by rule: the FIFO size of the next CompactDeadlines
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  Millis max_ts_ = kMinTime;
  Millis watermark_ = kMinTime;
  uint64_t arrival_ = 0;
  uint64_t seq_ = 0;
  uint64_t timer_order_ = 0;
  EngineStats stats_;
  std::vector<std::pair<uint32_t, uint32_t>> dirty_;        // (entry, generation)
  // (group, key) freed since the last save while the store held a record of it
  std::vector<std::pair<uint32_t, std::string>> forgotten_;
  std::string save_key_, save_value_;  // reused by PutKey
  std::vector<RuleRuns> save_rules_;
  std::vector<nfa::Match> matches_;  // reused
  std::string key_;                  // reused
};

struct PumpCounts {
  uint64_t records = 0;
  uint64_t malformed = 0;
};

// Drains a finite source into an engine: decodes each record (malformed ones
// go to `on_malformed` with the reason and are skipped), pushes it, and
// finishes the engine at the end of the source. Stops at the first source
// error and returns it.
Result<PumpCounts> Pump(EventSource* source, EventDecoder* decoder, Engine* engine,
                        const std::function<void(const RawRecord&, const Status&)>& on_malformed);

// Formats a match as the alert of section 5 (JSON, deterministic alert_id).
Alert MakeAlert(const nfa::Program& p, const std::string& key, const nfa::Match& m);

}  // namespace cepheus::engine

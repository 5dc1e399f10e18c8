// The engine's insides (see engine.cc for the algorithm): the class behind
// Engine's pointer, private to the engine module (engine.cc, persist.cc).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include <tsl/robin_set.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/tracer.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/state_codec.h"
#include "cepheus/nfa/matcher.h"
#include "engine/aggregates.h"
#include "engine/counters.h"

namespace cepheus::engine {

class EngineImpl {
 public:
  // Engine's operations, as documented in engine.h.
  EngineImpl(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options, AlertSink* sink);
  EngineImpl(const EngineImpl&) = delete;  // the key indexes point into the engine
  EngineImpl& operator=(const EngineImpl&) = delete;
  ~EngineImpl();

  void Push(nfa::EventRef e);
  void AdvanceWatermark(Millis w);
  Millis watermark() const { return watermark_; }
  const EngineStats& stats() const { return stats_; }
  int64_t active_keys() const;
  int64_t active_runs() const;
  size_t buffered() const { return buffer_.size(); }
  const EngineOptions& options() const { return options_; }
  void set_tracer(Tracer* tracer) { tracer_ = tracer; }
  void set_tables(const nfa::TableReader* tables) {
    tables_ = tables;
    for (auto& s : states_) s.matcher.set_tables(tables);
  }
  Status Save(StateStore* store);
  Status SaveChanges(StateStore* store, uint64_t buffer_through);
  uint64_t arrivals() const { return arrival_; }
  uint64_t OldestBufferedArrival(uint64_t after) const;
  using LoadReport = Engine::LoadReport;
  Status Load(const StateStore& store, EventDecoder* decoder, LoadReport* report);
  void set_cold_store(const StateStore* store, EventDecoder* decoder) {
    cold_store_ = store;
    cold_decoder_ = decoder;
  }
  size_t EvictColdKeys();
  uint64_t cold_keys() const { return cold_keys_; }
  const Status& cold_status() const { return cold_status_; }

 private:
  // The state of one rule for one key.
  struct KeyState {
    nfa::KeyRuns runs;
    Millis timer_at = kMaxTime;  // the live wake-up; heap entries at other times are stale
    // Rules whose closings are silent: the one pending closing of the key (at
    // its oldest run's deadline); kMaxTime when none is pending.
    Millis armed_at = kMaxTime;
  };
  // The states of one key's rules, by position in the group, for the rules
  // that hold something for the key: a rule with nothing (no run, no
  // cooldown) has no slot. A key touches few of its group's rules (a login
  // starts runs of 2 of the 8 user_id rules shipped), and a full array cost
  // sizeof(KeyState) (104 bytes) per rule per key. Slots are kept sorted by
  // position and grown one at a time, so capacity is what the key holds, out
  // of line: a key with none (let go from memory, or holding only counters)
  // keeps a null pointer. Get may move the other slots: hold no KeyState&
  // across it.
  class RuleSlots {
   public:
    struct Slot {
      uint32_t pos;
      KeyState state;
    };
    KeyState* Find(uint32_t pos);
    const KeyState* Find(uint32_t pos) const { return const_cast<RuleSlots*>(this)->Find(pos); }
    KeyState& Get(uint32_t pos);  // the slot of `pos`, made when missing
    void Drop(uint32_t pos);
    void clear() { slots_.reset(); }
    const Slot* begin() const { return slots_ ? slots_->data() : nullptr; }
    const Slot* end() const { return slots_ ? slots_->data() + slots_->size() : nullptr; }

   private:
    std::unique_ptr<std::vector<Slot>> slots_;
  };
  // A key's counter states, by position in its group's counters, out of line
  // as the rule slots are: empty until a counter first counts an event of the
  // key, and again once the key is let go from memory.
  class CounterSlots {
   public:
    bool empty() const { return !states_ || states_->empty(); }
    size_t size() const { return states_ ? states_->size() : 0; }
    CounterState& operator[](size_t i) { return (*states_)[i]; }
    const CounterState& operator[](size_t i) const { return (*states_)[i]; }
    void resize(size_t n) {
      if (!states_) states_ = std::make_unique<std::vector<CounterState>>();
      states_->resize(n);
    }
    void clear() { states_.reset(); }

   private:
    std::unique_ptr<std::vector<CounterState>> states_;
  };
  // One key of one key field, with the state of the rules keyed on that field
  // that hold something of it.
  // Entries live in a slab; a timer names (slot, generation) so a reused slot
  // cannot be mistaken for the key it held before.
  struct KeyEntry {
    std::string key;
    uint32_t generation = 0;
    // Its key field (a rule set has fewer key fields than rules, far below
    // 2^24); with the flags in one word, an entry is 64 bytes, a cache line.
    uint32_t group : 24 = 0;
    bool dirty : 1 = false;   // changed since the last save
    bool stored : 1 = false;  // the store holds a record of it (as of the last save)
    bool in_use : 1 = false;  // in its group's index (else on the free list)
    // Its state is in the cold store only (EvictColdKeys): rules and
    // counters are empty until Warm reads them back. Its pending closings
    // and wake-ups stay queued and warm it when they come.
    bool cold : 1 = false;
    bool used : 1 = false;  // touched since the eviction clock last passed it
    RuleSlots rules;
    // By position in the group's counters; empty until one counts an event of the key.
    CounterSlots counters;
    Millis counter_wake = kMaxTime;  // its one pending counter wake-up (kMaxTime: none)
  };
  static_assert(sizeof(KeyEntry) == 64);
  // The entries, in chunks of a fixed size: an id names its entry for good and
  // growing copies nothing (a vector's doubling held every entry twice, and
  // up to half of its capacity unused).
  class EntrySlab {
   public:
    KeyEntry& operator[](size_t i) { return chunks_[i / kChunk][i % kChunk]; }
    const KeyEntry& operator[](size_t i) const { return chunks_[i / kChunk][i % kChunk]; }
    size_t size() const { return size_; }
    KeyEntry& emplace_back() {
      if (size_ % kChunk == 0) chunks_.push_back(std::make_unique<KeyEntry[]>(kChunk));
      return (*this)[size_++];
    }
    void clear() {
      chunks_.clear();
      size_ = 0;
    }

   private:
    static constexpr size_t kChunk = 4096;
    std::vector<std::unique_ptr<KeyEntry[]>> chunks_;
    size_t size_ = 0;
  };
  // The index of one key field's keys: the ids of their entries in an open
  // addressing table (robin hood, 8 bytes a bucket: the id and its distance
  // from its home bucket), looked up by the key's text, which lives in the
  // entry. A lookup reads one bucket, then the entry it needs anyway; the
  // hash is not stored beside the id (4 bytes more a bucket, a third of the
  // index), so a probe past the home bucket reads that entry's key too, and
  // a rehash reads every entry.
  struct IndexHash {
    using is_transparent = void;
    const EntrySlab* entries;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
    size_t operator()(uint32_t id) const { return (*this)((*entries)[id].key); }
  };
  struct IndexEq {
    using is_transparent = void;
    const EntrySlab* entries;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(std::string_view key, uint32_t id) const { return (*entries)[id].key == key; }
    bool operator()(uint32_t id, std::string_view key) const { return (*entries)[id].key == key; }
  };
  using KeyIndex = tsl::robin_set<uint32_t, IndexHash, IndexEq, std::allocator<uint32_t>, false>;
  // The rules that share a key field, and the index of that field's keys.
  struct KeyGroup {
    int32_t slot;
    std::string field;  // the key field's path ("user_id"), naming its records
    std::vector<uint32_t> rules;  // rule indices
    std::vector<uint32_t> counters;  // CompiledRuleSet::counters indices keyed on the field
    KeyIndex index;               // entry ids, by key
    // Event types (TypeTable ids; the last entry: unknown types) that some
    // rule of the group reads; the others skip the key lookup.
    std::vector<uint8_t> reads;
    // False when EngineOptions::key_fields leaves the field out: its rules
    // see no event and load no state.
    bool enabled = true;
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

  // The counters of the key whose rules are evaluated (section 6.2).
  struct KeyCounters : nfa::CounterReader {
    EngineImpl* engine = nullptr;
    uint32_t entry = UINT32_MAX;  // none: every counter reads as over no event
    nfa::Value Read(int32_t counter, Millis at) const override;
  };
  // A key's wake-up at a time: one kept for its counters, checked again when
  // their window has passed (counter_wakes_), or one let go from memory, read
  // back at its silent rules' earliest closing (cold_wakes_).
  struct KeyWake {
    Millis at;
    uint32_t entry;
    uint32_t generation;
    bool operator>(const KeyWake& o) const { return at > o.at; }
  };
  // Updates the counters of `group` that `e` counts; returns the key's entry
  // (created when some counter counts e), or `id` as given.
  uint32_t CountEvent(uint32_t g, std::string_view key, uint32_t id, const nfa::Event& e);
  bool CountersLive(const KeyEntry& entry, Millis now) const;
  // Pushes the key's wake-up at the end of its counters' windows (the last
  // bucket's expiry), unless one is pending: one heap entry per key, so the
  // heap does not grow with the events inside `over`.
  void ArmCounterWake(uint32_t id, Millis after);

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
  // Reads a cold key's state back from the cold store (no-op for a key in
  // memory) and marks it used. Its silent rules are armed again and its
  // cooldowns scheduled (the queued entries from before pass as stale, or
  // fire once more and close nothing); its runs' closings and its counters'
  // wake-up are still queued. A failed read leaves the key with no state and
  // is kept in cold_status_.
  void Warm(uint32_t id);
  Status WarmFrom(uint32_t id, std::string_view record);
  // Lets the key's state go (it is in the cold store). Its silent rules'
  // arms, one queued closing per rule, are taken over by one wake-up of the
  // key at the earliest of them (cold_wakes_), which reads it back and arms
  // them again; CompactDeadlines then drops those rules' entries of the key.
  void Evict(uint32_t id);
  // A key in memory whose state the store holds as it is: it may be let go.
  static bool Evictable(const KeyEntry& e) { return e.in_use && !e.cold && !e.dirty && e.stored; }
  // Keys in memory beyond max_resident_keys (0 without a cold store or that option).
  uint64_t ResidentExcess() const;
  Result<std::vector<StoredRule>> DecodeKey(uint32_t g, std::string_view v, EventDecoder* decoder,
                                            std::vector<std::pair<uint32_t, CounterState>>* counters,
                                            bool* counters_dropped);
  // The position in group g of the rule named `name`, or -1.
  int RuleOf(uint32_t g, std::string_view name) const;
  void MarkDirty(uint32_t entry);
  Status PutMeta(StateStore* store) const;
  Status PutBuffer(StateStore* store, uint64_t through);
  static constexpr uint8_t kCountersMarker = 0xC7;  // before a key record whose key has counters
  void PutCounters(const KeyGroup& g, const KeyEntry& entry, std::string* out) const;
  Status LoadCounters(std::string_view* in, uint32_t g, std::vector<std::pair<uint32_t, CounterState>>* out,
                      bool* dropped);
  // The parts of Load (persist: meta, reorder buffer, one key's record).
  Status LoadMeta(std::string_view v);
  Status LoadBuffer(std::string_view v, EventDecoder* decoder);
  Status LoadRecord(std::string_view k, std::string_view v, EventDecoder* decoder, LoadReport* report,
                    std::vector<uint32_t>* loaded, bool* one_record_buffer);
  Status LoadKey(std::string_view k, std::string_view field, std::string_view key, std::string_view v,
                 EventDecoder* decoder, LoadReport* report, std::vector<uint32_t>* loaded);
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
  // A silent rule's entries of a cold key go too (its cold wake-up stands
  // for them).
  void CompactDeadlines(uint32_t rule);
  // Compacts the FIFOs of silent rules that keys let go left mostly stale.
  void CompactColdArms();
  // True when the key holds state that must be kept (and saved).
  bool Needed(const nfa::Program& p, const nfa::KeyRuns& k, Millis now) const;
  // True when some rule of the key needs its state kept.
  bool AnyRuleNeeded(const KeyEntry& entry, Millis now) const;
  // Drops the slot of (entry, rule) when the rule needs nothing of it.
  void DropUnneeded(KeyEntry& entry, uint32_t rule, Millis now);
  void Publish(uint32_t rule, const std::string& key, std::vector<nfa::Match>* matches);

  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  EngineOptions options_;
  AlertSink* sink_;
  const nfa::TableReader* tables_ = nullptr;
  Tracer* tracer_ = nullptr;  // `cepheus trace` only
  std::vector<RuleState> states_;
  std::vector<KeyGroup> groups_;
  EntrySlab entries_;
  std::vector<uint32_t> free_entries_;
  // Keys in the cold store (EvictColdKeys), where they are read from, and
  // the eviction clock's hand over the slab.
  const StateStore* cold_store_ = nullptr;
  EventDecoder* cold_decoder_ = nullptr;
  uint64_t cold_keys_ = 0;
  size_t clock_hand_ = 0;
  Status cold_status_;
  // The reorder buffer: a heap whose container the saves walk (each
  // buffered event is a record of its own, written once, deleted once out).
  struct BufferHeap : std::priority_queue<Buffered, std::vector<Buffered>, std::greater<>> {
    const std::vector<Buffered>& items() const { return c; }
  };
  BufferHeap buffer_;
  // Buffered events with an arrival up to this are in the store (the arrival
  // counter at the last save); those released since, to delete at the next.
  uint64_t saved_arrival_ = 0;
  std::vector<uint64_t> released_saved_;
  std::vector<std::deque<Deadline>> deadlines_;  // by rule
  std::vector<size_t> compact_at_;               // by rule: the FIFO size of the next CompactDeadlines
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  Millis max_ts_ = kMinTime;
  Millis watermark_ = kMinTime;
  uint64_t arrival_ = 0;
  uint64_t seq_ = 0;
  uint64_t timer_order_ = 0;
  EngineStats stats_;  // before aggregates_, which keeps its share
  std::vector<std::pair<uint32_t, uint32_t>> dirty_;        // (entry, generation)
  // (group, key) freed since the last save while the store held a record of it
  std::vector<std::pair<uint32_t, std::string>> forgotten_;
  // Store keys that Load found stale (records of changed or removed rules,
  // an old format, or moved to their digest key): deleted by the next save,
  // whether or not the caller deletes them too (the daemon does, and writes
  // their tombstones to the changelog).
  std::vector<std::string> stale_;
  std::string save_key_, save_value_;  // reused by PutKey
  std::vector<RuleRuns> save_rules_;
  std::vector<nfa::Match> matches_;  // reused
  std::string key_;                  // reused
  std::string text_;                 // reused: a distinct counter's value
  std::vector<uint32_t> counter_pos_;  // by counter: its position in its group
  KeyCounters reader_;
  std::priority_queue<KeyWake, std::vector<KeyWake>, std::greater<>> counter_wakes_;
  // A cold key's one wake-up for its silent rules (Evict); a deque, which
  // grows without a vector's doubled copy.
  std::priority_queue<KeyWake, std::deque<KeyWake>, std::greater<>> cold_wakes_;
  // By rule: the silent arms of keys let go since its last CompactDeadlines,
  // entries of its FIFO that a compaction would drop.
  std::vector<size_t> cold_arms_;
  Aggregates aggregates_;
};


}  // namespace cepheus::engine

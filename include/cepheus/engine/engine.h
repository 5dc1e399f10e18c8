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

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cepheus/engine/seams.h"
#include "cepheus/engine/engine_stats.h"
#include "cepheus/nfa/program.h"
#include "cepheus/nfa/value.h"

namespace cepheus::engine {

struct EngineOptions {
  Millis out_of_order = 0;  // allowed out-of-orderness D: watermark = max ts - D
  // Most events held in the reorder buffer. When a pushed event makes it
  // hold more, the watermark rises to the oldest buffered event's time, so
  // that event (and any of the same time) is released now; each event so
  // released is counted in EngineStats::buffer_forced. 0: no limit.
  uint64_t max_buffered = 0;
  // Most keys holding state, over every key field. An event whose key holds
  // no state starts nothing when the engine is at the limit (its other key
  // fields are still evaluated); each (event, key field) so refused is
  // counted in EngineStats::keys_refused. 0: no limit.
  uint64_t max_keys = 0;
  // Most keys whose state is held in memory (over every key field), once a
  // cold store is set (Engine::set_cold_store): EvictColdKeys lets the least
  // recently used of the saved keys go down to this, keeping of each only
  // its key and pending wake-ups; its next event or wake-up reads its state
  // back from the store. 0: every key stays in memory.
  uint64_t max_resident_keys = 0;
  // The key fields (dotted paths) whose rules run; empty: every rule. The
  // rules keyed on other fields see no event, and their stored state is
  // dropped at Load as a removed rule's (a daemon partition that runs only
  // some key fields, section 6.4).
  std::vector<std::string> key_fields;
  // false: the watermark moves only by AdvanceWatermark, never by the events'
  // times (a re-keyed partition, whose watermark is the least of its
  // sources' marks).
  bool watermark_from_events = true;
};

class EventDecoder;
class EngineImpl;  // engine_impl.h, private to the engine
class Tracer;      // tracer.h

class Engine {
 public:
  // `sink` is not owned and must outlive the engine.
  Engine(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options, AlertSink* sink);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine();

  // Takes one event in arrival order.
  void Push(nfa::EventRef e);
  // Raises the watermark to `w` if it is higher (idle timeout in the daemon).
  void AdvanceWatermark(Millis w);
  // End of a finite input: the watermark moves to +infinity.
  void Finish() { AdvanceWatermark(kMaxTime); }

  Millis watermark() const;
  const EngineStats& stats() const;
  int64_t active_keys() const;
  int64_t active_runs() const;
  size_t buffered() const;
  const EngineOptions& options() const;
  // The tables the rules' lookups read (section 6.1); not owned, must outlive
  // the engine. Without them every lookup reads null.
  void set_tables(const nfa::TableReader* tables);
  // Follows one key's evaluations (`cepheus trace`); not owned, null for none.
  void set_tracer(Tracer* tracer);

  // Where the state of keys let go by EvictColdKeys is read back from: the
  // store SaveChanges writes to (or a view of the same data), and the
  // decoder of its events. Not owned; both must outlive the engine.
  void set_cold_store(const StateStore* store, EventDecoder* decoder);
  // After a SaveChanges: lets saved keys go from memory, least recently used
  // first, until at most EngineOptions::max_resident_keys are held. Returns
  // how many went. Does nothing without a cold store or that option.
  size_t EvictColdKeys();
  // Keys whose state is in the cold store only.
  uint64_t cold_keys() const;
  // The first failure to read a key's state back (the key then went on with
  // none); Ok when every read succeeded. The daemon aborts its batch on it.
  Status cold_status() const;

  // Writes the whole state (runs of every key, watermark, buffered events) to
  // `store`, replacing what was there under the "engine/" prefix. Keys in the
  // cold store are read back first.
  Status Save(StateStore* store);
  // Writes only what changed since the last Save or SaveChanges: the meta and
  // buffer records, the keys touched since (or their deletion when they no
  // longer hold state). The daemon calls it at every commit, so a commit costs
  // what changed, not the whole state. Buffered events pushed after the
  // `buffer_through`-th (see arrivals()) are left out: the daemon reads them
  // again from their topic after a restore (a re-keyed partition, whose
  // events wait in the buffer for the next watermark mark).
  Status SaveChanges(StateStore* store, uint64_t buffer_through = UINT64_MAX);
  // Events pushed so far (late ones included), counted over the state's life:
  // the next event pushed is the (arrivals() + 1)-th.
  uint64_t arrivals() const;
  // The least arrival (see arrivals()) above `after` of an event still in the
  // reorder buffer; UINT64_MAX when there is none. O(events buffered).
  uint64_t OldestBufferedArrival(uint64_t after) const;
  // Replaces this engine's state with what Save wrote. Rules whose text
  // changed since (different fingerprint) or that are no longer in the rule
  // set start empty: their stored state is not loaded, and `report` (when
  // given) counts it and lists its store keys; the engine deletes those keys
  // at its next Save or SaveChanges (the daemon also writes their tombstones
  // to the changelog). Events are re-decoded with `decoder`.
  struct LoadReport {
    uint64_t keys_dropped = 0;   // (rule, key) states not loaded
    uint64_t runs_changed = 0;   // their partial matches, rule text changed
    uint64_t runs_removed = 0;   // their partial matches, rule removed
    std::vector<std::string> stale_keys;  // store keys of the dropped states
  };
  Status Load(const StateStore& store, EventDecoder* decoder, LoadReport* report = nullptr);

 private:
  std::unique_ptr<EngineImpl> impl_;
};

}  // namespace cepheus::engine

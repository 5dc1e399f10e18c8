// The engine: reorder buffer, watermark, timers and per-key dispatch.
//
// Events wait in a min-heap keyed by (ts, arrival) until the watermark
// (largest ts seen minus the allowed out-of-orderness) reaches them. Rules
// that read the same key field share one index of keys, so an event costs one
// key lookup per key field, not one per rule; each key is a slab entry holding
// the KeyRuns of the rules of its group that hold something of it (a slot is
// made when a rule starts a run and dropped when the rule needs nothing of the
// key), and its counters once one counts an event of it; the index is an
// open addressing table of entry ids (tsl::robin_set). Runs of one rule start
// in event-time order and share one `within`, so their window closings come in
// order too: a FIFO per rule holds one (deadline, entry, generation) per run,
// O(1) each, and the engine pops the earliest front across rules. A rule whose closings
// only drop runs (no trailing absent step) keeps one entry per key instead,
// at the key's oldest deadline, armed again when it fires and runs are left
// (in the heap when the FIFO's order would break). Keys kept only for a
// cooldown wake up from a small heap too. Entries that
// name a freed key (older generation) or a run already gone are skipped; so
// that a hot key's runs dropped at its `limit` do not leave one entry per
// event behind, a FIFO that has doubled since its last pass is compacted
// (CompactDeadlines), which keeps it in proportion to the live runs.
// Runs are ordered, and `skip past_last` judged, by evaluation seq (event
// time, ties by arrival), so the alerts do not depend on arrival order when
// no event is late.
// Releasing an event first fires every closing before the event's time, which
// gives the spec's "windows and events in time order". An entry is freed as
// soon as no rule needs it, so state is bounded by the live windows (plus
// cooldowns); with a cold store, a saved idle key's state may also leave
// memory and be read back when it is next needed (cold_keys.cc).
#include "engine/engine_impl.h"
#include "engine/alert.h"

#include <algorithm>

#include <fmt/format.h>

namespace cepheus::engine {
namespace {

constexpr size_t kCompactMin = 4096;  // a closing FIFO is never compacted below this size

}  // namespace

EngineImpl::EngineImpl(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options,
               AlertSink* sink)
    : rules_(std::move(rules)), options_(options), sink_(sink), aggregates_(rules_, options_.key_fields, &stats_.aggregates) {
  for (const auto& p : rules_->programs) {
    uint32_t g = 0;
    while (g < groups_.size() && groups_[g].slot != p->key_slot) ++g;
    if (g == groups_.size()) {
      std::string field;
      for (const auto& part : rules_->fields.paths()[static_cast<size_t>(p->key_slot)]) {
        if (!field.empty()) field += '.';
        field += part;
      }
      groups_.push_back(KeyGroup{p->key_slot, std::move(field), {}, {}, KeyIndex(0, IndexHash{&entries_}, IndexEq{&entries_}), {}});
    }
    uint32_t pos = static_cast<uint32_t>(groups_[g].rules.size());
    groups_[g].rules.push_back(static_cast<uint32_t>(states_.size()));
    auto& reads = groups_[g].reads;
    reads.resize(rules_->types.size() + 1, 0);
    for (size_t t = 0; t < rules_->types.size(); ++t) reads[t] |= p->needs_all_types || p->relevant[t];
    reads.back() |= p->needs_all_types;
    states_.push_back(RuleState{p.get(), nfa::Matcher(p.get()), g, pos, !p->trailing_absent});
  }
  // Counters join the group of their key field (one with no rule if need be).
  counter_pos_.resize(rules_->counters.size());
  for (uint32_t c = 0; c < rules_->counters.size(); ++c) {
    const nfa::CounterProgram& cp = rules_->counters[c];
    uint32_t g = 0;
    while (g < groups_.size() && groups_[g].slot != cp.key_slot) ++g;
    if (g == groups_.size()) {
      groups_.push_back(KeyGroup{cp.key_slot, fmt::format("{}", fmt::join(cp.counter->key, ".")), {}, {},
                                 KeyIndex(0, IndexHash{&entries_}, IndexEq{&entries_}), {}});
    }
    counter_pos_[c] = static_cast<uint32_t>(groups_[g].counters.size());
    groups_[g].counters.push_back(c);
    auto& reads = groups_[g].reads;
    reads.resize(rules_->types.size() + 1, 0);
    if (cp.source.any_type) std::fill(reads.begin(), reads.end(), 1);
    for (int32_t t : cp.source.type_ids) reads[static_cast<size_t>(t)] = 1;
  }
  reader_.engine = this;
  for (auto& st : states_) st.matcher.set_counters(&reader_);
  for (auto& g : groups_) {
    const auto& only = options_.key_fields;
    g.enabled = only.empty() || std::find(only.begin(), only.end(), g.field) != only.end();
    if (!g.enabled) std::fill(g.reads.begin(), g.reads.end(), 0);
  }
  stats_.rules.resize(states_.size());
  stats_.counter_keys.resize(rules_->counters.size());
  deadlines_.resize(states_.size());
  compact_at_.resize(states_.size(), kCompactMin);
  cold_arms_.resize(states_.size(), 0);
}

EngineImpl::~EngineImpl() = default;

int64_t EngineImpl::active_keys() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += static_cast<int64_t>(g.index.size());
  return n;
}

int64_t EngineImpl::active_runs() const {
  int64_t n = 0;
  for (const auto& r : stats_.rules) n += r.runs;
  return n;
}

void EngineImpl::Push(nfa::EventRef e) {
  ++stats_.received;
  e->arrival = ++arrival_;
  if (e->ts < watermark_) {
    ++stats_.late;
    if (!aggregates_.empty()) aggregates_.CountLate(*e);
    if (sink_) sink_->Late(*e);
    return;
  }
  if (e->ts > max_ts_) {
    max_ts_ = e->ts;
    if (options_.watermark_from_events && max_ts_ - options_.out_of_order > watermark_) {
      watermark_ = max_ts_ - options_.out_of_order;
    }
  }
  buffer_.push(Buffered(std::move(e)));
  if (options_.max_buffered > 0 && buffer_.size() > options_.max_buffered && buffer_.top().ts > watermark_) {
    // Full: the oldest buffered time becomes the watermark (and the events
    // of that time go with it), so the buffer never holds more than the limit
    // once drained, in the same way in replay and in the daemon.
    Millis oldest = buffer_.top().ts;
    size_t before = buffer_.size();
    watermark_ = oldest;
    Drain();
    stats_.buffer_forced += before - buffer_.size();
    return;
  }
  Drain();
}

void EngineImpl::AdvanceWatermark(Millis w) {
  if (w <= watermark_) return;
  watermark_ = w;
  Drain();
}

uint64_t EngineImpl::OldestBufferedArrival(uint64_t after) const {
  uint64_t oldest = UINT64_MAX;
  for (const Buffered& b : buffer_.items()) {
    if (b.arrival > after) oldest = std::min(oldest, b.arrival);
  }
  return oldest;
}

void EngineImpl::Drain() {
  while (!buffer_.empty() && buffer_.top().ts <= watermark_) {
    nfa::EventRef e = buffer_.top().e;
    buffer_.pop();
    if (e->arrival <= saved_arrival_) released_saved_.push_back(e->arrival);
    CloseUntil(e->ts);
    Evaluate(e);
    for (uint32_t r = 0; r < deadlines_.size(); ++r) {
      if (deadlines_[r].size() >= compact_at_[r]) CompactDeadlines(r);
    }
  }
  CloseUntil(watermark_);
  if (!aggregates_.empty()) stats_.alerts += aggregates_.CloseUntil(watermark_, sink_);
}

void EngineImpl::CloseUntil(Millis t) {
  for (;;) {
    // The earliest pending closing: the fronts of the per-rule FIFOs, then the
    // wake-up heap (ties: rule order, deadlines before wake-ups).
    uint32_t best = UINT32_MAX;
    Millis at = t;
    for (uint32_t r = 0; r < deadlines_.size(); ++r) {
      if (!deadlines_[r].empty() && deadlines_[r].front().at < at) {
        at = deadlines_[r].front().at;
        best = r;
      }
    }
    if (!timers_.empty() && timers_.top().at < at) {
      Timer tm = timers_.top();
      timers_.pop();
      KeyEntry& entry = entries_[tm.entry];
      if (entry.generation != tm.generation) continue;  // the key is gone
      Warm(tm.entry);
      KeyState* ks = entry.rules.Find(states_[tm.rule].pos);
      if (ks == nullptr) continue;  // the rule dropped the key's state since
      Millis& live = tm.closing ? ks->armed_at : ks->timer_at;
      if (live != tm.at) continue;  // stale
      live = kMaxTime;
      Fire(tm.entry, tm.generation, tm.rule, tm.at);
      continue;
    }
    if (!cold_wakes_.empty() && cold_wakes_.top().at < at) {
      KeyWake w = cold_wakes_.top();
      cold_wakes_.pop();
      // Read back, its silent rules armed again; a key warm since (or gone) has its arms.
      if (entries_[w.entry].generation == w.generation) Warm(w.entry);
      continue;
    }
    if (!counter_wakes_.empty() && counter_wakes_.top().at < at) {
      KeyWake w = counter_wakes_.top();
      counter_wakes_.pop();
      KeyEntry& entry = entries_[w.entry];
      if (entry.generation != w.generation || entry.counter_wake != w.at) continue;
      entry.counter_wake = kMaxTime;
      MaybeForget(w.entry, w.at);
      // Still held (newer buckets, or its rules): wake again at the new end.
      if (entries_[w.entry].generation == w.generation) ArmCounterWake(w.entry, w.at);
      continue;
    }
    if (best == UINT32_MAX) return;
    Deadline d = deadlines_[best].front();
    deadlines_[best].pop_front();
    if (states_[best].silent) {
      KeyEntry& entry = entries_[d.entry];
      if (entry.generation != d.generation) continue;
      Warm(d.entry);
      KeyState* ks = entry.rules.Find(states_[best].pos);
      if (ks == nullptr || ks->armed_at != d.at) continue;  // stale
      ks->armed_at = kMaxTime;
    }
    Fire(d.entry, d.generation, best, d.at);
  }
}

void EngineImpl::Fire(uint32_t id, uint32_t generation, uint32_t rule, Millis at) {
  KeyEntry& entry = entries_[id];
  if (entry.generation != generation) return;  // the key is gone
  Warm(id);
  RuleState& rs = states_[rule];
  KeyState* found = entry.rules.Find(rs.pos);
  if (found == nullptr) return;  // nothing of the rule left to close
  KeyState& ks = *found;
  int64_t before = static_cast<int64_t>(ks.runs.size());
  matches_.clear();
  reader_.entry = id;
  const bool traced = tracer_ != nullptr && tracer_->Follows(entry.key);
  if (traced) tracer_->BeforeClose(*rs.program, entry.key, ks.runs, at + 1);
  rs.matcher.CloseWindows(ks.runs, at + 1, &matches_);
  if (traced) tracer_->AfterClose(*rs.program, entry.key, ks.runs, at + 1, matches_);
  int64_t closed = before - static_cast<int64_t>(ks.runs.size());
  stats_.rules[rule].runs -= closed;
  if (!matches_.empty()) Publish(rule, entry.key, &matches_);
  // A key that keeps runs stays needed: unless some closed, nothing changed.
  // (A key with no run may stop being needed now: its cooldown ended.)
  if (closed != 0 || !matches_.empty() || ks.runs.empty()) MarkDirty(id);
  if (rs.silent && !ks.runs.empty()) Arm(id, rule, rs.matcher.NextDeadline(ks.runs));
  Schedule(id, rule, at + 1);
  DropUnneeded(entry, rule, at + 1);
  MaybeForget(id, at + 1);
}

void EngineImpl::Arm(uint32_t id, uint32_t rule, Millis at) {
  KeyEntry& entry = entries_[id];
  entry.rules.Find(states_[rule].pos)->armed_at = at;
  auto& fifo = deadlines_[rule];
  if (fifo.empty() || fifo.back().at <= at) {
    fifo.push_back(Deadline{at, id, entry.generation});
  } else {
    timers_.push(Timer{at, ++timer_order_, id, entry.generation, rule, true});
  }
}

void EngineImpl::MarkDirty(uint32_t id) {
  KeyEntry& entry = entries_[id];
  if (entry.dirty) return;
  entry.dirty = true;
  dirty_.emplace_back(id, entry.generation);
}

uint32_t EngineImpl::NewEntry(uint32_t group, std::string_view key) {
  uint32_t id;
  if (!free_entries_.empty()) {
    id = free_entries_.back();
    free_entries_.pop_back();
  } else {
    id = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  KeyEntry& entry = entries_[id];
  entry.key.assign(key);
  entry.group = group;
  entry.in_use = entry.used = true;
  entry.cold = false;
  entry.rules.clear();
  entry.counters.clear();  // sized when a counter first counts an event of the key
  entry.counter_wake = kMaxTime;
  groups_[group].index.insert(id);
  return id;
}

void EngineImpl::Evaluate(const nfa::EventRef& e) {
  e->seq = ++seq_;
  ++stats_.evaluated;
  if (!aggregates_.empty()) aggregates_.Add(*e);
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    KeyGroup& group = groups_[g];
    if (!group.reads[e->type_id >= 0 ? static_cast<size_t>(e->type_id) : group.reads.size() - 1]) continue;
    const nfa::Value& kv = e->fields[group.slot];
    std::string_view key;
    if (kv.kind == nfa::Value::Kind::kString) {
      key = kv.str();
    } else if (KeyText(kv, &key_)) {
      key = key_;
    } else {
      continue;  // no key: every rule of the group ignores the event
    }
    uint32_t id = UINT32_MAX;
    if (auto it = group.index.find(key); it != group.index.end()) {
      id = *it;
      Warm(id);
    }
    const bool traced = tracer_ != nullptr && tracer_->Follows(key);
    if (!group.counters.empty()) id = CountEvent(g, key, id, *e);
    reader_.entry = id;
    if (traced) tracer_->OnEvent(group.field, key, *e, tables_, &reader_);
    for (uint32_t r : group.rules) {
      RuleState& rs = states_[r];
      if (!rs.matcher.Relevant(*e)) continue;
      if (id == UINT32_MAX) {
        if (!rs.matcher.Starts(*e)) continue;  // nothing to do for a key with no state
        if (options_.max_keys > 0 && entries_.size() - free_entries_.size() >= options_.max_keys) {
          ++stats_.keys_refused;  // at the limit: no new key, the group's rules skip the event
          break;
        }
        id = NewEntry(g, key);
        reader_.entry = id;
      }
      KeyEntry& entry = entries_[id];
      KeyState* found = entry.rules.Find(rs.pos);
      if ((found == nullptr || found->runs.empty()) && !rs.matcher.Starts(*e)) continue;
      KeyState& ks = found != nullptr ? *found : entry.rules.Get(rs.pos);
      int64_t before = static_cast<int64_t>(ks.runs.size());
      matches_.clear();
      nfa::MatchStats ms;
      if (traced) tracer_->BeforeRule(*rs.program, ks.runs, *e);
      rs.matcher.OnEvent(ks.runs, e, &matches_, &ms);
      if (traced) tracer_->AfterRule(*rs.program, ks.runs, *e, matches_, ms, tables_, &reader_);
      if (rs.silent) {
        if (ks.armed_at == kMaxTime && !ks.runs.empty()) Arm(id, r, rs.matcher.NextDeadline(ks.runs));
      } else if (ks.runs.newest_start() == e->seq) {
        // A run started with e: its window closes at e.ts + within.
        deadlines_[r].push_back(Deadline{e->ts + rs.program->within, id, entry.generation});
      }
      stats_.rules[r].evicted += ms.evicted;
      stats_.rules[r].runs += static_cast<int64_t>(ks.runs.size()) - before;
      if (!matches_.empty()) Publish(r, entry.key, &matches_);
      MarkDirty(id);
      Schedule(id, r, e->ts);
      DropUnneeded(entry, r, e->ts);
    }
    if (id != UINT32_MAX) MaybeForget(id, e->ts);
  }
}

namespace {
int64_t BucketOf(Millis t, Millis resolution) {
  return t >= 0 ? t / resolution : -((-t + resolution - 1) / resolution);
}
bool NeverNull(dsl::AggFn fn) {
  return fn == dsl::AggFn::kCount || fn == dsl::AggFn::kSum || fn == dsl::AggFn::kDistinct;
}
bool Counts(const nfa::SourceProgram& s, const nfa::Event& e) {
  return s.any_type || (e.type_id >= 0 && std::find(s.type_ids.begin(), s.type_ids.end(), e.type_id) != s.type_ids.end());
}
}  // namespace

uint32_t EngineImpl::CountEvent(uint32_t g, std::string_view key, uint32_t id, const nfa::Event& e) {
  const std::vector<uint32_t>& counters = groups_[g].counters;
  for (size_t i = 0; i < counters.size(); ++i) {
    const nfa::CounterProgram& c = rules_->counters[counters[i]];
    if (!Counts(c.source, e)) continue;
    if (!c.source.filter.empty() &&
        !nfa::EvaluateOnEvent(c.source.filter, e, tables_, e.ts)) {
      continue;
    }
    if (id == UINT32_MAX) {
      if (options_.max_keys > 0 && entries_.size() - free_entries_.size() >= options_.max_keys) {
        ++stats_.keys_refused;
        return id;
      }
      id = NewEntry(g, key);
    }
    KeyEntry& entry = entries_[id];
    if (entry.counters.empty()) entry.counters.resize(counters.size());
    int64_t bucket = BucketOf(e.ts, c.resolution);
    static const nfa::Value kNull{};
    const nfa::Value& v = c.field_slot >= 0 ? e.fields[static_cast<size_t>(c.field_slot)] : kNull;
    const std::string* text = nullptr;
    if (c.fn == dsl::AggFn::kDistinct && nfa::ValueKeyText(v, &text_)) text = &text_;
    int64_t before = entry.counters[i].newest();
    if (!entry.counters[i].Add(bucket, v, text, c.fn, c.buckets)) ++stats_.distinct_capped;
    if (before == INT64_MIN) ++stats_.counter_keys[counters[i]];
    if (entry.counter_wake == kMaxTime) ArmCounterWake(id, kMinTime);
    MarkDirty(id);
  }
  return id;
}

void EngineImpl::ArmCounterWake(uint32_t id, Millis after) {
  KeyEntry& entry = entries_[id];
  const KeyGroup& group = groups_[entry.group];
  Millis at = kMinTime;
  for (size_t i = 0; i < entry.counters.size(); ++i) {
    const nfa::CounterProgram& c = rules_->counters[group.counters[i]];
    if (entry.counters[i].newest() != INT64_MIN) at = std::max(at, (entry.counters[i].newest() + c.buckets) * c.resolution);
  }
  if (at <= after) return;  // its counters are done: the key's rules, if any, hold it
  entry.counter_wake = at;
  counter_wakes_.push(KeyWake{at, id, entry.generation});
}

bool EngineImpl::CountersLive(const KeyEntry& entry, Millis now) const {
  const KeyGroup& group = groups_[entry.group];
  for (size_t i = 0; i < entry.counters.size(); ++i) {
    const nfa::CounterProgram& c = rules_->counters[group.counters[i]];
    if (entry.counters[i].Live(BucketOf(now, c.resolution), c.buckets)) return true;
  }
  return false;
}

nfa::Value EngineImpl::KeyCounters::Read(int32_t counter, Millis at) const {
  const nfa::CounterProgram& c = engine->rules_->counters[static_cast<size_t>(counter)];
  nfa::Value none = NeverNull(c.fn) ? nfa::Value::Number(0) : nfa::Value::Null();
  if (entry == UINT32_MAX) return none;
  KeyEntry& e = engine->entries_[entry];
  uint32_t pos = engine->counter_pos_[static_cast<size_t>(counter)];
  const KeyGroup& g = engine->groups_[e.group];
  if (pos >= e.counters.size() || g.counters[pos] != static_cast<uint32_t>(counter)) return none;
  return e.counters[pos].Read(BucketOf(at, c.resolution), c.fn, c.buckets);
}

void EngineImpl::CompactDeadlines(uint32_t rule) {
  // From the back: an entry is the key's last one when the key is not marked
  // yet. Dropping an entry that closes nothing skips only a Fire that would
  // close no window, publish nothing and leave the key as it is. A key's last
  // entry is never dropped (unless the key is gone), so a rule that keeps one
  // pending closing per key loses none.
  const RuleState& rs = states_[rule];
  std::vector<bool> later(entries_.size(), false);  // the key has an entry further back
  std::deque<Deadline>& fifo = deadlines_[rule];
  size_t keep = fifo.size();
  for (size_t i = fifo.size(); i-- > 0;) {
    const Deadline& d = fifo[i];
    const KeyEntry& entry = entries_[d.entry];
    const KeyState* ks = entry.rules.Find(rs.pos);
    // A cold key's runs are not at hand: a silent rule's entries of it go
    // (its cold wake-up re-arms the rule), another rule's are kept.
    bool drop = entry.generation != d.generation || (entry.cold && rs.silent) ||
                (!entry.cold && (ks == nullptr || (later[d.entry] && d.at < rs.matcher.NextDeadline(ks->runs))));
    if (entry.generation == d.generation) later[d.entry] = true;
    if (!drop) fifo[--keep] = d;
  }
  fifo.erase(fifo.begin(), fifo.begin() + static_cast<std::ptrdiff_t>(keep));
  compact_at_[rule] = std::max(kCompactMin, 2 * fifo.size());
  cold_arms_[rule] = 0;
}

void EngineImpl::CompactColdArms() {
  // When at least half a FIFO is cold keys' arms: each pass then drops at
  // least half of what it walks, which the evictions paid for.
  for (uint32_t r = 0; r < deadlines_.size(); ++r) {
    const size_t n = deadlines_[r].size();
    if (states_[r].silent && n >= kCompactMin && 2 * cold_arms_[r] >= n) CompactDeadlines(r);
  }
}

bool EngineImpl::Needed(const nfa::Program& p, const nfa::KeyRuns& k, Millis now) const {
  if (!k.empty()) return true;
  return p.cooldown > 0 && k.alerted && k.last_alert + p.cooldown > now;
}

bool EngineImpl::AnyRuleNeeded(const KeyEntry& entry, Millis now) const {
  const KeyGroup& group = groups_[entry.group];
  for (const auto& slot : entry.rules) {
    if (Needed(*states_[group.rules[slot.pos]].program, slot.state.runs, now)) return true;
  }
  return false;
}

void EngineImpl::DropUnneeded(KeyEntry& entry, uint32_t rule, Millis now) {
  const RuleState& rs = states_[rule];
  const KeyState* ks = entry.rules.Find(rs.pos);
  // Its pending wake-ups find no slot and pass as stale.
  if (ks != nullptr && !Needed(*rs.program, ks->runs, now)) entry.rules.Drop(rs.pos);
}

EngineImpl::KeyState* EngineImpl::RuleSlots::Find(uint32_t pos) {
  if (!slots_) return nullptr;
  for (auto& s : *slots_) {
    if (s.pos == pos) return &s.state;
  }
  return nullptr;
}

EngineImpl::KeyState& EngineImpl::RuleSlots::Get(uint32_t pos) {
  if (KeyState* ks = Find(pos)) return *ks;
  if (!slots_) slots_ = std::make_unique<std::vector<Slot>>();
  std::vector<Slot>& v = *slots_;
  auto at = std::find_if(v.begin(), v.end(), [pos](const Slot& s) { return s.pos > pos; });
  size_t i = static_cast<size_t>(at - v.begin());
  v.reserve(v.size() + 1);  // exact: no room kept for slots the key may never need
  v.insert(v.begin() + static_cast<std::ptrdiff_t>(i), Slot{pos, KeyState{}});
  return v[i].state;
}

void EngineImpl::RuleSlots::Drop(uint32_t pos) {
  if (!slots_) return;
  auto at = std::find_if(slots_->begin(), slots_->end(), [pos](const Slot& s) { return s.pos == pos; });
  if (at != slots_->end()) slots_->erase(at);
  if (slots_->empty()) slots_.reset();
}

void EngineImpl::Schedule(uint32_t id, uint32_t rule, Millis now) {
  const RuleState& rs = states_[rule];
  KeyEntry& entry = entries_[id];
  KeyState* found = entry.rules.Find(rs.pos);
  if (found == nullptr) return;
  KeyState& ks = *found;
  const nfa::Program& p = *rs.program;
  // Runs have their deadlines in the FIFO; only a key kept for its cooldown
  // needs a wake-up, when that ends.
  if (!ks.runs.empty() || !Needed(p, ks.runs, now)) return;
  Millis wake = ks.runs.last_alert + p.cooldown;
  if (wake < ks.timer_at) {
    ks.timer_at = wake;
    timers_.push(Timer{wake, ++timer_order_, id, entry.generation, rule, false});
  }
}

void EngineImpl::MaybeForget(uint32_t id, Millis now) {
  Warm(id);
  KeyEntry& entry = entries_[id];
  KeyGroup& group = groups_[entry.group];
  if (AnyRuleNeeded(entry, now) || CountersLive(entry, now)) return;
  // Deleted at the next save.
  if (entry.stored) forgotten_.emplace_back(uint32_t{entry.group}, entry.key);
  group.index.erase(std::string_view(entry.key));
  ++entry.generation;
  entry.dirty = false;
  entry.stored = false;
  entry.in_use = false;
  entry.rules.clear();
  for (size_t i = 0; i < entry.counters.size(); ++i) {
    if (entry.counters[i].newest() != INT64_MIN) --stats_.counter_keys[group.counters[i]];
  }
  entry.counters.clear();
  free_entries_.push_back(id);
}

void EngineImpl::Publish(uint32_t rule, const std::string& key, std::vector<nfa::Match>* matches) {
  const nfa::Program& p = *states_[rule].program;
  for (const auto& m : *matches) {
    if (m.suppressed) {
      ++stats_.rules[rule].suppressed;
      continue;
    }
    ++stats_.rules[rule].alerts;
    ++stats_.alerts;
    if (sink_) sink_->Publish(MakeAlert(p, key, m, tables_, &reader_));
  }
}

// ---- Engine: the public face ----------------------------------------------

Engine::Engine(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options, AlertSink* sink)
    : impl_(std::make_unique<EngineImpl>(std::move(rules), options, sink)) {}
Engine::~Engine() = default;
void Engine::Push(nfa::EventRef e) { impl_->Push(std::move(e)); }
void Engine::set_tracer(Tracer* tracer) { impl_->set_tracer(tracer); }
void Engine::AdvanceWatermark(Millis w) { impl_->AdvanceWatermark(w); }
Millis Engine::watermark() const { return impl_->watermark(); }
const EngineStats& Engine::stats() const { return impl_->stats(); }
int64_t Engine::active_keys() const { return impl_->active_keys(); }
int64_t Engine::active_runs() const { return impl_->active_runs(); }
size_t Engine::buffered() const { return impl_->buffered(); }
const EngineOptions& Engine::options() const { return impl_->options(); }
void Engine::set_tables(const nfa::TableReader* tables) { impl_->set_tables(tables); }
void Engine::set_cold_store(const StateStore* store, EventDecoder* decoder) { impl_->set_cold_store(store, decoder); }
size_t Engine::EvictColdKeys() { return impl_->EvictColdKeys(); }
uint64_t Engine::cold_keys() const { return impl_->cold_keys(); }
Status Engine::cold_status() const { return impl_->cold_status(); }
Status Engine::Save(StateStore* store) { return impl_->Save(store); }
Status Engine::SaveChanges(StateStore* store, uint64_t buffer_through) {
  return impl_->SaveChanges(store, buffer_through);
}
uint64_t Engine::arrivals() const { return impl_->arrivals(); }
uint64_t Engine::OldestBufferedArrival(uint64_t after) const { return impl_->OldestBufferedArrival(after); }
Status Engine::Load(const StateStore& store, EventDecoder* decoder, LoadReport* report) {
  return impl_->Load(store, decoder, report);
}

}  // namespace cepheus::engine

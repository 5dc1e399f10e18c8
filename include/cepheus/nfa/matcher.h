// The matcher: section 4.2 of the rule-language spec, for one rule and key.
//
// KeyRuns is the whole state of one (rule, key): its live runs, oldest first,
// and the time of its last alert (for cooldown). The Matcher holds no state of
// its own; it applies one event, or one window closing, to a KeyRuns and
// reports the matches. The engine decides which events and closings reach
// which KeyRuns and in what order; persisting a KeyRuns is engine/state_codec.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "cepheus/nfa/program.h"
#include "cepheus/nfa/value.h"

namespace cepheus::nfa {

// An aggregate of one field over the events bound at one step, kept as
// events are bound (never recomputed from them).
struct AggState {
  int64_t numbers = 0;  // how many values were numbers
  double sum = 0;
  Value min, max, first, last;
  // Every value, when the AggSpec keeps them; the first few inline.
  boost::container::small_vector<Value, 3> values;
  int64_t distinct = 0;       // distinct non-null values (needs `values`)

  void Add(const Value& v, bool keep_values);
};

// One bound event and the step that took it.
struct Bound {
  EventRef event;
  int32_t step;
};

struct Run {
  // Evaluation seq of the first event. Bound events are taken in evaluation
  // order, so this is also the least seq the run holds.
  uint64_t start_seq = 0;
  int32_t step = 0;        // the step the run is at
  int32_t count = 0;       // events taken at `step`
  // No event of the key was skipped since the last one taken. Only a `=>`
  // reads it, so a rule with none keeps it true: its runs then write the same
  // state record whether they were held as runs or in a shared buffer.
  bool contiguous = true;
  Millis first_ts = 0;
  Millis last_ts = 0;
  uint64_t last_seq = 0;
  // Inline capacity covers the common short patterns without allocating, and
  // keeps a run's state in one block of memory.
  boost::container::small_vector<Bound, 4> bound;  // every bound event, in the order taken
  // Per Program::aggs; out of line, as most rules have none: an inline
  // AggState (160 bytes) doubled the size of every run of every rule.
  std::vector<AggState> aggs;

  // The first event taken at `step`, or null.
  const Event* FirstAt(int32_t step) const {
    for (const auto& b : bound) {
      if (b.step == step) return b.event.get();
    }
    return nullptr;
  }
  int64_t CountAt(int32_t step) const {
    int64_t n = 0;
    for (const auto& b : bound) n += b.step == step;
    return n;
  }
};

// The runs of a leading `any{k} =>` prefix that are still at their first step
// (Program::prefix == k > 0). Every event of the key starts one, and it takes
// each following event until it holds k, so they are not kept as Runs: the run
// started by events[i] holds exactly events[i..n-1] (step 0, contiguous), and
// the last events of the key with one bit per event (did it start a run that
// is still alive?) say everything about them. A prefix run becomes a real Run
// (Matcher::Materialize) only when it has k events and the next event could
// take the step after the prefix, or when it must skip an event. Prefix runs
// are newer than every run in KeyRuns::runs and come after them in its order.
struct PrefixRuns {
  EventRef events[kMaxPrefix];  // oldest first; events[0] started a live run
  uint8_t n = 0;
  uint8_t alive = 0;  // bit i: the run started by events[i] is alive

  int live() const { return __builtin_popcount(alive); }
  void PopFront();
  void TrimDead();  // drops leading events that no live run holds
  void Push(const EventRef& e, bool starts);
  void Clear();
};

// A FIFO on one vector: pops advance a head index, and the popped front is
// cut off once it is most of the vector. Unlike std::deque it allocates
// nothing while empty, which matters for the many keys that hold a few
// events.
template <class T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  const T& back() const { return items_.back(); }
  const T& operator[](size_t i) const { return items_[head_ + i]; }
  template <class... A>
  void emplace_back(A&&... a) { items_.emplace_back(std::forward<A>(a)...); }
  void push_back(T v) { items_.push_back(std::move(v)); }
  void pop_back() {
    items_.pop_back();
    if (empty()) clear();
  }
  void pop_front() {
    items_[head_++] = T();
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= 64 && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

// The runs of a rule with a SuffixPlan (Program::suffix), all in one buffer:
// `events` are the events that fit the step since the last match, oldest
// first, and the run started by events[i] holds events[i..] (kAll) or the
// first event of each distinct value in events[i..] (kDistinct). A run is one
// buffered event; only the oldest run's state is kept, by sliding aggregates
// that drop an event's share when the oldest run goes. Used only while the
// key has no Run in KeyRuns::runs (runs restored from a state record, or
// handed over when an event breaks the plan's assumptions, stay Runs until
// they end).
struct SuffixRuns {
  Fifo<EventRef> events;
  // kDistinct: how many buffered events hold each value (zeros erased), so
  // the oldest run has bound values.size() events.
  std::unordered_map<std::string, int64_t> values;
  // kAll, per SuffixPlan::sum_aggs / extreme_aggs: the numbers of the
  // aggregate's field in `events`.
  struct Sliding {
    double pushed = 0, popped = 0;  // sums of the numbers pushed and popped since the buffer was empty
    double magnitude = 0;           // sum of their absolute values (for the rounding bound)
    int64_t numbers = 0;            // numbers in the buffer
    Fifo<std::pair<double, uint64_t>> max, min;  // monotonic queues of (value, seq)
  };
  std::vector<Sliding> sliding;  // indexed like sum_aggs, then extreme_aggs
  uint64_t operations = 0;       // pushes and pops since the buffer was empty

  // kSequence: `events` are the events that fit some step since the oldest
  // run's first event, `fits` their steps (bit j: fits step j), and `starts`
  // the positions of the runs' first events, oldest first. Positions count
  // from when the buffer was last empty (`events_popped` have left its
  // front, and `runs_popped` runs). Runs further on are older, so the runs at
  // step >= k are the first ones, up to run number cut[k] (cut[0] is the end).
  bool sequence = false;
  Fifo<uint32_t> fits;
  Fifo<uint64_t> starts;
  uint64_t events_popped = 0, runs_popped = 0;
  std::vector<uint64_t> cut;

  size_t runs() const { return sequence ? starts.size() : events.size(); }
  const Event& start(size_t i) const { return *events[static_cast<size_t>(starts[i] - events_popped)]; }
};

struct KeyRuns {
  std::vector<Run> runs;  // oldest first, so first_ts never decreases along it
  PrefixRuns prefix;      // newer than every run in `runs`
  std::unique_ptr<SuffixRuns> suffix;  // Program::suffix rules only; its runs are newer than `runs`
  bool alerted = false;
  Millis last_alert = 0;  // detected_at of the last alert not suppressed
  // (Under `skip past_last` no run may start with an event at or before the
  // match's last event in evaluation order. Events are evaluated in that
  // order, so only the event that completed the match needs holding back,
  // and OnEvent does that itself: no barrier is kept between events.)

  // Every live run, those held as a prefix or in a suffix buffer included.
  size_t size() const {
    return runs.size() + static_cast<size_t>(prefix.live()) + (suffix ? suffix->runs() : 0);
  }
  bool empty() const { return runs.empty() && prefix.alive == 0 && (!suffix || suffix->runs() == 0); }
  // The start_seq of the newest live run (0 when none).
  uint64_t newest_start() const;
};

// The value of `expr` (an emit expression) over a completed run's bindings,
// as alert-message text ("FR, DE" for a list, "null" for null; a number in
// `format` when one is given).
std::string EvaluateOnRun(const CompiledExpr& expr, const Run& run, const TableReader* tables = nullptr,
                          Millis at = 0, const CounterReader* counters = nullptr,
                          const NumberFormat* format = nullptr);

// The value of `expr` over a completed run's bindings as JSON, appended to
// `out`: a number, a string, true/false, null, or an array of those.
void AppendJsonOnRun(const CompiledExpr& expr, const Run& run, const TableReader* tables, Millis at,
                     const CounterReader* counters, std::string* out);

// A filter over one event (the filter of a counter or an aggregate, or an
// aggregate's `alert when` over its synthetic event), as of `at`.
bool EvaluateOnEvent(const CompiledExpr& expr, const Event& e, const TableReader* tables, Millis at);
// The value of `expr` over one event as alert-message text.
std::string EvaluateTextOnEvent(const CompiledExpr& expr, const Event& e, Millis at,
                                const NumberFormat* format = nullptr);

// Why `e` does not fit step `step` of `p` for `run` (null for a run's first
// step): its type, or its filter with the false sub-expression and values
// (`cepheus trace`); "" when it fits.
std::string WhyNotFits(const Program& p, int step, const Event& e, const Run* run, const TableReader* tables,
                       const CounterReader* counters);

struct Match {
  Run run;
  bool absence = false;
  Millis detected_at = 0;
  bool suppressed = false;  // inside the cooldown of an earlier alert
};

struct MatchStats {
  uint64_t evicted = 0;  // runs dropped because the key was at its limit
};

class Matcher {
 public:
  explicit Matcher(const Program* program);
  Matcher(const Matcher& o) : Matcher(o.p_) { tables_ = o.tables_, counters_ = o.counters_; }  // scratch buffers are not copied

  // Evaluates `e` (of this rule's key) against `k`. Appends the matches, in
  // order, to `out`. REQUIRES: every window that closed before e->ts has been
  // closed with CloseWindows.
  void OnEvent(KeyRuns& k, const EventRef& e, std::vector<Match>* out, MatchStats* stats) const;

  // Closes every run whose window ended before `t` (first_ts + within < t):
  // runs waiting only on a trailing absent step complete with reason
  // "absence"; the others are dropped.
  void CloseWindows(KeyRuns& k, Millis t, std::vector<Match>* out) const;

  // The end of the earliest open window, or kMaxTime when there are no runs.
  Millis NextDeadline(const KeyRuns& k) const {
    if (!k.runs.empty()) return k.runs.front().first_ts + p_->within;
    if (k.suffix && k.suffix->runs() > 0) {
      return (k.suffix->sequence ? k.suffix->start(0).ts : k.suffix->events.front()->ts) + p_->within;
    }
    return k.prefix.alive ? k.prefix.events[0]->ts + p_->within : kMaxTime;
  }

  // The runs held in k.suffix as the Runs they stand for, oldest first
  // (appended to `out`): for the state record, and when a key leaves the
  // shared buffer.
  void SuffixAsRuns(const KeyRuns& k, std::vector<Run>* out) const;

  // True when the key's runs live in k.suffix (or would, for a key with none).
  bool UsesSuffix(const KeyRuns& k) const {
    return p_->suffix.kind != SuffixPlan::Kind::kNone && k.runs.empty();
  }

  // Rebuilds the aggregates of a run from its bound events (used on restore).
  void RebuildAggregates(Run* run) const;

  // True when `e` could start a run (fits the first step).
  bool Starts(const Event& e) const { return Fits(0, e, nullptr); }

  // The tables lookups read (not owned; must outlive the matcher). Null when
  // the rule set reads none.
  void set_tables(const TableReader* tables) { tables_ = tables; }
  // The counters of the key being evaluated (not owned); null: every counter
  // reads as over no event.
  void set_counters(const CounterReader* counters) { counters_ = counters; }
  const TableReader* tables() const { return tables_; }

  // True when `e` is of a type this rule reads.
  bool Relevant(const Event& e) const {
    return p_->needs_all_types || (e.type_id >= 0 && p_->relevant[e.type_id]);
  }

 private:
  bool Fits(int step, const Event& e, const Run* run) const;
  // Would taking an event at `step` complete the pattern (before `where`)?
  bool WouldComplete(const Run& r, int step) const;
  // `at`: the time tables are read as of (the last bound event's, or an
  // absence's deadline).
  bool WhereHolds(const Run& r, Millis at) const;
  bool Killed(const Run& run, const Event& e) const;
  bool CanIterate(const Run& r) const {
    int max = p_->steps[r.step].max;
    return max == dsl::kUnbounded || r.count < max;
  }
  void Take(Run* r, int step, const EventRef& e) const;
  void Finish(KeyRuns& k, Match m, std::vector<Match>* out) const;
  void Consume(const Run& m, KeyRuns& k, std::vector<Run>* completed, size_t from) const;
  // Before the runs take `e`: turns into Runs (appended to k.runs) the prefix
  // runs that will not simply take e, or drops them when they die.
  void PrefixBefore(KeyRuns& k, const Event& e) const;
  // The parts of OnEvent, in order.
  int Candidates(Run& run, const Event& e, int* candidates) const;
  void AdvanceRuns(std::vector<Run>& runs, const EventRef& ep) const;
  void StartRun(KeyRuns& k, const EventRef& ep) const;
  void MergeForks(std::vector<Run>& runs) const;
  void EnforceLimit(KeyRuns& k, MatchStats* stats) const;
  // Builds the prefix run started by pr.events[i] as a Run.
  void Materialize(const PrefixRuns& pr, int i, Run* r) const;
  // OnEvent for a key whose runs are all in k.suffix (Program::suffix).
  // False when `e` breaks the plan (a negative number summed, a list compared
  // by `not in`): the caller then turns the buffer into Runs and goes on.
  bool SuffixOnEvent(KeyRuns& k, const EventRef& e, std::vector<Match>* out, MatchStats* stats) const;
  // `key`: e's DistinctKey (kDistinct only).
  void SuffixPush(SuffixRuns& s, const EventRef& e, const std::string& key) const;
  void SuffixPop(SuffixRuns& s) const;
  bool SuffixWhere(const SuffixRuns& s, int32_t node) const;
  Value SuffixValue(const SuffixRuns& s, int32_t node, double* error) const;
  // The oldest run of the buffer as a Run.
  void SuffixRun(const SuffixRuns& s, size_t from, Run* r) const;
  // kSequence: OnEvent, dropping the oldest run, and run i as a Run.
  void SequenceOnEvent(KeyRuns& k, const EventRef& e, std::vector<Match>* out, MatchStats* stats) const;
  void SequencePop(SuffixRuns& s) const;
  void SequenceRun(const SuffixRuns& s, size_t i, Run* r) const;
  SuffixRuns& Buffer(KeyRuns& k) const;

  const Program* p_;
  bool strict_ = false;  // some step is entered by `=>` (Run::contiguous matters)
  const TableReader* tables_ = nullptr;
  const CounterReader* counters_ = nullptr;
  // Scratch reused across calls (a Matcher serves one engine, one thread).
  mutable std::vector<Run> next_;
  mutable std::vector<Run> completed_;
  mutable std::vector<size_t> extra_at_;
  std::vector<CompiledExpr> conjuncts_;
  mutable std::vector<std::unique_ptr<SuffixRuns>> pool_;  // empty buffers for reuse  // Program::suffix.filter_conjuncts, each as a condition
};

}  // namespace cepheus::nfa

// The matcher: runs of one rule for one key, section 4.2 of the spec.
//
// A run is a position in the pattern (step, count) plus what it has bound.
// For each event, every live run (oldest first) collects its candidate moves:
// one more iteration of its counted step, and a move to each later step it can
// reach (across absent steps and skippable optional ones, and only while the
// run is contiguous when a `=>` is crossed). Each candidate becomes a copy of
// the run that took the event (the fork of the spec); a candidate that would
// complete the pattern completes only if `where` holds, goes on if its last
// step can take more, and is refused otherwise. A run with no candidate skips
// the event, unless the event fits an absent step it is waiting across or a
// `=>` demanded this very event: then the run dies. After the live runs, the
// event may start a new run. Completed runs become matches in the evaluation
// order of their first events (event time, ties by arrival); each match
// consumes other runs by the skip policy, cooldown marks suppressed alerts,
// and the limit evicts the oldest runs.
//
// Runs stay ordered by first event, so the earliest window to close is always
// the first run's: the engine needs only NextDeadline() to schedule closings.
// Runs are updated in place: the common cases (a run skips the event, or takes
// it without completing) neither copy nor move it. Only forks and candidate
// completions (which `where` may refuse) copy a run.
//
// Some rules never need their runs one by one (Program::suffix): their runs
// live in one shared buffer per key (SuffixRuns, at the end of this file),
// where an event costs the same whatever the number of runs.
#include "cepheus/nfa/matcher.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "nfa/eval.h"

namespace cepheus::nfa {

namespace {
constexpr size_t kSuffixPool = 64;  // empty suffix buffers a matcher keeps for reuse
}  // namespace

Matcher::Matcher(const Program* program) : p_(program) {
  for (const StepProgram& s : p_->steps) strict_ |= s.arrow_in == dsl::Arrow::kStrict;
  for (int32_t root : p_->suffix.filter_conjuncts) {
    CompiledExpr& c = conjuncts_.emplace_back(p_->steps[0].filter);
    c.root = root;
  }
}

void PrefixRuns::PopFront() {
  for (int i = 1; i < n; ++i) events[i - 1] = std::move(events[i]);
  events[--n].reset();
  alive >>= 1;
}

void PrefixRuns::TrimDead() {
  while (n > 0 && !(alive & 1)) PopFront();
}

void PrefixRuns::Push(const EventRef& e, bool starts) {
  events[n] = e;
  if (starts) alive |= static_cast<uint8_t>(1u << n);
  ++n;
}

void PrefixRuns::Clear() {
  for (int i = 0; i < n; ++i) events[i].reset();
  n = 0;
  alive = 0;
}

uint64_t KeyRuns::newest_start() const {
  if (suffix && suffix->runs() > 0) {
    return suffix->sequence ? suffix->start(suffix->starts.size() - 1).seq : suffix->events.back()->seq;
  }
  if (prefix.alive) return prefix.events[31 - __builtin_clz(prefix.alive)]->seq;
  return runs.empty() ? 0 : runs.back().start_seq;
}

void Matcher::Materialize(const PrefixRuns& pr, int i, Run* r) const {
  const Event& first = *pr.events[i];
  r->start_seq = first.seq;
  r->first_ts = first.ts;
  r->aggs.resize(p_->aggs.size());
  for (int j = i; j < pr.n; ++j) Take(r, 0, pr.events[j]);
}

// The prefix runs, oldest first, hold events[i..n-1] and wait at step 0. A run
// with fewer than k events takes any event inside its window, in place: that
// is the prefix pushing e below. The others become Runs here, and the general
// loop of OnEvent decides their fate exactly as for any run: a run outside its
// window for e (it would skip e, or die); a full run (k events) when e could
// take step 1 (else it dies: its next arrow is `=>`). To keep the order of
// runs, every prefix run older than one made a Run is made a Run too.
void Matcher::PrefixBefore(KeyRuns& k, const Event& e) const {
  PrefixRuns& pr = k.prefix;
  if (pr.n == 0) return;
  int upto = 0;  // make Runs of events[0..upto-1]
  for (int i = 0; i < pr.n; ++i) {
    if (e.ts - pr.events[i]->ts > p_->within) upto = i + 1;
  }
  const StepProgram& s1 = p_->steps[1];
  bool full = pr.n == p_->prefix;  // events[0] started a live run (TrimDead)
  if (upto == 0 && full) {
    if (s1.any_type || std::find(s1.type_ids.begin(), s1.type_ids.end(), e.type_id) != s1.type_ids.end()) {
      upto = 1;
    } else {
      pr.PopFront();  // it cannot take e, and `=>` kills it
      pr.TrimDead();
      return;
    }
  }
  for (int i = 0; i < upto; ++i) {
    if (pr.alive & 1) Materialize(pr, 0, &k.runs.emplace_back());
    pr.PopFront();
  }
  pr.TrimDead();
}

bool Matcher::Fits(int step, const Event& e, const Run* run) const {
  const StepProgram& s = p_->steps[step];
  if (!s.any_type) {
    if (std::find(s.type_ids.begin(), s.type_ids.end(), e.type_id) == s.type_ids.end()) return false;
  }
  return s.filter.empty() || EvaluateCondition(s.filter, EvalContext{&e, run, tables_, e.ts, counters_});
}

bool Matcher::WhereHolds(const Run& r, Millis at) const {
  return p_->where.empty() || EvaluateCondition(p_->where, EvalContext{nullptr, &r, tables_, at, counters_});
}

bool Matcher::Killed(const Run& run, const Event& e) const {
  const StepProgram& s = p_->steps[run.step];
  if (run.count >= s.min) {
    for (size_t j = run.step + 1; j < p_->steps.size(); ++j) {
      const StepProgram& next = p_->steps[j];
      if (next.absent) {
        if (Fits(static_cast<int>(j), e, &run)) return true;
        continue;
      }
      if (next.min == 0) continue;
      break;
    }
  }
  return !CanIterate(run) && static_cast<size_t>(run.step) + 1 < p_->steps.size() &&
         p_->steps[run.step + 1].arrow_in == dsl::Arrow::kStrict;
}

void Matcher::Take(Run* r, int step, const EventRef& e) const {
  if (step != r->step) {
    r->step = step;
    r->count = 0;
  }
  ++r->count;
  r->bound.push_back(Bound{e, step});
  for (size_t i = 0; i < p_->aggs.size(); ++i) {
    const AggSpec& a = p_->aggs[i];
    if (a.step == step) r->aggs[i].Add(e->fields[a.slot], a.keep_values);
  }
  r->last_ts = e->ts;
  r->last_seq = e->seq;
  r->contiguous = true;
}

void Matcher::RebuildAggregates(Run* run) const {
  run->aggs.assign(p_->aggs.size(), AggState{});
  for (const auto& b : run->bound) {
    for (size_t i = 0; i < p_->aggs.size(); ++i) {
      const AggSpec& a = p_->aggs[i];
      if (a.step == b.step) run->aggs[i].Add(b.event->fields[a.slot], a.keep_values);
    }
  }
}

void Matcher::Finish(KeyRuns& k, Match m, std::vector<Match>* out) const {
  if (p_->cooldown > 0 && k.alerted && m.detected_at < k.last_alert + p_->cooldown) {
    m.suppressed = true;
  } else {
    k.alerted = true;
    k.last_alert = m.detected_at;
  }
  out->push_back(std::move(m));
}

// Skip policy: the runs (live ones, and completed ones not yet taken as
// matches) that match `m` consumes. "At or before the match's last event" is
// in evaluation order (event time, ties by arrival), never by arrival: a run
// holds an event at or before it exactly when its first event is (bound
// events are taken in evaluation order), so start_seq decides.
void Matcher::Consume(const Run& m, KeyRuns& k, std::vector<Run>* completed, size_t from) const {
  auto drop = [&](auto pred) {
    k.runs.erase(std::remove_if(k.runs.begin(), k.runs.end(), pred), k.runs.end());
    if (completed != nullptr) {
      completed->erase(std::remove_if(completed->begin() + static_cast<std::ptrdiff_t>(from),
                                      completed->end(), pred),
                       completed->end());
    }
  };
  PrefixRuns& pr = k.prefix;
  if (p_->skip == dsl::SkipPolicy::kPastLast) {
    uint64_t last = m.bound.back().event->seq;
    drop([&](const Run& r) { return r.start_seq <= last; });
    // The prefix run started by events[i] holds events[i..n-1].
    for (int i = 0; i < pr.n; ++i) {
      if (pr.events[i]->seq <= last) pr.alive &= static_cast<uint8_t>(~(1u << i));
    }
    pr.TrimDead();
  } else if (p_->skip == dsl::SkipPolicy::kToNext) {
    uint64_t first = m.start_seq;
    drop([&](const Run& r) { return r.start_seq == first; });
    for (int i = 0; i < pr.n; ++i) {
      if (pr.events[i]->seq == first) pr.alive &= static_cast<uint8_t>(~(1u << i));
    }
    pr.TrimDead();
  }
}

bool Matcher::WouldComplete(const Run& r, int step) const {
  if (p_->trailing_absent) return false;
  int count = step == r.step ? r.count + 1 : 1;
  if (count < p_->steps[step].min) return false;
  for (size_t j = step + 1; j < p_->steps.size(); ++j) {
    if (!p_->steps[j].absent && p_->steps[j].min > 0) return false;
  }
  return true;
}

// An event, in the order of section 4.2: every run advanced (oldest first),
// a run started, forks merged beside their origin, completions turned into
// matches by the skip policy, then the limit.
void Matcher::OnEvent(KeyRuns& k, const EventRef& ep, std::vector<Match>* out,
                      MatchStats* stats) const {
  if (UsesSuffix(k)) {
    if (SuffixOnEvent(k, ep, out, stats)) return;
    // The event breaks the plan's assumptions: the key's runs become Runs,
    // and stay Runs until they end.
    SuffixAsRuns(k, &k.runs);
    k.suffix.reset();
  }
  const Event& e = *ep;
  next_.clear();
  extra_at_.clear();
  completed_.clear();
  if (p_->prefix > 0) PrefixBefore(k, e);
  AdvanceRuns(k.runs, ep);
  StartRun(k, ep);
  MergeForks(k.runs);
  // "The run that started first" is the one whose first event came first in
  // evaluation order: `completed` is already in that order, since runs are
  // kept by start_seq, forks sit beside their origin, and a run started by e
  // comes last.
  // Completed runs become matches oldest first; each match consumes runs by
  // the skip policy, completed ones included (so under past_last only the
  // oldest alerts; under to_next one per first event; under none all).
  std::vector<Run>& completed = completed_;
  for (size_t i = 0; i < completed.size(); ++i) {
    Consume(completed[i], k, &completed, i + 1);
    Match m;
    m.detected_at = e.ts;
    m.run = std::move(completed[i]);
    Finish(k, std::move(m), out);
  }
  EnforceLimit(k, stats);
}

// The steps `run` could take `e` at: its own (one more iteration), and the
// next ones up to the first required step, past optional and absent ones,
// while a strict arrow allows it. Returns how many (into candidates).
int Matcher::Candidates(Run& run, const Event& e, int* candidates) const {
  const size_t n = p_->steps.size();
  int nc = 0;
  if (e.ts - run.first_ts > p_->within) return 0;
  if (CanIterate(run) && Fits(run.step, e, &run)) candidates[nc++] = run.step;
  if (run.count >= p_->steps[run.step].min) {
    bool strict = false;
    for (size_t j = run.step + 1; j < n; ++j) {
      const StepProgram& s = p_->steps[j];
      strict |= s.arrow_in == dsl::Arrow::kStrict;
      if (s.absent) continue;
      if ((!strict || run.contiguous) && Fits(static_cast<int>(j), e, &run)) {
        candidates[nc++] = static_cast<int>(j);
      }
      if (s.min > 0) break;
    }
  }
  return nc;
}

void Matcher::AdvanceRuns(std::vector<Run>& runs, const EventRef& ep) const {
  const Event& e = *ep;
  std::vector<Run>& extra = next_;  // forks, each placed after `extra_at_[i]` kept runs
  std::vector<Run>& completed = completed_;
  int candidates[64];
  // Runs are rewritten in place (w <= i): a run that skips the event is not
  // even moved unless an earlier run died. Forks are rare and merged after.
  size_t w = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    Run& run = runs[i];
    int nc = Candidates(run, e, candidates);
    if (nc == 0) {
      // The run skips e, or dies.
      if (Killed(run, e)) continue;
      if (strict_) run.contiguous = false;
      if (w != i) runs[w] = std::move(run);
      ++w;
      continue;
    }
    // Candidates that cannot complete are taken without question; one that
    // would complete is tried on a copy, since `where` may refuse it.
    bool kept_original = false;  // `run` itself now holds a successor
    bool took = false;
    for (int c = 0; c < nc; ++c) {
      int step = candidates[c];
      bool last = c + 1 == nc;
      if (!WouldComplete(run, step)) {
        if (last) {
          Take(&run, step, ep);
          if (w != i) runs[w] = std::move(run);
          ++w;
          kept_original = true;
        } else {
          extra.push_back(run);
          Take(&extra.back(), step, ep);
          extra_at_.push_back(w);  // placed before the run's own successor
        }
        took = true;
        continue;
      }
      Run r = run;
      Take(&r, step, ep);
      if (WhereHolds(r, ep->ts)) {
        completed.push_back(std::move(r));
        took = true;
      } else if (CanIterate(r)) {
        extra.push_back(std::move(r));
        extra_at_.push_back(w);
        took = true;
      }  // else refused
    }
    if (kept_original) continue;
    if (!took) {
      // Every way of taking e was refused by `where`: keep waiting without it.
      if (strict_) run.contiguous = false;
      if (w != i) runs[w] = std::move(run);
      ++w;
    }
  }
  runs.resize(w);
}

void Matcher::StartRun(KeyRuns& k, const EventRef& ep) const {
  const Event& e = *ep;
  std::vector<Run>& runs = k.runs;
  std::vector<Run>& completed = completed_;
  // Start a new run with e. It is built in place at the end of `runs` (the
  // forks are merged in front of it by MergeForks), the common case, and
  // taken out again only when it completes at once or is refused.
  bool starts = !(p_->skip == dsl::SkipPolicy::kPastLast && !completed.empty()) && Fits(0, e, nullptr);
  if (p_->prefix > 0) {
    // Every prefix run left takes e (PrefixBefore), and e starts one.
    if (k.prefix.n > 0 || starts) k.prefix.Push(ep, starts);
    k.prefix.TrimDead();
  } else if (starts) {
    Run& r = runs.emplace_back();
    r.start_seq = e.seq;
    r.first_ts = e.ts;
    r.aggs.resize(p_->aggs.size());
    bool completes = WouldComplete(r, 0);
    Take(&r, 0, ep);
    if (completes) {
      if (WhereHolds(r, ep->ts)) {
        completed.push_back(std::move(r));
        runs.pop_back();
      } else if (!CanIterate(r)) {
        runs.pop_back();
      }
    }
  }
}

// The forks of AdvanceRuns: extra[j] goes before the run at position
// extra_at_[j] (a run StartRun began is the last, after the forks placed at
// the end).
void Matcher::MergeForks(std::vector<Run>& runs) const {
  std::vector<Run>& extra = next_;
  if (extra.empty()) return;
  if (extra.size() == 1 && extra_at_[0] == runs.size()) {
    runs.push_back(std::move(extra[0]));
    return;
  }
  std::vector<Run> merged;
  merged.reserve(runs.size() + extra.size());
  size_t j = 0;
  for (size_t r = 0; r <= runs.size(); ++r) {
    while (j < extra.size() && extra_at_[j] == r) merged.push_back(std::move(extra[j++]));
    if (r < runs.size()) merged.push_back(std::move(runs[r]));
  }
  runs.swap(merged);
}

// Past `limit`, the oldest runs go: the key's Runs first, then the prefix's.
void Matcher::EnforceLimit(KeyRuns& k, MatchStats* stats) const {
  if (k.size() <= static_cast<size_t>(p_->limit)) return;
  std::vector<Run>& runs = k.runs;
  size_t drop = k.size() - static_cast<size_t>(p_->limit);
  stats->evicted += drop;
  size_t from_runs = std::min(drop, runs.size());
  runs.erase(runs.begin(), runs.begin() + static_cast<std::ptrdiff_t>(from_runs));
  for (size_t d = from_runs; d < drop; ++d) {
    k.prefix.alive &= static_cast<uint8_t>(k.prefix.alive - 1);  // the oldest live one
  }
  k.prefix.TrimDead();
}

void Matcher::CloseWindows(KeyRuns& k, Millis t, std::vector<Match>* out) const {
  if (k.suffix) {
    // One-step patterns: runs only close (never complete by absence).
    SuffixRuns& s = *k.suffix;
    if (s.sequence) {
      while (!s.starts.empty() && s.start(0).ts + p_->within < t) SequencePop(s);
    } else {
      while (!s.events.empty() && s.events.front()->ts + p_->within < t) SuffixPop(s);
    }
    if (s.runs() == 0 && pool_.size() < kSuffixPool) pool_.push_back(std::move(k.suffix));
  }
  size_t closed = 0;
  while (closed < k.runs.size() && k.runs[closed].first_ts + p_->within < t) ++closed;
  if (closed == k.runs.size()) {
    // Then the prefix runs (never complete by absence: step 1 is required).
    PrefixRuns& pr = k.prefix;
    while (pr.n > 0 && pr.events[0]->ts + p_->within < t) {
      pr.PopFront();
      pr.TrimDead();
    }
  }
  if (closed == 0) return;
  if (!p_->trailing_absent) {
    // No run completes when its window closes: they are only dropped.
    k.runs.erase(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(closed));
    return;
  }
  // Take the closed runs out first: an absence match may consume later runs.
  std::vector<Run>& done = completed_;
  done.clear();
  std::move(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(closed), std::back_inserter(done));
  k.runs.erase(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(closed));
  for (size_t i = 0; i < done.size(); ++i) {
    Run& r = done[i];
    if (r.bound.empty() || r.count < p_->steps[r.step].min) continue;  // empty: consumed below
    bool waiting_on_absent_only = true;
    for (size_t j = r.step + 1; j < p_->steps.size(); ++j) {
      if (!p_->steps[j].absent && p_->steps[j].min > 0) waiting_on_absent_only = false;
    }
    if (!waiting_on_absent_only || !WhereHolds(r, r.first_ts + p_->within)) continue;
    // Consume among the live runs and the closed ones not yet looked at.
    Consume(r, k, nullptr, 0);
    uint64_t last = r.bound.back().event->seq;
    for (size_t j = i + 1; j < done.size(); ++j) {
      bool gone = p_->skip == dsl::SkipPolicy::kPastLast ? done[j].start_seq <= last
                  : p_->skip == dsl::SkipPolicy::kToNext ? done[j].start_seq == r.start_seq
                                                         : false;
      if (gone) done[j].bound.clear();
    }
    Match m;
    m.absence = true;
    m.detected_at = r.first_ts + p_->within;
    m.run = std::move(r);
    Finish(k, std::move(m), out);
  }
}

// ---- runs in one shared buffer (Program::suffix) -------------------------
//
// Why the oldest run is enough. Under past_last, a match drops every run (all
// hold an event at or before the event that completed it), and the match is
// the oldest run that completes. kAll: the run started by events[i] holds
// events[i..], a superset of every younger run's events, so with a monotone
// `where` (and count >= min, which grows too) a younger run can complete only
// when the oldest does. kDistinct: the oldest run holds one event per distinct
// value of the buffer, so it has at least as many as any younger run, and all
// of them grow by one at a time: a younger run reaching `min` means the oldest
// reaches it on the same event. So each event updates the buffer and the
// oldest run's aggregates and tests one run. Windows close oldest first, and
// the limit evicts oldest first, both by popping the buffer's front.

namespace {

// The text that identifies a value for kDistinct: `not in` compares with
// Equal (a string never equals a number, -0 equals 0). False for a list.
bool DistinctKey(const Value& v, std::string* out) {
  out->clear();
  switch (v.kind) {
    case Value::Kind::kString:
      out->push_back('s');
      out->append(v.str());
      return true;
    case Value::Kind::kNumber: {
      double d = v.number == 0 ? 0.0 : v.number;
      out->push_back('n');
      out->append(reinterpret_cast<const char*>(&d), sizeof d);
      return true;
    }
    case Value::Kind::kBool:
      out->push_back(v.boolean ? 't' : 'f');
      return true;
    default:
      return false;
  }
}

const Value& FieldAt(const Event& e, int32_t slot) {
  static const Value kNull = Value::Null();
  return slot >= 0 && static_cast<size_t>(slot) < e.fields.size() ? e.fields[static_cast<size_t>(slot)] : kNull;
}

}  // namespace

void Matcher::SuffixPush(SuffixRuns& s, const EventRef& e, const std::string& key) const {
  const SuffixPlan& plan = p_->suffix;
  s.events.push_back(e);
  ++s.operations;
  if (plan.kind == SuffixPlan::Kind::kDistinct) {
    ++s.values[key];
    return;
  }
  size_t i = 0;
  for (int32_t a : plan.sum_aggs) {
    const Value& v = FieldAt(*e, p_->aggs[static_cast<size_t>(a)].slot);
    SuffixRuns::Sliding& sl = s.sliding[i++];
    if (v.kind != Value::Kind::kNumber) continue;
    sl.pushed += v.number;
    sl.magnitude += std::fabs(v.number);
    ++sl.numbers;
  }
  for (int32_t a : plan.extreme_aggs) {
    const Value& v = FieldAt(*e, p_->aggs[static_cast<size_t>(a)].slot);
    SuffixRuns::Sliding& sl = s.sliding[i++];
    if (v.kind != Value::Kind::kNumber) continue;
    while (!sl.max.empty() && sl.max.back().first <= v.number) sl.max.pop_back();
    sl.max.emplace_back(v.number, e->seq);
    while (!sl.min.empty() && sl.min.back().first >= v.number) sl.min.pop_back();
    sl.min.emplace_back(v.number, e->seq);
  }
}

void Matcher::SuffixPop(SuffixRuns& s) const {
  const SuffixPlan& plan = p_->suffix;
  EventRef e = std::move(s.events.front());
  s.events.pop_front();
  ++s.operations;
  if (plan.kind == SuffixPlan::Kind::kDistinct) {
    std::string key;
    if (DistinctKey(FieldAt(*e, plan.distinct_slot), &key)) {
      auto it = s.values.find(key);
      if (it != s.values.end() && --it->second == 0) s.values.erase(it);
    }
  } else {
    size_t i = 0;
    for (int32_t a : plan.sum_aggs) {
      const Value& v = FieldAt(*e, p_->aggs[static_cast<size_t>(a)].slot);
      SuffixRuns::Sliding& sl = s.sliding[i++];
      if (v.kind != Value::Kind::kNumber) continue;
      sl.popped += v.number;
      --sl.numbers;
    }
    for (size_t j = 0; j < plan.extreme_aggs.size(); ++j) {
      SuffixRuns::Sliding& sl = s.sliding[i++];
      if (!sl.max.empty() && sl.max.front().second == e->seq) sl.max.pop_front();
      if (!sl.min.empty() && sl.min.front().second == e->seq) sl.min.pop_front();
    }
  }
  if (s.events.empty()) {
    // Start the sums again, so their rounding error does not grow forever.
    for (auto& sl : s.sliding) sl = SuffixRuns::Sliding{};
    s.values.clear();
    s.operations = 0;
  }
}

// The value of a node of `where` for the oldest run. A sum is kept as the
// difference of two running sums; *error receives a bound on how far that
// may be from the sum AggState computes (left to right over the run's
// events), or is left alone when the value is exact.
Value Matcher::SuffixValue(const SuffixRuns& s, int32_t node, double* error) const {
  const Node& n = p_->where.nodes[static_cast<size_t>(node)];
  const SuffixPlan& plan = p_->suffix;
  switch (n.op) {
    case Op::kConst: return n.constant;
    case Op::kCount: return Value::Number(static_cast<double>(s.events.size()));
    case Op::kSum: {
      size_t i = static_cast<size_t>(std::find(plan.sum_aggs.begin(), plan.sum_aggs.end(), n.agg) - plan.sum_aggs.begin());
      const SuffixRuns::Sliding& sl = s.sliding[i];
      if (error == nullptr) {
        // Exact: as AggState adds them.
        double sum = 0;
        int32_t slot = p_->aggs[static_cast<size_t>(n.agg)].slot;
        for (const EventRef& e : s.events) {
          const Value& v = FieldAt(*e, slot);
          if (v.kind == Value::Kind::kNumber) sum += v.number;
        }
        return Value::Number(sum);
      }
      // Each of the two running sums, and each partial sum of the run's own,
      // is off by at most (terms) * 2^-53 * (sum of magnitudes).
      *error += 4.0 * static_cast<double>(s.operations + 2) * 0x1.0p-53 * sl.magnitude;
      return Value::Number(sl.pushed - sl.popped);
    }
    case Op::kMax: case Op::kMin: {
      size_t i = plan.sum_aggs.size() +
                 static_cast<size_t>(std::find(plan.extreme_aggs.begin(), plan.extreme_aggs.end(), n.agg) -
                                     plan.extreme_aggs.begin());
      const auto& q = n.op == Op::kMax ? s.sliding[i].max : s.sliding[i].min;
      return q.empty() ? Value::Null() : Value::Number(q.front().first);
    }
    default: return Value::Null();
  }
}

bool Matcher::SuffixWhere(const SuffixRuns& s, int32_t node) const {
  const Node& n = p_->where.nodes[static_cast<size_t>(node)];
  switch (n.op) {
    case Op::kAnd: return SuffixWhere(s, n.a) && SuffixWhere(s, n.b);
    case Op::kOr: return SuffixWhere(s, n.a) || SuffixWhere(s, n.b);
    default: break;
  }
  double error = 0;
  Value a = SuffixValue(s, n.a, &error), b = SuffixValue(s, n.b, &error);
  if (a.kind != Value::Kind::kNumber || b.kind != Value::Kind::kNumber) return false;
  if (error > 0 && std::fabs(a.number - b.number) <= error) {
    a = SuffixValue(s, n.a, nullptr);
    b = SuffixValue(s, n.b, nullptr);
  }
  switch (n.op) {
    case Op::kGt: return a.number > b.number;
    case Op::kGe: return a.number >= b.number;
    case Op::kLt: return a.number < b.number;
    case Op::kLe: return a.number <= b.number;
    default: return false;
  }
}

void Matcher::SuffixRun(const SuffixRuns& s, size_t from, Run* r) const {
  const Event& first = *s.events[from];
  r->start_seq = first.seq;
  r->first_ts = first.ts;
  r->aggs.resize(p_->aggs.size());
  if (p_->suffix.kind == SuffixPlan::Kind::kAll) {
    for (size_t i = from; i < s.events.size(); ++i) Take(r, 0, s.events[i]);
    return;
  }
  std::unordered_set<std::string> seen;
  std::string key;
  for (size_t i = from; i < s.events.size(); ++i) {
    DistinctKey(FieldAt(*s.events[i], p_->suffix.distinct_slot), &key);
    if (seen.insert(key).second) {
      Take(r, 0, s.events[i]);
    } else if (strict_) {
      r->contiguous = false;
    }
  }
}

void Matcher::SuffixAsRuns(const KeyRuns& k, std::vector<Run>* out) const {
  if (!k.suffix) return;
  for (size_t i = 0; i < k.suffix->runs(); ++i) {
    if (k.suffix->sequence) {
      SequenceRun(*k.suffix, i, &out->emplace_back());
    } else {
      SuffixRun(*k.suffix, i, &out->emplace_back());
    }
  }
}

// Buffers come from a pool: most keys hold a few events for a while, and a
// buffer taken back keeps its memory.
SuffixRuns& Matcher::Buffer(KeyRuns& k) const {
  if (!k.suffix) {
    if (pool_.empty()) {
      k.suffix = std::make_unique<SuffixRuns>();
      k.suffix->sliding.resize(p_->suffix.sum_aggs.size() + p_->suffix.extreme_aggs.size());
      k.suffix->sequence = p_->suffix.kind == SuffixPlan::Kind::kSequence;
      if (k.suffix->sequence) k.suffix->cut.assign(p_->steps.size(), 0);
    } else {
      k.suffix = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  return *k.suffix;
}

// ---- kSequence ------------------------------------------------------------
//
// `a -> b -> c` with filters that read no bound name and no `where`: a run at
// step k takes an event exactly when it fits step k+1, the same for every run
// at step k, so an event moves the whole block of runs at step k to step k+1.
// The runs further on started earlier (a run that started before another,
// and was at the same step, took everything the other took), so the blocks
// lie in order in `starts`: the runs at step >= k are a prefix, which cut[k]
// ends. An event costs one test per step. A run's bound events are not kept:
// it took, after its first event, the first event that fit step 1, then the
// first after that one that fit step 2, and so on, which the buffer replays
// when a run is needed whole (an alert, the state record).

void Matcher::SequencePop(SuffixRuns& s) const {
  s.starts.pop_front();
  ++s.runs_popped;
  if (s.starts.empty()) {
    s.events.clear();
    s.fits.clear();
    s.events_popped = s.runs_popped = 0;
    std::fill(s.cut.begin(), s.cut.end(), 0);
    return;
  }
  while (s.events_popped < s.starts.front()) {
    s.events.pop_front();
    s.fits.pop_front();
    ++s.events_popped;
  }
}

void Matcher::SequenceRun(const SuffixRuns& s, size_t i, Run* r) const {
  // The run's step: the largest k with the run among those at step >= k.
  uint64_t number = s.runs_popped + i;
  int step = 0;
  for (size_t k = p_->steps.size() - 1; k >= 1; --k) {
    if (number < std::max(s.cut[k], s.runs_popped)) {
      step = static_cast<int>(k);
      break;
    }
  }
  size_t at = static_cast<size_t>(s.starts[i] - s.events_popped);
  const Event& first = *s.events[at];
  r->start_seq = first.seq;
  r->first_ts = first.ts;
  r->aggs.resize(p_->aggs.size());
  Take(r, 0, s.events[at]);
  for (size_t j = at + 1; j < s.events.size() && r->step < step; ++j) {
    if (s.fits[j] >> (r->step + 1) & 1) Take(r, r->step + 1, s.events[j]);
  }
}

void Matcher::SequenceOnEvent(KeyRuns& k, const EventRef& ep, std::vector<Match>* out, MatchStats* stats) const {
  const Event& e = *ep;
  const size_t n = p_->steps.size();
  uint32_t fits = 0;
  for (size_t j = 0; j < n; ++j) {
    const StepProgram& st = p_->steps[j];
    if (!st.any_type && std::find(st.type_ids.begin(), st.type_ids.end(), e.type_id) == st.type_ids.end()) continue;
    if (st.filter.empty() || EvaluateCondition(st.filter, EvalContext{&e, nullptr, tables_, e.ts, counters_})) fits |= 1u << j;
  }
  if (fits == 0) return;  // every run skips e (no `=>`, no absent step), and e starts none
  if (!k.suffix && !(fits & 1)) return;
  SuffixRuns& s = Buffer(k);
  // Runs outside their window for e (the engine has closed them already).
  while (!s.starts.empty() && e.ts - s.start(0).ts > p_->within) SequencePop(s);
  const uint64_t front = s.runs_popped, end = front + s.starts.size();
  auto upto = [&](size_t step) { return step == 0 ? end : std::max(s.cut[step], front); };
  for (size_t step = n - 1; step-- > 0;) {  // the block at `step` is [upto(step + 1), upto(step))
    if (!(fits >> (step + 1) & 1) || upto(step + 1) >= upto(step)) continue;
    if (step + 1 < n - 1) {
      s.cut[step + 1] = upto(step);
      continue;
    }
    // The block at the last step but one completes: its oldest run, the
    // oldest of all, is the match, and past_last drops every run.
    Match m;
    m.detected_at = e.ts;
    SequenceRun(s, 0, &m.run);
    Take(&m.run, static_cast<int>(n - 1), ep);
    while (!s.starts.empty()) SequencePop(s);
    if (pool_.size() < kSuffixPool) pool_.push_back(std::move(k.suffix));
    Finish(k, std::move(m), out);
    return;
  }
  if (fits & 1) s.starts.push_back(s.events_popped + s.events.size());
  if (s.starts.empty()) return;
  s.events.push_back(ep);
  s.fits.push_back(fits);
  if (s.starts.size() > static_cast<size_t>(p_->limit)) {
    size_t drop = s.starts.size() - static_cast<size_t>(p_->limit);
    stats->evicted += drop;
    for (size_t i = 0; i < drop; ++i) SequencePop(s);
  }
}

bool Matcher::SuffixOnEvent(KeyRuns& k, const EventRef& ep, std::vector<Match>* out, MatchStats* stats) const {
  if (p_->suffix.kind == SuffixPlan::Kind::kSequence) {
    SequenceOnEvent(k, ep, out, stats);
    return true;
  }
  const Event& e = *ep;
  const SuffixPlan& plan = p_->suffix;
  const StepProgram& step = p_->steps[0];
  if (!step.any_type && std::find(step.type_ids.begin(), step.type_ids.end(), e.type_id) == step.type_ids.end()) {
    return true;  // no run takes e, none starts
  }
  // Does e fit the step? (Then every run takes it, or for kDistinct the
  // runs that have not bound its value.)
  std::string key;  // kDistinct: e's value
  if (plan.kind == SuffixPlan::Kind::kAll) {
    if (!step.filter.empty() && !EvaluateCondition(step.filter, EvalContext{&e, nullptr, tables_, e.ts, counters_})) return true;
    for (int32_t a : plan.sum_aggs) {
      const Value& v = FieldAt(e, p_->aggs[static_cast<size_t>(a)].slot);
      if (v.kind == Value::Kind::kNumber && v.number < 0) return false;  // sums no longer only grow
    }
  } else {
    for (const CompiledExpr& c : conjuncts_) {
      if (!EvaluateCondition(c, EvalContext{&e, nullptr, tables_, e.ts, counters_})) return true;
    }
    const Value& x = FieldAt(e, plan.distinct_slot);
    if (x.is_null()) return true;  // `null not in ...` is false: no run takes e, none starts
    if (!DistinctKey(x, &key)) return false;
  }
  SuffixRuns& s = Buffer(k);
  // Runs outside their window for e (the engine has closed them already).
  while (!s.events.empty() && e.ts - s.events.front()->ts > p_->within) SuffixPop(s);
  bool completes;
  if (plan.kind == SuffixPlan::Kind::kAll) {
    SuffixPush(s, ep, key);
    completes = s.events.size() >= static_cast<size_t>(step.min) &&
                (p_->where.empty() || SuffixWhere(s, p_->where.root));
  } else {
    bool fresh = s.values.find(key) == s.values.end();  // the oldest run takes e
    SuffixPush(s, ep, key);
    completes = fresh && s.values.size() >= static_cast<size_t>(step.min);
  }
  if (completes) {
    Match m;
    m.detected_at = e.ts;
    SuffixRun(s, 0, &m.run);
    while (!s.events.empty()) SuffixPop(s);  // past_last: every run held an event at or before e
    if (pool_.size() < kSuffixPool) pool_.push_back(std::move(k.suffix));
    Finish(k, std::move(m), out);
    return true;
  }
  if (s.events.size() > static_cast<size_t>(p_->limit)) {
    size_t drop = s.events.size() - static_cast<size_t>(p_->limit);
    stats->evicted += drop;
    for (size_t i = 0; i < drop; ++i) SuffixPop(s);
  }
  return true;
}

}  // namespace cepheus::nfa

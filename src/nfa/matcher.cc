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
// event may start a new run. Completed runs become matches in the order their
// first events arrived; each match consumes other runs by the skip policy,
// cooldown marks suppressed alerts, and the limit evicts the oldest runs.
//
// Runs stay ordered by first event, so the earliest window to close is always
// the first run's: the engine needs only NextDeadline() to schedule closings.
// The common case (a run with one candidate) moves the run, never copies it;
// only forks copy. The run lists are rebuilt into reused scratch vectors, so
// the steady state allocates nothing here.
#include "cepheus/nfa/matcher.h"

#include <algorithm>

#include "nfa/eval.h"

namespace cepheus::nfa {

bool Matcher::Fits(int step, const Event& e, const Run* run) const {
  const StepProgram& s = p_->steps[step];
  if (!s.any_type) {
    if (std::find(s.type_ids.begin(), s.type_ids.end(), e.type_id) == s.type_ids.end()) return false;
  }
  return s.filter.empty() || EvaluateCondition(s.filter, EvalContext{&e, run});
}

bool Matcher::Complete(const Run& r) const {
  if (p_->trailing_absent) return false;
  if (r.count < p_->steps[r.step].min) return false;
  for (size_t j = r.step + 1; j < p_->steps.size(); ++j) {
    if (!p_->steps[j].absent && p_->steps[j].min > 0) return false;
  }
  return true;
}

bool Matcher::WhereHolds(const Run& r) const {
  return p_->where.empty() || EvaluateCondition(p_->where, EvalContext{nullptr, &r});
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
  r->min_arrival = std::min(r->min_arrival, e->arrival);
  r->contiguous = true;
}

void Matcher::RebuildAggregates(Run* run) const {
  run->min_arrival = UINT64_MAX;
  run->aggs.assign(p_->aggs.size(), AggState{});
  for (const auto& b : run->bound) {
    run->min_arrival = std::min(run->min_arrival, b.event->arrival);
    if (b.event->seq == run->start_seq) run->start_arrival = b.event->arrival;
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
// by arrival: with out-of-order input, an event that arrived before the last
// event belongs to the incident even when its time is later.
void Matcher::Consume(const Run& m, KeyRuns& k, std::vector<Run>* completed, size_t from) const {
  auto drop = [&](auto pred) {
    k.runs.erase(std::remove_if(k.runs.begin(), k.runs.end(), pred), k.runs.end());
    if (completed != nullptr) {
      completed->erase(std::remove_if(completed->begin() + static_cast<std::ptrdiff_t>(from),
                                      completed->end(), pred),
                       completed->end());
    }
  };
  if (p_->skip == dsl::SkipPolicy::kPastLast) {
    uint64_t last = m.bound.back().event->arrival;
    k.start_barrier = std::max(k.start_barrier, last);
    drop([&](const Run& r) { return r.min_arrival <= last; });
  } else if (p_->skip == dsl::SkipPolicy::kToNext) {
    uint64_t first = m.start_seq;
    drop([&](const Run& r) { return r.start_seq == first; });
  }
}

void Matcher::OnEvent(KeyRuns& k, const EventRef& ep, std::vector<Match>* out,
                      MatchStats* stats) const {
  const Event& e = *ep;
  const size_t n = p_->steps.size();
  std::vector<Run>& next = next_;
  std::vector<Run>& completed = completed_;
  next.clear();
  completed.clear();
  int candidates[64];

  // Decides what happens to a run that took `e`: completes, goes on, or (when
  // `where` fails and the step is full) is refused.
  auto settle = [&](Run&& r) {
    if (!Complete(r)) {
      next.push_back(std::move(r));
      return true;
    }
    if (WhereHolds(r)) {
      completed.push_back(std::move(r));
      return true;
    }
    if (CanIterate(r)) {
      next.push_back(std::move(r));
      return true;
    }
    return false;
  };

  for (Run& run : k.runs) {
    int nc = 0;
    if (e.ts - run.first_ts <= p_->within) {
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
    }
    bool took = false;
    for (int c = 0; c < nc; ++c) {
      // Without `where` no candidate can be refused, so the last may steal the run.
      Run r = c + 1 == nc && p_->where.empty() ? std::move(run) : run;
      Take(&r, candidates[c], ep);
      took |= settle(std::move(r));
    }
    if (took) continue;
    // No way to take e (or every way refused by `where`): the run skips e.
    if (nc == 0 && Killed(run, e)) continue;
    run.contiguous = false;
    next.push_back(std::move(run));
  }

  // Start a new run with e.
  if (e.arrival > k.start_barrier &&
      !(p_->skip == dsl::SkipPolicy::kPastLast && !completed.empty()) && Fits(0, e, nullptr)) {
    Run r;
    r.start_seq = e.seq;
    r.start_arrival = e.arrival;
    r.first_ts = e.ts;
    r.aggs.assign(p_->aggs.size(), AggState{});
    Take(&r, 0, ep);
    settle(std::move(r));
  }

  k.runs.swap(next);
  // "The run that started first" is the one whose first event arrived first
  // (with out-of-order input a run can start on an event that arrived later
  // than another run's first event but has an earlier time).
  if (completed.size() > 1) {
    std::stable_sort(completed.begin(), completed.end(),
                     [](const Run& a, const Run& b) { return a.start_arrival < b.start_arrival; });
  }
  // Completed runs become matches oldest first; each match consumes runs by
  // the skip policy, completed ones included (so under past_last only the
  // oldest alerts; under to_next one per first event; under none all).
  for (size_t i = 0; i < completed.size(); ++i) {
    Consume(completed[i], k, &completed, i + 1);
    Match m;
    m.detected_at = e.ts;
    m.run = std::move(completed[i]);
    Finish(k, std::move(m), out);
  }
  if (k.runs.size() > static_cast<size_t>(p_->limit)) {
    size_t drop = k.runs.size() - static_cast<size_t>(p_->limit);
    k.runs.erase(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(drop));
    stats->evicted += drop;
  }
}

void Matcher::CloseWindows(KeyRuns& k, Millis t, std::vector<Match>* out) const {
  size_t closed = 0;
  while (closed < k.runs.size() && k.runs[closed].first_ts + p_->within < t) ++closed;
  if (closed == 0) return;
  // Take the closed runs out first: an absence match may consume later runs.
  std::vector<Run>& done = completed_;
  done.clear();
  std::move(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(closed), std::back_inserter(done));
  k.runs.erase(k.runs.begin(), k.runs.begin() + static_cast<std::ptrdiff_t>(closed));
  if (!p_->trailing_absent) return;
  for (size_t i = 0; i < done.size(); ++i) {
    Run& r = done[i];
    if (r.bound.empty() || r.count < p_->steps[r.step].min) continue;  // empty: consumed below
    bool waiting_on_absent_only = true;
    for (size_t j = r.step + 1; j < p_->steps.size(); ++j) {
      if (!p_->steps[j].absent && p_->steps[j].min > 0) waiting_on_absent_only = false;
    }
    if (!waiting_on_absent_only || !WhereHolds(r)) continue;
    // Consume among the live runs and the closed ones not yet looked at.
    Consume(r, k, nullptr, 0);
    uint64_t last = r.bound.back().event->arrival;
    for (size_t j = i + 1; j < done.size(); ++j) {
      bool gone = p_->skip == dsl::SkipPolicy::kPastLast ? done[j].min_arrival <= last
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

}  // namespace cepheus::nfa

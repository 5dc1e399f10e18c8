// The engine: reorder buffer, watermark, timers and per-key dispatch.
//
// Events wait in a min-heap keyed by (ts, arrival) until the watermark
// (largest ts seen minus the allowed out-of-orderness) reaches them. Window
// closings wait in a second min-heap of (deadline, key): each key has at most
// one live timer, for the earliest deadline of its runs (runs are ordered by
// first event, so that is the first run's); stale heap entries are skipped
// when popped, and counted so a key is only forgotten when no entry points at
// it. Releasing an event first pops every timer whose deadline is before the
// event's time, which gives the spec's "windows and events in time order".
#include "cepheus/engine/engine.h"

#include <fmt/format.h>

namespace cepheus::engine {

Engine::Engine(std::shared_ptr<const nfa::CompiledRuleSet> rules, EngineOptions options,
               AlertSink* sink)
    : rules_(std::move(rules)), options_(options), sink_(sink) {
  for (const auto& p : rules_->programs) states_.push_back(RuleState{p.get(), nfa::Matcher(p.get()), {}});
  stats_.rules.resize(states_.size());
}

Engine::~Engine() = default;

int64_t Engine::active_keys() const {
  int64_t n = 0;
  for (const auto& s : states_) n += static_cast<int64_t>(s.keys.size());
  return n;
}

int64_t Engine::active_runs() const {
  int64_t n = 0;
  for (const auto& r : stats_.rules) n += r.runs;
  return n;
}

void Engine::Push(nfa::EventRef e) {
  ++stats_.received;
  e->arrival = ++arrival_;
  if (e->ts < watermark_) {
    ++stats_.late;
    if (sink_) sink_->Late(*e);
    return;
  }
  if (e->ts > max_ts_) {
    max_ts_ = e->ts;
    if (max_ts_ - options_.out_of_order > watermark_) watermark_ = max_ts_ - options_.out_of_order;
  }
  buffer_.push(Buffered{std::move(e)});
  Drain();
}

void Engine::AdvanceWatermark(Millis w) {
  if (w <= watermark_) return;
  watermark_ = w;
  Drain();
}

void Engine::Drain() {
  while (!buffer_.empty() && buffer_.top().e->ts <= watermark_) {
    nfa::EventRef e = buffer_.top().e;
    buffer_.pop();
    CloseUntil(e->ts);
    Evaluate(e);
  }
  CloseUntil(watermark_);
}

void Engine::CloseUntil(Millis t) {
  while (!timers_.empty() && timers_.top().at < t) {
    Timer tm = timers_.top();
    timers_.pop();
    RuleState& rs = states_[tm.rule];
    auto it = rs.keys.find(std::string_view(tm.key));
    if (it == rs.keys.end() || it->second.timer_at != tm.at) continue;  // stale
    KeyState* ks = &it->second;
    ks->timer_at = kMaxTime;
    int64_t before = static_cast<int64_t>(ks->runs.runs.size());
    matches_.clear();
    rs.matcher.CloseWindows(ks->runs, tm.at + 1, &matches_);
    stats_.rules[tm.rule].runs += static_cast<int64_t>(ks->runs.runs.size()) - before;
    if (!matches_.empty()) Publish(tm.rule, *ks->key, &matches_);
    Settle(tm.rule, ks, tm.at + 1);
  }
}

void Engine::Evaluate(const nfa::EventRef& e) {
  e->seq = ++seq_;
  ++stats_.evaluated;
  for (uint32_t r = 0; r < states_.size(); ++r) {
    RuleState& rs = states_[r];
    if (!rs.matcher.Relevant(*e)) continue;
    if (!KeyText(e->fields[rs.program->key_slot], &key_)) continue;
    auto it = rs.keys.find(std::string_view(key_));
    if (it == rs.keys.end()) {
      if (!rs.matcher.Starts(*e)) continue;  // nothing to do for a key with no state
      it = rs.keys.emplace(key_, KeyState{}).first;
      it->second.key = &it->first;
      ++stats_.rules[r].keys;
    }
    KeyState* ks = &it->second;
    int64_t before = static_cast<int64_t>(ks->runs.runs.size());
    matches_.clear();
    nfa::MatchStats ms;
    uint64_t barrier = ks->runs.start_barrier;
    rs.matcher.OnEvent(ks->runs, e, &matches_, &ms);
    if (ks->runs.start_barrier != barrier && !buffer_.empty()) {
      // Events that arrived before the match may still be buffered: they are
      // all released once the watermark passes the largest time seen now.
      ks->runs.barrier_until = max_ts_;
    }
    stats_.rules[r].evicted += ms.evicted;
    stats_.rules[r].runs += static_cast<int64_t>(ks->runs.runs.size()) - before;
    if (!matches_.empty()) Publish(r, *ks->key, &matches_);
    Settle(r, ks, e->ts);
  }
}

bool Engine::Needed(const nfa::Program& p, const nfa::KeyRuns& k, Millis now) const {
  if (!k.runs.empty()) return true;
  if (p.cooldown > 0 && k.alerted && k.last_alert + p.cooldown > now) return true;
  return k.barrier_until >= now;
}

bool Engine::Settle(uint32_t rule, KeyState* ks, Millis now) {
  RuleState& rs = states_[rule];
  const nfa::Program& p = *rs.program;
  if (!Needed(p, ks->runs, now)) {
    std::string key = *ks->key;
    rs.keys.erase(key);
    --stats_.rules[rule].keys;
    return false;
  }
  Millis wake = rs.matcher.NextDeadline(ks->runs);
  if (ks->runs.runs.empty()) {
    // Kept only for its cooldown or barrier: wake when that ends.
    wake = std::max(p.cooldown > 0 && ks->runs.alerted ? ks->runs.last_alert + p.cooldown : kMinTime,
                    ks->runs.barrier_until);
  }
  if (wake < ks->timer_at) {
    ks->timer_at = wake;
    timers_.push(Timer{wake, ++timer_order_, rule, *ks->key});
  }
  return true;
}

void Engine::Publish(uint32_t rule, const std::string& key, std::vector<nfa::Match>* matches) {
  const nfa::Program& p = *states_[rule].program;
  for (const auto& m : *matches) {
    if (m.suppressed) {
      ++stats_.rules[rule].suppressed;
      continue;
    }
    ++stats_.rules[rule].alerts;
    ++stats_.alerts;
    if (sink_) sink_->Publish(MakeAlert(p, key, m));
  }
}

}  // namespace cepheus::engine

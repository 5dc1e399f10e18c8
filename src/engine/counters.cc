// Counters (section 6.2): per key, buckets of the counter's resolution in a
// two-stack sliding window (see counters.h), so an event costs O(1) whatever
// the counter's `over`; distinct keeps each value's newest bucket and the
// values by bucket, so the values that fall out are dropped bucket by bucket.
#include "engine/counters.h"

#include <algorithm>
#include <cstring>

#include "cepheus/engine/state_codec.h"
#include "engine/state_format.h"

namespace cepheus::engine {

void CounterState::Agg::Add(double v) {
  if (count == 0) {
    min = max = v;
  } else {
    min = std::min(min, v);
    max = std::max(max, v);
  }
  count += 1;
  sum += v;
}

CounterState::Agg CounterState::Agg::Combine(const Agg& older, const Agg& newer) {
  if (older.count == 0) return newer;
  if (newer.count == 0) return older;
  Agg a;
  a.count = older.count + newer.count;
  a.sum = older.sum + newer.sum;
  a.min = std::min(older.min, newer.min);
  a.max = std::max(older.max, newer.max);
  return a;
}

void CounterState::Evict(int64_t oldest_kept) {
  while (closed_) {
    auto& [front, back, back_agg] = *closed_;
    if (front.empty() && !back.empty() && back.front().first < oldest_kept) {
      // Flip: back to front, newest first, each with its suffix aggregate.
      Agg running;
      for (size_t i = back.size(); i-- > 0;) {
        running = Agg::Combine(back[i].second, running);
        front.emplace_back(back[i].first, running);
      }
      back.clear();
      back_agg = Agg{};
    }
    if (front.empty() && back.empty()) {
      closed_.reset();  // back_agg is back's aggregate: nothing
      break;
    }
    if (front.empty() || front.back().first >= oldest_kept) break;
    front.pop_back();
  }
  if (open_index_ != kNone && open_index_ < oldest_kept) {
    open_index_ = kNone;
    open_ = Agg{};
  }
  if (!distinct_) return;
  auto& by_bucket = distinct_->by_bucket;
  auto& last_seen = distinct_->last_seen;
  while (!by_bucket.empty() && by_bucket.front().first < oldest_kept) {
    for (const auto& v : by_bucket.front().second) {
      auto it = last_seen.find(v);
      if (it != last_seen.end() && it->second == by_bucket.front().first) last_seen.erase(it);
    }
    by_bucket.pop_front();
  }
}

bool CounterState::Add(int64_t bucket, const nfa::Value& value, const std::string* text, dsl::AggFn fn,
                       int64_t buckets) {
  Evict(bucket - buckets + 1);
  newest_ = std::max(newest_, bucket);
  if (fn == dsl::AggFn::kDistinct) {
    if (text == nullptr) return true;
    if (!distinct_) distinct_ = std::make_unique<Distinct>();
    auto& last_seen = distinct_->last_seen;
    auto& by_bucket = distinct_->by_bucket;
    auto it = last_seen.find(*text);
    if (it == last_seen.end()) {
      if (last_seen.size() >= dsl::kMaxDistinctValues) return false;
      last_seen.emplace(*text, bucket);
    } else if (it->second == bucket) {
      return true;
    } else {
      it->second = bucket;
    }
    if (by_bucket.empty() || by_bucket.back().first != bucket) by_bucket.emplace_back(bucket, std::vector<std::string>{});
    by_bucket.back().second.push_back(*text);
    return true;
  }
  if (fn != dsl::AggFn::kCount && value.kind != nfa::Value::Kind::kNumber) return true;
  if (open_index_ != bucket) {
    if (open_index_ != kNone) {
      if (!closed_) closed_ = std::make_unique<Closed>();
      closed_->back.emplace_back(open_index_, open_);
      closed_->back_agg = Agg::Combine(closed_->back_agg, open_);
    }
    open_index_ = bucket;
    open_ = Agg{};
  }
  open_.Add(fn == dsl::AggFn::kCount ? 0.0 : value.number);
  return true;
}

nfa::Value CounterState::Read(int64_t now, dsl::AggFn fn, int64_t buckets) {
  Evict(now - buckets + 1);
  if (fn == dsl::AggFn::kDistinct) {
    return nfa::Value::Number(distinct_ ? static_cast<double>(distinct_->last_seen.size()) : 0.0);
  }
  Agg a;
  if (closed_) {
    if (!closed_->front.empty()) a = closed_->front.back().second;
    a = Agg::Combine(a, closed_->back_agg);
  }
  a = Agg::Combine(a, open_);
  switch (fn) {
    case dsl::AggFn::kCount: return nfa::Value::Number(a.count);
    case dsl::AggFn::kSum: return nfa::Value::Number(a.sum);
    case dsl::AggFn::kAvg: return a.count == 0 ? nfa::Value::Null() : nfa::Value::Number(a.sum / a.count);
    case dsl::AggFn::kMin: return a.count == 0 ? nfa::Value::Null() : nfa::Value::Number(a.min);
    case dsl::AggFn::kMax: return a.count == 0 ? nfa::Value::Null() : nfa::Value::Number(a.max);
    case dsl::AggFn::kDistinct: break;
  }
  return nfa::Value::Null();
}

namespace {
void PutAgg(std::string* out, const CounterState::Agg& a) {
  PutF64(out, a.count);
  PutF64(out, a.sum);
  PutF64(out, a.min);
  PutF64(out, a.max);
}
CounterState::Agg GetAgg(Reader* r) {
  CounterState::Agg a;
  a.count = r->F64();
  a.sum = r->F64();
  a.min = r->F64();
  a.max = r->F64();
  return a;
}
}  // namespace

// The exact structure (the suffix aggregates too), so a restored counter
// combines its sums in the same order as the one that never stopped.
void CounterState::Encode(std::string* out) const {
  PutSigned(out, newest_);
  PutSigned(out, open_index_);
  PutAgg(out, open_);
  static const Closed kNoneClosed;
  const Closed& closed = closed_ ? *closed_ : kNoneClosed;
  PutAgg(out, closed.back_agg);
  for (const auto* stack : {&closed.front, &closed.back}) {
    PutVarint(out, stack->size());
    for (const auto& [index, agg] : *stack) {
      PutSigned(out, index);
      PutAgg(out, agg);
    }
  }
  static const std::deque<std::pair<int64_t, std::vector<std::string>>> kNone;
  const auto& by_bucket = distinct_ ? distinct_->by_bucket : kNone;
  PutVarint(out, by_bucket.size());
  for (const auto& [bucket, values] : by_bucket) {
    PutSigned(out, bucket);
    PutVarint(out, values.size());
    for (const auto& v : values) PutLengthPrefixed(out, v);
  }
}

Status CounterState::Decode(std::string_view* in) {
  Reader r(in);
  newest_ = r.Signed();
  open_index_ = r.Signed();
  open_ = GetAgg(&r);
  closed_ = std::make_unique<Closed>();
  closed_->back_agg = GetAgg(&r);
  for (auto* stack : {&closed_->front, &closed_->back}) {
    uint64_t n = r.Varint();
    for (uint64_t i = 0; i < n && r.ok(); ++i) {
      int64_t index = r.Signed();
      stack->emplace_back(index, GetAgg(&r));
    }
  }
  if (closed_->front.empty() && closed_->back.empty()) closed_.reset();
  distinct_.reset();
  uint64_t n = r.Varint();
  if (n > 0) distinct_ = std::make_unique<Distinct>();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    int64_t bucket = r.Signed();
    uint64_t m = r.Varint();
    std::vector<std::string> values;
    for (uint64_t j = 0; j < m && r.ok(); ++j) values.emplace_back(r.String());
    for (const auto& v : values) distinct_->last_seen[v] = bucket;
    distinct_->by_bucket.emplace_back(bucket, std::move(values));
  }
  return r.ok() ? Status::Ok() : Status::Corruption("bad counter state");
}

}  // namespace cepheus::engine

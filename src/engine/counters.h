// A counter's state for one key (section 6.2): time cut into buckets of the
// counter's resolution, the window the last `buckets` of them ending with the
// bucket of the time read. Private to the engine.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/dsl/rule.h"
#include "cepheus/nfa/value.h"

namespace cepheus::engine {

class CounterState {
 public:
  // count, sum, min and max of some events; combined associatively.
  struct Agg {
    double count = 0;
    double sum = 0;
    double min = 0, max = 0;  // meaningful when count > 0
    void Add(double v);
    static Agg Combine(const Agg& older, const Agg& newer);
  };

  // An event of bucket `bucket` (not before the newest bucket added). For
  // count, `value` is ignored; for sum, avg, min and max a non-number is not
  // counted; for distinct, `text` is the value's text (empty: null, not
  // counted). Returns false when a distinct value was refused at the cap.
  bool Add(int64_t bucket, const nfa::Value& value, const std::string* text, dsl::AggFn fn, int64_t buckets);
  // The counter over the `buckets` buckets ending with `now` (not before the
  // newest bucket added). Drops the buckets that fell out, so reads and adds
  // must come in time order, which the engine's evaluation order gives.
  nfa::Value Read(int64_t now, dsl::AggFn fn, int64_t buckets);
  // True while some bucket is inside the window ending with `now`.
  bool Live(int64_t now, int64_t buckets) const { return newest_ != kNone && newest_ + buckets > now; }
  int64_t newest() const { return newest_; }

  void Encode(std::string* out) const;
  Status Decode(std::string_view* in);

 private:
  static constexpr int64_t kNone = INT64_MIN;
  void Evict(int64_t oldest_kept);
  // Two stacks (the "SWAG" sliding-window aggregation): `front` holds the
  // oldest buckets, its last element the oldest, each with the aggregate of
  // itself and every newer bucket of `front`; `back` the newer closed
  // buckets in order with their combined aggregate `back_agg`; `open_` the
  // newest bucket. A read combines three aggregates, an eviction pops one,
  // and each bucket moves from back to front once: O(1) amortised, whatever
  // the number of buckets, and no subtraction (so no drift in sums).
  // The stacks are allocated when a bucket first closes and freed when they
  // empty: a key seen in one bucket (most keys, at a million of them) keeps
  // 64 bytes a counter, not 136.
  struct Closed {
    std::vector<std::pair<int64_t, Agg>> front, back;
    Agg back_agg;
  };
  std::unique_ptr<Closed> closed_;
  int64_t open_index_ = kNone;
  Agg open_;
  int64_t newest_ = kNone;
  // distinct: each value with the newest bucket it was seen in, and the
  // values by that bucket (oldest first) for eviction. Allocated at the first
  // value: a key's count or sum counter does not carry it (an empty deque
  // alone holds ~600 bytes in libstdc++), and a million keys keep their
  // counters.
  struct Distinct {
    std::unordered_map<std::string, int64_t> last_seen;
    std::deque<std::pair<int64_t, std::vector<std::string>>> by_bucket;
  };
  std::unique_ptr<Distinct> distinct_;
};

}  // namespace cepheus::engine

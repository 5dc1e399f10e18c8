// A key's counters cost memory only for what they count: a count, sum or avg
// counter carries no distinct-value state (an empty std::deque alone
// allocates ~600 bytes in libstdc++, which a million keys would pay twice
// over), and no stack of closed buckets until a bucket closes. Counted with
// this binary's operator new (functions_alloc_test.cc).
#include <atomic>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/counters.h"

namespace alloc_count {
extern std::atomic<bool> counting;
extern std::atomic<size_t> allocations;
}  // namespace alloc_count

using namespace cepheus;

TEST_CASE("a count counter's state allocates nothing until a second bucket, and a distinct one only for its values") {
  std::vector<engine::CounterState> states;
  states.reserve(1000);
  alloc_count::allocations = 0;
  alloc_count::counting = true;
  for (int i = 0; i < 1000; ++i) {
    states.emplace_back();
    states.back().Add(7, nfa::Value::Number(1), nullptr, dsl::AggFn::kCount, 60);
  }
  alloc_count::counting = false;
  CHECK(alloc_count::allocations.load() == 0);
  CHECK(states[0].Read(7, dsl::AggFn::kCount, 60).number == 1);
  // The closed buckets' stacks and the distinct values are out of line: a
  // counter of a key seen in one bucket is its open bucket and two pointers.
  CHECK(sizeof(engine::CounterState) <= 64);

  engine::CounterState distinct;
  const std::string value = "a value longer than the small-string buffer";
  alloc_count::allocations = 0;
  alloc_count::counting = true;
  distinct.Add(7, nfa::Value::Null(), &value, dsl::AggFn::kDistinct, 60);
  alloc_count::counting = false;
  CHECK(alloc_count::allocations.load() > 0);  // the counting sees allocations
  CHECK(distinct.Read(7, dsl::AggFn::kDistinct, 60).number == 1);
}

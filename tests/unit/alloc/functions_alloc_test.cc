// The functions allocate nothing per call: this binary (alone, as it
// replaces the global operator new) counts every operator new while a
// compiled filter that calls each of them is evaluated over one event many
// times. Every replaced form allocates with malloc and frees with free, so
// a sanitizer sees matching pairs.
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <doctest/doctest.h>

#include "cepheus/engine/event_decoder.h"
#include "cepheus/nfa/matcher.h"
#include "test_util.h"

namespace alloc_count {  // shared with the binary's other tests
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
std::atomic<size_t> bytes{0};  // requested by the allocations counted
std::atomic<int64_t> live{0};  // usable bytes of the blocks not yet freed, whether counting or not
}  // namespace alloc_count
using alloc_count::allocations;
using alloc_count::counting;

void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    alloc_count::bytes.fetch_add(n, std::memory_order_relaxed);
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p != nullptr) alloc_count::live.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void* operator new(size_t n) {
  void* p = operator new(n, std::nothrow);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept {
  if (p != nullptr) alloc_count::live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }

using namespace cepheus;

TEST_CASE("the functions allocate nothing per call") {
  auto rules = testing::CompileRules(
      "rule r key user_id match o: order["
      "matches(email, '^[a-z]{2,8}[0-9]{4,}@') and geo_km(lat, lon, 40.7128, -74.006) > 100 and "
      "split_part(email, '@', -1) == 'example-mail.com' and substr(email, -3) == 'com' and "
      "starts_with(email, 'qwe') and ends_with(email, '.com') and contains(email, '@') and "
      "hour(ts, 'Europe/Paris') < 24 and weekday(ts, tz) > 0 and round(amount, 2) % 7 >= 0 and "
      "floor(amount) <= ceil(amount) and min(amount, 5) < max(amount, 5) and "
      "if(amount > 1, coalesce(missing, amount), 0) > 0 and (ts - 1700000000000) / 1h < 10"
      "] within 1m\n");
  engine::EventDecoder decoder(rules, {});
  auto ev = decoder.Decode(
      R"({"type":"order","ts":1700000000000,"user_id":"u1","email":"qwe12345@example-mail.com",)"
      R"("lat":48.8566,"lon":2.3522,"amount":12.5,"tz":"Asia/Tokyo"})",
      {"", 0, 1});
  REQUIRE(ev.ok());
  const nfa::CompiledExpr& filter = rules->programs[0]->steps[0].filter;
  REQUIRE(nfa::EvaluateOnEvent(filter, *ev.value(), nullptr, 0));  // every call is reached: the filter holds
  allocations = 0;
  counting = true;
  bool all = true;
  for (int i = 0; i < 1000; ++i) all = all && nfa::EvaluateOnEvent(filter, *ev.value(), nullptr, 0);
  counting = false;
  CHECK(all);
  CHECK(allocations.load() == 0);
}

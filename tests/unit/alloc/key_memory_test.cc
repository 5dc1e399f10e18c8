// A key costs memory for the rules and counters that hold something of it,
// not for every rule and counter of its key field: an engine whose user_id
// group has eight rules and a counter, of which a login concerns one rule,
// allocates about what an engine of that one rule does per login key.
// Counted with this binary's operator new (functions_alloc_test.cc), in
// bytes requested while the events (decoded beforehand) are pushed.
#include <atomic>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "test_util.h"

namespace alloc_count {
extern std::atomic<bool> counting;
extern std::atomic<size_t> bytes;
}  // namespace alloc_count

using namespace cepheus;

namespace {

constexpr int kKeys = 20000;

// Bytes allocated by an engine of `rules` while it takes one login of each
// of kKeys users (events decoded before counting, so their own memory is not
// in the figure).
size_t BytesForLoginKeys(const std::string& rules_text) {
  auto rules = testing::CompileRules(rules_text);
  engine::EventDecoder decoder(rules, {});
  std::vector<nfa::EventRef> events;
  for (int i = 0; i < kKeys; ++i) {
    auto e = decoder.Decode(
        fmt::format(R"({{"id":"l{0}","type":"login","ts":{1},"user_id":"user{0}"}})", i, 1700000000000 + i), {});
    REQUIRE(e.ok());
    events.push_back(std::move(e).value());
  }
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  alloc_count::bytes = 0;
  alloc_count::counting = true;
  for (const auto& e : events) eng.Push(e);
  alloc_count::counting = false;
  CHECK(eng.active_keys() == kKeys);  // every login key holds the one run
  return alloc_count::bytes.load();
}

}  // namespace

TEST_CASE("a login key of a field with eight rules and a counter costs what it costs with the one rule it concerns") {
  const std::string holding = "rule takeover key user_id match l: login -> o: order within 10m\n";
  std::string eight = holding;
  for (int i = 1; i < 8; ++i) eight += fmt::format("rule orders{} key user_id match o: order{{{}}} within 1m\n", i, i + 1);
  eight += "counter orders_1h key user_id count order over 1h\n";

  const size_t alone = BytesForLoginKeys(holding);
  const size_t among_eight = BytesForLoginKeys(eight);
  MESSAGE(fmt::format("per login key: {} bytes with the one rule, {} with eight rules and a counter",
                      alone / kKeys, among_eight / kKeys));
  CHECK(alone > 0);  // the counting sees the engine's allocations
  // A full array of rule states (104 bytes a rule) and the counter's state
  // (136) per key were ~860 bytes more per key.
  CHECK(among_eight < alone + alone / 5);
}

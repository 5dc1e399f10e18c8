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
#include "cepheus/engine/seams.h"
#include "test_util.h"

namespace alloc_count {
extern std::atomic<bool> counting;
extern std::atomic<size_t> bytes;
extern std::atomic<int64_t> live;
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

TEST_CASE("a key let go from memory keeps under 140 bytes of the kilobyte it held there") {
  // Rules of the shipped kinds that a login starts (a pair, an any{3}), and a counter.
  const std::string rules_text =
      "rule takeover key user_id match l: login -> o: order within 10m\n"
      "rule three key user_id match a: any{3} within 30m\n"
      "rule pair key user_id match o: order{2} within 1m\n"
      "counter orders_1h key user_id count order over 1h\n";
  auto rules = testing::CompileRules(rules_text);
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::MemoryStateStore store;
  {
    engine::Engine writer(rules, {}, &sink);
    for (int i = 0; i < kKeys; ++i) {
      writer.Push(decoder.Decode(fmt::format(R"({{"id":"l{0}","type":"login","ts":{1},"user_id":"user{0}",)"
                                             R"("country":"FR","device":"d{0}"}})",
                                             i, 1700000000000 + i), {}).value());
    }
    REQUIRE(writer.SaveChanges(&store).ok());
  }
  engine::EngineOptions options;
  options.max_resident_keys = 1;
  const int64_t before = alloc_count::live.load();
  engine::Engine eng(rules, options, &sink);
  REQUIRE(eng.Load(store, &decoder).ok());
  const int64_t held = alloc_count::live.load() - before;
  eng.set_cold_store(&store, &decoder);
  REQUIRE(eng.EvictColdKeys() == kKeys - 1);
  const int64_t cold = alloc_count::live.load() - before;
  MESSAGE(fmt::format("per key: {} bytes in memory, {} once let go", held / kKeys, cold / kKeys));
  CHECK(held / kKeys > 500);  // the live-bytes count sees the engine's keys
  // Its entry (72 bytes: the key, the generation, two null pointers, its
  // pending counter wake-up), its index slot and one wake-up (16) for the
  // closings of both rules it holds (one queued closing each was 146 bytes).
  CHECK(cold / kKeys <= 140);
  CHECK(cold * 6 <= held);
}


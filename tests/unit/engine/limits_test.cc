// The engine's configured bounds: keys holding state (EngineOptions::max_keys)
// and events in the reorder buffer (EngineOptions::max_buffered). Each is
// met with a documented behaviour and a count, never silently.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "test_util.h"

using namespace cepheus;

namespace {

struct Fixture {
  explicit Fixture(engine::EngineOptions options)
      : rules(testing::CompileRules("rule r key user_id match o: order{2} within 1m")),
        decoder(rules, {}),
        eng(rules, options, &sink) {}
  void Push(const std::string& id, const std::string& user, int64_t ts) {
    auto e = decoder.Decode(fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"{}"}})", id, ts, user), {});
    REQUIRE(e.ok());
    eng.Push(std::move(e).value());
  }
  std::shared_ptr<const nfa::CompiledRuleSet> rules;
  engine::EventDecoder decoder;
  engine::CollectingSink sink;
  engine::Engine eng;
};

}  // namespace

TEST_CASE("at max_keys an event of a new key starts nothing and is counted, while keys holding state go on") {
  engine::EngineOptions o;
  o.max_keys = 2;
  Fixture f(o);
  f.Push("a1", "alice", 1000);
  f.Push("b1", "bob", 1001);
  f.Push("c1", "carol", 1002);  // a third key: refused
  CHECK(f.eng.active_keys() == 2);
  CHECK(f.eng.stats().keys_refused == 1);
  f.Push("c2", "carol", 1003);  // still refused: carol holds no state
  f.Push("a2", "alice", 1004);  // alice's run goes on and completes
  CHECK(f.eng.stats().keys_refused == 2);
  CHECK(testing::Reduce(f.sink.alerts) == std::vector<std::string>{"r|alice|match|o=a1,a2"});
  // alice's state is gone with her match: a key is free again, and carol gets it.
  CHECK(f.eng.active_keys() == 1);
  f.Push("c3", "carol", 1005);
  f.Push("c4", "carol", 1006);
  f.eng.Finish();
  CHECK(testing::Reduce(f.sink.alerts) == std::vector<std::string>{"r|alice|match|o=a1,a2", "r|carol|match|o=c3,c4"});
  CHECK(f.eng.stats().keys_refused == 2);
}

TEST_CASE("without max_keys the same events start every key") {
  Fixture f({});
  f.Push("a1", "alice", 1000);
  f.Push("b1", "bob", 1001);
  f.Push("c1", "carol", 1002);
  CHECK(f.eng.active_keys() == 3);
  CHECK(f.eng.stats().keys_refused == 0);
}

TEST_CASE("at max_buffered the oldest buffered event is released early, counted, and older events are then late") {
  engine::EngineOptions o;
  o.out_of_order = 3600000;  // an hour: nothing is released by the watermark alone
  o.max_buffered = 3;
  Fixture f(o);
  f.Push("a1", "alice", 1000);
  f.Push("a2", "alice", 2000);
  f.Push("a3", "alice", 3000);
  CHECK(f.eng.buffered() == 3);
  CHECK(f.eng.stats().buffer_forced == 0);
  f.Push("a4", "alice", 4000);  // a fourth: the event at 1000 goes now
  CHECK(f.eng.buffered() == 3);
  CHECK(f.eng.stats().buffer_forced == 1);
  CHECK(f.eng.watermark() == 1000);
  f.Push("a5", "alice", 5000);  // and the event at 2000: with a1 it completes a match
  CHECK(f.eng.buffered() == 3);
  CHECK(f.eng.stats().buffer_forced == 2);
  CHECK(testing::Reduce(f.sink.alerts) == std::vector<std::string>{"r|alice|match|o=a1,a2"});
  f.Push("late", "alice", 1500);  // older than the raised watermark
  CHECK(f.eng.stats().late == 1);
  CHECK(f.eng.buffered() == 3);
}

TEST_CASE("events of one time past max_buffered are released together, so none of that time is late") {
  engine::EngineOptions o;
  o.out_of_order = 3600000;
  o.max_buffered = 2;
  Fixture f(o);
  f.Push("a1", "alice", 1000);
  f.Push("b1", "bob", 1000);
  f.Push("a2", "alice", 2000);  // three buffered: both events at 1000 go
  CHECK(f.eng.buffered() == 1);
  CHECK(f.eng.stats().buffer_forced == 2);
  f.Push("b2", "bob", 1000);  // at the watermark, not before it: not late
  CHECK(f.eng.stats().late == 0);
}

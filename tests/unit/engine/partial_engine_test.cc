// An engine that runs part of a rule set (section 6.4): only the rules keyed
// on some fields (EngineOptions::key_fields), and a watermark set from
// outside (EngineOptions::watermark_from_events = false), as a daemon
// partition of an input or of a re-keying topic runs it.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "test_util.h"

using namespace cepheus;

namespace {

const char* kRules = R"(
rule two_orders
  key user_id
  match o: order{2}
  within 1m
rule card_twice
  key card_id
  match o: order{2}
  within 1m
)";

struct Fixture {
  explicit Fixture(engine::EngineOptions options)
      : rules(testing::CompileRules(kRules)), decoder(rules, {}), eng(rules, options, &sink) {}
  void Push(const std::string& id, const std::string& user, const std::string& card, int64_t ts) {
    auto e = decoder.Decode(
        fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"{}","card_id":"{}"}})", id, ts, user, card), {});
    REQUIRE(e.ok());
    eng.Push(std::move(e).value());
  }
  std::shared_ptr<const nfa::CompiledRuleSet> rules;
  engine::EventDecoder decoder;
  engine::CollectingSink sink;
  engine::Engine eng;
};

}  // namespace

TEST_CASE("an engine given key fields runs only the rules keyed on them") {
  engine::EngineOptions only_users;
  only_users.key_fields = {"user_id"};
  Fixture all({}), users(only_users);
  for (Fixture* f : {&all, &users}) {
    f->Push("a", "u1", "c1", 1000);
    f->Push("b", "u2", "c1", 2000);
    f->Push("c", "u1", "c2", 3000);
    f->eng.Finish();
  }
  CHECK(testing::Reduce(all.sink.alerts) ==
        std::vector<std::string>{"card_twice|c1|match|o=a,b", "two_orders|u1|match|o=a,c"});
  CHECK(testing::Reduce(users.sink.alerts) == std::vector<std::string>{"two_orders|u1|match|o=a,c"});
  CHECK(users.eng.stats().rules[1].runs == 0);
}

TEST_CASE("state of rules keyed on a field the engine does not run is dropped at load, as a removed rule's") {
  Fixture all({});
  all.Push("a", "u1", "c1", 1000);  // one open run of each rule
  engine::MemoryStateStore store;
  REQUIRE(all.eng.SaveChanges(&store).ok());
  engine::EngineOptions only_users;
  only_users.key_fields = {"user_id"};
  Fixture users(only_users);
  engine::Engine::LoadReport report;
  REQUIRE(users.eng.Load(store, &users.decoder, &report).ok());
  CHECK(report.runs_removed == 1);  // card_twice's run: it runs elsewhere now
  CHECK(report.stale_keys.size() == 1);
  CHECK(users.eng.active_runs() == 1);
  users.Push("b", "u1", "c1", 2000);
  users.eng.Finish();
  CHECK(testing::Reduce(users.sink.alerts) == std::vector<std::string>{"two_orders|u1|match|o=a,b"});
}

TEST_CASE("an engine whose watermark comes from outside holds its events until AdvanceWatermark reaches them") {
  engine::EngineOptions outside;
  outside.out_of_order = 0;
  outside.watermark_from_events = false;
  Fixture f(outside);
  f.Push("a", "u1", "c1", 1000);
  f.Push("b", "u1", "c1", 9000);
  CHECK(f.eng.watermark() == kMinTime);  // the events' times do not move it
  CHECK(f.sink.alerts.empty());
  f.eng.AdvanceWatermark(5000);
  CHECK(f.eng.stats().evaluated == 1);  // a only
  f.Push("c", "u1", "c1", 4000);        // behind the watermark set from outside: late
  CHECK(f.eng.stats().late == 1);
  f.eng.AdvanceWatermark(9000);
  CHECK(f.eng.stats().evaluated == 2);
  CHECK(testing::Reduce(f.sink.alerts) ==
        std::vector<std::string>{"two_orders|u1|match|o=a,b", "card_twice|c1|match|o=a,b"});
}

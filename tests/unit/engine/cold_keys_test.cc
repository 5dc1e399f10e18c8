// Keys let go from memory (EngineOptions::max_resident_keys) and read back
// from the store give the same alerts, byte for byte, as an engine that held
// every key: a cold key behaves as a key restored after a restart, through
// its events, its closings (silent, absent, cooldown) and its counters.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/state_codec.h"
#include "test_util.h"

using namespace cepheus;

namespace {

// Closings of each kind: silent (runs only dropped), a trailing absence (an
// alert at the deadline), a cooldown that outlives the runs, counters read by
// a rule, and a second key field.
const char* kRules = R"(
counter orders_20s key user_id count order over 20s resolution 2s
counter seen_countries key user_id distinct order.country over 40s
rule countries key user_id match o: order[country not in o.country]{3} within 2m emit "{o.country} {seen_countries}"
rule unpaid key user_id match o: order -> absent payment[order_id == o.order_id] within 30s
rule busy key user_id match o: order[orders_20s >= 3] within 10s cooldown 25s emit "{orders_20s}"
rule spend key user_id match o: order{2,} where sum(o.amount) > 500 within 1m cooldown 20s
rule strict key card_id match l: login => o: order within 1m skip none
)";

// `events` of `users` users, up to `max_step` ms apart.
std::vector<std::string> Stream(int users, int events, uint64_t max_step = 1500) {
  std::vector<std::string> out;
  const char* types[] = {"order", "payment", "login", "order"};
  const char* countries[] = {"FR", "DE", "US", "BR"};
  uint64_t x = 987654321;
  auto next = [&] { return x = x * 6364136223846793005ULL + 1442695040888963407ULL, x >> 33; };
  long long ts = 1700000000000;
  for (int i = 0; i < events; ++i) {
    ts += static_cast<long long>(next() % max_step);
    long long skew = next() % 5 == 0 ? static_cast<long long>(next() % 2500) : 0;
    int user = static_cast<int>(next() % static_cast<uint64_t>(users));
    out.push_back(fmt::format(
        R"({{"id":"e{}","type":"{}","ts":{},"user_id":"u{}","card_id":"c{}","country":"{}","amount":{},"order_id":"o{}"}})",
        i, types[next() % 4], ts - skew, user, user % 7, countries[next() % 4], next() % 400, next() % 5));
  }
  return out;
}

// The stream's options: 3 s out of order, at most `max_resident` keys in
// memory (0: every key).
engine::EngineOptions StreamOptions(uint64_t max_resident = 0) {
  engine::EngineOptions options;
  options.out_of_order = 3000;
  options.max_resident_keys = max_resident;
  return options;
}

std::vector<std::string> Json(const std::vector<engine::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(a.json);
  return out;
}

struct Outcome {
  std::vector<std::string> alerts;
  engine::EngineStats stats;
  uint64_t most_cold = 0;
  bool bounded = true;  // after each eviction, at most max_resident keys in memory
  Status cold_status;
  std::vector<std::string> saves;  // the store's records after each save
  std::vector<int64_t> runs;       // the runs held after each save
  int64_t keys_at_end = 0;
};

// Runs the stream, saving (as the daemon commits) every `every` events and
// then letting keys go down to `max_resident` (0: none let go).
Outcome Run(const std::vector<std::string>& events, uint64_t max_resident, size_t every,
            const char* rules = kRules) {
  auto compiled = testing::CompileRules(rules);
  engine::EventDecoder dec(compiled, {});
  const engine::EngineOptions options = StreamOptions(max_resident);
  engine::CollectingSink sink;
  engine::MemoryStateStore store;
  engine::Engine eng(compiled, options, &sink);
  eng.set_cold_store(&store, &dec);
  Outcome out;
  for (size_t i = 0; i < events.size(); ++i) {
    eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    if (i % every != every - 1) continue;
    REQUIRE(eng.SaveChanges(&store).ok());
    std::string records;
    store.Scan("", [&](std::string_view k, std::string_view v) { records += fmt::format("{}={};", k, v); });
    out.saves.push_back(std::move(records));
    out.runs.push_back(eng.active_runs());
    eng.EvictColdKeys();
    out.most_cold = std::max(out.most_cold, eng.cold_keys());
    const uint64_t resident = static_cast<uint64_t>(eng.active_keys()) - eng.cold_keys();
    if (max_resident > 0 && resident > max_resident) out.bounded = false;
  }
  eng.Finish();
  out.keys_at_end = eng.active_keys();
  out.alerts = Json(sink.alerts);
  out.stats = eng.stats();
  out.cold_status = eng.cold_status();
  return out;
}

// An engine of one rule (a login, then an order within 10 minutes) holding
// at most `max_resident` keys in memory, the others in its store.
struct LoginOrder {
  explicit LoginOrder(uint64_t max_resident)
      : compiled(testing::CompileRules("rule r key user_id match l: login -> o: order within 10m\n")),
        dec(compiled, {}),
        eng(compiled, Options(max_resident), &sink) {
    eng.set_cold_store(&store, &dec);
  }
  static engine::EngineOptions Options(uint64_t max_resident) {
    engine::EngineOptions options;
    options.max_resident_keys = max_resident;
    return options;
  }
  void Push(const std::string& json) { eng.Push(dec.Decode(json, {}).value()); }
  std::shared_ptr<const nfa::CompiledRuleSet> compiled;
  engine::EventDecoder dec;
  engine::CollectingSink sink;
  engine::MemoryStateStore store;
  engine::Engine eng;
};

}  // namespace

TEST_CASE("an engine that holds a few keys in memory alerts and saves as one that holds every key") {
  auto events = Stream(40, 1500);
  for (size_t every : {1u, 7u}) {
    Outcome all = Run(events, 0, every);
    REQUIRE(all.alerts.size() >= 30);
    CHECK(all.keys_at_end == 0);
    CHECK(all.stats.keys_evicted == 0);
    for (uint64_t max_resident : {1u, 4u, 15u}) {
      CAPTURE(max_resident);
      CAPTURE(every);
      Outcome few = Run(events, max_resident, every);
      CHECK(few.cold_status.ok());
      CHECK(few.alerts == all.alerts);
      CHECK(few.saves == all.saves);  // every save wrote the same records
      CHECK(few.runs == all.runs);
      CHECK(few.keys_at_end == 0);  // every window closed, every cooldown ended: nothing held
      CHECK(few.bounded);
      CHECK(few.most_cold >= 10);  // most keys did go cold
      CHECK(few.stats.keys_evicted >= 100);
      CHECK(few.stats.keys_warmed >= 100);
      CHECK(few.stats.evaluated == all.stats.evaluated);
    }
  }
}

TEST_CASE("keys let go give up their rules' queued closings for one wake-up each, and still close on time") {
  // Thousands of keys inside the windows, so the closing FIFOs pass the size
  // at which the arms of cold keys are dropped from them (4 096).
  const char* rules = R"(
rule pair key user_id match l: login -> o: order within 5m
rule three key user_id match a: any{3} within 4m
rule unpaid key user_id match o: order -> absent payment[order_id == o.order_id] within 2m
)";
  auto events = Stream(20000, 40000, 30);
  Outcome all = Run(events, 0, 500, rules);
  REQUIRE(all.alerts.size() >= 100);
  CHECK(all.keys_at_end == 0);
  Outcome few = Run(events, 50, 500, rules);
  CHECK(few.cold_status.ok());
  CHECK(few.stats.keys_evicted >= 5000);
  CHECK(few.alerts == all.alerts);
  CHECK(few.saves == all.saves);  // a key whose window ended while cold was read back and let go
  CHECK(few.runs == all.runs);
  CHECK(few.keys_at_end == 0);
}

TEST_CASE("a key touched since the last eviction stays in memory; an idle one goes first") {
  LoginOrder w(2);
  auto& eng = w.eng;
  auto& store = w.store;
  auto login = [&](int user, long long ts) {
    w.Push(fmt::format(R"({{"id":"l{0}{1}","type":"login","ts":{1},"user_id":"u{0}"}})", user, ts));
  };
  for (int u = 0; u < 4; ++u) login(u, 1000 + u);
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(eng.EvictColdKeys() == 2);  // of four new keys, two go
  CHECK(eng.cold_keys() == 2);
  login(0, 2000);  // both cold: read back
  login(1, 2001);
  CHECK(eng.stats().keys_warmed == 2);
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(eng.EvictColdKeys() == 2);  // u2 and u3, idle since the last eviction
  CHECK(eng.cold_keys() == 2);
  login(0, 2500);
  login(1, 2501);
  CHECK(eng.stats().keys_warmed == 2);  // u0 and u1 were still in memory
  // An order of a cold user completes its run: the key was read back.
  w.Push(R"({"id":"o3","type":"order","ts":3000,"user_id":"u3"})");
  CHECK(eng.stats().keys_warmed == 3);
  eng.Finish();
  REQUIRE(w.sink.alerts.size() == 1);
  CHECK(w.sink.alerts[0].key == "u3");
  CHECK(eng.cold_status().ok());
}

TEST_CASE("a cold key whose record is gone from the store goes on with no state, and the engine says which") {
  LoginOrder w(1);
  auto& eng = w.eng;
  w.Push(R"({"id":"a","type":"login","ts":1000,"user_id":"alice"})");
  REQUIRE(eng.SaveChanges(&w.store).ok());
  w.Push(R"({"id":"b","type":"login","ts":1001,"user_id":"bob"})");
  REQUIRE(eng.SaveChanges(&w.store).ok());
  REQUIRE(eng.EvictColdKeys() == 1);  // alice, the clock's first
  REQUIRE(w.store.Delete(engine::StateKeyOf("user_id", "alice")).ok());
  w.Push(R"({"id":"c","type":"order","ts":1002,"user_id":"alice"})");
  eng.Finish();
  CHECK(w.sink.alerts.empty());
  REQUIRE_FALSE(eng.cold_status().ok());
  CHECK(eng.cold_status().message() ==
        "cannot read the state of key 'alice' (user_id) back: no record in the store");
}

TEST_CASE("a full save of an engine with cold keys writes what an engine holding every key writes") {
  auto events = Stream(25, 400);
  auto compiled = testing::CompileRules(kRules);
  engine::EventDecoder dec(compiled, {});
  engine::CollectingSink s1, s2;
  engine::Engine all(compiled, StreamOptions(), &s1);
  engine::Engine few(compiled, StreamOptions(3), &s2);
  engine::MemoryStateStore cold;
  few.set_cold_store(&cold, &dec);
  for (size_t i = 0; i < events.size(); ++i) {
    all.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    few.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    if (i % 5 == 4) {
      REQUIRE(few.SaveChanges(&cold).ok());
      few.EvictColdKeys();
    }
  }
  REQUIRE(few.cold_keys() > 5);
  engine::MemoryStateStore a, b;
  REQUIRE(all.Save(&a).ok());
  REQUIRE(few.Save(&b).ok());
  CHECK(few.cold_keys() == 0);
  std::vector<std::pair<std::string, std::string>> ra, rb;
  a.Scan("", [&](std::string_view k, std::string_view v) { ra.emplace_back(k, v); });
  b.Scan("", [&](std::string_view k, std::string_view v) { rb.emplace_back(k, v); });
  CHECK(ra.size() > 10);
  CHECK(ra == rb);
}

TEST_CASE("a restore holds no more keys in memory than max_resident_keys, and alerts as an engine that never stopped") {
  auto events = Stream(40, 1500);
  auto compiled = testing::CompileRules(kRules);
  engine::EventDecoder dec(compiled, {});
  const engine::EngineOptions options = StreamOptions();
  engine::CollectingSink golden;
  {
    engine::Engine eng(compiled, options, &golden);
    for (size_t i = 0; i < events.size(); ++i) eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    eng.Finish();
  }
  for (size_t cut : {300u, 700u, 1100u}) {
    CAPTURE(cut);
    engine::CollectingSink first, second;
    engine::MemoryStateStore store;
    {
      engine::Engine a(compiled, options, &first);
      for (size_t i = 0; i < cut; ++i) a.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
      REQUIRE(a.SaveChanges(&store).ok());
    }
    engine::Engine b(compiled, StreamOptions(3), &second);
    b.set_cold_store(&store, &dec);
    REQUIRE(b.Load(store, &dec).ok());
    CHECK(b.active_keys() >= 20);
    CHECK(b.active_keys() - static_cast<int64_t>(b.cold_keys()) <= 3);
    for (size_t i = cut; i < events.size(); ++i) {
      b.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
      if (i % 10 == 9) {
        REQUIRE(b.SaveChanges(&store).ok());
        b.EvictColdKeys();
      }
    }
    b.Finish();
    CHECK(b.cold_status().ok());
    auto got = Json(first.alerts);
    auto rest = Json(second.alerts);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == Json(golden.alerts));
  }
}

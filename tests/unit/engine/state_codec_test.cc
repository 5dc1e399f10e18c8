// State survives a save and a load exactly, for every kind of run: the bytes
// written again after a load are the bytes read, and an engine restored at any
// point of a stream then produces the same alerts, byte for byte, as the
// engine that never stopped.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/state_codec.h"
#include "test_util.h"

using namespace cepheus;

namespace {

// Rules that between them hold every kind of run: counted with aggregates and
// kept values, optional and absent middles, trailing absence, strict arrows,
// open quantifiers under `where`, each skip policy, cooldown, limits.
const char* kRules = R"(
rule countries key user_id match o: order[country not in o.country]{3} within 2m emit "{o.country} {sum(o.amount)}"
rule unpaid key user_id match o: order -> absent payment[order_id == o.order_id] within 30s
rule no_logout key user_id match l: login -> absent logout -> p: password_change? -> o: order[amount > 100] within 1m skip to_next
rule strict key card_id match l: login => o: order within 1m skip none
rule spend key user_id match o: order{2,} where sum(o.amount) > 500 and distinct(o.country) >= 2 within 1m cooldown 20s
rule tiny key card_id match s: payment[amount < 5]{1,} -> b: payment[amount > 100] within 45s limit 4
)";

std::vector<std::string> Stream() {
  std::vector<std::string> out;
  const char* types[] = {"order", "payment", "login", "logout", "password_change", "order"};
  const char* countries[] = {"FR", "DE", "US", "BR"};
  uint64_t x = 12345;
  auto next = [&] { return x = x * 6364136223846793005ULL + 1442695040888963407ULL, x >> 33; };
  long long ts = 1700000000000;
  for (int i = 0; i < 160; ++i) {
    ts += static_cast<long long>(next() % 6000);
    long long skew = next() % 5 == 0 ? static_cast<long long>(next() % 4000) : 0;
    int user = static_cast<int>(next() % 3);
    const char* type = types[next() % 6];
    out.push_back(fmt::format(
        R"({{"id":"e{}","type":"{}","ts":{},"user_id":"u{}","card_id":"c{}","country":"{}","amount":{},"order_id":"o{}"}})",
        i, type, ts - skew, user, user % 2, countries[next() % 4],
        std::string(type) == "payment" ? next() % 2 ? 2 : 150 : static_cast<int>(next() % 400),
        next() % 6));
  }
  return out;
}

std::vector<std::string> Json(const std::vector<engine::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(a.json);
  return out;
}

}  // namespace

TEST_CASE("an engine restored at any point produces the same alerts as one that never stopped") {
  auto compiled = testing::CompileRules(kRules);
  auto events = Stream();
  engine::EngineOptions options;
  options.out_of_order = 3000;

  // The uninterrupted run.
  engine::CollectingSink golden;
  {
    engine::EventDecoder dec(compiled, {});
    engine::Engine eng(compiled, options, &golden);
    for (size_t i = 0; i < events.size(); ++i) eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    eng.Finish();
  }
  REQUIRE(golden.alerts.size() >= 10);
  int64_t max_runs_seen = 0;

  for (size_t cut = 0; cut <= events.size(); cut += 7) {
    CAPTURE(cut);
    engine::CollectingSink first;
    engine::EventDecoder dec(compiled, {});
    engine::Engine a(compiled, options, &first);
    for (size_t i = 0; i < cut; ++i) a.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    max_runs_seen = std::max(max_runs_seen, a.active_runs());
    engine::MemoryStateStore store;
    REQUIRE(a.Save(&store).ok());

    engine::CollectingSink second;
    engine::Engine b(compiled, options, &second);
    engine::Engine::LoadReport report;
    REQUIRE(b.Load(store, &dec, &report).ok());
    CHECK(report.keys_dropped == 0);
    CHECK(b.active_runs() == a.active_runs());
    CHECK(b.buffered() == a.buffered());

    // Saving the restored engine writes the very same bytes.
    engine::MemoryStateStore again;
    REQUIRE(b.Save(&again).ok());
    std::vector<std::pair<std::string, std::string>> s1, s2;
    store.Scan("", [&](std::string_view k, std::string_view v) { s1.emplace_back(k, v); });
    again.Scan("", [&](std::string_view k, std::string_view v) { s2.emplace_back(k, v); });
    CHECK(s1 == s2);

    for (size_t i = cut; i < events.size(); ++i) b.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    b.Finish();
    auto got = Json(first.alerts);
    auto rest = Json(second.alerts);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == Json(golden.alerts));
  }
  CHECK(max_runs_seen >= 10);  // the cuts did land on engines holding runs
}

TEST_CASE("a restored engine goes on writing the records of the engine that never stopped") {
  // A plain sequence is held in blocks over a shared buffer in memory, and as
  // ordinary runs once restored (a rare order keeps its runs open while
  // logins pass them by); a strict arrow and a count beside it.
  auto compiled = testing::CompileRules(R"(
rule pair key user_id match l: login -> o: order[amount > 390] within 30m
rule strict key card_id match l: login => o: order within 1m
rule orders key user_id match o: order{3} within 2m
)");
  auto events = Stream();
  engine::EngineOptions options;
  options.out_of_order = 3000;
  auto records = [](engine::Engine& eng) {
    engine::MemoryStateStore store;
    REQUIRE(eng.Save(&store).ok());
    std::vector<std::pair<std::string, std::string>> out;
    store.Scan("", [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
    return out;
  };
  size_t compared = 0;
  for (size_t cut = 0; cut + 20 <= events.size(); cut += 7) {
    CAPTURE(cut);
    engine::CollectingSink sink;
    engine::EventDecoder dec(compiled, {});
    engine::Engine a(compiled, options, &sink);
    for (size_t i = 0; i < cut; ++i) a.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    engine::MemoryStateStore store;
    REQUIRE(a.Save(&store).ok());
    engine::Engine b(compiled, options, &sink);
    REQUIRE(b.Load(store, &dec).ok());
    for (size_t i = cut; i < cut + 20; ++i) {
      a.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
      b.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    }
    auto kept = records(a);
    CHECK(records(b) == kept);
    compared += kept.size();
  }
  CHECK(compared >= 20);  // the engines did hold keys when compared
}

TEST_CASE("state written for another version of a rule is dropped and counted, never loaded") {
  auto v1 = testing::CompileRules(
      "rule r key user_id match o: order{3} within 1m\n"
      "rule kept key user_id match l: login => o: order within 1m\n"
      "rule gone key user_id match o: order => p: payment within 1m");
  auto v2 = testing::CompileRules(
      "rule r key user_id match o: order{2} within 1m\n"
      "rule kept key user_id match l: login => o: order within 1m");
  engine::CollectingSink sink;
  engine::EventDecoder dec1(v1, {});
  engine::Engine c(v1, {}, &sink);
  c.Push(dec1.Decode(R"({"type":"login","ts":1,"user_id":"u"})", {}).value());
  c.Push(dec1.Decode(R"({"type":"order","ts":2,"user_id":"u"})", {}).value());
  c.Push(dec1.Decode(R"({"type":"order","ts":3,"user_id":"v"})", {}).value());
  c.Push(dec1.Decode(R"({"type":"login","ts":4,"user_id":"v"})", {}).value());
  c.AdvanceWatermark(4);
  // r: u and v hold one run each (order{3} started); kept: u's login run
  // completed on its order, v's login waits; gone: u's order waits, v's run
  // died on its login (`=>` is strict).
  engine::MemoryStateStore store;
  REQUIRE(c.Save(&store).ok());
  engine::EventDecoder dec2(v2, {});
  engine::Engine b(v2, {}, &sink);
  engine::Engine::LoadReport report;
  REQUIRE(b.Load(store, &dec2, &report).ok());
  CHECK(report.keys_dropped == 3);
  CHECK(report.runs_changed == 2);
  CHECK(report.runs_removed == 1);
  // u's record held only dropped state: the caller deletes it. v's record
  // keeps `kept`: it is rewritten without the rest at the next save.
  using namespace std::string_literals;
  CHECK(report.stale_keys == std::vector<std::string>{engine::StateKeyOf("user_id", "u")});
  CHECK(c.active_runs() == 4);
  CHECK(b.active_runs() == 1);  // the unchanged rule's run is kept
  REQUIRE(b.SaveChanges(&store).ok());
  std::string v_record;
  store.Scan(engine::StateKeyOf("user_id", "v"), [&](std::string_view, std::string_view v) {
    auto sk = engine::SplitStoredKey(v);
    REQUIRE(sk.ok());
    CHECK(sk.value().key == "v");
    v_record = std::string(sk.value().record);
  });
  REQUIRE(!v_record.empty());
  auto sections = engine::DecodeKeyRecord(v_record, nullptr, [](std::string_view) { return nullptr; });
  REQUIRE(sections.ok());
  REQUIRE(sections.value().size() == 1);
  CHECK(sections.value()[0].rule == "kept");
  CHECK(sections.value()[0].stored_runs == 1);
}

TEST_CASE("records of state format 1 are not loaded: their partial matches are counted as dropped and the records reported for deletion") {
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  // A format-1 record (one rule, one key): version, fingerprint, cooldown
  // and barrier fields, one event, one run bound to it.
  auto varint = [](std::string* out, uint64_t v) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  };
  auto zigzag = [&](std::string* out, int64_t v) {
    varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  };
  auto str = [&](std::string* out, std::string_view s) {
    varint(out, s.size());
    out->append(s);
  };
  std::string v1(1, '\x01');
  uint64_t fp = compiled->programs[0]->fingerprint;
  v1.append(reinterpret_cast<const char*>(&fp), 8);
  v1.push_back('\0');                                      // alerted
  zigzag(&v1, 0);                                          // last_alert
  varint(&v1, 0);                                          // start_barrier
  zigzag(&v1, 0);                                          // barrier_until
  varint(&v1, 1);                                          // one event
  zigzag(&v1, 5), varint(&v1, 1), varint(&v1, 1), str(&v1, "in"), zigzag(&v1, 0), zigzag(&v1, 0);
  str(&v1, R"({"type":"order","ts":5,"user_id":"u"})");
  varint(&v1, 1);                                          // one run
  varint(&v1, 1), varint(&v1, 0), varint(&v1, 1), v1.push_back('\1');
  zigzag(&v1, 5), zigzag(&v1, 5), varint(&v1, 1), varint(&v1, 1), varint(&v1, 0), varint(&v1, 0);
  CHECK(engine::CountStoredRuns(v1) == 1);

  using namespace std::string_literals;
  engine::MemoryStateStore store;
  REQUIRE(store.Put("engine/k/r\0u"s, v1).ok());
  engine::EventDecoder dec(compiled, {});
  engine::CollectingSink sink;
  engine::Engine b(compiled, {}, &sink);
  engine::Engine::LoadReport report;
  REQUIRE(b.Load(store, &dec, &report).ok());
  CHECK(report.keys_dropped == 1);
  CHECK(report.runs_changed == 1);
  CHECK(report.stale_keys == std::vector<std::string>{"engine/k/r\0u"s});
  CHECK(b.active_runs() == 0);
}

TEST_CASE("truncated or corrupted state is reported as corruption") {
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  engine::EventDecoder dec(compiled, {});
  nfa::KeyRuns k;
  engine::CollectingSink sink;
  engine::Engine a(compiled, {}, &sink);
  a.Push(dec.Decode(R"({"type":"order","ts":1,"user_id":"u"})", {}).value());
  engine::MemoryStateStore store;
  REQUIRE(a.Save(&store).ok());
  std::string bytes;
  store.Scan("engine/h/", [&](std::string_view, std::string_view v) {
    bytes = std::string(engine::SplitStoredKey(v).value().record);
  });
  REQUIRE(!bytes.empty());
  const nfa::Program& p = *compiled->programs[0];
  CHECK(engine::DecodeKeyRuns(bytes, p, &dec).ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    auto r = engine::DecodeKeyRuns(std::string_view(bytes).substr(0, len), p, &dec);
    CHECK_FALSE(r.ok());
  }
  std::string extra = bytes + "x";
  CHECK(engine::DecodeKeyRuns(extra, p, &dec).status().code() == Status::Code::kCorruption);
}

namespace {

// Counts deletes of keys it does not hold: each one would be a changelog
// tombstone for nothing.
class StrictStore : public engine::MemoryStateStore {
 public:
  Status Delete(std::string_view key) override {
    bool held = false;
    (void)Scan(key, [&](std::string_view k, std::string_view) { held = held || k == key; });
    if (!held) ++needless_deletes;
    ++deletes;
    return MemoryStateStore::Delete(key);
  }
  int needless_deletes = 0;
  int deletes = 0;
};

}  // namespace

TEST_CASE("saving the changes deletes only records the store holds") {
  auto compiled = testing::CompileRules(kRules);
  auto events = Stream();
  engine::EngineOptions options;
  options.out_of_order = 3000;
  engine::EventDecoder dec(compiled, {});
  engine::Engine eng(compiled, options, nullptr);
  StrictStore store;
  for (size_t i = 0; i < events.size(); ++i) {
    eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    if (i % 3 == 2) REQUIRE(eng.SaveChanges(&store).ok());
  }
  eng.Finish();
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(store.needless_deletes == 0);
  CHECK(store.deletes > 0);
  std::vector<std::string> keys;
  store.Scan("engine/h/", [&](std::string_view k, std::string_view) { keys.emplace_back(k); });
  CHECK(keys.empty());
}

TEST_CASE("saving only the changes leaves the store equal to a full save, at every step") {
  auto compiled = testing::CompileRules(kRules);
  auto events = Stream();
  engine::EngineOptions options;
  options.out_of_order = 3000;
  engine::CollectingSink sink;
  engine::EventDecoder dec(compiled, {});
  engine::Engine eng(compiled, options, &sink);
  // A twin fed the same events, fully saved each time, is the reference.
  engine::Engine twin(compiled, options, nullptr);
  engine::MemoryStateStore incremental;
  size_t writes_seen = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    twin.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    if (i % 5 != 4) continue;
    REQUIRE(eng.SaveChanges(&incremental).ok());
    engine::MemoryStateStore full;
    REQUIRE(twin.Save(&full).ok());
    std::vector<std::pair<std::string, std::string>> a, b;
    incremental.Scan("", [&](std::string_view k, std::string_view v) { a.emplace_back(k, v); });
    full.Scan("", [&](std::string_view k, std::string_view v) { b.emplace_back(k, v); });
    CAPTURE(i);
    CHECK(a == b);
    CHECK(a.size() >= 2);  // meta and buffer at least
    writes_seen = std::max(writes_seen, a.size());
  }
  CHECK(writes_seen >= 5);
  eng.Finish();
  REQUIRE(eng.SaveChanges(&incremental).ok());
  std::vector<std::string> keys;
  incremental.Scan("engine/h/", [&](std::string_view k, std::string_view) { keys.emplace_back(k); });
  CHECK(keys.empty());  // every window closed: every key record deleted
}

TEST_CASE("a record stored under its key (before keys were digests) is loaded, then moved under its digest") {
  using namespace std::string_literals;
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  engine::EventDecoder dec(compiled, {});
  engine::Engine a(compiled, {}, nullptr);
  a.Push(dec.Decode(R"({"type":"order","ts":1,"user_id":"u"})", {}).value());
  engine::MemoryStateStore store;
  REQUIRE(a.Save(&store).ok());
  // Rewrite the record as the previous layout had it: "engine/g/<field>\0<key>".
  const std::string digest_key = engine::StateKeyOf("user_id", "u");
  std::string record;
  store.Scan(digest_key, [&](std::string_view, std::string_view v) {
    record = std::string(engine::SplitStoredKey(v).value().record);
  });
  REQUIRE(!record.empty());
  REQUIRE(store.Delete(digest_key).ok());
  REQUIRE(store.Put("engine/g/user_id\0u"s, record).ok());

  for (bool with_report : {true, false}) {
    CAPTURE(with_report);
    engine::MemoryStateStore copy = store;
    engine::Engine b(compiled, {}, nullptr);
    engine::Engine::LoadReport report;
    REQUIRE(b.Load(copy, &dec, with_report ? &report : nullptr).ok());
    CHECK(b.active_runs() == 1);
    CHECK(report.keys_dropped == 0);
    if (with_report) {  // listed for the caller (the daemon writes its tombstone to the changelog)
      CHECK(report.stale_keys == std::vector<std::string>{"engine/g/user_id\0u"s});
    }
    REQUIRE(b.SaveChanges(&copy).ok());
    std::vector<std::string> keys;
    copy.Scan("engine/", [&](std::string_view k, std::string_view v) {
      if (k == "engine/meta" || k.substr(0, 9) == "engine/b/") return;
      keys.emplace_back(k);
      if (k == digest_key) CHECK(engine::SplitStoredKey(v).value().record == record);
    });
    CHECK(keys == std::vector<std::string>{digest_key});  // moved: the old record is gone, whoever loaded it
  }
}

namespace {

// Counts the writes of each save, by kind of record.
class CountingStore : public engine::MemoryStateStore {
 public:
  Status Put(std::string_view key, std::string_view value) override {
    if (key.substr(0, 9) == "engine/b/") ++buffer_puts, largest_buffer_put = std::max(largest_buffer_put, value.size());
    return MemoryStateStore::Put(key, value);
  }
  Status Delete(std::string_view key) override {
    if (key.substr(0, 9) == "engine/b/") ++buffer_deletes;
    return MemoryStateStore::Delete(key);
  }
  void Reset() { buffer_puts = buffer_deletes = 0; }
  int buffer_puts = 0, buffer_deletes = 0;
  size_t largest_buffer_put = 0;
};

}  // namespace

TEST_CASE("a save writes the events buffered since the last one and deletes those released, never the whole buffer") {
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  engine::EventDecoder dec(compiled, {});
  engine::EngineOptions options;
  options.watermark_from_events = false;  // held back, as after a re-keying hop
  engine::CollectingSink sink;
  engine::Engine eng(compiled, options, &sink);
  CountingStore store;
  auto push = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      eng.Push(dec.Decode(fmt::format(R"({{"type":"order","ts":{},"user_id":"u{}","pad":"{}"}})", 1000 + i,
                                      i % 7, std::string(200, 'x')),
                          {"in", 0, i})
                   .value());
    }
  };
  push(0, 5000);  // about a megabyte buffered: more than one Kafka record may carry
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(store.buffer_puts == 5000);
  CHECK(store.largest_buffer_put < 400);  // one event a record
  store.Reset();

  push(5000, 5010);
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(store.buffer_puts == 10);
  CHECK(store.buffer_deletes == 0);
  store.Reset();

  // Released up to ts 1000+2999: 3000 saved events deleted; of 20 more, the
  // 10 released before the save are never written.
  push(5010, 5030);
  eng.AdvanceWatermark(1000 + 2999);
  REQUIRE(eng.SaveChanges(&store).ok());
  CHECK(store.buffer_deletes == 3000);
  CHECK(store.buffer_puts == 20);  // ts 6010..6029 are all after the watermark
  store.Reset();

  // The store is then what a full save writes, and loads back the buffer.
  engine::MemoryStateStore full;
  REQUIRE(eng.Save(&full).ok());
  std::vector<std::pair<std::string, std::string>> a, b;
  store.Scan("", [&](std::string_view k, std::string_view v) { a.emplace_back(k, v); });
  full.Scan("", [&](std::string_view k, std::string_view v) { b.emplace_back(k, v); });
  CHECK(a == b);
  engine::Engine restored(compiled, options, &sink);
  REQUIRE(restored.Load(store, &dec).ok());
  CHECK(restored.buffered() == eng.buffered());
  CHECK(restored.buffered() == 2030);
}

TEST_CASE("a reorder buffer saved in one record (before re-keying) is loaded, then rewritten a record per event") {
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  engine::EventDecoder dec(compiled, {});
  engine::EngineOptions options;
  options.watermark_from_events = false;
  engine::Engine a(compiled, options, nullptr);
  for (int i = 0; i < 3; ++i) {
    a.Push(dec.Decode(fmt::format(R"({{"type":"order","ts":{},"user_id":"u"}})", 10 + i), {"in", 0, i}).value());
  }
  engine::MemoryStateStore store;
  REQUIRE(a.Save(&store).ok());
  // The old layout: varint N, then the N events, under engine/buffer.
  std::string old;
  old.push_back(3);
  std::vector<std::string> keys;
  store.Scan("engine/b/", [&](std::string_view k, std::string_view v) {
    keys.emplace_back(k);
    old.append(v);
  });
  REQUIRE(keys.size() == 3);
  for (const auto& k : keys) REQUIRE(store.Delete(k).ok());
  REQUIRE(store.Put("engine/buffer", old).ok());

  engine::Engine b(compiled, options, nullptr);
  engine::Engine::LoadReport report;
  REQUIRE(b.Load(store, &dec, &report).ok());
  CHECK(b.buffered() == 3);
  CHECK(report.stale_keys == std::vector<std::string>{"engine/buffer"});
  REQUIRE(b.SaveChanges(&store).ok());
  std::vector<std::string> after;
  store.Scan("engine/b", [&](std::string_view k, std::string_view) { after.emplace_back(k); });
  CHECK(after == keys);  // the same records a save of today writes, and no engine/buffer
}

TEST_CASE("counters and aggregates restored at any point give the same alerts and records, values included, as ones that never stopped") {
  const char* rules = R"(
counter n_orders
  key user_id
  count order
  over 20s
  resolution 2s
counter spend
  key user_id
  sum order.amount
  over 30s
counter mean
  key user_id
  avg order.amount
  over 30s
  resolution 3s
counter lo
  key user_id
  min order.amount
  over 12s
counter countries
  key user_id
  distinct order.country
  over 40s
counter card_orders
  key card_id
  count order
  over 30s
rule busy
  key user_id
  match o: order[n_orders >= 3 and spend > 200]
  within 10s
  emit "{n_orders} {spend} {mean} {lo} {countries}"
rule card
  key card_id
  match o: order[card_orders >= 4]
  within 10s
  emit "{card_orders}"
aggregate by_country
  from order
  group by country
  window hopping 20s every 10s
  compute total = sum(amount), n = count(), users = distinct(user_id), top = max(amount), mean = avg(amount)
  alert when total > previous_avg(total, 3) and top >= previous_max(top, 2)
  emit "{group} {total} {mean}"
)";
  auto compiled = testing::CompileRules(rules);
  auto events = Stream();
  engine::EngineOptions options;
  options.out_of_order = 3000;
  struct RecordSink : engine::CollectingSink {
    void PublishAggregate(const engine::AggregateRecord& r) override { records.push_back(r.json); }
    std::vector<std::string> records;
  };
  RecordSink golden;
  {
    engine::EventDecoder dec(compiled, {});
    engine::Engine eng(compiled, options, &golden);
    for (size_t i = 0; i < events.size(); ++i) eng.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    eng.Finish();
  }
  REQUIRE(golden.alerts.size() >= 10);
  REQUIRE(golden.records.size() >= 20);
  size_t aggregate_alerts = 0;
  for (const auto& a : golden.alerts) aggregate_alerts += a.json.find("\"reason\":\"aggregate\"") != std::string::npos;
  CHECK(aggregate_alerts >= 3);
  for (size_t cut = 0; cut <= events.size(); cut += 5) {
    CAPTURE(cut);
    RecordSink first, second;
    engine::EventDecoder dec(compiled, {});
    engine::Engine a(compiled, options, &first);
    engine::MemoryStateStore store;
    for (size_t i = 0; i < cut; ++i) {
      a.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
      if (i % 4 == 3) REQUIRE(a.SaveChanges(&store).ok());  // saved as the daemon saves: changes only
    }
    REQUIRE(a.SaveChanges(&store).ok());
    engine::Engine b(compiled, options, &second);
    engine::Engine::LoadReport report;
    REQUIRE(b.Load(store, &dec, &report).ok());
    CHECK(report.keys_dropped == 0);
    CHECK(b.active_keys() == a.active_keys());
    for (size_t i = cut; i < events.size(); ++i) b.Push(dec.Decode(events[i], {"in", 0, int64_t(i)}).value());
    b.Finish();
    auto got = Json(first.alerts);
    auto rest = Json(second.alerts);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == Json(golden.alerts));
    auto records = first.records;
    records.insert(records.end(), second.records.begin(), second.records.end());
    CHECK(records == golden.records);
  }
}

TEST_CASE("a counter whose declaration changed is not restored: its state is dropped and the record rewritten") {
  auto before = testing::CompileRules("counter c\n  key user_id\n  count order\n  over 1h\n");
  auto after = testing::CompileRules("counter c\n  key user_id\n  count order[amount > 10]\n  over 1h\n");
  engine::EventDecoder dec(before, {});
  engine::Engine a(before, {}, nullptr);
  a.Push(dec.Decode(R"({"type":"order","ts":1000,"user_id":"u","amount":5})", {}).value());
  engine::MemoryStateStore store;
  REQUIRE(a.Save(&store).ok());
  CHECK(a.active_keys() == 1);
  engine::EventDecoder dec2(after, {});
  engine::Engine b(after, {}, nullptr);
  engine::Engine::LoadReport report;
  REQUIRE(b.Load(store, &dec2, &report).ok());
  CHECK(b.active_keys() == 0);
  CHECK(report.stale_keys.size() == 1);  // deleted at the next save
}

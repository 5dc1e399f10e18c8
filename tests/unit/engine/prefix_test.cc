// Runs of a leading `any{k} =>` prefix are kept implicitly (nfa::PrefixRuns):
// the engine must behave exactly as when every one of them is a Run. Random
// rules of that shape (every skip policy, limits that evict prefix runs,
// cooldown, where, absent and counted steps after the prefix) and random
// streams (few keys, equal times, out-of-order and late events) run through
// two engines, one compiled with the implicit prefix and one without: after
// every event their statistics (alerts, suppressed, evicted, live runs) must
// be equal, their saved state byte for byte at many points, and their alerts
// (JSON, ids included) at the end. An engine restored from the implicit
// engine's state must finish with the same alerts too.
#include <algorithm>
#include <random>

#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/state_codec.h"
#include "test_util.h"

using namespace cepheus;

namespace {

std::shared_ptr<const nfa::CompiledRuleSet> CompileWith(const std::string& text, nfa::CompileOptions options) {
  DiagnosticSink diags;
  dsl::RuleSet set;
  bool ok = dsl::ParseSource(std::make_shared<const SourceFile>("test.rules", text), &set, &diags);
  INFO(text);
  INFO(diags.FormatAll());
  REQUIRE(ok);
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(set)), options);
  REQUIRE(compiled.ok());
  return compiled.value();
}

struct Rng {
  std::mt19937_64 gen;
  uint64_t Below(uint64_t n) { return gen() % n; }
  bool Chance(int percent) { return Below(100) < static_cast<uint64_t>(percent); }
  template <class T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }
};

std::string GenRule(Rng& rng, int serial) {
  int k = static_cast<int>(rng.Below(nfa::kMaxPrefix)) + 1;
  std::string p = k == 1 && rng.Chance(50) ? "p: any" : fmt::format("p: any{{{}}}", k);
  std::string list = k == 1 && p == "p: any" ? "" : "p";
  std::vector<std::string> l_filters = {"", "[country not in p.country]", "[amount > 100]",
                                        "[country in p.country or amount > 500]"};
  if (list.empty()) l_filters = {"", "[country != p.country]", "[amount > p.amount]"};
  std::string step1 = rng.Pick(std::vector<std::string>{"login", "order", "(login | payment)", "any"}) +
                      rng.Pick(l_filters);
  std::string q1 = rng.Pick(std::vector<std::string>{"", "", "", "{2}", "{1,}"});
  std::string pattern = p + " => l: " + step1 + q1;
  int more = static_cast<int>(rng.Below(4));
  if (more == 1) pattern += rng.Pick(std::vector<std::string>{" -> ", " => "}) + (q1.empty() ? "o: order[country == l.country]" : "o: order[country in l.country]");
  if (more == 2) pattern += " -> absent payment";
  if (more == 3) pattern += " -> absent logout -> o: order";
  std::string text = fmt::format("rule g{}\n  key user_id\n  match {}\n", serial, pattern);
  if (rng.Chance(25)) {
    text += list.empty() ? "  where p.amount > 50\n" : "  where sum(p.amount) > 300\n";
  }
  text += "  within " + rng.Pick(std::vector<std::string>{"5s", "20s", "1m"}) + "\n";
  text += rng.Pick(std::vector<std::string>{"", "  skip past_last\n", "  skip to_next\n", "  skip none\n"});
  if (rng.Chance(20)) text += "  cooldown " + rng.Pick(std::vector<std::string>{"5s", "30s"}) + "\n";
  if (rng.Chance(30)) text += fmt::format("  limit {}\n", rng.Below(5) + 1);
  if (!list.empty() && rng.Chance(30)) text += "  emit \"{key} {count(p)} {p.country} {l.country}\"\n";
  return text;
}

std::vector<std::string> GenEvents(Rng& rng, Millis* out_of_order) {
  const std::vector<std::string> types = {"login", "order", "payment", "logout", "password_change"};
  const std::vector<std::string> countries = {"FR", "DE", "US"};
  std::vector<std::string> out;
  int n = 20 + static_cast<int>(rng.Below(60));
  long long ts = 1700000000000;
  *out_of_order = rng.Chance(50) ? 0 : 3000;
  for (int i = 0; i < n; ++i) {
    if (!rng.Chance(20)) ts += static_cast<long long>(rng.Below(rng.Chance(10) ? 40000 : 4000));
    long long skew = rng.Chance(20) ? static_cast<long long>(rng.Below(5000)) : 0;
    out.push_back(fmt::format(
        R"({{"id":"e{}","type":"{}","ts":{},"user_id":"u{}","country":"{}","amount":{}}})", i,
        rng.Pick(types), ts - skew, rng.Below(3), rng.Pick(countries), rng.Below(700)));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> Saved(engine::Engine& e) {
  engine::MemoryStateStore store;
  REQUIRE(e.Save(&store).ok());
  std::vector<std::pair<std::string, std::string>> out;
  store.Scan("", [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return out;
}

std::vector<std::string> Json(const std::vector<engine::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(a.json);
  return out;
}

nfa::CompileOptions Prefix(bool on) {
  nfa::CompileOptions o;
  o.implicit_prefix = on;
  return o;
}

nfa::CompileOptions Suffix(bool on) {
  nfa::CompileOptions o;
  o.shared_suffix = on;
  return o;
}

enum class Kept { kPrefix, kSuffix };

// Runs `events` through two engines, one compiled with the implicit form of
// `kept` and one without; returns the number of alerts. A shared suffix
// buffer writes its runs as the Runs they stand for, but does not track
// whether they skipped an event (meaningless with one step, as there is no
// `=>`), so for it the saved states are compared by what they restore to.
size_t Compare(const std::string& rules, const std::vector<std::string>& events, Millis out_of_order,
               uint64_t* evicted, Kept kept = Kept::kPrefix) {
  bool prefix = kept == Kept::kPrefix;
  auto with = CompileWith(rules, prefix ? Prefix(true) : Suffix(true));
  auto without = CompileWith(rules, prefix ? Prefix(false) : Suffix(false));
  auto implicit = [&](const nfa::Program& p) {
    return prefix ? p.prefix > 0 : p.suffix.kind != nfa::SuffixPlan::Kind::kNone;
  };
  bool any_implicit = false;
  for (const auto& p : with->programs) any_implicit |= implicit(*p);
  REQUIRE(any_implicit);
  for (const auto& p : without->programs) REQUIRE(!implicit(*p));
  engine::EngineOptions options;
  options.out_of_order = out_of_order;
  engine::CollectingSink sa, sb;
  engine::EventDecoder da(with, {}), db(without, {});
  engine::Engine a(with, options, &sa), b(without, options, &sb);
  size_t cut = events.size() / 2;
  std::vector<std::pair<std::string, std::string>> saved_at_cut;
  size_t alerts_at_cut = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    CAPTURE(i);
    a.Push(da.Decode(events[i], {"in", 0, int64_t(i)}).value());
    b.Push(db.Decode(events[i], {"in", 0, int64_t(i)}).value());
    REQUIRE(a.stats().rules.size() == b.stats().rules.size());
    for (size_t r = 0; r < a.stats().rules.size(); ++r) {
      CHECK(a.stats().rules[r].alerts == b.stats().rules[r].alerts);
      CHECK(a.stats().rules[r].suppressed == b.stats().rules[r].suppressed);
      CHECK(a.stats().rules[r].evicted == b.stats().rules[r].evicted);
      CHECK(a.stats().rules[r].runs == b.stats().rules[r].runs);
    }
    CHECK(a.active_keys() == b.active_keys());
    if (i % 5 == 0 || i == cut) {
      auto sav = Saved(a);
      if (prefix) CHECK(sav == Saved(b));
      if (i == cut) saved_at_cut = sav, alerts_at_cut = sa.alerts.size();
    }
  }
  a.Finish();
  b.Finish();
  CHECK(Json(sa.alerts) == Json(sb.alerts));
  CHECK(a.active_runs() == 0);
  for (const auto& r : a.stats().rules) *evicted += r.evicted;

  // Restored from the implicit engine's state at the cut: same alerts after it.
  engine::MemoryStateStore store;
  for (const auto& [k, v] : saved_at_cut) REQUIRE(store.Put(k, v).ok());
  engine::CollectingSink sc;
  engine::Engine c(with, options, &sc);
  REQUIRE(c.Load(store, &da).ok());
  for (size_t i = cut + 1; i < events.size(); ++i) c.Push(da.Decode(events[i], {"in", 0, int64_t(i)}).value());
  c.Finish();
  engine::MemoryStateStore store2;
  for (const auto& [k, v] : saved_at_cut) REQUIRE(store2.Put(k, v).ok());
  engine::CollectingSink sd;
  engine::Engine d(without, options, &sd);
  REQUIRE(d.Load(store2, &db).ok());
  for (size_t i = cut + 1; i < events.size(); ++i) d.Push(db.Decode(events[i], {"in", 0, int64_t(i)}).value());
  d.Finish();
  CHECK(Json(sc.alerts) == Json(sd.alerts));
  // The same alerts as the engine that never stopped; closings at one time
  // across keys may come in another order after a load (key order), with or
  // without the implicit prefix.
  std::vector<std::string> all = Json(sa.alerts);
  std::vector<std::string> tail(all.begin() + static_cast<std::ptrdiff_t>(alerts_at_cut), all.end());
  std::vector<std::string> got = Json(sc.alerts);
  std::sort(tail.begin(), tail.end());
  std::sort(got.begin(), got.end());
  CHECK(tail == got);
  return sa.alerts.size();
}

}  // namespace

TEST_CASE("the compiler keeps the runs of a leading any{k} => prefix implicitly, and only those") {
  auto c = CompileWith(R"(
rule a key user_id match p: any{3} => l: login[country not in p.country] within 30m
rule b key user_id match p: any => l: login within 30m
rule c key user_id match p: any{3} -> l: login within 30m
rule d key user_id match p: order{3} => l: login within 30m
rule e key user_id match p: any{2,3} => l: login within 30m
rule f key user_id match p: any{5} => l: login within 30m
rule g key user_id match p: any{2} => absent login -> o: order within 30m
rule h key user_id match p: any[amount > 5]{2} => l: login within 30m
rule i key user_id match p: any{2} => l: login? -> o: order within 30m
)",
                       Prefix(true));
  std::vector<int> want = {3, 1, 0, 0, 0, 0, 0, 0, 0};
  REQUIRE(c->programs.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(c->programs[i]->name);
    CHECK(c->programs[i]->prefix == want[i]);
  }
}

TEST_CASE("implicit prefix runs behave exactly as Runs: stats, state bytes and alerts") {
  Rng rng{std::mt19937_64(777)};
  size_t alerts = 0;
  uint64_t evicted = 0;
  for (int i = 0; i < 400; ++i) {
    std::string rules = GenRule(rng, i);
    if (rng.Chance(30)) rules += GenRule(rng, 1000 + i);
    Millis d = 0;
    auto events = GenEvents(rng, &d);
    CAPTURE(rules);
    alerts += Compare(rules, events, d, &evicted);
  }
  // The campaign did exercise matches and evictions.
  CHECK(alerts > 500);
  CHECK(evicted > 100);
}

TEST_CASE("the project's rules give the same alerts and state with and without the implicit prefix") {
  std::string rules = R"(
rule account_takeover
  key user_id
  match p: any{3}
     => l: login[country not in p.country]
     -> c: (password_change | payment_method_change)[country == l.country]
     -> o: order[country == l.country and amount >= 1000]
  within 30m
  skip to_next
  emit "user {key}: login from {l.country} (the {count(p)} events before it came from {p.country}), then {c.type}, then order {o.order_id}"
rule login_country_jump
  key user_id
  match p: any{3} => l: login[country not in p.country]
  within 30m
  emit "user {key}: login from {l.country} right after {count(p)} events from {p.country}"
)";
  Rng rng{std::mt19937_64(99)};
  size_t alerts = 0;
  uint64_t evicted = 0;
  for (int i = 0; i < 60; ++i) {
    Millis d = 0;
    auto events = GenEvents(rng, &d);
    alerts += Compare(rules, events, d, &evicted);
  }
  CHECK(alerts > 20);
}

// ---- runs in one shared buffer (nfa::SuffixRuns) -----------------------------

TEST_CASE("the compiler keeps the runs of a one-step pattern in a shared buffer, and only when it may") {
  auto c = CompileWith(R"(
rule a key user_id match p: payment{3,} where sum(p.amount) > 2000 within 15m
rule b key user_id match o: order[category not in o.category]{4} within 5m
rule c key user_id match o: order{5,} where max(o.amount) > 500 and count(o) >= 6 within 10m
rule d key user_id match o: order[amount > 10]{3} within 10m
rule e key user_id match o: order{3,} where avg(o.amount) > 50 within 10m
rule f key user_id match o: order{3,5} where sum(o.amount) > 50 within 10m
rule g key user_id match o: order{3} within 10m skip to_next
rule h key user_id match o: order[amount > last(o.amount)]{3} within 10m
rule i key user_id match o: order[country not in o.category]{3} within 10m
rule j key user_id match o: order{2} -> p: payment within 10m
rule k key user_id match o: order[country not in o.country and amount > 5]{3} within 10m
rule l key user_id match o: order{2,} where min(o.amount) < 3 or 100 < max(o.amount) within 10m
rule m key user_id match o: order{2,} where sum(o.amount) < 100 within 10m
rule n key user_id match a: login -> b: password_change -> c: order[amount > 200] within 20m
rule o key user_id match a: login -> b: order[country == a.country] within 20m
rule p key user_id match a: login => b: order within 20m
rule q key user_id match a: login -> b: order within 20m skip none
rule r key user_id match a: login -> b: order{2} within 20m
rule s key user_id match a: login -> absent logout -> b: order within 20m
rule t key user_id match a: login -> b: order within 20m where b.amount > 5
)",
                       Suffix(true));
  using K = nfa::SuffixPlan::Kind;
  std::vector<K> want = {K::kAll,      K::kDistinct, K::kAll,  K::kAll,  K::kNone, K::kNone, K::kNone,
                         K::kNone,     K::kNone,     K::kNone, K::kDistinct, K::kAll, K::kNone, K::kSequence,
                         K::kNone,     K::kNone,     K::kNone, K::kNone, K::kNone, K::kNone};
  REQUIRE(c->programs.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(c->programs[i]->name);
    CHECK(c->programs[i]->suffix.kind == want[i]);
  }
}

namespace {

// One-step rules of the shapes a shared buffer takes (and a few it refuses,
// which must still agree), over streams with hot keys.
std::string GenSuffixRule(Rng& rng, int serial) {
  if (rng.Chance(35)) {
    // A plain sequence (kSequence), steps that overlap in type included.
    std::vector<std::string> steps = {"login", "order", "payment", "any", "(order | payment)",
                                      "order[amount > 300]", "login[country == \"FR\"]", "payment[amount < 200]"};
    int n = 2 + static_cast<int>(rng.Below(3));
    std::string pattern;
    for (int i = 0; i < n; ++i) pattern += (i ? " -> " : "") + fmt::format("s{}: ", i) + rng.Pick(steps);
    std::string text = fmt::format("rule g{}\n  key user_id\n  match {}\n", serial, pattern);
    text += "  within " + rng.Pick(std::vector<std::string>{"5s", "20s", "1m"}) + "\n";
    if (rng.Chance(20)) text += "  cooldown 30s\n";
    if (rng.Chance(30)) text += fmt::format("  limit {}\n", rng.Below(5) + 1);
    if (rng.Chance(30)) text += "  emit \"{key} {s0.country} {s1.amount}\"\n";
    return text;
  }
  std::string type = rng.Pick(std::vector<std::string>{"order", "login", "(order | payment)", "any"});
  std::string filter = rng.Pick(std::vector<std::string>{
      "", "", "[amount > 100]", "[country not in o.country]", "[country not in o.country and amount > 50]",
      "[amount not in o.amount]", "[amount < 300 and country != \"US\"]"});
  bool distinct = filter.find("not in") != std::string::npos;
  std::string q = rng.Pick(std::vector<std::string>{"{1}", "{2}", "{3}", "{2,}", "{3,}", "+", "{2,4}"});
  std::string text = fmt::format("rule g{}\n  key user_id\n  match o: {}{}{}\n", serial, type, filter, q);
  if (!distinct && rng.Chance(60)) {
    text += "  where " +
            rng.Pick(std::vector<std::string>{"sum(o.amount) > 900", "max(o.amount) >= 600", "min(o.amount) < 50",
                                              "count(o) >= 4 and sum(o.amount) > 700",
                                              "sum(o.amount) > 1500 or max(o.amount) > 650",
                                              "1000 < sum(o.amount)", "avg(o.amount) > 300"}) +
            "\n";
  }
  text += "  within " + rng.Pick(std::vector<std::string>{"5s", "20s", "1m"}) + "\n";
  if (rng.Chance(20)) text += "  cooldown " + rng.Pick(std::vector<std::string>{"5s", "30s"}) + "\n";
  if (rng.Chance(30)) text += fmt::format("  limit {}\n", rng.Below(5) + 1);
  if (rng.Chance(30)) text += "  emit \"{key} {count(o)} {o.country} {sum(o.amount)}\"\n";
  return text;
}

}  // namespace

TEST_CASE("runs in a shared buffer behave exactly as Runs: stats, alerts, and state that restores the same") {
  Rng rng{std::mt19937_64(4242)};
  size_t alerts = 0;
  uint64_t evicted = 0;
  int compared = 0;
  for (int i = 0; i < 600; ++i) {
    std::string rules = GenSuffixRule(rng, i) + GenSuffixRule(rng, 1000 + i);
    if (CompileWith(rules, Suffix(true))->programs[0]->suffix.kind == nfa::SuffixPlan::Kind::kNone &&
        CompileWith(rules, Suffix(true))->programs[1]->suffix.kind == nfa::SuffixPlan::Kind::kNone) {
      continue;
    }
    Millis d = 0;
    auto events = GenEvents(rng, &d);
    CAPTURE(rules);
    alerts += Compare(rules, events, d, &evicted, Kept::kSuffix);
    ++compared;
  }
  MESSAGE(compared << " rule pairs, " << alerts << " alerts, " << evicted << " runs evicted");
  CHECK(compared > 300);
  CHECK(alerts > 1000);
  CHECK(evicted > 100);
}

TEST_CASE("a negative amount moves a key's shared buffer of a sum rule into Runs without changing its alerts") {
  std::string rules = "rule s\n  key user_id\n  match o: order{2,}\n  where sum(o.amount) > 100\n  within 1m\n";
  std::vector<std::string> events;
  for (int i = 0; i < 12; ++i) {
    int amount = i == 4 ? -80 : 30;
    events.push_back(fmt::format(R"({{"id":"e{}","type":"order","ts":{},"user_id":"u1","amount":{}}})", i,
                                 1700000000000 + i * 1000, amount));
  }
  uint64_t evicted = 0;
  CHECK(Compare(rules, events, 0, &evicted, Kept::kSuffix) == 2);
}

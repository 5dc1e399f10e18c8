// Tables (section 6.1): lookups read the version of a record that holds at
// the event's time, through engine::Tables and through the engine.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/tables.h"
#include "test_util.h"

using namespace cepheus;

namespace {

const char* kProfiles = R"(
table profiles
  key user_id
  time updated_at
  history 1d
rule foreign_order
  key user_id
  match o: order[country != profiles[user_id].country]
  within 1m
)";

// The country a lookup of `user` reads at `at`, or "null".
std::string CountryAt(const engine::Tables& tables, const nfa::CompiledRuleSet& rules, const std::string& user,
                      Millis at) {
  int32_t t = rules.FindTable("profiles");
  const nfa::Event* rec = tables.Find(t, user, at);
  if (rec == nullptr) return "null";
  int slot = -1;
  const auto& paths = rules.tables[static_cast<size_t>(t)].fields.paths();
  for (size_t i = 0; i < paths.size(); ++i) {
    if (paths[i] == std::vector<std::string>{"country"}) slot = static_cast<int>(i);
  }
  REQUIRE(slot >= 0);
  return nfa::ToText(rec->fields[static_cast<size_t>(slot)]);
}

}  // namespace

TEST_CASE("a lookup reads the version that holds at the time: before the first, between two, at one, after a deletion") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  int32_t t = tables.Index("profiles");
  REQUIRE(t == 0);
  REQUIRE(tables.Apply(t, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  REQUIRE(tables.Apply(t, R"({"user_id":"u1","updated_at":2000,"country":"DE"})").ok());
  REQUIRE(tables.Apply(t, R"({"user_id":"u1","updated_at":3000,"deleted":true})").ok());
  REQUIRE(tables.Apply(t, R"({"user_id":"u1","updated_at":4000,"country":"US"})").ok());
  CHECK(CountryAt(tables, *rules, "u1", 999) == "null");   // before the first version
  CHECK(CountryAt(tables, *rules, "u1", 1000) == "FR");    // from its time on
  CHECK(CountryAt(tables, *rules, "u1", 1999) == "FR");
  CHECK(CountryAt(tables, *rules, "u1", 2000) == "DE");
  CHECK(CountryAt(tables, *rules, "u1", 3500) == "null");  // deleted from 3000
  CHECK(CountryAt(tables, *rules, "u1", 4000) == "US");    // and back
  CHECK(CountryAt(tables, *rules, "u2", 4000) == "null");  // no record
  CHECK(tables.stats(t).keys == 1);
  CHECK(tables.stats(t).versions == 4);
}

TEST_CASE("of two versions with one time the later in the source wins, and records out of time order fall in place") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":2000,"country":"DE"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());  // earlier, sent later
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":2000,"country":"GB"})").ok());  // same time: replaces
  CHECK(CountryAt(tables, *rules, "u1", 1500) == "FR");
  CHECK(CountryAt(tables, *rules, "u1", 2500) == "GB");
  CHECK(tables.stats(0).versions == 2);
}

TEST_CASE("a record without its time field holds from the beginning of time, and a later one replaces it") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","country":"FR"})").ok());
  CHECK(CountryAt(tables, *rules, "u1", -5000) == "FR");
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","country":"DE"})").ok());
  CHECK(CountryAt(tables, *rules, "u1", -5000) == "DE");
  CHECK(tables.stats(0).versions == 1);
}

TEST_CASE("a key that is a number is looked up by its text, and records without a usable key or time are refused") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":42,"country":"FR"})").ok());
  CHECK(CountryAt(tables, *rules, "42", 0) == "FR");
  Status no_key = tables.Apply(0, R"({"country":"FR"})");
  CHECK(no_key.code() == Status::Code::kInvalidArgument);
  CHECK(no_key.message().find("no usable key 'user_id'") != std::string::npos);
  CHECK(tables.Apply(0, R"({"user_id":null})").code() == Status::Code::kInvalidArgument);
  CHECK(tables.Apply(0, R"({"user_id":"u","updated_at":"yesterday"})").message().find("RFC 3339") != std::string::npos);
  CHECK(tables.Apply(0, "[1,2]").message() == "not a JSON object");
  CHECK(tables.Apply(0, "{").message().find("not valid JSON") == 0);
  CHECK(tables.stats(0).malformed == 5);
  CHECK(tables.stats(0).records == 1);
}

TEST_CASE("versions older than history behind the watermark are folded into one, and lookups within history read the same") {
  auto rules = testing::CompileRules(kProfiles);  // history 1d
  const Millis day = 86400000;
  engine::Tables tables(rules, {});
  for (int i = 0; i < 10; ++i) {
    REQUIRE(tables.Apply(0, fmt::format(R"({{"user_id":"u1","updated_at":{},"country":"C{}"}})", i * day, i)).ok());
  }
  const Millis watermark = 9 * day + 1;  // horizon: 8 days + 1 ms
  std::vector<std::string> before;
  for (Millis at = watermark - day; at <= 10 * day; at += day / 4) before.push_back(CountryAt(tables, *rules, "u1", at));
  tables.Fold(watermark);
  CHECK(tables.stats(0).versions == 2);  // C8 (standing for C0..C8) and C9
  std::vector<std::string> after;
  for (Millis at = watermark - day; at <= 10 * day; at += day / 4) after.push_back(CountryAt(tables, *rules, "u1", at));
  CHECK(before == after);
  CHECK(CountryAt(tables, *rules, "u1", 0) == "C8");  // older times read the folded version
  CHECK(CountryAt(tables, *rules, "u1", -1) == "null");
}

TEST_CASE("a key whose only version left is an old deletion is removed by the fold") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":2000,"deleted":true})").ok());
  tables.Fold(10LL * 86400000);
  CHECK(tables.stats(0).keys == 0);
  CHECK(tables.stats(0).versions == 0);
  CHECK(CountryAt(tables, *rules, "u1", 5000) == "null");
}

TEST_CASE("at max_versions a new version is refused and counted, and the versions kept still read") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {.max_versions = 2});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u2","updated_at":1000,"country":"DE"})").ok());
  Status st = tables.Apply(0, R"({"user_id":"u3","updated_at":1000,"country":"US"})");
  CHECK(st.code() == Status::Code::kLimitExceeded);
  CHECK(st.message().find("table 'profiles' holds 2 versions, its limit") != std::string::npos);
  CHECK(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"GB"})").ok());  // a replacement adds none
  CHECK(tables.stats(0).refused == 1);
  CHECK(CountryAt(tables, *rules, "u1", 1000) == "GB");
  CHECK(CountryAt(tables, *rules, "u3", 1000) == "null");
}

TEST_CASE("an update timed at or before a lookup already made of the table is counted as late") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  CountryAt(tables, *rules, "u1", 5000);
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":4000,"country":"DE"})").ok());  // should have applied
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":6000,"country":"US"})").ok());
  CHECK(tables.stats(0).late == 1);
}

TEST_CASE("a filter's lookup reads the table as of each event's time") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":0,"country":"FR"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":5000,"country":"DE"})").ok());
  engine::EventDecoder dec(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  eng.set_tables(&tables);
  for (auto [id, ts, country] : std::vector<std::tuple<const char*, int, const char*>>{
           {"a", 1000, "FR"}, {"b", 2000, "DE"}, {"c", 6000, "DE"}, {"d", 7000, "FR"}, {"e", 8000, "US"}}) {
    eng.Push(dec.Decode(fmt::format(R"({{"id":"{}","type":"order","ts":{},"user_id":"u1","country":"{}"}})", id, ts,
                                    country),
                        {})
                 .value());
  }
  eng.Finish();
  // Foreign as of its time: b (home FR until 5000), d and e (home DE from 5000).
  CHECK(testing::Reduce(sink.alerts) ==
        std::vector<std::string>{"foreign_order|u1|match|o=b", "foreign_order|u1|match|o=d",
                                 "foreign_order|u1|match|o=e"});
}

TEST_CASE("`in TABLE` and `not in TABLE` test for a live record at the event's time; a null key is in neither") {
  auto rules = testing::CompileRules(R"(
table blocked_cards
  key card
  time since
rule blocked
  key user_id
  match p: payment[card in blocked_cards]
  within 1m
rule unblocked
  key user_id
  match p: payment[card not in blocked_cards]
  within 1m
)");
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"card":"c1","since":1000})").ok());
  REQUIRE(tables.Apply(0, R"({"card":"c1","since":3000,"deleted":true})").ok());
  engine::EventDecoder dec(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  eng.set_tables(&tables);
  for (auto [id, ts, card] : std::vector<std::tuple<const char*, int, const char*>>{
           {"a", 500, R"("c1")"}, {"b", 1500, R"("c1")"}, {"c", 3500, R"("c1")"}, {"d", 4000, "null"}}) {
    eng.Push(dec.Decode(fmt::format(R"({{"id":"{}","type":"payment","ts":{},"user_id":"u","card":{}}})", id, ts, card),
                        {})
                 .value());
  }
  eng.Finish();
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"unblocked|u|match|p=a", "blocked|u|match|p=b",
                                                                 "unblocked|u|match|p=c"});
}

TEST_CASE("a tombstone deletes its key from its time on, and a later record brings the key back") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  REQUIRE(tables.Delete(0, "u1", 2000).ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":3000,"country":"DE"})").ok());
  CHECK(CountryAt(tables, *rules, "u1", 1500) == "FR");
  CHECK(CountryAt(tables, *rules, "u1", 2500) == "null");
  CHECK(CountryAt(tables, *rules, "u1", 3500) == "DE");
}

TEST_CASE("a table saved to a store and loaded back reads the same at every time, into rules that read other fields too") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR","tier":"gold"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":2000,"deleted":true})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":3000,"country":"DE","tier":"silver"})").ok());
  REQUIRE(tables.Delete(0, "u2", 500).ok());
  engine::MemoryStateStore store;
  REQUIRE(tables.SaveChanges(0, &store).ok());
  CHECK(store.size() == 2);  // one record per key

  // Loaded by rules that also read `tier`.
  auto wider = testing::CompileRules(std::string(kProfiles) +
                                     "rule gold key user_id match o: order[profiles[user_id].tier == \"gold\"] within 1m\n");
  engine::Tables loaded(wider, {});
  REQUIRE(loaded.Load(0, store).ok());
  for (Millis at : {999, 1000, 1500, 2000, 2500, 3000, 9000}) {
    CAPTURE(at);
    CHECK(CountryAt(loaded, *wider, "u1", at) == CountryAt(tables, *rules, "u1", at));
  }
  const nfa::Event* rec = loaded.Find(0, "u1", 1500);
  REQUIRE(rec != nullptr);
  bool gold = false;
  const auto& paths = wider->tables[0].fields.paths();
  for (size_t i = 0; i < paths.size(); ++i) gold |= paths[i] == std::vector<std::string>{"tier"} && rec->fields[i].str() == "gold";
  CHECK(gold);
  CHECK(loaded.stats(0).keys == 2);
  CHECK(loaded.stats(0).versions == 4);

  // Nothing changed since the load: nothing is written.
  engine::MemoryStateStore again;
  REQUIRE(loaded.SaveChanges(0, &again).ok());
  CHECK(again.size() == 0);
}

TEST_CASE("a fold is saved too, and a key it removed is deleted from the store") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":2000,"deleted":true})").ok());
  engine::MemoryStateStore store;
  REQUIRE(tables.SaveChanges(0, &store).ok());
  CHECK(store.size() == 1);
  tables.Fold(10LL * 86400000);
  REQUIRE(tables.SaveChanges(0, &store).ok());
  CHECK(store.size() == 0);
}

TEST_CASE("records saved under another declaration of the table (key or time field) are not loaded as this one's") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables tables(rules, {});
  REQUIRE(tables.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR"})").ok());
  engine::MemoryStateStore store;
  REQUIRE(tables.SaveChanges(0, &store).ok());
  auto other = testing::CompileRules(
      "table profiles\n  key user_id\n  time changed_at\n"
      "rule r key user_id match o: order[profiles[user_id].country == \"FR\"] within 1m\n");
  engine::Tables loaded(other, {});
  CHECK(tables.Prefix(0) != loaded.Prefix(0));
  REQUIRE(loaded.Load(0, store).ok());
  CHECK(loaded.stats(0).keys == 0);
}

TEST_CASE("a table taken over by a rule set that reads other fields of it reads the same, and the new fields too") {
  auto rules = testing::CompileRules(kProfiles);
  engine::Tables running(rules, {});
  REQUIRE(running.Apply(0, R"({"user_id":"u1","updated_at":1000,"country":"FR","tier":"gold"})").ok());
  REQUIRE(running.Apply(0, R"({"user_id":"u1","updated_at":3000,"country":"DE","tier":"silver"})").ok());
  engine::MemoryStateStore unsaved;
  auto wider = testing::CompileRules(std::string(kProfiles) +
                                     "rule gold key user_id match o: order[profiles[user_id].tier == \"gold\"] within 1m\n");
  engine::Tables next(wider, {});
  REQUIRE(next.Adopt(0, running, 0).ok());
  CHECK(CountryAt(next, *wider, "u1", 2000) == "FR");
  CHECK(CountryAt(next, *wider, "u1", 3000) == "DE");
  const nfa::Event* rec = next.Find(0, "u1", 2000);
  REQUIRE(rec != nullptr);
  const auto& paths = wider->tables[0].fields.paths();
  bool gold = false;
  for (size_t i = 0; i < paths.size(); ++i) gold |= paths[i] == std::vector<std::string>{"tier"} && rec->fields[i].str() == "gold";
  CHECK(gold);
  CHECK(next.stats(0).versions == 2);
  CHECK(running.stats(0).keys == 0);  // moved, not copied
  // The keys not yet saved when it was taken over are saved by the new owner.
  REQUIRE(next.SaveChanges(0, &unsaved).ok());
  CHECK(unsaved.size() == 1);

  // Another declaration of the table is not taken over.
  auto other = testing::CompileRules(
      "table profiles\n  key user_id\n  time changed_at\n"
      "rule r key user_id match o: order[profiles[user_id].country == \"FR\"] within 1m\n");
  engine::Tables refused(other, {});
  CHECK(refused.Adopt(0, next, 0).code() == Status::Code::kFailedPrecondition);
  CHECK(next.stats(0).versions == 2);
}

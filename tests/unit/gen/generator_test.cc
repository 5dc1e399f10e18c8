// Tests of the synthetic event generator (`cepheus gen`).
#include "cepheus/gen/generator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <simdjson.h>

namespace cepheus::gen {
namespace {

std::vector<std::string> Generate(const GenOptions& options, GenStats* stats = nullptr) {
  std::vector<std::string> lines;
  GenStats s = GenerateEvents(options, [&](std::string_view line) { lines.emplace_back(line); });
  if (stats != nullptr) *stats = s;
  return lines;
}

// The fields of one event; absent strings are empty, an absent amount is -1.
struct Parsed {
  std::string id, type, user_id, card_id, country, order_id, device, category, method;
  int64_t ts = 0;
  double amount = -1;
  std::vector<std::string> keys;  // in document order
};

std::string GetString(simdjson::dom::object object, std::string_view key) {
  std::string_view value;
  if (object[key].get_string().get(value) != simdjson::SUCCESS) return "";
  return std::string(value);
}

Parsed Parse(simdjson::dom::parser& parser, const std::string& line) {
  Parsed p;
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(parser.parse(line).get(doc) == simdjson::SUCCESS, line);
  simdjson::dom::object object;
  REQUIRE_MESSAGE(doc.get_object().get(object) == simdjson::SUCCESS, line);
  for (auto field : object) p.keys.emplace_back(field.key);
  p.id = GetString(object, "id");
  p.type = GetString(object, "type");
  p.user_id = GetString(object, "user_id");
  p.card_id = GetString(object, "card_id");
  p.country = GetString(object, "country");
  p.order_id = GetString(object, "order_id");
  p.device = GetString(object, "device");
  p.category = GetString(object, "category");
  p.method = GetString(object, "method");
  REQUIRE_MESSAGE(object["ts"].get_int64().get(p.ts) == simdjson::SUCCESS, line);
  double amount;
  if (object["amount"].get_double().get(amount) == simdjson::SUCCESS) p.amount = amount;
  return p;
}

std::vector<Parsed> ParseAll(const std::vector<std::string>& lines) {
  simdjson::dom::parser parser;
  std::vector<Parsed> events;
  events.reserve(lines.size());
  for (const std::string& line : lines) events.push_back(Parse(parser, line));
  return events;
}

GenOptions Options(int64_t events, uint64_t seed = 7) {
  GenOptions options;
  options.events = events;
  options.seed = seed;
  return options;
}

TEST_CASE("the same seed gives the same events") {
  GenOptions options = Options(5000, 42);
  options.out_of_order = 3000;
  options.fraud_rate = 0.05;
  GenStats first_stats, second_stats;
  std::vector<std::string> first = Generate(options, &first_stats);
  std::vector<std::string> second = Generate(options, &second_stats);
  CHECK(first == second);
  CHECK(first_stats.events == second_stats.events);
  CHECK(first_stats.incidents == second_stats.incidents);
}

TEST_CASE("different seeds give different events") {
  std::vector<std::string> a = Generate(Options(2000, 1));
  std::vector<std::string> b = Generate(Options(2000, 2));
  REQUIRE(a.size() == b.size());
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i] ? 1 : 0;
  CHECK(differing > 1900);
}

TEST_CASE("exactly the requested number of events is emitted") {
  for (int64_t n : {0, 1, 2, 17, 1000, 12345}) {
    for (Millis out_of_order : {Millis{0}, Millis{5000}}) {
      GenOptions options = Options(n);
      options.out_of_order = out_of_order;
      options.fraud_rate = 0.1;
      GenStats stats;
      std::vector<std::string> lines = Generate(options, &stats);
      CHECK(static_cast<int64_t>(lines.size()) == n);
      CHECK(stats.events == n);
    }
  }
  GenOptions negative = Options(-5);
  CHECK(Generate(negative).empty());
}

TEST_CASE("ids count up from e1 in emission order even when events are late") {
  GenOptions options = Options(3000);
  options.out_of_order = 10000;
  std::vector<Parsed> events = ParseAll(Generate(options));
  REQUIRE(events.size() == 3000);
  for (size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i].id == "e" + std::to_string(i + 1));
  }
}

TEST_CASE("every line is a compact JSON object with the common fields first") {
  GenOptions options = Options(20000);
  options.fraud_rate = 0.05;
  options.out_of_order = 2000;
  std::vector<std::string> lines = Generate(options);
  const std::set<std::string> countries = {"FR", "DE", "US", "GB", "BR",
                                           "IN", "ES", "IT", "NL", "PL"};
  const std::vector<std::string> common = {"id", "type", "ts", "user_id", "card_id", "country"};
  std::map<std::string, std::vector<std::string>> extra = {
      {"login", {"device"}},
      {"logout", {}},
      {"order", {"order_id", "amount", "category"}},
      {"payment", {"order_id", "amount", "method"}},
      {"password_change", {}},
      {"payment_method_change", {}},
      {"refund", {"order_id", "amount"}},
  };
  std::map<std::string, int64_t> seen_types;
  simdjson::dom::parser parser;
  for (const std::string& line : lines) {
    CHECK(line.find_first_of(" \n\t") == std::string::npos);
    Parsed p = Parse(parser, line);
    REQUIRE_MESSAGE(extra.count(p.type) == 1, line);
    ++seen_types[p.type];
    std::vector<std::string> keys = common;
    keys.insert(keys.end(), extra[p.type].begin(), extra[p.type].end());
    CHECK_MESSAGE(p.keys == keys, line);
    CHECK(p.ts >= options.start);
    CHECK(p.user_id.size() > 1);
    CHECK(p.user_id[0] == 'u');
    CHECK(p.card_id == "c" + p.user_id.substr(1));
    CHECK(countries.count(p.country) == 1);
    if (p.type == "login") CHECK((p.device == "web" || p.device == "ios" || p.device == "android"));
    if (p.type == "payment") CHECK((p.method == "card" || p.method == "paypal"));
    if (p.type == "order") CHECK(!p.category.empty());
    if (p.amount >= 0) {
      CHECK(p.order_id.size() > 1);
      CHECK(p.order_id[0] == 'o');
      CHECK(p.amount > 0);
      double cents = p.amount * 100;
      CHECK(std::fabs(cents - std::round(cents)) < 1e-6);  // at most two decimals
    }
  }
  CHECK(seen_types.size() == extra.size());  // every type shows up
}

TEST_CASE("without out_of_order timestamps never decrease") {
  GenOptions options = Options(20000);
  options.fraud_rate = 0.05;
  std::vector<Parsed> events = ParseAll(Generate(options));
  REQUIRE(!events.empty());
  CHECK(events.front().ts == options.start);
  for (size_t i = 1; i < events.size(); ++i) CHECK(events[i].ts >= events[i - 1].ts);
  // The event-time clock advances by mean_gap on average (normal events only
  // move it, so the span is somewhat under events * mean_gap).
  Millis span = events.back().ts - events.front().ts;
  CHECK(span > 20000 * options.mean_gap / 3);
  CHECK(span < 20000 * options.mean_gap * 2);
}

TEST_CASE("with out_of_order some events are late but never by more than the bound") {
  for (Millis bound : {Millis{1}, Millis{500}, Millis{2000}, Millis{60000}}) {
    GenOptions options = Options(20000);
    options.out_of_order = bound;
    options.fraud_rate = 0.02;
    std::vector<Parsed> events = ParseAll(Generate(options));
    Millis max_seen = events.front().ts;
    int64_t late = 0;
    for (const Parsed& e : events) {
      if (e.ts < max_seen) ++late;
      CHECK(max_seen - e.ts <= bound);
      max_seen = std::max(max_seen, e.ts);
    }
    // About 5% are held back; with a tiny bound few of them overtake anything.
    if (bound >= 500) {
      CHECK(late > 20000 * 2 / 100);
      CHECK(late < 20000 * 8 / 100);
    } else {
      CHECK(late < 20000 * 8 / 100);
    }
  }
}

TEST_CASE("a few users produce most of the traffic") {
  GenOptions options = Options(20000);
  options.users = 1000;
  options.fraud_rate = 0;
  std::map<std::string, int64_t> per_user;
  for (const Parsed& e : ParseAll(Generate(options))) ++per_user[e.user_id];
  std::vector<int64_t> counts(static_cast<size_t>(options.users), 0);
  size_t i = 0;
  for (const auto& [user, count] : per_user) {
    int64_t n = std::stoll(user.substr(1));
    CHECK(n >= 1);
    CHECK(n <= options.users);
    counts[i++] = count;
  }
  std::sort(counts.begin(), counts.end());
  int64_t top = counts.back();
  int64_t median = counts[counts.size() / 2];
  CHECK(top > 50 * std::max<int64_t>(median, 1));
  CHECK(per_user["u1"] == top);  // rank 1 is the heaviest user
  CHECK(top < 20000 / 2);        // but not everything
}

TEST_CASE("ten million users are supported: the tail reaches past the first million and stops at ten") {
  // Zipf(1.1) over 10M users puts ~5% of events past user 1M: ~100 of 2000.
  GenOptions options = Options(2000);
  options.users = 10'000'000;
  std::set<std::string> users;
  int64_t highest = 0, past_a_million = 0;
  for (const Parsed& e : ParseAll(Generate(options))) {
    users.insert(e.user_id);
    REQUIRE(e.user_id.size() > 1);
    int64_t n = std::stoll(e.user_id.substr(1));  // "u123"
    highest = std::max(highest, n);
    past_a_million += n > 1'000'000;
  }
  CHECK(users.size() > 300);  // a long tail of distinct users
  CHECK(past_a_million >= 30);
  CHECK(highest <= 10'000'000);
}

TEST_CASE("a zero fraud rate plants no incidents") {
  GenOptions options = Options(20000);
  options.fraud_rate = 0;
  GenStats stats;
  std::vector<Parsed> events = ParseAll(Generate(options, &stats));
  CHECK(stats.incidents == 0);
  // Normal traffic stays home and spends between 10 and 900.
  std::map<std::string, std::string> country;
  for (const Parsed& e : events) {
    auto it = country.emplace(e.user_id, e.country).first;
    CHECK_MESSAGE(it->second == e.country, e.id);
    if (e.amount >= 0) {
      CHECK(e.amount >= 10);
      CHECK(e.amount <= 900);
    }
  }
}

TEST_CASE("a positive fraud rate plants about events times rate incidents") {
  for (double rate : {0.001, 0.01, 0.05}) {
    GenOptions options = Options(40000, 3);
    options.fraud_rate = rate;
    GenStats stats;
    Generate(options, &stats);
    double expected = 40000 * rate;
    CHECK(stats.incidents > expected * 0.6);
    CHECK(stats.incidents < expected * 1.4);
  }
}

TEST_CASE("normal orders are paid a few seconds later with the same amount") {
  GenOptions options = Options(30000);
  options.fraud_rate = 0;
  std::vector<Parsed> events = ParseAll(Generate(options));
  std::map<std::string, const Parsed*> orders;
  std::map<std::string, const Parsed*> payments;
  for (const Parsed& e : events) {
    if (e.type == "order") CHECK(orders.emplace(e.order_id, &e).second);
    if (e.type == "payment") CHECK(payments.emplace(e.order_id, &e).second);
    if (e.type == "refund") {
      // A refund is for an order already paid, by its owner, in full.
      auto paid = payments.find(e.order_id);
      REQUIRE(paid != payments.end());
      CHECK(paid->second->user_id == e.user_id);
      CHECK(paid->second->amount == e.amount);
    }
  }
  Millis last = events.back().ts;
  int64_t due = 0, paid = 0;
  for (const auto& [id, order] : orders) {
    if (order->ts + 10000 >= last) continue;  // its payment may have been cut off
    ++due;
    auto it = payments.find(id);
    if (it == payments.end()) continue;
    ++paid;
    const Parsed& payment = *it->second;
    CHECK(payment.user_id == order->user_id);
    CHECK(payment.country == order->country);
    CHECK(payment.amount == order->amount);
    CHECK(payment.ts >= order->ts + 1000);
    CHECK(payment.ts <= order->ts + 10000);
  }
  REQUIRE(due > 1000);
  CHECK(paid >= due * 97 / 100);
  CHECK(paid < due);  // a few carts are abandoned
  for (const auto& [id, payment] : payments) CHECK(orders.count(id) == 1);
}

TEST_CASE("planted incidents show the shapes the rules look for") {
  GenOptions options = Options(40000);
  options.fraud_rate = 0.05;
  std::vector<Parsed> events = ParseAll(Generate(options));
  std::set<std::string> paid;
  for (const Parsed& e : events) {
    if (e.type == "payment") paid.insert(e.order_id);
  }
  Millis last = events.back().ts;
  int64_t unpaid_large = 0, tiny_payments = 0, large_payments = 0, huge_orders = 0;
  std::map<std::string, std::set<std::string>> order_countries;
  for (const Parsed& e : events) {
    if (e.type == "order") {
      order_countries[e.user_id].insert(e.country);
      if (e.amount > 1000) ++huge_orders;
      if (e.amount > 200 && paid.count(e.order_id) == 0 && e.ts + 10000 < last) ++unpaid_large;
    }
    if (e.type == "payment" && e.amount < 5) ++tiny_payments;
    if (e.type == "payment" && e.amount > 500) ++large_payments;
  }
  // 40000 * 0.05 / 5 = 400 incidents of each kind.
  CHECK(unpaid_large > 250);
  CHECK(tiny_payments > 3 * 250);
  CHECK(large_payments > 250);
  CHECK(huge_orders > 250);  // takeover and velocity orders
  int64_t multi_country_users = 0;
  for (const auto& [user, countries] : order_countries) {
    if (countries.size() >= 3) ++multi_country_users;
  }
  CHECK(multi_country_users > 50);
}

}  // namespace
}  // namespace cepheus::gen

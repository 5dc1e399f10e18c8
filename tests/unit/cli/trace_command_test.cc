// `cepheus trace`: one case per thing it explains, and a golden file of its
// text for a small example (tests/golden/trace; CEPHEUS_UPDATE_GOLDEN=1
// rewrites it).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <unistd.h>

#include "cli/trace.h"

namespace cepheus::cli {
namespace {

std::filesystem::path Temp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-trace-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path) << text;
  return path;
}

// The trace of key u1 (text), for `rules` over `events` (one JSON object per line).
std::string Trace(const std::string& rules, const std::string& events, const std::string& out_of_order = "0ms",
                  const std::string& format = "text") {
  auto r = Temp("r.rules", rules), e = Temp("e.jsonl", events);
  TraceOptions o;
  o.rules = {r.string()};
  o.events = e.string();
  o.key = "u1";
  o.out_of_order = out_of_order;
  o.format = format;
  std::ostringstream out, err;
  int code = RunTrace(o, out, err);
  std::filesystem::remove(r);
  std::filesystem::remove(e);
  REQUIRE_MESSAGE(code == 0, err.str());
  return out.str();
}

std::string Order(int i, int ts, const std::string& country, int amount, const std::string& user = "u1") {
  return "{\"id\":\"e" + std::to_string(i) + "\",\"type\":\"order\",\"ts\":" + std::to_string(ts) + ",\"user_id\":\"" +
         user + "\",\"country\":\"" + country + "\",\"amount\":" + std::to_string(amount) + ",\"order_id\":\"o" +
         std::to_string(i) + "\"}\n";
}

const char* kSpree = "rule spree\n  key user_id\n  match o: order[country not in o.country]{3}\n  within 2m\n";

}  // namespace

TEST_CASE("trace shows runs started, extended and completed, and the alert") {
  std::string t = Trace(kSpree, Order(1, 1000, "FR", 5) + Order(2, 2000, "DE", 5) + Order(3, 3000, "BR", 5));
  CHECK(t.find("e1 order at 1970-01-01T00:00:01.000Z\n  spree: started run from e1 - o: e1\n") != std::string::npos);
  CHECK(t.find("spree: extended run from e1 - o: e1, o: e2") != std::string::npos);
  CHECK(t.find("spree: alert run from e1 - o: e1, o: e2, o: e3") != std::string::npos);
}

TEST_CASE("trace names the false sub-expression of a filter with its values") {
  std::string t = Trace(kSpree, Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5));
  CHECK(t.find("spree: waits run from e1 - o's filter is false: country not in o.country: \"FR\" not in [\"FR\"]") !=
        std::string::npos);
  std::string u = Trace("rule big\n  key user_id\n  match o: order[amount > 300 and country == \"FR\"]\n  within 1m\n",
                        Order(1, 1000, "FR", 20));
  CHECK(u.find("big: no start - no partial match, and o's filter is false: amount > 300: 20 > 300") != std::string::npos);
}

TEST_CASE("trace shows a counter's value as the rule read it") {
  std::string t = Trace("counter orders_1h\n  key user_id\n  count order\n  over 1h\n"
                        "rule busy\n  key user_id\n  match o: order[orders_1h > 2]\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5) + Order(3, 3000, "FR", 5));
  CHECK(t.find("busy: no start - no partial match, and o's filter is false: orders_1h > 2: 2 > 2") != std::string::npos);
  CHECK(t.find("busy: alert run from e3 - o: e3") != std::string::npos);
}

TEST_CASE("trace says when an event is of a type the step does not take") {
  std::string t = Trace("rule r\n  key user_id\n  match a: order -> b: payment\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5));
  CHECK(t.find("r: waits run from e1 - b takes payment, not order") != std::string::npos);
}

TEST_CASE("trace reports runs that expired when their window passed") {
  std::string t = Trace("rule pair\n  key user_id\n  match a: order -> b: payment\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 100000, "FR", 5, "u2"));
  CHECK(t.find("[window closed at 1970-01-01T00:01:01.000Z] pair: expired run from e1 - within 1m of its first event "
               "passed (a: e1)") != std::string::npos);
}

TEST_CASE("trace reports an absence alert when a window closes") {
  std::string t = Trace("rule unpaid\n  key user_id\n  match o: order -> absent p: payment\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 100000, "FR", 5, "u2"));
  CHECK(t.find("unpaid: alert run from e1 - by absence: o: e1") != std::string::npos);
}

TEST_CASE("trace reports runs dropped by past_last after an alert") {
  std::string t = Trace("rule two\n  key user_id\n  match o: order{2}\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5) + Order(3, 3000, "FR", 5));
  CHECK(t.find("two: alert run from e1 - o: e1, o: e2") != std::string::npos);
  CHECK(t.find("two: dropped run from e2 - dropped by skip past_last after the alert") == std::string::npos);  // e2 started no run
  std::string u = Trace("rule three\n  key user_id\n  match o: order{2} -> p: order\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5) + Order(3, 3000, "FR", 5));
  CHECK(u.find("three: dropped run from e2 - dropped by skip past_last after the alert") != std::string::npos);
}

TEST_CASE("trace reports an alert held back by cooldown") {
  std::string t = Trace("rule any_order\n  key user_id\n  match o: order\n  within 1m\n  cooldown 10m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5));
  CHECK(t.find("any_order: alert run from e1 - o: e1") != std::string::npos);
  CHECK(t.find("any_order: held back run from e2 - o: e2 (cooldown 10m since the last alert)") != std::string::npos);
}

TEST_CASE("trace reports runs evicted by limit") {
  std::string t = Trace("rule many\n  key user_id\n  match o: order -> p: payment\n  within 1m\n  limit 2\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "FR", 5) + Order(3, 3000, "FR", 5));
  CHECK(t.find("many: dropped run from e1 - evicted: the key held more than its limit of 2 runs") != std::string::npos);
}

TEST_CASE("trace reports runs killed by => and by an absent step") {
  std::string t = Trace("rule strict\n  key user_id\n  match a: order => b: order[country == \"BR\"]\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "DE", 5));
  CHECK(t.find("strict: dropped run from e1 - killed by `=>`") != std::string::npos);
  std::string u = Trace("rule quiet\n  key user_id\n  match a: order -> absent b: order[country == \"DE\"] -> c: "
                        "order[country == \"BR\"]\n  within 1m\n",
                        Order(1, 1000, "FR", 5) + Order(2, 2000, "DE", 5));
  CHECK(u.find("quiet: dropped run from e1 - killed: it fits the absent step b") != std::string::npos);
}

TEST_CASE("trace reports the key's late events, and only the key's") {
  std::string t = Trace(kSpree, Order(1, 10000, "FR", 5) + Order(2, 1000, "DE", 5) + Order(3, 1000, "DE", 5, "u2"));
  CHECK(t.find("e2 late at 1970-01-01T00:00:01.000Z: order: older than the watermark when it arrived; not evaluated") !=
        std::string::npos);
  CHECK(t.find("e3") == std::string::npos);
}

TEST_CASE("trace as JSON lines gives one object per line") {
  std::string t = Trace(kSpree, Order(1, 1000, "FR", 5), "0ms", "json");
  CHECK(t == "{\"event\":\"e1\",\"ts\":1000,\"rule\":\"\",\"what\":\"event\",\"run\":\"\",\"detail\":\"order\"}\n"
             "{\"event\":\"e1\",\"ts\":1000,\"rule\":\"spree\",\"what\":\"started\",\"run\":\"e1\",\"detail\":\"o: e1\"}\n"
             "{\"event\":\"\",\"ts\":121000,\"rule\":\"spree\",\"what\":\"expired\",\"run\":\"e1\",\"detail\":\"within 2m of "
             "its first event passed (o: e1)\"}\n");
}

TEST_CASE("trace of the golden example matches its golden file") {
  const std::string dir = std::string(CEPHEUS_SOURCE_DIR) + "/tests/golden/trace/";
  std::ifstream rules(dir + "example.rules"), events(dir + "example.jsonl");
  std::stringstream r, e;
  r << rules.rdbuf();
  e << events.rdbuf();
  std::string got = Trace(r.str(), e.str(), "5s");
  if (std::getenv("CEPHEUS_UPDATE_GOLDEN") != nullptr) std::ofstream(dir + "example.expect") << got;
  std::ifstream want_file(dir + "example.expect");
  std::stringstream want;
  want << want_file.rdbuf();
  CHECK(got == want.str());
}

}  // namespace cepheus::cli

// The engine behind its seams: an EventSource in, an AlertSink out, with no
// Kafka and no files.
#include <doctest/doctest.h>

#include "cepheus/engine/pump.h"
#include "test_util.h"

using namespace cepheus;

namespace {

class FailingSource : public engine::EventSource {
 public:
  Result<std::optional<engine::RawRecord>> Next() override {
    if (n_++ < 2) {
      engine::RawRecord r;
      r.payload = R"({"type":"order","ts":1,"user_id":"u"})";
      return std::optional<engine::RawRecord>(r);
    }
    return Status::IoError("disk on fire");
  }

 private:
  int n_ = 0;
};

}  // namespace

TEST_CASE("an engine pumped from an in-memory source publishes to an in-memory sink") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{2} within 1m");
  engine::VectorSource source({R"({"id":"a","type":"order","ts":1,"user_id":"u"})", "not json",
                               R"({"id":"b","type":"order","ts":2,"user_id":"u"})"});
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  std::vector<int64_t> refused_at;
  engine::Pump pump(&decoder, &eng, [&](std::string_view payload, const nfa::Position& pos, const Status& why) {
    refused_at.push_back(pos.offset);
    CHECK(payload == "not json");
    CHECK(why.message().find("not valid JSON") != std::string::npos);
  });
  REQUIRE(pump.Drain(&source).ok());
  eng.Finish();
  CHECK(pump.counts().records == 3);
  CHECK(pump.counts().events == 2);
  CHECK(pump.counts().refused == 1);
  CHECK(refused_at == std::vector<int64_t>{2});
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"r|u|match|o=a,b"});
}

TEST_CASE("a source error stops the pump and is returned") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1m");
  FailingSource source;
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  engine::Pump pump(&decoder, &eng);
  Status st = pump.Drain(&source);
  CHECK_FALSE(st.ok());
  CHECK(st.message() == "disk on fire");
  CHECK(pump.counts().events == 2);
}

TEST_CASE("lines fed from a text are numbered from 1, blank lines are skipped but counted in the numbering") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{2} within 1m");
  std::string text = "{\"id\":\"a\",\"type\":\"order\",\"ts\":1,\"user_id\":\"u\"}\n"
                     "\n"
                     "   \r\n"
                     "{broken\n"
                     "{\"id\":\"b\",\"type\":\"order\",\"ts\":2,\"user_id\":\"u\"}";
  const size_t size = text.size();
  text.append(engine::kPayloadPadding, '\0');
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  std::vector<int64_t> refused_at;
  std::vector<uint64_t> seen;
  engine::Pump pump(&decoder, &eng,
                    [&](std::string_view, const nfa::Position& pos, const Status&) { refused_at.push_back(pos.offset); });
  pump.FeedLines(std::string_view(text.data(), size), [&](uint64_t line) { seen.push_back(line); });
  eng.Finish();
  CHECK(refused_at == std::vector<int64_t>{4});
  CHECK(seen == std::vector<uint64_t>{1, 2, 3, 4, 5});
  CHECK(pump.counts().records == 3);
  CHECK(pump.counts().events == 2);
  REQUIRE(sink.alerts.size() == 1);
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"r|u|match|o=a,b"});
}

TEST_CASE("an event the caller's check refuses is reported with the check's reason and never reaches the engine") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1m");
  engine::VectorSource source({R"({"id":"a","type":"order","ts":1,"user_id":"u"})",
                               R"({"id":"b","type":"order","ts":99999,"user_id":"u"})"});
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  std::vector<std::string> reasons;
  engine::Pump pump(
      &decoder, &eng,
      [&](std::string_view, const nfa::Position&, const Status& why) { reasons.push_back(why.message()); },
      [](const nfa::Event& e) { return e.ts > 1000 ? Status::InvalidArgument("too far ahead") : Status::Ok(); });
  REQUIRE(pump.Drain(&source).ok());
  eng.Finish();
  CHECK(reasons == std::vector<std::string>{"too far ahead"});
  CHECK(eng.stats().received == 1);
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"r|u|match|o=a"});
}

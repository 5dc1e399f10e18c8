// The engine behind its seams: an EventSource in, an AlertSink out, with no
// Kafka and no files.
#include <doctest/doctest.h>

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
  std::vector<int64_t> malformed_lines;
  auto counts = engine::Pump(&source, &decoder, &eng, [&](const engine::RawRecord& r, const Status& why) {
    malformed_lines.push_back(r.pos.offset);
    CHECK(why.message().find("not valid JSON") != std::string::npos);
  });
  REQUIRE(counts.ok());
  CHECK(counts.value().records == 3);
  CHECK(counts.value().malformed == 1);
  CHECK(malformed_lines == std::vector<int64_t>{2});
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"r|u|match|o=a,b"});
}

TEST_CASE("a source error stops the pump and is returned") {
  auto rules = testing::CompileRules("rule r key user_id match o: order within 1m");
  FailingSource source;
  engine::EventDecoder decoder(rules, {});
  engine::CollectingSink sink;
  engine::Engine eng(rules, {}, &sink);
  auto counts = engine::Pump(&source, &decoder, &eng, nullptr);
  CHECK_FALSE(counts.ok());
  CHECK(counts.status().message() == "disk on fire");
}

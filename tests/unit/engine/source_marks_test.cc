// Event time across a re-keying hop (section 6.4): SourceMarks, the mark
// records, and a simulated hop whose alerts equal one engine's over all the
// events, absences included.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/source_marks.h"
#include "test_util.h"

using namespace cepheus;

TEST_CASE("a partition's watermark is the least of its sources' marks, and none until each has sent one") {
  engine::SourceMarks marks({"events/0", "events/1"});
  CHECK(marks.watermark() == kMinTime);
  marks.Mark("events/0", 5000);
  CHECK(marks.watermark() == kMinTime);  // events/1 has said nothing yet
  marks.Mark("events/1", 3000);
  CHECK(marks.watermark() == 3000);
  marks.Mark("events/1", 2000);  // marks only rise
  CHECK(marks.watermark() == 3000);
  marks.Mark("events/1", 9000);
  CHECK(marks.watermark() == 5000);
  marks.Mark("events/2", 4000);  // a source not expected (a partition added to the input) counts too
  CHECK(marks.watermark() == 4000);
  CHECK(marks.sources() == 3);
}

TEST_CASE("marks are kept as text and read back, and damaged text is refused") {
  engine::SourceMarks marks({"events/0", "events/1"});
  marks.Mark("events/0", 5000);
  marks.Mark("events/1", -20);
  engine::SourceMarks back({"events/0", "events/1"});
  REQUIRE(back.Decode(marks.Encode()).ok());
  CHECK(back.watermark() == -20);
  CHECK(back.Encode() == marks.Encode());
  engine::SourceMarks empty({"events/0"});
  REQUIRE(empty.Decode(engine::SourceMarks({"events/0"}).Encode()).ok());  // nothing marked yet
  CHECK(empty.watermark() == kMinTime);
  CHECK(back.Decode("events/0 5000\n").code() == Status::Code::kCorruption);
  CHECK(back.Decode("events/0\tfive\n").code() == Status::Code::kCorruption);
}

TEST_CASE("a mark record is never taken for an event, and carries its source and mark") {
  std::string rec = engine::EncodeMarkRecord("events/3", 1700000000123);
  CHECK(engine::IsMarkRecord(rec));
  CHECK_FALSE(engine::IsMarkRecord(R"({"type":"order"})"));
  CHECK_FALSE(engine::IsMarkRecord(""));
  auto parsed = engine::ParseMarkRecord(rec);
  REQUIRE(parsed.ok());
  CHECK(parsed.value().first == "events/3");
  CHECK(parsed.value().second == 1700000000123);
  CHECK(engine::ParseMarkRecord(rec.substr(0, rec.size() - 3) + "x1").status().code() ==
        Status::Code::kInvalidArgument);
  CHECK_FALSE(engine::ParseMarkRecord(std::string("\0cepheus-mark\t5", 15)).ok());
}

namespace {

const char* kCardRules = R"(
rule card_twice
  key card_id
  match a: order -> b: order[user_id != a.user_id]
  within 10s
rule unpaid
  key card_id
  match o: order -> absent p: payment[order_id == o.order_id]
  within 5s
)";

// Events of users spread over `sources` input partitions (by user), their
// cards shared between users, up to 2 s out of order: the partitions, and
// last, every event in the order they were produced (replay's input).
std::vector<std::vector<std::string>> Partitions(int sources, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::pair<int64_t, std::string>>> parts(static_cast<size_t>(sources));
  int64_t ts = 1000;
  for (int i = 0; i < 600; ++i) {
    ts += static_cast<int64_t>(rng() % 400);
    int user = static_cast<int>(rng() % 40);
    int card = static_cast<int>(rng() % 15);
    bool pay = rng() % 3 == 0 && i > 0;
    std::string e = pay ? fmt::format(R"({{"id":"e{}","type":"payment","ts":{},"user_id":"u{}","card_id":"c{}","order_id":"o{}"}})",
                                      i, ts, user, card, i - 1)
                        : fmt::format(R"({{"id":"e{}","type":"order","ts":{},"user_id":"u{}","card_id":"c{}","order_id":"o{}"}})",
                                      i, ts, user, card, i);
    // Out of order by up to 2 s within its partition.
    int64_t arrival = ts + static_cast<int64_t>(rng() % 2000);
    parts[static_cast<size_t>(user % sources)].emplace_back(arrival, e);
  }
  std::vector<std::pair<int64_t, std::string>> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<std::string>> out;
  for (auto& p : parts) {
    std::stable_sort(p.begin(), p.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out.emplace_back();
    for (auto& [arrival, e] : p) out.back().push_back(e);
  }
  out.emplace_back();
  for (auto& [arrival, e] : all) out.back().push_back(e);
  return out;
}

}  // namespace

TEST_CASE("after a hop through marks, a re-keyed engine alerts as one engine over every event, and nothing is late") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    auto rules = testing::CompileRules(kCardRules);
    engine::EventDecoder decoder(rules, {});
    const int kSources = 3;
    auto parts = Partitions(kSources, seed);

    // The reference: one engine over all the events in the order they were
    // produced (out_of_order covers their 2 s), as replay reads a file.
    engine::EngineOptions o;
    o.out_of_order = 2000;
    engine::CollectingSink want;
    engine::Engine reference(rules, o, &want);
    for (const std::string& text : parts.back()) {
      auto ev = decoder.Decode(text, {});
      REQUIRE(ev.ok());
      reference.Push(std::move(ev).value());
    }

    // The hop: the partitions read at uneven paces; each source partition
    // has its own engine (only for its watermark here), forwards every event
    // and, at random moments, a mark.
    std::vector<std::unique_ptr<engine::Engine>> sources;
    engine::CollectingSink unused;
    engine::EngineOptions so = o;
    so.key_fields = {"user_id"};  // runs no rule: none is keyed on user_id
    for (int s = 0; s < kSources; ++s) sources.push_back(std::make_unique<engine::Engine>(rules, so, &unused));
    engine::EngineOptions ro = o;
    ro.watermark_from_events = false;
    engine::CollectingSink got;
    engine::Engine rekeyed(rules, ro, &got);
    std::vector<std::string> names;
    for (int s = 0; s < kSources; ++s) names.push_back(fmt::format("events/{}", s));
    engine::SourceMarks marks(names);

    std::mt19937_64 rng(seed * 7919);
    std::vector<size_t> next(kSources, 0);
    for (;;) {
      std::vector<int> open;
      for (int s = 0; s < kSources; ++s) {
        if (next[static_cast<size_t>(s)] < parts[static_cast<size_t>(s)].size()) open.push_back(s);
      }
      if (open.empty()) break;
      int s = open[rng() % open.size()];
      const std::string& text = parts[static_cast<size_t>(s)][next[static_cast<size_t>(s)]++];
      auto ev = decoder.Decode(text, {});
      REQUIRE(ev.ok());
      sources[static_cast<size_t>(s)]->Push(std::move(ev).value());
      auto fwd = decoder.Decode(text, {});
      REQUIRE(fwd.ok());
      rekeyed.Push(std::move(fwd).value());
      if (rng() % 5 == 0) {  // a mark: the source's watermark now
        marks.Mark(names[static_cast<size_t>(s)], sources[static_cast<size_t>(s)]->watermark());
        rekeyed.AdvanceWatermark(marks.watermark());
      }
    }
    reference.Finish();
    rekeyed.Finish();  // the end of input, as replay's
    CHECK(rekeyed.stats().late == 0);
    CHECK(reference.stats().late == 0);
    auto a = testing::Reduce(want.alerts), b = testing::Reduce(got.alerts);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a.size() > 5);
    CHECK(a == b);
  }
}

// libFuzzer target for the state record decoder: the bytes LMDB or the
// changelog hands back after a scribble. At start, the shipped rules run over a
// fixed stream that leaves partial matches of every rule, and the engine's
// state is saved to memory: those valid records are the seeds. Each input
// picks one record and overwrites part of it (or replaces it whole), then a
// fresh engine loads the store. Load must fail with a status or succeed; an
// engine that loaded must go on evaluating events and finish without a crash
// or a sanitizer report (a record that decodes must not break the matcher).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/state_codec.h"
#include "cepheus/engine/seams.h"
#include "cepheus/nfa/program.h"

namespace {

using namespace cepheus;

std::vector<std::string> Events(int64_t from) {
  // Two users, every shipped rule's first steps: orders from several
  // countries, logins, payments (tiny card ones), password changes.
  const char* kinds[] = {
      R"("type":"order","country":"FR","amount":700,"order_id":"o{n}","category":"toys")",
      R"("type":"login","country":"DE","device":"web")",
      R"("type":"payment","method":"card","amount":1,"order_id":"o{n}")",
      R"("type":"order","country":"ES","amount":900,"order_id":"o{n}","category":"gift_cards")",
      R"("type":"password_change","country":"DE")",
      R"("type":"payment","method":"card","amount":2)",
  };
  std::vector<std::string> out;
  for (int n = 0; n < 24; ++n) {
    std::string body = fmt::format(fmt::runtime(kinds[n % 6]), fmt::arg("n", n));
    out.push_back(fmt::format(R"({{"id":"e{}","user_id":"u{}","card_id":"c{}","ts":{},{}}})", from + n, n % 2,
                              n % 2, from + n * 1000, body));
  }
  return out;
}

struct World {
  std::shared_ptr<const nfa::CompiledRuleSet> rules;
  std::map<std::string, std::string> records;
  std::vector<std::string> keys;  // of `records`
};

const World& TheWorld() {
  static const World world = [] {
    World w;
    DiagnosticSink diags;
    auto set = dsl::LoadRuleSet({std::string(CEPHEUS_SOURCE_DIR) + "/rules"}, &diags);
    if (!set) __builtin_trap();
    w.rules = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set))).value();
    engine::EventDecoder decoder(w.rules, engine::EventFieldNames{});
    engine::EngineOptions options;
    options.out_of_order = 5000;  // leaves events in the reorder buffer too
    engine::Engine eng(w.rules, options, nullptr);
    for (const auto& line : Events(1700000000000)) eng.Push(decoder.Decode(line, nfa::Position{}).value());
    engine::MemoryStateStore store;
    if (!eng.Save(&store).ok()) __builtin_trap();
    (void)store.Scan("", [&](std::string_view k, std::string_view v) {
      w.records.emplace(std::string(k), std::string(v));
      w.keys.emplace_back(k);
    });
    return w;
  }();
  return world;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const World& w = TheWorld();
  if (size < 4 || w.keys.empty()) return 0;
  const std::string& key = w.keys[data[0] % w.keys.size()];
  std::string record = w.records.at(key);
  std::string_view patch(reinterpret_cast<const char*>(data) + 4, size - 4);
  if (data[1] & 1) {
    record.assign(patch);  // a record replaced whole
  } else {
    size_t at = (static_cast<size_t>(data[2]) | static_cast<size_t>(data[3]) << 8) % (record.size() + 1);
    record.replace(at, std::min(patch.size(), record.size() - at), patch);  // overwritten from `at`
    if (data[1] & 2) record.resize(at + patch.size() / 2);                   // and cut short
  }
  engine::MemoryStateStore store;
  for (const auto& [k, v] : w.records) (void)store.Put(k, k == key ? std::string_view(record) : std::string_view(v));
  (void)engine::CountStoredRuns(record);

  engine::EventDecoder decoder(w.rules, engine::EventFieldNames{});
  engine::CollectingSink sink;
  engine::EngineOptions options;
  options.out_of_order = 5000;
  engine::Engine eng(w.rules, options, &sink);
  engine::Engine::LoadReport report;
  if (!eng.Load(store, &decoder, &report).ok()) return 0;
  for (const auto& line : Events(1700000030000)) eng.Push(decoder.Decode(line, nfa::Position{}).value());
  eng.Finish();
  for (const auto& a : sink.alerts) {
    if (a.json.empty()) __builtin_trap();
  }
  return 0;
}

// libFuzzer target for the event decoder: any bytes from a Kafka record or a
// replay line decode into an event or a Corruption/InvalidArgument status (no
// crash, no sanitizer report), with the shipped rules' fields; a decoded
// event's key text is taken as the engine would.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cepheus/dsl/parser.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/nfa/program.h"

namespace {

cepheus::engine::EventDecoder* Decoder() {
  static cepheus::engine::EventDecoder* decoder = [] {
    cepheus::DiagnosticSink diags;
    auto set = cepheus::dsl::LoadRuleSet({std::string(CEPHEUS_SOURCE_DIR) + "/rules"}, &diags);
    if (!set) __builtin_trap();
    auto rules = cepheus::nfa::Compile(std::make_shared<const cepheus::dsl::RuleSet>(std::move(*set))).value();
    return new cepheus::engine::EventDecoder(rules, cepheus::engine::EventFieldNames{});
  }();
  return decoder;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto ev = Decoder()->Decode(raw, cepheus::nfa::Position{}, /*padded=*/false);
  if (ev.ok()) {
    std::string key;
    for (const auto& v : ev.value()->fields) (void)cepheus::engine::KeyText(v, &key);
  } else if (ev.status().message().empty()) {
    __builtin_trap();  // a refusal always says why
  }
  return 0;
}

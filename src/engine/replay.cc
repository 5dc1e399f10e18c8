// ReplayText: a finite text of JSON lines through a fresh engine. Lines are
// cut at '\n' and decoded in place (the caller leaves simdjson's padding after
// the text), blank lines are skipped, malformed ones reported by line number;
// at the end the watermark goes to +infinity.
#include "cepheus/engine/replay.h"

namespace cepheus::engine {

ReplayCounts ReplayText(std::string_view text, std::shared_ptr<const nfa::CompiledRuleSet> rules,
                        const EngineOptions& options, const EventFieldNames& names,
                        AlertSink* sink,
                        const std::function<void(uint64_t, const std::string&)>& on_malformed) {
  ReplayCounts c;
  EventDecoder decoder(rules, names);
  Engine eng(rules, options, sink);
  nfa::Position pos;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(at, nl - at);
    at = nl + 1;
    ++c.lines;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    pos.offset = static_cast<int64_t>(c.lines);
    auto ev = decoder.Decode(line, pos, /*padded=*/true);
    if (!ev.ok()) {
      ++c.malformed;
      if (on_malformed) on_malformed(c.lines, ev.status().message());
      continue;
    }
    ++c.events;
    eng.Push(std::move(ev).value());
  }
  eng.Finish();
  c.late = eng.stats().late;
  c.alerts = eng.stats().alerts;
  return c;
}

}  // namespace cepheus::engine

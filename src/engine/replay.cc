// ReplayText: a finite text of JSON lines through a fresh engine, fed by a
// Pump (lines decoded in place, blank ones skipped, malformed ones reported
// by line number); at the end the watermark goes to +infinity.
#include "cepheus/engine/replay.h"

#include "cepheus/engine/pump.h"

namespace cepheus::engine {

ReplayCounts ReplayText(std::string_view text, std::shared_ptr<const nfa::CompiledRuleSet> rules,
                        const EngineOptions& options, const EventFieldNames& names,
                        AlertSink* sink,
                        const std::function<void(uint64_t, const std::string&)>& on_malformed,
                        const nfa::TableReader* tables) {
  EventDecoder decoder(rules, names);
  Engine eng(rules, options, sink);
  eng.set_tables(tables);
  Pump pump(&decoder, &eng, [&](std::string_view, const nfa::Position& pos, const Status& why) {
    if (on_malformed) on_malformed(static_cast<uint64_t>(pos.offset), why.message());
  });
  pump.FeedLines(text);
  eng.Finish();
  ReplayCounts c;
  c.events = pump.counts().events;
  c.malformed = pump.counts().refused;
  c.late = eng.stats().late;
  c.alerts = eng.stats().alerts;
  return c;
}

}  // namespace cepheus::engine

// Replaying JSON lines through an engine: shared by `replay`, `test` and the
// benchmark.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"

namespace cepheus::engine {

struct ReplayCounts {
  uint64_t events = 0;
  uint64_t malformed = 0;
  uint64_t late = 0;
  uint64_t alerts = 0;
};

// Feeds every non-blank line of `text` to a fresh engine, then finishes it
// (watermark to +infinity). `text` must be followed by
// kPayloadPadding readable bytes (simdjson::padded_string leaves enough).
// Malformed lines are reported to `on_malformed` with their 1-based line
// number and skipped. Lookups read `tables` (may be null when no rule reads
// a table).
ReplayCounts ReplayText(std::string_view text, std::shared_ptr<const nfa::CompiledRuleSet> rules,
                        const EngineOptions& options, const EventFieldNames& names,
                        AlertSink* sink,
                        const std::function<void(uint64_t, const std::string&)>& on_malformed,
                        const nfa::TableReader* tables = nullptr);

}  // namespace cepheus::engine

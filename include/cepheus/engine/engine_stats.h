// What an engine has done so far, for metrics and tools: plain counters, so
// a reader (the metrics probe) needs none of the engine's internals.
#pragma once

#include <cstdint>
#include <vector>

namespace cepheus::engine {

struct RuleStats {
  uint64_t alerts = 0;
  uint64_t suppressed = 0;
  uint64_t evicted = 0;
  int64_t runs = 0;  // live runs now
};

// One aggregate (section 6.3).
struct AggregateStats {
  uint64_t windows_closed = 0;  // each published as a record
  uint64_t late = 0;            // late events it would have read
  int64_t groups = 0;           // groups held now (open windows or kept results)
};

struct EngineStats {
  uint64_t received = 0;
  uint64_t evaluated = 0;
  uint64_t late = 0;
  uint64_t alerts = 0;
  uint64_t keys_refused = 0;   // at EngineOptions::max_keys: events whose key could not start state
  uint64_t buffer_forced = 0;  // at EngineOptions::max_buffered: events released before the watermark reached them
  uint64_t distinct_capped = 0;  // distinct counters: values refused past kMaxDistinctValues per key and window
  uint64_t keys_evicted = 0;   // at EngineOptions::max_resident_keys: keys whose state went to the cold store
  uint64_t keys_warmed = 0;    // keys whose state was read back from the cold store
  std::vector<RuleStats> rules;  // by rule index
  std::vector<AggregateStats> aggregates;  // by CompiledRuleSet::aggregates index
  std::vector<int64_t> counter_keys;       // by CompiledRuleSet::counters index: keys holding it now
};

}  // namespace cepheus::engine

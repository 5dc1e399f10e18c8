// A deliberately naive reference matcher for differential tests of the engine.
//
// It reads the checked rule model (dsl::Rule) and raw JSON events, and follows
// section 4 of the rule-language spec plus the engine's documented choices
// (the semantics notes) step by step, without any of the engine's machinery:
// no automaton, no compiled expressions, no incremental aggregates. See the
// comment at the top of reference_matcher.cc for why.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cepheus/common/time.h"
#include "cepheus/dsl/rule.h"

namespace cepheus::reference {

// An alert reduced to what the example cases compare: rule, key, reason and,
// for every bound name with at least one event, the "id"s of its events in
// binding order.
struct ReducedAlert {
  std::string rule;
  std::string key;
  std::string reason;  // "match" or "absence"
  std::map<std::string, std::vector<std::string>> events;
  // Only when asked for: the message, then '|' and the "fields" object as
  // JSON text ("" without a `fields` clause).
  std::string details;

  friend bool operator==(const ReducedAlert&, const ReducedAlert&) = default;
  friend auto operator<=>(const ReducedAlert&, const ReducedAlert&) = default;
};

struct ReferenceResult {
  std::vector<ReducedAlert> alerts;  // in the order the reference detected them
  std::vector<std::string> late;     // ids of late events, in arrival order
};

// A table's source (section 6.1): its declaration and its records (JSON
// objects), in source order.
struct ReferenceTable {
  const dsl::Table* table = nullptr;
  std::vector<std::string> records;
};

// Runs `rule` over `events` (one JSON object per string, in arrival order)
// with allowed out-of-orderness `out_of_order` (D, in ms), up to the end of
// the input (the watermark then moves to +infinity), its lookups reading
// `tables`. Events that are not JSON objects with a string "type" and a
// usable "ts" are skipped, as the engine skips malformed records; so are
// table records without a usable key or time.
// `counters`: the rule set's counters (section 6.2) that the rule may read.
// `details`: fill ReducedAlert::details, the message and fields as the
// rules/README words them (shortest numbers, formats, JSON values).
ReferenceResult RunReference(const dsl::Rule& rule, const std::vector<std::string>& events,
                             Millis out_of_order, const std::vector<ReferenceTable>& tables = {},
                             const std::vector<dsl::Counter>* counters = nullptr, bool details = false);

// An aggregate (section 6.3) over `events`, literally: every window of every
// group with its events, the computed fields, `alert when` with previous_*
// read from the group's other windows. Records as text
// "aggregate|group|start|end|field=value|..." (numbers in fmt's shortest
// form, or null), sorted; alerts and late ids sorted.
struct AggregateResult {
  std::vector<std::string> records;
  std::vector<ReducedAlert> alerts;
  std::vector<std::string> late;
};
AggregateResult RunReferenceAggregate(const dsl::Aggregate& aggregate, const std::vector<std::string>& events,
                                      Millis out_of_order);

// One line of text for an alert, e.g. `rule u key=u1 absence {o: [e1]}`.
std::string Describe(const ReducedAlert& alert);

}  // namespace cepheus::reference

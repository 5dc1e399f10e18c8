// Alerts of matches (section 5 of the rule language): private to the engine.
#pragma once

#include <string>

#include "cepheus/engine/seams.h"
#include "cepheus/nfa/matcher.h"

namespace cepheus::engine {

// Formats a match as the alert of section 5 (JSON, deterministic alert_id).
// The message's lookups read `tables` as of the match's detection time.
Alert MakeAlert(const nfa::Program& p, const std::string& key, const nfa::Match& m,
                const nfa::TableReader* tables = nullptr, const nfa::CounterReader* counters = nullptr);

}  // namespace cepheus::engine

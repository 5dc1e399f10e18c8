// What `cepheus trace` watches: one key's rule evaluations, as the engine
// does them. An engine without a tracer (replay, the daemon) pays one null
// check per event and key group.
#pragma once

#include <string_view>
#include <vector>

#include "cepheus/nfa/matcher.h"

namespace cepheus::engine {

class Tracer {
 public:
  virtual ~Tracer() = default;
  // True to follow this key (the value of some rules' key field).
  virtual bool Follows(std::string_view key) const = 0;
  // `e` is evaluated for a followed key of key field `field` ("user_id"),
  // before any rule of that field runs on it. `tables` and `counters` are
  // what the rules read (the key's counters already counting `e`).
  virtual void OnEvent(std::string_view field, std::string_view key, const nfa::Event& e,
                       const nfa::TableReader* tables, const nfa::CounterReader* counters) = 0;
  // Rule `p` evaluates `e` on the key's runs: as they are before, then after.
  virtual void BeforeRule(const nfa::Program& p, const nfa::KeyRuns& runs, const nfa::Event& e) = 0;
  virtual void AfterRule(const nfa::Program& p, const nfa::KeyRuns& runs, const nfa::Event& e,
                         const std::vector<nfa::Match>& matches, const nfa::MatchStats& stats,
                         const nfa::TableReader* tables, const nfa::CounterReader* counters) = 0;
  // Rule `p` closes the key's windows that ended before `at`: before, after.
  virtual void BeforeClose(const nfa::Program& p, std::string_view key, const nfa::KeyRuns& runs, Millis at) = 0;
  virtual void AfterClose(const nfa::Program& p, std::string_view key, const nfa::KeyRuns& runs, Millis at,
                          const std::vector<nfa::Match>& matches) = 0;
};

}  // namespace cepheus::engine

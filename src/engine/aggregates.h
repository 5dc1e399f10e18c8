// Windowed aggregates (section 6.3): per aggregate and group, the open
// windows' accumulators and the results of the last closed windows that
// previous_avg / previous_max read. Private to the engine.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/engine_stats.h"
#include "cepheus/engine/seams.h"
#include "cepheus/nfa/program.h"

namespace cepheus::engine {

class Aggregates {
 public:
  // `stats` (one per aggregate) is kept up to date.
  Aggregates(std::shared_ptr<const nfa::CompiledRuleSet> rules, const std::vector<std::string>& key_fields,
             std::vector<AggregateStats>* stats);
  // A late event: counted for each aggregate that would have read it.
  void CountLate(const nfa::Event& e);
  bool empty() const { return states_.empty(); }
  // An evaluated (not late) event: counted in every window of every
  // aggregate that reads it and holds its time.
  void Add(const nfa::Event& e);
  // Closes every window whose end the watermark `w` reached: its record, and
  // its alert when `alert when` holds, go to `sink`. Returns the alerts.
  uint64_t CloseUntil(Millis w, AlertSink* sink);
  // Persistence (records `engine/a/<digest of aggregate and group>`): Save
  // writes every group, SaveChanges the groups changed since (a delete for
  // those gone), Load reads one record (a group of an aggregate whose text
  // changed or went is reported stale, not loaded).
  Status Save(StateStore* store);
  Status SaveChanges(StateStore* store);
  void Clear();
  Status Load(std::string_view key, std::string_view value, bool* stale);

 private:
  struct Acc {
    double count = 0, sum = 0, min = 0, max = 0, numbers = 0;
    std::unordered_set<std::string> distinct;
  };
  struct Group {
    std::map<Millis, std::vector<Acc>> open;               // by window start
    std::map<Millis, std::vector<nfa::Value>> history;     // closed windows' results, by start
  };
  struct State {
    const nfa::AggregateProgram* program;
    bool enabled = true;
    std::unordered_map<std::string, Group> groups;
    std::map<Millis, std::vector<std::string>> ends;  // window end -> groups with that window open
  };
  bool Close(State& s, const std::string& group, Group& g, Millis start, AlertSink* sink);
  nfa::Value Previous(const State& s, const Group& g, Millis start, const nfa::AggregateProgram::Previous& p) const;

  void MarkDirty(uint32_t state, const std::string& group) { dirty_.emplace(state, group); }
  Status Put(StateStore* store, uint32_t state, const std::string& group);

  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  std::vector<State> states_;
  std::set<std::pair<uint32_t, std::string>> dirty_;   // (state, group) changed since the last save
  std::set<std::pair<uint32_t, std::string>> stored_;  // (state, group) the store holds
  std::string text_;  // reused
  std::vector<AggregateStats>* stats_;
};

}  // namespace cepheus::engine

// Which rules run on the input's partitions and which after re-keying
// (section 6.4 of the rule-language spec).
//
//   daemon::Plan plan = daemon::MakePlan(rules, config.kafka.partition_key, config.kafka.group_id);
//   std::cout << daemon::FormatPlan(plan);
//
// A rule keyed on kafka.partition_key runs directly, on the partition its
// events arrive in. The rules keyed on another field F run after re-keying:
// the daemon forwards the events of the types they read to the internal
// topic `<group_id>-rekey-F`, keyed by F, and runs them on that topic's
// partitions. Pure: no Kafka, no configuration file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cepheus/nfa/program.h"

namespace cepheus::daemon {

struct RekeyStage {
  std::string field;               // the key path, dotted ("card_id")
  std::string topic;               // "<group_id>-rekey-<field>"
  int key_slot = -1;               // the key's FieldTable slot in the rule set
  std::vector<std::string> rules;  // rules keyed on `field`, in rule-set order
  bool all_types = false;          // one of them reads every event of its key
  std::vector<bool> forward;       // by TypeTable id: events of that type are forwarded
  std::vector<std::string> types;  // the forwarded types' names, sorted (for people)
  // True when an event of TypeTable id `type_id` (-1: a type no rule names)
  // is forwarded.
  bool Forwards(int32_t type_id) const {
    return all_types || (type_id >= 0 && forward[static_cast<size_t>(type_id)]);
  }
};

struct Plan {
  std::string partition_key;
  std::vector<std::string> direct;  // rules keyed on the partition key
  std::vector<RekeyStage> stages;   // one per other key field, in order of first use
  // The stage of `field`, or null when its rules run directly.
  const RekeyStage* Find(std::string_view field) const;
  // The key fields engines run: {partition_key} on input partitions; empty
  // (every field) when nothing is re-keyed.
  std::vector<std::string> DirectFields() const;
};

Plan MakePlan(const nfa::CompiledRuleSet& rules, const std::string& partition_key, const std::string& group_id);

// The plan, for `cepheus check --config`: one line for the direct rules, one
// per stage ("rules keyed on card_id: card_testing, ... after re-keying
// through topic G-rekey-card_id (events: payment)").
std::string FormatPlan(const Plan& plan);

// The dotted key path of a program.
std::string KeyField(const nfa::CompiledRuleSet& rules, const nfa::Program& p);

}  // namespace cepheus::daemon

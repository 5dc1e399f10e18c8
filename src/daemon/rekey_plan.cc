// The re-keying plan: group the rules by key field; the partition key's run
// directly, every other field's becomes a stage whose forwarded types are the
// union of the types its rules read (every type when one of them reads every
// event of its key, e.g. through `=>` or `any`).
#include "cepheus/daemon/rekey_plan.h"

#include <algorithm>

#include <fmt/format.h>

namespace cepheus::daemon {

std::string KeyField(const nfa::CompiledRuleSet& rules, const nfa::Program& p) {
  return fmt::format("{}", fmt::join(rules.fields.paths()[static_cast<size_t>(p.key_slot)], "."));
}

const RekeyStage* Plan::Find(std::string_view field) const {
  for (const auto& s : stages) {
    if (s.field == field) return &s;
  }
  return nullptr;
}

std::vector<std::string> Plan::DirectFields() const {
  if (stages.empty()) return {};
  return {partition_key};
}

Plan MakePlan(const nfa::CompiledRuleSet& rules, const std::string& partition_key, const std::string& group_id) {
  Plan plan;
  plan.partition_key = partition_key;
  for (const auto& p : rules.programs) {
    std::string field = KeyField(rules, *p);
    if (field == partition_key) {
      plan.direct.push_back(p->name);
      continue;
    }
    auto it = std::find_if(plan.stages.begin(), plan.stages.end(), [&](const RekeyStage& s) { return s.field == field; });
    if (it == plan.stages.end()) {
      RekeyStage s;
      s.field = field;
      s.topic = fmt::format("{}-rekey-{}", group_id, field);
      s.key_slot = p->key_slot;
      s.forward.assign(rules.types.size(), false);
      plan.stages.push_back(std::move(s));
      it = plan.stages.end() - 1;
    }
    it->rules.push_back(p->name);
    it->all_types |= p->needs_all_types;
    for (size_t t = 0; t < rules.types.size(); ++t) {
      if (t < p->relevant.size() && p->relevant[t]) it->forward[t] = true;
    }
  }
  for (auto& s : plan.stages) {
    for (size_t t = 0; t < s.forward.size(); ++t) {
      if (s.forward[t]) s.types.push_back(rules.types.name(static_cast<int32_t>(t)));
    }
    std::sort(s.types.begin(), s.types.end());
  }
  return plan;
}

std::string FormatPlan(const Plan& plan) {
  std::string out;
  if (plan.direct.empty()) {
    out += fmt::format("plan: no rule keyed on the partition key '{}'\n", plan.partition_key);
  } else {
    out += fmt::format("plan: {} rule{} keyed on the partition key '{}' run directly: {}\n", plan.direct.size(),
                       plan.direct.size() == 1 ? "" : "s", plan.partition_key, fmt::join(plan.direct, ", "));
  }
  for (const auto& s : plan.stages) {
    out += fmt::format("plan: {} rule{} keyed on '{}' run after re-keying through topic {} ({}): {}\n",
                       s.rules.size(), s.rules.size() == 1 ? "" : "s", s.field, s.topic,
                       s.all_types ? std::string("every event forwarded")
                                   : fmt::format("events forwarded: {}", fmt::join(s.types, ", ")),
                       fmt::join(s.rules, ", "));
  }
  return out;
}

}  // namespace cepheus::daemon

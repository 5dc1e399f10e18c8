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

namespace {

// The stage of `field` in `plan`, made when it is new.
RekeyStage& StageOf(Plan* plan, const nfa::CompiledRuleSet& rules, const std::string& field, int key_slot,
                    const std::string& group_id) {
  auto it = std::find_if(plan->stages.begin(), plan->stages.end(), [&](const RekeyStage& s) { return s.field == field; });
  if (it != plan->stages.end()) return *it;
  RekeyStage s;
  s.field = field;
  s.topic = fmt::format("{}-rekey-{}", group_id, field);
  s.key_slot = key_slot;
  s.forward.assign(rules.types.size(), false);
  plan->stages.push_back(std::move(s));
  return plan->stages.back();
}

// A counter or an aggregate keyed on `field`, reading `source`'s events.
void PlanDeclaration(Plan* plan, const nfa::CompiledRuleSet& rules, const std::string& group_id,
                     const std::string& field, int slot, const std::string& name, const nfa::SourceProgram& source) {
  if (field == plan->partition_key) {
    plan->direct.push_back(name);
    return;
  }
  RekeyStage& s = StageOf(plan, rules, field, slot, group_id);
  s.rules.push_back(name);
  s.all_types |= source.any_type;
  for (int32_t t : source.type_ids) s.forward[static_cast<size_t>(t)] = true;
}

}  // namespace

Plan MakePlan(const nfa::CompiledRuleSet& rules, const std::string& partition_key, const std::string& group_id) {
  Plan plan;
  plan.partition_key = partition_key;
  for (const auto& p : rules.programs) {
    std::string field = KeyField(rules, *p);
    if (field == partition_key) {
      plan.direct.push_back(p->name);
      continue;
    }
    RekeyStage& s = StageOf(&plan, rules, field, p->key_slot, group_id);
    s.rules.push_back(p->name);
    s.all_types |= p->needs_all_types;
    for (size_t t = 0; t < rules.types.size(); ++t) {
      if (t < p->relevant.size() && p->relevant[t]) s.forward[t] = true;
    }
  }
  // Counters and aggregates (sections 6.2, 6.3): keyed by their key or group.
  for (const auto& c : rules.counters) {
    PlanDeclaration(&plan, rules, group_id, fmt::format("{}", fmt::join(c.counter->key, ".")), c.key_slot,
                    "counter " + c.name, c.source);
  }
  for (const auto& a : rules.aggregates) {
    PlanDeclaration(&plan, rules, group_id, fmt::format("{}", fmt::join(a.aggregate->group, ".")), a.group_slot,
                    "aggregate " + a.name, a.source);
  }
  for (auto& s : plan.stages) {
    for (size_t t = 0; t < s.forward.size(); ++t) {
      if (s.forward[t]) s.types.push_back(rules.types.name(static_cast<int32_t>(t)));
    }
    std::sort(s.types.begin(), s.types.end());
  }
  return plan;
}

namespace {
// "3 rules", or "2 rules, 1 counter" when counters or aggregates are among
// the names ("counter x", "aggregate y").
std::string Count(const std::vector<std::string>& names) {
  size_t rules = 0, counters = 0, aggregates = 0;
  for (const auto& n : names) {
    if (n.rfind("counter ", 0) == 0) ++counters;
    else if (n.rfind("aggregate ", 0) == 0) ++aggregates;
    else ++rules;
  }
  std::vector<std::string> parts;
  auto add = [&](size_t n, const char* what) {
    if (n > 0) parts.push_back(fmt::format("{} {}{}", n, what, n == 1 ? "" : "s"));
  };
  add(rules, "rule");
  add(counters, "counter");
  add(aggregates, "aggregate");
  return fmt::format("{}", fmt::join(parts, ", "));
}
}  // namespace

std::string FormatPlan(const Plan& plan) {
  std::string out;
  if (plan.direct.empty()) {
    out += fmt::format("plan: no rule keyed on the partition key '{}'\n", plan.partition_key);
  } else {
    out += fmt::format("plan: {} keyed on the partition key '{}' run directly: {}\n", Count(plan.direct),
                       plan.partition_key, fmt::join(plan.direct, ", "));
  }
  for (const auto& s : plan.stages) {
    out += fmt::format("plan: {} keyed on '{}' run after re-keying through topic {} ({}): {}\n",
                       Count(s.rules), s.field, s.topic,
                       s.all_types ? std::string("every event forwarded")
                                   : fmt::format("events forwarded: {}", fmt::join(s.types, ", ")),
                       fmt::join(s.rules, ", "));
  }
  return out;
}

}  // namespace cepheus::daemon

// Alerts: section 5 of the spec.
//
// The alert id is XXH3-128 over the rule name, its version, the key and the
// position (topic, partition, offset) of every bound event in pattern order,
// each field length-prefixed so no two inputs collide by concatenation. A
// redelivered event keeps its position, so a re-detected alert keeps its id.
#include "engine/alert.h"

#include <xxhash.h>

#include <fmt/format.h>

#include "cepheus/common/json_writer.h"

namespace cepheus::engine {
namespace {

constexpr int kRuleVersion = 1;

void HashField(XXH3_state_t* st, std::string_view s) {
  uint64_t n = s.size();
  XXH3_128bits_update(st, &n, sizeof n);
  XXH3_128bits_update(st, s.data(), s.size());
}

std::string AlertId(const nfa::Program& p, const std::string& key, const nfa::Run& run) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  HashField(st, p.name);
  int64_t version = kRuleVersion;
  XXH3_128bits_update(st, &version, sizeof version);
  HashField(st, key);
  // Pattern order: by step, then in the order each step took its events.
  for (int32_t s = 0; s < static_cast<int32_t>(p.steps.size()); ++s) {
    for (const auto& b : run.bound) {
      if (b.step != s) continue;
      HashField(st, b.event->pos.topic);
      int64_t part = b.event->pos.partition, off = b.event->pos.offset;
      XXH3_128bits_update(st, &part, sizeof part);
      XXH3_128bits_update(st, &off, sizeof off);
    }
  }
  XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

}  // namespace

Alert MakeAlert(const nfa::Program& p, const std::string& key, const nfa::Match& m, const nfa::TableReader* tables,
                const nfa::CounterReader* counters) {
  const nfa::Run& run = m.run;
  Alert a;
  a.rule = p.name;
  a.key = key;
  a.absence = m.absence;
  a.detected_at = m.detected_at;
  a.alert_id = AlertId(p, key, run);

  std::string message;
  if (p.emit.empty()) {
    message = p.name;
  } else {
    for (const auto& part : p.emit) {
      if (part.key) message += key;
      else if (!part.expr.empty()) message += nfa::EvaluateOnRun(part.expr, run, tables, m.detected_at, counters,
                                                                     part.format ? &*part.format : nullptr);
      else message += part.text;
    }
  }

  std::string& j = a.json;
  j.reserve(512);
  j += "{\"alert_id\":";
  AppendJsonString(&j, a.alert_id);
  j += ",\"rule\":";
  AppendJsonString(&j, p.name);
  j += fmt::format(",\"rule_version\":{},\"key\":", kRuleVersion);
  AppendJsonString(&j, key);
  j += ",\"severity\":";
  AppendJsonString(&j, dsl::SeverityName(p.rule->severity));
  j += fmt::format(",\"reason\":\"{}\",\"first_ts\":{},\"last_ts\":{},\"detected_at\":{},\"message\":",
                   m.absence ? "absence" : "match", run.first_ts, run.last_ts, m.detected_at);
  AppendJsonString(&j, message);
  if (!p.rule->description.empty()) {
    j += ",\"description\":";
    AppendJsonString(&j, p.rule->description);
  }
  if (!p.fields.empty()) {
    j += ",\"fields\":{";
    for (size_t i = 0; i < p.fields.size(); ++i) {
      if (i) j += ',';
      AppendJsonString(&j, p.fields[i].first);
      j += ':';
      nfa::AppendJsonOnRun(p.fields[i].second, run, tables, m.detected_at, counters, &j);
    }
    j += '}';
  }
  j += ",\"events\":{";
  bool first_name = true;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    if (p.steps[s].absent || p.steps[s].name.empty()) continue;
    if (!first_name) j += ',';
    first_name = false;
    AppendJsonString(&j, p.steps[s].name);
    j += ":[";
    bool first_event = true;
    for (const auto& b : run.bound) {
      if (b.step != static_cast<int32_t>(s)) continue;
      if (!first_event) j += ',';
      first_event = false;
      j += b.event->raw;
    }
    j += ']';
  }
  j += "},\"tags\":[";
  for (size_t i = 0; i < p.rule->tags.size(); ++i) {
    if (i) j += ',';
    AppendJsonString(&j, p.rule->tags[i]);
  }
  j += "]}";
  return a;
}

}  // namespace cepheus::engine

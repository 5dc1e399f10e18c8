// Windowed aggregates (section 6.3). A window [k*every, k*every + size) is
// open from its group's first event in it until the watermark reaches its
// end; windows close in the order of their ends (a map from end to the groups
// with that window open). At close, the computed fields are the window's
// accumulators; `alert when` and `emit` are evaluated as filters over a
// synthetic event holding the computed fields, `group` and each previous_*
// value, which reads the group's kept results of the windows starting
// i * every earlier (a missing window counts 0 for count, sum and distinct
// and is skipped for avg, min and max). A group keeps the results of its last
// `history` windows, and is dropped once it has neither open windows nor
// results in that range.
#include "engine/aggregates.h"

#include <algorithm>
#include <cstring>

#include <xxhash.h>

#include <fmt/format.h>

#include "cepheus/common/json_writer.h"
#include "cepheus/common/time.h"
#include "cepheus/nfa/matcher.h"
#include "engine/state_format.h"

namespace cepheus::engine {
namespace {

constexpr int kRuleVersion = 1;

bool TypeMatches(const nfa::SourceProgram& s, const nfa::Event& e) {
  if (s.any_type) return true;
  return std::find(s.type_ids.begin(), s.type_ids.end(), e.type_id) != s.type_ids.end() && e.type_id >= 0;
}

nfa::Value Result(const nfa::AggregateProgram::Field& f, double count, double sum, double min, double max,
                  double numbers, size_t distinct) {
  switch (f.fn) {
    case dsl::AggFn::kCount: return nfa::Value::Number(count);
    case dsl::AggFn::kSum: return nfa::Value::Number(sum);
    case dsl::AggFn::kAvg: return numbers == 0 ? nfa::Value::Null() : nfa::Value::Number(sum / numbers);
    case dsl::AggFn::kMin: return numbers == 0 ? nfa::Value::Null() : nfa::Value::Number(min);
    case dsl::AggFn::kMax: return numbers == 0 ? nfa::Value::Null() : nfa::Value::Number(max);
    case dsl::AggFn::kDistinct: return nfa::Value::Number(static_cast<double>(distinct));
  }
  return nfa::Value::Null();
}

void AppendValue(std::string* j, const nfa::Value& v) {
  if (v.kind == nfa::Value::Kind::kNumber) AppendJsonNumber(j, v.number);
  else *j += "null";
}

// The alert of a window whose `alert when` holds (section 6.3): section 5's
// shape, reason "aggregate", the group as key, no events, the computed
// fields under "values"; its id hashes the aggregate, the group and the start.
Alert AggregateAlert(const nfa::AggregateProgram& p, const std::string& group, Millis start, Millis end,
                     const std::vector<nfa::Value>& values, const std::string& message) {
  Alert a;
  a.rule = p.name;
  a.key = group;
  a.detected_at = end;
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  for (std::string_view f : {std::string_view(p.name), std::string_view("\0aggregate", 10), std::string_view(group)}) {
    uint64_t n = f.size();
    XXH3_128bits_update(st, &n, sizeof n);
    XXH3_128bits_update(st, f.data(), f.size());
  }
  XXH3_128bits_update(st, &start, sizeof start);
  XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  a.alert_id = fmt::format("{:016x}{:016x}", h.high64, h.low64);
  std::string& aj = a.json;
  aj += "{\"alert_id\":";
  AppendJsonString(&aj, a.alert_id);
  aj += ",\"rule\":";
  AppendJsonString(&aj, p.name);
  aj += fmt::format(",\"rule_version\":{},\"key\":", kRuleVersion);
  AppendJsonString(&aj, group);
  aj += ",\"severity\":";
  AppendJsonString(&aj, dsl::SeverityName(p.aggregate->severity));
  aj += fmt::format(",\"reason\":\"aggregate\",\"first_ts\":{},\"last_ts\":{},\"detected_at\":{},\"message\":", start,
                    end, end);
  AppendJsonString(&aj, message);
  if (!p.aggregate->description.empty()) {
    aj += ",\"description\":";
    AppendJsonString(&aj, p.aggregate->description);
  }
  aj += ",\"events\":{},\"values\":{";
  for (size_t i = 0; i < p.compute.size(); ++i) {
    if (i) aj += ',';
    AppendJsonString(&aj, p.compute[i].name);
    aj += ':';
    AppendValue(&aj, values[i]);
  }
  aj += "},\"tags\":[";
  for (size_t i = 0; i < p.aggregate->tags.size(); ++i) {
    if (i) aj += ',';
    AppendJsonString(&aj, p.aggregate->tags[i]);
  }
  aj += "]}";
  return a;
}

}  // namespace

Aggregates::Aggregates(std::shared_ptr<const nfa::CompiledRuleSet> rules, const std::vector<std::string>& key_fields,
                       std::vector<AggregateStats>* stats)
    : rules_(std::move(rules)), stats_(stats) {
  stats_->resize(rules_->aggregates.size());
  for (const auto& a : rules_->aggregates) {
    State s;
    s.program = &a;
    std::string field = fmt::format("{}", fmt::join(a.aggregate->group, "."));
    s.enabled = key_fields.empty() || std::find(key_fields.begin(), key_fields.end(), field) != key_fields.end();
    states_.push_back(std::move(s));
  }
}

void Aggregates::CountLate(const nfa::Event& e) {
  for (size_t i = 0; i < states_.size(); ++i) {
    const nfa::AggregateProgram& p = *states_[i].program;
    if (!states_[i].enabled || !TypeMatches(p.source, e)) continue;
    if (!p.source.filter.empty() && !nfa::EvaluateOnEvent(p.source.filter, e, nullptr, e.ts)) continue;
    if (!nfa::ValueKeyText(e.fields[static_cast<size_t>(p.group_slot)], &text_)) continue;
    ++(*stats_)[i].late;
  }
}

void Aggregates::Add(const nfa::Event& e) {
  for (State& s : states_) {
    const nfa::AggregateProgram& p = *s.program;
    if (!s.enabled || !TypeMatches(p.source, e)) continue;
    if (!p.source.filter.empty() && !nfa::EvaluateOnEvent(p.source.filter, e, nullptr, e.ts)) {
      continue;
    }
    if (!nfa::ValueKeyText(e.fields[static_cast<size_t>(p.group_slot)], &text_)) continue;  // no group
    Group& g = s.groups[text_];
    MarkDirty(static_cast<uint32_t>(&s - states_.data()), text_);
    (*stats_)[static_cast<size_t>(&s - states_.data())].groups = static_cast<int64_t>(s.groups.size());
    // Windows k*every <= ts < k*every + size.
    Millis last = e.ts >= 0 ? e.ts / p.every : -((-e.ts + p.every - 1) / p.every);
    for (Millis k = last; k * p.every + p.size > e.ts; --k) {
      Millis start = k * p.every;
      auto [it, fresh] = g.open.try_emplace(start);
      if (fresh) {
        it->second.resize(p.compute.size());
        s.ends[start + p.size].push_back(text_);
      }
      for (size_t i = 0; i < p.compute.size(); ++i) {
        const auto& f = p.compute[i];
        Acc& acc = it->second[i];
        acc.count += 1;
        if (f.slot < 0) continue;
        const nfa::Value& v = e.fields[static_cast<size_t>(f.slot)];
        if (f.fn == dsl::AggFn::kDistinct) {
          std::string t;
          if (nfa::ValueKeyText(v, &t) && acc.distinct.size() < dsl::kMaxDistinctValues) acc.distinct.insert(std::move(t));
        } else if (v.kind == nfa::Value::Kind::kNumber) {
          acc.min = acc.numbers == 0 ? v.number : std::min(acc.min, v.number);
          acc.max = acc.numbers == 0 ? v.number : std::max(acc.max, v.number);
          acc.numbers += 1;
          acc.sum += v.number;
        }
      }
    }
  }
}

nfa::Value Aggregates::Previous(const State& s, const Group& g, Millis start,
                                const nfa::AggregateProgram::Previous& q) const {
  const auto& f = s.program->compute[static_cast<size_t>(q.field)];
  bool zero_when_missing = f.fn == dsl::AggFn::kCount || f.fn == dsl::AggFn::kSum || f.fn == dsl::AggFn::kDistinct;
  double total = 0, best = 0, n = 0;
  for (int i = 1; i <= q.n; ++i) {
    Millis at = start - i * s.program->every;
    auto it = g.history.find(at);
    double v;
    if (it != g.history.end() && it->second[static_cast<size_t>(q.field)].kind == nfa::Value::Kind::kNumber) {
      v = it->second[static_cast<size_t>(q.field)].number;
    } else if (it == g.history.end() && zero_when_missing) {
      v = 0;
    } else {
      continue;
    }
    best = n == 0 ? v : std::max(best, v);
    total += v;
    n += 1;
  }
  if (n == 0) return nfa::Value::Null();
  return nfa::Value::Number(q.max ? best : total / n);
}

// Returns true when it published an alert.
bool Aggregates::Close(State& s, const std::string& group, Group& g, Millis start, AlertSink* sink) {
  const nfa::AggregateProgram& p = *s.program;
  auto it = g.open.find(start);
  if (it == g.open.end()) return false;
  bool alerted = false;
  std::vector<nfa::Value> values;
  for (size_t i = 0; i < p.compute.size(); ++i) {
    const Acc& a = it->second[i];
    values.push_back(Result(p.compute[i], a.count, a.sum, a.min, a.max, a.numbers, a.distinct.size()));
  }
  g.open.erase(it);
  ++(*stats_)[static_cast<size_t>(&s - states_.data())].windows_closed;
  MarkDirty(static_cast<uint32_t>(&s - states_.data()), group);
  Millis end = start + p.size;
  AggregateRecord rec;
  rec.aggregate = p.name;
  rec.group = group;
  rec.window_start = start;
  rec.window_end = end;
  std::string& j = rec.json;
  j += "{\"aggregate\":";
  AppendJsonString(&j, p.name);
  j += ",\"group\":";
  AppendJsonString(&j, group);
  j += fmt::format(",\"window_start\":{},\"window_end\":{}", start, end);
  for (size_t i = 0; i < p.compute.size(); ++i) {
    j += ',';
    AppendJsonString(&j, p.compute[i].name);
    j += ':';
    AppendValue(&j, values[i]);
  }
  j += fmt::format(",\"window_start_time\":\"{}\",\"window_end_time\":\"{}\"}}", FormatRfc3339(start),
                   FormatRfc3339(end));
  if (sink) sink->PublishAggregate(rec);
  if (!p.alert_when.empty()) {
    // The synthetic event: computed fields, group, previous_* values.
    nfa::EventRef ev(nfa::Event::New(p.values.size(), 0));
    for (size_t i = 0; i < values.size(); ++i) ev->fields[i] = values[i];
    ev->fields[static_cast<size_t>(p.group_value_slot)] = nfa::Value::String(group);
    for (const auto& q : p.previous) ev->fields[static_cast<size_t>(q.slot)] = Previous(s, g, start, q);
    ev->ts = end;
    if (nfa::EvaluateOnEvent(p.alert_when, *ev, nullptr, end) && sink) {
      std::string message;
      if (p.emit.empty()) message = p.name;
      for (const auto& part : p.emit) {
        message += part.expr.empty() ? part.text
                                     : nfa::EvaluateTextOnEvent(part.expr, *ev, end, part.format ? &*part.format : nullptr);
      }
      sink->Publish(AggregateAlert(p, group, start, end, values, message));
      alerted = true;
    }
  }
  if (p.aggregate->history > 0) g.history.emplace(start, std::move(values));
  return alerted;
}

uint64_t Aggregates::CloseUntil(Millis w, AlertSink* sink) {
  uint64_t alerts = 0;
  for (State& s : states_) {
    const nfa::AggregateProgram& p = *s.program;
    bool any = false;
    Millis last_start = 0;
    while (!s.ends.empty() && s.ends.begin()->first <= w) {
      auto node = s.ends.extract(s.ends.begin());
      Millis start = node.key() - p.size;
      // In group order: the same order after a restore as without one.
      std::sort(node.mapped().begin(), node.mapped().end());
      for (const auto& group : node.mapped()) {
        auto git = s.groups.find(group);
        if (git != s.groups.end()) alerts += Close(s, group, git->second, start, sink);
      }
      any = true;
      last_start = start;
    }
    if (!any) continue;
    // Results older than any previous_* will read again go, then groups left
    // with nothing.
    Millis keep_from = last_start + p.every - static_cast<Millis>(p.aggregate->history) * p.every;
    for (auto it = s.groups.begin(); it != s.groups.end();) {
      auto& h = it->second.history;
      if (!h.empty() && h.begin()->first < keep_from) {
        h.erase(h.begin(), h.lower_bound(keep_from));
        MarkDirty(static_cast<uint32_t>(&s - states_.data()), it->first);
      }
      if (h.empty() && it->second.open.empty()) it = s.groups.erase(it);
      else ++it;
    }
    (*stats_)[static_cast<size_t>(&s - states_.data())].groups = static_cast<int64_t>(s.groups.size());
  }
  return alerts;
}

namespace {

std::string RecordKey(std::string_view aggregate, std::string_view group) {
  std::string joined(aggregate);
  joined.push_back('\0');
  joined.append(group);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(joined.data(), joined.size()));
  return "engine/a/" + std::string(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
}

}  // namespace

// string aggregate, u64le fingerprint, string group; varint W open windows,
// each svarint start and per computed field five doubles (count, sum, min,
// max, numbers) and its distinct values; varint H kept results, each svarint
// start and per field u8 (0 null, 1 number) and the number.
Status Aggregates::Put(StateStore* store, uint32_t state, const std::string& group) {
  const State& s = states_[state];
  std::string key = RecordKey(s.program->name, group);
  auto it = s.groups.find(group);
  if (it == s.groups.end()) {
    if (stored_.erase({state, group}) == 0) return Status::Ok();
    return store->Delete(key);
  }
  std::string v;
  PutLengthPrefixed(&v, s.program->name);
  uint64_t fp = s.program->aggregate->fingerprint;
  v.append(reinterpret_cast<const char*>(&fp), 8);
  PutLengthPrefixed(&v, group);
  PutVarint(&v, it->second.open.size());
  for (const auto& [start, accs] : it->second.open) {
    PutSigned(&v, start);
    for (const Acc& a : accs) {
      for (double d : {a.count, a.sum, a.min, a.max, a.numbers}) PutF64(&v, d);
      std::vector<std::string> values(a.distinct.begin(), a.distinct.end());
      std::sort(values.begin(), values.end());  // the same bytes for the same set
      PutVarint(&v, values.size());
      for (const auto& x : values) PutLengthPrefixed(&v, x);
    }
  }
  PutVarint(&v, it->second.history.size());
  for (const auto& [start, values] : it->second.history) {
    PutSigned(&v, start);
    for (const auto& x : values) {
      v.push_back(x.kind == nfa::Value::Kind::kNumber ? 1 : 0);
      if (x.kind == nfa::Value::Kind::kNumber) PutF64(&v, x.number);
    }
  }
  stored_.emplace(state, group);
  return store->Put(key, v);
}

Status Aggregates::Save(StateStore* store) {
  stored_.clear();  // the caller deleted every engine/ record
  dirty_.clear();
  for (uint32_t i = 0; i < states_.size(); ++i) {
    for (const auto& [group, g] : states_[i].groups) {
      if (Status st = Put(store, i, group); !st.ok()) return st;
    }
  }
  return Status::Ok();
}

Status Aggregates::SaveChanges(StateStore* store) {
  for (const auto& [state, group] : dirty_) {
    if (Status st = Put(store, state, group); !st.ok()) return st;
  }
  dirty_.clear();
  return Status::Ok();
}

void Aggregates::Clear() {
  for (auto& s : states_) {
    s.groups.clear();
    s.ends.clear();
  }
  for (auto& st : *stats_) st.groups = 0;
  dirty_.clear();
  stored_.clear();
}

Status Aggregates::Load(std::string_view key, std::string_view value, bool* stale) {
  std::string_view in = value;
  Reader r(&in);
  std::string name(r.String());
  uint64_t fp = r.Fixed64();
  std::string group(r.String());
  if (!r.ok()) return Status::Corruption("bad aggregate record");
  uint32_t i = 0;
  while (i < states_.size() && states_[i].program->name != name) ++i;
  if (i == states_.size() || states_[i].program->aggregate->fingerprint != fp || !states_[i].enabled) {
    *stale = true;  // changed, removed, or run elsewhere
    return Status::Ok();
  }
  State& s = states_[i];
  const size_t fields = s.program->compute.size();
  Group g;
  uint64_t n = r.Varint();
  for (uint64_t w = 0; w < n && r.ok(); ++w) {
    Millis start = r.Signed();
    std::vector<Acc> accs(fields);
    for (Acc& a : accs) {
      for (double* d : {&a.count, &a.sum, &a.min, &a.max, &a.numbers}) *d = r.F64();
      uint64_t m = r.Varint();
      for (uint64_t j = 0; j < m && r.ok(); ++j) a.distinct.emplace(r.String());
    }
    g.open.emplace(start, std::move(accs));
    s.ends[start + s.program->size].push_back(group);
  }
  uint64_t h = r.Varint();
  for (uint64_t w = 0; w < h && r.ok(); ++w) {
    Millis start = r.Signed();
    std::vector<nfa::Value> values(fields);
    for (auto& x : values) {
      if (r.Byte() == 1) x = nfa::Value::Number(r.F64());
    }
    g.history.emplace(start, std::move(values));
  }
  if (!r.ok() || !in.empty()) return Status::Corruption("truncated aggregate record");
  (void)key;
  s.groups[group] = std::move(g);
  stored_.emplace(i, group);
  (*stats_)[i].groups = static_cast<int64_t>(s.groups.size());
  return Status::Ok();
}

}  // namespace cepheus::engine

// Why this file is slow and dumb on purpose.
//
// The engine is fast because it is clever: rules are compiled into automaton
// programs, field paths into slots, expressions into flat node arrays, and
// aggregates are kept incrementally per run. Every one of those tricks is a
// place where the engine can silently disagree with the rule language, and a
// test that reuses any of them would inherit the same mistake and approve it.
// re2 is tested the same way: its clever automata are checked against a
// backtracking matcher too slow to ship but simple enough to trust.
//
// So this matcher shares nothing with src/nfa or src/engine. It reads the
// checked rule model (dsl::Rule) and the raw JSON text of the events, and does
// what the spec and the engine's semantics notes say, in the most literal way
// we could write it:
//
//   - every event is parsed with the simdjson DOM into a plain value tree, and
//     fields are looked up by walking that tree by name every time;
//   - the reorder buffer is a vector scanned for its smallest (ts, arrival)
//     whenever the watermark moves, and windows are closed by scanning every
//     run for the earliest deadline, one deadline at a time;
//   - a run is a plain struct holding the indices of the events bound to each
//     step; forking copies it;
//   - expressions are evaluated by walking dsl::Expr, resolving names by
//     scanning the pattern's steps, and every aggregate (count, sum, avg, min,
//     max, distinct, first, last, `in` lists) is recomputed from the bound
//     events each time it is needed.
//
// Each function corresponds to one sentence of spec section 4 or one item of
// the semantics notes, and is written so that it can be checked against that
// sentence by reading. Nothing here is optimised; if a test gets slow, make
// the generated inputs smaller, not this code smarter.
#include "reference/reference_matcher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <fmt/format.h>
#include <re2/re2.h>
#include <simdjson.h>

#include "cepheus/common/json_writer.h"

namespace cepheus::reference {
namespace {

using dsl::AggFn;
using dsl::Arrow;
using dsl::Expr;
using dsl::SkipPolicy;
using dsl::Step;

constexpr Millis kInfinity = std::numeric_limits<Millis>::max();

// ---- values -------------------------------------------------------------------

// A JSON value, or the value of an expression.
struct Value {
  enum class Kind { kNull, kBool, kNumber, kString, kList, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<Value> items;              // kList; kObject: the field values
  std::vector<std::string> field_names;  // kObject: the field names, in document order
};

Value Null() { return Value(); }

Value Bool(bool b) {
  Value v;
  v.kind = Value::Kind::kBool;
  v.boolean = b;
  return v;
}

Value Number(double n) {
  Value v;
  v.kind = Value::Kind::kNumber;
  v.number = n;
  return v;
}

Value String(std::string s) {
  Value v;
  v.kind = Value::Kind::kString;
  v.text = std::move(s);
  return v;
}

Value List(std::vector<Value> items) {
  Value v;
  v.kind = Value::Kind::kList;
  v.items = std::move(items);
  return v;
}

bool IsNull(const Value& v) { return v.kind == Value::Kind::kNull; }
bool IsNumber(const Value& v) { return v.kind == Value::Kind::kNumber; }
bool IsString(const Value& v) { return v.kind == Value::Kind::kString; }
// `and`, `or` and `not` treat only true as true.
bool IsTrue(const Value& v) { return v.kind == Value::Kind::kBool && v.boolean; }

Value FromJson(simdjson::dom::element el) {
  using simdjson::dom::element_type;
  Value v;
  switch (el.type()) {
    case element_type::ARRAY:
      v.kind = Value::Kind::kList;
      for (simdjson::dom::element item : el.get_array()) v.items.push_back(FromJson(item));
      break;
    case element_type::OBJECT:
      v.kind = Value::Kind::kObject;
      for (simdjson::dom::key_value_pair field : el.get_object()) {
        v.field_names.emplace_back(field.key);
        v.items.push_back(FromJson(field.value));
      }
      break;
    case element_type::INT64:
      v = Number(static_cast<double>(int64_t(el)));
      break;
    case element_type::UINT64:
      v = Number(static_cast<double>(uint64_t(el)));
      break;
    case element_type::DOUBLE:
      v = Number(double(el));
      break;
    case element_type::STRING:
      v = String(std::string(std::string_view(el)));
      break;
    case element_type::BOOL:
      v = Bool(bool(el));
      break;
    case element_type::NULL_VALUE:
      break;
  }
  return v;
}

// The value at `path[from..]` inside `doc`; a missing field is null.
Value FieldOf(const Value& doc, const std::vector<std::string>& path, size_t from) {
  const Value* at = &doc;
  for (size_t i = from; i < path.size(); ++i) {
    if (at->kind != Value::Kind::kObject) return Null();
    const Value* next = nullptr;
    for (size_t f = 0; f < at->field_names.size() && next == nullptr; ++f) {
      if (at->field_names[f] == path[i]) next = &at->items[f];
    }
    if (next == nullptr) return Null();
    at = next;
  }
  return *at;
}

// `==` on two values that are not null: same kind and same value. A string
// never equals a number; lists and objects never equal anything.
bool SameScalar(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kBool: return a.boolean == b.boolean;
    case Value::Kind::kNumber: return a.number == b.number;
    case Value::Kind::kString: return a.text == b.text;
    default: return false;
  }
}

// ---- events -------------------------------------------------------------------

struct Event {
  int arrival = 0;  // position in the input (malformed records included)
  // Position in the evaluation order of 4.1 (event time, ties by arrival);
  // -1 until evaluated. "Oldest", "first" and "before" are by this, never
  // by arrival.
  int order = -1;
  std::string raw;
  Value doc;
  Millis ts = 0;
  std::string type;
  std::string id;
};

// Parses one record; nullopt when it is malformed (not an object, no string
// type, no integer or RFC 3339 time).
std::optional<Event> ParseEvent(simdjson::dom::parser& parser, const std::string& raw,
                                int arrival) {
  simdjson::dom::element root;
  if (parser.parse(raw).get(root) != simdjson::SUCCESS) return std::nullopt;
  if (root.type() != simdjson::dom::element_type::OBJECT) return std::nullopt;
  Event e;
  e.arrival = arrival;
  e.raw = raw;
  e.doc = FromJson(root);
  Value type = FieldOf(e.doc, {"type"}, 0);
  if (!IsString(type) || type.text.empty()) return std::nullopt;
  e.type = type.text;
  simdjson::dom::element ts;
  if (root["ts"].get(ts) != simdjson::SUCCESS) return std::nullopt;
  int64_t ts_int;
  std::string_view ts_text;
  if (ts.get_int64().get(ts_int) == simdjson::SUCCESS) {
    e.ts = ts_int;
  } else if (ts.get_string().get(ts_text) == simdjson::SUCCESS) {
    std::optional<Millis> parsed = ParseRfc3339(ts_text);
    if (!parsed) return std::nullopt;
    e.ts = *parsed;
  } else {
    return std::nullopt;
  }
  simdjson::dom::element id;
  if (root["id"].get(id) == simdjson::SUCCESS) {
    std::string_view id_text;
    if (id.get_string().get(id_text) == simdjson::SUCCESS) {
      e.id = std::string(id_text);
    } else {
      e.id = simdjson::minify(id);
    }
  }
  return e;
}

// ---- tables (section 6.1) --------------------------------------------------------

// The text a key value is compared by: a string as it is, a number in its
// shortest form, true or false; nullopt for null, lists and objects (no key).
std::optional<std::string> KeyTextOf(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString: return v.text;
    case Value::Kind::kNumber: return FormatNumber(v.number);
    case Value::Kind::kBool: return std::string(v.boolean ? "true" : "false");
    default: return std::nullopt;
  }
}

// count, sum, avg, min, max or distinct of some values, in their order: what
// a counter reads over its window's events and an aggregate's `compute` over
// a window's (sections 6.2, 6.3). sum, avg, min and max count only numbers;
// over nothing, avg, min and max are null.
Value AggregateOf(dsl::AggFn fn, const std::vector<Value>& values) {
  double sum = 0, min = 0, max = 0, numbers = 0;
  std::set<std::string> distinct;
  for (const Value& v : values) {
    if (fn == dsl::AggFn::kDistinct) {
      if (auto t = KeyTextOf(v)) distinct.insert(*t);
    } else if (IsNumber(v)) {
      min = numbers == 0 ? v.number : std::min(min, v.number);
      max = numbers == 0 ? v.number : std::max(max, v.number);
      sum += v.number;
      numbers += 1;
    }
  }
  switch (fn) {
    case dsl::AggFn::kCount: return Number(static_cast<double>(values.size()));
    case dsl::AggFn::kSum: return Number(sum);
    case dsl::AggFn::kAvg: return numbers == 0 ? Null() : Number(sum / numbers);
    case dsl::AggFn::kMin: return numbers == 0 ? Null() : Number(min);
    case dsl::AggFn::kMax: return numbers == 0 ? Null() : Number(max);
    case dsl::AggFn::kDistinct: return Number(static_cast<double>(distinct.size()));
  }
  return Null();
}

// "profiles[EXPR].PATH reads a field of the record whose key equals EXPR, as
// of the current event's time: the version with the greatest time not after
// the event's ts (a record without time holds from the beginning of time).
// No record, or a deleted one, reads as null." "Of two versions of one key
// with the same time, the later in the source wins." A record `{..., "deleted":
// true}` deletes the key from its time on. Every record is parsed again at
// every lookup.
std::optional<Value> LookupRecord(const std::vector<ReferenceTable>& tables, const std::string& name,
                                  const Value& key, Millis at) {
  std::optional<std::string> want = KeyTextOf(key);
  if (!want) return std::nullopt;  // "A null key looks up nothing"
  const ReferenceTable* table = nullptr;
  for (const auto& t : tables) {
    if (t.table->name == name) table = &t;
  }
  if (table == nullptr) return std::nullopt;
  simdjson::dom::parser parser;
  std::optional<Value> best;
  std::optional<Millis> best_time;
  for (const std::string& raw : table->records) {
    simdjson::dom::element root;
    if (parser.parse(raw).get(root) != simdjson::SUCCESS || root.type() != simdjson::dom::element_type::OBJECT) {
      continue;
    }
    Value doc = FromJson(root);
    std::optional<std::string> k = KeyTextOf(FieldOf(doc, table->table->key, 0));
    if (!k || *k != *want) continue;
    Millis time = std::numeric_limits<Millis>::min();  // the beginning of time
    if (!table->table->time.empty()) {
      Value t = FieldOf(doc, table->table->time, 0);
      if (IsNumber(t) && t.number == std::floor(t.number)) {
        time = static_cast<Millis>(t.number);
      } else if (IsString(t) && ParseRfc3339(t.text)) {
        time = *ParseRfc3339(t.text);
      } else if (!IsNull(t)) {
        continue;  // a time that is not one: malformed
      }
    }
    if (time > at) continue;
    if (!best_time || time >= *best_time) {  // ">=": of one time, the later in the source
      best_time = time;
      best = doc;
    }
  }
  if (!best) return std::nullopt;
  Value deleted = FieldOf(*best, {"deleted"}, 0);
  if (IsTrue(deleted)) return std::nullopt;
  return best;
}

// ---- scalar functions (rules/README, "Functions"), literally ---------------------

bool ScalarFunction(const std::string& fn) {
  for (const char* f : {"round", "floor", "ceil", "starts_with", "ends_with", "contains", "matches", "substr",
                        "split_part", "hour", "weekday", "geo_km"}) {
    if (fn == f) return true;
  }
  return false;
}

bool IsWholeNumber(const Value& v) {
  return IsNumber(v) && std::isfinite(v.number) && std::floor(v.number) == v.number;
}

// The characters (code points) of UTF-8 text, each as its bytes.
std::vector<std::string> Characters(const std::string& s) {
  std::vector<std::string> out;
  for (unsigned char c : s) {
    if ((c & 0xC0) == 0x80 && !out.empty()) {
      out.back().push_back(static_cast<char>(c));
    } else {
      out.emplace_back(1, static_cast<char>(c));
    }
  }
  return out;
}

// "substr(s, start[, length]): the characters from position start (1 the
// first, -1 the last), at most length of them (all when omitted); "" past the
// end; null unless s is a string, start a whole number other than 0 and
// length a whole number >= 0."
Value Substr(const std::vector<Value>& a) {
  if (!IsString(a[0]) || !IsWholeNumber(a[1]) || a[1].number == 0) return Null();
  if (a.size() > 2 && (!IsWholeNumber(a[2]) || a[2].number < 0)) return Null();
  std::vector<std::string> chars = Characters(a[0].text);
  double n = static_cast<double>(chars.size());
  double first = a[1].number > 0 ? a[1].number - 1 : std::max(0.0, n + a[1].number);  // 0-based
  std::string out;
  for (double i = first, taken = 0; i < n && (a.size() < 3 || taken < a[2].number); ++i, ++taken) {
    out += chars[static_cast<size_t>(i)];
  }
  return String(out);
}

// "split_part(s, d, n): the n-th part of s cut at each d (1 the first, -1
// the last); "" when there are fewer parts; null unless s and d are strings,
// d is not empty and n is a whole number other than 0."
Value SplitPart(const std::vector<Value>& a) {
  if (!IsString(a[0]) || !IsString(a[1]) || a[1].text.empty() || !IsWholeNumber(a[2]) || a[2].number == 0) {
    return Null();
  }
  std::vector<std::string> parts;
  std::string rest = a[0].text;
  for (size_t at; (at = rest.find(a[1].text)) != std::string::npos;) {
    parts.push_back(rest.substr(0, at));
    rest = rest.substr(at + a[1].text.size());
  }
  parts.push_back(rest);
  double n = a[2].number, count = static_cast<double>(parts.size());
  double index = n > 0 ? n - 1 : count + n;
  if (index < 0 || index >= count) return String("");
  return String(parts[static_cast<size_t>(index)]);
}

// "hour(t[, zone]) 0 to 23 and weekday(t[, zone]) 1 (Monday) to 7 (Sunday),
// of a time t given as epoch milliseconds or an RFC 3339 string, in the zone
// of the tz database (UTC when none is given); null for anything else."
Value HourOrWeekday(const std::string& fn, const std::vector<Value>& a, const std::vector<Expr>& exprs) {
  std::optional<Millis> t;
  if (IsNumber(a[0]) && std::isfinite(a[0].number) && std::fabs(a[0].number) < 1e15) {
    t = static_cast<Millis>(std::floor(a[0].number));
  } else if (IsString(a[0])) {
    t = ParseRfc3339(a[0].text);
  }
  if (!t) return Null();
  // "zone: a name of the tz database, written in the rule or read from the
  // data (a profile's zone); null when it names no zone".
  absl::TimeZone zone = absl::UTCTimeZone();
  if (a.size() > 1 && (!IsString(a[1]) || !absl::LoadTimeZone(a[1].text, &zone))) return Null();
  absl::CivilSecond local = absl::ToCivilSecond(absl::FromUnixMillis(*t), zone);
  if (fn == "hour") return Number(static_cast<double>(local.hour()));
  static const absl::Weekday kIso[] = {absl::Weekday::monday, absl::Weekday::tuesday, absl::Weekday::wednesday,
                                       absl::Weekday::thursday, absl::Weekday::friday, absl::Weekday::saturday,
                                       absl::Weekday::sunday};
  absl::Weekday day = absl::GetWeekday(absl::CivilDay(local));
  for (int i = 0; i < 7; ++i) {
    if (kIso[i] == day) return Number(i + 1);
  }
  return Null();
}

// "geo_km(lat1, lon1, lat2, lon2): the great-circle distance in kilometres
// between two points given in degrees (haversine, on a sphere of radius
// 6371 km); null unless all four are numbers."
Value GeoKm(const std::vector<Value>& a) {
  for (const Value& v : a) {
    if (!IsNumber(v)) return Null();
  }
  const double to_rad = std::acos(-1.0) / 180;
  double dlat = (a[2].number - a[0].number) * to_rad, dlon = (a[3].number - a[1].number) * to_rad;
  double h = std::pow(std::sin(dlat / 2), 2) +
             std::cos(a[0].number * to_rad) * std::cos(a[2].number * to_rad) * std::pow(std::sin(dlon / 2), 2);
  return Number(2 * 6371 * std::asin(std::sqrt(std::min(1.0, h))));
}

// Every scalar function but if() and coalesce(), on evaluated arguments;
// `exprs` are the arguments as written (for the literal regex and zone).
Value CallScalar(const std::string& fn, const std::vector<Value>& a, const std::vector<Expr>& exprs) {
  if (fn == "round") {
    if (!IsNumber(a[0])) return Null();
    double scale = std::pow(10.0, a.size() > 1 ? a[1].number : 0);
    if (!std::isfinite(a[0].number * scale)) return a[0];
    return Number(std::round(a[0].number * scale) / scale);  // halves away from zero
  }
  if (fn == "floor") return IsNumber(a[0]) ? Number(std::floor(a[0].number)) : Null();
  if (fn == "ceil") return IsNumber(a[0]) ? Number(std::ceil(a[0].number)) : Null();
  if (fn == "min" || fn == "max") {  // "of two numbers or two strings; null otherwise"
    bool want_max = fn == "max";
    if (IsNumber(a[0]) && IsNumber(a[1])) {
      return Number(want_max ? std::max(a[0].number, a[1].number) : std::min(a[0].number, a[1].number));
    }
    if (IsString(a[0]) && IsString(a[1])) {
      return String(want_max ? std::max(a[0].text, a[1].text) : std::min(a[0].text, a[1].text));
    }
    return Null();
  }
  if (fn == "matches") {  // "somewhere in s"; false unless s is a string
    if (!IsString(a[0])) return Bool(false);
    return Bool(RE2::PartialMatch(a[0].text, RE2(exprs[1].text)));
  }
  if (fn == "starts_with" || fn == "ends_with" || fn == "contains") {  // false unless both are strings
    if (!IsString(a[0]) || !IsString(a[1])) return Bool(false);
    const std::string& s = a[0].text;
    const std::string& p = a[1].text;
    if (fn == "starts_with") return Bool(s.size() >= p.size() && s.compare(0, p.size(), p) == 0);
    if (fn == "ends_with") return Bool(s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0);
    return Bool(s.find(p) != std::string::npos);
  }
  if (fn == "substr") return Substr(a);
  if (fn == "split_part") return SplitPart(a);
  if (fn == "hour" || fn == "weekday") return HourOrWeekday(fn, a, exprs);
  if (fn == "geo_km") return GeoKm(a);
  return Null();
}

// ---- runs ---------------------------------------------------------------------

// A partial match: the step it is at, how many events that step has taken,
// and the events bound to every step (indices into the matcher's events).
struct Run {
  int step = 0;
  int count = 0;
  std::vector<std::vector<int>> bound;
  int last = -1;         // the event it took last
  bool skipped = false;  // it skipped an event of its key since it took `last`
};

struct KeyState {
  std::vector<Run> runs;  // oldest first
  // No run may start with an event at or before (in evaluation order) the
  // last event of any past_last match so far.
  int past_last_boundary = -1;
  std::optional<Millis> last_published;  // detected_at of the last published alert
};

class Matcher {
 public:
  Matcher(const dsl::Rule& rule, Millis out_of_order, const std::vector<ReferenceTable>& tables)
      : rule_(rule), steps_(rule.pattern.steps), out_of_order_(out_of_order), tables_(tables) {}

  // Section 4.1: an arriving event is late when ts < W; otherwise it is
  // buffered, and everything at or before the new watermark is released.
  void Arrive(const std::string& raw, int arrival) {
    std::optional<Event> e = ParseEvent(parser_, raw, arrival);
    if (!e) return;
    if (max_ts_ && e->ts < *max_ts_ - out_of_order_) {
      result_.late.push_back(e->id);
      return;
    }
    max_ts_ = max_ts_ ? std::max(*max_ts_, e->ts) : e->ts;
    events_.push_back(std::move(*e));
    buffer_.push_back(static_cast<int>(events_.size()) - 1);
    Release(*max_ts_ - out_of_order_);
  }

  // At the end of a finite input the watermark moves to +infinity.
  void Finish() { Release(kInfinity); }

  // An expression over one event's own fields (an aggregate's filter, or its
  // `alert when` over the record's values).
  Value EvalOn(const Expr& e, const Event& current) {
    Run none;
    none.bound.resize(steps_.size());
    return Eval(e, &current, none);
  }

  ReferenceResult TakeResult() { return std::move(result_); }

 private:
  // Releases buffered events with ts <= w in (ts, arrival) order, closing the
  // windows that closed before each one first, then the windows closed by w.
  void Release(Millis w) {
    while (true) {
      int best = -1;
      for (size_t b = 0; b < buffer_.size(); ++b) {
        const Event& e = events_[buffer_[b]];
        if (e.ts > w) continue;
        if (best < 0 || e.ts < events_[buffer_[best]].ts ||
            (e.ts == events_[buffer_[best]].ts && e.arrival < events_[buffer_[best]].arrival)) {
          best = static_cast<int>(b);
        }
      }
      if (best < 0) break;
      int index = buffer_[best];
      buffer_.erase(buffer_.begin() + best);
      CloseWindowsBefore(events_[index].ts);
      Evaluate(index);
    }
    CloseWindowsBefore(w);
  }

  Millis FirstTs(const Run& r) const { return events_[r.bound[0][0]].ts; }
  int FirstOrder(const Run& r) const { return events_[r.bound[0][0]].order; }
  Millis Deadline(const Run& r) const { return FirstTs(r) + rule_.within; }
  int StepCount() const { return static_cast<int>(steps_.size()); }
  bool EndsWithAbsent() const { return steps_.back().absent; }
  bool CanIterate(const Run& r) const {
    return steps_[r.step].max == dsl::kUnbounded || r.count < steps_[r.step].max;
  }

  // Closes, in deadline order, every window whose deadline is before `limit`
  // (W > first_ts + within). A run waiting only on a trailing absent step
  // completes with reason "absence"; every other run is dropped.
  void CloseWindowsBefore(Millis limit) {
    for (auto& [key, ks] : keys_) {
      current_key_ = key;
      while (true) {
        std::optional<Millis> earliest;
        for (const Run& r : ks.runs) {
          Millis d = Deadline(r);
          if (d < limit && (!earliest || d < *earliest)) earliest = d;
        }
        if (!earliest) break;
        size_t i = 0;
        while (i < ks.runs.size()) {
          if (Deadline(ks.runs[i]) != *earliest) {
            ++i;
            continue;
          }
          Run r = ks.runs[i];
          ks.runs.erase(ks.runs.begin() + static_cast<std::ptrdiff_t>(i));
          if (WaitsOnlyOnTrailingAbsent(r) && WhereHolds(r, *earliest)) {
            std::vector<Run> none;
            std::vector<bool> none_consumed;
            Match(key, &ks, r, "absence", *earliest, events_[r.last].order, &none,
                  &none_consumed);
            i = 0;  // the match may have consumed runs before i
          }
        }
      }
    }
  }

  bool WaitsOnlyOnTrailingAbsent(const Run& r) const {
    if (!EndsWithAbsent()) return false;
    if (r.count < steps_[r.step].min) return false;
    for (int j = r.step + 1; j < StepCount(); ++j) {
      if (!steps_[j].absent && steps_[j].min > 0) return false;
    }
    return true;
  }

  // Completion (4.2 step 2): every step has reached its minimum and the
  // pattern does not wait on a trailing absent step.
  bool WouldComplete(const Run& r) const {
    if (EndsWithAbsent()) return false;
    if (r.count < steps_[r.step].min) return false;
    for (int j = r.step + 1; j < StepCount(); ++j) {
      if (!steps_[j].absent && steps_[j].min > 0) return false;
    }
    return true;
  }

  std::optional<std::string> KeyOf(const Event& e) {
    Value v = FieldOf(e.doc, rule_.key, 0);
    switch (v.kind) {
      case Value::Kind::kString: return v.text;
      case Value::Kind::kBool: return std::string(v.boolean ? "true" : "false");
      case Value::Kind::kNumber: {
        // Its JSON text: re-parse the raw event and print the element.
        simdjson::dom::element el;
        if (parser_.parse(e.raw).get(el) != simdjson::SUCCESS) return std::nullopt;
        for (const std::string& part : rule_.key) {
          if (el[part].get(el) != simdjson::SUCCESS) return std::nullopt;
        }
        return simdjson::minify(el);
      }
      default: return std::nullopt;
    }
  }

  // ---- counters (6.2), literally: every counted event of the key kept, the
  // window's events summed afresh at each read ----

  static int64_t Bucket(Millis t, Millis res) { return t >= 0 ? t / res : -((-t + res - 1) / res); }

  void Count(const Event& e, const std::string& key) {
    if (counters_ == nullptr) return;
    for (const dsl::Counter& c : *counters_) {
      bool type_ok = false;
      for (const std::string& t : c.source.types) type_ok = type_ok || t == "any" || t == e.type;
      if (!type_ok) continue;
      at_ = e.ts;
      Run none;
      if (c.source.filter && !IsTrue(Eval(*c.source.filter, &e, none))) continue;
      counted_[c.name][key].emplace_back(e.ts, c.field.empty() ? Null() : FieldOf(e.doc, c.field, 0));
    }
  }

  // "the aggregate of the key's events that match ..., evaluated so far in
  // the key's order, whose bucket is one of the last over/resolution buckets
  // ending with the current event's bucket" (or the deadline's).
  Value CounterValue(const std::string& name, Millis at) {
    const dsl::Counter* c = nullptr;
    if (counters_ == nullptr) return Null();
    for (const auto& x : *counters_) {  // not `a ? *b : {}`: that copies, and `c` would dangle
      if (x.name == name) c = &x;
    }
    if (c == nullptr) return Null();
    int64_t now = Bucket(at, c->resolution);
    std::vector<Value> window;
    for (const auto& [ts, v] : counted_[c->name][current_key_]) {
      int64_t b = Bucket(ts, c->resolution);
      if (b <= now && b > now - c->buckets()) window.push_back(v);
    }
    return AggregateOf(c->fn, window);
  }

  // ---- one evaluated event (4.2) ----

  void Evaluate(int index) {
    events_[index].order = next_order_++;
    const Event& e = events_[index];
    std::optional<std::string> key = KeyOf(e);
    if (!key) return;  // the rule ignores events without a usable key
    current_key_ = *key;
    Count(e, *key);
    KeyState& ks = keys_[*key];

    std::vector<Run> live;       // the runs after e
    std::vector<Run> completed;  // runs that completed on e
    // 1. Advance every live run, oldest first.
    for (const Run& r : ks.runs) {
      std::vector<int> targets = Candidates(r, e);
      if (targets.empty()) {
        if (DiesOn(r, e)) continue;
        Run waiting = r;
        waiting.skipped = true;
        live.push_back(std::move(waiting));
        continue;
      }
      bool took = false;
      for (int j : targets) {
        Run next = Take(r, j, index);
        // 2. Complete, if `where` holds; otherwise go on only if the step can
        // take more.
        if (!WouldComplete(next)) {
          live.push_back(std::move(next));
          took = true;
        } else if (WhereHolds(next, e.ts)) {
          completed.push_back(std::move(next));
          took = true;
        } else if (CanIterate(next)) {
          live.push_back(std::move(next));
          took = true;
        }
      }
      if (!took) {
        // Every candidate was refused by `where`: the run keeps waiting as it
        // was, but it did not take e, so e counts as skipped: a later `=>`
        // cannot follow it ("b is the very next event after a's last event").
        Run waiting = r;
        waiting.skipped = true;
        live.push_back(std::move(waiting));
      }
    }
    // 3. Start.
    bool blocked = rule_.skip == SkipPolicy::kPastLast &&
                   (!completed.empty() || e.order <= ks.past_last_boundary);
    Run fresh;
    fresh.bound.resize(steps_.size());
    if (!blocked && Fits(0, e, fresh)) {
      Run next = Take(fresh, 0, index);
      if (!WouldComplete(next)) {
        live.push_back(std::move(next));
      } else if (WhereHolds(next, e.ts)) {
        completed.push_back(std::move(next));
      } else if (CanIterate(next)) {
        live.push_back(std::move(next));
      }
    }
    ks.runs = std::move(live);

    // Matches: the run that started first (in evaluation order) first.
    std::stable_sort(completed.begin(), completed.end(), [&](const Run& a, const Run& b) {
      return FirstOrder(a) < FirstOrder(b);
    });
    std::vector<bool> consumed(completed.size(), false);
    for (size_t c = 0; c < completed.size(); ++c) {
      if (consumed[c]) continue;
      consumed[c] = true;
      Match(*key, &ks, completed[c], "match", e.ts, e.order, &completed, &consumed);
    }

    // limit: the oldest runs are evicted.
    while (static_cast<int>(ks.runs.size()) > rule_.limit) ks.runs.erase(ks.runs.begin());
  }

  // The steps at which run r can take e (semantics 3): one more iteration of
  // its step, then, once its minimum is met, each later step up to the first
  // required one, crossing absent steps and skipping optional ones.
  std::vector<int> Candidates(const Run& r, const Event& e) {
    std::vector<int> targets;
    if (e.ts - FirstTs(r) > rule_.within) return targets;
    if (CanIterate(r) && Fits(r.step, e, r)) targets.push_back(r.step);
    if (r.count >= steps_[r.step].min) {
      bool strict = false;
      for (int j = r.step + 1; j < StepCount(); ++j) {
        if (rule_.pattern.arrows[j - 1] == Arrow::kStrict) strict = true;
        if (steps_[j].absent) continue;
        if (Fits(j, e, r) && !(strict && r.skipped)) targets.push_back(j);
        if (steps_[j].min > 0) break;
      }
    }
    return targets;
  }

  // Semantics 5: a run that cannot take e dies when e fits an absent step it
  // waits across, or when it cannot iterate and `=>` follows its step.
  bool DiesOn(const Run& r, const Event& e) {
    if (r.count >= steps_[r.step].min) {
      for (int j = r.step + 1; j < StepCount(); ++j) {
        if (steps_[j].absent) {
          if (Fits(j, e, r)) return true;
          continue;
        }
        if (steps_[j].min > 0) break;
      }
    }
    return !CanIterate(r) && r.step + 1 < StepCount() &&
           rule_.pattern.arrows[r.step] == Arrow::kStrict;
  }

  Run Take(const Run& r, int step, int index) const {
    Run next = r;
    if (step == r.step && !r.bound[step].empty()) {
      ++next.count;
    } else {
      next.step = step;
      next.count = 1;
    }
    next.bound[step].push_back(index);
    next.last = index;
    next.skipped = false;
    return next;
  }

  // e fits step j of run r: its type is accepted and the filter is true.
  bool Fits(int j, const Event& e, const Run& r) {
    const Step& step = steps_[j];
    bool type_ok = false;
    for (const std::string& t : step.types) type_ok = type_ok || t == "any" || t == e.type;
    if (!type_ok) return false;
    if (!step.filter) return true;
    at_ = e.ts;  // "In a filter, current event is the event being tested"
    return IsTrue(Eval(*step.filter, &e, r));
  }

  // In `where`, tables are read as of the match's last bound event, or for
  // an absence as of the deadline (`at`).
  bool WhereHolds(const Run& r, Millis at) {
    if (!rule_.where) return true;
    at_ = at;
    return IsTrue(Eval(*rule_.where, nullptr, r));
  }

  // ---- a match (4.5, semantics 7-9) ----

  void Match(const std::string& key, KeyState* ks, const Run& run, const char* reason,
             Millis detected_at, int last_order, std::vector<Run>* completed,
             std::vector<bool>* consumed) {
    bool suppressed = rule_.cooldown && ks->last_published &&
                      detected_at < *ks->last_published + *rule_.cooldown;
    if (!suppressed) {
      result_.alerts.push_back(Reduce(key, run, reason));
      if (details_) {
        Millis at = at_;
        at_ = detected_at;  // "emit and fields read the tables and counters as of detected_at"
        result_.alerts.back().details = Details(key, run);
        at_ = at;
      }
      ks->last_published = detected_at;
    }
    auto consumes = [&](const Run& other) {
      switch (rule_.skip) {
        case SkipPolicy::kPastLast:
          for (const auto& events : other.bound) {
            for (int i : events) {
              if (events_[i].order <= last_order) return true;
            }
          }
          return false;
        case SkipPolicy::kToNext:
          return other.bound[0][0] == run.bound[0][0];
        case SkipPolicy::kNone:
          return false;
      }
      return false;
    };
    std::vector<Run> kept;
    for (const Run& r : ks->runs) {
      if (!consumes(r)) kept.push_back(r);
    }
    ks->runs = std::move(kept);
    for (size_t c = 0; c < completed->size(); ++c) {
      if (consumes((*completed)[c])) (*consumed)[c] = true;
    }
    if (rule_.skip == SkipPolicy::kPastLast) {
      ks->past_last_boundary = std::max(ks->past_last_boundary, last_order);
    }
  }

  ReducedAlert Reduce(const std::string& key, const Run& run, const char* reason) const {
    ReducedAlert a;
    a.rule = rule_.name;
    a.key = key;
    a.reason = reason;
    for (int s = 0; s < StepCount(); ++s) {
      if (steps_[s].absent || steps_[s].name.empty() || run.bound[s].empty()) continue;
      std::vector<std::string>& ids = a.events[steps_[s].name];
      for (int i : run.bound[s]) ids.push_back(events_[i].id);
    }
    return a;
  }

  // ---- messages and fields (rules/README sections 5 and 11) ----

  // "A number prints in the shortest text that reads back to exactly the
  // same number: 1500, 66.66666666666667"; a list as "a, b, c"; null as null.
  static std::string Text(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kNull: return "null";
      case Value::Kind::kBool: return v.boolean ? "true" : "false";
      case Value::Kind::kNumber: return NumberText(v.number);
      case Value::Kind::kString: return v.text;
      case Value::Kind::kList: {
        std::string out;
        for (size_t i = 0; i < v.items.size(); ++i) out += (i ? ", " : "") + Text(v.items[i]);
        return out;
      }
      case Value::Kind::kObject: return "null";
    }
    return "null";
  }

  static std::string NumberText(double n) {
    if (!std::isfinite(n)) return "null";
    if (n == std::floor(n) && std::fabs(n) < 1e15) return fmt::format("{}", static_cast<long long>(n));
    return fmt::format("{}", n);
  }

  // "[,][.N][f|e|%]: , groups the integer part's thousands, .N decimals, f
  // fixed, e exponent, % times 100 then %; a type without .N has 6
  // decimals; never -0.00. A format applies to a number and to each number
  // of a list."
  static std::string Formatted(const Value& v, const NumberFormat& f) {
    if (v.kind == Value::Kind::kList) {
      std::string out;
      for (size_t i = 0; i < v.items.size(); ++i) out += (i ? ", " : "") + Formatted(v.items[i], f);
      return out;
    }
    if (v.kind != Value::Kind::kNumber) return Text(v);
    if (!std::isfinite(v.number)) return "null";
    int digits = f.precision < 0 ? 6 : f.precision;
    std::string s = f.type == 'f' ? fmt::format("{:.{}f}", v.number, digits)
                    : f.type == '%' ? fmt::format("{:.{}f}", v.number * 100, digits)
                    : f.type == 'e' ? fmt::format("{:.{}e}", v.number, digits)
                                    : NumberText(v.number);
    if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s = s.substr(1);
    if (f.grouping && s.find('e') == std::string::npos) {
      size_t sign = s[0] == '-' ? 1 : 0;
      size_t end = s.find('.') == std::string::npos ? s.size() : s.find('.');
      for (size_t at = end; at > sign + 3; at -= 3) s.insert(at - 3, ",");
    }
    return f.type == '%' ? s + "%" : s;
  }

  static std::string Json(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kString: {
        std::string out;
        AppendJsonString(&out, v.text);
        return out;
      }
      case Value::Kind::kList: {
        std::string out = "[";
        for (size_t i = 0; i < v.items.size(); ++i) out += (i ? "," : "") + Json(v.items[i]);
        return out + "]";
      }
      default: return Text(v);
    }
  }

  std::string Details(const std::string& key, const Run& run) {
    std::string message = rule_.emit.empty() ? rule_.name : "";
    for (const auto& part : rule_.emit) {
      if (part.key) message += key;
      else if (!part.expr) message += part.text;
      else if (part.format) message += Formatted(Eval(*part.expr, nullptr, run), *part.format);
      else message += Text(Eval(*part.expr, nullptr, run));
    }
    std::string fields;
    for (const auto& f : rule_.fields) {
      fields += (fields.empty() ? "{" : ",") + Json(Value{Value::Kind::kString, false, 0, f.name, {}, {}}) + ":" +
                Json(Eval(f.expr, nullptr, run));
    }
    if (!fields.empty()) fields += "}";
    return message + "|" + fields;
  }

 public:
  bool details_ = false;

 private:
  // ---- expressions (4.3, semantics 11) ----

  int StepNamed(const std::string& name) const {
    for (int s = 0; s < StepCount(); ++s) {
      if (!name.empty() && steps_[s].name == name) return s;
    }
    return -1;
  }

  // A path: a field of the current event, or of a bound name's events (a
  // list for a counted step).
  Value PathValue(const std::vector<std::string>& path, const Event* current, const Run& r) {
    int s = StepNamed(path[0]);
    if (s < 0) return current ? EventField(*current, path, 0) : Null();
    if (steps_[s].counted) {
      std::vector<Value> values;
      for (int i : r.bound[s]) values.push_back(EventField(events_[i], path, 1));
      return List(std::move(values));
    }
    if (r.bound[s].empty()) return Null();
    return EventField(events_[r.bound[s][0]], path, 1);
  }

  // "The time field reads as epoch milliseconds, whatever its form in the
  // record" (rules/README, section Functions); every other field as written.
  static Value EventField(const Event& e, const std::vector<std::string>& path, size_t from) {
    if (path.size() == from + 1 && path[from] == "ts") return Number(static_cast<double>(e.ts));
    return FieldOf(e.doc, path, from);
  }

  Value Call(const Expr& e, const Event* current, const Run& r) {
    const std::string& fn = e.text;
    if (fn == "if") return IsTrue(Eval(e.args[0], current, r)) ? Eval(e.args[1], current, r) : Eval(e.args[2], current, r);
    if (fn == "coalesce") {
      for (const Expr& a : e.args) {
        Value v = Eval(a, current, r);
        if (!IsNull(v)) return v;
      }
      return Null();
    }
    if (e.args.size() > 1 || ScalarFunction(fn)) {
      std::vector<Value> args;
      for (const Expr& a : e.args) args.push_back(Eval(a, current, r));
      return CallScalar(fn, args, e.args);
    }
    const Expr& arg = e.args[0];
    if (fn == "count") {
      int s = StepNamed(arg.path[0]);
      return Number(static_cast<double>(r.bound[s].size()));
    }
    if (fn == "sum" || fn == "avg" || fn == "min" || fn == "max" || fn == "distinct" ||
        fn == "first" || fn == "last") {
      Value v = Eval(arg, current, r);
      std::vector<Value> values = v.kind == Value::Kind::kList ? v.items : std::vector<Value>{v};
      std::vector<double> numbers;
      std::vector<std::string> strings;
      std::vector<Value> non_null;
      for (const Value& x : values) {
        if (IsNumber(x)) numbers.push_back(x.number);
        if (IsString(x)) strings.push_back(x.text);
        if (!IsNull(x)) non_null.push_back(x);
      }
      if (fn == "sum") {
        double total = 0;
        for (double n : numbers) total += n;
        return Number(total);
      }
      if (fn == "avg") {
        if (numbers.empty()) return Null();
        double total = 0;
        for (double n : numbers) total += n;
        return Number(total / static_cast<double>(numbers.size()));
      }
      if (fn == "min" || fn == "max") {
        bool want_min = fn == "min";
        if (!numbers.empty()) {
          double best = numbers[0];
          for (double n : numbers) best = want_min ? std::min(best, n) : std::max(best, n);
          return Number(best);
        }
        if (!strings.empty()) {
          std::string best = strings[0];
          for (const std::string& s : strings) {
            best = want_min ? std::min(best, s) : std::max(best, s);
          }
          return String(best);
        }
        return Null();
      }
      if (fn == "distinct") {
        std::vector<Value> seen;
        for (const Value& x : non_null) {
          bool found = false;
          for (const Value& y : seen) found = found || SameScalar(x, y);
          if (!found) seen.push_back(x);
        }
        return Number(static_cast<double>(seen.size()));
      }
      if (fn == "first") return non_null.empty() ? Null() : non_null.front();
      return non_null.empty() ? Null() : non_null.back();  // last
    }
    Value v = Eval(arg, current, r);
    if (fn == "abs") return IsNumber(v) ? Number(std::fabs(v.number)) : Null();
    if (fn == "lower" || fn == "upper") {
      if (!IsString(v)) return Null();
      std::string s = v.text;
      for (char& c : s) {
        if (fn == "lower" && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (fn == "upper" && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      return String(s);
    }
    if (fn == "len") {
      if (IsString(v)) return Number(static_cast<double>(v.text.size()));
      if (v.kind == Value::Kind::kList) return Number(static_cast<double>(v.items.size()));
      return Null();
    }
    return Null();
  }

  Value Binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "and") return Bool(IsTrue(a) && IsTrue(b));
    if (op == "or") return Bool(IsTrue(a) || IsTrue(b));
    // Every other comparison with null is false, `==` and `!=` included.
    if (op == "==") {
      if (IsNull(a) || IsNull(b)) return Bool(false);
      return Bool(SameScalar(a, b));
    }
    if (op == "!=") {
      if (IsNull(a) || IsNull(b)) return Bool(false);
      if (a.kind != b.kind) return Bool(false);  // a string never equals nor differs from a number
      return Bool(!SameScalar(a, b));
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int order;
      if (IsNumber(a) && IsNumber(b)) {
        order = a.number < b.number ? -1 : (a.number > b.number ? 1 : 0);
      } else if (IsString(a) && IsString(b)) {
        order = a.text < b.text ? -1 : (a.text > b.text ? 1 : 0);
      } else {
        return Bool(false);
      }
      if (op == "<") return Bool(order < 0);
      if (op == "<=") return Bool(order <= 0);
      if (op == ">") return Bool(order > 0);
      return Bool(order >= 0);
    }
    if (op == "in" || op == "not in") {
      if (IsNull(a) || b.kind != Value::Kind::kList) return Bool(false);
      bool found = false;
      for (const Value& item : b.items) found = found || (!IsNull(item) && SameScalar(a, item));
      return Bool(op == "in" ? found : !found);
    }
    // Arithmetic: null unless both sides are numbers; x / 0 is null.
    if (!IsNumber(a) || !IsNumber(b)) return Null();
    if (op == "+") return Number(a.number + b.number);
    if (op == "-") return Number(a.number - b.number);
    if (op == "*") return Number(a.number * b.number);
    if (op == "/") return b.number == 0 ? Null() : Number(a.number / b.number);
    if (op == "%") return b.number == 0 ? Null() : Number(std::fmod(a.number, b.number));
    return Null();
  }

  // `current` is the event being tested by a filter (null in `where`).
  Value Eval(const Expr& e, const Event* current, const Run& r) {
    switch (e.kind) {
      case Expr::Kind::kNumber: return Number(e.number);
      case Expr::Kind::kString: return String(e.text);
      case Expr::Kind::kBool: return Bool(e.boolean);
      case Expr::Kind::kNull: return Null();
      case Expr::Kind::kPath: return PathValue(e.path, current, r);
      case Expr::Kind::kList: {
        std::vector<Value> items;
        for (const Expr& item : e.args) items.push_back(Eval(item, current, r));
        return List(std::move(items));
      }
      case Expr::Kind::kCall: return Call(e, current, r);
      case Expr::Kind::kLookup: {
        std::optional<Value> rec = LookupRecord(tables_, e.text, Eval(e.args[0], current, r), at_);
        return rec ? FieldOf(*rec, e.path, 0) : Null();
      }
      case Expr::Kind::kTable: return Null();  // only under `in`
      case Expr::Kind::kCounter: return CounterValue(e.text, at_);
      case Expr::Kind::kUnary: {
        Value v = Eval(e.args[0], current, r);
        if (e.text == "not") return Bool(!IsTrue(v));
        return IsNumber(v) ? Number(-v.number) : Null();  // "-"
      }
      case Expr::Kind::kBinary: {
        // `x == null` and `x != null`, with the word null written on either
        // side, are the two comparisons that test for null (section 4.3).
        bool null_test = (e.text == "==" || e.text == "!=") &&
                         (e.args[0].kind == Expr::Kind::kNull || e.args[1].kind == Expr::Kind::kNull);
        if (null_test) {
          const Expr& other = e.args[0].kind == Expr::Kind::kNull ? e.args[1] : e.args[0];
          bool is_null = IsNull(Eval(other, current, r));
          return Bool(e.text == "==" ? is_null : !is_null);
        }
        if ((e.text == "in" || e.text == "not in") && e.args[1].kind == Expr::Kind::kTable) {
          // "EXPR in T is true when the table holds a live record for that
          // key at that time"; "null in T / null not in T are both false".
          Value key = Eval(e.args[0], current, r);
          if (!KeyTextOf(key)) return Bool(false);
          bool live = LookupRecord(tables_, e.args[1].text, key, at_).has_value();
          return Bool(e.text == "in" ? live : !live);
        }
        return Binary(e.text, Eval(e.args[0], current, r), Eval(e.args[1], current, r));
      }
    }
    return Null();
  }

  const dsl::Rule& rule_;
  const std::vector<Step>& steps_;
  Millis out_of_order_;
  int next_order_ = 0;  // the evaluation position of the next released event
  simdjson::dom::parser parser_;
  std::vector<Event> events_;  // every evaluated or buffered event, by index
  std::vector<int> buffer_;    // indices of buffered events
  std::optional<Millis> max_ts_;
  std::map<std::string, KeyState> keys_;
  ReferenceResult result_;
  const std::vector<ReferenceTable>& tables_;
  Millis at_ = 0;  // the time lookups read the tables as of
 public:
  const std::vector<dsl::Counter>* counters_ = nullptr;  // the rule set's (same key as the rule)
 private:
  std::map<std::string, std::map<std::string, std::vector<std::pair<Millis, Value>>>> counted_;  // counter, key
  std::string current_key_;  // the key of the event evaluated or the window closed
};

}  // namespace

ReferenceResult RunReference(const dsl::Rule& rule, const std::vector<std::string>& events,
                             Millis out_of_order, const std::vector<ReferenceTable>& tables,
                             const std::vector<dsl::Counter>* counters, bool details) {
  Matcher m(rule, out_of_order, tables);
  m.counters_ = counters;
  m.details_ = details;
  for (size_t i = 0; i < events.size(); ++i) m.Arrive(events[i], static_cast<int>(i));
  m.Finish();
  return m.TakeResult();
}

// ---- aggregates (6.3), literally -----------------------------------------------

namespace {

std::string NumberText(const Value& v) {
  return v.kind == Value::Kind::kNumber ? fmt::format("{}", v.number) : "null";
}

// One window of one group: its events' values, in evaluation order.
struct WindowEvents {
  std::vector<const Event*> events;
};

Value Compute(const dsl::Computed& c, const WindowEvents& w) {
  std::vector<Value> values;
  for (const Event* e : w.events) values.push_back(c.field.empty() ? Null() : FieldOf(e->doc, c.field, 0));
  return AggregateOf(c.fn, values);
}

// previous_avg(x, n) / previous_max(x, n) of the window starting at `start`:
// "the same group's n windows before this one: those starting i x step
// earlier, i = 1..n. A window with no event of the group counts as 0 for a
// field computed by count, sum or distinct, and is skipped for avg, min, max;
// with nothing left the result is null".
Value Previous(const dsl::Aggregate& a, const std::map<Millis, std::vector<Value>>& results, Millis start,
               const std::string& fn, const std::string& field, int n) {
  size_t f = 0;
  while (f < a.compute.size() && a.compute[f].name != field) ++f;
  if (f == a.compute.size()) return Null();
  AggFn kind = a.compute[f].fn;
  std::vector<double> seen;
  for (int i = 1; i <= n; ++i) {
    auto it = results.find(start - i * a.every);
    if (it == results.end()) {
      if (kind == AggFn::kCount || kind == AggFn::kSum || kind == AggFn::kDistinct) seen.push_back(0);
    } else if (IsNumber(it->second[f])) {
      seen.push_back(it->second[f].number);
    }
  }
  if (seen.empty()) return Null();
  if (fn == "previous_max") return Number(*std::max_element(seen.begin(), seen.end()));
  double total = 0;
  for (double v : seen) total += v;
  return Number(total / static_cast<double>(seen.size()));
}

// The expression with each previous_* call replaced by its value.
Expr WithPrevious(const Expr& e, const dsl::Aggregate& a, const std::map<Millis, std::vector<Value>>& results,
                  Millis start) {
  if (e.kind == Expr::Kind::kCall && (e.text == "previous_avg" || e.text == "previous_max")) {
    Value v = Previous(a, results, start, e.text, e.args[0].path[0], static_cast<int>(e.args[1].number));
    Expr out;
    out.kind = IsNumber(v) ? Expr::Kind::kNumber : Expr::Kind::kNull;
    out.number = v.number;
    return out;
  }
  Expr out = e;
  for (auto& arg : out.args) arg = WithPrevious(arg, a, results, start);
  return out;
}

}  // namespace

AggregateResult RunReferenceAggregate(const dsl::Aggregate& a, const std::vector<std::string>& events,
                                      Millis out_of_order) {
  // Only its evaluator is used: expressions over one event's own fields.
  dsl::Rule dummy;
  dummy.pattern.steps.resize(1);
  dummy.pattern.steps[0].types = {"any"};
  Matcher eval(dummy, out_of_order, {});
  AggregateResult out;
  simdjson::dom::parser parser;
  // 4.1: an event is late when ts < W on arrival, W = (largest ts seen) - D.
  std::vector<Event> kept;
  std::optional<Millis> max_ts;
  for (size_t i = 0; i < events.size(); ++i) {
    std::optional<Event> e = ParseEvent(parser, events[i], static_cast<int>(i));
    if (!e) continue;
    if (max_ts && e->ts < *max_ts - out_of_order) {
      out.late.push_back(e->id);
      continue;
    }
    max_ts = max_ts ? std::max(*max_ts, e->ts) : e->ts;
    kept.push_back(std::move(*e));
  }
  std::stable_sort(kept.begin(), kept.end(), [](const Event& x, const Event& y) { return x.ts < y.ts; });
  // "An event counts in every window that holds its ts": [k*every, k*every + size).
  std::map<std::string, std::map<Millis, WindowEvents>> windows;  // group -> start -> events
  for (const Event& e : kept) {
    bool type_ok = false;
    for (const auto& t : a.source.types) type_ok = type_ok || t == "any" || t == e.type;
    if (!type_ok) continue;
    if (a.source.filter && !IsTrue(eval.EvalOn(*a.source.filter, e))) continue;
    std::optional<std::string> group = KeyTextOf(FieldOf(e.doc, a.group, 0));
    if (!group) continue;
    for (Millis start = e.ts - ((e.ts % a.every) + a.every) % a.every; start + a.size > e.ts; start -= a.every) {
      windows[*group][start].events.push_back(&e);
    }
  }
  for (const auto& [group, by_start] : windows) {
    std::map<Millis, std::vector<Value>> results;
    for (const auto& [start, w] : by_start) {
      std::vector<Value> values;
      for (const auto& c : a.compute) values.push_back(Compute(c, w));
      results[start] = values;
      std::string record = fmt::format("{}|{}|{}|{}", a.name, group, start, start + a.size);
      for (size_t i = 0; i < values.size(); ++i) record += fmt::format("|{}={}", a.compute[i].name, NumberText(values[i]));
      out.records.push_back(record);
      if (!a.alert_when) continue;
      Event synthetic;
      synthetic.doc.kind = Value::Kind::kObject;
      for (size_t i = 0; i < values.size(); ++i) {
        synthetic.doc.field_names.push_back(a.compute[i].name);
        synthetic.doc.items.push_back(values[i]);
      }
      synthetic.doc.field_names.push_back("group");
      synthetic.doc.items.push_back(String(group));
      if (IsTrue(eval.EvalOn(WithPrevious(*a.alert_when, a, results, start), synthetic))) {
        out.alerts.push_back(ReducedAlert{a.name, group, "aggregate", {}, ""});
      }
    }
  }
  std::sort(out.records.begin(), out.records.end());
  std::sort(out.alerts.begin(), out.alerts.end());
  std::sort(out.late.begin(), out.late.end());
  return out;
}

std::string Describe(const ReducedAlert& alert) {
  std::string out = "rule " + alert.rule + " key=" + alert.key + " " + alert.reason + " {";
  bool first_name = true;
  for (const auto& [name, ids] : alert.events) {
    if (!first_name) out += ", ";
    first_name = false;
    out += name + ": [";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + ids[i];
    out += "]";
  }
  return out + "}" + (alert.details.empty() ? "" : " " + alert.details);
}

}  // namespace cepheus::reference

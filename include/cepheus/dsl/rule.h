// The checked rule model: what the parser and checker hand to the compiler.
//
// This header is Spirit-free. The X3 parse tree (src/dsl/ast.h) is lowered into
// these plain structs by the checker, which also resolves every name, so the
// compiler can trust what it is given. Every node carries its Span in the
// source file for diagnostics.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cepheus/common/number_format.h"
#include "cepheus/common/source.h"
#include "cepheus/common/time.h"

namespace cepheus::dsl {

// One expression node. A single struct with a kind keeps the checker and the
// compiler simple; `args` holds operands, list items or call arguments.
struct Expr {
  // kLookup: `text[args[0]].path`, a field of table `text`'s record.
  // kTable: the table `text`, only as the right side of `in` / `not in`.
  // kCounter: the counter `text` (section 6.2), read as of the evaluation's time.
  enum class Kind { kNumber, kString, kBool, kNull, kPath, kList, kCall, kUnary, kBinary, kLookup, kTable, kCounter };
  Kind kind = Kind::kNull;
  Span span;
  double number = 0;
  bool boolean = false;
  std::string text;                // string value, operator, function, table name; a named list's name
  std::vector<std::string> path;   // kPath: segments; kLookup: the record's field
  std::vector<Expr> args;
};

enum class Arrow { kRelaxed, kStrict };  // "->" and "=>"

inline constexpr int kUnbounded = -1;

struct Step {
  Span span;
  bool absent = false;
  std::string name;                // "" when unnamed
  Span name_span;
  std::vector<std::string> types;  // {"any"} accepts every type
  Span types_span;
  std::optional<Expr> filter;
  bool counted = false;            // a quantifier was written: the name is a list
  int min = 1;
  int max = 1;                     // kUnbounded for "no upper bound"
  Span quantifier_span;
};

struct Pattern {
  Span span;
  std::vector<Step> steps;
  std::vector<Arrow> arrows;  // arrows[i] joins steps[i] and steps[i+1]
};

// "{expr}" pieces of an emit template; `key` means the key value.
struct TemplatePart {
  std::string text;           // literal text (when !expr)
  std::optional<Expr> expr;
  bool key = false;
  std::optional<NumberFormat> format;  // `{expr:.2f}`: how a number prints
};

enum class SkipPolicy { kPastLast, kToNext, kNone };
enum class Severity { kLow, kMedium, kHigh, kCritical };

const char* SeverityName(Severity s);
const char* SkipPolicyName(SkipPolicy s);

inline constexpr int kDefaultLimit = 1000;
inline constexpr size_t kMaxAlertFields = 64;  // entries of a rule's `fields`
inline constexpr int kMaxLimit = 1000000;

struct Rule {
  const SourceFile* file = nullptr;  // owned by the RuleSet
  Span span;                         // the whole rule, "rule" to its last clause
  std::string name;
  Span name_span;
  std::string description;
  Severity severity = Severity::kMedium;
  std::vector<std::string> key;      // key path segments
  Span key_span;
  Pattern pattern;
  std::optional<Expr> where;
  Millis within = 0;
  SkipPolicy skip = SkipPolicy::kPastLast;
  std::optional<Millis> cooldown;
  int limit = kDefaultLimit;
  std::vector<TemplatePart> emit;    // empty: the message is the rule name
  std::vector<std::string> tags;
  // `fields { NAME: EXPR, ... }`: typed values added to the alert as "fields".
  struct Field {
    std::string name;
    Span span;
    Expr expr;
  };
  std::vector<Field> fields;
  // A stable digest of the rule's own text (comments and spacing included);
  // persisted state is tied to it.
  uint64_t fingerprint = 0;
};

// `table NAME key PATH [time PATH] [history DURATION]` (section 6.1): reference
// data that rules read as of each event's time.
inline constexpr Millis kDefaultHistory = 7LL * 24 * 3600 * 1000;

struct Table {
  const SourceFile* file = nullptr;
  Span span;
  std::string name;
  Span name_span;
  std::vector<std::string> key;   // the record field that is its key
  std::vector<std::string> time;  // the record field from when it holds; empty: from the beginning of time
  Millis history = kDefaultHistory;
};

// `list NAME = [...]`: a named literal list, inlined where it is used.
struct NamedList {
  const SourceFile* file = nullptr;
  Span name_span;
  std::string name;
  Expr items;  // kList of literals
};

// The functions of counters and aggregates (sections 6.2 and 6.3).
enum class AggFn { kCount, kSum, kAvg, kMin, kMax, kDistinct };
const char* AggFnName(AggFn f);

// What a counter counts or an aggregate reads: event types and a filter over
// the event's own fields.
struct EventSource {
  std::vector<std::string> types;  // {"any"} accepts every type
  std::optional<Expr> filter;
};

// `counter NAME key PATH FN TYPE[FILTER][.FIELD] over D [resolution R]`.
inline constexpr int64_t kMaxCounterBuckets = 10000;  // over / resolution
inline constexpr size_t kMaxDistinctValues = 10000;   // per key and window, then capped
struct Counter {
  const SourceFile* file = nullptr;
  Span span;
  std::string name;
  Span name_span;
  std::vector<std::string> key;
  Span key_span;
  AggFn fn = AggFn::kCount;
  EventSource source;
  std::vector<std::string> field;  // empty for count
  Millis over = 0;
  Millis resolution = 0;
  std::string description;
  uint64_t fingerprint = 0;
  int64_t buckets() const { return resolution > 0 ? over / resolution : 0; }
};

// `name = fn(field)` of an aggregate's `compute`; count() has no field.
struct Computed {
  std::string name;
  Span span;
  AggFn fn = AggFn::kCount;
  std::vector<std::string> field;
};

// `aggregate NAME from SOURCE group by PATH window ... compute ... [alert when EXPR]`.
inline constexpr int64_t kMaxWindowsPerEvent = 1000;  // size / every of a hopping window
inline constexpr int kMaxPrevious = 1000;              // n of previous_avg / previous_max
inline constexpr size_t kMaxComputed = 64;             // fields of one aggregate's `compute`
struct Aggregate {
  const SourceFile* file = nullptr;
  Span span;
  std::string name;
  Span name_span;
  EventSource source;
  std::vector<std::string> group;
  Span group_span;
  bool hopping = false;
  Millis size = 0;
  Millis every = 0;  // = size when tumbling
  std::vector<Computed> compute;
  std::optional<Expr> alert_when;  // paths: computed names and `group`; previous_avg / previous_max calls
  Severity severity = Severity::kMedium;
  std::vector<TemplatePart> emit;  // empty: the aggregate's name
  std::string description;
  std::vector<std::string> tags;
  uint64_t fingerprint = 0;
  int history = 0;  // the largest n of its previous_* calls: closed windows kept per group
};

// `event NAME { FIELD: TYPE, ... }`: the fields of an event type. When a
// type is declared, a rule that reads a field it does not declare is refused,
// and a comparison of mismatched declared types is an error.
enum class FieldType { kString, kNumber, kBool, kTime, kList, kAny, kObject };
const char* FieldTypeName(FieldType t);
struct FieldSchema {
  std::string name;
  Span span;
  FieldType type = FieldType::kAny;
  std::vector<FieldSchema> fields;  // kObject
};
struct EventSchema {
  const SourceFile* file = nullptr;
  Span span;
  std::string name;
  Span name_span;
  std::vector<FieldSchema> fields;
};
inline constexpr size_t kMaxSchemaFields = 1000;  // fields of one event declaration, nested ones included

// Parsed and checked rules with the source files they came from.
struct RuleSet {
  std::vector<std::shared_ptr<const SourceFile>> files;
  std::vector<Rule> rules;
  std::vector<Table> tables;
  std::vector<NamedList> lists;
  std::vector<Counter> counters;
  std::vector<Aggregate> aggregates;
  std::vector<EventSchema> events;
  const EventSchema* FindEvent(std::string_view name) const {
    for (const auto& e : events) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }
  const Counter* FindCounter(std::string_view name) const {
    for (const auto& c : counters) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
  // The table of that name, or null.
  const Table* FindTable(std::string_view name) const {
    for (const auto& t : tables) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
};

}  // namespace cepheus::dsl

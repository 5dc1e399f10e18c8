// Compiled rules: the automaton program the matcher runs.
//
// A Program is the checked rule with every name resolved to a step index and
// every field path to a slot of the rule set's FieldTable, so the matcher
// never looks at a string. Expressions are flattened into a vector of nodes
// (children by index). `cepheus explain` prints a Program (DumpProgram) and
// draws it (DumpProgramDot).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/dsl/functions.h"
#include "cepheus/dsl/rule.h"
#include "cepheus/nfa/value.h"

namespace cepheus::nfa {

// Every field path any rule reads, by slot. Shared by all rules of a set so an
// event is decoded once.
class FieldTable {
 public:
  int Intern(const std::vector<std::string>& path);
  const std::vector<std::vector<std::string>>& paths() const { return paths_; }
  size_t size() const { return paths_.size(); }

 private:
  std::vector<std::vector<std::string>> paths_;
  std::map<std::vector<std::string>, int> index_;
};

enum class Op : uint8_t {
  kConst,       // constant
  kList,        // list literal of `items`
  kField,       // current event's field `slot`
  kBoundField,  // field `slot` of the one event bound at `step`
  kBoundList,   // values of field `slot` of the events bound at counted `step` (agg `agg`)
  kCount,       // number of events bound at `step`
  kSum, kAvg, kMin, kMax, kDistinct, kFirst, kLast,  // aggregate `agg`
  kAbs, kLower, kUpper, kLen,
  kNot, kNeg, kAnd, kOr,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn,
  kIsNull, kIsNotNull,  // `a == null` / `a != null`: the only comparisons true with null
  kAdd, kSub, kMul, kDiv,
  kLookup,     // field `slot` of table `table`'s record for key `a`, as of the evaluation's time
  kInTable,    // table `table` holds a live record for key `a`
  kNotInTable,
  kCounter,    // counter `counter` of the key, as of the evaluation's time (section 6.2)
  kMod,        // a % b
  kScalar,     // scalar function `fn` (dsl::ScalarFn) of `items`, with its vetted literal in `data`
};

// What a scalar function compiled once: the RE2 of matches(), the time zone
// of hour() and weekday() (defined in src/nfa/functions.h).
struct FunctionData;

struct Node {
  Op op = Op::kConst;
  int32_t a = -1, b = -1;  // children
  Span span;               // where the expression is written (`cepheus trace` quotes it)
  int32_t step = -1;
  int32_t slot = -1;
  int32_t agg = -1;
  int32_t table = -1;    // CompiledRuleSet::tables index
  int32_t counter = -1;  // CompiledRuleSet::counters index
  dsl::ScalarFn fn = dsl::ScalarFn::kRound;  // kScalar
  Value constant;
  std::vector<int32_t> items;
  std::shared_ptr<const FunctionData> data;  // kScalar: matches(), hour(), weekday()
};

struct CompiledExpr {
  std::vector<Node> nodes;
  int32_t root = -1;
  std::vector<std::vector<Value>> const_lists;  // storage for list literals
  bool empty() const { return root < 0; }
};

// An aggregate kept incrementally per run: field `slot` of the events bound at
// `step`. `values` is kept only when `in`, distinct() or a message needs it.
struct AggSpec {
  int32_t step;
  int32_t slot;
  bool keep_values;
};

struct StepProgram {
  bool absent = false;
  std::string name;
  bool any_type = false;
  std::vector<std::string> types;
  std::vector<int32_t> type_ids;  // TypeTable ids of `types`
  CompiledExpr filter;  // empty: always true
  bool counted = false;
  int min = 1;
  int max = 1;  // dsl::kUnbounded for no upper bound
  dsl::Arrow arrow_in = dsl::Arrow::kRelaxed;  // arrow from the previous step
};

// How the runs of a one-step counted pattern are kept when they can share one
// buffer of the key's events (nfa::SuffixRuns). Under `skip past_last`, with
// a filter that does not depend on the run, every run takes every event that
// fits the step, so the run started by the i-th buffered event holds exactly
// events[i..]: the oldest run holds a superset of every other's. When `where`
// is monotone (true for a set stays true for any superset), the oldest run is
// the first to complete, so it is the only one whose state must be computed,
// and that from sliding aggregates, O(1) per event. `x not in o.x` filters
// (kDistinct) work the same way: the run started by events[i] holds the first
// event of each distinct x in events[i..], and the oldest has the most.
// kSequence is a pattern of two or more plain steps (no quantifier, no absent
// step, only `->`, no `where`, filters that read no bound name): every run at
// one step takes the same events, so an event moves whole blocks of runs from
// one step to the next, older blocks are further on, and the match is always
// the oldest run.
struct SuffixPlan {
  enum class Kind : uint8_t {
    kNone,      // runs kept one by one (Matcher's general path)
    kAll,       // each run takes every event that fits the step
    kDistinct,  // each run takes the events whose `distinct_slot` value it has not bound
    kSequence,  // `a -> b -> c`: plain steps whose filters read no name; runs further on are older
  };
  Kind kind = Kind::kNone;
  int32_t distinct_slot = -1;               // kDistinct: the field of `x not in o.x`
  std::vector<int32_t> filter_conjuncts;    // kDistinct: the other conjuncts (roots in steps[0].filter)
  std::vector<int32_t> sum_aggs;            // kAll: aggregates whose sum `where` reads (values must be >= 0)
  std::vector<int32_t> extreme_aggs;        // kAll: aggregates whose min or max `where` reads
};

struct EmitPart {
  std::string text;
  CompiledExpr expr;  // empty for text
  bool key = false;
  std::optional<NumberFormat> format;  // how a number the expression gives prints
};

struct TableProgram;
struct CounterProgram;

struct Program {
  std::string name;
  const dsl::Rule* rule = nullptr;  // owned by the RuleSet the program was compiled from
  // The rule set's tables (CompiledRuleSet::tables), for names in dumps.
  const std::vector<TableProgram>* tables = nullptr;
  // The rule set's counters (CompiledRuleSet::counters), for names in dumps.
  const std::vector<CounterProgram>* counters = nullptr;
  int key_slot = -1;
  std::vector<StepProgram> steps;
  CompiledExpr where;
  Millis within = 0;
  dsl::SkipPolicy skip = dsl::SkipPolicy::kPastLast;
  Millis cooldown = 0;  // 0: none
  int limit = dsl::kDefaultLimit;
  std::vector<EmitPart> emit;
  std::vector<std::pair<std::string, CompiledExpr>> fields;  // `fields`: name, value
  std::vector<AggSpec> aggs;
  // Steps after the last non-absent step are all absent: the pattern can only
  // complete when its window closes (reason "absence").
  bool trailing_absent = false;
  // Some arrow is "=>" or some step accepts any type: every event of the key
  // matters, not only those of the types below.
  bool needs_all_types = false;
  // k > 0 when the pattern starts `any{k} =>` (step 0: any type, no filter,
  // exactly k; step 1: required, not absent, reached by `=>`), k <= kMaxPrefix:
  // the runs still in that prefix are kept implicitly (see nfa::PrefixRuns).
  int prefix = 0;
  SuffixPlan suffix;            // kNone unless runs share one buffer (see SuffixPlan)
  std::vector<bool> relevant;  // by TypeTable id (when !needs_all_types)
  uint64_t fingerprint = 0;
  std::vector<std::unique_ptr<std::string>> strings;  // storage for string constants
};

// The longest `any{k} =>` prefix whose runs are kept implicitly.
inline constexpr int kMaxPrefix = 4;

// Limits on a compiled rule (re2's max_mem, in spirit).
inline constexpr size_t kMaxNodesPerRule = 4096;

// Event types named by any rule, by id, so a step tests an int, not a string.
class TypeTable {
 public:
  int32_t Intern(const std::string& type);
  // -1 when no rule names the type.
  int32_t Find(std::string_view type) const;
  size_t size() const { return names_.size(); }
  const std::string& name(int32_t id) const { return names_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> names_;
  std::map<std::string, int32_t, std::less<>> index_;
};

// A declared table (section 6.1) as the rules read it: its record fields that
// some rule reads, by slot (a record is decoded into these, as an event into
// the rule set's FieldTable).
struct TableProgram {
  std::string name;
  std::vector<std::string> key;   // the record field that is its key
  std::vector<std::string> time;  // empty: records hold from the beginning of time
  Millis history = 0;
  FieldTable fields;
  bool read = false;  // some rule reads it
};

// Reference data as of a time: what a lookup reads. Implemented by the
// engine's tables (engine/tables.h); rules that read no table never call it.
class TableReader {
 public:
  virtual ~TableReader() = default;
  // The record of `key` in table `table` (CompiledRuleSet::tables index) that
  // holds at `at`: the version with the greatest time not after `at`; null
  // when there is none or it is a deletion. The record's fields are by the
  // table's FieldTable slots, and stay valid until the table next changes.
  virtual const Event* Find(int32_t table, std::string_view key, Millis at) const = 0;
};

// A counter's values as of a time, for the key whose rules are evaluated:
// what a counter read returns. Implemented by the engine (counters.h).
class CounterReader {
 public:
  virtual ~CounterReader() = default;
  // Counter `counter` (CompiledRuleSet::counters index) over the buckets
  // ending with `at`'s: a number, or null (avg, min, max over no event).
  virtual Value Read(int32_t counter, Millis at) const = 0;
};

// Which events a counter or an aggregate reads: types and a filter over the
// event's own fields (rule set slots).
struct SourceProgram {
  bool any_type = false;
  std::vector<int32_t> type_ids;
  CompiledExpr filter;  // empty: every event of the types
};

// A declared counter (section 6.2).
struct CounterProgram {
  std::string name;
  const dsl::Counter* counter = nullptr;
  int key_slot = -1;
  dsl::AggFn fn = dsl::AggFn::kCount;
  SourceProgram source;
  int field_slot = -1;  // -1 for count
  Millis resolution = 0;
  int64_t buckets = 0;  // over / resolution
  std::unique_ptr<Program> scratch;  // storage for the filter's strings
};

// A declared aggregate (section 6.3). Its `alert when` and `emit` are
// compiled as filters over a synthetic event whose fields (`values`) are the
// computed fields (slots 0..n-1), `group` (slot n) and each previous_* call.
struct AggregateProgram {
  std::string name;
  const dsl::Aggregate* aggregate = nullptr;
  int group_slot = -1;
  SourceProgram source;
  struct Field {
    std::string name;
    dsl::AggFn fn;
    int slot;  // rule set slot of the event field it reads; -1 for count
  };
  std::vector<Field> compute;
  Millis size = 0, every = 0;
  struct Previous {
    bool max;         // previous_max, else previous_avg
    int32_t field;    // compute index
    int n;
    int slot;         // in `values`
  };
  std::vector<Previous> previous;
  FieldTable values;
  int group_value_slot = -1;
  CompiledExpr alert_when;  // empty: no alert
  std::vector<EmitPart> emit;
  std::unique_ptr<Program> scratch;  // storage for the expressions' strings
};

struct CompiledRuleSet {
  std::shared_ptr<const dsl::RuleSet> source;
  FieldTable fields;
  TypeTable types;
  std::vector<std::unique_ptr<Program>> programs;
  std::vector<TableProgram> tables;  // every declared table, in declaration order
  std::vector<CounterProgram> counters;
  std::vector<AggregateProgram> aggregates;
  // The index of the table of that name, or -1.
  int32_t FindTable(std::string_view name) const {
    for (size_t i = 0; i < tables.size(); ++i) {
      if (tables[i].name == name) return static_cast<int32_t>(i);
    }
    return -1;
  }
};

// Compiles every rule of a checked set. Fails only on a limit (the checker has
// already refused everything else).
struct CompileOptions {
  // Keep the runs of a leading `any{k} =>` prefix implicitly (Program::prefix).
  // Off only in tests that compare both ways.
  bool implicit_prefix = true;
  // Keep the runs of a one-step pattern in one shared buffer when they can
  // (Program::suffix). Off only in tests that compare both ways.
  bool shared_suffix = true;
};
Result<std::shared_ptr<const CompiledRuleSet>> Compile(std::shared_ptr<const dsl::RuleSet> set,
                                                       CompileOptions options = {});

std::string DumpProgram(const Program& p, const FieldTable& fields);
// A counter's or an aggregate's declaration as compiled, with its state bound
// (`cepheus explain`).
std::string DumpCounter(const CounterProgram& c, const FieldTable& fields);
std::string DumpAggregate(const AggregateProgram& a, const FieldTable& fields);
std::string DumpProgramDot(const Program& p, const FieldTable& fields);

}  // namespace cepheus::nfa

// Lowering and semantic checks: X3 parse tree -> checked dsl::Rule.
//
// One pass per rule. Clauses are collected first (each at most once, the
// required ones present), then the pattern is checked step by step with a
// scope of the names bound so far, then `where` and `emit` with every name in
// scope. Expressions are given a static type (number, string, bool, null,
// list, or any for event fields whose type is only known at run time) so the
// checker can refuse what can never work ("x" + 1) and warn about what is
// always false (a string compared with a number).
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "cepheus/common/suggest.h"
#include "cepheus/dsl/functions.h"
#include "cepheus/dsl/parser.h"
#include "dsl/ast.h"
#include "dsl/checker.h"
#include "dsl/clauses.h"
#include "dsl/schema.h"

namespace cepheus::dsl {
namespace {

enum class Type { kAny, kNumber, kString, kBool, kNull, kList, kNames };

const char* TypeName(Type t) {
  switch (t) {
    case Type::kNumber: return "a number";
    case Type::kString: return "a string";
    case Type::kBool: return "true/false";
    case Type::kNull: return "null";
    case Type::kList: return "a list";
    case Type::kNames: return "a name of events";
    case Type::kAny: break;
  }
  return "a value";
}

struct Binding {
  int step;
  bool counted;
  bool absent;
};

// kSource: the filter of a counter or an aggregate (the event's own fields);
// kAlertWhen / kAggregateEmit: an aggregate's `alert when` and `emit` (its
// computed fields, `group`, and in `alert when` previous_avg / previous_max).
enum class Where { kFilter, kWhere, kEmit, kSource, kAlertWhen, kAggregateEmit };

struct FunctionInfo {
  const char* name;
  bool aggregate;
  Type result;
};

const FunctionInfo kFunctions[] = {
    {"count", true, Type::kNumber}, {"sum", true, Type::kNumber},   {"avg", true, Type::kNumber},
    {"min", true, Type::kAny},      {"max", true, Type::kAny},      {"distinct", true, Type::kNumber},
    {"first", true, Type::kAny},    {"last", true, Type::kAny},     {"abs", false, Type::kNumber},
    {"lower", false, Type::kString}, {"upper", false, Type::kString}, {"len", false, Type::kNumber},
};

// The function of a counter's clause or an aggregate's `compute`, by name.
std::optional<AggFn> AggFnOf(std::string_view name) {
  for (AggFn f : {AggFn::kCount, AggFn::kSum, AggFn::kAvg, AggFn::kMin, AggFn::kMax, AggFn::kDistinct}) {
    if (name == AggFnName(f)) return f;
  }
  return std::nullopt;
}

class RuleChecker {
 public:
  RuleChecker(const SourceFile& file, const RuleSet& decls, DiagnosticSink* diags)
      : file_(file), decls_(decls), diags_(diags) {}

  std::optional<Rule> Check(const ast::Rule& in);
  std::optional<Counter> CheckCounter(const ast::Counter& in);
  std::optional<Aggregate> CheckAggregate(const ast::Aggregate& in);

 private:
  using Clauses = std::map<std::string, const ast::Clause*>;  // by keyword
  static const ast::Word* WordOf(const Clauses& seen, const char* keyword);
  std::optional<Millis> CheckDuration(const ast::Word* w, const char* what);
  void CheckSettings(const Clauses& seen, Rule* rule);
  void CheckPatternWhereEmit(const Clauses& seen, Rule* rule);
  void Error(Span s, std::string msg) {
    diags_->Error(&file_, s, std::move(msg));
    ok_ = false;
  }
  void Warning(Span s, std::string msg) { diags_->Warning(&file_, s, std::move(msg)); }
  static Span SpanOf(const ast::Tagged& t) { return {t.begin, t.end}; }

  // Lowering. LowerExpr lowers one whole expression within kMaxExprNodes:
  // past it, the error points at the node that went over, lowering stops
  // (so no deep tree is built, walked or destroyed) and a `true` stands in.
  Expr LowerExpr(const ast::Chain& c);
  bool CountNode(const ast::Tagged& node);  // false once over the limit
  void CheckString(const ast::Tagged& node, const std::string& value, const char* what);
  Expr Lower(const ast::Chain& c, int depth);
  Expr Lower(const ast::Operand& o, int depth);
  bool LowerPattern(const ast::Pattern& p, Pattern* out);
  // A one-part path that names a declared table (kTable) or list (its items).
  void ResolveDeclared(Expr* e) const;
  void LowerStep(const ast::Step& s, Step* out);

  // Typing; `step` is the step whose filter is checked (-1 otherwise).
  Type TypeOf(const Expr& e, Where where, int step);
  Type TypeOfPath(const Expr& e, Where where, int step, bool allow_names);
  Type TypeOfCall(const Expr& e, Where where, int step);
  Type TypeOfScalarCall(const Expr& e, const ScalarFnInfo& fn, Where where, int step);
  Type TypeOfBinary(const Expr& e, Where where, int step);

  // Tables: a lookup's table, and `in TABLE`.
  Type TypeOfLookup(const Expr& e, Where where, int step);
  // The history check: a table read in `where` or `emit` is read as of the
  // match's last bound event, up to `within` back.
  void CheckHistory(const Rule& rule);

  // Counters and aggregates (sections 6.2 and 6.3).
  Type TypeOfCounter(const Expr& e, Where where);
  Type TypeOfAggregatePath(const Expr& e, Where where);
  Type TypeOfPrevious(const Expr& e, Where where);
  void LowerSource(const ast::Source& in, EventSource* out);
  void CheckCounterSettings(const std::map<std::string, const ast::Clause*>& seen, Counter* c);
  void CheckWindow(const ast::Window& w, Aggregate* a);
  void CheckCompute(const ast::ComputeList& list, Aggregate* a);
  void LowerTemplate(const ast::Template& tmpl, Where where, std::vector<TemplatePart>* out);
  void CheckFields(const ast::FieldList& list, Rule* rule);
  std::optional<Severity> CheckSeverity(const ast::Word& w);

  const SourceFile& file_;
  const RuleSet& decls_;  // tables and lists of the whole set
  DiagnosticSink* diags_;
  bool ok_ = true;
  std::set<std::string> pattern_names_;  // every name the pattern binds
  // Tables read in `where` or `emit`, with the first place each is read.
  std::map<std::string, Span> tables_in_where_;
  int expr_nodes_ = 0;  // in the expression being lowered
  std::map<std::string, Binding> names_;
  std::string rule_name_;
  std::vector<std::string> rule_key_;         // of the rule checked
  const Aggregate* aggregate_ = nullptr;      // the aggregate checked
  // Event schemas: the types of each step of the rule checked, of the source
  // of the counter or aggregate checked; the paths whose type a declaration gave.
  std::vector<std::vector<std::string>> step_types_;
  std::vector<std::string> source_types_;
  std::set<const Expr*> schema_typed_;
  // The type `types` declare for `path` (kAny when undeclared); an error at
  // `span` when a declared type lacks it.
  Type SchemaType(const std::vector<std::string>& types, const std::vector<std::string>& path, Span span,
                  const Expr* e = nullptr);
  int history_ = 0;                           // its largest previous_* n
};

Expr RuleChecker::LowerExpr(const ast::Chain& c) {
  expr_nodes_ = 0;
  Expr e = Lower(c, 0);
  if (expr_nodes_ <= kMaxExprNodes) return e;
  Expr stand_in;
  stand_in.kind = Expr::Kind::kBool;
  stand_in.boolean = true;
  stand_in.span = SpanOf(c);
  return stand_in;
}

bool RuleChecker::CountNode(const ast::Tagged& node) {
  if (++expr_nodes_ == kMaxExprNodes + 1) {
    Error(SpanOf(node), fmt::format("expression too large: more than {} operators, operands and list items "
                                    "(split it, or keep long lists in a table)",
                                    kMaxExprNodes));
  }
  return expr_nodes_ <= kMaxExprNodes;
}

void RuleChecker::CheckString(const ast::Tagged& node, const std::string& value, const char* what) {
  if (value.size() > kMaxStringBytes) {
    Error(SpanOf(node), fmt::format("{} is {} bytes long; the limit is {}", what, value.size(), kMaxStringBytes));
  }
}

Expr RuleChecker::Lower(const ast::Chain& c, int depth) {
  Expr acc = Lower(c.first, depth + 1);
  for (const auto& op : c.rest) {
    if (!CountNode(op)) break;
    Expr rhs = Lower(op.operand, depth + 1);
    Expr bin;
    bin.kind = Expr::Kind::kBinary;
    bin.text = op.op;
    bin.span = {acc.span.begin, rhs.span.end};
    bin.args.push_back(std::move(acc));
    bin.args.push_back(std::move(rhs));
    acc = std::move(bin);
  }
  return acc;
}

Expr RuleChecker::Lower(const ast::Operand& o, int depth) {
  Expr e;
  if (depth > kMaxExprDepth * 4) {  // operators nest without brackets, e.g. "not not not ..."
    return e;
  }

  struct Visitor {
    RuleChecker* self;
    Expr* e;
    int depth;
    // Every operand is a node (a bracketed chain's operators count instead).
    void operator()(const ast::NumberLit& n) const {
      if (!self->CountNode(n)) return;
      e->kind = Expr::Kind::kNumber, e->number = n.value, e->span = SpanOf(n);
    }
    void operator()(const ast::StringLit& s) const {
      if (!self->CountNode(s)) return;
      e->kind = Expr::Kind::kString, e->text = s.value, e->span = SpanOf(s);
      self->CheckString(s, s.value, "a string");
    }
    void operator()(const ast::WordLit& w) const {
      if (!self->CountNode(w)) return;
      e->span = SpanOf(w);
      if (w.word == "null") {
        e->kind = Expr::Kind::kNull;
      } else {
        e->kind = Expr::Kind::kBool, e->boolean = w.word == "true";
      }
    }
    void operator()(const ast::Path& p) const {
      if (!self->CountNode(p)) return;
      e->kind = Expr::Kind::kPath, e->path = p.parts, e->span = SpanOf(p);
      self->ResolveDeclared(e);
    }
    void operator()(const ast::Lookup& l) const {
      if (!self->CountNode(l)) return;
      e->kind = Expr::Kind::kLookup, e->text = l.table, e->path = l.field, e->span = SpanOf(l);
      e->args.push_back(self->Lower(l.key, depth + 1));
    }
    void operator()(const ast::Call& c) const {
      if (!self->CountNode(c)) return;
      e->kind = Expr::Kind::kCall, e->text = c.name, e->span = SpanOf(c);
      for (const auto& a : c.args) {
        if (self->expr_nodes_ > kMaxExprNodes) break;
        e->args.push_back(self->Lower(a, depth + 1));
      }
    }
    void operator()(const ast::Unary& u) const {
      if (!self->CountNode(u)) return;
      e->kind = Expr::Kind::kUnary, e->text = u.op, e->span = SpanOf(u);
      e->args.push_back(self->Lower(u.operand, depth + 1));
    }
    void operator()(const ast::List& l) const {
      if (!self->CountNode(l)) return;
      e->kind = Expr::Kind::kList, e->span = SpanOf(l);
      for (const auto& a : l.items) {
        if (self->expr_nodes_ > kMaxExprNodes) break;
        e->args.push_back(self->Lower(a, depth + 1));
      }
    }
    void operator()(const ast::Chain& c) const {
      // A parenthesised expression keeps the span of its brackets' content.
      *e = self->Lower(c, depth + 1);
    }
  };
  boost::apply_visitor(Visitor{this, &e, depth}, o);
  return e;
}

void RuleChecker::ResolveDeclared(Expr* e) const {
  // A declared table or list name, alone, means it (a bound name of the rule
  // wins, then declarations, then a field of the event).
  if (e->path.size() != 1 || pattern_names_.count(e->path[0])) return;
  if (aggregate_ != nullptr) {  // an aggregate's computed fields and `group` win
    if (e->path[0] == "group") return;
    for (const auto& c : aggregate_->compute) {
      if (c.name == e->path[0]) return;
    }
  }
  if (decls_.FindTable(e->path[0]) != nullptr) {
    e->kind = Expr::Kind::kTable, e->text = e->path[0], e->path.clear();
    return;
  }
  if (decls_.FindCounter(e->path[0]) != nullptr) {
    e->kind = Expr::Kind::kCounter, e->text = e->path[0], e->path.clear();
    return;
  }
  for (const auto& l : decls_.lists) {
    if (l.name != e->path[0]) continue;
    Span at = e->span;
    *e = l.items;
    e->span = at;  // the items' own spans are in the declaring file
    for (auto& item : e->args) item.span = at;
    return;
  }
}

void RuleChecker::LowerStep(const ast::Step& s, Step* out) {
  out->span = SpanOf(s);
  out->absent = s.absent.has_value();
  if (s.name) {
    out->name = s.name->name;
    out->name_span = SpanOf(*s.name);
  }
  out->types = s.types.names;
  out->types_span = SpanOf(s.types);
  if (s.filter) out->filter = LowerExpr(*s.filter);
  if (s.quantifier) {
    out->counted = true;
    out->min = s.quantifier->min;
    out->max = s.quantifier->max;
    out->quantifier_span = SpanOf(*s.quantifier);
  }
}

bool RuleChecker::LowerPattern(const ast::Pattern& p, Pattern* out) {
  out->span = SpanOf(p);
  if (p.first.name) pattern_names_.insert(p.first.name->name);
  for (const auto& as : p.rest) {
    if (as.step.name) pattern_names_.insert(as.step.name->name);
  }
  out->steps.emplace_back();
  LowerStep(p.first, &out->steps.back());
  for (const auto& as : p.rest) {
    out->arrows.push_back(as.arrow == "=>" ? Arrow::kStrict : Arrow::kRelaxed);
    out->steps.emplace_back();
    LowerStep(as.step, &out->steps.back());
  }
  if (out->steps.size() > static_cast<size_t>(kMaxSteps)) {
    Error(out->span, fmt::format("a pattern may have at most {} steps, this one has {}", kMaxSteps,
                                 out->steps.size()));
    return false;
  }
  // Per-step checks, in source order, with the scope growing as we go.
  for (size_t i = 0; i < out->steps.size(); ++i) {
    Step& s = out->steps[i];
    if (s.counted) {
      if (s.absent) {
        Error(s.quantifier_span, "an absent step cannot have a quantifier");
      } else if (s.min > kMaxQuantifier || (s.max != kUnbounded && s.max > kMaxQuantifier)) {
        Error(s.quantifier_span, fmt::format("a quantifier's count may be at most {}", kMaxQuantifier));
      } else if (s.max != kUnbounded && s.max == 0) {
        Error(s.quantifier_span, "a quantifier's upper bound must be at least 1");
      } else if (s.min < 0) {
        Error(s.quantifier_span, "a quantifier's count cannot be negative");
      } else if (s.max != kUnbounded && s.max < s.min) {
        Error(s.quantifier_span,
              fmt::format("a quantifier's upper bound ({}) is below its lower bound ({})", s.max,
                          s.min));
      }
    }
    if (i == 0 && s.absent) Error(s.span, "a pattern cannot start with an absent step");
    if (i == 0 && !s.absent && s.min == 0 && s.max != 0) {
      Error(s.quantifier_span, "a pattern cannot start with an optional step (a step that may match "
                               "no event)");
    }
    for (const auto& t : s.types) {
      if (t == "any" && s.types.size() > 1) {
        Error(s.types_span, "'any' already accepts every type; it cannot be combined with others");
      }
    }
    if (!s.name.empty()) {
      if (auto it = names_.find(s.name); it != names_.end()) {
        Error(s.name_span, fmt::format("the name '{}' is already bound by step {}", s.name,
                                       it->second.step + 1));
      } else {
        names_[s.name] = Binding{static_cast<int>(i), s.counted, s.absent};
      }
    }
  }
  step_types_.clear();
  for (const auto& s : out->steps) step_types_.push_back(s.types);
  for (size_t i = 0; i < out->steps.size(); ++i) {
    if (out->steps[i].filter) TypeOf(*out->steps[i].filter, Where::kFilter, static_cast<int>(i));
  }
  // A trailing optional step can never bind: the match completes before it.
  const Step& last = out->steps.back();
  if (out->steps.size() > 1 && !last.absent && last.min == 0) {
    Warning(last.span, "a trailing optional step never binds an event: the match completes "
                       "as soon as the steps before it are met");
  }
  return true;
}

Type RuleChecker::SchemaType(const std::vector<std::string>& types, const std::vector<std::string>& path, Span span,
                              const Expr* e) {
  PathCheck c = CheckPath(decls_, types, path);
  if (c.kind == PathCheck::Kind::kMissing) {
    Error(span, c.message);
    return Type::kAny;
  }
  if (c.kind == PathCheck::Kind::kUndeclared) return Type::kAny;
  Type t = c.type == FieldType::kString ? Type::kString
           : c.type == FieldType::kNumber ? Type::kNumber
           : c.type == FieldType::kBool   ? Type::kBool
           : c.type == FieldType::kList   ? Type::kList
                                          : Type::kAny;
  if (e != nullptr && t != Type::kAny) schema_typed_.insert(e);
  return t;
}

Type RuleChecker::TypeOfPath(const Expr& e, Where where, int step, bool allow_names) {
  if (where == Where::kAlertWhen || where == Where::kAggregateEmit) return TypeOfAggregatePath(e, where);
  if (where == Where::kSource) return SchemaType(source_types_, e.path, e.span, &e);  // a field of the event
  const std::string& head = e.path[0];
  auto it = names_.find(head);
  if (it == names_.end()) {
    if (where == Where::kFilter) {  // a field of the current event
      return step >= 0 && static_cast<size_t>(step) < step_types_.size()
                 ? SchemaType(step_types_[static_cast<size_t>(step)], e.path, e.span, &e)
                 : Type::kAny;
    }
    if (where == Where::kEmit && e.path.size() == 1 && head == "key") return Type::kString;
    Error(e.span, fmt::format("'{}' does not start with a bound name; in '{}', write name.field "
                              "(for example o.amount)",
                              fmt::join(e.path, "."), where == Where::kWhere ? "where" : "emit and fields"));
    return Type::kAny;
  }
  const Binding& b = it->second;
  if (where == Where::kFilter && b.step > step) {
    Error(e.span, fmt::format("'{}' is bound later in the pattern (step {}); a filter can only use "
                              "names bound by earlier steps",
                              head, b.step + 1));
    return Type::kAny;
  }
  if (b.absent && !(where == Where::kFilter && b.step == step)) {
    Error(e.span, fmt::format("'{}' names an absent step, which binds no event", head));
    return Type::kAny;
  }
  if (where == Where::kFilter && b.step == step && !b.counted) {
    Error(e.span, fmt::format("inside its own filter '{}' has no event yet; write the field alone "
                              "(for example {})",
                              head, e.path.size() > 1 ? e.path[1] : "amount"));
    return Type::kAny;
  }
  if (where == Where::kFilter && b.step == step && b.absent) {
    Error(e.span, fmt::format("inside its own filter '{}' has no event; write the field alone",
                              head));
    return Type::kAny;
  }
  if (e.path.size() == 1) {
    if (allow_names) return Type::kNames;
    Error(e.span, fmt::format("'{}' names events; use one of their fields (for example {}.amount) "
                              "or a function such as count({})",
                              head, head, head));
    return Type::kAny;
  }
  std::vector<std::string> rest(e.path.begin() + 1, e.path.end());
  Type declared = static_cast<size_t>(b.step) < step_types_.size()
                      ? SchemaType(step_types_[static_cast<size_t>(b.step)], rest, e.span, b.counted ? nullptr : &e)
                      : Type::kAny;
  return b.counted ? Type::kList : declared;
}

Type RuleChecker::TypeOfCall(const Expr& e, Where where, int step) {
  if (e.text == "previous_avg" || e.text == "previous_max") return TypeOfPrevious(e, where);
  if (where == Where::kAlertWhen || where == Where::kAggregateEmit || where == Where::kSource) {
    bool scalar = e.text == "abs" || e.text == "lower" || e.text == "upper" || e.text == "len" ||
                  FindScalarFn(e.text, e.args.size()) != nullptr;
    if (!scalar) {
      if (where == Where::kSource) {
        Error(e.span, fmt::format("'{}' in the filter of a counter or an aggregate: it reads one event's fields "
                                  "(abs, lower, upper and len apply to them)",
                                  e.text));
      } else {
        Error(e.span, fmt::format("'{}' in an aggregate's expression: compute a field with `compute NAME = {}(FIELD)` "
                                  "and read it by name",
                                  e.text, e.text));
      }
      return Type::kAny;
    }
  }
  if (const ScalarFnInfo* scalar = FindScalarFn(e.text, e.args.size())) {
    return TypeOfScalarCall(e, *scalar, where, step);
  }
  const FunctionInfo* fn = nullptr;
  for (const auto& f : kFunctions) {
    if (e.text == f.name) fn = &f;
  }
  if (fn == nullptr) {
    std::vector<std::string> known = ScalarFnNameList();
    for (const auto& f : kFunctions) known.push_back(f.name);
    auto close = Closest(e.text, known);
    Error(e.span, fmt::format("unknown function '{}'{} (known: count, sum, avg, min, max, distinct, "
                              "first, last, abs, lower, upper, len, {}; previous_avg and previous_max in an "
                              "aggregate's 'alert when')",
                              e.text, close ? fmt::format(": did you mean '{}'?", *close) : "", ScalarFnNames()));
    return Type::kAny;
  }
  if (e.args.size() != 1) {
    Error(e.span, fmt::format("{}() takes 1 argument, {} given", e.text, e.args.size()));
    return fn->result;
  }
  const Expr& a = e.args[0];
  if (fn->aggregate) {
    bool is_count = e.text == "count";
    if (a.kind != Expr::Kind::kPath || names_.find(a.path[0]) == names_.end()) {
      Error(a.span, fmt::format("{}() needs {} of a bound name, for example {}", e.text,
                                is_count ? "the events" : "a field",
                                is_count ? "count(o)" : fmt::format("{}(o.amount)", e.text)));
      return fn->result;
    }
    Type t = TypeOfPath(a, where, step, /*allow_names=*/is_count);
    if (!is_count && a.path.size() < 2) {
      Error(a.span, fmt::format("{}() needs a field of '{}', for example {}({}.amount)", e.text,
                                a.path[0], e.text, a.path[0]));
    }
    (void)t;
    return fn->result;
  }
  Type t = TypeOf(a, where, step);
  if (e.text == "abs" && t != Type::kAny && t != Type::kNumber && t != Type::kNull) {
    Error(a.span, fmt::format("abs() needs a number, not {}", TypeName(t)));
  }
  if ((e.text == "lower" || e.text == "upper") && t != Type::kAny && t != Type::kString &&
      t != Type::kNull) {
    Error(a.span, fmt::format("{}() needs a string, not {}", e.text, TypeName(t)));
  }
  return fn->result;
}

Type RuleChecker::TypeOfScalarCall(const Expr& e, const ScalarFnInfo& fn, Where where, int step) {
  size_t n = e.args.size();
  if (n < fn.min_args || (fn.max_args != kVariadic && n > fn.max_args) ||
      (fn.max_args == kVariadic && n > kMaxCoalesceArgs)) {
    std::string want = fn.min_args == fn.max_args ? fmt::format("{}", fn.min_args)
                       : fn.max_args == kVariadic ? fmt::format("{} to {}", fn.min_args, kMaxCoalesceArgs)
                                                  : fmt::format("{} or {}", fn.min_args, fn.max_args);
    Error(e.span, fmt::format("{}() takes {} arguments ({}), {} given", fn.name, want, fn.signature, n));
    return Type::kAny;
  }
  std::vector<Type> types;
  for (size_t i = 0; i < n; ++i) {
    const Expr& a = e.args[i];
    ArgKind kind = fn.max_args == kVariadic ? fn.args[0] : fn.args[i];
    Type t = TypeOf(a, where, step);
    types.push_back(t);
    auto known = t != Type::kAny && t != Type::kNull;
    const char* want = kind == ArgKind::kNumber ? "a number"
                       : kind == ArgKind::kString ? "a string"
                       : kind == ArgKind::kBool   ? "true/false"
                       : kind == ArgKind::kZone   ? "a time zone name"
                       : kind == ArgKind::kTime   ? "a time (epoch milliseconds or an RFC 3339 string)"
                                                  : nullptr;
    bool fits = !known || kind == ArgKind::kAny || kind == ArgKind::kConstString || kind == ArgKind::kConstInt ||
                (kind == ArgKind::kNumber && t == Type::kNumber) ||
                ((kind == ArgKind::kString || kind == ArgKind::kZone) && t == Type::kString) ||
                (kind == ArgKind::kBool && t == Type::kBool) ||
                (kind == ArgKind::kTime && (t == Type::kNumber || t == Type::kString));
    if (t == Type::kList || t == Type::kNames) {
      Error(a.span, fmt::format("{}() takes one value as argument {}, not {} (aggregate a list first, for "
                                "example with max() or first())",
                                fn.name, i + 1, TypeName(t)));
    } else if (!fits && want != nullptr) {
      Error(a.span, fmt::format("{}() needs {} as argument {}, not {} ({})", fn.name, want, i + 1, TypeName(t),
                                fn.signature));
    } else if (auto problem = CheckConstArgument(fn, i, a)) {
      Error(a.span, *problem);
    }
  }
  switch (fn.result) {
    case ResultKind::kNumber: return Type::kNumber;
    case ResultKind::kString: return Type::kString;
    case ResultKind::kBool: return Type::kBool;
    case ResultKind::kAny: return Type::kAny;
    case ResultKind::kSameAsBranches:
      if (types[1] == types[2] || types[2] == Type::kNull) return types[1];
      return types[1] == Type::kNull ? types[2] : Type::kAny;
  }
  return Type::kAny;
}

Type RuleChecker::TypeOfLookup(const Expr& e, Where where, int step) {
  Type k = TypeOf(e.args[0], where, step);
  if (k == Type::kList) Error(e.args[0].span, fmt::format("a key of table '{}' is one value, not a list", e.text));
  if (decls_.FindTable(e.text) == nullptr) {
    Span name{e.span.begin, e.span.begin + static_cast<uint32_t>(e.text.size())};
    bool is_list = std::any_of(decls_.lists.begin(), decls_.lists.end(), [&](const NamedList& l) { return l.name == e.text; });
    if (is_list) {
      Error(name, fmt::format("'{}' is a list, not a table: test a value with x in {}", e.text, e.text));
    } else {
      std::string known;
      for (const auto& t : decls_.tables) known += (known.empty() ? "" : ", ") + t.name;
      Error(name, fmt::format("unknown table '{}' ({})", e.text,
                              known.empty() ? "no table is declared: declare it with `table NAME key FIELD`"
                                            : "declared: " + known));
    }
    return Type::kAny;
  }
  if (where != Where::kFilter) tables_in_where_.emplace(e.text, e.span);
  return Type::kAny;
}

void RuleChecker::CheckHistory(const Rule& rule) {
  for (const auto& [name, at] : tables_in_where_) {
    const Table* t = decls_.FindTable(name);
    if (t == nullptr || rule.within <= t->history) continue;
    Error(at, fmt::format("rule '{}' reads table '{}' in where or emit as of its last bound event, up to {} "
                          "back ('within'), but the table keeps {} of history: give the table `history {}` "
                          "or more",
                          rule.name, name, FormatDuration(rule.within), FormatDuration(t->history),
                          FormatDuration(rule.within)));
  }
}

Type RuleChecker::TypeOfBinary(const Expr& e, Where where, int step) {
  using K = Expr::Kind;
  const std::string& op = e.text;
  if ((op == "in" || op == "not in") && e.args[1].kind == K::kTable) {
    // KEY in TABLE: a live record for the key at that time.
    if (TypeOf(e.args[0], where, step) == Type::kList) {
      Error(e.args[0].span, fmt::format("the left side of '{}' is a list; a table's key is one value", op));
    }
    if (where != Where::kFilter) tables_in_where_.emplace(e.args[1].text, e.args[1].span);
    return Type::kBool;
  }
  Type l = TypeOf(e.args[0], where, step);
  Type r = TypeOf(e.args[1], where, step);
  auto known = [](Type t) { return t != Type::kAny && t != Type::kNull; };
  if (op == "and" || op == "or") {
    for (const Expr* side : {&e.args[0], &e.args[1]}) {
      Type t = side == &e.args[0] ? l : r;
      if (known(t) && t != Type::kBool) {
        Error(side->span, fmt::format("'{}' needs true/false on both sides, not {}", op,
                                      TypeName(t)));
      }
    }
    return Type::kBool;
  }
  if (op == "+" || op == "-" || op == "*" || op == "/" || op == "%") {
    if ((known(l) && l != Type::kNumber) || (known(r) && r != Type::kNumber)) {
      Error(e.span, fmt::format("cannot apply '{}' to {} and {}", op, TypeName(l), TypeName(r)));
    }
    return Type::kNumber;
  }
  if (op == "in" || op == "not in") {
    if (known(r) && r != Type::kList) {
      Error(e.args[1].span, fmt::format("'{}' needs a list on its right (for example [\"FR\", "
                                        "\"DE\"] or o.country), not {}",
                                        op, TypeName(r)));
    }
    if (l == Type::kList) Error(e.args[0].span, fmt::format("the left side of '{}' is a list", op));
    return Type::kBool;
  }
  // Comparisons.
  if (l == Type::kList || r == Type::kList) {
    Error(e.span, fmt::format("cannot compare a list with '{}'; use 'in' or an aggregate such as "
                              "count() or sum()",
                              op));
  } else if (known(l) && known(r) && l != r && (schema_typed_.count(&e.args[0]) || schema_typed_.count(&e.args[1]))) {
    // A declared field's type is certain: the comparison can never hold.
    const Expr& field = schema_typed_.count(&e.args[0]) ? e.args[0] : e.args[1];
    Error(e.span, fmt::format("'{}' compares {} with {}, which is always false ('{}' is declared {})", op,
                              TypeName(l), TypeName(r), fmt::join(field.path, "."), TypeName(field.path == e.args[0].path ? l : r)));
  } else if ((l == Type::kString && r == Type::kNumber) ||
             (l == Type::kNumber && r == Type::kString)) {
    Warning(e.span, "comparing a string with a number is always false");
  } else if ((op != "==" && op != "!=") && (l == Type::kNull || r == Type::kNull)) {
    Warning(e.span, fmt::format("'{}' with null is always false; only == null and != null test "
                                "for a missing field",
                                op));
  }
  return Type::kBool;
}

Type RuleChecker::TypeOf(const Expr& e, Where where, int step) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::kNumber: return Type::kNumber;
    case K::kString: return Type::kString;
    case K::kBool: return Type::kBool;
    case K::kNull: return Type::kNull;
    case K::kPath: return TypeOfPath(e, where, step, false);
    case K::kList:
      for (const auto& a : e.args) {
        Type t = TypeOf(a, where, step);
        if (t == Type::kList) Error(a.span, "a list cannot contain a list");
      }
      return Type::kList;
    case K::kCall: return TypeOfCall(e, where, step);
    case K::kLookup: return TypeOfLookup(e, where, step);
    case K::kTable:
      Error(e.span, fmt::format("table '{}' is not a value: read a field with {}[KEY].FIELD, or test a key "
                                "with KEY in {}",
                                e.text, e.text, e.text));
      return Type::kAny;
    case K::kUnary: {
      Type t = TypeOf(e.args[0], where, step);
      if (e.text == "-") {
        if (t != Type::kAny && t != Type::kNumber && t != Type::kNull) {
          Error(e.span, fmt::format("cannot negate {}", TypeName(t)));
        }
        return Type::kNumber;
      }
      if (t != Type::kAny && t != Type::kBool && t != Type::kNull) {
        Error(e.span, fmt::format("'not' needs true/false, not {}", TypeName(t)));
      }
      return Type::kBool;
    }
    case K::kBinary: return TypeOfBinary(e, where, step);
    case K::kCounter: return TypeOfCounter(e, where);
  }
  return Type::kAny;
}

std::optional<Rule> RuleChecker::Check(const ast::Rule& in) {
  Rule rule;
  rule.file = &file_;
  rule.span = SpanOf(in);
  rule.name = in.name.name;
  rule.name_span = SpanOf(in.name);
  rule_name_ = rule.name;
  Clauses seen;
  for (const auto& c : in.clauses) {
    auto [it, fresh] = seen.emplace(c.keyword, &c);
    if (!fresh) {
      Error(SpanOf(c), fmt::format("'{}' is given twice in rule '{}' (first at line {})", c.keyword,
                                   rule.name, file_.Locate(it->second->begin).line));
    }
  }
  for (const auto& c : kClauses) {
    if (c.required && !seen.count(std::string(c.word))) {
      Error(rule.name_span, fmt::format("rule '{}' has no '{}' clause ({} are required)", rule.name, c.word,
                                        ClauseList(true)));
    }
  }
  CheckSettings(seen, &rule);
  rule_key_ = rule.key;
  CheckPatternWhereEmit(seen, &rule);
  if (!rule.key.empty()) {  // every type the rule reads has its key
    std::vector<std::string> types;
    for (const auto& s : rule.pattern.steps) types.insert(types.end(), s.types.begin(), s.types.end());
    SchemaType(types, rule.key, rule.key_span);
  }
  CheckHistory(rule);
  std::string_view text(file_.text().data() + rule.span.begin, rule.span.end - rule.span.begin);
  rule.fingerprint = XXH3_64bits(text.data(), text.size());
  if (!ok_) return std::nullopt;
  return rule;
}

const ast::Word* RuleChecker::WordOf(const Clauses& seen, const char* keyword) {
  auto it = seen.find(keyword);
  return it == seen.end() ? nullptr : &boost::get<ast::Word>(it->second->value);
}

std::optional<Millis> RuleChecker::CheckDuration(const ast::Word* w, const char* what) {
  auto d = ParseDuration(w->text);
  if (!d && LooksLikeDuration(w->text)) {
    Error(SpanOf(*w), fmt::format("{} may be at most {} ({} days), not {}", what, FormatDuration(kMaxDuration),
                                  kMaxDuration / kDay, w->text));
  } else if (!d) {
    Error(SpanOf(*w), fmt::format("bad duration '{}' for {}: write a whole number followed by ms, "
                                  "s, m, h or d (for example 90s or 2m)",
                                  w->text, what));
  } else if (*d <= 0) {
    Error(SpanOf(*w), fmt::format("{} must be longer than 0", what));
    d.reset();
  }
  return d;
}

// The clauses that are settings: description, severity, key, within,
// cooldown, skip, limit, tags.
void RuleChecker::CheckSettings(const Clauses& seen, Rule* out) {
  Rule& rule = *out;
  auto word = [&](const char* kw) { return WordOf(seen, kw); };
  auto duration = [&](const ast::Word* w, const char* what) { return CheckDuration(w, what); };
  if (auto it = seen.find("description"); it != seen.end()) {
    const auto& d = boost::get<ast::StringLit>(it->second->value);
    CheckString(d, d.value, "the description");
    rule.description = d.value;
  }
  if (const ast::Word* w = word("severity")) {
    if (auto sev = CheckSeverity(*w)) rule.severity = *sev;
  }
  if (auto it = seen.find("key"); it != seen.end()) {
    const auto& p = boost::get<ast::Path>(it->second->value);
    rule.key = p.parts;
    rule.key_span = SpanOf(p);
  }
  if (const ast::Word* w = word("within")) {
    if (auto d = duration(w, "'within'")) rule.within = *d;
  }
  if (const ast::Word* w = word("cooldown")) rule.cooldown = duration(w, "'cooldown'");
  if (const ast::Word* w = word("skip")) {
    if (w->text == "past_last") rule.skip = SkipPolicy::kPastLast;
    else if (w->text == "to_next") rule.skip = SkipPolicy::kToNext;
    else if (w->text == "none") rule.skip = SkipPolicy::kNone;
    else Error(SpanOf(*w), fmt::format("unknown skip policy '{}' (expected past_last, to_next or none)", w->text));
  }
  if (const ast::Word* w = word("limit")) {
    const std::string& t = w->text;
    bool digits = !t.empty() && t.size() <= 9 &&
                  std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
    int n = digits ? std::stoi(t) : 0;
    if (!digits || n < 1 || n > kMaxLimit) {
      Error(SpanOf(*w), fmt::format("bad limit '{}': write a whole number from 1 to {}", t, kMaxLimit));
    } else {
      rule.limit = n;
    }
  }
  if (auto it = seen.find("tags"); it != seen.end()) {
    for (const auto& s : boost::get<ast::StringList>(it->second->value).items) {
      CheckString(s, s.value, "a tag");
      rule.tags.push_back(s.value);
    }
  }
}

// The pattern, `where` and `emit`: lowered to the model and type-checked.
void RuleChecker::CheckPatternWhereEmit(const Clauses& seen, Rule* out) {
  Rule& rule = *out;
  if (auto it = seen.find("match"); it != seen.end()) {
    LowerPattern(boost::get<ast::Pattern>(it->second->value), &rule.pattern);
  }
  if (auto it = seen.find("where"); it != seen.end()) {
    rule.where = LowerExpr(boost::get<ast::Chain>(it->second->value));
    Type t = TypeOf(*rule.where, Where::kWhere, -1);
    if (t != Type::kAny && t != Type::kBool && t != Type::kNull) {
      Error(rule.where->span, fmt::format("'where' needs a true/false condition, not {}", TypeName(t)));
    }
  }
  if (auto it = seen.find("emit"); it != seen.end()) {
    LowerTemplate(boost::get<ast::Template>(it->second->value), Where::kEmit, &rule.emit);
  }
  if (auto it = seen.find("fields"); it != seen.end()) CheckFields(boost::get<ast::FieldList>(it->second->value), &rule);
}

// `fields { NAME: EXPR, ... }`: read like `emit` (every name bound), each
// name once, at most kMaxAlertFields of them.
void RuleChecker::CheckFields(const ast::FieldList& list, Rule* rule) {
  std::map<std::string, uint32_t> names;
  for (const auto& entry : list.items) {
    Rule::Field f;
    f.name = entry.name.name;
    f.span = SpanOf(entry.name);
    auto [it, fresh] = names.emplace(f.name, entry.name.begin);
    if (!fresh) {
      Error(f.span, fmt::format("field '{}' is given twice (first at line {})", f.name, file_.Locate(it->second).line));
    }
    if (rule->fields.size() == kMaxAlertFields) {
      Error(f.span, fmt::format("more than {} fields: keep the alert's fields to what a case system reads",
                                kMaxAlertFields));
      return;
    }
    f.expr = LowerExpr(entry.value);
    if (f.expr.kind == Expr::Kind::kPath && f.expr.path.size() == 1 && f.expr.path[0] == "key" && !names_.count("key")) {
      Error(f.expr.span, "the alert carries its key already (\"key\"); a field reads the bound events, for example "
                         "o.amount");
    } else {
      TypeOf(f.expr, Where::kEmit, -1);
    }
    rule->fields.push_back(std::move(f));
  }
}

// ---- counters and aggregates (sections 6.2 and 6.3) ----------------------

Type RuleChecker::TypeOfCounter(const Expr& e, Where where) {
  const Counter* c = decls_.FindCounter(e.text);
  if (where == Where::kSource || where == Where::kAlertWhen || where == Where::kAggregateEmit) {
    Error(e.span, fmt::format("counter '{}' is read by rules; {} reads the event's own fields", e.text,
                              where == Where::kSource ? "the filter of a counter or an aggregate" : "an aggregate"));
    return Type::kAny;
  }
  if (c != nullptr && !rule_key_.empty() && c->key != rule_key_) {
    Error(e.span, fmt::format("counter '{}' is keyed by {}, rule '{}' by {}: a rule reads only the counters of its "
                              "own key (declare one with `key {}`)",
                              e.text, fmt::join(c->key, "."), rule_name_, fmt::join(rule_key_, "."),
                              fmt::join(rule_key_, ".")));
  }
  if (c == nullptr) return Type::kAny;
  bool never_null = c->fn == AggFn::kCount || c->fn == AggFn::kSum || c->fn == AggFn::kDistinct;
  return never_null ? Type::kNumber : Type::kAny;
}

Type RuleChecker::TypeOfAggregatePath(const Expr& e, Where where) {
  std::string names;
  for (const auto& c : aggregate_->compute) {
    names += (names.empty() ? "" : ", ") + c.name;
    if (e.path.size() == 1 && e.path[0] == c.name) {
      bool never_null = c.fn == AggFn::kCount || c.fn == AggFn::kSum || c.fn == AggFn::kDistinct;
      return never_null ? Type::kNumber : Type::kAny;
    }
  }
  if (e.path.size() == 1 && e.path[0] == "group") return Type::kAny;
  Error(e.span, fmt::format("'{}' is not a field of aggregate '{}': {} reads its computed fields ({}) and group",
                            fmt::join(e.path, "."), aggregate_->name,
                            where == Where::kAlertWhen ? "'alert when'" : "'emit'", names));
  return Type::kAny;
}

// previous_avg(x, n) / previous_max(x, n): only in an aggregate's `alert
// when`; x a computed field, n a whole number of windows.
Type RuleChecker::TypeOfPrevious(const Expr& e, Where where) {
  if (where != Where::kAlertWhen) {
    Error(e.span, fmt::format("{}() reads the group's earlier windows: it is only for an aggregate's 'alert when'",
                              e.text));
    return Type::kAny;
  }
  if (e.args.size() != 2) {
    Error(e.span, fmt::format("{}() takes 2 arguments (a computed field and a number of windows, for example "
                              "{}(total, 12)), {} given",
                              e.text, e.text, e.args.size()));
    return Type::kAny;
  }
  const Expr& x = e.args[0];
  if (x.kind != Expr::Kind::kPath || x.path.size() != 1 || x.path[0] == "group") {
    Error(x.span, fmt::format("{}() needs a computed field of '{}' by name", e.text, aggregate_->name));
  } else {
    TypeOfAggregatePath(x, where);
  }
  const Expr& n = e.args[1];
  if (n.kind != Expr::Kind::kNumber || n.number != static_cast<double>(static_cast<int64_t>(n.number)) ||
      n.number < 1 || n.number > kMaxPrevious) {
    Error(n.span, fmt::format("the number of windows of {}() is a whole number from 1 to {}", e.text, kMaxPrevious));
  } else {
    history_ = std::max(history_, static_cast<int>(n.number));
  }
  return Type::kAny;
}

void RuleChecker::LowerSource(const ast::Source& in, EventSource* out) {
  out->types = in.types.names;
  source_types_ = out->types;
  if (in.filter) {
    out->filter = LowerExpr(*in.filter);
    Type t = TypeOf(*out->filter, Where::kSource, -1);
    if (t != Type::kAny && t != Type::kBool && t != Type::kNull) {
      Error(out->filter->span, fmt::format("a filter needs a true/false condition, not {}", TypeName(t)));
    }
  }
}

std::optional<Severity> RuleChecker::CheckSeverity(const ast::Word& w) {
  static const std::pair<const char*, Severity> kSev[] = {
      {"low", Severity::kLow}, {"medium", Severity::kMedium}, {"high", Severity::kHigh}, {"critical", Severity::kCritical}};
  for (auto& [n, s] : kSev) {
    if (w.text == n) return s;
  }
  Error(SpanOf(w), fmt::format("unknown severity '{}' (expected low, medium, high or critical)", w.text));
  return std::nullopt;
}

// over and resolution: whole seconds, over a multiple of resolution; the
// default resolution is the largest whole number of seconds that divides
// over and is at most max(1s, over/60).
void RuleChecker::CheckCounterSettings(const std::map<std::string, const ast::Clause*>& seen, Counter* c) {
  auto seconds = [&](const char* kw) -> std::optional<Millis> {
    auto it = seen.find(kw);
    if (it == seen.end()) return std::nullopt;
    const auto& w = boost::get<ast::Word>(it->second->value);
    auto d = CheckDuration(&w, fmt::format("'{}'", kw).c_str());
    if (d && *d % 1000 != 0) {
      Error(SpanOf(w), fmt::format("'{}' is a whole number of seconds, not {}", kw, w.text));
      return std::nullopt;
    }
    return d;
  };
  auto over = seconds("over");
  auto resolution = seconds("resolution");
  if (!over) return;
  c->over = *over;
  if (resolution) {
    if (*over % *resolution != 0) {
      const auto& w = boost::get<ast::Word>(seen.at("resolution")->value);
      Error(SpanOf(w), fmt::format("'over' ({}) is not a whole multiple of 'resolution' ({})", FormatDuration(*over),
                                   FormatDuration(*resolution)));
      return;
    }
    c->resolution = *resolution;
  } else {
    int64_t s = *over / 1000, limit = std::max<int64_t>(1, s / 60);
    int64_t best = 1;
    for (int64_t d = 1; d * d <= s; ++d) {
      if (s % d != 0) continue;
      if (d <= limit) best = std::max(best, d);
      if (s / d <= limit) best = std::max(best, s / d);
    }
    c->resolution = best * 1000;
  }
  if (c->buckets() > kMaxCounterBuckets) {
    const auto* at = seen.count("resolution") ? seen.at("resolution") : seen.at("over");
    Error(SpanOf(*at), fmt::format("counter '{}' would keep {} buckets per key (over / resolution); the limit is {}: "
                                   "give a coarser resolution",
                                   c->name, c->buckets(), kMaxCounterBuckets));
  }
}

std::optional<Counter> RuleChecker::CheckCounter(const ast::Counter& in) {
  Counter c;
  c.file = &file_;
  c.span = SpanOf(in);
  c.name = in.name.name;
  c.name_span = SpanOf(in.name);
  std::map<std::string, const ast::Clause*> seen;
  const ast::Clause* fn = nullptr;
  for (const auto& cl : in.clauses) {
    if (auto f = AggFnOf(cl.keyword)) {
      c.fn = *f;
      if (fn != nullptr) {
        Error(SpanOf(cl), fmt::format("counter '{}' already has its function ('{}' at line {}): a counter computes one",
                                      c.name, fn->keyword, file_.Locate(fn->begin).line));
      }
      fn = &cl;
      continue;
    }
    auto [it, fresh] = seen.emplace(cl.keyword, &cl);
    if (!fresh) Error(SpanOf(cl), fmt::format("'{}' is given twice in counter '{}'", cl.keyword, c.name));
  }
  if (!seen.count("key")) Error(c.name_span, fmt::format("counter '{}' has no 'key' clause", c.name));
  if (!seen.count("over")) Error(c.name_span, fmt::format("counter '{}' has no 'over' clause (its sliding window)", c.name));
  if (fn == nullptr) {
    Error(c.name_span, fmt::format("counter '{}' counts nothing: give count, sum, avg, min, max or distinct and the "
                                   "events (for example count order[amount > 0] or sum order.amount)",
                                   c.name));
  }
  if (auto it = seen.find("key"); it != seen.end()) {
    const auto& p = boost::get<ast::Path>(it->second->value);
    c.key = p.parts;
    c.key_span = SpanOf(p);
  }
  if (auto it = seen.find("description"); it != seen.end()) c.description = boost::get<ast::StringLit>(it->second->value).value;
  if (fn != nullptr) {
    const auto& src = boost::get<ast::Source>(fn->value);
    LowerSource(src, &c.source);
    if (src.field) c.field = *src.field;
    if (!c.key.empty()) SchemaType(c.source.types, c.key, c.key_span);
    if (!c.field.empty()) SchemaType(c.source.types, c.field, SpanOf(src));
    if (c.fn == AggFn::kCount && src.field) {
      Error(SpanOf(src), fmt::format("count counts events: write `count {}`, without a field", fmt::join(c.source.types, "|")));
    } else if (c.fn != AggFn::kCount && !src.field) {
      Error(SpanOf(src), fmt::format("{} needs the field it reads, for example `{} {}.amount`", fn->keyword,
                                     fn->keyword, c.source.types.empty() ? "order" : c.source.types[0]));
    }
  }
  CheckCounterSettings(seen, &c);
  std::string_view text(file_.text().data() + c.span.begin, c.span.end - c.span.begin);
  c.fingerprint = XXH3_64bits(text.data(), text.size());
  if (!ok_) return std::nullopt;
  return c;
}

void RuleChecker::CheckWindow(const ast::Window& w, Aggregate* a) {
  a->hopping = w.kind == "hopping";
  auto size = CheckDuration(&w.size, "the window's size");
  if (!size) return;
  a->size = a->every = *size;
  if (w.every) {
    auto every = CheckDuration(&*w.every, "'every'");
    if (!every) return;
    if (*every > *size) {
      Error(SpanOf(*w.every), fmt::format("a hopping window moves by at most its size ({}), not {}",
                                          FormatDuration(*size), FormatDuration(*every)));
      return;
    }
    if ((*size + *every - 1) / *every > kMaxWindowsPerEvent) {
      Error(SpanOf(w), fmt::format("each event would count in more than {} windows (size / every)", kMaxWindowsPerEvent));
      return;
    }
    a->every = *every;
  }
}

void RuleChecker::CheckCompute(const ast::ComputeList& list, Aggregate* a) {
  if (list.items.size() > kMaxComputed) {
    Error(SpanOf(list.items[kMaxComputed]), fmt::format("aggregate '{}' computes {} fields; the limit is {}", a->name,
                                                         list.items.size(), kMaxComputed));
    return;
  }
  for (const auto& item : list.items) {
    Computed c;
    c.name = item.name.name;
    c.span = SpanOf(item);
    if (c.name == "group") Error(SpanOf(item.name), "'group' names the aggregate's group; give the field another name");
    for (const auto& other : a->compute) {
      if (other.name == c.name) Error(SpanOf(item.name), fmt::format("'{}' is computed twice", c.name));
    }
    auto fn = AggFnOf(item.call.name);
    if (fn) c.fn = *fn;
    if (!fn) {
      Error(SpanOf(item.call), fmt::format("unknown function '{}' in compute (known: count, sum, avg, min, max, distinct)",
                                           item.call.name));
      continue;
    }
    size_t want = c.fn == AggFn::kCount ? 0 : 1;
    if (item.call.args.size() != want) {
      Error(SpanOf(item.call), want == 0 ? std::string("count() takes no argument: it counts the window's events")
                                         : fmt::format("{}() takes one field of the event, for example {}(amount)",
                                                       item.call.name, item.call.name));
      continue;
    }
    if (want == 1) {
      Expr arg = LowerExpr(item.call.args[0]);
      if (arg.kind != Expr::Kind::kPath) {
        Error(arg.span, fmt::format("{}() takes a field of the event, for example {}(amount)", item.call.name,
                                    item.call.name));
        continue;
      }
      c.field = arg.path;
      SchemaType(a->source.types, c.field, arg.span);
    }
    a->compute.push_back(std::move(c));
  }
}

void RuleChecker::LowerTemplate(const ast::Template& tmpl, Where where, std::vector<TemplatePart>* out) {
  std::string text;
  for (const auto& part : tmpl.parts) {
    if (const auto* s = boost::get<std::string>(&part)) text += *s;
  }
  CheckString(tmpl, text, "the emit message's text");
  for (const auto& part : tmpl.parts) {
    TemplatePart tp;
    if (const auto* s = boost::get<std::string>(&part)) {
      tp.text = *s;
    } else {
      const auto& hole = boost::get<ast::Hole>(part);
      if (hole.spec) {
        std::string error;
        tp.format = ParseNumberFormat(hole.spec->text, &error);
        if (!tp.format) Error(SpanOf(*hole.spec), error);
      }
      Expr e = LowerExpr(hole.expr);
      if (where == Where::kEmit && e.kind == Expr::Kind::kPath && e.path.size() == 1 && e.path[0] == "key" &&
          !names_.count("key")) {
        tp.key = true;  // a rule's key value
      } else {
        TypeOf(e, where, -1);
        tp.expr = std::move(e);
      }
    }
    out->push_back(std::move(tp));
  }
}

std::optional<Aggregate> RuleChecker::CheckAggregate(const ast::Aggregate& in) {
  Aggregate a;
  a.file = &file_;
  a.span = SpanOf(in);
  a.name = in.name.name;
  a.name_span = SpanOf(in.name);
  aggregate_ = &a;
  std::map<std::string, const ast::Clause*> seen;
  for (const auto& cl : in.clauses) {
    auto [it, fresh] = seen.emplace(cl.keyword, &cl);
    if (!fresh) Error(SpanOf(cl), fmt::format("'{}' is given twice in aggregate '{}'", cl.keyword, a.name));
  }
  for (const char* kw : {"from", "group", "window", "compute"}) {
    if (!seen.count(kw)) {
      Error(a.name_span, fmt::format("aggregate '{}' has no '{}' clause (from, group by, window and compute are "
                                     "required)",
                                     a.name, std::string(kw) == "group" ? "group by" : kw));
    }
  }
  if (auto it = seen.find("from"); it != seen.end()) {
    const auto& src = boost::get<ast::Source>(it->second->value);
    LowerSource(src, &a.source);
    if (src.field) Error(SpanOf(src), "'from' names events, not a field: compute reads the fields");
  }
  if (auto it = seen.find("group"); it != seen.end()) {
    const auto& p = boost::get<ast::Path>(it->second->value);
    a.group = p.parts;
    a.group_span = SpanOf(p);
    SchemaType(a.source.types, a.group, a.group_span);
  }
  if (auto it = seen.find("window"); it != seen.end()) CheckWindow(boost::get<ast::Window>(it->second->value), &a);
  if (auto it = seen.find("compute"); it != seen.end()) CheckCompute(boost::get<ast::ComputeList>(it->second->value), &a);
  if (auto it = seen.find("alert"); it != seen.end()) {
    a.alert_when = LowerExpr(boost::get<ast::Chain>(it->second->value));
    Type t = TypeOf(*a.alert_when, Where::kAlertWhen, -1);
    if (t != Type::kAny && t != Type::kBool && t != Type::kNull) {
      Error(a.alert_when->span, fmt::format("'alert when' needs a true/false condition, not {}", TypeName(t)));
    }
  }
  if (auto it = seen.find("severity"); it != seen.end()) {
    if (auto sev = CheckSeverity(boost::get<ast::Word>(it->second->value))) a.severity = *sev;
  }
  if (auto it = seen.find("emit"); it != seen.end()) {
    if (!seen.count("alert")) Error(SpanOf(*it->second), "'emit' is the message of an alert: it needs 'alert when'");
    LowerTemplate(boost::get<ast::Template>(it->second->value), Where::kAggregateEmit, &a.emit);
  }
  if (auto it = seen.find("description"); it != seen.end()) a.description = boost::get<ast::StringLit>(it->second->value).value;
  if (auto it = seen.find("tags"); it != seen.end()) {
    for (const auto& s : boost::get<ast::StringList>(it->second->value).items) a.tags.push_back(s.value);
  }
  a.history = history_;
  std::string_view text(file_.text().data() + a.span.begin, a.span.end - a.span.begin);
  a.fingerprint = XXH3_64bits(text.data(), text.size());
  aggregate_ = nullptr;
  if (!ok_) return std::nullopt;
  return a;
}

// Counters and aggregates read lists and tables, so they come after them
// (of this file; those of files read later are not known yet).
bool CheckCountersAndAggregates(const SourceFile& file, const ast::File& parsed, RuleSet* set,
                                DiagnosticSink* diags) {
  bool ok = true;
  for (const auto& in : parsed.counters) {
    RuleChecker checker(file, *set, diags);
    auto c = checker.CheckCounter(in);
    if (c) set->counters.push_back(std::move(*c));
    else ok = false;
  }
  for (const auto& in : parsed.aggregates) {
    RuleChecker checker(file, *set, diags);
    auto a = checker.CheckAggregate(in);
    if (a) set->aggregates.push_back(std::move(*a));
    else ok = false;
  }
  return ok;
}

}  // namespace

bool CheckDeclarations(const SourceFile& file, const ast::File& parsed, RuleSet* set, DiagnosticSink* diags) {
  bool ok = true;
  auto error = [&](Span s, std::string msg) {
    diags->Error(&file, s, std::move(msg));
    ok = false;
  };
  auto span_of = [](const ast::Tagged& t) { return Span{t.begin, t.end}; };
  for (const auto& in : parsed.tables) {
    Table t;
    t.file = &file;
    t.span = span_of(in);
    t.name = in.name.name;
    t.name_span = span_of(in.name);
    std::set<std::string> seen;
    for (const auto& c : in.clauses) {
      if (!seen.insert(c.keyword).second) {
        error(span_of(c), fmt::format("'{}' is given twice in table '{}'", c.keyword, t.name));
        continue;
      }
      if (c.keyword == "key") t.key = boost::get<ast::Path>(c.value).parts;
      if (c.keyword == "time") t.time = boost::get<ast::Path>(c.value).parts;
      if (c.keyword == "history") {
        const auto& w = boost::get<ast::Word>(c.value);
        auto d = ParseDuration(w.text);
        if (!d || *d <= 0) {
          error(span_of(w), fmt::format("bad duration '{}' for 'history': write a whole number followed by ms, s, "
                                        "m, h or d (for example 30d), at most {}",
                                        w.text, FormatDuration(kMaxDuration)));
        } else {
          t.history = *d;
        }
      }
    }
    if (t.key.empty()) error(t.name_span, fmt::format("table '{}' has no 'key' clause (the field of a record that is its key)", t.name));
    set->tables.push_back(std::move(t));
  }
  for (const auto& in : parsed.lists) {
    NamedList l;
    l.file = &file;
    l.name = in.name.name;
    l.name_span = span_of(in.name);
    l.items.kind = Expr::Kind::kList;
    l.items.span = span_of(in.items);
    l.items.text = l.name;
    if (in.items.items.size() > static_cast<size_t>(kMaxExprNodes)) {
      error(l.items.span, fmt::format("list '{}' has {} items; the limit is {} (keep long lists in a table)", l.name,
                                      in.items.items.size(), kMaxExprNodes));
    }
    for (const auto& item : in.items.items) {
      // Only literals: a list is data, not an expression of the event. A
      // literal comes as one chain per precedence level, each with no operator.
      const ast::Chain* chain = &item;
      while (chain->rest.empty()) {
        const auto* inner = boost::get<ast::x3::forward_ast<ast::Chain>>(&chain->first);
        if (inner == nullptr) break;
        chain = &inner->get();
      }
      const ast::Operand& o = chain->first;
      Expr v;
      v.span = span_of(item);
      if (!chain->rest.empty()) {
        error(v.span, "a list item must be a string or a number, not an expression");
      } else if (const auto* str = boost::get<ast::StringLit>(&o)) {
        v.kind = Expr::Kind::kString, v.text = str->value;
        if (str->value.size() > kMaxStringBytes) error(v.span, fmt::format("a string is {} bytes long; the limit is {}", str->value.size(), kMaxStringBytes));
      } else if (const auto* num = boost::get<ast::NumberLit>(&o)) {
        v.kind = Expr::Kind::kNumber, v.number = num->value;
      } else {
        error(v.span, "a list item must be a string or a number");
      }
      l.items.args.push_back(std::move(v));
    }
    set->lists.push_back(std::move(l));
  }
  return CheckCountersAndAggregates(file, parsed, set, diags) && ok;
}

bool CheckRules(const SourceFile& file, const std::vector<ast::Rule>& parsed, RuleSet* set,
                DiagnosticSink* diags) {
  bool ok = true;
  for (const auto& r : parsed) {
    RuleChecker checker(file, *set, diags);
    auto rule = checker.Check(r);
    if (!rule) {
      ok = false;
      continue;
    }
    set->rules.push_back(std::move(*rule));
  }
  return ok;
}

}  // namespace cepheus::dsl

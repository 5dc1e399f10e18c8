// The compiler: checked dsl::Rule -> Program.
//
// Names become step indices, field paths become FieldTable slots, event types
// become TypeTable ids, and each expression is flattened into a node vector in
// post-order (children before parents), so evaluation is a walk over indices.
// Aggregates over a bound name (sum(o.amount), o.country in a filter, ...)
// become AggSpecs that the matcher keeps up to date as events are bound, one
// per (step, field), shared by every expression that reads them.
#include <algorithm>

#include <fmt/format.h>

#include "cepheus/nfa/program.h"
#include "nfa/functions.h"

namespace cepheus::nfa {

int FieldTable::Intern(const std::vector<std::string>& path) {
  auto [it, fresh] = index_.emplace(path, static_cast<int>(paths_.size()));
  if (fresh) paths_.push_back(path);
  return it->second;
}

int32_t TypeTable::Intern(const std::string& type) {
  auto [it, fresh] = index_.emplace(type, static_cast<int32_t>(names_.size()));
  if (fresh) names_.push_back(type);
  return it->second;
}

int32_t TypeTable::Find(std::string_view type) const {
  auto it = index_.find(type);
  return it == index_.end() ? -1 : it->second;
}

namespace {

struct NameInfo {
  int step;
  bool counted;
};

class ExprCompiler {
 public:
  ExprCompiler(Program* prog, FieldTable* fields, std::vector<TableProgram>* tables,
               const std::map<std::string, NameInfo>* names)
      : prog_(prog), fields_(fields), tables_(tables), names_(names) {}

  Status Compile(const dsl::Expr& e, CompiledExpr* out) {
    out_ = out;
    out->root = Emit(e);
    if (total_nodes_ > kMaxNodesPerRule) {
      // Located like a checker's error: the file and the rule's first line.
      const dsl::Rule* r = prog_->rule;
      std::string where = "";
      if (r != nullptr && r->file != nullptr) {
        auto lc = r->file->Locate(r->span.begin);
        where = fmt::format("{}:{}:{}: ", r->file->name(), lc.line, lc.col);
      }
      return Status::LimitExceeded(fmt::format("{}rule '{}' compiles to more than {} expression nodes (its "
                                               "expressions together; split the rule)",
                                               where, prog_->name, kMaxNodesPerRule));
    }
    return Status::Ok();
  }

 private:
  int32_t Push(Node n) {
    ++total_nodes_;
    out_->nodes.push_back(std::move(n));
    return static_cast<int32_t>(out_->nodes.size() - 1);
  }

  int32_t AggIndex(int step, int slot, bool keep_values) {
    for (size_t i = 0; i < prog_->aggs.size(); ++i) {
      AggSpec& a = prog_->aggs[i];
      if (a.step == step && a.slot == slot) {
        a.keep_values |= keep_values;
        return static_cast<int32_t>(i);
      }
    }
    prog_->aggs.push_back({step, slot, keep_values});
    return static_cast<int32_t>(prog_->aggs.size() - 1);
  }

  Value Str(const std::string& s) {
    prog_->strings.push_back(std::make_unique<std::string>(s));
    return Value::String(*prog_->strings.back());
  }

  int32_t Emit(const dsl::Expr& e) {
    int32_t i = EmitNode(e);
    if (i >= 0 && out_->nodes[static_cast<size_t>(i)].span.end == 0) out_->nodes[static_cast<size_t>(i)].span = e.span;
    return i;
  }

  int32_t EmitNode(const dsl::Expr& e) {
    using K = dsl::Expr::Kind;
    Node n;
    switch (e.kind) {
      case K::kNumber: n.constant = Value::Number(e.number); return Push(n);
      case K::kString: n.constant = Str(e.text); return Push(n);
      case K::kBool: n.constant = Value::Bool(e.boolean); return Push(n);
      case K::kNull: return Push(n);
      case K::kList: {
        n.op = Op::kList;
        for (const auto& a : e.args) n.items.push_back(Emit(a));
        return Push(n);
      }
      case K::kPath: return EmitPath(e);
      case K::kCall: return EmitCall(e);
      case K::kLookup: {
        n.op = Op::kLookup;
        n.table = TableIndex(e.text);
        TableProgram& t = (*tables_)[static_cast<size_t>(n.table)];
        t.read = true;
        n.slot = t.fields.Intern(e.path);
        n.a = Emit(e.args[0]);
        return Push(n);
      }
      case K::kTable: return Push(n);  // only under `in`, compiled there
      case K::kCounter:
        n.op = Op::kCounter;
        n.counter = counters_ == nullptr ? -1 : CounterIndex(e.text);
        return Push(n);
      case K::kUnary:
        n.op = e.text == "not" ? Op::kNot : Op::kNeg;
        n.a = Emit(e.args[0]);
        return Push(n);
      case K::kBinary: {
        static const std::pair<const char*, Op> kOps[] = {
            {"and", Op::kAnd}, {"or", Op::kOr},   {"==", Op::kEq},    {"!=", Op::kNe},
            {"<", Op::kLt},    {"<=", Op::kLe},   {">", Op::kGt},     {">=", Op::kGe},
            {"in", Op::kIn},   {"not in", Op::kNotIn}, {"+", Op::kAdd}, {"-", Op::kSub},
            {"*", Op::kMul},   {"/", Op::kDiv},   {"%", Op::kMod}};
        for (auto& [s, op] : kOps) {
          if (e.text == s) n.op = op;
        }
        // `x == null` / `x != null` (either side) test for null; every other
        // comparison with a null operand is false (section 4.3).
        if (n.op == Op::kEq || n.op == Op::kNe) {
          int lit = e.args[1].kind == K::kNull ? 1 : e.args[0].kind == K::kNull ? 0 : -1;
          if (lit >= 0) {
            n.op = n.op == Op::kEq ? Op::kIsNull : Op::kIsNotNull;
            n.a = Emit(e.args[static_cast<size_t>(1 - lit)]);
            return Push(n);
          }
        }
        if ((n.op == Op::kIn || n.op == Op::kNotIn) && e.args[1].kind == K::kTable) {
          n.op = n.op == Op::kIn ? Op::kInTable : Op::kNotInTable;
          n.table = TableIndex(e.args[1].text);
          (*tables_)[static_cast<size_t>(n.table)].read = true;
          n.a = Emit(e.args[0]);
          return Push(n);
        }
        n.a = Emit(e.args[0]);
        n.b = Emit(e.args[1]);
        return Push(n);
      }
    }
    return Push(n);
  }

  int32_t EmitPath(const dsl::Expr& e) {
    Node n;
    auto it = names_->find(e.path[0]);
    if (it == names_->end()) {
      n.op = Op::kField;
      n.slot = fields_->Intern(e.path);
      return Push(n);
    }
    std::vector<std::string> rest(e.path.begin() + 1, e.path.end());
    n.step = it->second.step;
    n.slot = fields_->Intern(rest);
    if (it->second.counted) {
      n.op = Op::kBoundList;
      n.agg = AggIndex(n.step, n.slot, true);
    } else {
      n.op = Op::kBoundField;
    }
    return Push(n);
  }

  int32_t EmitCall(const dsl::Expr& e) {
    static const std::pair<const char*, Op> kFns[] = {
        {"sum", Op::kSum},   {"avg", Op::kAvg},     {"min", Op::kMin},     {"max", Op::kMax},
        {"distinct", Op::kDistinct}, {"first", Op::kFirst}, {"last", Op::kLast}, {"abs", Op::kAbs},
        {"lower", Op::kLower}, {"upper", Op::kUpper}, {"len", Op::kLen}};
    Node n;
    if (const dsl::ScalarFnInfo* info = dsl::FindScalarFn(e.text, e.args.size())) {
      n.op = Op::kScalar;
      n.fn = info->fn;
      for (size_t i = 0; i < e.args.size(); ++i) {
        n.items.push_back(Emit(e.args[i]));
        bool literal = info->max_args != dsl::kVariadic &&
                       (info->args[i] == dsl::ArgKind::kConstString || info->args[i] == dsl::ArgKind::kZone);
        if (literal) n.data = MakeFunctionData(info->fn, &e.args[i]);
      }
      return Push(n);
    }
    const dsl::Expr& arg = e.args[0];
    if (e.text == "count") {
      n.op = Op::kCount;
      n.step = names_->at(arg.path[0]).step;
      return Push(n);
    }
    for (auto& [s, op] : kFns) {
      if (e.text == s) n.op = op;
    }
    if (n.op == Op::kAbs || n.op == Op::kLower || n.op == Op::kUpper || n.op == Op::kLen) {
      n.a = Emit(arg);
      return Push(n);
    }
    const NameInfo& info = names_->at(arg.path[0]);
    std::vector<std::string> rest(arg.path.begin() + 1, arg.path.end());
    n.step = info.step;
    n.slot = fields_->Intern(rest);
    n.agg = AggIndex(n.step, n.slot, n.op == Op::kDistinct);
    return Push(n);
  }

  int32_t CounterIndex(const std::string& name) const {
    for (size_t i = 0; i < counters_->size(); ++i) {
      if ((*counters_)[i].name == name) return static_cast<int32_t>(i);
    }
    return -1;
  }

 public:
  const std::vector<dsl::Counter>* counters_ = nullptr;

 private:
  // A table's index by name (the checker has made sure it is declared).
  int32_t TableIndex(const std::string& name) const {
    for (size_t i = 0; i < tables_->size(); ++i) {
      if ((*tables_)[i].name == name) return static_cast<int32_t>(i);
    }
    return -1;
  }

  Program* prog_;
  FieldTable* fields_;
  std::vector<TableProgram>* tables_;
  const std::map<std::string, NameInfo>* names_;
  CompiledExpr* out_ = nullptr;
  size_t total_nodes_ = 0;
};

// A message template: its text, its expressions and their number formats.
Status CompileEmit(const std::vector<dsl::TemplatePart>& parts, ExprCompiler* ec, std::vector<EmitPart>* out) {
  for (const auto& part : parts) {
    EmitPart ep;
    ep.text = part.text;
    ep.key = part.key;
    ep.format = part.format;
    if (part.expr) {
      if (Status st = ec->Compile(*part.expr, &ep.expr); !st.ok()) return st;
    }
    out->push_back(std::move(ep));
  }
  return Status::Ok();
}

// True when no node under `i` reads a run (bound names, aggregates).
bool RunFree(const CompiledExpr& e, int32_t i) {
  if (i < 0) return true;
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.step >= 0 || n.agg >= 0) return false;
  for (int32_t it : n.items) {
    if (!RunFree(e, it)) return false;
  }
  return RunFree(e, n.a) && RunFree(e, n.b);
}

void Conjuncts(const CompiledExpr& e, int32_t i, std::vector<int32_t>* out) {
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.op == Op::kAnd) {
    Conjuncts(e, n.a, out);
    Conjuncts(e, n.b, out);
  } else {
    out->push_back(i);
  }
}

// `where` is monotone for kAll: built with `and` / `or` from comparisons of a
// number constant with count(), sum() or max() (that only grow as a run takes
// events; sum() only while the values are not negative, which the matcher
// checks as events come) or with min() (that only falls).
bool MonotoneWhere(const Program& p, const CompiledExpr& e, int32_t i, SuffixPlan* plan) {
  const Node& n = e.nodes[static_cast<size_t>(i)];
  if (n.op == Op::kAnd || n.op == Op::kOr) {
    return MonotoneWhere(p, e, n.a, plan) && MonotoneWhere(p, e, n.b, plan);
  }
  bool upward;  // the comparison holds for large values of the aggregate
  int32_t agg_node, const_node;
  switch (n.op) {
    case Op::kGt: case Op::kGe: upward = true, agg_node = n.a, const_node = n.b; break;
    case Op::kLt: case Op::kLe: upward = false, agg_node = n.a, const_node = n.b; break;
    default: return false;
  }
  if (e.nodes[static_cast<size_t>(agg_node)].op == Op::kConst) {
    std::swap(agg_node, const_node);
    upward = !upward;
  }
  const Node& c = e.nodes[static_cast<size_t>(const_node)];
  const Node& a = e.nodes[static_cast<size_t>(agg_node)];
  if (c.op != Op::kConst || c.constant.kind != Value::Kind::kNumber) return false;
  if (a.op == Op::kCount) return upward && a.step == 0;
  if (a.agg < 0 || p.aggs[static_cast<size_t>(a.agg)].step != 0) return false;
  auto add = [](std::vector<int32_t>* v, int32_t x) {
    if (std::find(v->begin(), v->end(), x) == v->end()) v->push_back(x);
  };
  if (a.op == Op::kSum && upward) {
    add(&plan->sum_aggs, a.agg);
    return true;
  }
  if ((a.op == Op::kMax && upward) || (a.op == Op::kMin && !upward)) {
    add(&plan->extreme_aggs, a.agg);
    return true;
  }
  return false;
}

SuffixPlan PlanSuffix(const Program& p) {
  SuffixPlan none, plan;
  if (p.skip != dsl::SkipPolicy::kPastLast || p.prefix != 0) return none;
  if (p.steps.size() >= 2 && p.steps.size() <= 32 && p.where.empty()) {
    for (const StepProgram& s : p.steps) {
      if (s.absent || s.min != 1 || s.max != 1 || s.arrow_in == dsl::Arrow::kStrict) return none;
      if (!s.filter.empty() && !RunFree(s.filter, s.filter.root)) return none;
    }
    plan.kind = SuffixPlan::Kind::kSequence;
    return plan;
  }
  if (p.steps.size() != 1) return none;
  const StepProgram& s = p.steps[0];
  if (s.absent || s.min < 1) return none;
  if (s.filter.empty() || RunFree(s.filter, s.filter.root)) {
    plan.kind = SuffixPlan::Kind::kAll;
    if (p.where.empty()) return plan;
    if (s.max != dsl::kUnbounded) return none;  // a full run refused by `where` would stop taking events
    return MonotoneWhere(p, p.where, p.where.root, &plan) ? plan : none;
  }
  if (!p.where.empty()) return none;
  std::vector<int32_t> conjuncts;
  Conjuncts(s.filter, s.filter.root, &conjuncts);
  for (int32_t c : conjuncts) {
    const Node& n = s.filter.nodes[static_cast<size_t>(c)];
    if (RunFree(s.filter, c)) {
      plan.filter_conjuncts.push_back(c);
      continue;
    }
    if (plan.distinct_slot >= 0 || n.op != Op::kNotIn) return none;
    const Node& x = s.filter.nodes[static_cast<size_t>(n.a)];
    const Node& list = s.filter.nodes[static_cast<size_t>(n.b)];
    if (x.op != Op::kField || list.op != Op::kBoundList || list.step != 0 || list.slot != x.slot) return none;
    plan.distinct_slot = x.slot;
  }
  plan.kind = SuffixPlan::Kind::kDistinct;
  return plan;
}

// Every declared table, with no field read yet (the lookups intern theirs).
// The Program that holds a counter's or an aggregate's expression storage.
std::unique_ptr<Program> Scratch(const std::string& name, const CompiledRuleSet& out) {
  auto p = std::make_unique<Program>();
  p->name = name;
  p->tables = &out.tables;
  return p;
}

// A counter's or an aggregate's events: types (interned) and filter.
Status CompileSource(const dsl::EventSource& in, CompiledRuleSet* out, Program* scratch, SourceProgram* sp) {
  sp->any_type = in.types.size() == 1 && in.types[0] == "any";
  if (!sp->any_type) {
    for (const auto& t : in.types) sp->type_ids.push_back(out->types.Intern(t));
  }
  if (!in.filter) return Status::Ok();
  std::map<std::string, NameInfo> none;
  ExprCompiler ec(scratch, &out->fields, &out->tables, &none);
  return ec.Compile(*in.filter, &sp->filter);
}

Status CompileCounters(const dsl::RuleSet& set, CompiledRuleSet* out) {
  for (const dsl::Counter& c : set.counters) {
    CounterProgram cp;
    cp.name = c.name;
    cp.counter = &c;
    cp.key_slot = out->fields.Intern(c.key);
    cp.fn = c.fn;
    cp.field_slot = c.field.empty() ? -1 : out->fields.Intern(c.field);
    cp.resolution = c.resolution;
    cp.buckets = c.buckets();
    cp.scratch = Scratch(c.name, *out);
    if (Status st = CompileSource(c.source, out, cp.scratch.get(), &cp.source); !st.ok()) return st;
    out->counters.push_back(std::move(cp));
  }
  return Status::Ok();
}

// previous_avg(x, n) / previous_max(x, n) become paths to fields of the
// synthetic event (filled in at the window's close).
void ReplacePrevious(dsl::Expr* e, AggregateProgram* ap) {
  if (e->kind == dsl::Expr::Kind::kCall && (e->text == "previous_avg" || e->text == "previous_max") &&
      e->args.size() == 2) {
    AggregateProgram::Previous p;
    p.max = e->text == "previous_max";
    p.field = 0;
    for (size_t i = 0; i < ap->compute.size(); ++i) {
      if (!e->args[0].path.empty() && ap->compute[i].name == e->args[0].path[0]) p.field = static_cast<int32_t>(i);
    }
    p.n = static_cast<int>(e->args[1].number);
    std::vector<std::string> path{"\x01previous", p.max ? "max" : "avg", std::to_string(p.field), std::to_string(p.n)};
    p.slot = ap->values.Intern(path);
    bool known = false;
    for (const auto& q : ap->previous) known |= q.slot == p.slot;
    if (!known) ap->previous.push_back(p);
    dsl::Expr path_expr;
    path_expr.kind = dsl::Expr::Kind::kPath;
    path_expr.span = e->span;
    path_expr.path = std::move(path);
    *e = std::move(path_expr);
    return;
  }
  for (auto& a : e->args) ReplacePrevious(&a, ap);
}

Status CompileAggregates(const dsl::RuleSet& set, CompiledRuleSet* out) {
  for (const dsl::Aggregate& a : set.aggregates) {
    AggregateProgram ap;
    ap.name = a.name;
    ap.aggregate = &a;
    ap.group_slot = out->fields.Intern(a.group);
    ap.size = a.size;
    ap.every = a.every;
    ap.scratch = Scratch(a.name, *out);
    if (Status st = CompileSource(a.source, out, ap.scratch.get(), &ap.source); !st.ok()) return st;
    for (const auto& c : a.compute) {
      ap.compute.push_back({c.name, c.fn, c.field.empty() ? -1 : out->fields.Intern(c.field)});
      ap.values.Intern({c.name});
    }
    ap.group_value_slot = ap.values.Intern({"group"});
    std::map<std::string, NameInfo> none;
    std::vector<TableProgram> no_tables;
    ExprCompiler ec(ap.scratch.get(), &ap.values, &no_tables, &none);
    if (a.alert_when) {
      dsl::Expr when = *a.alert_when;
      ReplacePrevious(&when, &ap);
      if (Status st = ec.Compile(when, &ap.alert_when); !st.ok()) return st;
    }
    if (Status st = CompileEmit(a.emit, &ec, &ap.emit); !st.ok()) return st;
    out->aggregates.push_back(std::move(ap));
  }
  return Status::Ok();
}

std::vector<TableProgram> TablePrograms(const dsl::RuleSet& set) {
  std::vector<TableProgram> out;
  for (const dsl::Table& t : set.tables) {
    TableProgram tp;
    tp.name = t.name;
    tp.key = t.key;
    tp.time = t.time;
    tp.history = t.history;
    out.push_back(std::move(tp));
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<const CompiledRuleSet>> Compile(std::shared_ptr<const dsl::RuleSet> set,
                                                       CompileOptions options) {
  auto out = std::make_shared<CompiledRuleSet>();
  out->source = set;
  out->tables = TablePrograms(*set);
  if (Status st = CompileCounters(*set, out.get()); !st.ok()) return st;
  for (const dsl::Rule& r : set->rules) {
    auto prog = std::make_unique<Program>();
    prog->name = r.name;
    prog->rule = &r;
    prog->tables = &out->tables, prog->counters = &out->counters;
    prog->key_slot = out->fields.Intern(r.key);
    prog->within = r.within;
    prog->skip = r.skip;
    prog->cooldown = r.cooldown.value_or(0);
    prog->limit = r.limit;
    prog->fingerprint = r.fingerprint;
    std::map<std::string, NameInfo> names;
    for (size_t i = 0; i < r.pattern.steps.size(); ++i) {
      const auto& s = r.pattern.steps[i];
      if (!s.name.empty()) names[s.name] = {static_cast<int>(i), s.counted};
    }
    ExprCompiler ec(prog.get(), &out->fields, &out->tables, &names);
    ec.counters_ = &set->counters;
    for (size_t i = 0; i < r.pattern.steps.size(); ++i) {
      const auto& s = r.pattern.steps[i];
      StepProgram sp;
      sp.absent = s.absent;
      sp.name = s.name;
      sp.types = s.types;
      sp.any_type = s.types.size() == 1 && s.types[0] == "any";
      if (!sp.any_type) {
        for (const auto& t : s.types) sp.type_ids.push_back(out->types.Intern(t));
      }
      sp.counted = s.counted;
      sp.min = s.min;
      sp.max = s.max;
      if (i > 0) sp.arrow_in = r.pattern.arrows[i - 1];
      if (s.filter) {
        Status st = ec.Compile(*s.filter, &sp.filter);
        if (!st.ok()) return st;
      }
      prog->needs_all_types |= sp.any_type || sp.arrow_in == dsl::Arrow::kStrict;
      prog->steps.push_back(std::move(sp));
    }
    prog->trailing_absent = prog->steps.back().absent;
    if (options.implicit_prefix && prog->steps.size() >= 2) {
      const StepProgram& s0 = prog->steps[0];
      const StepProgram& s1 = prog->steps[1];
      if (!s0.absent && s0.any_type && s0.filter.empty() && s0.min == s0.max && s0.min >= 1 &&
          s0.min <= kMaxPrefix && !s1.absent && s1.min >= 1 && s1.arrow_in == dsl::Arrow::kStrict) {
        prog->prefix = s0.min;
      }
    }
    if (r.where) {
      Status st = ec.Compile(*r.where, &prog->where);
      if (!st.ok()) return st;
    }
    if (options.shared_suffix) prog->suffix = PlanSuffix(*prog);
    if (Status st = CompileEmit(r.emit, &ec, &prog->emit); !st.ok()) return st;
    for (const auto& f : r.fields) {
      prog->fields.emplace_back(f.name, CompiledExpr{});
      if (Status st = ec.Compile(f.expr, &prog->fields.back().second); !st.ok()) return st;
    }
    out->programs.push_back(std::move(prog));
  }
  if (Status st = CompileAggregates(*set, out.get()); !st.ok()) return st;
  for (auto& prog : out->programs) {
    prog->relevant.assign(out->types.size(), false);
    for (const auto& s : prog->steps) {
      for (int32_t id : s.type_ids) prog->relevant[id] = true;
    }
  }
  return std::shared_ptr<const CompiledRuleSet>(std::move(out));
}

}  // namespace cepheus::nfa

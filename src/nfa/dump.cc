// Text and Graphviz renderings of a Program (`cepheus explain`).
//
// The text form lists states the way the matcher sees them: one state per
// step, its accepted types and filter (with slots resolved back to paths), its
// count bounds, the arrow into it, then the completion condition, the window
// and the policies. The dot form draws one node per step, an edge per arrow
// (dashed for "->", bold for "=>"), a self-loop for counted steps and a bypass
// edge around optional steps; absent steps are red octagons.
#include <algorithm>

#include <fmt/format.h>

#include "cepheus/dsl/parser.h"

#include "cepheus/common/json_writer.h"
#include "cepheus/dsl/rule.h"
#include "cepheus/nfa/program.h"

namespace cepheus::nfa {
namespace {

std::string Path(const FieldTable& f, int slot) { return fmt::format("{}", fmt::join(f.paths()[slot], ".")); }

std::string Expr(const Program& p, const FieldTable& f, const CompiledExpr& e, int32_t i) {
  const Node& n = e.nodes[i];
  auto step_name = [&](int s) { return p.steps[s].name; };
  auto bin = [&](const char* op) {
    return fmt::format("({} {} {})", Expr(p, f, e, n.a), op, Expr(p, f, e, n.b));
  };
  auto agg = [&](const char* fn) {
    return fmt::format("{}({}.{})", fn, step_name(n.step), Path(f, n.slot));
  };
  switch (n.op) {
    case Op::kConst:
      if (n.constant.kind == Value::Kind::kString) {
        std::string s;
        AppendJsonString(&s, n.constant.str());
        return s;
      }
      return ToText(n.constant);
    case Op::kList: {
      std::vector<std::string> items;
      for (int32_t it : n.items) items.push_back(Expr(p, f, e, it));
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
    case Op::kField: return fmt::format("event.{}", Path(f, n.slot));
    case Op::kBoundField: return fmt::format("{}.{}", step_name(n.step), Path(f, n.slot));
    case Op::kBoundList: return fmt::format("list({}.{})", step_name(n.step), Path(f, n.slot));
    case Op::kCount: return fmt::format("count({})", step_name(n.step));
    case Op::kSum: return agg("sum");
    case Op::kAvg: return agg("avg");
    case Op::kMin: return agg("min");
    case Op::kMax: return agg("max");
    case Op::kDistinct: return agg("distinct");
    case Op::kFirst: return agg("first");
    case Op::kLast: return agg("last");
    case Op::kAbs: return fmt::format("abs({})", Expr(p, f, e, n.a));
    case Op::kLower: return fmt::format("lower({})", Expr(p, f, e, n.a));
    case Op::kUpper: return fmt::format("upper({})", Expr(p, f, e, n.a));
    case Op::kLen: return fmt::format("len({})", Expr(p, f, e, n.a));
    case Op::kNot: return fmt::format("(not {})", Expr(p, f, e, n.a));
    case Op::kNeg: return fmt::format("(-{})", Expr(p, f, e, n.a));
    case Op::kAnd: return bin("and");
    case Op::kOr: return bin("or");
    case Op::kEq: return bin("==");
    case Op::kNe: return bin("!=");
    case Op::kLt: return bin("<");
    case Op::kLe: return bin("<=");
    case Op::kGt: return bin(">");
    case Op::kGe: return bin(">=");
    case Op::kIn: return bin("in");
    case Op::kNotIn: return bin("not in");
    case Op::kIsNull: return fmt::format("({} == null)", Expr(p, f, e, n.a));
    case Op::kIsNotNull: return fmt::format("({} != null)", Expr(p, f, e, n.a));
    case Op::kAdd: return bin("+");
    case Op::kSub: return bin("-");
    case Op::kMul: return bin("*");
    case Op::kDiv: return bin("/");
    case Op::kMod: return bin("%");
    case Op::kScalar: {
      std::vector<std::string> args;
      for (int32_t it : n.items) args.push_back(Expr(p, f, e, it));
      return fmt::format("{}({})", dsl::ScalarFnInfoOf(n.fn).name, fmt::join(args, ", "));
    }
    case Op::kLookup: {
      const TableProgram& t = (*p.tables)[static_cast<size_t>(n.table)];
      return fmt::format("{}[{}].{}", t.name, Expr(p, f, e, n.a), Path(t.fields, n.slot));
    }
    case Op::kInTable:
    case Op::kNotInTable:
      return fmt::format("({} {} table {})", Expr(p, f, e, n.a), n.op == Op::kInTable ? "in" : "not in",
                         (*p.tables)[static_cast<size_t>(n.table)].name);
    case Op::kCounter:
      return p.counters != nullptr && n.counter >= 0 ? (*p.counters)[static_cast<size_t>(n.counter)].name
                                                     : fmt::format("counter#{}", n.counter);
  }
  return "?";
}

// The names of the tables an expression reads, added to `out` once each.
void TablesOf(const Program& p, const CompiledExpr& e, std::vector<std::string>* out) {
  for (const Node& n : e.nodes) {
    if (n.table < 0) continue;
    const std::string& name = (*p.tables)[static_cast<size_t>(n.table)].name;
    if (std::find(out->begin(), out->end(), name) == out->end()) out->push_back(name);
  }
}

std::string ExprText(const Program& p, const FieldTable& f, const CompiledExpr& e) {
  return e.empty() ? "true" : Expr(p, f, e, e.root);
}

std::string Bounds(const StepProgram& s) {
  if (s.max == dsl::kUnbounded) return fmt::format("{}..inf", s.min);
  return s.min == s.max ? fmt::format("{}", s.min) : fmt::format("{}..{}", s.min, s.max);
}

std::string Types(const StepProgram& s) {
  return s.any_type ? "any" : fmt::format("{}", fmt::join(s.types, "|"));
}

std::string DotEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string DumpProgram(const Program& p, const FieldTable& f) {
  std::string out = fmt::format("program {} (key {}, within {}, skip {}, limit {}{})\n", p.name,
                                Path(f, p.key_slot), FormatDuration(p.within),
                                dsl::SkipPolicyName(p.skip), p.limit,
                                p.cooldown ? ", cooldown " + FormatDuration(p.cooldown) : "");
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const StepProgram& s = p.steps[i];
    std::string arrow = i == 0 ? "start" : s.arrow_in == dsl::Arrow::kStrict ? "=> strict" : "-> relaxed";
    out += fmt::format("  s{} {}{}{}: {} [{}] x{}  ({})\n", i, s.absent ? "absent " : "",
                       s.name.empty() ? "" : s.name, s.name.empty() ? "_" : "", Types(s),
                       ExprText(p, f, s.filter), s.absent ? "0" : Bounds(s), arrow);
  }
  out += fmt::format("  accept: {}\n", p.trailing_absent
                                           ? "when the window closes with no event of the absent step"
                                           : "when every step has its minimum and `where` holds");
  out += fmt::format("  where: {}\n", ExprText(p, f, p.where));
  for (const auto& [name, expr] : p.fields) out += fmt::format("  field {}: {}\n", name, ExprText(p, f, expr));
  // Which parts read which tables, and as of when (section 6.1).
  for (size_t i = 0; i < p.steps.size(); ++i) {
    std::vector<std::string> names;
    TablesOf(p, p.steps[i].filter, &names);
    if (!names.empty()) {
      out += fmt::format("  s{} reads tables: {} (as of the event tested)\n", i, fmt::join(names, ", "));
    }
  }
  std::vector<std::string> late_reads;
  TablesOf(p, p.where, &late_reads);
  for (const auto& part : p.emit) TablesOf(p, part.expr, &late_reads);
  for (const auto& field : p.fields) TablesOf(p, field.second, &late_reads);
  if (!late_reads.empty()) {
    out += fmt::format("  where/emit/fields read tables: {} (as of the match's last event, or an absence's deadline)\n",
                       fmt::join(late_reads, ", "));
  }
  for (size_t i = 0; i < p.aggs.size(); ++i) {
    const AggSpec& a = p.aggs[i];
    out += fmt::format("  agg{}: {}.{}{}\n", i, p.steps[a.step].name, Path(f, a.slot),
                       a.keep_values ? " (values kept)" : "");
  }
  out += fmt::format("  reads types: {}\n",
                     p.needs_all_types ? "all (strict arrow or 'any')" : [&] {
                       std::vector<std::string> t;
                       for (const auto& s : p.steps) t.insert(t.end(), s.types.begin(), s.types.end());
                       return fmt::format("{}", fmt::join(t, ", "));
                     }());
  switch (p.suffix.kind) {
    case SuffixPlan::Kind::kAll:
    case SuffixPlan::Kind::kDistinct:
      out += fmt::format(
          "  runs: one shared buffer of the key's events that fit s0 ({}); each event tests only the oldest "
          "run, O(1); the limit evicts the oldest buffered event\n",
          p.suffix.kind == SuffixPlan::Kind::kAll ? "every run takes each of them"
                                                  : "a run takes the first of each distinct value");
      break;
    case SuffixPlan::Kind::kSequence:
      out += "  runs: in blocks, one per step, in one buffer of the key's events that fit a step; an event moves "
             "whole blocks (one test per step), and the oldest run is the match; the limit evicts the oldest run\n";
      break;
    case SuffixPlan::Kind::kNone:
      out += fmt::format("  runs: one per partial match{}, each event advances every run of its key; at most {} "
                         "per key, the oldest evicted\n",
                         p.prefix > 0 ? fmt::format(" (those still in the any{{{}}} prefix kept implicitly)", p.prefix)
                                      : "",
                         p.limit);
      break;
  }
  return out;
}

std::string DumpProgramDot(const Program& p, const FieldTable& f) {
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
                                DotEscape(p.name));
  out += "  start [shape=point];\n";
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const StepProgram& s = p.steps[i];
    std::string label = fmt::format("{}{}{}", s.name.empty() ? "" : s.name + ": ", Types(s),
                                    s.absent ? "" : fmt::format(" x{}", Bounds(s)));
    if (!s.filter.empty()) label += "\\n[" + DotEscape(ExprText(p, f, s.filter)) + "]";
    out += fmt::format("  s{} [label=\"{}{}\"{}];\n", i, s.absent ? "absent " : "", label,
                       s.absent ? ", shape=octagon, color=red" : "");
    if (s.counted && (s.max == dsl::kUnbounded || s.max > 1)) {
      out += fmt::format("  s{} -> s{} [label=\"more\", style=dashed];\n", i, i);
    }
  }
  out += fmt::format("  accept [shape=doublecircle, label=\"{}\"];\n",
                     p.trailing_absent ? "window closes" : "match");
  out += "  start -> s0;\n";
  for (size_t i = 1; i < p.steps.size(); ++i) {
    bool strict = p.steps[i].arrow_in == dsl::Arrow::kStrict;
    out += fmt::format("  s{} -> s{} [{}];\n", i - 1, i, strict ? "style=bold, label=\"=>\"" : "label=\"->\"");
    if (!p.steps[i].absent && p.steps[i].min == 0 && i + 1 < p.steps.size()) {
      out += fmt::format("  s{} -> s{} [style=dotted, label=\"skip\"];\n", i - 1, i + 1);
    }
  }
  std::string where = p.where.empty() ? "" : DotEscape(ExprText(p, f, p.where));
  out += fmt::format("  s{} -> accept [label=\"{}\"];\n", p.steps.size() - 1,
                     where.empty() ? "" : "where " + where);
  out += "}\n";
  return out;
}

}  // namespace cepheus::nfa

namespace cepheus::nfa {

namespace {
std::string SourceText(const Program& scratch, const FieldTable& f, const SourceProgram& s,
                       const std::vector<std::string>& types) {
  std::string out = fmt::format("{}", fmt::join(types, "|"));
  if (!s.filter.empty()) out += fmt::format(" [{}]", ExprText(scratch, f, s.filter));  // event.x: the event's own field
  return out;
}
}  // namespace

std::string DumpCounter(const CounterProgram& c, const FieldTable& f) {
  const dsl::Counter& d = *c.counter;
  std::string out = fmt::format("counter {} (key {})\n", c.name, fmt::join(d.key, "."));
  out += fmt::format("  {} of {}{}\n", dsl::AggFnName(c.fn), SourceText(*c.scratch, f, c.source, d.source.types),
                     c.field_slot >= 0 ? "." + fmt::format("{}", fmt::join(d.field, ".")) : "");
  out += fmt::format("  over {} in {} buckets of {} (bucket = floor(ts / {}))\n", FormatDuration(d.over), c.buckets,
                     FormatDuration(c.resolution), FormatDuration(c.resolution));
  out += fmt::format("  state per key: at most {} buckets{}; O(1) per event whatever `over` (two-stack sliding "
                     "window)\n",
                     c.buckets + 1,
                     c.fn == dsl::AggFn::kDistinct ? fmt::format(", and up to {} distinct values", dsl::kMaxDistinctValues)
                                                   : std::string());
  return out;
}

std::string DumpAggregate(const AggregateProgram& a, const FieldTable& f) {
  const dsl::Aggregate& d = *a.aggregate;
  std::string out = fmt::format("aggregate {} (group by {})\n", a.name, fmt::join(d.group, "."));
  out += fmt::format("  from {}\n", SourceText(*a.scratch, f, a.source, d.source.types));
  out += d.hopping ? fmt::format("  window hopping {} every {}: windows [k*{}, k*{} + {})\n", FormatDuration(a.size),
                                 FormatDuration(a.every), FormatDuration(a.every), FormatDuration(a.every),
                                 FormatDuration(a.size))
                   : fmt::format("  window tumbling {}: windows [k*{}, (k+1)*{})\n", FormatDuration(a.size),
                                 FormatDuration(a.size), FormatDuration(a.size));
  std::vector<std::string> fields;
  for (size_t i = 0; i < a.compute.size(); ++i) {
    const auto& c = d.compute[i];
    fields.push_back(fmt::format("{} = {}({})", c.name, dsl::AggFnName(c.fn), fmt::join(c.field, ".")));
  }
  out += fmt::format("  compute {}\n", fmt::join(fields, ", "));
  if (d.alert_when) out += fmt::format("  alert when {}\n", dsl::DumpExpr(*d.alert_when));
  int64_t open = (a.size + a.every - 1) / a.every;
  out += fmt::format("  state per group: up to {} open window{} (more while the watermark lags){}\n", open,
                     open == 1 ? "" : "s",
                     d.history > 0 ? fmt::format(", and the results of its last {} windows for previous_*", d.history)
                                   : std::string());
  return out;
}

}  // namespace cepheus::nfa

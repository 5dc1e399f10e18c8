// Expression evaluation: a recursive walk over the flattened node vector.
//
// Semantics of section 4.3: a missing field is null; a comparison with null
// other than `== null` / `!= null` (a literal null, compiled to kIsNull /
// kIsNotNull) is false, `==` and `!=` included, as in SQL; a string never equals or orders against a
// number; arithmetic on anything but numbers is null; `and`/`or` treat only
// `true` as true and short-circuit. Aggregates read the run's AggState, which
// the matcher keeps current as events are bound.
#include "nfa/eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "cepheus/common/json_writer.h"
#include "nfa/functions.h"

namespace cepheus::nfa {

bool Equal(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kNull: return true;
    case Value::Kind::kBool: return a.boolean == b.boolean;
    case Value::Kind::kNumber: return a.number == b.number;
    case Value::Kind::kString:
      // Most strings compared here are short codes, held in the Values
      // themselves: one word compare, no other memory read.
      if (a.len != b.len) return false;
      if (a.len <= Value::kInline) return a.inline_word == b.inline_word;
      return a.chars[0] == b.chars[0] && std::memcmp(a.chars, b.chars, a.len) == 0;
    case Value::Kind::kList:
      if (a.len != b.len) return false;
      for (size_t i = 0; i < a.len; ++i) {
        if (!Equal(a.items[i], b.items[i])) return false;
      }
      return true;
  }
  return false;
}

std::string ToText(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull: return "null";
    case Value::Kind::kBool: return v.boolean ? "true" : "false";
    case Value::Kind::kNumber: return FormatNumber(v.number);
    case Value::Kind::kString: return std::string(v.str());
    case Value::Kind::kList: {
      std::string out;
      for (size_t i = 0; i < v.len; ++i) {
        if (i) out += ", ";
        out += ToText(v.items[i]);
      }
      return out;
    }
  }
  return "";
}

void AggState::Add(const Value& v, bool keep_values) {
  if (keep_values) {
    if (!v.is_null()) {
      bool seen = std::any_of(values.begin(), values.end(), [&](const Value& x) { return Equal(x, v); });
      if (!seen) ++distinct;
    }
    values.push_back(v);
  }
  if (first.is_null() && !v.is_null()) first = v;
  if (!v.is_null()) last = v;
  if (v.kind == Value::Kind::kNumber) {
    if (numbers == 0 || v.number < min.number) min = v;
    if (numbers == 0 || v.number > max.number) max = v;
    sum += v.number;
    ++numbers;
  } else if (v.kind == Value::Kind::kString) {
    if (min.is_null() || (min.kind == Value::Kind::kString && v.str() < min.str())) min = v;
    if (max.is_null() || (max.kind == Value::Kind::kString && v.str() > max.str())) max = v;
  }
}

namespace {

// -1, 0, 1, or 2 when the values do not order (null, mixed kinds).
int Compare(const Value& a, const Value& b) {
  if (a.kind == Value::Kind::kNumber && b.kind == Value::Kind::kNumber) {
    return a.number < b.number ? -1 : a.number > b.number ? 1 : 0;
  }
  if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kString) {
    return a.str() < b.str() ? -1 : a.str() > b.str() ? 1 : 0;
  }
  return 2;
}

bool Contains(const Value& list, const Value& v) {
  if (list.kind != Value::Kind::kList) return false;
  for (const Value& x : list.list()) {
    if (Equal(x, v)) return true;
  }
  return false;
}

class Evaluator {
 public:
  Evaluator(const CompiledExpr& e, const EvalContext& ctx) : e_(e), ctx_(ctx) {}

  // A node in a condition: the same answer as Eval(i).truthy(), without
  // boxing the booleans of `and`, `or`, `not` and the comparisons.
  bool Test(int32_t i) {
    const Node& n = e_.nodes[i];
    switch (n.op) {
      case Op::kAnd: return Test(n.a) && Test(n.b);
      case Op::kOr: return Test(n.a) || Test(n.b);
      case Op::kNot: return !Test(n.a);
      case Op::kEq: {
        Value a = Eval(n.a), b = Eval(n.b);
        return !a.is_null() && !b.is_null() && Equal(a, b);
      }
      case Op::kIsNull: return Eval(n.a).is_null();
      case Op::kIsNotNull: return !Eval(n.a).is_null();
      case Op::kLt: return Compare(Eval(n.a), Eval(n.b)) == -1;
      case Op::kGt: return Compare(Eval(n.a), Eval(n.b)) == 1;
      case Op::kLe: { int c = Compare(Eval(n.a), Eval(n.b)); return c == -1 || c == 0; }
      case Op::kGe: { int c = Compare(Eval(n.a), Eval(n.b)); return c == 1 || c == 0; }
      default: return Eval(i).truthy();
    }
  }

  Value Eval(int32_t i) {
    const Node& n = e_.nodes[i];
    switch (n.op) {
      case Op::kConst: return n.constant;
      case Op::kList: {
        // List literals are built once per evaluation into scratch storage.
        if (!lists_) lists_.emplace();
        lists_->emplace_back();
        auto& l = lists_->back();
        for (int32_t item : n.items) l.push_back(Eval(item));
        return Value::List(l);
      }
      case Op::kField:
        return ctx_.current != nullptr && n.slot < static_cast<int>(ctx_.current->fields.size())
                   ? ctx_.current->fields[n.slot]
                   : Value::Null();
      case Op::kBoundField: {
        const Event* first = ctx_.run == nullptr ? nullptr : ctx_.run->FirstAt(n.step);
        return first == nullptr ? Value::Null() : first->fields[n.slot];
      }
      case Op::kBoundList: {
        if (ctx_.run == nullptr || ctx_.run->aggs.empty()) return Value::List(kEmpty);
        return Value::List(ctx_.run->aggs[n.agg].values);
      }
      case Op::kCount:
        return Value::Number(ctx_.run == nullptr ? 0 : static_cast<double>(ctx_.run->CountAt(n.step)));
      case Op::kSum: case Op::kAvg: case Op::kMin: case Op::kMax:
      case Op::kDistinct: case Op::kFirst: case Op::kLast: {
        static const AggState kNone{};
        const AggState& a = ctx_.run == nullptr || ctx_.run->aggs.empty() ? kNone : ctx_.run->aggs[n.agg];
        switch (n.op) {
          case Op::kSum: return Value::Number(a.sum);
          case Op::kAvg: return a.numbers ? Value::Number(a.sum / a.numbers) : Value::Null();
          case Op::kMin: return a.min;
          case Op::kMax: return a.max;
          case Op::kDistinct: return Value::Number(static_cast<double>(a.distinct));
          case Op::kFirst: return a.first;
          default: return a.last;
        }
      }
      case Op::kAbs: {
        Value v = Eval(n.a);
        return v.kind == Value::Kind::kNumber ? Value::Number(std::fabs(v.number)) : Value::Null();
      }
      case Op::kLower: case Op::kUpper: {
        Value v = Eval(n.a);
        if (v.kind != Value::Kind::kString) return Value::Null();
        std::string s(v.str());
        for (char& c : s) {
          c = n.op == Op::kLower ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                                 : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        if (!strings_) strings_.emplace();
        strings_->push_back(std::move(s));
        return Value::String(strings_->back());
      }
      case Op::kLen: {
        Value v = Eval(n.a);
        if (v.kind == Value::Kind::kString) return Value::Number(static_cast<double>(v.str().size()));
        if (v.kind == Value::Kind::kList) return Value::Number(static_cast<double>(v.len));
        return Value::Null();
      }
      case Op::kNot: return Value::Bool(!Eval(n.a).truthy());
      case Op::kNeg: {
        Value v = Eval(n.a);
        return v.kind == Value::Kind::kNumber ? Value::Number(-v.number) : Value::Null();
      }
      case Op::kAnd: return Value::Bool(Eval(n.a).truthy() && Eval(n.b).truthy());
      case Op::kOr: return Value::Bool(Eval(n.a).truthy() || Eval(n.b).truthy());
      case Op::kEq: {
        Value a = Eval(n.a), b = Eval(n.b);
        return Value::Bool(!a.is_null() && !b.is_null() && Equal(a, b));
      }
      case Op::kNe: {
        Value a = Eval(n.a), b = Eval(n.b);
        // With null, or a string against a number: neither equal nor unequal.
        if (a.is_null() || b.is_null() || a.kind != b.kind) return Value::Bool(false);
        return Value::Bool(!Equal(a, b));
      }
      case Op::kIsNull: return Value::Bool(Eval(n.a).is_null());
      case Op::kIsNotNull: return Value::Bool(!Eval(n.a).is_null());
      case Op::kLt: { int c = Compare(Eval(n.a), Eval(n.b)); return Value::Bool(c == -1); }
      case Op::kLe: { int c = Compare(Eval(n.a), Eval(n.b)); return Value::Bool(c == -1 || c == 0); }
      case Op::kGt: { int c = Compare(Eval(n.a), Eval(n.b)); return Value::Bool(c == 1); }
      case Op::kGe: { int c = Compare(Eval(n.a), Eval(n.b)); return Value::Bool(c == 1 || c == 0); }
      case Op::kIn: {
        Value v = Eval(n.a);
        return Value::Bool(!v.is_null() && Contains(Eval(n.b), v));
      }
      case Op::kNotIn: {
        Value v = Eval(n.a);
        Value l = Eval(n.b);
        return Value::Bool(!v.is_null() && l.kind == Value::Kind::kList && !Contains(l, v));
      }
      case Op::kLookup: {
        const Event* rec = Record(n);
        return rec == nullptr ? Value::Null() : rec->fields[n.slot];
      }
      case Op::kInTable: case Op::kNotInTable: {
        // A null key looks up nothing, and both tests are then false.
        if (!ValueKeyText(Eval(n.a), &key_)) return Value::Bool(false);
        const Event* rec = ctx_.tables == nullptr ? nullptr : ctx_.tables->Find(n.table, key_, ctx_.at);
        return Value::Bool((rec != nullptr) == (n.op == Op::kInTable));
      }
      case Op::kCounter:
        return ctx_.counters == nullptr ? Value::Null() : ctx_.counters->Read(n.counter, ctx_.at);
      case Op::kAdd: case Op::kSub: case Op::kMul: case Op::kDiv: case Op::kMod: {
        Value a = Eval(n.a), b = Eval(n.b);
        if (a.kind != Value::Kind::kNumber || b.kind != Value::Kind::kNumber) return Value::Null();
        switch (n.op) {
          case Op::kAdd: return Value::Number(a.number + b.number);
          case Op::kSub: return Value::Number(a.number - b.number);
          case Op::kMul: return Value::Number(a.number * b.number);
          // The remainder has the sign of `a`, as in C, Java and SQL.
          case Op::kMod: return b.number == 0 ? Value::Null() : Value::Number(std::fmod(a.number, b.number));
          default: return b.number == 0 ? Value::Null() : Value::Number(a.number / b.number);
        }
      }
      case Op::kScalar: return Scalar(n);
    }
    return Value::Null();
  }

  // Why condition `i` is not true, in words: the false conjunct of an `and`
  // (the first), each side of an `or`, and for a comparison its text as
  // written in `file` and the values it compared: `country not in
  // o.country: "FR" not in ["FR", "DE"]`.
  std::string Explain(int32_t i, const SourceFile* file) {
    const Node& n = e_.nodes[static_cast<size_t>(i)];
    switch (n.op) {
      case Op::kAnd: return Test(n.a) ? Explain(n.b, file) : Explain(n.a, file);
      case Op::kOr: return fmt::format("neither side of `{}` holds: {}; {}", Source(n, file), Explain(n.a, file),
                                       Explain(n.b, file));
      case Op::kNot: return fmt::format("{}: {} is true", Source(n, file), Source(e_.nodes[static_cast<size_t>(n.a)], file));
      case Op::kEq: case Op::kNe: case Op::kLt: case Op::kLe: case Op::kGt: case Op::kGe: case Op::kIn: case Op::kNotIn: {
        static const char* kOps[] = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"};
        const char* op = kOps[static_cast<int>(n.op) - static_cast<int>(Op::kEq)];
        return fmt::format("{}: {} {} {}", Source(n, file), Show(Eval(n.a)), op, Show(Eval(n.b)));
      }
      case Op::kIsNull: case Op::kIsNotNull: case Op::kInTable: case Op::kNotInTable:
        return fmt::format("{}: {} is {}", Source(n, file), Source(e_.nodes[static_cast<size_t>(n.a)], file),
                           Show(Eval(n.a)));
      default: return fmt::format("{}: {}", Source(n, file), Show(Eval(i)));
    }
  }

 private:
  static std::string Source(const Node& n, const SourceFile* file) {
    if (file == nullptr || n.span.end <= n.span.begin || n.span.end > file->text().size()) return "(expression)";
    return std::string(file->text().substr(n.span.begin, n.span.end - n.span.begin));
  }
  static std::string Show(const Value& v) {
    std::string out;
    if (v.kind == Value::Kind::kString) {
      AppendJsonString(&out, v.str());
    } else if (v.kind == Value::Kind::kList) {
      out = "[";
      for (size_t i = 0; i < v.len; ++i) out += (i ? ", " : "") + Show(v.items[i]);
      out += "]";
    } else {
      out = ToText(v);
    }
    return out;
  }

  // A scalar function: if() and coalesce() evaluate only what they return;
  // the others take their arguments evaluated, on the stack (at most 4).
  Value Scalar(const Node& n) {
    if (n.fn == dsl::ScalarFn::kIf) return Test(n.items[0]) ? Eval(n.items[1]) : Eval(n.items[2]);
    if (n.fn == dsl::ScalarFn::kCoalesce) {
      for (int32_t item : n.items) {
        Value v = Eval(item);
        if (!v.is_null()) return v;
      }
      return Value::Null();
    }
    Value args[4];
    size_t k = std::min<size_t>(n.items.size(), 4);
    for (size_t i = 0; i < k; ++i) args[i] = Eval(n.items[i]);
    return CallScalar(n.fn, n.data.get(), std::span<const Value>(args, k));
  }

  // The record a lookup node reads, or null.
  const Event* Record(const Node& n) {
    if (!ValueKeyText(Eval(n.a), &key_) || ctx_.tables == nullptr) return nullptr;
    return ctx_.tables->Find(n.table, key_, ctx_.at);
  }

  static inline const std::vector<Value> kEmpty{};
  std::string key_;  // a lookup's key text (reused; short keys do not allocate)
  const CompiledExpr& e_;
  const EvalContext& ctx_;
  std::optional<std::deque<std::vector<Value>>> lists_;
  std::optional<std::deque<std::string>> strings_;  // made only by lower() and upper()  // made only when a list literal is met
};

}  // namespace

bool ValueKeyText(const Value& v, std::string* out) {
  switch (v.kind) {
    case Value::Kind::kString: out->assign(v.str()); return true;
    case Value::Kind::kNumber: *out = FormatNumber(v.number); return true;
    case Value::Kind::kBool: *out = v.boolean ? "true" : "false"; return true;
    default: return false;
  }
}

std::string ExplainFalse(const CompiledExpr& expr, const EvalContext& ctx, const SourceFile* file) {
  if (expr.empty()) return "";
  Evaluator ev(expr, ctx);
  return ev.Explain(expr.root, file);
}

std::string WhyNotFits(const Program& p, int step, const Event& e, const Run* run, const TableReader* tables,
                       const CounterReader* counters) {
  const StepProgram& s = p.steps[static_cast<size_t>(step)];
  std::string name = s.name.empty() ? fmt::format("step {}", step + 1) : s.name;
  bool type_ok = s.any_type || std::find(s.type_ids.begin(), s.type_ids.end(), e.type_id) != s.type_ids.end();
  if (!type_ok) {
    return fmt::format("{} takes {}, not {}", name, fmt::join(s.types, " | "), e.type);
  }
  EvalContext ctx{&e, run, tables, e.ts, counters};
  if (EvaluateCondition(s.filter, ctx)) return "";
  const SourceFile* file = p.rule != nullptr ? p.rule->file : nullptr;
  return fmt::format("{}'s filter is false: {}", name, ExplainFalse(s.filter, ctx, file));
}

bool EvaluateCondition(const CompiledExpr& expr, const EvalContext& ctx) {
  if (expr.empty()) return true;
  Evaluator ev(expr, ctx);
  return ev.Test(expr.root);
}

std::string EvaluateToText(const CompiledExpr& expr, const EvalContext& ctx, const NumberFormat* format) {
  Evaluator ev(expr, ctx);
  Value v = ev.Eval(expr.root);
  if (format == nullptr) return ToText(v);
  auto one = [&](const Value& x) { return x.kind == Value::Kind::kNumber ? FormatNumber(x.number, *format) : ToText(x); };
  if (v.kind != Value::Kind::kList) return one(v);
  std::string out;  // each number of a list in the format
  for (size_t i = 0; i < v.len; ++i) out += (i ? ", " : "") + one(v.items[i]);
  return out;
}

std::string EvaluateOnRun(const CompiledExpr& expr, const Run& run, const TableReader* tables, Millis at,
                          const CounterReader* counters, const NumberFormat* format) {
  return EvaluateToText(expr, EvalContext{nullptr, &run, tables, at, counters}, format);
}

}  // namespace cepheus::nfa

namespace cepheus::nfa {

bool EvaluateOnEvent(const CompiledExpr& expr, const Event& e, const TableReader* tables, Millis at) {
  return EvaluateCondition(expr, EvalContext{&e, nullptr, tables, at});
}

namespace {

void AppendJsonValue(const Value& v, std::string* out) {
  switch (v.kind) {
    case Value::Kind::kNull: out->append("null"); return;
    case Value::Kind::kBool: out->append(v.boolean ? "true" : "false"); return;
    case Value::Kind::kNumber: AppendJsonNumber(out, v.number); return;
    case Value::Kind::kString: AppendJsonString(out, v.str()); return;
    case Value::Kind::kList:
      out->push_back('[');
      for (size_t i = 0; i < v.len; ++i) {
        if (i) out->push_back(',');
        AppendJsonValue(v.items[i], out);
      }
      out->push_back(']');
      return;
  }
}

}  // namespace

void AppendJsonOnRun(const CompiledExpr& expr, const Run& run, const TableReader* tables, Millis at,
                     const CounterReader* counters, std::string* out) {
  EvalContext ctx{nullptr, &run, tables, at, counters};
  Evaluator ev(expr, ctx);
  AppendJsonValue(ev.Eval(expr.root), out);
}

std::string EvaluateTextOnEvent(const CompiledExpr& expr, const Event& e, Millis at, const NumberFormat* format) {
  return EvaluateToText(expr, EvalContext{&e, nullptr, nullptr, at}, format);
}

}  // namespace cepheus::nfa

// The text dump of checked rules (golden tests and `cepheus check --dump`).
//
// Expressions print fully parenthesised so precedence is visible; every other
// clause prints in a fixed order with defaults filled in.
#include <fmt/format.h>

#include "cepheus/dsl/parser.h"

namespace cepheus::dsl {

std::string DumpExpr(const Expr& e) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::kNumber: return fmt::format("{}", e.number);
    case K::kString: return fmt::format("\"{}\"", e.text);
    case K::kBool: return e.boolean ? "true" : "false";
    case K::kNull: return "null";
    case K::kPath: return fmt::format("{}", fmt::join(e.path, "."));
    case K::kList: {
      if (!e.text.empty()) return e.text;  // a named list
      std::vector<std::string> items;
      for (const auto& a : e.args) items.push_back(DumpExpr(a));
      return fmt::format("[{}]", fmt::join(items, ", "));
    }
    case K::kCall: {
      std::vector<std::string> items;
      for (const auto& a : e.args) items.push_back(DumpExpr(a));
      return fmt::format("{}({})", e.text, fmt::join(items, ", "));
    }
    case K::kUnary:
      return e.text == "not" ? fmt::format("(not {})", DumpExpr(e.args[0]))
                             : fmt::format("(-{})", DumpExpr(e.args[0]));
    case K::kBinary:
      return fmt::format("({} {} {})", DumpExpr(e.args[0]), e.text, DumpExpr(e.args[1]));
    case K::kLookup: return fmt::format("{}[{}].{}", e.text, DumpExpr(e.args[0]), fmt::join(e.path, "."));
    case K::kTable: return e.text;
    case K::kCounter: return e.text;
  }
  return "?";
}

namespace {

std::string DumpQuantifier(const Step& s) {
  if (!s.counted) return "";
  if (s.max == kUnbounded) return fmt::format("{{{},}}", s.min);
  if (s.min == s.max) return fmt::format("{{{}}}", s.min);
  return fmt::format("{{{},{}}}", s.min, s.max);
}

}  // namespace

std::string DumpRuleSet(const RuleSet& set) {
  std::string out;
  for (const auto& t : set.tables) {
    out += fmt::format("table {}\n  key {}\n", t.name, fmt::join(t.key, "."));
    if (!t.time.empty()) out += fmt::format("  time {}\n", fmt::join(t.time, "."));
    out += fmt::format("  history {}\n", FormatDuration(t.history));
  }
  for (const auto& l : set.lists) {
    std::vector<std::string> items;
    for (const auto& a : l.items.args) items.push_back(DumpExpr(a));
    out += fmt::format("list {} = [{}]\n", l.name, fmt::join(items, ", "));
  }
  for (const auto& r : set.rules) {
    out += fmt::format("rule {}\n", r.name);
    if (!r.description.empty()) out += fmt::format("  description \"{}\"\n", r.description);
    out += fmt::format("  severity {}\n", SeverityName(r.severity));
    out += fmt::format("  key {}\n", fmt::join(r.key, "."));
    out += "  match";
    for (size_t i = 0; i < r.pattern.steps.size(); ++i) {
      const Step& s = r.pattern.steps[i];
      if (i > 0) out += r.pattern.arrows[i - 1] == Arrow::kStrict ? " =>" : " ->";
      out += " ";
      if (s.absent) out += "absent ";
      if (!s.name.empty()) out += s.name + ": ";
      out += s.types.size() == 1 ? s.types[0] : fmt::format("({})", fmt::join(s.types, " | "));
      if (s.filter) out += fmt::format("[{}]", DumpExpr(*s.filter));
      out += DumpQuantifier(s);
    }
    out += "\n";
    if (r.where) out += fmt::format("  where {}\n", DumpExpr(*r.where));
    out += fmt::format("  within {}\n", FormatDuration(r.within));
    out += fmt::format("  skip {}\n", SkipPolicyName(r.skip));
    if (r.cooldown) out += fmt::format("  cooldown {}\n", FormatDuration(*r.cooldown));
    out += fmt::format("  limit {}\n", r.limit);
    if (!r.emit.empty()) {
      out += "  emit \"";
      for (const auto& p : r.emit) {
        if (p.key) out += "{key}";
        else if (p.expr && p.format) out += fmt::format("{{{}:{}{}{}}}", DumpExpr(*p.expr), p.format->grouping ? "," : "",
                                                        p.format->precision >= 0 ? fmt::format(".{}", p.format->precision) : "",
                                                        p.format->type ? std::string(1, p.format->type) : "");
        else if (p.expr) out += fmt::format("{{{}}}", DumpExpr(*p.expr));
        else out += p.text;
      }
      out += "\"\n";
    }
    if (!r.tags.empty()) out += fmt::format("  tags \"{}\"\n", fmt::join(r.tags, "\", \""));
    if (!r.fields.empty()) {
      std::vector<std::string> fields;
      for (const auto& f : r.fields) fields.push_back(fmt::format("{}: {}", f.name, DumpExpr(f.expr)));
      out += fmt::format("  fields {{ {} }}\n", fmt::join(fields, ", "));
    }
  }
  return out;
}

}  // namespace cepheus::dsl

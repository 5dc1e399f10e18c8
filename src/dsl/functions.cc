// The table of scalar functions: one row per function, read by the checker
// (arity and argument types) and the compiler (name to ScalarFn). A linear
// scan: the table is short and read once per call site at check time.
#include "cepheus/dsl/functions.h"

#include <cmath>

#include <absl/time/time.h>
#include <fmt/format.h>
#include <re2/re2.h>

#include "cepheus/dsl/rule.h"

namespace cepheus::dsl {
namespace {

using A = ArgKind;
using R = ResultKind;

const ScalarFnInfo kScalarFns[] = {
    {ScalarFn::kRound, "round", 1, 2, {A::kNumber, A::kConstInt}, R::kNumber, "round(x[, digits])"},
    {ScalarFn::kFloor, "floor", 1, 1, {A::kNumber}, R::kNumber, "floor(x)"},
    {ScalarFn::kCeil, "ceil", 1, 1, {A::kNumber}, R::kNumber, "ceil(x)"},
    {ScalarFn::kMin, "min", 2, 2, {A::kAny, A::kAny}, R::kAny, "min(a, b)"},
    {ScalarFn::kMax, "max", 2, 2, {A::kAny, A::kAny}, R::kAny, "max(a, b)"},
    {ScalarFn::kIf, "if", 3, 3, {A::kBool, A::kAny, A::kAny}, R::kSameAsBranches, "if(condition, a, b)"},
    {ScalarFn::kCoalesce, "coalesce", 2, kVariadic, {A::kAny}, R::kAny, "coalesce(a, b, ...)"},
    {ScalarFn::kStartsWith, "starts_with", 2, 2, {A::kString, A::kString}, R::kBool, "starts_with(s, prefix)"},
    {ScalarFn::kEndsWith, "ends_with", 2, 2, {A::kString, A::kString}, R::kBool, "ends_with(s, suffix)"},
    {ScalarFn::kContains, "contains", 2, 2, {A::kString, A::kString}, R::kBool, "contains(s, part)"},
    {ScalarFn::kMatches, "matches", 2, 2, {A::kString, A::kConstString}, R::kBool, "matches(s, \"regex\")"},
    {ScalarFn::kSubstr, "substr", 2, 3, {A::kString, A::kNumber, A::kNumber}, R::kString,
     "substr(s, start[, length])"},
    {ScalarFn::kSplitPart, "split_part", 3, 3, {A::kString, A::kString, A::kNumber}, R::kString,
     "split_part(s, delimiter, n)"},
    {ScalarFn::kHour, "hour", 1, 2, {A::kTime, A::kZone}, R::kNumber, "hour(time[, zone])"},
    {ScalarFn::kWeekday, "weekday", 1, 2, {A::kTime, A::kZone}, R::kNumber, "weekday(time[, zone])"},
    {ScalarFn::kGeoKm, "geo_km", 4, 4, {A::kNumber, A::kNumber, A::kNumber, A::kNumber}, R::kNumber,
     "geo_km(lat1, lon1, lat2, lon2)"},
};

}  // namespace

const ScalarFnInfo* FindScalarFn(std::string_view name, size_t args) {
  for (const auto& f : kScalarFns) {
    if (name != f.name) continue;
    if ((name == "min" || name == "max") && args == 1) return nullptr;  // the aggregates
    return &f;
  }
  return nullptr;
}

const ScalarFnInfo* FindScalarFnByName(std::string_view name) {
  for (const auto& f : kScalarFns) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

const ScalarFnInfo& ScalarFnInfoOf(ScalarFn fn) {
  for (const auto& f : kScalarFns) {
    if (f.fn == fn) return f;
  }
  return kScalarFns[0];
}

std::vector<std::string> ScalarFnNameList() {
  std::vector<std::string> out;
  for (const auto& f : kScalarFns) out.push_back(f.name);
  return out;
}

const char* ScalarFnNames() {
  return "round, floor, ceil, min(a, b), max(a, b), if, coalesce, starts_with, ends_with, contains, matches, "
         "substr, split_part, hour, weekday, geo_km";
}

std::optional<std::string> CheckConstArgument(const ScalarFnInfo& fn, size_t i, const Expr& arg) {
  ArgKind kind = fn.max_args == kVariadic ? fn.args[0] : fn.args[i];
  if (kind == ArgKind::kConstInt) {
    bool whole = arg.kind == Expr::Kind::kNumber && arg.number == std::trunc(arg.number);
    if (!whole || arg.number < 0 || arg.number > kMaxRoundDigits) {
      return fmt::format("{}()'s digits must be a whole number from 0 to {} written in the rule", fn.name,
                         kMaxRoundDigits);
    }
    return std::nullopt;
  }
  if (kind == ArgKind::kZone && arg.kind != Expr::Kind::kString) return std::nullopt;  // looked up at run time
  if (kind != ArgKind::kConstString && kind != ArgKind::kZone) return std::nullopt;
  if (arg.kind != Expr::Kind::kString) {
    return fmt::format("{}()'s argument {} must be a string written in the rule, so that it is checked once when "
                       "the rule is loaded ({})",
                       fn.name, i + 1, fn.signature);
  }
  if (fn.fn == ScalarFn::kMatches) {
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(arg.text, options);
    if (!re.ok()) return fmt::format("bad regular expression for matches(): {} (RE2 syntax)", re.error());
    return std::nullopt;
  }
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(arg.text, &zone)) {
    return fmt::format("unknown time zone \"{}\": write a name of the tz database such as \"Europe/Paris\", "
                       "\"America/New_York\" or \"UTC\"",
                       arg.text);
  }
  return std::nullopt;
}

}  // namespace cepheus::dsl

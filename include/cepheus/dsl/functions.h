// The scalar functions of the rule language beyond v1's abs, lower, upper and
// len: their names, their arguments and what they return. The checker types
// calls from this table; the compiler turns a call into one node that names
// the function (nfa::Op::kScalar), and src/nfa/functions.cc implements it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cepheus::dsl {

enum class ScalarFn : uint8_t {
  kRound, kFloor, kCeil, kMin, kMax,         // arithmetic (min and max with two arguments)
  kIf, kCoalesce,                            // conditionals
  kStartsWith, kEndsWith, kContains, kMatches, kSubstr, kSplitPart,  // strings
  kHour, kWeekday,                           // time, in a time zone
  kGeoKm,                                    // geography
};

// What an argument must be. kConstString and kConstInt must be written as a
// literal, so the checker can vet it once: a regular expression, a time zone,
// a number of digits.
// kZone: a time zone, checked once when written as a literal ("Europe/Paris"),
// looked up when the rule runs when it is an expression (a profile's zone).
enum class ArgKind : uint8_t { kNumber, kString, kBool, kAny, kTime, kConstString, kConstInt, kZone };
// What a call returns; kSameAsBranches: the type both branches of if() have.
enum class ResultKind : uint8_t { kNumber, kString, kBool, kAny, kSameAsBranches };

struct ScalarFnInfo {
  ScalarFn fn;
  const char* name;
  uint8_t min_args;
  uint8_t max_args;        // kVariadic: any number from min_args
  ArgKind args[4];         // by position; the last repeats for variadic calls
  ResultKind result;
  const char* signature;   // as the reference and error messages write it
};
inline constexpr uint8_t kVariadic = 255;
// The most arguments coalesce() takes (a limit, like the other limits of a rule).
inline constexpr size_t kMaxCoalesceArgs = 16;
// round()'s digits: 0 to this.
inline constexpr int kMaxRoundDigits = 15;

// The function of that name taking `args` arguments, or null. min and max
// name the aggregate functions with one argument, these with two.
const ScalarFnInfo* FindScalarFn(std::string_view name, size_t args);
// Any function of that name (for error messages about the argument count).
const ScalarFnInfo* FindScalarFnByName(std::string_view name);
const ScalarFnInfo& ScalarFnInfoOf(ScalarFn fn);
// "round, floor, ceil, ..." for the unknown-function message.
const char* ScalarFnNames();
// Every scalar function's name, for "did you mean" suggestions.
std::vector<std::string> ScalarFnNameList();

struct Expr;
// The problem with argument `i` of a call to `fn` that must be a literal (a
// regular expression RE2 compiles, a time zone of the tz database, round()'s
// digits), as a checker's message; nullopt when it is fine or not a literal
// argument.
std::optional<std::string> CheckConstArgument(const ScalarFnInfo& fn, size_t i, const Expr& arg);

}  // namespace cepheus::dsl

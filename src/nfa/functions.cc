// The scalar functions, one small case each, none allocating.
//
// Every function is total: an argument of the wrong kind (a missing field is
// null) gives null, or false for the predicates, as comparisons do (section
// 4.3), so missing data never fires a rule by accident. Strings are UTF-8 and
// substr() counts characters (code points), so a cut never splits one.
// matches() runs RE2 (linear time in the text, whatever the pattern: a rule
// cannot be made to backtrack) compiled once per call site; hour() and
// weekday() read the tz database through absl::TimeZone, loaded once.
// geo_km() is the haversine distance on a sphere of radius 6371 km.
#include "nfa/functions.h"

#include <cmath>

#include "cepheus/common/time.h"

namespace cepheus::nfa {
namespace {

using dsl::ScalarFn;
constexpr double kEarthRadiusKm = 6371.0;
constexpr double kPi = 3.14159265358979323846;

bool IsNumber(const Value& v) { return v.kind == Value::Kind::kNumber; }
bool IsString(const Value& v) { return v.kind == Value::Kind::kString; }
bool IsWhole(const Value& v) { return IsNumber(v) && std::isfinite(v.number) && v.number == std::trunc(v.number); }

// A part of a string value: a view into its storage, or held in the Value
// when short (the source then may be a Value that dies first).
Value Part(std::string_view s) { return Value::String(s); }

// The byte offset of character `n` (0-based) of UTF-8 `s`, or s.size().
size_t CharOffset(std::string_view s, int64_t n) {
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // a continuation byte
    if (n-- == 0) return i;
  }
  return s.size();
}

size_t CharCount(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// substr(s, start[, length]): start 1 is the first character, -1 the last.
Value Substr(std::span<const Value> a) {
  if (!IsString(a[0]) || !IsWhole(a[1]) || a[1].number == 0) return Value::Null();
  if (a.size() > 2 && (!IsWhole(a[2]) || a[2].number < 0)) return Value::Null();
  std::string_view s = a[0].str();
  int64_t chars = static_cast<int64_t>(CharCount(s));
  double start = a[1].number;
  int64_t from = start > 0 ? static_cast<int64_t>(std::min<double>(start, static_cast<double>(chars) + 1)) - 1
                           : std::max<int64_t>(0, chars + static_cast<int64_t>(std::max<double>(start, -1e15)));
  int64_t to = chars;
  if (a.size() > 2) to = std::min<int64_t>(chars, from + static_cast<int64_t>(std::min<double>(a[2].number, 1e15)));
  size_t b = CharOffset(s, from), e = CharOffset(s, to);
  return Part(s.substr(b, e - b));
}

// split_part(s, delimiter, n): the n-th part (1-based; -1 the last), "" past the end.
Value SplitPart(std::span<const Value> a) {
  if (!IsString(a[0]) || !IsString(a[1]) || a[1].len == 0 || !IsWhole(a[2]) || a[2].number == 0) {
    return Value::Null();
  }
  std::string_view s = a[0].str(), d = a[1].str();
  double n = a[2].number;
  if (n > 0) {
    size_t at = 0;
    for (double i = 1; i < n; ++i) {
      size_t next = s.find(d, at);
      if (next == std::string_view::npos) return Value::String("");
      at = next + d.size();
    }
    size_t end = s.find(d, at);
    return Part(s.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
  }
  size_t end = s.size();
  for (double i = -1; i > n; --i) {
    size_t prev = end < d.size() ? std::string_view::npos : s.rfind(d, end - d.size());
    if (prev == std::string_view::npos) return Value::String("");
    end = prev;
  }
  size_t prev = end < d.size() ? std::string_view::npos : s.rfind(d, end - d.size());
  size_t from = prev == std::string_view::npos ? 0 : prev + d.size();
  return Part(s.substr(from, end - from));
}

// A time argument: epoch milliseconds, or an RFC 3339 string.
bool TimeOf(const Value& v, Millis* out) {
  if (IsNumber(v)) {
    if (!std::isfinite(v.number) || std::fabs(v.number) > static_cast<double>(kMaxEventTime)) return false;
    *out = static_cast<Millis>(std::floor(v.number));
    return true;
  }
  if (IsString(v)) {
    auto t = ParseRfc3339(v.str());
    if (t) *out = *t;
    return t.has_value();
  }
  return false;
}

// The zone is the literal's (loaded once), or a zone name the rule read
// (looked up in absl's cache of loaded zones), or UTC when none is given.
Value HourOrWeekday(ScalarFn fn, const FunctionData* data, std::span<const Value> a) {
  Millis ms;
  if (!TimeOf(a[0], &ms)) return Value::Null();
  absl::TimeZone zone = absl::UTCTimeZone();
  if (data != nullptr) {
    zone = data->zone;
  } else if (a.size() > 1) {
    if (!IsString(a[1]) || !absl::LoadTimeZone(std::string(a[1].str()), &zone)) return Value::Null();
  }
  absl::CivilSecond cs = zone.At(absl::FromUnixMillis(ms)).cs;
  if (fn == ScalarFn::kHour) return Value::Number(cs.hour());
  // ISO 8601: Monday 1 ... Sunday 7.
  switch (absl::GetWeekday(absl::CivilDay(cs))) {
    case absl::Weekday::monday: return Value::Number(1);
    case absl::Weekday::tuesday: return Value::Number(2);
    case absl::Weekday::wednesday: return Value::Number(3);
    case absl::Weekday::thursday: return Value::Number(4);
    case absl::Weekday::friday: return Value::Number(5);
    case absl::Weekday::saturday: return Value::Number(6);
    case absl::Weekday::sunday: return Value::Number(7);
  }
  return Value::Null();
}

Value GeoKm(std::span<const Value> a) {
  for (const Value& v : a) {
    if (!IsNumber(v)) return Value::Null();
  }
  auto rad = [](double deg) { return deg * kPi / 180.0; };
  double lat1 = rad(a[0].number), lon1 = rad(a[1].number), lat2 = rad(a[2].number), lon2 = rad(a[3].number);
  double s1 = std::sin((lat2 - lat1) / 2), s2 = std::sin((lon2 - lon1) / 2);
  double h = s1 * s1 + std::cos(lat1) * std::cos(lat2) * s2 * s2;
  return Value::Number(2 * kEarthRadiusKm * std::asin(std::sqrt(std::min(1.0, h))));
}

Value Round(std::span<const Value> a) {
  if (!IsNumber(a[0])) return Value::Null();
  double digits = a.size() > 1 && IsNumber(a[1]) ? a[1].number : 0;
  double scale = std::pow(10.0, digits);
  double scaled = a[0].number * scale;
  if (!std::isfinite(scaled)) return a[0];  // too large to have digits to round
  return Value::Number(std::round(scaled) / scale);
}

// min(a, b) / max(a, b): two numbers or two strings; null otherwise.
Value Extreme(bool want_max, const Value& a, const Value& b) {
  if (IsNumber(a) && IsNumber(b)) return (a.number < b.number) == want_max ? b : a;
  if (IsString(a) && IsString(b)) return (a.str() < b.str()) == want_max ? b : a;
  return Value::Null();
}

Value StringTest(ScalarFn fn, const FunctionData* data, const Value& s, const Value& p) {
  if (!IsString(s)) return Value::Bool(false);
  if (fn == ScalarFn::kMatches) return Value::Bool(data != nullptr && RE2::PartialMatch(s.str(), *data->regex));
  if (!IsString(p)) return Value::Bool(false);
  std::string_view a = s.str(), b = p.str();
  switch (fn) {
    case ScalarFn::kStartsWith: return Value::Bool(a.starts_with(b));
    case ScalarFn::kEndsWith: return Value::Bool(a.ends_with(b));
    default: return Value::Bool(a.find(b) != std::string_view::npos);
  }
}

}  // namespace

std::shared_ptr<const FunctionData> MakeFunctionData(dsl::ScalarFn fn, const dsl::Expr* literal) {
  if (literal == nullptr || literal->kind != dsl::Expr::Kind::kString) return nullptr;
  auto data = std::make_shared<FunctionData>();
  if (fn == ScalarFn::kMatches) {
    RE2::Options options;
    options.set_log_errors(false);
    data->regex = std::make_unique<const re2::RE2>(literal->text, options);
    if (!data->regex->ok()) return nullptr;  // the checker refuses it first
  } else if (fn == ScalarFn::kHour || fn == ScalarFn::kWeekday) {
    if (!absl::LoadTimeZone(literal->text, &data->zone)) return nullptr;
  } else {
    return nullptr;
  }
  return data;
}

Value CallScalar(dsl::ScalarFn fn, const FunctionData* data, std::span<const Value> a) {
  switch (fn) {
    case ScalarFn::kRound: return Round(a);
    case ScalarFn::kFloor: return IsNumber(a[0]) ? Value::Number(std::floor(a[0].number)) : Value::Null();
    case ScalarFn::kCeil: return IsNumber(a[0]) ? Value::Number(std::ceil(a[0].number)) : Value::Null();
    case ScalarFn::kMin: return Extreme(false, a[0], a[1]);
    case ScalarFn::kMax: return Extreme(true, a[0], a[1]);
    case ScalarFn::kStartsWith: case ScalarFn::kEndsWith: case ScalarFn::kContains: case ScalarFn::kMatches:
      return StringTest(fn, data, a[0], a[1]);
    case ScalarFn::kSubstr: return Substr(a);
    case ScalarFn::kSplitPart: return SplitPart(a);
    case ScalarFn::kHour: case ScalarFn::kWeekday: return HourOrWeekday(fn, data, a);
    case ScalarFn::kGeoKm: return GeoKm(a);
    case ScalarFn::kIf: case ScalarFn::kCoalesce: break;  // lazy: in the evaluator
  }
  return Value::Null();
}

}  // namespace cepheus::nfa

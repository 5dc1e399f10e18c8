// Internal to the engine: JSON values (simdjson DOM) as rule values, shared
// by the event decoder and the table record decoder.
#pragma once

#include <cmath>
#include <string>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/status.h"
#include "cepheus/common/time.h"
#include "cepheus/nfa/value.h"

namespace cepheus::engine {

using nfa::Value;

// Scalar value of an element; strings longer than Value::kInline are
// returned as views into the parser and rebased by the caller (short ones are
// held in the Value).
inline Value Scalar(simdjson::dom::element el) {
  using simdjson::dom::element_type;
  switch (el.type()) {
    case element_type::STRING: return Value::String(std::string_view(el.get_string().value_unsafe()));
    case element_type::INT64: return Value::Number(static_cast<double>(el.get_int64().value_unsafe()));
    case element_type::UINT64: return Value::Number(static_cast<double>(el.get_uint64().value_unsafe()));
    case element_type::DOUBLE: return Value::Number(el.get_double().value_unsafe());
    case element_type::BOOL: return Value::Bool(el.get_bool().value_unsafe());
    default: return Value::Null();
  }
}

// The event time: integer epoch milliseconds (a whole double too) or an
// RFC 3339 string, within InEventTimeRange.
inline Result<Millis> EventTime(simdjson::dom::element ts_el, const std::string& name) {
  Millis ts;
  int64_t ts_i;
  uint64_t ts_u;
  double ts_d;
  std::string_view ts_s;
  if (!ts_el.get_int64().get(ts_i)) {
    ts = ts_i;
  } else if (!ts_el.get_uint64().get(ts_u)) {
    return Status::InvalidArgument(fmt::format("'{}' is out of range", name));
  } else if (!ts_el.get_double().get(ts_d) && std::isfinite(ts_d) && ts_d == std::floor(ts_d)) {
    // Range first: converting a double beyond int64 is undefined (found by
    // event_decoder_fuzz: "ts": 1e300).
    if (ts_d > static_cast<double>(kMaxEventTime) || ts_d < static_cast<double>(kMinEventTime)) {
      return Status::InvalidArgument(fmt::format("'{}' is out of range", name));
    }
    ts = static_cast<Millis>(ts_d);
  } else if (!ts_el.get_string().get(ts_s)) {
    auto t = ParseRfc3339(ts_s);
    if (!t) return Status::InvalidArgument(fmt::format("'{}' is not an RFC 3339 time: \"{}\"", name, ts_s));
    ts = *t;
  } else {
    return Status::InvalidArgument(
        fmt::format("'{}' is not an integer of epoch milliseconds or an RFC 3339 string", name));
  }
  if (!InEventTimeRange(ts)) return Status::InvalidArgument(fmt::format("'{}' is out of range", name));
  return ts;
}

}  // namespace cepheus::engine

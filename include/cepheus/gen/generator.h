// Synthetic e-commerce events for demos, tests and benchmarks (`cepheus gen`).
//
// Users are drawn from a Zipf distribution (a few users are very active, most
// are not). Each user has a home country and a card. Normal traffic: logins,
// logouts, orders (country, amount, category, order_id) and their payments,
// occasional refunds. Fraud incidents are planted at `fraud_rate` (the
// probability that a generated event starts an incident): multi-country
// order bursts, account takeover (login from a new country, password or
// payment-method change, large order), card testing (tiny payments then a
// large one), unpaid orders, spend velocity. Everything is a pure function of
// the options: the same seed gives the same bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cepheus/common/time.h"

namespace cepheus::gen {

struct GenOptions {
  int64_t users = 1000;
  int64_t events = 10000;
  uint64_t seed = 1;
  double fraud_rate = 0.01;
  double zipf = 1.1;  // skew of users: user N has weight N^-zipf
  Millis out_of_order = 0;           // emit some events up to this much late
  Millis start = 1700000000000;      // event time of the first event
  Millis mean_gap = 50;              // mean event-time gap between events
  // After each event, with this probability, one malformed record is emitted
  // too (truncated JSON, not an object, no type, a bad time, invalid UTF-8,
  // a NUL byte). The events themselves are the same as without it.
  double malformed_rate = 0;
  // When set and true, generation stops early (checked before each event).
  const std::atomic<bool>* stop = nullptr;
  // When set, called once per planted incident with one JSON object (no
  // newline): {"key": "u12" (the user; "c12", the card, for card testing),
  // "from": first event time, "to": last event time, "label": its kind}.
  // An incident cut short by the end of generation is labelled all the same.
  const std::function<void(std::string_view)>* labels = nullptr;
};

struct GenStats {
  int64_t events = 0;
  int64_t incidents = 0;  // fraud incidents planted
  int64_t malformed = 0;  // malformed records emitted (not counted in events)
};

// Calls `emit` once per event, with one JSON object (no newline), in emission
// order. Every event has "id" (e1, e2, ...), "type", "ts", "user_id",
// "card_id", "country" and type-specific fields.
GenStats GenerateEvents(const GenOptions& options, const std::function<void(std::string_view)>& emit);

// The home country of user N (its "country" when it acts from home), for
// reference data that agrees with the events (`cepheus demo`'s profiles).
std::string_view HomeCountryOf(int64_t user);
// The countries events come from.
size_t CountryCount();
std::string_view CountryAt(size_t i);

}  // namespace cepheus::gen

// The feed loop: records -> decoder -> engine, one place for every input.
//
// `replay`, rule tests, the benchmark and the daemon (one Pump per Kafka
// partition) all feed an engine through a Pump, so a record is decoded,
// checked and pushed the same way everywhere, and a refused record is
// reported the same way: to the caller's `on_refused` with its position and
// the reason (the dead-letter output in the daemon, a line on stderr in
// `replay`). Not thread-safe: one Pump per engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "cepheus/common/status.h"
#include "cepheus/engine/seams.h"

namespace cepheus::engine {

class Engine;
class EventDecoder;

struct PumpCounts {
  uint64_t records = 0;  // records fed (blank lines are not records)
  uint64_t events = 0;   // pushed into the engine
  uint64_t refused = 0;  // malformed, or refused by the check
};

class Pump {
 public:
  // A refused record: its bytes, its position and why.
  using RefusedFn = std::function<void(std::string_view payload, const nfa::Position& pos, const Status& why)>;
  // A check of a decoded event before it is pushed (the daemon refuses events
  // too far ahead of the wall clock); a non-OK Status refuses it.
  using CheckFn = std::function<Status(const nfa::Event& event)>;

  // `decoder` and `engine` are not owned and must outlive the pump.
  Pump(EventDecoder* decoder, Engine* engine, RefusedFn on_refused = nullptr, CheckFn check = nullptr);

  // One record: decoded, checked and pushed. Returns false when it was
  // refused (and reported). `padded`: kPayloadPadding readable bytes follow the
  // payload, so it is parsed in place.
  bool Feed(std::string_view payload, const nfa::Position& pos, bool padded);
  // Every non-blank line of `text` (cut at '\n'), whose position offset is
  // its 1-based line number. `text` must be followed by kPayloadPadding readable
  // bytes. `after_line`, when given, is called after each line with its number.
  void FeedLines(std::string_view text, const std::function<void(uint64_t line)>& after_line = nullptr);
  // Every record of a finite source. Stops at the first source error and
  // returns it. Does not finish the engine.
  Status Drain(EventSource* source);

  const PumpCounts& counts() const { return counts_; }

 private:
  EventDecoder* decoder_;
  Engine* engine_;
  RefusedFn on_refused_;
  CheckFn check_;
  PumpCounts counts_;
};

}  // namespace cepheus::engine

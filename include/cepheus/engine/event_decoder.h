// JSON events in, decoded nfa::Event out (simdjson DOM, behind the pointer).
//
// The decoder extracts the three fields with a fixed role (type, time, id;
// their names come from the configuration) and every field path the rule set
// reads (its FieldTable), once per event. A record that is not a JSON object
// or lacks a usable type or time is malformed: Decode returns an
// InvalidArgument Status whose message is the reason, for the dead-letter
// output. Not thread-safe: one decoder per thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/nfa/program.h"

namespace cepheus::engine {

struct EventFieldNames {
  std::string type = "type";
  std::string time = "ts";
  std::string id = "id";
};

// Largest accepted record; larger ones are malformed ("too large").
inline constexpr size_t kMaxEventBytes = 1 << 20;

class EventDecoder {
 public:
  EventDecoder(std::shared_ptr<const nfa::CompiledRuleSet> rules, EventFieldNames names);
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;
  ~EventDecoder();

  // Decodes one record. When `padded` is true the caller guarantees
  // kPayloadPadding (seams.h) readable bytes after raw.end(), which saves a
  // copy. Keeps `raw` verbatim (trailing whitespace trimmed) in Event::raw.
  Result<nfa::EventRef> Decode(std::string_view raw, const nfa::Position& pos, bool padded = false);

  const nfa::CompiledRuleSet& rules() const;
  // Records longer than this are malformed ("larger than N bytes");
  // kMaxEventBytes unless set.
  void set_max_bytes(size_t n);

 private:
  struct Impl;  // event.cc: the field trie and simdjson's parser
  std::unique_ptr<Impl> impl_;
};

// The key of an event for a rule: the field's string, or the JSON text of a
// number or boolean. Returns false when the field is missing, null, or a list.
bool KeyText(const nfa::Value& v, std::string* out);

}  // namespace cepheus::engine

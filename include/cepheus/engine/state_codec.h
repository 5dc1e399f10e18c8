// Byte encoding of engine state (the layout is in src/engine/STATE_FORMAT.md).
//
// A KeyRuns encodes to bytes that decode back to an identical KeyRuns: the
// same runs in the same order, bound to events with the same text, times,
// positions and sequence numbers, and the same aggregates (rebuilt by adding
// the bound values in the order they were bound, which gives the same bits).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/nfa/matcher.h"

namespace cepheus::engine {

inline constexpr uint8_t kStateFormatVersion = 2;

// The state of one rule for one key, as written into a key record.
struct RuleRuns {
  const nfa::Program* program;
  const nfa::KeyRuns* runs;
  // The rule's matcher, which writes runs held in a shared buffer
  // (KeyRuns::suffix) as Runs; null: one is made when needed.
  const nfa::Matcher* matcher = nullptr;
};

// The store key of a key's record: "engine/h/" and the 16 bytes of XXH3-128
// over the key field's path, a NUL and the key, so a key of any length fits
// LMDB's 511-byte limit. The record's value starts with the field's path and
// the key (two strings), then the key record. Into *out.
void StateKeyOf(std::string_view field, std::string_view key, std::string* out);
std::string StateKeyOf(std::string_view field, std::string_view key);

// A key record's stored value, split: the key field's path, the key, and the
// key record (for DecodeKeyRecord). Views into `value`; Corruption when the
// two strings do not parse.
struct StoredKey {
  std::string_view field;
  std::string_view key;
  std::string_view record;
};
Result<StoredKey> SplitStoredKey(std::string_view value);

// A key record: the state of the listed rules for one key, every distinct
// event once (rules of one key field often bind the same events). Appended to
// `out`.
void EncodeKeyRecord(const std::vector<RuleRuns>& rules, std::string* out);

// One rule's section of a key record.
struct StoredRule {
  std::string rule;          // the rule's name
  uint64_t fingerprint = 0;  // of the rule text it was written for
  uint64_t stored_runs = 0;  // partial matches in the section
  bool loaded = false;       // `runs` holds them (the rule exists, same text)
  nfa::KeyRuns runs;
};

// Decodes a key record. `program_of` names the rule a section is loaded
// into (null: the rule is gone); a section whose fingerprint differs from
// that program's is not loaded either: state is never read into a different
// automaton. Fails with Corruption on malformed bytes.
Result<std::vector<StoredRule>> DecodeKeyRecord(
    std::string_view bytes, EventDecoder* decoder,
    const std::function<const nfa::Program*(std::string_view rule)>& program_of);

// One rule's state from a key record (tests and tools). Fails with
// InvalidArgument when the bytes were written for another version of the
// rule, NotFound when the record holds no state of it.
Result<nfa::KeyRuns> DecodeKeyRuns(std::string_view bytes, const nfa::Program& p,
                                   EventDecoder* decoder);

// The number of partial matches in a record (every section), read without
// decoding its events (so it works for state of a rule that changed, and
// for records of format version 1); 0 when the bytes do not parse.
uint64_t CountStoredRuns(std::string_view bytes);

// Events alone (the reorder buffer).
void EncodeEvent(const nfa::Event& e, std::string* out);
Result<nfa::EventRef> DecodeEvent(std::string_view* in, EventDecoder* decoder);

}  // namespace cepheus::engine

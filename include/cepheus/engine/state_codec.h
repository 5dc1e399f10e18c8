// Byte encoding of engine state (the layout is in src/engine/STATE_FORMAT.md).
//
// A KeyRuns encodes to bytes that decode back to an identical KeyRuns: the
// same runs in the same order, bound to events with the same text, times,
// positions and sequence numbers, and the same aggregates (rebuilt by adding
// the bound values in the order they were bound, which gives the same bits).
#pragma once

#include <string>
#include <string_view>

#include "cepheus/common/status.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/nfa/matcher.h"

namespace cepheus::engine {

inline constexpr uint8_t kStateFormatVersion = 1;

std::string EncodeKeyRuns(const nfa::Program& p, const nfa::KeyRuns& k);
// The same bytes, appended to `out`.
void EncodeKeyRuns(const nfa::Program& p, const nfa::KeyRuns& k, std::string* out);

// Fails with Corruption on malformed bytes, and with InvalidArgument when the
// bytes were written for another version of the rule (fingerprint mismatch):
// state is never read into a different automaton.
Result<nfa::KeyRuns> DecodeKeyRuns(std::string_view bytes, const nfa::Program& p,
                                   EventDecoder* decoder);

// Events alone (the reorder buffer).
// The number of partial matches in an encoded KeyRuns, read without decoding
// its events (so it works for state of a rule that changed); 0 when the bytes
// do not parse.
uint64_t CountStoredRuns(std::string_view bytes);

void EncodeEvent(const nfa::Event& e, std::string* out);
Result<nfa::EventRef> DecodeEvent(std::string_view* in, EventDecoder* decoder);

}  // namespace cepheus::engine

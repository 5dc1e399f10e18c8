// Pump: decode, check, push; refused records reported with their reason.
// FeedLines cuts a padded text at '\n' and decodes each line where it lies
// (no copy: the padding after the text lets simdjson read past the last
// line's end), skipping blank lines; Drain pulls a source until its end.
#include "cepheus/engine/pump.h"

#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"

namespace cepheus::engine {

Pump::Pump(EventDecoder* decoder, Engine* engine, RefusedFn on_refused, CheckFn check)
    : decoder_(decoder), engine_(engine), on_refused_(std::move(on_refused)), check_(std::move(check)) {}

bool Pump::Feed(std::string_view payload, const nfa::Position& pos, bool padded) {
  ++counts_.records;
  auto ev = decoder_->Decode(payload, pos, padded);
  Status why = ev.ok() ? Status::Ok() : ev.status();
  if (why.ok() && check_) why = check_(*ev.value());
  if (!why.ok()) {
    ++counts_.refused;
    if (on_refused_) on_refused_(payload, pos, why);
    return false;
  }
  ++counts_.events;
  engine_->Push(std::move(ev).value());
  return true;
}

void Pump::FeedLines(std::string_view text, const std::function<void(uint64_t line)>& after_line) {
  nfa::Position pos;
  uint64_t line = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view payload = text.substr(at, nl - at);
    at = nl + 1;
    ++line;
    if (payload.find_first_not_of(" \t\r") != std::string_view::npos) {
      pos.offset = static_cast<int64_t>(line);
      Feed(payload, pos, /*padded=*/true);
    }
    if (after_line) after_line(line);
  }
}

Status Pump::Drain(EventSource* source) {
  for (;;) {
    auto next = source->Next();
    if (!next.ok()) return next.status();
    if (!next.value()) return Status::Ok();
    const RawRecord& r = *next.value();
    bool padded = r.payload.capacity() >= r.payload.size() + kPayloadPadding;
    Feed(r.payload, r.pos, padded);
  }
}

}  // namespace cepheus::engine

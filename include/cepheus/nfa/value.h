// Values and decoded events: what compiled programs read.
//
// An Event is decoded once (engine/event_decoder) into the fields the rule set
// uses, indexed by slot in the rule set's FieldTable. Long string values are
// views into the event's own storage, so an Event is never copied or moved
// after it is built: it lives behind an EventRef and is shared by every run that binds
// it.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include "cepheus/common/time.h"

namespace cepheus::nfa {

// 16 bytes: a kind, a length, and one word of payload. Lists are views (not
// owned). Strings of up to 8 bytes (country codes, types, short ids) are held
// in the payload itself, zero-padded, so comparing two of them reads no other
// memory; longer strings are views. A short string's str() is a view into the
// Value, valid only while that Value lives.
struct Value {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kList };
  static constexpr uint32_t kInline = 8;  // longest string held in the Value
  Kind kind = Kind::kNull;
  uint32_t len = 0;  // string or list length
  union {
    bool boolean;
    double number = 0;
    const char* chars;     // string longer than kInline
    char inline_chars[kInline];  // string of at most kInline bytes, zero-padded
    uint64_t inline_word;  // the same bytes as one word
    const Value* items;
  };

  static Value Null() { return {}; }
  static Value Bool(bool b) { Value v; v.kind = Kind::kBool, v.boolean = b; return v; }
  static Value Number(double d) { Value v; v.kind = Kind::kNumber, v.number = d; return v; }
  // Copies `s` when it is short; otherwise `s` must outlive the Value.
  static Value String(std::string_view s) {
    Value v;
    v.kind = Kind::kString, v.len = static_cast<uint32_t>(s.size());
    if (s.size() <= kInline) {
      v.inline_word = 0;
      if (!s.empty()) std::memcpy(v.inline_chars, s.data(), s.size());
    } else {
      v.chars = s.data();
    }
    return v;
  }
  // A view of `n` values at `p` (the storage must outlive the Value).
  static Value List(const Value* p, size_t n) {
    Value v;
    v.kind = Kind::kList, v.items = p, v.len = static_cast<uint32_t>(n);
    return v;
  }
  template <typename Container>
  static Value List(const Container& c) { return List(c.data(), c.size()); }

  bool is_null() const { return kind == Kind::kNull; }
  bool truthy() const { return kind == Kind::kBool && boolean; }
  // True for a string held in the Value itself.
  bool is_inline_string() const { return kind == Kind::kString && len <= kInline; }
  // REQUIRES: kind == kString
  std::string_view str() const { return {len <= kInline ? inline_chars : chars, len}; }
  // REQUIRES: kind == kList
  std::span<const Value> list() const { return {items, len}; }
};
static_assert(sizeof(Value) == 16);

// Equality as the rule language defines it: same kind and same value; a
// string never equals a number.
bool Equal(const Value& a, const Value& b);
// Text for alert messages: numbers in shortest form, lists as "a, b, c".
std::string ToText(const Value& v);
// The text of a value used as a key (a rule's key, a table's key): a string
// as it is, a number in its shortest form, true or false. False for null and
// lists, which are no key.
bool ValueKeyText(const Value& v, std::string* out);

// Where an event came from; its identity in alert ids.
struct Position {
  std::string topic;  // "" in replay
  int32_t partition = 0;
  int64_t offset = 0;  // Kafka offset, or 1-based line number in replay
};

// A Position as an Event keeps it: the topic's name in the Event's text (a
// std::string here took 32 bytes per event, and a heap block of its own for
// names longer than 15 characters, as re-keying topics' are).
struct EventPosition {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

// One allocation: the Event, then its field values, then its text (the raw
// record and the field strings longer than Value::kInline). What the matcher
// reads for every run that binds the event (count, type, time, order) comes
// first, in one cache line.
struct Event {
  uint32_t refs = 0;     // intrusive, non-atomic (see intrusive_ptr_release)
  int32_t type_id = -1;  // TypeTable id, -1 when no rule names the type
  Millis ts = 0;
  uint64_t arrival = 0;  // order of arrival at the engine
  uint64_t seq = 0;      // order of evaluation (event time, ties by arrival); set by the engine
  std::span<Value> fields;  // by FieldTable slot, stored after the Event
  std::string_view raw;     // the JSON object exactly as received (in the text)
  std::string_view type;    // in the text
  std::string_view id;      // in the text; "" when the event has none
  EventPosition pos;
  std::vector<std::vector<Value>> lists;  // storage for array field values (sized once)

  // A new Event with `n_fields` null fields and room for `text_bytes` of text.
  static Event* New(size_t n_fields, size_t text_bytes) {
    void* mem = ::operator new(sizeof(Event) + n_fields * sizeof(Value) + text_bytes);
    Event* e = new (mem) Event();
    Value* f = reinterpret_cast<Value*>(e + 1);
    for (size_t i = 0; i < n_fields; ++i) new (f + i) Value();
    e->fields = {f, n_fields};
    e->text_ = reinterpret_cast<char*>(f + n_fields);
    e->text_room_ = text_bytes;
    return e;
  }
  // Copies `s` into the Event's text and returns the copy.
  // REQUIRES: the room given to New is not exceeded.
  std::string_view Keep(std::string_view s) {
    char* at = text_ + text_used_;
    if (!s.empty()) std::memcpy(at, s.data(), s.size());
    text_used_ += s.size();
    return {at, s.size()};
  }

  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Intrusive, non-atomic reference count: an Event is shared by the runs of
  // one engine, which is driven from one thread.
  friend void intrusive_ptr_add_ref(Event* e) { ++e->refs; }
  friend void intrusive_ptr_release(Event* e) {
    if (--e->refs == 0) {
      e->~Event();  // Values are trivially destructible
      ::operator delete(e);
    }
  }

 private:
  Event() = default;
  char* text_ = nullptr;
  size_t text_room_ = 0;
  size_t text_used_ = 0;
};
static_assert(alignof(Event) % alignof(Value) == 0 && sizeof(Event) % alignof(Value) == 0);
static_assert(std::is_trivially_destructible_v<Value>);

using EventRef = boost::intrusive_ptr<Event>;

}  // namespace cepheus::nfa

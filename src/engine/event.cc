// Event decoding with simdjson's DOM parser.
//
// One parse per record into a reused parser (no allocation in the steady
// state), then one pass over the members that picks the type, time and id and,
// through a trie of the field paths the rule set reads, every slot. Strings of up to
// Value::kInline bytes are held in their Values; the sizes of the longer ones
// are gathered first, so the Event, its values and its text (the record, type,
// id and those strings) are one allocation whatever its number of fields
// (array fields add one). The time field reads as epoch milliseconds
// whatever its form in the record.
#include "cepheus/engine/event_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/json_writer.h"
#include "cepheus/engine/seams.h"
#include "engine/json_values.h"

namespace cepheus::engine {

static_assert(kPayloadPadding >= simdjson::SIMDJSON_PADDING, "record sources must leave simdjson's padding");

using nfa::Value;

// The decoder's insides, out of the public header so that it needs neither
// simdjson's headers nor its build flags.
struct EventDecoder::Impl {
  // The FieldTable as a trie over path segments, so one pass over an event's
  // members finds every slot (no lookup per path).
  struct Node {
    std::string name;
    int slot = -1;              // a path ends here
    std::vector<Node> children;
  };
  struct Pending {
    int slot;
    simdjson::dom::element el;
  };
  Impl(std::shared_ptr<const nfa::CompiledRuleSet> r, EventFieldNames n) : rules(std::move(r)), names(std::move(n)) {}
  Result<nfa::EventRef> Decode(std::string_view raw, const nfa::Position& pos, bool padded);
  void Collect(simdjson::dom::object obj, const std::vector<Impl::Node>& nodes);
  void Match(std::string_view key, simdjson::dom::element value, const std::vector<Impl::Node>& nodes);
  size_t PendingTextBytes(size_t* arrays) const;

  std::shared_ptr<const nfa::CompiledRuleSet> rules;
  EventFieldNames names;
  std::vector<Node> trie;
  simdjson::dom::parser parser;
  std::vector<Pending> pending;
  size_t max_bytes = kMaxEventBytes;
  int time_slot = -1;  // the slot of the time field itself: read as epoch milliseconds
};

EventDecoder::EventDecoder(std::shared_ptr<const nfa::CompiledRuleSet> rules, EventFieldNames names)
    : impl_(std::make_unique<Impl>(std::move(rules), std::move(names))) {
  const auto& paths = impl_->rules->fields.paths();
  for (size_t slot = 0; slot < paths.size(); ++slot) {
    std::vector<Impl::Node>* level = &impl_->trie;
    Impl::Node* node = nullptr;
    for (const auto& part : paths[slot]) {
      auto it = std::find_if(level->begin(), level->end(), [&](const Impl::Node& n) { return n.name == part; });
      if (it == level->end()) {
        level->push_back(Impl::Node{part, -1, {}});
        it = level->end() - 1;
      }
      node = &*it;
      level = &node->children;
    }
    if (node != nullptr) node->slot = static_cast<int>(slot);
    if (paths[slot].size() == 1 && paths[slot][0] == impl_->names.time) impl_->time_slot = static_cast<int>(slot);
  }
}

EventDecoder::~EventDecoder() = default;

const nfa::CompiledRuleSet& EventDecoder::rules() const { return *impl_->rules; }

void EventDecoder::set_max_bytes(size_t n) { impl_->max_bytes = n; }

Result<nfa::EventRef> EventDecoder::Decode(std::string_view raw, const nfa::Position& pos, bool padded) {
  return impl_->Decode(raw, pos, padded);
}

namespace {

// Member names are short and mostly differ in length or first byte: test
// those before comparing the bytes.
inline bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || (a[0] == b[0] && std::memcmp(a.data(), b.data(), a.size()) == 0));
}

}  // namespace

void EventDecoder::Impl::Match(std::string_view key, simdjson::dom::element value, const std::vector<Impl::Node>& nodes) {
  for (const Impl::Node& n : nodes) {
    if (!SameName(n.name, key)) continue;
    if (n.slot >= 0) pending.push_back({n.slot, value});
    simdjson::dom::object inner;
    if (!n.children.empty() && !value.get_object().get(inner)) Collect(inner, n.children);
    return;
  }
}

void EventDecoder::Impl::Collect(simdjson::dom::object obj, const std::vector<Impl::Node>& nodes) {
  for (auto field : obj) Match(field.key, field.value, nodes);
}

bool KeyText(const Value& v, std::string* out) { return nfa::ValueKeyText(v, out); }

namespace {

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

// The bytes of the gathered fields' strings that do not fit in a Value (the
// event keeps them in its text), and the number of arrays among them.
size_t EventDecoder::Impl::PendingTextBytes(size_t* arrays) const {
  size_t text_bytes = 0;
  for (const auto& p : pending) {
    if (p.el.is_string()) {
      size_t n = p.el.get_string().value_unsafe().size();
      if (n > Value::kInline) text_bytes += n;
    } else if (p.el.is_array()) {
      ++*arrays;
      simdjson::dom::array arr = p.el.get_array().value_unsafe();
      for (auto item : arr) {
        if (item.is_string()) {
          size_t n = item.get_string().value_unsafe().size();
          if (n > Value::kInline) text_bytes += n;
        }
      }
    }
  }
  return text_bytes;
}

Result<nfa::EventRef> EventDecoder::Impl::Decode(std::string_view raw, const nfa::Position& pos, bool padded) {
  raw = TrimRight(raw);
  if (raw.size() > max_bytes) return Status::InvalidArgument(fmt::format("event is larger than {} bytes", max_bytes));
  simdjson::dom::element root;
  auto err = parser.parse(raw.data(), raw.size(), !padded).get(root);
  if (err) return Status::InvalidArgument(fmt::format("not valid JSON: {}", simdjson::error_message(err)));
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) return Status::InvalidArgument("not a JSON object");

  // One pass over the members: the three roles (the first of a repeated
  // name, as at_key would find) and every field path the rules read (the
  // last of a repeated name wins, as in most parsers).
  pending.clear();
  simdjson::dom::element type_el, ts_el, id_el;
  bool has_type = false, has_ts = false, has_id = false;
  for (auto field : obj) {
    std::string_view key = field.key;
    if (!has_type && SameName(key, names.type)) {
      type_el = field.value;
      has_type = true;
    } else if (!has_ts && SameName(key, names.time)) {
      ts_el = field.value;
      has_ts = true;
    } else if (!has_id && SameName(key, names.id)) {
      id_el = field.value;
      has_id = true;
    }
    Match(key, field.value, trie);
  }
  if (!has_type) {
    return Status::InvalidArgument(fmt::format("no '{}' field (the event type)", names.type));
  }
  std::string_view type;
  if (type_el.get_string().get(type) || type.empty()) {
    return Status::InvalidArgument(fmt::format("'{}' is not a non-empty string", names.type));
  }
  if (!has_ts) {
    return Status::InvalidArgument(fmt::format("no '{}' field (the event time)", names.time));
  }
  auto time = EventTime(ts_el, names.time);
  if (!time.ok()) return time.status();
  const Millis ts = time.value();
  std::string_view id;
  std::string id_number;
  if (has_id && id_el.get_string().get(id) && id_el.is_number()) {  // a numeric id, as its JSON text
    id_number = simdjson::minify(id_el);
    id = id_number;
  }

  // Fields (gathered above): size the text, then build the Event (one
  // allocation) and the values with views into its text.
  size_t arrays = 0;
  size_t text_bytes = raw.size() + type.size() + id.size() + pos.topic.size() + PendingTextBytes(&arrays);
  nfa::EventRef ev(nfa::Event::New(rules->fields.size(), text_bytes));
  ev->ts = ts;
  ev->raw = ev->Keep(raw);
  ev->type = ev->Keep(type);
  ev->type_id = rules->types.Find(type);
  ev->id = ev->Keep(id);
  ev->lists.reserve(arrays);  // Values point at these vectors: no reallocation after this
  auto rebase = [&](Value v) {
    if (v.kind == Value::Kind::kString && !v.is_inline_string()) v.chars = ev->Keep(v.str()).data();
    return v;
  };
  for (const auto& p : pending) {
    if (p.el.is_array()) {
      ev->lists.emplace_back();
      simdjson::dom::array arr = p.el.get_array().value_unsafe();
      for (auto item : arr) ev->lists.back().push_back(rebase(Scalar(item)));
      ev->fields[p.slot] = Value::List(ev->lists.back());
    } else {
      ev->fields[p.slot] = rebase(Scalar(p.el));
    }
  }
  // Rules read the event time as a number (`b.ts - a.ts < 30s`), whether it
  // came as epoch milliseconds or as RFC 3339 text.
  if (time_slot >= 0) ev->fields[static_cast<size_t>(time_slot)] = Value::Number(static_cast<double>(ts));
  ev->pos = nfa::EventPosition{ev->Keep(pos.topic), pos.partition, pos.offset};
  return ev;
}

}  // namespace cepheus::engine

// `cepheus schema`: one pass over a sample of events (JSON lines), merging
// each event's fields into its type's inferred object: a field keeps the
// JSON kind it was seen with (number, string, bool, list, or an object,
// merged the same way, recursively); a field seen with two kinds becomes
// `any`, one only ever null stays `any`. The time field is `time`; the type
// and id fields are implicit and left out. Output is a rule file of `event`
// declarations (types sorted, fields in first-seen order) with, for a field
// not in every event of its type, how often it was there.
#include "cli/schema.h"

#include <iostream>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/file.h"

namespace cepheus::cli {
namespace {

struct Inferred {
  enum class Kind { kUnknown, kNumber, kString, kBool, kList, kObject, kAny };
  Kind kind = Kind::kUnknown;
  uint64_t seen = 0;  // objects that had it (null included)
  std::vector<std::pair<std::string, std::unique_ptr<Inferred>>> fields;  // kObject, first-seen order
  uint64_t objects = 0;  // kObject: how many were merged

  Inferred* Field(std::string_view name) {
    for (auto& [n, f] : fields) {
      if (n == name) return f.get();
    }
    fields.emplace_back(std::string(name), std::make_unique<Inferred>());
    return fields.back().second.get();
  }
};

constexpr int kMaxDepth = 16;  // nested objects past this are `any`

void Merge(Inferred* into, simdjson::dom::element v, int depth);

void MergeObject(Inferred* into, simdjson::dom::object obj, int depth, const std::vector<std::string>& skip) {
  ++into->objects;
  for (auto field : obj) {
    std::string_view name = field.key;
    bool role = false;
    for (const auto& s : skip) role = role || name == s;
    if (role) continue;
    Merge(into->Field(name), field.value, depth + 1);
  }
}

void Merge(Inferred* into, simdjson::dom::element v, int depth) {
  using K = Inferred::Kind;
  ++into->seen;
  K kind = v.is_null() ? K::kUnknown
           : v.is_number() ? K::kNumber
           : v.is_string() ? K::kString
           : v.is_bool()   ? K::kBool
           : v.is_array()  ? K::kList
                           : K::kObject;
  if (kind == K::kObject && depth >= kMaxDepth) kind = K::kAny;
  if (kind == K::kUnknown) return;
  if (into->kind != K::kUnknown && into->kind != kind) {
    into->kind = K::kAny;
    into->fields.clear();
    return;
  }
  if (into->kind == K::kAny) return;
  into->kind = kind;
  if (kind == K::kObject) MergeObject(into, v.get_object().value_unsafe(), depth, {});
}

const char* KindName(Inferred::Kind k) {
  switch (k) {
    case Inferred::Kind::kNumber: return "number";
    case Inferred::Kind::kString: return "string";
    case Inferred::Kind::kBool: return "bool";
    case Inferred::Kind::kList: return "list";
    default: return "any";
  }
}

// A name that can be written in a rule (`a_b1`); others are left out, with a note.
bool Writable(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

void Print(const Inferred& obj, const std::string& time_field, int indent, bool top, std::string* out) {
  std::vector<const std::pair<std::string, std::unique_ptr<Inferred>>*> shown;
  for (const auto& f : obj.fields) {
    if (Writable(f.first)) shown.push_back(&f);
    else *out += fmt::format("{:{}}# left out: '{}' (not a name a rule can write)\n", "", indent, f.first);
  }
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto& [name, f] = *shown[i];
    std::string comma = i + 1 < shown.size() ? "," : "";
    std::string note = f->seen < obj.objects ? fmt::format("  # in {} of {}", f->seen, obj.objects) : "";
    if (f->kind == Inferred::Kind::kObject) {
      *out += fmt::format("{:{}}{}: {{{}\n", "", indent, name, note);
      Print(*f, time_field, indent + 2, false, out);
      *out += fmt::format("{:{}}}}{}\n", "", indent, comma);
    } else {
      const char* type = top && name == time_field ? "time" : KindName(f->kind);
      *out += fmt::format("{:{}}{}: {}{}{}\n", "", indent, name, type, comma, note);
    }
  }
}

}  // namespace

int RunSchema(const SchemaOptions& o, std::ostream& out, std::ostream& err) {
  auto reader = LineReader::Open(o.events, o.max_event_bytes, simdjson::SIMDJSON_PADDING);
  if (!reader.ok()) {
    err << "cepheus: error: " << reader.status().message() << "\n";
    return 1;
  }
  simdjson::dom::parser parser;
  std::map<std::string, Inferred> types;
  uint64_t events = 0, skipped = 0;
  for (;;) {
    auto next = reader.value()->Next();
    if (!next.ok()) {
      err << "cepheus: error: " << next.status().message() << "\n";
      return 1;
    }
    if (!next.value()) break;
    const LineReader::Line& line = *next.value();
    if (!line.too_long && line.text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    simdjson::dom::object obj;
    std::string_view type;
    auto why = line.too_long ? "longer than the event size limit"
               : parser.parse(line.text.data(), line.text.size(), false).get(obj) ? "not a JSON object"
               : obj[o.type_field].get(type) || type.empty() ? "no event type"
                                                             : nullptr;
    if (why != nullptr) {
      if (++skipped <= 10) err << fmt::format("{}:{}: skipped: {}\n", o.events, line.number, why);
      continue;
    }
    ++events;
    MergeObject(&types[std::string(type)], obj, 0, {o.type_field, o.id_field});
  }
  if (events == 0) {
    err << fmt::format("cepheus: error: {} holds no event with a '{}' field\n", o.events, o.type_field);
    return 1;
  }
  std::string text = fmt::format(
      "# Inferred by `cepheus schema` from {} ({} events of {} types{}).\n"
      "# A field missing from an event reads as null; `any` was seen with several kinds, or only as null.\n",
      o.events, events, types.size(), skipped ? fmt::format(", {} lines skipped", skipped) : "");
  for (const auto& [name, obj] : types) {
    if (!Writable(name)) {
      text += fmt::format("\n# left out: event type '{}' (not a name a rule can write)\n", name);
      continue;
    }
    text += fmt::format("\nevent {} {{  # {} event{}\n", name, obj.objects, obj.objects == 1 ? "" : "s");
    Print(obj, o.time_field, 2, true, &text);
    text += "}\n";
  }
  out << text;
  return 0;
}

Command AddSchema(CLI::App& app) {
  auto o = std::make_shared<SchemaOptions>();
  CLI::App* sub = app.add_subcommand("schema", "Print event declarations inferred from a sample of events");
  sub->add_option("--events", o->events, "Events, one JSON object per line ('-' for standard input)")->required();
  sub->add_option("--type-field", o->type_field, "The field that holds the event type")->capture_default_str();
  sub->add_option("--time-field", o->time_field, "The field that holds the event time")->capture_default_str();
  return {sub, [o] { return RunSchema(*o, std::cout, std::cerr); }};
}

}  // namespace cepheus::cli

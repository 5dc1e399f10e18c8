// Event schemas: lowering `event` declarations, and resolving a field path
// against the declared types of the events it is read from. A path is looked
// up segment by segment in each declared type; the first segment a type does
// not declare is the error, with the closest declared name at that level as
// the suggestion. Types without a declaration keep v1's behaviour (any path,
// null when missing), so a team can declare its types one at a time.
#include "dsl/schema.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "cepheus/common/suggest.h"

namespace cepheus::dsl {

const char* FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "string";
    case FieldType::kNumber: return "number";
    case FieldType::kBool: return "bool";
    case FieldType::kTime: return "time";
    case FieldType::kList: return "list";
    case FieldType::kAny: return "any";
    case FieldType::kObject: return "object";
  }
  return "any";
}

namespace {

Span SpanOf(const ast::Tagged& t) { return {t.begin, t.end}; }

class SchemaLowering {
 public:
  SchemaLowering(const SourceFile& file, DiagnosticSink* diags) : file_(file), diags_(diags) {}

  bool ok() const { return ok_; }

  void Lower(const ast::SchemaObject& in, std::vector<FieldSchema>* out) {
    std::set<std::string> names;
    for (const auto& f : in.fields) {
      if (++count_ == kMaxSchemaFields + 1) {
        Error(SpanOf(f), fmt::format("more than {} fields in one event declaration", kMaxSchemaFields));
      }
      if (count_ > kMaxSchemaFields) return;
      FieldSchema fs;
      fs.name = f.name.name;
      fs.span = SpanOf(f.name);
      if (!names.insert(fs.name).second) Error(fs.span, fmt::format("field '{}' is declared twice", fs.name));
      if (const auto* word = boost::get<ast::Word>(&f.type)) {
        fs.type = TypeOfWord(*word);
      } else {
        fs.type = FieldType::kObject;
        Lower(boost::get<ast::x3::forward_ast<ast::SchemaObject>>(f.type).get(), &fs.fields);
      }
      out->push_back(std::move(fs));
    }
  }

 private:
  FieldType TypeOfWord(const ast::Word& w) {
    static const std::pair<const char*, FieldType> kWords[] = {
        {"string", FieldType::kString}, {"number", FieldType::kNumber}, {"bool", FieldType::kBool},
        {"time", FieldType::kTime},     {"list", FieldType::kList},     {"any", FieldType::kAny}};
    for (const auto& [name, type] : kWords) {
      if (w.text == name) return type;
    }
    auto close = Closest(w.text, {"string", "number", "bool", "time", "list", "any"});
    Error(SpanOf(w), fmt::format("unknown field type '{}'{} (string, number, bool, time, list, any, or {{ ... }} for "
                                 "an object)",
                                 w.text, close ? fmt::format(": did you mean '{}'?", *close) : ""));
    return FieldType::kAny;
  }

  void Error(Span s, std::string msg) {
    diags_->Error(&file_, s, std::move(msg));
    ok_ = false;
  }

  const SourceFile& file_;
  DiagnosticSink* diags_;
  bool ok_ = true;
  size_t count_ = 0;
};

// The role fields every event has (with the default names).
std::optional<FieldType> RoleField(const std::vector<std::string>& path) {
  if (path.size() != 1) return std::nullopt;
  if (path[0] == "type" || path[0] == "id") return FieldType::kString;
  if (path[0] == "ts") return FieldType::kNumber;  // the time field reads as epoch milliseconds
  return std::nullopt;
}

// `path` in one declared type.
PathCheck InType(const EventSchema& schema, const std::vector<std::string>& path) {
  PathCheck out;
  const std::vector<FieldSchema>* level = &schema.fields;
  for (size_t i = 0; i < path.size(); ++i) {
    auto it = std::find_if(level->begin(), level->end(), [&](const FieldSchema& f) { return f.name == path[i]; });
    if (it == level->end()) {
      std::vector<std::string> names;
      for (const auto& f : *level) names.push_back(f.name);
      auto close = Closest(path[i], names);
      std::string where = i == 0 ? fmt::format("event type '{}'", schema.name)
                                 : fmt::format("field '{}' of event type '{}'",
                                               fmt::join(path.begin(), path.begin() + static_cast<long>(i), "."),
                                               schema.name);
      out.kind = PathCheck::Kind::kMissing;
      out.segment = i;
      out.message = fmt::format("{} has no field '{}'{} (declared: {})", where, path[i],
                                close ? fmt::format(": did you mean '{}'?", *close) : "",
                                names.empty() ? "no field" : fmt::format("{}", fmt::join(names, ", ")));
      return out;
    }
    bool last = i + 1 == path.size();
    if (it->type == FieldType::kObject && !last) {
      level = &it->fields;
      continue;
    }
    out.kind = PathCheck::Kind::kDeclared;
    if (last) {
      out.type = it->type == FieldType::kTime && path.size() == 1 && path[0] == "ts" ? FieldType::kNumber : it->type;
      return out;
    }
    if (it->type == FieldType::kAny || it->type == FieldType::kList) return out;  // not declared further
    out.kind = PathCheck::Kind::kMissing;
    out.segment = i + 1;
    out.message = fmt::format("field '{}' of event type '{}' is a {}, so it has no field '{}'",
                              fmt::join(path.begin(), path.begin() + static_cast<long>(i) + 1, "."), schema.name,
                              FieldTypeName(it->type), path[i + 1]);
    return out;
  }
  return out;
}

}  // namespace

bool CheckEventDeclarations(const SourceFile& file, const std::vector<ast::EventDecl>& in, RuleSet* set,
                            DiagnosticSink* diags) {
  bool ok = true;
  for (const auto& decl : in) {
    EventSchema e;
    e.file = &file;
    e.span = SpanOf(decl);
    e.name = decl.name.name;
    e.name_span = SpanOf(decl.name);
    if (const EventSchema* before = set->FindEvent(e.name)) {
      auto at = before->file->Locate(before->name_span.begin);
      diags->Error(&file, e.name_span, fmt::format("event type '{}' is declared twice (first at {}:{})", e.name,
                                                   before->file->name(), at.line));
      ok = false;
      continue;
    }
    SchemaLowering lowering(file, diags);
    lowering.Lower(decl.body, &e.fields);
    ok = ok && lowering.ok();
    set->events.push_back(std::move(e));
  }
  return ok;
}

PathCheck CheckPath(const RuleSet& set, const std::vector<std::string>& types, const std::vector<std::string>& path) {
  PathCheck out;
  if (set.events.empty() || path.empty()) return out;
  bool all_declared = true;
  std::optional<FieldType> common;
  bool agree = true;
  for (const auto& t : types) {
    const EventSchema* schema = t == "any" ? nullptr : set.FindEvent(t);
    if (schema == nullptr) {
      all_declared = false;
      continue;
    }
    PathCheck one = InType(*schema, path);
    if (one.kind == PathCheck::Kind::kMissing) {
      if (auto role = RoleField(path)) one = PathCheck{PathCheck::Kind::kDeclared, *role, "", 0};
    }
    if (one.kind == PathCheck::Kind::kMissing) return one;
    if (common && *common != one.type) agree = false;
    common = one.type;
  }
  if (!common) return out;  // no declared type among them
  out.kind = PathCheck::Kind::kDeclared;
  out.type = all_declared && agree ? *common : FieldType::kAny;
  return out;
}

}  // namespace cepheus::dsl

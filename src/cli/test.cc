// `cepheus test`: rule test files in YAML.
//
// A test file names a rule set (relative to itself) and a list of cases; each
// case gives events (YAML maps, or JSON strings) and the alerts it expects,
// reduced to rule, key, reason and the ids of the bound events, compared as
// multisets (the same comparison as shared/examples/check.py). An event
// without an "id" gets "e1", "e2", ... by position.
//
//   rules: ../multi_country.rules
//   cases:
//     - name: three countries in two minutes alert once
//       out_of_order: 0s            # optional
//       events:
//         - {type: order, user_id: u1, ts: 0, country: FR}
//       expect:
//         - {rule: multi_country_orders, key: u1, events: {o: [e1, e2, e3]}}
//       late: [e4]                  # optional: ids expected to be late
//       aggregates:                 # optional: the window records expected, all of them
//         - {aggregate: sales, group: books, window_start: 0, total: 45}
//       tables:                     # optional: more records for this case
//         profiles: [{user_id: u1, country: DE, updated_at: 0}]
//   tables:                         # records of each table the rules read
//     profiles:
//       - {user_id: u1, country: FR}
//
// Table records (YAML maps, or JSON strings) are loaded before the events,
// the file's first and then the case's, in order. An expected window record
// names its aggregate, group and window_start, and any of the record's other
// fields to compare (numbers by value); with `aggregates:` given, a record
// published but not expected is a failure too.
#include "cli/test.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include "cepheus/common/file.h"
#include "cepheus/common/json_writer.h"
#include "cepheus/engine/replay.h"
#include "cepheus/daemon/rules_loader.h"
#include "cepheus/daemon/yaml_checks.h"
#include "cepheus/engine/tables.h"
#include "cli/tables.h"

namespace cepheus::cli {
namespace {

namespace fs = std::filesystem;

bool ParseDouble(const std::string& s, double* out) {
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

void ScalarToJson(const YAML::Node& n, std::string* out) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") {  // quoted in the YAML: always a string
    AppendJsonString(out, s);
    return;
  }
  if (s == "true" || s == "false") {
    *out += s;
    return;
  }
  if (s == "null" || s == "~" || s.empty()) {
    *out += "null";
    return;
  }
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  bool numeric = end == s.c_str() + s.size() && s.find_first_of("0123456789") != std::string::npos &&
                 s.find_first_not_of("0123456789+-.eE") == std::string::npos;
  if (numeric) {
    *out += s;
  } else {
    AppendJsonString(out, s);
  }
}

void NodeToJson(const YAML::Node& n, std::string* out) {
  if (n.IsMap()) {
    *out += '{';
    bool first = true;
    for (const auto& kv : n) {
      if (!first) *out += ',';
      first = false;
      AppendJsonString(out, kv.first.as<std::string>());
      *out += ':';
      NodeToJson(kv.second, out);
    }
    *out += '}';
  } else if (n.IsSequence()) {
    *out += '[';
    for (size_t i = 0; i < n.size(); ++i) {
      if (i) *out += ',';
      NodeToJson(n[i], out);
    }
    *out += ']';
  } else if (n.IsScalar()) {
    ScalarToJson(n, out);
  } else {
    *out += "null";
  }
}

// rule|key|reason|name=id,id;name=id
using Reduced = std::string;

Reduced Reduce(const std::string& rule, const std::string& key, const std::string& reason,
               std::map<std::string, std::vector<std::string>> events) {
  std::string out = rule + "|" + key + "|" + reason + "|";
  for (auto& [name, ids] : events) {
    if (ids.empty()) continue;
    out += name + "=" + fmt::format("{}", fmt::join(ids, ",")) + ";";
  }
  return out;
}

Reduced ReduceAlert(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element a = parser.parse(json);
  std::map<std::string, std::vector<std::string>> events;
  for (auto [name, list] : a["events"].get_object()) {
    auto& ids = events[std::string(name)];
    for (auto e : list.get_array()) {
      std::string_view id;
      if (!e["id"].get_string().get(id)) ids.emplace_back(id);
      else ids.push_back(simdjson::minify(e["id"]));
    }
  }
  return Reduce(std::string(a["rule"].get_string().value()), std::string(a["key"].get_string().value()),
                std::string(a["reason"].get_string().value()), events);
}

// Applies the records of a `tables:` section (a map of table name to a list
// of records) to `tables`; a record the table refuses is a problem.
void ApplyTableRecords(const YAML::Node& section, engine::Tables* tables, std::vector<std::string>* problems) {
  if (!section) return;
  for (const auto& kv : section) {
    std::string name = kv.first.as<std::string>();
    int32_t t = tables->Index(name);
    if (t < 0) throw std::runtime_error(fmt::format("no table '{}' is declared in the rules", name));
    int n = 0;
    for (const auto& rec : kv.second) {
      ++n;
      std::string json;
      if (rec.IsScalar()) json = rec.as<std::string>();
      else NodeToJson(rec, &json);
      simdjson::padded_string padded(json);
      if (Status st = tables->Apply(t, std::string_view(padded.data(), padded.size())); !st.ok()) {
        problems->push_back(fmt::format("record {} of table '{}' is refused: {}", n, name, st.message()));
      }
    }
  }
}

void CompareRecords(const YAML::Node& want, const std::vector<engine::AggregateRecord>& got,
                    std::vector<std::string>* problems);

Reduced ReduceExpected(const YAML::Node& x) {
  std::map<std::string, std::vector<std::string>> evs;
  if (x["events"]) {
    for (const auto& kv : x["events"]) {
      for (const auto& id : kv.second) evs[kv.first.as<std::string>()].push_back(id.as<std::string>());
    }
  }
  return Reduce(x["rule"].as<std::string>(), x["key"].as<std::string>(),
                x["reason"] ? x["reason"].as<std::string>() : "match", evs);
}

// An expected alert's `message` (the exact text) and `fields` (each one
// given, as a JSON value) against the alert it names, when there is one.
void CompareDetails(const YAML::Node& x, const std::map<Reduced, std::string>& got, std::vector<std::string>* problems) {
  if (!x["message"] && !x["fields"]) return;
  auto it = got.find(ReduceExpected(x));
  if (it == got.end()) return;  // reported as missing
  simdjson::dom::parser parser, want_parser;
  simdjson::dom::element a = parser.parse(it->second);
  if (x["message"]) {
    std::string_view message = a["message"].get_string().value();
    if (message != x["message"].as<std::string>()) {
      problems->push_back(fmt::format("alert {}: message \"{}\", expected \"{}\"", it->first, message,
                                      x["message"].as<std::string>()));
    }
  }
  if (!x["fields"]) return;
  for (const auto& kv : x["fields"]) {
    std::string name = kv.first.as<std::string>(), want_json;
    NodeToJson(kv.second, &want_json);
    simdjson::dom::element got_value;
    std::string got_text = a["fields"][name].get(got_value) ? "(none)" : simdjson::minify(got_value);
    std::string want_text = simdjson::minify(want_parser.parse(want_json).value());
    if (got_text != want_text) {
      problems->push_back(fmt::format("alert {}: field '{}' is {}, expected {}", it->first, name, got_text, want_text));
    }
  }
}

// Runs one case: its events (YAML maps, or JSON strings) through a fresh
// engine, with the file's tables and then the case's; returns what differs
// from its expected alerts and late events. Throws on a malformed case (the
// caller reports it).
std::vector<std::string> RunCase(const YAML::Node& c, const YAML::Node& file_tables, const std::string& default_ooo,
                                 const std::shared_ptr<const nfa::CompiledRuleSet>& rules,
                                 engine::CollectingSink* sink) {
  engine::EngineOptions options;
  auto ooo = ParseDuration(c["out_of_order"] ? c["out_of_order"].as<std::string>() : default_ooo);
  if (!ooo) throw std::runtime_error("out_of_order is not a duration");
  options.out_of_order = *ooo;
  std::string lines;
  int n = 0;
  for (const auto& e : c["events"]) {
    ++n;
    if (e.IsScalar()) {
      lines += e.as<std::string>();
    } else {
      YAML::Node ev = YAML::Clone(e);
      if (!ev["id"]) ev["id"] = fmt::format("e{}", n);
      NodeToJson(ev, &lines);
    }
    lines += '\n';
  }
  simdjson::padded_string input(lines);
  std::vector<std::string> problems;
  engine::Tables tables(rules, {});
  ApplyTableRecords(file_tables, &tables, &problems);
  ApplyTableRecords(c["tables"], &tables, &problems);
  engine::ReplayText(std::string_view(input.data(), input.size()), rules, options, engine::EventFieldNames{}, sink,
                     [&](uint64_t line, const std::string& why) {
                       problems.push_back(fmt::format("event {} is malformed: {}", line, why));
                     },
                     &tables);
  std::vector<Reduced> got, want;
  std::map<Reduced, std::string> got_json;
  for (const auto& a : sink->alerts) {
    got.push_back(ReduceAlert(a.json));
    got_json.emplace(got.back(), a.json);
  }
  for (const auto& x : c["expect"]) want.push_back(ReduceExpected(x));
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  std::vector<Reduced> missing, extra;
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  for (const auto& m : missing) problems.push_back("missing alert " + m);
  for (const auto& m : extra) problems.push_back("unexpected alert " + m);
  for (const auto& x : c["expect"]) CompareDetails(x, got_json, &problems);
  if (c["aggregates"]) CompareRecords(c["aggregates"], sink->records, &problems);
  if (c["late"]) {
    std::vector<std::string> want_late;
    for (const auto& id : c["late"]) want_late.push_back(id.as<std::string>());
    std::vector<std::string> got_late = sink->late;
    std::sort(want_late.begin(), want_late.end());
    std::sort(got_late.begin(), got_late.end());
    if (want_late != got_late) {
      problems.push_back(fmt::format("late events: expected [{}], got [{}]", fmt::join(want_late, ", "),
                                     fmt::join(got_late, ", ")));
    }
  }
  return problems;
}

// Expected window records against those published (see the top comment).
void CompareRecords(const YAML::Node& want, const std::vector<engine::AggregateRecord>& got,
                    std::vector<std::string>* problems) {
  std::vector<bool> matched(got.size(), false);
  simdjson::dom::parser parser;
  for (const auto& x : want) {
    std::string aggregate = x["aggregate"].as<std::string>(), group = x["group"].as<std::string>();
    Millis start = x["window_start"].as<Millis>();
    std::string name = fmt::format("{} {} window_start {}", aggregate, group, start);
    size_t i = 0;
    while (i < got.size() && (matched[i] || got[i].aggregate != aggregate || got[i].group != group ||
                              got[i].window_start != start)) {
      ++i;
    }
    if (i == got.size()) {
      problems->push_back("missing window record " + name);
      continue;
    }
    matched[i] = true;
    simdjson::padded_string json(got[i].json);
    simdjson::dom::element root = parser.parse(json);
    for (const auto& kv : x) {
      std::string field = kv.first.as<std::string>();
      if (field == "aggregate" || field == "group" || field == "window_start") continue;
      simdjson::dom::element v;
      std::string actual = root[field].get(v) == simdjson::SUCCESS ? simdjson::minify(v) : "(none)";
      std::string expected = kv.second.as<std::string>();
      double a = 0, e = 0;
      bool numbers = v.get_double().get(a) == simdjson::SUCCESS && kv.second.IsScalar() &&
                     ParseDouble(expected, &e);
      if (numbers ? a != e : actual != expected) {
        problems->push_back(fmt::format("window record {}: {} is {}, expected {}", name, field, actual, expected));
      }
    }
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (!matched[i]) problems->push_back("unexpected window record " + got[i].json);
  }
}

// Past this many nodes (aliases expanded) a test file is refused: a few
// nested anchors would otherwise expand to gigabytes of events.
constexpr size_t kMaxTestFileNodes = 2000000;

// The shape of a test file: no key twice, no unknown key (a typo such as
// `expectd:` would turn a failing case into a passing one), every case and
// expected alert a mapping, within the node budget.
Status CheckShape(const YAML::Node& doc, const std::string& file) {
  if (Status st = daemon::CheckYamlDocument(doc, file, kMaxTestFileNodes); !st.ok()) return st;
  if (Status st = daemon::CheckMapKeys(doc, file, "a test file", {"rules", "cases", "out_of_order", "tables"});
      !st.ok()) {
    return st;
  }
  if (!doc["cases"] || !doc["cases"].IsSequence()) return Status::Ok();  // reported by the caller
  for (const auto& c : doc["cases"]) {
    if (Status st =
            daemon::CheckMapKeys(c, file, "a case", {"name", "events", "expect", "late", "out_of_order", "tables", "aggregates"});
        !st.ok()) {
      return st;
    }
    for (const char* list : {"events", "expect", "late", "aggregates"}) {
      if (c[list] && !c[list].IsSequence() && !c[list].IsNull()) {
        return Status::InvalidArgument(fmt::format("{}:{}:{}: '{}' must be a list", file, c[list].Mark().line + 1,
                                                   c[list].Mark().column + 1, list));
      }
    }
    if (c["aggregates"] && c["aggregates"].IsSequence()) {
      for (const auto& x : c["aggregates"]) {
        if (!x.IsMap() || !x["aggregate"] || !x["group"] || !x["window_start"]) {
          return Status::InvalidArgument(fmt::format(
              "{}:{}: an expected window record is a mapping with aggregate, group and window_start", file,
              x.Mark().line + 1));
        }
      }
    }
    if (!c["expect"] || !c["expect"].IsSequence()) continue;
    for (const auto& x : c["expect"]) {
      if (Status st = daemon::CheckMapKeys(x, file, "an expected alert", {"rule", "key", "reason", "events", "message", "fields"});
          !st.ok()) {
        return st;
      }
    }
  }
  return Status::Ok();
}

// Every YAML access below may throw (a scalar where a map is wanted, a list
// where a string is): the callers catch at the file and at the case, so a
// malformed file is a failing file and a malformed case a failing case.
TestResult RunDocument(const YAML::Node& doc, const fs::path& file, const RulesLoader& load, bool verbose,
                       std::ostream& out) {
  TestResult r;
  std::vector<std::string> rule_paths;
  if (doc["rules"]) {
    auto add = [&](const std::string& p) { rule_paths.push_back((file.parent_path() / p).lexically_normal().string()); };
    if (doc["rules"].IsSequence()) {
      for (const auto& p : doc["rules"]) add(p.as<std::string>());
    } else {
      add(doc["rules"].as<std::string>());
    }
  }
  if (rule_paths.empty() || !doc["cases"] || !doc["cases"].IsSequence()) {
    out << fmt::format("FAIL {}: a test file needs 'rules' and a list of 'cases'\n", file.string());
    ++r.failed;
    return r;
  }
  std::string default_ooo = doc["out_of_order"] ? doc["out_of_order"].as<std::string>() : "0ms";
  auto rules = load(rule_paths, out);
  if (!rules) {
    out << fmt::format("FAIL {}: the rules do not check\n", file.string());
    ++r.failed;
    return r;
  }
  // Every table the rules read needs a `tables:` entry (an empty list is one).
  std::vector<std::string> given;
  if (doc["tables"] && doc["tables"].IsMap()) {
    for (const auto& kv : doc["tables"]) given.push_back(kv.first.as<std::string>());
  }
  if (Status st = CheckTableSources(*rules, given, "add `tables: {{{}: [...]}}` to the test file"); !st.ok()) {
    out << fmt::format("FAIL {}: {}\n", file.string(), st.message());
    ++r.failed;
    return r;
  }
  int index = 0;
  for (const auto& c : doc["cases"]) {
    ++index;
    std::string label = fmt::format("{}: case {}", file.filename().string(), index);
    try {
      if (c["name"]) label = fmt::format("{}: {}", file.filename().string(), c["name"].as<std::string>());
      engine::CollectingSink sink;
      std::vector<std::string> problems = RunCase(c, doc["tables"], default_ooo, rules, &sink);
      if (problems.empty()) {
        ++r.passed;
        out << fmt::format("PASS {}\n", label);
      } else {
        ++r.failed;
        out << fmt::format("FAIL {}\n", label);
        for (const auto& p : problems) out << "     " << p << "\n";
        if (verbose) {
          for (const auto& a : sink.alerts) out << "     alert: " << a.json << "\n";
        }
      }
    } catch (const std::exception& e) {
      ++r.failed;
      out << fmt::format("FAIL {}: bad case: {}\n", label, e.what());
    }
  }
  return r;
}

}  // namespace

TestResult RunTestDocument(const std::string& text, const std::string& path, const RulesLoader& load, bool verbose,
                           std::ostream& out) {
  const fs::path file(path);
  try {
    YAML::Node doc = YAML::Load(text);
    // A node budget after alias expansion bounds every walk below, the
    // events' conversion to JSON included.
    if (Status st = CheckShape(doc, path); !st.ok()) {
      out << fmt::format("FAIL {}\n", st.message());
      return {0, 1};
    }
    return RunDocument(doc, file, load, verbose, out);
  } catch (const std::exception& e) {
    out << fmt::format("FAIL {}: cannot read the test file: {}\n", path, e.what());
    return {0, 1};
  }
}

int RunTests(const std::vector<std::string>& paths, bool verbose) {
  std::vector<fs::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(p, ec)) {
        std::string n = e.path().filename().string();
        if (e.is_regular_file() && (n.ends_with(".test.yaml") || n.ends_with(".test.yml"))) found.push_back(e.path());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.emplace_back(p);
    } else {
      std::cerr << fmt::format("cepheus: error: {}: no such file or directory\n", p);
      return 2;
    }
  }
  int passed = 0, failed = 0;
  for (const auto& f : files) {
    std::string text;
    TestResult r;
    if (Status st = ReadWholeFile(f.string(), &text, 0, kMaxTestFileBytes); !st.ok()) {
      std::cout << fmt::format("FAIL {}: cannot read the test file: {}\n", f.string(), st.message());
      r.failed = 1;
    } else {
      r = RunTestDocument(text, f.string(), daemon::LoadAndCompile, verbose, std::cout);
    }
    passed += r.passed;
    failed += r.failed;
  }
  std::cout << fmt::format("{} passed, {} failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

Command AddTest(CLI::App& app) {
  struct Options {
    std::vector<std::string> paths;
    bool verbose = false;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("test", "Run rule test files (YAML)");
  sub->add_option("CASES", o->paths, "Test files or directories (*.test.yaml)")->required();
  sub->add_flag("-v,--verbose", o->verbose, "Print every alert of failing cases");
  return {sub, [o] { return RunTests(o->paths, o->verbose); }};
}

}  // namespace cepheus::cli

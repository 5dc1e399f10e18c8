// `cepheus backtest`: replay a rule set over history and measure its alerts.
//
// The events file is read once into memory and replayed through the engine
// (as `replay` does, to the end of input), and parsed once more for the
// population: its time span and, for each key field a rule uses, the keys
// that appear (the "active keys" a rate is per). Per rule: alerts, keys
// alerted, alerts per 1000 active keys per day (the rate over the file's
// span), and the time from a match's first event to its alert (p50, p90,
// max). With labels ({key, from, to, label}, one incident each), an alert is
// true when one incident has its key and overlaps it in event time
// ([first_ts, last_ts] meets [from, to]); precision = true alerts / alerts,
// recall = incidents with a true alert / incidents, per rule and for the set.
// With a baseline, both sets are replayed and their alerts compared by
// identity (rule, key, reason, bound event ids): gained and lost per rule,
// with examples. `--report` writes alerts per hour per rule as an SVG chart.
#include "cli/backtest.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/file.h"
#include "cepheus/common/json_writer.h"
#include "cepheus/common/time.h"
#include "cepheus/daemon/rules_loader.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/pump.h"
#include "cepheus/engine/seams.h"
#include "cepheus/engine/tables.h"
#include "cli/tables.h"

namespace cepheus::cli {
namespace {

struct AlertRow {
  std::string rule, key, reason, message, identity;
  Millis first = 0, last = 0, detected = 0;
};

struct Label {
  std::string key, label;
  Millis from = 0, to = 0;
};

// The events' time span and, per key path, the keys seen.
struct Population {
  uint64_t events = 0;
  Millis first = 0, last = 0;
  std::map<std::string, std::set<std::string>> keys;  // by path text ("user_id")
  double days() const { return std::max(1.0, static_cast<double>(last - first)) / static_cast<double>(kDay); }
};

AlertRow ParseAlert(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element a = parser.parse(json);
  AlertRow r;
  r.rule = std::string(a["rule"].get_string().value());
  r.key = std::string(a["key"].get_string().value());
  r.reason = std::string(a["reason"].get_string().value());
  r.message = std::string(a["message"].get_string().value());
  r.first = a["first_ts"].get_int64().value();
  r.last = a["last_ts"].get_int64().value();
  r.detected = a["detected_at"].get_int64().value();
  r.identity = r.rule + "|" + r.key + "|" + r.reason + "|";
  simdjson::dom::object events;
  if (!a["events"].get_object().get(events)) {
    for (auto [name, list] : events) {
      r.identity += std::string(name) + "=";
      for (auto e : list.get_array()) {
        std::string_view id;
        r.identity += (e["id"].get_string().get(id) ? simdjson::minify(e) : std::string(id)) + ",";
      }
      r.identity += ";";
    }
  }
  return r;
}

// Replays `text` (followed by kPayloadPadding bytes) through `rules`, whose
// lookups read the records of `--table`.
Result<std::vector<AlertRow>> Replay(const std::string_view text, const std::shared_ptr<const nfa::CompiledRuleSet>& rules,
                                     Millis out_of_order, const std::vector<std::string>& table_specs, std::ostream& err) {
  engine::EngineOptions options;
  options.out_of_order = out_of_order;
  engine::CollectingSink sink;
  engine::EventDecoder decoder(rules, {});
  engine::Tables tables(rules, {});
  if (Status st = LoadTableOptions(table_specs, *rules, &tables, err); !st.ok()) return st;
  engine::Engine eng(rules, options, &sink);
  eng.set_tables(&tables);
  engine::Pump pump(&decoder, &eng);
  pump.FeedLines(text);
  eng.Finish();
  std::vector<AlertRow> rows;
  for (const auto& a : sink.alerts) rows.push_back(ParseAlert(a.json));
  return rows;
}

std::string PathText(const std::vector<std::string>& path) { return fmt::format("{}", fmt::join(path, ".")); }

// The key path of each rule and aggregate, by name.
std::map<std::string, std::vector<std::string>> KeyPaths(const nfa::CompiledRuleSet& rules) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : rules.source->rules) out[r.name] = r.key;
  for (const auto& a : rules.source->aggregates) out[a.name] = a.group;
  return out;
}

Population Populate(std::string_view text, const std::map<std::string, std::vector<std::string>>& paths) {
  Population p;
  simdjson::dom::parser parser;
  std::set<std::vector<std::string>> wanted;
  for (const auto& [name, path] : paths) wanted.insert(path);
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, nl - at);
    at = nl + 1;
    simdjson::dom::element root;
    int64_t ts = 0;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos || parser.parse(line.data(), line.size()).get(root) ||
        !root.is_object() || root["ts"].get_int64().get(ts)) {
      continue;  // malformed, or a time as text: not counted in the span
    }
    p.first = p.events == 0 ? ts : std::min(p.first, ts);
    p.last = p.events == 0 ? ts : std::max(p.last, ts);
    ++p.events;
    for (const auto& path : wanted) {
      simdjson::dom::element v = root;
      bool found = true;
      for (const auto& part : path) found = found && !v[part].get(v);
      if (!found || v.is_null()) continue;
      std::string_view s;
      p.keys[PathText(path)].insert(v.get_string().get(s) ? simdjson::minify(v) : std::string(s));
    }
  }
  return p;
}

Result<std::vector<Label>> LoadLabels(const std::string& path) {
  std::string text;
  if (Status st = ReadWholeFile(path, &text, simdjson::SIMDJSON_PADDING); !st.ok()) return st;
  std::vector<Label> out;
  simdjson::dom::parser parser;
  size_t at = 0, line_no = 0;
  while (at < text.size()) {
    size_t nl = std::min(text.find('\n', at), text.size());
    std::string_view line(text.data() + at, nl - at);
    at = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    simdjson::dom::object obj;
    std::string_view key, label = "fraud";
    Label l;
    if (parser.parse(line.data(), line.size(), false).get(obj) || obj["key"].get_string().get(key) ||
        obj["from"].get_int64().get(l.from) || obj["to"].get_int64().get(l.to) || l.to < l.from) {
      return Status::InvalidArgument(fmt::format("{}:{}: a label is a JSON object with a string key and epoch "
                                                 "milliseconds from <= to",
                                                 path, line_no));
    }
    if (obj["label"].get_string().get(label)) label = "fraud";
    l.key = std::string(key);
    l.label = std::string(label);
    out.push_back(std::move(l));
  }
  return out;
}

Millis Percentile(std::vector<Millis> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

struct RuleStats {
  std::string rule;
  size_t alerts = 0, keys = 0, active = 0, true_alerts = 0, found = 0;
  double per_1000_per_day = 0;
  Millis p50 = 0, p90 = 0, max = 0;
  std::optional<double> precision, recall;
  std::map<std::string, size_t> found_by_label;  // incidents found, by their label
};

// Which labels an alert is true for: same key, overlapping in event time.
std::vector<size_t> Matching(const AlertRow& a, const std::multimap<std::string, size_t>& by_key,
                             const std::vector<Label>& labels) {
  std::vector<size_t> out;
  auto [lo, hi] = by_key.equal_range(a.key);
  for (auto it = lo; it != hi; ++it) {
    const Label& l = labels[it->second];
    if (a.first <= l.to && a.last >= l.from) out.push_back(it->second);
  }
  return out;
}

RuleStats Measure(const std::string& rule, const std::vector<const AlertRow*>& alerts, size_t active,
                  const Population& pop, const std::vector<Label>* labels) {
  RuleStats s;
  s.rule = rule;
  s.alerts = alerts.size();
  s.active = active;
  std::set<std::string> keys;
  std::vector<Millis> delays;
  std::multimap<std::string, size_t> by_key;
  if (labels != nullptr) {
    for (size_t i = 0; i < labels->size(); ++i) by_key.emplace((*labels)[i].key, i);
  }
  std::set<size_t> found;
  for (const AlertRow* a : alerts) {
    keys.insert(a->rule + "|" + a->key);
    delays.push_back(a->detected - a->first);
    if (labels == nullptr) continue;
    auto hits = Matching(*a, by_key, *labels);
    s.true_alerts += !hits.empty();
    found.insert(hits.begin(), hits.end());
  }
  s.keys = keys.size();
  s.per_1000_per_day = active == 0 ? 0 : static_cast<double>(s.alerts) / (static_cast<double>(active) / 1000.0) / pop.days();
  s.p50 = Percentile(delays, 0.5), s.p90 = Percentile(delays, 0.9), s.max = Percentile(delays, 1.0);
  if (labels != nullptr) {
    s.found = found.size();
    for (size_t i : found) ++s.found_by_label[(*labels)[i].label];
    if (s.alerts > 0) s.precision = static_cast<double>(s.true_alerts) / static_cast<double>(s.alerts);
    if (!labels->empty()) s.recall = static_cast<double>(s.found) / static_cast<double>(labels->size());
  }
  return s;
}

std::string Ratio(const std::optional<double>& r) { return r ? fmt::format("{:.3f}", *r) : "-"; }

// 850ms, 12.5s, 4m10s, 2h5m: to read at a glance, not to parse.
std::string Duration(Millis ms) {
  if (ms < 1000) return fmt::format("{}ms", std::max<Millis>(ms, 0));
  if (ms < 60000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000);
  if (ms < 3600000) return fmt::format("{}m{}s", ms / 60000, ms % 60000 / 1000);
  return fmt::format("{}h{}m", ms / 3600000, ms % 3600000 / 60000);
}

void PrintText(const std::vector<RuleStats>& rules, const RuleStats& all, const Population& pop,
               const std::vector<Label>* labels, std::ostream& out) {
  out << fmt::format("backtest: {} events over {:.2f} days ({} to {}), {} alerts\n", pop.events, pop.days(),
                     FormatRfc3339(pop.first), FormatRfc3339(pop.last), all.alerts);
  out << fmt::format("{:<28} {:>7} {:>6} {:>13} {:>30} {:>9} {:>7}\n", "rule", "alerts", "keys", "per 1k keys/d",
                     "first event to alert p50/p90/max", "precision", "recall");
  for (const RuleStats& s : rules) {
    out << fmt::format("{:<28} {:>7} {:>6} {:>13.2f} {:>30} {:>9} {:>7}\n", s.rule, s.alerts, s.keys, s.per_1000_per_day,
                       fmt::format("{} / {} / {}", Duration(s.p50), Duration(s.p90), Duration(s.max)),
                       Ratio(s.precision), Ratio(s.recall));
  }
  out << fmt::format("{:<28} {:>7} {:>6} {:>13} {:>30} {:>9} {:>7}\n", "all rules", all.alerts, all.keys, "",
                     fmt::format("{} / {} / {}", Duration(all.p50), Duration(all.p90), Duration(all.max)),
                     Ratio(all.precision), Ratio(all.recall));
  if (labels == nullptr) return;
  std::map<std::string, size_t> kinds;
  for (const Label& l : *labels) ++kinds[l.label];
  std::vector<std::string> parts;
  for (const auto& [k, n] : kinds) parts.push_back(fmt::format("{} {}", k, n));
  out << fmt::format("labels: {} incidents ({}); {} found by some rule, {} alerts true of {}\n", labels->size(),
                     fmt::join(parts, ", "), all.found, all.true_alerts, all.alerts);
  out << "incidents found, by label:\n";
  for (const RuleStats& s : rules) {
    if (s.found == 0) continue;
    std::vector<std::string> found;
    for (const auto& [k, n] : s.found_by_label) found.push_back(fmt::format("{} {}/{}", k, n, kinds[k]));
    out << fmt::format("  {:<26} {}\n", s.rule, fmt::join(found, ", "));
  }
}

void AppendStatsJson(const RuleStats& s, std::string* j) {
  *j += fmt::format("{{\"rule\":");
  AppendJsonString(j, s.rule);
  *j += fmt::format(",\"alerts\":{},\"keys_alerted\":{},\"active_keys\":{},\"alerts_per_1000_keys_per_day\":", s.alerts,
                    s.keys, s.active);
  AppendJsonNumber(j, s.per_1000_per_day);
  *j += fmt::format(",\"first_event_to_alert_ms\":{{\"p50\":{},\"p90\":{},\"max\":{}}}", s.p50, s.p90, s.max);
  *j += fmt::format(",\"true_alerts\":{},\"incidents_found\":{},\"precision\":", s.true_alerts, s.found);
  if (s.precision) AppendJsonNumber(j, *s.precision); else *j += "null";
  *j += ",\"recall\":";
  if (s.recall) AppendJsonNumber(j, *s.recall); else *j += "null";
  *j += "}";
}

struct Diff {
  std::string rule;
  std::vector<const AlertRow*> gained, lost;
};

// Alerts of `now` not in `before` and the other way round, per rule name.
std::vector<Diff> Compare(const std::vector<AlertRow>& now, const std::vector<AlertRow>& before) {
  std::set<std::string> in_now, in_before;
  for (const auto& a : now) in_now.insert(a.identity);
  for (const auto& a : before) in_before.insert(a.identity);
  std::map<std::string, Diff> by_rule;
  for (const auto& a : now) {
    if (!in_before.count(a.identity)) by_rule[a.rule].gained.push_back(&a);
  }
  for (const auto& a : before) {
    if (!in_now.count(a.identity)) by_rule[a.rule].lost.push_back(&a);
  }
  std::vector<Diff> out;
  for (auto& [rule, d] : by_rule) {
    d.rule = rule;
    out.push_back(std::move(d));
  }
  return out;
}

void PrintDiff(const std::vector<Diff>& diffs, size_t examples, std::ostream& out) {
  out << "against the baseline:\n";
  if (diffs.empty()) out << "  the same alerts\n";
  for (const Diff& d : diffs) {
    out << fmt::format("  {}: {} gained, {} lost\n", d.rule, d.gained.size(), d.lost.size());
    for (const auto* list : {&d.gained, &d.lost}) {
      for (size_t i = 0; i < std::min(examples, list->size()); ++i) {
        const AlertRow& a = *(*list)[i];
        out << fmt::format("    {} key {} at {}: {}\n", list == &d.gained ? "+" : "-", a.key, FormatRfc3339(a.detected),
                           a.message);
      }
    }
  }
}

// Alerts per hour per rule, a line each, as a standalone SVG document.
std::string ReportSvg(const std::vector<AlertRow>& alerts, const Population& pop) {
  const int width = 960, height = 420, left = 60, right = 220, top = 40, bottom = 50;
  Millis hour = 3600000;
  size_t hours = static_cast<size_t>((pop.last - pop.first) / hour) + 1;
  std::map<std::string, std::vector<int>> per_hour;
  int peak = 1;
  for (const auto& a : alerts) {
    auto& v = per_hour[a.rule];
    v.resize(hours);
    size_t h = static_cast<size_t>(std::clamp<Millis>((a.detected - pop.first) / hour, 0, static_cast<Millis>(hours) - 1));
    peak = std::max(peak, ++v[h]);
  }
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                          "#bcbd22", "#17becf"};
  double plot_w = width - left - right, plot_h = height - top - bottom;
  auto x = [&](size_t h) { return left + (hours > 1 ? plot_w * static_cast<double>(h) / static_cast<double>(hours - 1) : 0); };
  auto y = [&](int n) { return top + plot_h - plot_h * n / peak; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<title>cepheus backtest: alerts per hour per rule</title>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\">Alerts per hour per rule, from {}</text>\n"
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n"
      "<text x=\"{}\" y=\"{}\">hours: {}</text>\n",
      width, height, width, height, left, FormatRfc3339(pop.first), left, top + plot_h, left + plot_w, top + plot_h, left,
      top, left, top + plot_h, left - 6, top + 4, peak, left - 6, top + plot_h + 4, left, height - 15, hours);
  size_t i = 0;
  for (const auto& [rule, counts] : per_hour) {
    std::string points;
    for (size_t h = 0; h < hours; ++h) points += fmt::format("{:.1f},{:.1f} ", x(h), y(counts[h]));
    std::string name;
    AppendJsonString(&name, rule);  // no '<' or '&' in a rule name; quotes from the JSON escaper
    const char* color = colors[i % std::size(colors)];
    svg += fmt::format("<polyline data-rule={} fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", name,
                       color, points);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{} ({})</text>\n",
                       width - right + 15, top + 18 * i, color, width - right + 30, top + 18 * i + 10, rule,
                       std::accumulate(counts.begin(), counts.end(), 0));
    ++i;
  }
  return svg + "</svg>\n";
}

// The whole report as one JSON object (`--format json`).
std::string ReportJson(const std::vector<RuleStats>& stats, const RuleStats& all, const Population& pop, size_t incidents,
                       const std::vector<Diff>& diffs) {
  std::string j = fmt::format("{{\"events\":{},\"days\":", pop.events);
  AppendJsonNumber(&j, pop.days());
  j += ",\"rules\":[";
  for (size_t i = 0; i < stats.size(); ++i) {
    if (i) j += ",";
    AppendStatsJson(stats[i], &j);
  }
  j += "],\"all\":";
  AppendStatsJson(all, &j);
  j += fmt::format(",\"incidents\":{},\"baseline\":[", incidents);
  for (size_t i = 0; i < diffs.size(); ++i) {
    j += (i ? "," : "") + std::string("{\"rule\":");
    AppendJsonString(&j, diffs[i].rule);
    j += fmt::format(",\"gained\":{},\"lost\":{}}}", diffs[i].gained.size(), diffs[i].lost.size());
  }
  return j + "]}\n";
}

}  // namespace

int RunBacktest(const BacktestOptions& o, std::ostream& out, std::ostream& err) {
  auto d = ParseDuration(o.out_of_order);
  if (!d || (o.format != "text" && o.format != "json")) {
    err << "cepheus: error: --out-of-order needs a duration (5s) and --format text or json\n";
    return 2;
  }
  auto rules = daemon::LoadAndCompile(o.rules, err);
  if (!rules) return 1;
  std::shared_ptr<const nfa::CompiledRuleSet> baseline;
  if (!o.baseline.empty() && !(baseline = daemon::LoadAndCompile(o.baseline, err))) return 1;
  std::string text;
  if (Status st = ReadWholeFile(o.events, &text, engine::kPayloadPadding); !st.ok()) {
    err << "cepheus: error: " << st.message() << "\n";
    return 1;
  }
  std::optional<std::vector<Label>> labels;
  if (!o.labels.empty()) {
    auto l = LoadLabels(o.labels);
    if (!l.ok()) {
      err << "cepheus: error: " << l.status().message() << "\n";
      return 1;
    }
    labels = std::move(l).value();
  }
  auto replayed = Replay(text, rules, *d, o.tables, err);
  if (!replayed.ok()) {
    err << "cepheus: error: " << replayed.status().message() << "\n";
    return 2;
  }
  const std::vector<AlertRow> alerts = std::move(replayed).value();
  auto paths = KeyPaths(*rules);
  const Population pop = Populate(text, paths);
  std::vector<RuleStats> stats;
  std::vector<const AlertRow*> every;
  for (const auto& a : alerts) every.push_back(&a);
  for (const auto& [name, path] : paths) {
    std::vector<const AlertRow*> mine;
    for (const auto& a : alerts) {
      if (a.rule == name) mine.push_back(&a);
    }
    auto it = pop.keys.find(PathText(path));
    stats.push_back(Measure(name, mine, it == pop.keys.end() ? 0 : it->second.size(), pop, labels ? &*labels : nullptr));
  }
  RuleStats all = Measure("all rules", every, 0, pop, labels ? &*labels : nullptr);
  std::vector<Diff> diffs;
  std::vector<AlertRow> baseline_alerts;  // outlives `diffs`, which points into it
  if (baseline) {
    auto before = Replay(text, baseline, *d, o.tables, err);
    if (!before.ok()) {
      err << "cepheus: error: the baseline: " << before.status().message() << "\n";
      return 2;
    }
    baseline_alerts = std::move(before).value();
    diffs = Compare(alerts, baseline_alerts);
  }
  if (o.format == "json") {
    out << ReportJson(stats, all, pop, labels ? labels->size() : 0, diffs);
  } else {
    PrintText(stats, all, pop, labels ? &*labels : nullptr, out);
    if (baseline) PrintDiff(diffs, o.examples, out);
  }
  if (!o.report.empty()) {
    std::ofstream f(o.report);
    f << ReportSvg(alerts, pop);
    if (!f.flush()) {
      err << fmt::format("cepheus: error: cannot write {}\n", o.report);
      return 1;
    }
  }
  return 0;
}

Command AddBacktest(CLI::App& app) {
  auto o = std::make_shared<BacktestOptions>();
  CLI::App* sub = app.add_subcommand("backtest", "Replay rules over history: alert volume, timing, precision and recall");
  sub->add_option("--rules", o->rules, "Rule files or folders")->required();
  sub->add_option("--events", o->events, "Events, one JSON object per line")->required();
  sub->add_option("--labels", o->labels, "Known incidents, one JSON object per line: {key, from, to, label}");
  sub->add_option("--baseline", o->baseline, "Another rule set: print the alerts gained and lost against it");
  sub->add_option("--out-of-order", o->out_of_order, "Allowed out-of-orderness, e.g. 5s")->capture_default_str();
  sub->add_option("--format", o->format, "text or json")->capture_default_str();
  sub->add_option("--report", o->report, "Write a chart of alerts per hour per rule to this SVG file");
  sub->add_option("--table", o->tables, "NAME=FILE: the records of a table the rules read (JSON lines)");
  sub->add_option("--examples", o->examples, "Gained and lost alerts shown per rule")->capture_default_str();
  return {sub, [o] { return RunBacktest(*o, std::cout, std::cerr); }};
}

}  // namespace cepheus::cli

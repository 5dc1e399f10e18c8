// `cepheus trace`: one key's evaluations, explained.
//
// The rules are compiled with every partial match kept as a Run (no shared
// buffer, no implicit prefix), so each one can be followed, and the events
// are replayed through an ordinary engine with a Tracer for the key. Around
// each rule's evaluation of an event the tracer compares the key's runs
// before and after, by the events each run holds: a run that holds the new
// event started or was extended; one that is unchanged waited, and the
// matcher's own test (nfa::WhyNotFits) says why, quoting the false
// sub-expression as written and its values; one that is gone completed,
// was dropped by the skip policy after an alert, evicted by `limit`, or
// killed by `=>` or an absent step. Window closings report runs expired and
// absence alerts; late events of the key are reported as such.
#include "cli/trace.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/common/file.h"
#include "cepheus/common/json_writer.h"
#include "cepheus/common/time.h"
#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/pump.h"
#include "cepheus/engine/tables.h"
#include "cepheus/engine/tracer.h"
#include "cli/tables.h"

namespace cepheus::cli {
namespace {

struct Line {
  std::string event;  // the event's id ("" for a window closing)
  Millis ts = 0;
  std::string rule, what, run, detail;
};

std::string IdOf(const nfa::Event& e) { return e.id.empty() ? fmt::format("line {}", e.pos.offset) : std::string(e.id); }

// A run as the events it holds (by evaluation seq), for comparing before and after.
struct RunView {
  std::vector<uint64_t> seqs;
  std::string first_id, bindings;
  nfa::Run run;  // a copy: the matcher changes the key's runs in place
};

std::string Bindings(const nfa::Program& p, const nfa::Run& r) {
  std::string out;
  for (const auto& b : r.bound) {
    const std::string& name = p.steps[static_cast<size_t>(b.step)].name;
    out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", name.empty() ? "_" : name, IdOf(*b.event));
  }
  return out;
}

std::vector<uint64_t> Seqs(const nfa::Run& r) {
  std::vector<uint64_t> out;
  for (const auto& b : r.bound) out.push_back(b.event->seq);
  return out;
}

std::vector<RunView> Views(const nfa::Program& p, const nfa::KeyRuns& runs) {
  std::vector<RunView> out;
  for (const nfa::Run& r : runs.runs) {
    out.push_back({Seqs(r), r.bound.empty() ? "?" : IdOf(*r.bound.front().event), Bindings(p, r), r});
  }
  return out;
}

const RunView* Find(const std::vector<RunView>& views, const std::vector<uint64_t>& seqs) {
  for (const auto& v : views) {
    if (v.seqs == seqs) return &v;
  }
  return nullptr;
}

class KeyTracer : public engine::Tracer {
 public:
  KeyTracer(const nfa::CompiledRuleSet& rules, std::string key, std::string rule)
      : rules_(rules), key_(std::move(key)), rule_(std::move(rule)) {}

  std::vector<Line> lines;

  bool Follows(std::string_view key) const override { return key == key_; }

  // The rules of the key's field that read `e` each get a "no start" line,
  // unless they turn out to run on it (BeforeRule): the engine skips a rule
  // for a key with no partial match when `e` does not start one.
  void OnEvent(std::string_view field, std::string_view, const nfa::Event& e, const nfa::TableReader* tables,
               const nfa::CounterReader* counters) override {
    Flush();
    lines.push_back({IdOf(e), e.ts, "", "event", "", std::string(e.type)});
    for (const auto& prog : rules_.programs) {
      const nfa::Program& p = *prog;
      if (!Wanted(p) || fmt::format("{}", fmt::join(p.rule->key, ".")) != field) continue;
      if (!(p.needs_all_types || (e.type_id >= 0 && p.relevant[static_cast<size_t>(e.type_id)]))) continue;
      std::string why = nfa::WhyNotFits(p, 0, e, nullptr, tables, counters);
      pending_.push_back({&p, Line{IdOf(e), e.ts, p.name, "no start", "",
                                   why.empty() ? "no partial match" : "no partial match, and " + why}});
    }
  }

  void BeforeRule(const nfa::Program& p, const nfa::KeyRuns& runs, const nfa::Event&) override {
    std::erase_if(pending_, [&](const auto& x) { return x.first == &p; });
    if (Wanted(p)) before_ = Views(p, runs);
  }

  void AfterRule(const nfa::Program& p, const nfa::KeyRuns& runs, const nfa::Event& e,
                 const std::vector<nfa::Match>& matches, const nfa::MatchStats& stats, const nfa::TableReader* tables,
                 const nfa::CounterReader* counters) override {
    if (!Wanted(p)) return;
    tables_ = tables, counters_ = counters;
    std::vector<RunView> after = Views(p, runs);
    for (const auto& m : matches) {
      Add(e, p, m.suppressed ? "held back" : "alert", IdOf(*m.run.bound.front().event),
          m.suppressed ? fmt::format("{} (cooldown {} since the last alert)", Bindings(p, m.run), FormatDuration(p.cooldown))
                       : Bindings(p, m.run));
    }
    bool started = false;
    for (const auto& v : after) {
      if (std::find(v.seqs.begin(), v.seqs.end(), e.seq) == v.seqs.end()) continue;
      started = started || v.seqs.size() == 1;
      Add(e, p, v.seqs.size() == 1 ? "started" : "extended", v.first_id, v.bindings);
    }
    if (!started) {
      std::string why = nfa::WhyNotFits(p, 0, e, nullptr, tables_, counters_);
      if (!why.empty()) Add(e, p, "no start", "", why);
    }
    for (const auto& v : before_) Judge(p, e, v, after, matches, stats);
  }

  void BeforeClose(const nfa::Program& p, std::string_view, const nfa::KeyRuns& runs, Millis) override {
    Flush();  // the last event's lines come before the windows its successors close
    if (Wanted(p)) before_ = Views(p, runs);
  }

  void AfterClose(const nfa::Program& p, std::string_view, const nfa::KeyRuns& runs, Millis at,
                  const std::vector<nfa::Match>& matches) override {
    if (!Wanted(p)) return;
    std::vector<RunView> after = Views(p, runs);
    for (const auto& m : matches) {
      lines.push_back({"", m.detected_at, p.name, m.suppressed ? "held back" : "alert", IdOf(*m.run.bound.front().event),
                       fmt::format("by absence: {}", Bindings(p, m.run))});
    }
    for (const auto& v : before_) {
      if (Find(after, v.seqs) != nullptr) continue;
      bool completed = std::any_of(matches.begin(), matches.end(), [&](const nfa::Match& m) {
        return !m.run.bound.empty() && m.run.bound.front().event->seq == v.seqs.front();
      });
      if (completed) continue;
      lines.push_back({"", v.run.first_ts + p.within, p.name, "expired", v.first_id,
                       fmt::format("within {} of its first event passed ({})", FormatDuration(p.within), v.bindings)});
    }
  }

  // The last event's rules that did not run on it: why not.
  void Flush() {
    for (auto& [p, line] : pending_) lines.push_back(std::move(line));
    pending_.clear();
  }

 private:
  bool Wanted(const nfa::Program& p) const { return rule_.empty() || p.name == rule_; }

  void Add(const nfa::Event& e, const nfa::Program& p, std::string what, std::string run, std::string detail) {
    lines.push_back({IdOf(e), e.ts, p.name, std::move(what), std::move(run), std::move(detail)});
  }

  // A run of before: unchanged (it waited: why), taken further, or gone (why).
  void Judge(const nfa::Program& p, const nfa::Event& e, const RunView& v, const std::vector<RunView>& after,
             const std::vector<nfa::Match>& matches, const nfa::MatchStats& stats) {
    std::vector<uint64_t> with_e = v.seqs;
    with_e.push_back(e.seq);
    bool took = Find(after, with_e) != nullptr ||
                std::any_of(matches.begin(), matches.end(), [&](const nfa::Match& m) { return Seqs(m.run) == with_e; });
    if (Find(after, v.seqs) != nullptr) {
      Add(e, p, took ? "forked" : "waits", v.first_id, took ? "one copy took it, one waits" : WhyWaits(p, v.run, e));
    } else if (!took) {
      Add(e, p, "dropped", v.first_id, WhyGone(p, v.run, e, matches, stats));
    }
  }

  std::string WhyWaits(const nfa::Program& p, const nfa::Run& r, const nfa::Event& e) const {
    if (e.ts - r.first_ts > p.within) {
      return fmt::format("too late for its window: within {} of {}", FormatDuration(p.within), FormatRfc3339(r.first_ts));
    }
    std::vector<std::string> why;
    const nfa::StepProgram& s = p.steps[static_cast<size_t>(r.step)];
    if (s.max == dsl::kUnbounded || r.count < s.max) why.push_back(nfa::WhyNotFits(p, r.step, e, &r, tables_, counters_));
    if (r.count >= s.min && static_cast<size_t>(r.step) + 1 < p.steps.size()) {
      why.push_back(nfa::WhyNotFits(p, r.step + 1, e, &r, tables_, counters_));
    }
    std::erase(why, std::string());
    if (why.empty()) return "it fits, but taking it would not complete the pattern with `where` true";
    return fmt::format("{}", fmt::join(why, "; "));
  }

  std::string WhyGone(const nfa::Program& p, const nfa::Run& r, const nfa::Event& e,
                      const std::vector<nfa::Match>& matches, const nfa::MatchStats& stats) const {
    if (stats.evicted > 0) return fmt::format("evicted: the key held more than its limit of {} runs", p.limit);
    if (!matches.empty() && p.skip != dsl::SkipPolicy::kNone) {
      return fmt::format("dropped by skip {} after the alert", dsl::SkipPolicyName(p.skip));
    }
    size_t next = static_cast<size_t>(r.step) + 1;
    if (next < p.steps.size() && p.steps[next].absent && nfa::WhyNotFits(p, static_cast<int>(next), e, &r, tables_, counters_).empty()) {
      return fmt::format("killed: it fits the absent step {}", p.steps[next].name.empty() ? "" : p.steps[next].name);
    }
    return "killed by `=>`: it is not the step the run needs, and `=>` allows no event between";
  }

  const nfa::CompiledRuleSet& rules_;
  std::string key_, rule_;
  std::vector<std::pair<const nfa::Program*, Line>> pending_;
  const nfa::TableReader* tables_ = nullptr;      // of the evaluation being followed
  const nfa::CounterReader* counters_ = nullptr;
  std::vector<RunView> before_;
};

// Late events of the key: the engine hands them to the sink, not the tracer.
class LateSink : public engine::AlertSink {
 public:
  LateSink(const nfa::CompiledRuleSet& rules, std::string key, std::vector<Line>* lines) : key_(std::move(key)), lines_(lines) {
    for (const auto& p : rules.programs) {
      auto it = std::find(rules.fields.paths().begin(), rules.fields.paths().end(), p->rule->key);
      if (it != rules.fields.paths().end()) slots_.push_back(static_cast<int>(it - rules.fields.paths().begin()));
    }
  }
  void Publish(const engine::Alert&) override {}
  void Late(const nfa::Event& e) override {
    for (int s : slots_) {
      std::string k;
      if (nfa::ValueKeyText(e.fields[static_cast<size_t>(s)], &k) && k == key_) {
        lines_->push_back({IdOf(e), e.ts, "", "late", "", fmt::format("{}: older than the watermark when it arrived; not evaluated", e.type)});
        return;
      }
    }
  }
  void PublishAggregate(const engine::AggregateRecord&) override {}

 private:
  std::string key_;
  std::vector<Line>* lines_;
  std::vector<int> slots_;
};

void Print(const std::vector<Line>& lines, const std::string& format, std::ostream& out) {
  for (const Line& l : lines) {
    if (format == "json") {
      std::string j = "{\"event\":";
      AppendJsonString(&j, l.event);
      j += fmt::format(",\"ts\":{},\"rule\":", l.ts);
      AppendJsonString(&j, l.rule);
      j += ",\"what\":";
      AppendJsonString(&j, l.what);
      j += ",\"run\":";
      AppendJsonString(&j, l.run);
      j += ",\"detail\":";
      AppendJsonString(&j, l.detail);
      out << j << "}\n";
    } else if (l.what == "event" || l.what == "late") {
      out << fmt::format("{} {} at {}{}\n", l.event, l.what == "late" ? "late" : l.detail, FormatRfc3339(l.ts),
                         l.what == "late" ? ": " + l.detail : "");
    } else {
      std::string where = l.event.empty() ? fmt::format("[window closed at {}] ", FormatRfc3339(l.ts)) : "";
      std::string run = l.run.empty() ? "" : fmt::format("run from {} ", l.run);
      out << fmt::format("  {}{}: {} {}{}\n", where, l.rule, l.what, run, l.detail.empty() ? "" : "- " + l.detail);
    }
  }
}

}  // namespace

int RunTrace(const TraceOptions& o, std::ostream& out, std::ostream& err) {
  auto d = ParseDuration(o.out_of_order);
  if (!d || (o.format != "text" && o.format != "json")) {
    err << "cepheus: error: --out-of-order needs a duration (5s) and --format text or json\n";
    return 2;
  }
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet(o.rules, &diags);
  err << diags.FormatAll();
  if (!set) return 1;
  nfa::CompileOptions whole_runs;
  whole_runs.implicit_prefix = false;  // every partial match a Run the trace can follow
  whole_runs.shared_suffix = false;
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set)), whole_runs);
  if (!compiled.ok()) {
    err << "cepheus: error: " << compiled.status().message() << "\n";
    return 1;
  }
  const auto& rules = compiled.value();
  if (!o.rule.empty() && std::none_of(rules->programs.begin(), rules->programs.end(),
                                      [&](const auto& p) { return p->name == o.rule; })) {
    err << fmt::format("cepheus: error: no rule named '{}' in the rules given\n", o.rule);
    return 2;
  }
  std::string text;
  if (Status st = ReadWholeFile(o.events, &text, engine::kPayloadPadding); !st.ok()) {
    err << "cepheus: error: " << st.message() << "\n";
    return 1;
  }
  engine::Tables tables(rules, {});
  if (Status st = LoadTableOptions(o.tables, *rules, &tables, err); !st.ok()) {
    err << "cepheus: error: " << st.message() << "\n";
    return 2;
  }
  KeyTracer tracer(*rules, o.key, o.rule);
  LateSink sink(*rules, o.key, &tracer.lines);
  engine::EngineOptions options;
  options.out_of_order = *d;
  engine::EventDecoder decoder(rules, {});
  engine::Engine eng(rules, options, &sink);
  eng.set_tracer(&tracer);
  eng.set_tables(&tables);
  engine::Pump pump(&decoder, &eng);
  pump.FeedLines(text);
  eng.Finish();
  tracer.Flush();
  Print(tracer.lines, o.format, out);
  return 0;
}

Command AddTrace(CLI::App& app) {
  auto o = std::make_shared<TraceOptions>();
  CLI::App* sub = app.add_subcommand("trace", "Show, event by event, what each rule did for one key, and why");
  sub->add_option("--rules", o->rules, "Rule files or folders")->required();
  sub->add_option("--events", o->events, "Events, one JSON object per line")->required();
  sub->add_option("--key", o->key, "The key to follow (a value of the rules' key field, e.g. u42)")->required();
  sub->add_option("--rule", o->rule, "Only this rule");
  sub->add_option("--table", o->tables, "NAME=FILE: the records of a table the rules read (JSON lines)");
  sub->add_option("--format", o->format, "text or json (JSON lines)")->capture_default_str();
  sub->add_option("--out-of-order", o->out_of_order, "Allowed out-of-orderness, e.g. 5s")->capture_default_str();
  return {sub, [o] { return RunTrace(*o, std::cout, std::cerr); }};
}

}  // namespace cepheus::cli

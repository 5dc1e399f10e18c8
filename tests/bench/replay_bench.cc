// Replay benchmark: how fast the engine runs all rules over a file of events,
// against the floor of a simdjson parse-only pass over the same file.
//
//   cepheus_bench RULES EVENTS.jsonl [--out-of-order MS] [--repeat N] [--per-rule] [--no-shared-buffer]
//
// Prints, for the best of N repeats: the parse-only floor (lines/s), the
// pipeline alone (read, parse, decode, reorder, one key lookup, one rule that
// takes nothing), the state floor (one rule that keeps one run per active key:
// what any stateful rule costs at least), the full replay (events/s, alerts),
// their ratios, the
// memory held per live partial match (heap in use while the engine holds its
// largest state, divided by the live runs then, measured with mallinfo2) and
// the process's peak RSS.
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/pump.h"
#include "cepheus/nfa/program.h"

using namespace cepheus;

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

class CountingSink : public engine::AlertSink {
 public:
  void Publish(const engine::Alert& a) override { ++alerts, bytes += a.json.size(); }
  uint64_t alerts = 0, bytes = 0;
};

template <typename F>
void ForEachLine(const simdjson::padded_string& s, F f) {
  std::string_view text(s.data(), s.size());
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    if (nl > at) f(text.substr(at, nl - at));
    at = nl + 1;
  }
}

struct Measured {
  double seconds = 1e9;
  uint64_t events = 0, alerts = 0, peak_runs = 0;
  double bytes_per_run = 0;
};

void Keep(Measured* best, const Measured& m) {
  if (m.seconds < best->seconds) *best = m;
}

// Replay: decode, reorder, match, format alerts (the Pump every command uses).
Measured Replay(const std::shared_ptr<const nfa::CompiledRuleSet>& rules, const simdjson::padded_string& input,
                Millis out_of_order) {
  Measured m;
  CountingSink alerts_sink;
  engine::EventDecoder decoder(rules, {});
  engine::EngineOptions options;
  options.out_of_order = out_of_order;
  struct mallinfo2 before = mallinfo2();
  auto t1 = std::chrono::steady_clock::now();
  uint64_t max_runs = 0;
  size_t heap_at_max = 0;
  {
    engine::Engine eng(rules, options, &alerts_sink);
    engine::Pump pump(&decoder, &eng);
    pump.FeedLines(std::string_view(input.data(), input.size()), [&](uint64_t line) {
      if ((line & 0xffff) == 0 && static_cast<uint64_t>(eng.active_runs()) > max_runs) {
        max_runs = static_cast<uint64_t>(eng.active_runs());
        heap_at_max = mallinfo2().uordblks;
      }
    });
    eng.Finish();
    m.events = pump.counts().records;
  }
  m.seconds = Seconds(t1);
  m.alerts = alerts_sink.alerts;
  m.peak_runs = max_runs;
  if (max_runs > 0 && heap_at_max > before.uordblks) {
    m.bytes_per_run = static_cast<double>(heap_at_max - before.uordblks) / static_cast<double>(max_runs);
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: cepheus_bench RULES EVENTS.jsonl [--out-of-order MS] [--repeat N]\n");
    return 2;
  }
  Millis out_of_order = 0;
  int repeat = 3;
  bool per_rule = false;
  nfa::CompileOptions compile_options;
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--per-rule") per_rule = true;
    if (flag == "--no-shared-buffer") compile_options.shared_suffix = false;  // to measure what it gains
    if (i + 1 >= argc) break;
    if (flag == "--out-of-order") out_of_order = std::atoll(argv[++i]);
    else if (flag == "--repeat") repeat = std::atoi(argv[++i]);
  }
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet({argv[1]}, &diags);
  if (!set) {
    std::fputs(diags.FormatAll().c_str(), stderr);
    return 1;
  }
  auto full_set = std::make_shared<const dsl::RuleSet>(std::move(*set));
  auto rules = nfa::Compile(full_set, compile_options).value();
  simdjson::padded_string input;
  if (simdjson::padded_string::load(argv[2]).get(input)) {
    std::fprintf(stderr, "cannot read %s\n", argv[2]);
    return 1;
  }

  // The pipeline alone: read, parse, decode, reorder, one key lookup per
  // event, and one rule that reads every event and takes none.
  auto one_rule = [](const char* text) -> std::shared_ptr<const nfa::CompiledRuleSet> {
    auto set = std::make_shared<dsl::RuleSet>();
    DiagnosticSink d;
    auto file = std::make_shared<const SourceFile>("bench.rules", text);
    d.Retain(file);
    if (!dsl::ParseSource(file, set.get(), &d)) {
      std::fputs(d.FormatAll().c_str(), stderr);
      std::exit(1);
    }
    return nfa::Compile(set).value();
  };
  auto nothing = one_rule("rule nothing\n  key user_id\n  match x: any[no_such_field == 1]\n  within 1s\n");
  // The state floor: the simplest rule that keeps state for every active key
  // (each event replaces the key's one run, whose window is 30 minutes), so
  // every event pays the key's lookup, its state and a window closing.
  auto one_run =
      one_rule("rule one_run_per_key\n  key user_id\n  match x: any => y: no_such_type\n  within 30m\n");

  double best_floor = 1e9;
  uint64_t lines = 0;
  Measured full, pipeline, state_floor;
  for (int r = 0; r < repeat; ++r) {
    // Floor: parse every line with the same simdjson DOM parser, touch nothing.
    simdjson::dom::parser parser;
    uint64_t n = 0, sink = 0;
    auto t0 = std::chrono::steady_clock::now();
    ForEachLine(input, [&](std::string_view line) {
      simdjson::dom::element doc;
      if (!parser.parse(line.data(), line.size(), false).get(doc)) sink += doc.is_object();
      ++n;
    });
    best_floor = std::min(best_floor, Seconds(t0));
    lines = n;
    if (sink == 0) std::fprintf(stderr, "no objects parsed\n");
    Keep(&pipeline, Replay(nothing, input, out_of_order));
    Keep(&state_floor, Replay(one_run, input, out_of_order));
    Keep(&full, Replay(rules, input, out_of_order));
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  double floor_rate = static_cast<double>(lines) / best_floor;
  double pipeline_rate = static_cast<double>(pipeline.events) / pipeline.seconds;
  double replay_rate = static_cast<double>(full.events) / full.seconds;
  std::printf("rules:                 %zu\n", rules->programs.size());
  std::printf("events:                %llu\n", static_cast<unsigned long long>(full.events));
  std::printf("alerts:                %llu\n", static_cast<unsigned long long>(full.alerts));
  std::printf("parse-only floor:      %.2f M lines/s (%.3f s)\n", floor_rate / 1e6, best_floor);
  std::printf("pipeline alone:        %.2f M events/s (%.3f s; one rule that takes nothing)\n",
              pipeline_rate / 1e6, pipeline.seconds);
  double state_rate = static_cast<double>(state_floor.events) / state_floor.seconds;
  std::printf("state floor:           %.2f M events/s (%.3f s; one rule, one run per active key: %.2f x pipeline)\n",
              state_rate / 1e6, state_floor.seconds, state_rate / pipeline_rate);
  std::printf("replay, all rules:     %.2f M events/s (%.3f s)\n", replay_rate / 1e6, full.seconds);
  std::printf("replay / pipeline:     %.2f\n", replay_rate / pipeline_rate);
  std::printf("replay / state floor:  %.2f\n", replay_rate / state_rate);
  std::printf("replay / floor:        %.2f\n", replay_rate / floor_rate);
  std::printf("peak live runs:        %llu\n", static_cast<unsigned long long>(full.peak_runs));
  std::printf("heap per live run:     %.0f bytes (all engine state at the peak / live runs)\n", full.bytes_per_run);
  std::printf("peak RSS:              %.0f MiB (the process: input file, %d passes)\n",
              static_cast<double>(usage.ru_maxrss) / 1024.0, 3 * repeat);

  if (per_rule) {
    // Each rule alone, to show where the time goes.
    std::printf("per rule (alone, best of %d):\n", repeat);
    for (const auto& rule : full_set->rules) {
      auto one = std::make_shared<dsl::RuleSet>();
      one->files = full_set->files;
      one->rules.push_back(rule);
      auto compiled = nfa::Compile(one, compile_options).value();
      Measured best;
      for (int r = 0; r < repeat; ++r) Keep(&best, Replay(compiled, input, out_of_order));
      std::printf("  %-24s %6.2f M events/s  %6llu alerts\n", rule.name.c_str(),
                  static_cast<double>(best.events) / best.seconds / 1e6, static_cast<unsigned long long>(best.alerts));
    }
  }
  return 0;
}

// `cepheus replay`: JSON lines in, alerts out, deterministic.
//
// The input is streamed (LineReader: a block at a time, in memory bounded by
// the block and --max-event-bytes, whatever the file's size; standard input
// works from a pipe), each line parsed in place (the bytes after it are the
// next lines or simdjson's padding) and fed to the engine through a Pump.
// Alerts are written to stdout as they are published, flushed before each
// read that may wait; a line past --max-event-bytes is never held, and is
// reported as malformed like any other. The summary goes to stderr.
#include "cli/replay.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/common/file.h"
#include "cepheus/engine/engine.h"
#include "cepheus/engine/event_decoder.h"
#include "cepheus/engine/pump.h"
#include "cepheus/engine/replay.h"
#include "cepheus/daemon/config.h"
#include "cepheus/daemon/rules_loader.h"
#include "cepheus/engine/tables.h"
#include "cli/tables.h"

namespace cepheus::cli {

namespace {

class StdoutSink : public engine::AlertSink {
 public:
  StdoutSink(std::FILE* late, std::FILE* aggregates) : late_(late), aggregates_(aggregates) {}
  void Publish(const engine::Alert& a) override {
    std::fwrite(a.json.data(), 1, a.json.size(), stdout);
    std::fputc('\n', stdout);
  }
  void Late(const nfa::Event& e) override {
    if (late_ == nullptr) return;
    std::fwrite(e.raw.data(), 1, e.raw.size(), late_);
    std::fputc('\n', late_);
  }
  void PublishAggregate(const engine::AggregateRecord& r) override {
    if (aggregates_ == nullptr) return;
    std::fwrite(r.json.data(), 1, r.json.size(), aggregates_);
    std::fputc('\n', aggregates_);
  }

 private:
  std::FILE* late_;
  std::FILE* aggregates_;
};

// A file given on the command line, opened for writing (null for "").
std::FILE* OpenOutput(const std::string& path, bool* failed) {
  if (path.empty()) return nullptr;
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::cerr << fmt::format("cepheus: error: cannot write {}\n", path);
    *failed = true;
  }
  return f;
}

// Feeds every line of `reader` to the engine through a Pump; lines past
// `max_bytes` and malformed events are reported on stderr and counted in
// *malformed. Returns the events evaluated, or the reader's error.
Result<uint64_t> Stream(LineReader* reader, const std::string& source, size_t max_bytes,
                        engine::EventDecoder* decoder, engine::Engine* eng, engine::Tables* tables,
                        uint64_t* malformed) {
  auto report = [&](uint64_t line, const std::string& why) {
    ++*malformed;
    std::cerr << fmt::format("{}:{}: malformed event skipped: {}\n", source, line, why);
  };
  engine::Pump pump(decoder, eng, [&](std::string_view, const nfa::Position& pos, const Status& why) {
    report(static_cast<uint64_t>(pos.offset), why.message());
  });
  for (;;) {
    auto next = reader->Next();
    if (!next.ok()) return next.status();
    if (!next.value()) return pump.counts().events;
    const LineReader::Line& line = *next.value();
    if (line.too_long) {
      report(line.number, fmt::format("event is larger than {} bytes", max_bytes));
      continue;
    }
    if (line.text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nfa::Position pos;
    pos.offset = static_cast<int64_t>(line.number);
    pump.Feed(line.text, pos, /*padded=*/true);
    if (line.number % 65536 == 0) tables->Fold(eng->watermark());  // versions past `history` go
  }
}

// The tables of --table, loaded whole before the first event (section 6.1).
// Returns 0, or the exit code after a message.
int LoadTables(const ReplayOptions& o, const nfa::CompiledRuleSet& rules, engine::Tables* tables) {
  auto sources = ParseTableSources(o.tables);
  std::vector<std::string> names;
  if (sources.ok()) {
    for (const auto& s : sources.value()) names.push_back(s.name);
  }
  Status st = sources.ok() ? CheckTableSources(rules, names, "give --table {}=FILE (JSON lines)") : sources.status();
  uint64_t malformed = 0;
  if (st.ok()) st = LoadTableFiles(sources.value(), tables, o.max_event_bytes, std::cerr, &malformed);
  if (!st.ok()) {
    std::cerr << "cepheus: error: " << st.message() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace

int RunReplay(const ReplayOptions& o) {
  auto rules = daemon::LoadAndCompile(o.rules, std::cerr);
  if (!rules) return 1;
  engine::EngineOptions options;
  engine::EventFieldNames names;
  // The daemon's limits, so a replay evaluates as the daemon would.
  const daemon::Config defaults = daemon::DefaultConfig();
  options.max_buffered = defaults.max_buffered;
  options.max_keys = defaults.state.max_keys;
  if (!o.config.empty()) {
    auto config = daemon::LoadConfig(o.config);
    if (!config.ok()) {
      std::cerr << "cepheus: error: " << config.status().message() << "\n";
      return 2;
    }
    names = config.value().events;
    options.out_of_order = config.value().out_of_order;
    options.max_buffered = config.value().max_buffered;
    options.max_keys = config.value().state.max_keys;
  }
  if (!o.out_of_order.empty()) {
    auto d = ParseDuration(o.out_of_order);
    if (!d) {
      std::cerr << fmt::format("cepheus: error: --out-of-order '{}' is not a duration (e.g. 5s, 500ms)\n",
                               o.out_of_order);
      return 2;
    }
    options.out_of_order = *d;
  }
  if (o.max_event_bytes == 0) {
    std::cerr << "cepheus: error: --max-event-bytes must be at least 1\n";
    return 2;
  }
  auto reader = LineReader::Open(o.events, o.max_event_bytes, engine::kPayloadPadding);
  if (!reader.ok()) {
    std::cerr << "cepheus: error: " << reader.status().message() << "\n";
    return 2;
  }
  bool failed = false;
  std::FILE* late = OpenOutput(o.late_out, &failed);
  std::FILE* aggregates = OpenOutput(o.aggregates_out, &failed);
  if (failed) return 2;
  StdoutSink sink(late, aggregates);
  std::string source = o.events == "-" ? "<stdin>" : o.events;
  auto start = std::chrono::steady_clock::now();
  engine::EventDecoder decoder(rules, names);
  decoder.set_max_bytes(o.max_event_bytes);
  engine::Engine eng(rules, options, &sink);
  engine::Tables tables(rules, {});
  if (int rc = LoadTables(o, *rules, &tables); rc != 0) return rc;
  eng.set_tables(&tables);
  reader.value()->set_before_read([&] {
    std::fflush(stdout);
    if (late) std::fflush(late);
  });
  uint64_t malformed = 0;
  auto fed = Stream(reader.value().get(), source, o.max_event_bytes, &decoder, &eng, &tables, &malformed);
  if (!fed.ok()) {
    std::cerr << "cepheus: error: " << fed.status().message() << "\n";
    return 1;
  }
  eng.Finish();
  engine::ReplayCounts c;
  c.events = fed.value();
  c.malformed = malformed;
  c.late = eng.stats().late;
  c.alerts = eng.stats().alerts;
  std::fflush(stdout);
  if (late) std::fclose(late);
  if (aggregates) std::fclose(aggregates);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!o.quiet) {
    std::cerr << fmt::format("replay: {} events, {} alerts, {} late, {} malformed in {:.3f} s\n", c.events,
                             c.alerts, c.late, c.malformed, secs);
  }
  return 0;
}

Command AddReplay(CLI::App& app) {
  auto o = std::make_shared<ReplayOptions>();
  auto* sub = app.add_subcommand("replay", "Run the rules over a JSON-lines file of events");
  sub->add_option("--rules", o->rules, "Rule files or directories")->required();
  sub->add_option("--events", o->events, "JSON-lines file, or - for standard input");
  sub->add_option("--out-of-order", o->out_of_order, "Allowed out-of-orderness, e.g. 5s");
  sub->add_option("--config", o->config, "cepheus.yaml (its events section is used)");
  sub->add_option("--late", o->late_out, "Write late events to this file");
  sub->add_option("--aggregates", o->aggregates_out, "Write the aggregates' window records to this file (JSON lines)");
  sub->add_option("--max-event-bytes", o->max_event_bytes,
                  "Longest event line; longer ones are malformed (default 1048576)");
  sub->add_option("--table", o->tables,
                  "NAME=FILE: the records of table NAME (JSON lines), loaded before the first event; one per "
                  "table the rules read");
  sub->add_flag("--quiet", o->quiet, "No summary on standard error");
  return {sub, [o] { return RunReplay(*o); }};
}

}  // namespace cepheus::cli

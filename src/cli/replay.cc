// `cepheus replay`: JSON lines in, alerts out, deterministic.
//
// The whole input is read into one buffer with simdjson's padding after it
// (ReadWholeFile: errors as values, no copy), so each line is parsed in place
// (the bytes after a line are the next lines or the padding).
// Alerts are written to stdout as they are published; the summary goes to
// stderr.
#include "cli/replay.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/file.h"
#include "cepheus/engine/replay.h"
#include "cepheus/daemon/config.h"
#include "cepheus/daemon/rules_loader.h"

namespace cepheus::cli {

namespace {

class StdoutSink : public engine::AlertSink {
 public:
  explicit StdoutSink(std::FILE* late) : late_(late) {}
  void Publish(const engine::Alert& a) override {
    std::fwrite(a.json.data(), 1, a.json.size(), stdout);
    std::fputc('\n', stdout);
  }
  void Late(const nfa::Event& e) override {
    if (late_ == nullptr) return;
    std::fwrite(e.raw.data(), 1, e.raw.size(), late_);
    std::fputc('\n', late_);
  }

 private:
  std::FILE* late_;
};

}  // namespace

int RunReplay(const ReplayOptions& o) {
  auto rules = daemon::LoadAndCompile(o.rules, std::cerr);
  if (!rules) return 1;
  engine::EngineOptions options;
  engine::EventFieldNames names;
  if (!o.config.empty()) {
    auto config = daemon::LoadConfig(o.config);
    if (!config.ok()) {
      std::cerr << "cepheus: error: " << config.status().message() << "\n";
      return 2;
    }
    names = config.value().events;
    options.out_of_order = config.value().out_of_order;
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
  // Read the whole input as a stream (works for files, pipes and FIFOs).
  std::string all;
  if (Status st = ReadWholeFile(o.events, &all, simdjson::SIMDJSON_PADDING); !st.ok()) {
    std::cerr << "cepheus: error: " << st.message() << "\n";
    return 2;
  }
  // simdjson's padding after the last line, in the same buffer (no copy).
  const size_t size = all.size();
  all.append(simdjson::SIMDJSON_PADDING, '\0');
  std::string_view input(all.data(), size);
  std::FILE* late = nullptr;
  if (!o.late_out.empty()) {
    late = std::fopen(o.late_out.c_str(), "w");
    if (late == nullptr) {
      std::cerr << fmt::format("cepheus: error: cannot write {}\n", o.late_out);
      return 2;
    }
  }
  StdoutSink sink(late);
  std::string source = o.events == "-" ? "<stdin>" : o.events;
  auto start = std::chrono::steady_clock::now();
  engine::ReplayCounts c = engine::ReplayText(input, rules, options, names, &sink,
                              [&](uint64_t line, const std::string& why) {
                                std::cerr << fmt::format("{}:{}: malformed event skipped: {}\n", source, line, why);
                              });
  std::fflush(stdout);
  if (late) std::fclose(late);
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
  sub->add_flag("--quiet", o->quiet, "No summary on standard error");
  return {sub, [o] { return RunReplay(*o); }};
}

}  // namespace cepheus::cli

// `cepheus replay`: JSON lines in, alerts out, deterministic.
//
// The whole input is read into one buffer with simdjson's padding after it
// (ReadWholeFile: errors as values, no copy), so each line is parsed in place
// (the bytes after a line are the next lines or the padding).
// Alerts are written to stdout as they are published; the summary goes to
// stderr.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/file.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/replay.h"
#include "daemon/rules_loader.h"

namespace cepheus::daemon {

ReplayCounts ReplayText(std::string_view text, std::shared_ptr<const nfa::CompiledRuleSet> rules,
                        const engine::EngineOptions& options, const engine::EventFieldNames& names,
                        engine::AlertSink* sink,
                        const std::function<void(uint64_t, const std::string&)>& on_malformed) {
  ReplayCounts c;
  engine::EventDecoder decoder(rules, names);
  engine::Engine eng(rules, options, sink);
  nfa::Position pos;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(at, nl - at);
    at = nl + 1;
    ++c.lines;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    pos.offset = static_cast<int64_t>(c.lines);
    auto ev = decoder.Decode(line, pos, /*padded=*/true);
    if (!ev.ok()) {
      ++c.malformed;
      if (on_malformed) on_malformed(c.lines, ev.status().message());
      continue;
    }
    ++c.events;
    eng.Push(std::move(ev).value());
  }
  eng.Finish();
  c.late = eng.stats().late;
  c.alerts = eng.stats().alerts;
  return c;
}

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
  auto rules = LoadAndCompile(o.rules, std::cerr);
  if (!rules) return 1;
  engine::EngineOptions options;
  engine::EventFieldNames names;
  if (!o.config.empty()) {
    auto config = LoadConfig(o.config);
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
  ReplayCounts c = ReplayText(input, rules, options, names, &sink,
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

}  // namespace cepheus::daemon

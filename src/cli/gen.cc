// `cepheus gen`: the generator (src/gen) to standard output, or produced to
// Kafka at a steady rate, keyed by a field of each event.
#include "cli/gen.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/common/time.h"
#include "cepheus/io/kafka.h"
#include "cepheus/gen/generator.h"

namespace cepheus::cli {

int RunGen(const GenCommandOptions& o) {
  gen::GenOptions g;
  g.users = o.users;
  g.events = o.events;
  g.seed = o.seed;
  g.fraud_rate = o.fraud_rate;
  g.zipf = o.zipf;
  auto d = ParseDuration(o.out_of_order);
  if (!d) {
    std::cerr << fmt::format("cepheus: error: --out-of-order '{}' is not a duration (e.g. 5s)\n", o.out_of_order);
    return 2;
  }
  g.out_of_order = *d;
  g.malformed_rate = o.malformed;
  // --labels: one JSON line per planted incident (what `backtest --labels` reads).
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> labels(nullptr, &std::fclose);
  std::function<void(std::string_view)> write_label = [&](std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), labels.get());
    std::fputc('\n', labels.get());
  };
  if (!o.labels.empty()) {
    labels.reset(std::fopen(o.labels.c_str(), "w"));
    if (!labels) {
      std::cerr << fmt::format("cepheus: error: cannot write {}: {}\n", o.labels, std::strerror(errno));
      return 1;
    }
    g.labels = &write_label;
  }
  if (!o.kafka.empty()) {
    auto producer = io::KafkaProducer::Create(o.kafka, {});
    if (!producer.ok()) {
      std::cerr << "cepheus: error: " << producer.status().message() << "\n";
      return 1;
    }
    simdjson::dom::parser parser;
    Status failed;
    auto started = std::chrono::steady_clock::now();
    uint64_t n = 0;
    gen::GenStats s = gen::GenerateEvents(g, [&](std::string_view line) {
      if (!failed.ok()) return;
      if (o.rate > 0) {
        std::this_thread::sleep_until(started + std::chrono::microseconds(++n * 1000000 / o.rate));
        producer.value()->Poll(0);
      }
      std::string key;
      simdjson::dom::element doc;
      std::string_view k;
      if (!parser.parse(line.data(), line.size()).get(doc) && !doc[o.key_field].get_string().get(k)) key = k;
      failed = producer.value()->Produce(o.topic, key, line);
    });
    if (failed.ok()) failed = producer.value()->Flush(30000);
    if (!failed.ok() || producer.value()->delivery_failures() > 0) {
      std::cerr << "cepheus: error: " << (failed.ok() ? "some messages were not delivered" : failed.message())
                << "\n";
      return 1;
    }
    std::cerr << fmt::format("gen: {} events produced to {}, {} fraud incidents planted, {} malformed records\n",
                             s.events, o.topic, s.incidents, s.malformed);
    return 0;
  }
  static char buf[1 << 16];
  std::setvbuf(stdout, buf, _IOFBF, sizeof buf);
  gen::GenStats s = gen::GenerateEvents(g, [](std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  });
  std::fflush(stdout);
  if (labels && std::fflush(labels.get()) != 0) {
    std::cerr << fmt::format("cepheus: error: cannot write {}: {}\n", o.labels, std::strerror(errno));
    return 1;
  }
  std::cerr << fmt::format("gen: {} events, {} fraud incidents planted, {} malformed records\n", s.events,
                           s.incidents, s.malformed);
  return 0;
}

Command AddGen(CLI::App& app) {
  auto o = std::make_shared<GenCommandOptions>();
  auto* sub = app.add_subcommand("gen", "Generate synthetic e-commerce events as JSON lines");
  sub->add_option("--users", o->users, "Number of users")->check(CLI::Range(1LL, 100000000LL));
  sub->add_option("--events", o->events, "Number of events")->check(CLI::Range(0LL, 10000000000LL));
  sub->add_option("--seed", o->seed, "Random seed");
  sub->add_option("--zipf", o->zipf, "Skew of users: user N has weight N^-S (1.0 with 100000 users gives the busiest ~8%)")
      ->check(CLI::Range(0.0, 4.0));
  sub->add_option("--fraud-rate", o->fraud_rate, "Probability that an event starts a fraud incident")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--out-of-order", o->out_of_order, "Emit some events up to this late, e.g. 5s");
  sub->add_option("--malformed", o->malformed, "Also emit this fraction of malformed records (for tests)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--rate", o->rate, "With --kafka: events per second (0: as fast as possible)")
      ->check(CLI::Range(0, 10000000));
  sub->add_option("--kafka", o->kafka, "Produce to Kafka at these brokers instead of printing");
  sub->add_option("--topic", o->topic, "Topic to produce to (with --kafka)");
  sub->add_option("--key", o->key_field, "Event field used as the message key (with --kafka)");
  sub->add_option("--labels", o->labels, "Write the planted incidents to this file: {key, from, to, label} per line");
  return {sub, [o] { return RunGen(*o); }};
}

}  // namespace cepheus::cli

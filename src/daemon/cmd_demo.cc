// `cepheus demo`: the whole pipeline in one process, with no set-up.
//
// librdkafka's mock cluster plays the Kafka cluster; a generator thread
// produces synthetic events (with fraud planted, a few out of order and one in
// a thousand malformed) at a steady rate in wall-clock time; the main thread
// is the daemon's loop: consume, decode, one engine per partition, alerts to
// the alerts topic and to stdout, malformed records to the dead-letter topic
// with the reason and origin in headers, late events to the late topic, an
// idle timeout that moves a quiet partition's watermark by the wall clock,
// and Prometheus metrics served over HTTP.
//
// What the demo does not do (the daemon proper does): transactions, LMDB
// state, offset commits. The mock cluster could not prove them anyway.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "cepheus/io/kafka.h"
#include "cepheus/metrics/metrics.h"
#include "cepheus/version.h"
#include "daemon/commands.h"
#include "daemon/generator.h"
#include "daemon/rules_loader.h"

namespace cepheus::daemon {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

Millis WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Collects what one engine call produced, so the loop can publish it with the
// triggering record's time.
class Collect : public engine::AlertSink {
 public:
  void Publish(const engine::Alert& a) override { alerts.push_back(a); }
  void Late(const nfa::Event& e) override { late.emplace_back(e.raw); }
  std::vector<engine::Alert> alerts;
  std::vector<std::string> late;
};

std::string_view KeyOf(std::string_view json, std::string_view field) {
  std::string needle = fmt::format("\"{}\":\"", field);
  size_t at = json.find(needle);
  if (at == std::string_view::npos) return {};
  at += needle.size();
  size_t end = json.find('"', at);
  return end == std::string_view::npos ? std::string_view() : json.substr(at, end - at);
}

}  // namespace

int RunDemo(const DemoOptions& o) {
  auto rules = LoadAndCompile({o.rules}, std::cerr);
  if (!rules) return 1;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  g_stop = false;

  auto cluster = io::MockCluster::Create(3);
  if (!cluster.ok()) {
    std::cerr << "cepheus: error: " << cluster.status().message() << "\n";
    return 1;
  }
  const std::string brokers = cluster.value()->bootstraps();
  const std::string kEvents = "events", kAlerts = "alerts", kDead = "events.dead-letter", kLate = "events.late";
  for (auto [topic, parts] : {std::pair{kEvents, o.partitions}, {kAlerts, 1}, {kDead, 1}, {kLate, 1}}) {
    if (Status st = cluster.value()->CreateTopic(topic, parts); !st.ok()) {
      std::cerr << "cepheus: error: " << st.message() << "\n";
      return 1;
    }
  }
  auto metrics = metrics::Metrics::Start(o.metrics, CEPHEUS_VERSION, *rules);
  if (!metrics.ok()) {
    std::cerr << "cepheus: error: " << metrics.status().message() << " (choose another with --metrics)\n";
    return 1;
  }
  auto producer = io::KafkaProducer::Create(brokers, {});
  auto consumer = io::KafkaConsumer::Create(brokers, "cepheus-demo", {kEvents}, {});
  if (!producer.ok() || !consumer.ok()) {
    std::cerr << "cepheus: error: " << (producer.ok() ? consumer.status() : producer.status()).message() << "\n";
    return 1;
  }
  std::fprintf(stderr,
               "cepheus demo: in-process Kafka (librdkafka mock cluster) at %s\n"
               "  topics: %s (%d partitions), %s, %s, %s\n"
               "  rules: %zu from %s\n"
               "  metrics: http://127.0.0.1:%d/metrics (and /healthz)\n"
               "  %d events/s with fraud planted; alerts follow as JSON lines. Ctrl-C stops%s.\n",
               brokers.c_str(), kEvents.c_str(), o.partitions, kAlerts.c_str(), kDead.c_str(), kLate.c_str(),
               rules->programs.size(), o.rules.c_str(), metrics.value()->port(), o.rate,
               o.seconds > 0 ? fmt::format(" (or {} s)", o.seconds).c_str() : "");

  // The generator: event time is the wall clock; one record in a thousand is
  // broken on purpose to show the dead-letter path.
  std::atomic<uint64_t> produced{0};
  std::thread gen_thread([&] {
    GenOptions g;
    g.events = o.seconds > 0 ? static_cast<int64_t>(o.seconds) * o.rate * 2 : INT64_MAX / 4;
    g.users = 2000;
    g.seed = o.seed;
    g.fraud_rate = 0.03;  // dense, so a short demo shows every kind of alert
    g.out_of_order = 2000;
    g.start = WallMs();
    g.mean_gap = std::max<Millis>(1, 1000 / std::max(1, o.rate));
    g.stop = &g_stop;
    auto start = std::chrono::steady_clock::now();
    GenerateEvents(g, [&](std::string_view line) {
      uint64_t n = produced.fetch_add(1) + 1;
      std::this_thread::sleep_until(start + std::chrono::microseconds(n * 1000000 / std::max(1, o.rate)));
      std::string_view key = KeyOf(line, "user_id");
      std::string value = n % 1000 == 0 ? std::string(line.substr(0, line.size() / 2)) : std::string(line);
      (void)producer.value()->Produce(kEvents, key, value);
    });
  });

  std::map<int32_t, std::unique_ptr<engine::Engine>> engines;
  std::map<int32_t, Millis> last_seen;
  engine::EngineOptions eo;
  eo.out_of_order = 2000;
  const Millis idle_timeout = 2000;
  std::map<int32_t, std::unique_ptr<engine::EventDecoder>> decoders;
  Collect collect;
  uint64_t alerts = 0, malformed = 0;
  auto publish = [&](Millis source_time) {
    for (const auto& a : collect.alerts) {
      (void)producer.value()->Produce(kAlerts, a.key, a.json);
      if (!o.quiet) std::fprintf(stdout, "%s\n", a.json.c_str());
      if (source_time > 0) metrics.value()->ObserveEventToAlert(static_cast<double>(WallMs() - source_time) / 1000);
      ++alerts;
    }
    std::fflush(stdout);
    for (const auto& l : collect.late) (void)producer.value()->Produce(kLate, "", l);
    collect.alerts.clear();
    collect.late.clear();
  };
  auto started = std::chrono::steady_clock::now();
  auto next_tick = started;
  while (!g_stop) {
    if (o.seconds > 0 && std::chrono::steady_clock::now() - started >= std::chrono::seconds(o.seconds)) break;
    auto rec = consumer.value()->Poll(100);
    if (!rec.ok()) {
      std::cerr << "cepheus: error: " << rec.status().message() << "\n";
      break;
    }
    Millis now = WallMs();
    if (rec.value()) {
      engine::RawRecord& r = *rec.value();
      auto& eng = engines[r.pos.partition];
      auto& dec = decoders[r.pos.partition];
      if (!eng) {
        eng = std::make_unique<engine::Engine>(rules, eo, &collect);
        dec = std::make_unique<engine::EventDecoder>(rules, engine::EventFieldNames{});
      }
      last_seen[r.pos.partition] = now;
      metrics.value()->CountRecord();
      auto ev = dec->Decode(r.payload, r.pos);
      if (!ev.ok()) {
        ++malformed;
        metrics.value()->CountMalformed(1);
        (void)producer.value()->Produce(kDead, "", r.payload,
                                        {{"cepheus.error", ev.status().message()},
                                         {"cepheus.origin.topic", r.pos.topic},
                                         {"cepheus.origin.partition", std::to_string(r.pos.partition)},
                                         {"cepheus.origin.offset", std::to_string(r.pos.offset)}});
      } else {
        eng->Push(std::move(ev).value());
        publish(r.source_time);
      }
    }
    if (std::chrono::steady_clock::now() >= next_tick) {
      next_tick += std::chrono::milliseconds(500);
      for (auto& [p, eng] : engines) {
        if (now - last_seen[p] >= idle_timeout) {
          eng->AdvanceWatermark(now - eo.out_of_order);  // a quiet partition follows the clock
          publish(0);
        }
        metrics.value()->UpdateEngine(p, *eng, now);
      }
    }
    producer.value()->Poll(0);
  }
  g_stop = true;
  gen_thread.join();
  consumer.value()->Close();
  (void)producer.value()->Flush(5000);
  uint64_t evaluated = 0, late = 0;
  for (auto& [p, eng] : engines) {
    evaluated += eng->stats().evaluated;
    late += eng->stats().late;
  }
  std::fprintf(stderr, "cepheus demo: %llu events produced, %llu evaluated, %llu alerts, %llu late, %llu malformed\n",
               static_cast<unsigned long long>(produced.load()), static_cast<unsigned long long>(evaluated),
               static_cast<unsigned long long>(alerts), static_cast<unsigned long long>(late),
               static_cast<unsigned long long>(malformed));
  return 0;
}

}  // namespace cepheus::daemon

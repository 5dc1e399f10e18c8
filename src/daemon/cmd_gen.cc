// `cepheus gen` and `cepheus version`.
#include <chrono>
#include <cstdio>
#include <thread>
#include <iostream>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>
#include <boost/version.hpp>

#include "cepheus/io/kafka.h"
#include "cepheus/version.h"
#include "daemon/commands.h"
#include "daemon/generator.h"

namespace cepheus::daemon {

int RunGen(const GenCommandOptions& o) {
  GenOptions g;
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
    GenStats s = GenerateEvents(g, [&](std::string_view line) {
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
  GenStats s = GenerateEvents(g, [](std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  });
  std::fflush(stdout);
  std::cerr << fmt::format("gen: {} events, {} fraud incidents planted, {} malformed records\n", s.events,
                           s.incidents, s.malformed);
  return 0;
}

int RunVersion() {
  std::cout << fmt::format("cepheus {}\n", CEPHEUS_VERSION);
  std::cout << fmt::format("  boost {}.{}.{} (Spirit X3)\n", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                           BOOST_VERSION % 100);
  std::cout << fmt::format("  simdjson {}.{}.{} ({} implementation)\n", int(simdjson::SIMDJSON_VERSION_MAJOR), int(simdjson::SIMDJSON_VERSION_MINOR), int(simdjson::SIMDJSON_VERSION_REVISION),
                           simdjson::get_active_implementation()->name());
  std::cout << fmt::format("  fmt {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  std::cout << fmt::format("  librdkafka {}\n", rd_kafka_version_str());
  return 0;
}

}  // namespace cepheus::daemon

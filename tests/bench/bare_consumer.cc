// The baseline of the daemon's throughput target (tests/bench/throughput.py):
// a bare librdkafka consumer that reads every record of a topic and decodes
// nothing. A group member (subscribe, read_committed, from the earliest
// offset, the daemon's fetch settings) that counts records and payload bytes
// until every partition reported its end and `expected` records were seen,
// then prints "records N bytes B cpu_s C wall_s W" (CPU of every thread:
// librdkafka's fetch and decompression threads count, as they do for the
// daemon).
//
//   bare_consumer BROKERS TOPIC GROUP EXPECTED
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>

#include <librdkafka/rdkafkacpp.h>

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool Set(RdKafka::Conf* conf, const std::string& name, const std::string& value) {
  std::string err;
  if (conf->set(name, value, err) == RdKafka::Conf::CONF_OK) return true;
  std::fprintf(stderr, "bare_consumer: %s=%s: %s\n", name.c_str(), value.c_str(), err.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bare_consumer BROKERS TOPIC GROUP EXPECTED\n");
    return 2;
  }
  const long long expected = std::atoll(argv[4]);
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  bool ok = Set(conf.get(), "bootstrap.servers", argv[1]) && Set(conf.get(), "group.id", argv[3]) &&
            Set(conf.get(), "isolation.level", "read_committed") &&
            Set(conf.get(), "auto.offset.reset", "earliest") && Set(conf.get(), "enable.auto.commit", "false") &&
            Set(conf.get(), "enable.partition.eof", "true");
  if (!ok) return 2;
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) {
    std::fprintf(stderr, "bare_consumer: %s\n", err.c_str());
    return 1;
  }
  if (consumer->subscribe({argv[2]}) != RdKafka::ERR_NO_ERROR) return 1;
  auto wall0 = std::chrono::steady_clock::now();
  long long records = 0, bytes = 0;
  std::set<int32_t> at_end;
  for (;;) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(1000));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      ++records;
      bytes += static_cast<long long>(m->len());
      at_end.erase(m->partition());
    } else if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      at_end.insert(m->partition());
      std::vector<RdKafka::TopicPartition*> assigned;
      consumer->assignment(assigned);
      bool done = records >= expected && at_end.size() == assigned.size();
      RdKafka::TopicPartition::destroy(assigned);
      if (done) break;
    } else if (m->err() != RdKafka::ERR__TIMED_OUT) {
      std::fprintf(stderr, "bare_consumer: %s\n", m->errstr().c_str());
      if (m->err() == RdKafka::ERR__FATAL) return 1;
    }
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("records %lld bytes %lld cpu_s %.3f wall_s %.3f\n", records, bytes, CpuSeconds(), wall);
  consumer->close();
  return 0;
}

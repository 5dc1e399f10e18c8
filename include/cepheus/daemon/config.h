// The daemon's configuration: one schema, declared once per key.
//
// Every key has a dotted name, a kind, a default (as YAML text), a check and a
// description (redpanda's config declaration style). Loading a file refuses
// unknown keys and bad values with the file, line and column and the key
// named; then CEPHEUS_<KEY> environment variables override scalars
// (CEPHEUS_KAFKA_BROKERS for kafka.brokers); `kafka.consumer` and
// `kafka.producer` pass extra librdkafka properties through, checked by
// librdkafka itself. Secrets (passwords, keys, tokens) are never printed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/common/time.h"
#include "cepheus/engine/event_decoder.h"

namespace cepheus::daemon {

struct Config {
  std::vector<std::string> rules_paths;  // rule files or directories (rules.path)
  engine::EventFieldNames events;
  Millis out_of_order = 0;
  Millis idle_timeout = 0;
  Millis max_future_skew = 0;
  uint64_t max_buffered = 0;  // events.max_buffered, per partition
  struct Kafka {
    std::string brokers;
    std::string group_id;
    std::vector<std::string> input_topics;
    std::string partition_key;
    std::string alerts_topic;
    std::string aggregates_topic = "aggregates";
    std::string late_topic;
    std::string dead_letter_topic;
    std::string transactional_id;
    std::string changelog_topic;  // "" until resolved: <group_id>-changelog
    // Static membership: the group consumer's group.instance.id is
    // transactional_id unless `consumer` sets one (GroupConsumerProperties).
    bool static_membership = true;
    // Rules keyed on another field than partition_key run after re-keying
    // through internal topics (section 6.4); false: every rule runs on the
    // input partitions, as in v1.
    bool rekey = true;
    std::map<std::string, std::string> consumer;  // librdkafka properties
    std::map<std::string, std::string> producer;
  } kafka;
  struct State {
    std::string directory;
    uint64_t map_size = 0;
    uint64_t max_map_size = 0;
    Millis commit_interval = 0;
    uint64_t commit_records = 0;  // under a backlog, records per batch
    uint64_t max_reread = 0;      // records of a re-keying partition a restore reads again
    uint64_t max_keys = 0;  // per partition
    uint64_t max_resident_keys = 0;  // per partition; 0: every key in memory
  } state;
  struct Metrics {
    std::string listen;
    std::string username;  // HTTP basic auth on /metrics; "" for none
    std::string password;  // secret: never printed
  } metrics;
  struct Log {
    std::string level;
  } log;
  // Sources of the rules' tables (section 6.1), by table name.
  struct Table {
    std::string topic;
    uint64_t max_versions = 10000000;
  };
  std::map<std::string, Table> tables;
};

enum class ConfigKind { kString, kDuration, kCount, kBytes, kStringList, kPathList, kPassThrough, kTables };

struct ConfigKey {
  const char* name;         // dotted, e.g. "kafka.brokers"
  ConfigKind kind;
  const char* default_yaml;  // the default, as it appears in config/cepheus.yaml
  const char* description;
  // Parses `text` (a YAML scalar or an environment value) into `config`;
  // returns "" or the reason the value is refused.
  std::string (*set)(Config* config, const std::string& text);
};

// The schema, in the order config/cepheus.yaml lists the keys.
const std::vector<ConfigKey>& ConfigSchema();

// Every key at its default.
Config DefaultConfig();

// Reads `path` (YAML), then applies the environment (`environ` by default).
// Errors: "FILE:LINE:COL: unknown key 'kafka.bokers' (did you mean
// 'kafka.brokers'?)", "...: kafka.group_id: must not be empty", ...
Result<Config> LoadConfig(const std::string& path,
                          const std::map<std::string, std::string>* environment = nullptr);
// The same from YAML text (tests); `name` is used in messages.
Result<Config> ParseConfig(const std::string& yaml, const std::string& name,
                           const std::map<std::string, std::string>* environment = nullptr);

// The effective configuration as YAML, secrets shown as "<redacted>".
std::string DumpConfig(const Config& config);

// kafka.consumer as the group consumer gets it: with group.instance.id set to
// kafka.transactional_id under static membership, unless already given.
std::map<std::string, std::string> GroupConsumerProperties(const Config& config);

// True for librdkafka properties whose values must never be printed.
bool IsSecretProperty(const std::string& name);

}  // namespace cepheus::daemon

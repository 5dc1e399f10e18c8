// Configuration loading: schema table, YAML walk, environment overrides.
//
// The YAML document is walked as a tree of maps; each leaf's dotted path must
// name a schema key (else "unknown key", with the closest known key as a
// hint), and its scalar goes through the key's setter, which parses and
// checks it. Defaults are applied first from the same table, so a key's
// default, its check and its description live in one place. librdkafka
// pass-through properties are checked by handing them to a scratch
// rd_kafka_conf_t, so a misspelt property fails at load time, not at connect.
#include "cepheus/daemon/config.h"

#include <charconv>

#include "cepheus/common/file.h"
#include "cepheus/daemon/yaml_checks.h"

#include <librdkafka/rdkafka.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

extern char** environ;

namespace cepheus::daemon {
namespace {

// A configuration is a few dozen keys; past this many nodes (aliases
// expanded) it is not one.
constexpr size_t kMaxConfigNodes = 10000;
constexpr size_t kMaxConfigBytes = 1u << 20;  // a configuration is a few kilobytes

// librdkafka properties cepheus sets itself, which kafka.consumer and
// kafka.producer may not override (they would be silently replaced), and why.
const char* Reserved(std::string_view section, std::string_view key) {
  static const std::map<std::string_view, const char*> kConsumer = {
      {"bootstrap.servers", "from kafka.brokers"},
      {"group.id", "from kafka.group_id"},
      {"isolation.level", "read_committed: exactly-once reads only committed records"},
      {"enable.auto.commit", "false: offsets are committed in the transaction with the alerts"},
      {"auto.offset.reset", "earliest: a new group reads its topics from the start"},
      {"partition.assignment.strategy", "cooperative-sticky: partitions move one at a time, with their state"},
  };
  static const std::map<std::string_view, const char*> kProducer = {
      {"bootstrap.servers", "from kafka.brokers"},
      {"transactional.id", "from kafka.transactional_id"},
      {"enable.idempotence", "true: transactions need it"},
      {"acks", "all: transactions need it"},
  };
  const auto& table = section == "kafka.consumer" ? kConsumer : kProducer;
  auto it = table.find(key);
  return it == table.end() ? nullptr : it->second;
}

// "host:port" or "[v6]:port", the port a number from 0 (any free port) to 65535.
std::string CheckHostPort(const std::string& v) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0) return "must be host:port (for example 127.0.0.1:9464)";
  std::string_view port(v.data() + colon + 1, v.size() - colon - 1);
  unsigned n = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n > 65535) {
    return fmt::format("the port '{}' is not a number from 0 to 65535", port);
  }
  return "";
}

std::string NotEmpty(const std::string& v) { return v.empty() ? "must not be empty" : ""; }

std::string SetDuration(Millis* out, const std::string& v, bool allow_zero) {
  auto d = ParseDuration(v);
  if (!d) return fmt::format("'{}' is not a duration (a whole number and ms, s, m, h or d)", v);
  if (!allow_zero && *d == 0) return "must be longer than 0";
  *out = *d;
  return "";
}

// A whole number from 1 to `max`.
std::string SetCount(uint64_t* out, const std::string& v, uint64_t max, uint64_t min = 1) {
  uint64_t n = 0;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return fmt::format("'{}' is not a whole number", v);
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > max) return fmt::format("'{}' is more than the maximum, {}", v, max);
  }
  if (v.empty()) return "'' is not a whole number";
  if (n < min) return fmt::format("'{}' must be at least {}", v, min);
  *out = n;
  return "";
}

std::string SetBytes(uint64_t* out, const std::string& v) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
    n = n * 10 + static_cast<uint64_t>(v[i] - '0');
    if (n > (1ULL << 50)) return fmt::format("'{}' is too large", v);
    ++i;
  }
  std::string unit = v.substr(i);
  uint64_t mult = unit.empty() || unit == "B" ? 1
                  : unit == "KiB"            ? 1ULL << 10
                  : unit == "MiB"            ? 1ULL << 20
                  : unit == "GiB"            ? 1ULL << 30
                  : unit == "TiB"            ? 1ULL << 40
                                             : 0;
  if (i == 0 || mult == 0) return fmt::format("'{}' is not a size (e.g. 512MiB, 4GiB)", v);
  *out = n * mult;
  return "";
}

std::vector<std::string> SplitList(const std::string& v) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= v.size()) {
    size_t comma = v.find(',', at);
    if (comma == std::string::npos) comma = v.size();
    std::string item = v.substr(at, comma - at);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    at = comma + 1;
  }
  return out;
}

const std::vector<ConfigKey> kSchema = {
    {"rules.path", ConfigKind::kPathList, "/etc/cepheus/rules",
     "Rule file or directory (every *.rules file in it, in name order), or a list of them.",
     [](Config* c, const std::string& v) {
       c->rules_paths.clear();
       for (size_t at = 0; at <= v.size();) {
         size_t nl = std::min(v.find('\n', at), v.size());
         if (nl > at) c->rules_paths.push_back(v.substr(at, nl - at));
         at = nl + 1;
       }
       return c->rules_paths.empty() ? std::string("needs a rule file or directory") : std::string();
     }},
    {"events.type_field", ConfigKind::kString, "type", "Field that holds the event type.",
     [](Config* c, const std::string& v) { c->events.type = v; return NotEmpty(v); }},
    {"events.time_field", ConfigKind::kString, "ts",
     "Field that holds the event time: epoch milliseconds or an RFC 3339 string.",
     [](Config* c, const std::string& v) { c->events.time = v; return NotEmpty(v); }},
    {"events.id_field", ConfigKind::kString, "id", "Field that holds the optional event id.",
     [](Config* c, const std::string& v) { c->events.id = v; return NotEmpty(v); }},
    {"events.out_of_order", ConfigKind::kDuration, "0s",
     "Allowed out-of-orderness: watermark = largest time seen - this. Older events are late.",
     [](Config* c, const std::string& v) { return SetDuration(&c->out_of_order, v, true); }},
    {"events.idle_timeout", ConfigKind::kDuration, "30s",
     "A partition with no event for this long (wall clock) has its watermark advanced by the "
     "wall clock, to (now - idle_timeout - out_of_order), so absence rules still fire; a record "
     "still on its way when the partition resumes is late only if it took longer than that.",
     [](Config* c, const std::string& v) { return SetDuration(&c->idle_timeout, v, false); }},
    {"events.max_future_skew", ConfigKind::kDuration, "1h",
     "Events timed further than this ahead of the wall clock are malformed (they would push the "
     "watermark into the future and make every later event late).",
     [](Config* c, const std::string& v) { return SetDuration(&c->max_future_skew, v, false); }},
    {"events.max_buffered", ConfigKind::kCount, "1000000",
     "Most events one partition holds in its reorder buffer (waiting for the watermark, see out_of_order). "
     "When a new event would pass it, the watermark is raised to the oldest buffered event's time so that "
     "event is evaluated now: the out-of-orderness allowed shrinks for that moment, events older than the "
     "new watermark are late, and cepheus_limit_hits_total{limit=\"reorder_buffer\"} counts each event "
     "released early.",
     [](Config* c, const std::string& v) { return SetCount(&c->max_buffered, v, 1ULL << 32); }},
    {"kafka.brokers", ConfigKind::kString, "127.0.0.1:9092", "Bootstrap brokers, host:port[,...].",
     [](Config* c, const std::string& v) { c->kafka.brokers = v; return NotEmpty(v); }},
    {"kafka.group_id", ConfigKind::kString, "cepheus",
     "Consumer group; daemons with the same group share the input partitions.",
     [](Config* c, const std::string& v) { c->kafka.group_id = v; return NotEmpty(v); }},
    {"kafka.input_topics", ConfigKind::kStringList, "[events]", "Topics of events to read.",
     [](Config* c, const std::string& v) {
       c->kafka.input_topics = SplitList(v);
       return c->kafka.input_topics.empty() ? std::string("needs at least one topic") : std::string();
     }},
    {"kafka.partition_key", ConfigKind::kString, "user_id",
     "The event field the input topics are partitioned by; `cepheus check --config` warns about "
     "rules keyed on another field.",
     [](Config* c, const std::string& v) { c->kafka.partition_key = v; return NotEmpty(v); }},
    {"kafka.alerts_topic", ConfigKind::kString, "alerts", "Topic the alerts are published to.",
     [](Config* c, const std::string& v) { c->kafka.alerts_topic = v; return NotEmpty(v); }},
    {"kafka.late_topic", ConfigKind::kString, "\"\"",
     "Topic for late events; empty: late events are counted and dropped.",
     [](Config* c, const std::string& v) { c->kafka.late_topic = v; return std::string(); }},
    {"kafka.aggregates_topic", ConfigKind::kString, "aggregates",
     "Topic the aggregates' window records are published to (section 6.3), keyed by group.",
     [](Config* c, const std::string& v) { c->kafka.aggregates_topic = v; return NotEmpty(v); }},
    {"kafka.dead_letter_topic", ConfigKind::kString, "events.dead-letter",
     "Topic for malformed records, with the reason and origin in headers.",
     [](Config* c, const std::string& v) { c->kafka.dead_letter_topic = v; return NotEmpty(v); }},
    {"kafka.transactional_id", ConfigKind::kString, "cepheus",
     "Prefix of the producer's transactional id; unique per daemon.",
     [](Config* c, const std::string& v) { c->kafka.transactional_id = v; return NotEmpty(v); }},
    {"kafka.static_membership", ConfigKind::kString, "true",
     "true: the consumer is a static member of its group (group.instance.id is transactional_id unless "
     "kafka.consumer sets it), so a restarted daemon gets its partitions back at once instead of after a "
     "rebalance; a daemon stopped for good keeps its partitions until session.timeout.ms. false: a dynamic member.",
     [](Config* c, const std::string& v) {
       if (v != "true" && v != "false") return std::string("must be true or false");
       c->kafka.static_membership = v == "true";
       return std::string();
     }},
    {"kafka.rekey", ConfigKind::kString, "true",
     "true: rules keyed on another field than partition_key run after re-keying: the daemon forwards the "
     "events they read to the topic <group_id>-rekey-<field> (created with the input's partition count) in "
     "the transaction that consumes them, with watermark marks, and runs those rules on its partitions. "
     "false: every rule runs on the input partitions (a rule keyed on another field sees, per partition, "
     "only that partition's events, as in v1).",
     [](Config* c, const std::string& v) {
       if (v != "true" && v != "false") return std::string("must be true or false");
       c->kafka.rekey = v == "true";
       return std::string();
     }},
    {"kafka.changelog_topic", ConfigKind::kString, "\"\"",
     "Compacted topic that receives every state change in the same transaction as the alerts, so "
     "a partition's partial matches follow it to another daemon; empty: <group_id>-changelog. "
     "Needs at least as many partitions as the input topics.",
     [](Config* c, const std::string& v) { c->kafka.changelog_topic = v; return std::string(); }},
    {"kafka.consumer", ConfigKind::kPassThrough, "{}",
     "Extra librdkafka consumer properties (TLS, SASL, ...), passed through as given.", nullptr},
    {"kafka.producer", ConfigKind::kPassThrough, "{}",
     "Extra librdkafka producer properties (TLS, SASL, ...), passed through as given.", nullptr},
    {"state.directory", ConfigKind::kString, "/var/lib/cepheus",
     "Directory of the LMDB state (partial matches, timers, offsets).",
     [](Config* c, const std::string& v) { c->state.directory = v; return NotEmpty(v); }},
    {"state.map_size", ConfigKind::kBytes, "1GiB",
     "Initial LMDB map size; it grows when full.",
     [](Config* c, const std::string& v) {
       std::string err = SetBytes(&c->state.map_size, v);
       if (err.empty() && c->state.map_size < (1ULL << 20)) err = "must be at least 1MiB";
       return err;
     }},
    {"state.max_map_size", ConfigKind::kBytes, "64GiB",
     "Largest the LMDB map may grow to; cepheus_lmdb_map_used_ratio is the state's share of it, and the "
     "daemon stops with an error rather than grow past it. Keep it below the state directory's free space.",
     [](Config* c, const std::string& v) { return SetBytes(&c->state.max_map_size, v); }},
    {"state.commit_interval", ConfigKind::kDuration, "100ms",
     "With no backlog (every fetched record handled), how often the state and the consumed offsets are "
     "committed together (one Kafka transaction); a batch holding an alert is committed at once, and the "
     "re-keyed rules' watermarks move at each commit. Shorter: the re-keyed rules' alerts come sooner, for more "
     "commits (CPU, LMDB and broker writes) at low load.",
     [](Config* c, const std::string& v) { return SetDuration(&c->state.commit_interval, v, false); }},
    {"state.commit_records", ConfigKind::kCount, "50000",
     "Under a backlog (records fetched and not yet handled), a batch is committed every this many records, "
     "and at least once a second. Each key's state is written once per batch whatever the number of its "
     "events, so larger batches cost less per event; alerts wait for their batch, and an aborted or crashed "
     "batch is read again.",
     [](Config* c, const std::string& v) { return SetCount(&c->state.commit_records, v, 100000000); }},
    {"state.max_reread", ConfigKind::kCount, "100000",
     "With kafka.rekey: the most records of a re-keying partition a restore reads again. Events wait there "
     "for the next watermark mark; they are not saved in the state but read again from the re-keying topic "
     "after a restart, an abort or a reload, unless one waits from further back than this many records, "
     "which is then saved. Keep the re-keying topics' retention above this many records per partition.",
     [](Config* c, const std::string& v) { return SetCount(&c->state.max_reread, v, 1ULL << 40); }},
    {"state.max_keys", ConfigKind::kCount, "1000000",
     "Most keys one partition keeps state for (each live key costs 1-3 KB of memory with the shipped rules: "
     "1.7 KB for a one-event key, tests/bench/throughput.py). At the limit, an event whose key holds no state "
     "starts nothing: the keys that hold state go on as before, and "
     "cepheus_limit_hits_total{limit=\"keys_per_partition\"} counts each event refused so.",
     [](Config* c, const std::string& v) { return SetCount(&c->state.max_keys, v, 1ULL << 32); }},
    {"state.max_resident_keys", ConfigKind::kCount, "10000",
     "Most keys one partition holds in memory; the others are in LMDB only (~150 bytes of memory each) and "
     "read back when an event, a window's end or a cooldown's end concerns them. After each commit the keys "
     "least recently used go, down to this many. Higher: more memory (1-3 KB a key with the shipped rules), "
     "fewer reads from LMDB (~20 microseconds each: the record's events are decoded again). 0: every key stays "
     "in memory.",
     [](Config* c, const std::string& v) { return SetCount(&c->state.max_resident_keys, v, 1ULL << 32, 0); }},
    {"metrics.listen", ConfigKind::kString, "127.0.0.1:9464",
     "Address of the Prometheus endpoint (/metrics, /healthz); loopback by default.",
     [](Config* c, const std::string& v) {
       c->metrics.listen = v;
       return CheckHostPort(v);
     }},
    {"metrics.username", ConfigKind::kString, "",
     "With metrics.password: HTTP basic auth required on /metrics (/healthz stays open for liveness "
     "probes). Empty: no auth. Put it behind TLS (a reverse proxy) if the network is not trusted.",
     [](Config* c, const std::string& v) { c->metrics.username = v; return std::string(); }},
    {"metrics.password", ConfigKind::kString, "",
     "The basic-auth password (secret: never logged or printed); set it with CEPHEUS_METRICS_PASSWORD "
     "to keep it out of the file.",
     [](Config* c, const std::string& v) { c->metrics.password = v; return std::string(); }},
    {"log.level", ConfigKind::kString, "info", "error, warning, info or debug.",
     [](Config* c, const std::string& v) {
       c->log.level = v;
       return v == "error" || v == "warning" || v == "info" || v == "debug"
                  ? std::string()
                  : std::string("must be error, warning, info or debug");
     }},
    {"tables", ConfigKind::kTables, "{}",
     "Where the rules' tables come from (section 6.1 of the rule language): NAME: {topic: T, "
     "max_versions: N}. Every daemon reads every partition of T from its start, before it says READY, "
     "then each update as it comes; max_versions (default 10000000) bounds the versions the table keeps.",
     [](Config*, const std::string&) { return std::string(); }},
};

const ConfigKey* FindKey(const std::string& name) {
  for (const auto& k : kSchema) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

bool IsSection(const std::string& prefix) {
  return std::any_of(kSchema.begin(), kSchema.end(), [&](const ConfigKey& k) {
    return std::string_view(k.name).substr(0, prefix.size() + 1) == prefix + ".";
  });
}

size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] != b[j - 1])});
      prev = cur;
    }
  }
  return row[b.size()];
}

std::string Hint(const std::string& name) {
  const ConfigKey* best = nullptr;
  size_t best_d = 4;
  for (const auto& k : kSchema) {
    size_t d = Distance(name, k.name);
    if (d < best_d) best = &k, best_d = d;
  }
  return best ? fmt::format(" (did you mean '{}'?)", best->name) : "";
}

std::string CheckRdkafka(const char* which, const std::map<std::string, std::string>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string err;
  char buf[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), buf, sizeof buf) != RD_KAFKA_CONF_OK) {
      err = fmt::format("kafka.{}.{}: {}", which, k, buf);
      break;
    }
  }
  rd_kafka_conf_destroy(conf);
  return err;
}

class Loader {
 public:
  Loader(std::string name, Config* config) : name_(std::move(name)), config_(config) {}

  Status Walk(const YAML::Node& node, const std::string& prefix) {
    if (!node.IsMap()) {
      return Error(node, fmt::format("{} must be a map of keys", prefix.empty() ? "the file" : prefix));
    }
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      std::string path = prefix.empty() ? key : prefix + "." + key;
      const ConfigKey* k = FindKey(path);
      if (k == nullptr) {
        if (IsSection(path)) {
          if (Status st = Walk(kv.second, path); !st.ok()) return st;
          continue;
        }
        return Error(kv.first, fmt::format("unknown key '{}'{}", path, Hint(path)));
      }
      if (Status st = Set(*k, kv.second); !st.ok()) return st;
    }
    return Status::Ok();
  }

 private:
  Status Error(const YAML::Node& at, const std::string& msg) {
    YAML::Mark m = at.Mark();
    return Status::InvalidArgument(fmt::format("{}:{}:{}: {}", name_, m.line + 1, m.column + 1, msg));
  }

  // `tables:`: NAME: {topic: T, max_versions: N}, each key checked.
  Status SetTables(const YAML::Node& v) {
    if (v.IsNull()) return Status::Ok();
    if (!v.IsMap()) return Error(v, "tables must be a map of table names to {topic: ..., max_versions: ...}");
    for (const auto& t : v) {
      std::string name = t.first.as<std::string>();
      if (!t.second.IsMap()) return Error(t.second, fmt::format("tables.{} must be a map with a topic", name));
      Config::Table table;
      for (const auto& kv : t.second) {
        std::string key = kv.first.as<std::string>();
        if (!kv.second.IsScalar()) return Error(kv.second, fmt::format("tables.{}.{} must be a single value", name, key));
        std::string value = kv.second.as<std::string>();
        if (key == "topic") {
          table.topic = value;
        } else if (key == "max_versions") {
          std::string err = SetCount(&table.max_versions, value, 1ULL << 40);
          if (!err.empty()) return Error(kv.second, fmt::format("tables.{}.max_versions: {}", name, err));
        } else {
          return Error(kv.first, fmt::format("unknown key 'tables.{}.{}' (expected topic or max_versions)", name, key));
        }
      }
      if (table.topic.empty()) return Error(t.first, fmt::format("tables.{} has no topic", name));
      config_->tables[name] = table;
    }
    return Status::Ok();
  }

  Status Set(const ConfigKey& k, const YAML::Node& v) {
    if (k.kind == ConfigKind::kTables) return SetTables(v);
    if (k.kind == ConfigKind::kPassThrough) {
      if (!v.IsMap() && !v.IsNull()) return Error(v, fmt::format("{} must be a map of librdkafka properties", k.name));
      auto& dest = std::string(k.name) == "kafka.consumer" ? config_->kafka.consumer : config_->kafka.producer;
      if (v.IsMap()) {
        for (const auto& p : v) {
          std::string key = p.first.as<std::string>();
          if (const char* why = Reserved(k.name, key)) {
            return Error(p.first, fmt::format("{}: '{}' is set by cepheus ({}); remove it", k.name, key, why));
          }
          dest[key] = p.second.as<std::string>();
        }
      }
      std::string err = CheckRdkafka(std::string(k.name) == "kafka.consumer" ? "consumer" : "producer", dest);
      if (!err.empty()) return Error(v, err);
      return Status::Ok();
    }
    std::string text;
    if ((k.kind == ConfigKind::kStringList || k.kind == ConfigKind::kPathList) && v.IsSequence()) {
      // Paths are one a line (a path may hold a comma); other lists, comma-separated.
      const char* sep = k.kind == ConfigKind::kPathList ? "\n" : ",";
      for (const auto& item : v) text += (text.empty() ? "" : sep) + item.as<std::string>();
    } else if (v.IsScalar() || v.IsNull()) {
      text = v.IsNull() ? "" : v.as<std::string>();
    } else {
      return Error(v, fmt::format("{} must be a single value", k.name));
    }
    std::string err = k.set(config_, text);
    if (!err.empty()) return Error(v, fmt::format("{}: {}", k.name, err));
    return Status::Ok();
  }

  std::string name_;
  Config* config_;
};

std::string EnvName(const std::string& key) {
  std::string out = "CEPHEUS_";
  for (char c : key) out.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

Status ApplyEnvironment(Config* config, const std::map<std::string, std::string>* environment) {
  std::map<std::string, std::string> env;
  if (environment != nullptr) {
    env = *environment;
  } else {
    for (char** e = environ; e && *e; ++e) {
      std::string kv = *e;
      size_t eq = kv.find('=');
      if (eq != std::string::npos && kv.compare(0, 8, "CEPHEUS_") == 0) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  std::set<std::string> known;
  for (const auto& k : kSchema) {
    if (k.kind == ConfigKind::kPassThrough || k.kind == ConfigKind::kTables) continue;
    std::string name = EnvName(k.name);
    known.insert(name);
    auto it = env.find(name);
    if (it == env.end()) continue;
    std::string err = k.set(config, it->second);
    if (!err.empty()) return Status::InvalidArgument(fmt::format("{} (for {}): {}", name, k.name, err));
  }
  for (const auto& [name, value] : env) {
    if (name.compare(0, 8, "CEPHEUS_") == 0 && !known.count(name) && name != "CEPHEUS_CONFIG") {
      return Status::InvalidArgument(fmt::format("unknown environment override {}", name));
    }
  }
  return Status::Ok();
}

}  // namespace

const std::vector<ConfigKey>& ConfigSchema() { return kSchema; }

bool IsSecretProperty(const std::string& name) {
  static const char* kSecret[] = {"password", "secret", "sasl.oauthbearer.config", "ssl.key.pem",
                                  "ssl_key", "token", "private"};
  for (const char* s : kSecret) {
    if (name.find(s) != std::string::npos) return true;
  }
  return false;
}

Config DefaultConfig() {
  Config c;
  for (const auto& k : kSchema) {
    if (k.kind == ConfigKind::kPassThrough || k.kind == ConfigKind::kTables) continue;
    YAML::Node n = YAML::Load(k.default_yaml);
    std::string text;
    if (n.IsSequence()) {
      for (const auto& item : n) text += (text.empty() ? "" : ",") + item.as<std::string>();
    } else if (n.IsScalar()) {
      text = n.as<std::string>();
    }
    k.set(&c, text);
  }
  return c;
}

Result<Config> ParseConfig(const std::string& yaml, const std::string& name,
                           const std::map<std::string, std::string>* environment) {
  Config config = DefaultConfig();
  try {
    YAML::Node doc = YAML::Load(yaml);
    if (Status st = CheckYamlDocument(doc, name, kMaxConfigNodes); !st.ok()) return st;
    if (!doc.IsNull()) {
      Loader loader(name, &config);
      if (Status st = loader.Walk(doc, ""); !st.ok()) return st;
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(
        fmt::format("{}:{}:{}: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (Status st = ApplyEnvironment(&config, environment); !st.ok()) return st;
  // A message may not outlive its transaction (KIP-664; librdkafka refuses it
  // later, with a less helpful message): checked where the user can fix it.
  auto producer_ms = [&](const char* key, long long fallback) {
    auto it = config.kafka.producer.find(key);
    return it == config.kafka.producer.end() ? fallback : std::atoll(it->second.c_str());
  };
  if (config.kafka.producer.count("message.timeout.ms") > 0 &&
      producer_ms("message.timeout.ms", 0) >= producer_ms("transaction.timeout.ms", 60000)) {
    return Status::InvalidArgument(fmt::format(
        "{}: kafka.producer: message.timeout.ms ({}) must be below transaction.timeout.ms ({}): an alert may not "
        "outlive the transaction that publishes it",
        name, producer_ms("message.timeout.ms", 0), producer_ms("transaction.timeout.ms", 60000)));
  }
  if (config.metrics.username.empty() != config.metrics.password.empty()) {
    return Status::InvalidArgument(
        fmt::format("{}: metrics.username and metrics.password go together (both set, or both empty)", name));
  }
  if (config.state.max_map_size < config.state.map_size) {
    return Status::InvalidArgument(fmt::format("{}: state.max_map_size ({} bytes) is below state.map_size ({} bytes)",
                                               name, config.state.max_map_size, config.state.map_size));
  }
  return config;
}

Result<Config> LoadConfig(const std::string& path, const std::map<std::string, std::string>* environment) {
  std::string text;
  // "cannot read PATH: why"; a configuration is a few kilobytes.
  if (Status st = ReadWholeFile(path, &text, 0, kMaxConfigBytes); !st.ok()) return st;
  return ParseConfig(text, path, environment);
}

std::map<std::string, std::string> GroupConsumerProperties(const Config& c) {
  auto props = c.kafka.consumer;
  if (c.kafka.static_membership) props.emplace("group.instance.id", c.kafka.transactional_id);
  return props;
}

std::string DumpConfig(const Config& c) {
  // Double-quoted YAML scalars, escaped by yaml-cpp, so that a value with a
  // quote, a backslash or a newline prints as itself and reads back the same.
  auto q = [](const std::string& s) {
    YAML::Emitter e;
    e << YAML::DoubleQuoted << s;
    return std::string(e.c_str());
  };
  auto props = [&](const std::map<std::string, std::string>& m) {
    if (m.empty()) return std::string(" {}\n");
    std::string out = "\n";
    for (const auto& [k, v] : m) out += fmt::format("    {}: {}\n", k, IsSecretProperty(k) ? "<redacted>" : q(v));
    return out;
  };
  std::string out;
  std::vector<std::string> paths;
  for (const auto& p : c.rules_paths) paths.push_back(q(p));
  std::string joined = fmt::format("{}", fmt::join(paths, ", "));
  out += fmt::format("rules:\n  path: {}\n", paths.size() == 1 ? joined : "[" + joined + "]");
  out += fmt::format("events:\n  type_field: {}\n  time_field: {}\n  id_field: {}\n  out_of_order: {}\n"
                     "  idle_timeout: {}\n  max_future_skew: {}\n  max_buffered: {}\n",
                     q(c.events.type), q(c.events.time), q(c.events.id), FormatDuration(c.out_of_order),
                     FormatDuration(c.idle_timeout), FormatDuration(c.max_future_skew), c.max_buffered);
  std::string topics;
  for (const auto& t : c.kafka.input_topics) topics += (topics.empty() ? "" : ", ") + q(t);
  out += fmt::format("kafka:\n  brokers: {}\n  group_id: {}\n  input_topics: [{}]\n  partition_key: {}\n"
                     "  alerts_topic: {}\n  aggregates_topic: {}\n  late_topic: {}\n  dead_letter_topic: {}\n"
                     "  transactional_id: {}\n",
                     q(c.kafka.brokers), q(c.kafka.group_id), topics, q(c.kafka.partition_key),
                     q(c.kafka.alerts_topic), q(c.kafka.aggregates_topic), q(c.kafka.late_topic),
                     q(c.kafka.dead_letter_topic),
                     q(c.kafka.transactional_id));
  out += fmt::format("  static_membership: {}\n  rekey: {}\n  changelog_topic: {}\n",
                     c.kafka.static_membership ? "true" : "false", c.kafka.rekey ? "true" : "false",
                     q(c.kafka.changelog_topic));
  out += "  consumer:" + props(c.kafka.consumer);
  out += "  producer:" + props(c.kafka.producer);
  out += fmt::format("state:\n  directory: {}\n  map_size: {}\n  max_map_size: {}\n  commit_interval: {}\n"
                     "  commit_records: {}\n  max_reread: {}\n  max_keys: {}\n  max_resident_keys: {}\n",
                     q(c.state.directory), c.state.map_size, c.state.max_map_size,
                     FormatDuration(c.state.commit_interval), c.state.commit_records, c.state.max_reread,
                     c.state.max_keys, c.state.max_resident_keys);
  out += fmt::format("metrics:\n  listen: {}\n  username: {}\n  password: {}\nlog:\n  level: {}\n",
                     q(c.metrics.listen), q(c.metrics.username),
                     c.metrics.password.empty() ? q("") : std::string("<redacted>"), q(c.log.level));
  out += c.tables.empty() ? "tables: {}\n" : "tables:\n";
  for (const auto& [name, t] : c.tables) {
    out += fmt::format("  {}:\n    topic: {}\n    max_versions: {}\n", q(name), q(t.topic), t.max_versions);
  }
  return out;
}

}  // namespace cepheus::daemon

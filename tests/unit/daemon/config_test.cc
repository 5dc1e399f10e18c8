// The configuration schema: defaults, the shipped file, refusals with the key
// named and its position, environment overrides, librdkafka pass-through and
// secret redaction.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "cepheus/daemon/config.h"

using namespace cepheus;
using daemon::Config;

namespace {

const std::map<std::string, std::string> kNoEnv;

std::string Error(const std::string& yaml, const std::map<std::string, std::string>& env = kNoEnv) {
  auto r = daemon::ParseConfig(yaml, "c.yaml", &env);
  return r.ok() ? "" : r.status().message();
}

}  // namespace

TEST_CASE("the shipped config file lists every key of the schema at its default") {
  std::ifstream in(std::string(CEPHEUS_SOURCE_DIR) + "/config/cepheus.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = daemon::ParseConfig(text.str(), "cepheus.yaml", &kNoEnv);
  INFO((parsed.ok() ? "" : parsed.status().message()));
  REQUIRE(parsed.ok());
  CHECK(daemon::DumpConfig(parsed.value()) == daemon::DumpConfig(daemon::DefaultConfig()));
  for (const auto& key : daemon::ConfigSchema()) {
    std::string name = key.name;
    CAPTURE(key.name);
    if (name.find('.') == std::string::npos) {  // a section of its own
      CHECK(text.str().find("\n" + name + ":") != std::string::npos);
      continue;
    }
    std::string leaf = name.substr(name.find('.') + 1);
    CHECK(text.str().find("  " + leaf + ":") != std::string::npos);
  }
}

TEST_CASE("rules.path is one rule file or directory, or a list of them, and a path may hold a comma") {
  auto one = daemon::ParseConfig("rules:\n  path: /srv/rules, old\n", "one.yaml", &kNoEnv);
  REQUIRE(one.ok());
  CHECK(one.value().rules_paths == std::vector<std::string>{"/srv/rules, old"});
  auto two = daemon::ParseConfig("rules:\n  path: [/srv/rules, /srv/rules/tables]\n", "two.yaml", &kNoEnv);
  REQUIRE(two.ok());
  CHECK(two.value().rules_paths == std::vector<std::string>{"/srv/rules", "/srv/rules/tables"});
  CHECK(daemon::DefaultConfig().rules_paths == std::vector<std::string>{"/etc/cepheus/rules"});
  auto none = daemon::ParseConfig("rules:\n  path: []\n", "none.yaml", &kNoEnv);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("rules.path: needs a rule file or directory") != std::string::npos);
}

TEST_CASE("the printed configuration reads back the same, quotes, backslashes and newlines in values included") {
  daemon::Config c = daemon::DefaultConfig();
  c.rules_paths = {"/etc/cepheus/rules \"new\"\\v2", "/srv/rules, v3"};
  c.kafka.group_id = "fraud\nteam: 'a'";
  c.kafka.consumer["client.rack"] = "rack \"1\"";
  std::string dump = daemon::DumpConfig(c);
  auto back = daemon::ParseConfig(dump, "printed.yaml", &kNoEnv);
  INFO(dump);
  INFO((back.ok() ? "" : back.status().message()));
  REQUIRE(back.ok());
  CHECK(back.value().rules_paths == c.rules_paths);
  CHECK(back.value().kafka.group_id == c.kafka.group_id);
  CHECK(back.value().kafka.consumer.at("client.rack") == "rack \"1\"");
  CHECK(daemon::DumpConfig(back.value()) == dump);
}

TEST_CASE("an unknown key is refused with its position and the closest known key") {
  std::string err = Error("kafka:\n  bokers: x:1\n");
  CHECK(err == "c.yaml:2:3: unknown key 'kafka.bokers' (did you mean 'kafka.brokers'?)");
  CHECK(Error("nonsense: 1\n") == "c.yaml:1:1: unknown key 'nonsense'");
}

TEST_CASE("state.max_resident_keys is 10000 a partition unless set, and 0 keeps every key in memory") {
  auto defaults = daemon::ParseConfig("", "c.yaml", &kNoEnv);
  REQUIRE(defaults.ok());
  CHECK(defaults.value().state.max_resident_keys == 10000);
  auto none = daemon::ParseConfig("state:\n  max_resident_keys: 0\n", "c.yaml", &kNoEnv);
  REQUIRE(none.ok());
  CHECK(none.value().state.max_resident_keys == 0);
  CHECK(Error("state:\n  max_resident_keys: -1\n").find("state.max_resident_keys: '-1' is not a whole number") !=
        std::string::npos);
}

TEST_CASE("bad values are refused with the key named") {
  CHECK(Error("events:\n  out_of_order: soon\n").find("events.out_of_order: 'soon' is not a duration") != std::string::npos);
  CHECK(Error("kafka:\n  group_id: \"\"\n").find("c.yaml:2:13: kafka.group_id: must not be empty") != std::string::npos);
  CHECK(Error("state:\n  map_size: 12 parsecs\n").find("state.map_size: '12 parsecs' is not a size") != std::string::npos);
  CHECK(Error("log:\n  level: chatty\n").find("log.level: must be error, warning, info or debug") != std::string::npos);
  CHECK(Error("kafka: [1, 2]\n").find("kafka must be a map of keys") != std::string::npos);
  CHECK(Error("kafka:\n  brokers: [a, b]\n").find("kafka.brokers must be a single value") != std::string::npos);
  CHECK(Error("events: {out_of_order: 1s\n").find("c.yaml:") == 0);  // YAML syntax, with position
  CHECK(Error("state:\n  max_keys: 0\n").find("state.max_keys: '0' must be at least 1") != std::string::npos);
  CHECK(Error("state:\n  max_keys: many\n").find("state.max_keys: 'many' is not a whole number") != std::string::npos);
  CHECK(Error("events:\n  max_buffered: 99999999999\n").find("events.max_buffered: '99999999999' is more than the maximum") !=
        std::string::npos);
}

TEST_CASE("tables name their topic and may bound their versions; a table without a topic or with an unknown key is refused") {
  auto c = daemon::ParseConfig("tables:\n  profiles: {topic: profiles.v1}\n  blocked: {topic: blocked, max_versions: 500}\n",
                               "c.yaml", &kNoEnv);
  REQUIRE(c.ok());
  CHECK(c.value().tables.at("profiles").topic == "profiles.v1");
  CHECK(c.value().tables.at("profiles").max_versions == 10000000);
  CHECK(c.value().tables.at("blocked").max_versions == 500);
  CHECK(daemon::DumpConfig(c.value()).find("  \"blocked\":\n    topic: \"blocked\"\n    max_versions: 500") !=
        std::string::npos);
  CHECK(Error("tables:\n  profiles: {max_versions: 5}\n").find("c.yaml:2:3: tables.profiles has no topic") !=
        std::string::npos);
  CHECK(Error("tables:\n  profiles: {topic: p, topik: q}\n").find("unknown key 'tables.profiles.topik'") !=
        std::string::npos);
}

TEST_CASE("the limits on keys and buffered events reach the configuration") {
  auto c = daemon::ParseConfig("state:\n  max_keys: 5000\nevents:\n  max_buffered: 200\n", "c.yaml");
  REQUIRE(c.ok());
  CHECK(c.value().state.max_keys == 5000);
  CHECK(c.value().max_buffered == 200);
  CHECK(daemon::DefaultConfig().state.max_keys == 1000000);
  CHECK(daemon::DefaultConfig().max_buffered == 1000000);
}

TEST_CASE("limits that contradict each other are refused: a message outliving its transaction, a map above its cap") {
  CHECK(Error("kafka:\n  producer:\n    message.timeout.ms: \"90000\"\n")
            .find("message.timeout.ms (90000) must be below transaction.timeout.ms (60000)") != std::string::npos);
  CHECK(Error("kafka:\n  producer:\n    message.timeout.ms: \"5000\"\n    transaction.timeout.ms: \"5000\"\n")
            .find("must be below transaction.timeout.ms") != std::string::npos);
  CHECK(Error("kafka:\n  producer:\n    message.timeout.ms: \"5000\"\n    transaction.timeout.ms: \"10000\"\n")
            .empty());
  CHECK(Error("state:\n  map_size: 2GiB\n  max_map_size: 1GiB\n").find("state.max_map_size") != std::string::npos);
  CHECK(Error("metrics:\n  username: prom\n").find("go together") != std::string::npos);
}

TEST_CASE("environment variables override single values and unknown ones are refused") {
  std::map<std::string, std::string> env = {{"CEPHEUS_KAFKA_BROKERS", "b1:9092,b2:9092"},
                                            {"CEPHEUS_KAFKA_INPUT_TOPICS", "orders, logins"},
                                            {"CEPHEUS_EVENTS_OUT_OF_ORDER", "5s"}};
  auto r = daemon::ParseConfig("kafka:\n  brokers: ignored:1\n", "c.yaml", &env);
  REQUIRE(r.ok());
  CHECK(r.value().kafka.brokers == "b1:9092,b2:9092");
  CHECK(r.value().kafka.input_topics == std::vector<std::string>{"orders", "logins"});
  CHECK(r.value().out_of_order == 5000);
  CHECK(Error("", {{"CEPHEUS_KAFKA_BROKRES", "x"}}) == "unknown environment override CEPHEUS_KAFKA_BROKRES");
  CHECK(Error("", {{"CEPHEUS_STATE_MAP_SIZE", "1KiB"}}).find("must be at least 1MiB") != std::string::npos);
}

TEST_CASE("librdkafka properties pass through and a misspelt one is refused at load") {
  auto r = daemon::ParseConfig("kafka:\n  consumer:\n    security.protocol: sasl_ssl\n    sasl.mechanisms: PLAIN\n",
                               "c.yaml", &kNoEnv);
  REQUIRE(r.ok());
  CHECK(r.value().kafka.consumer.at("security.protocol") == "sasl_ssl");
  std::string err = Error("kafka:\n  producer:\n    linger.msx: 5\n");
  CHECK(err.find("kafka.producer.linger.msx") != std::string::npos);
  CHECK(err.find("No such configuration property") != std::string::npos);
}

TEST_CASE("secret values never appear in the printed configuration") {
  auto r = daemon::ParseConfig(
      "kafka:\n  consumer:\n    sasl.username: alice\n    sasl.password: hunter2\n"
      "  producer:\n    ssl.key.password: s3cr3t\n"
      "metrics:\n  username: prom\n  password: pr0m-pass\n",
      "c.yaml", &kNoEnv);
  REQUIRE(r.ok());
  std::string dump = daemon::DumpConfig(r.value());
  CHECK(dump.find("hunter2") == std::string::npos);
  CHECK(dump.find("s3cr3t") == std::string::npos);
  CHECK(dump.find("alice") != std::string::npos);
  CHECK(dump.find("sasl.password: <redacted>") != std::string::npos);
  CHECK(dump.find("pr0m-pass") == std::string::npos);
  CHECK(dump.find("password: <redacted>\nlog:") != std::string::npos);
}

TEST_CASE("a key given twice in the configuration is an error, not last-wins or first-wins") {
  auto c = daemon::ParseConfig("kafka:\n  brokers: a:1\n  brokers: b:2\n", "twice.yaml", nullptr);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == "twice.yaml:3:3: key 'brokers' is given twice (first at line 2)");
}

TEST_CASE("a configuration that explodes through its aliases is refused") {
  std::string yaml = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 5; ++i) {
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += std::string(j ? ", " : "") + "*a" + std::to_string(i - 1);
    yaml += "]\n";
  }
  auto c = daemon::ParseConfig(yaml, "laughs.yaml", nullptr);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == "laughs.yaml: more than 10000 nodes once its aliases are expanded");
}

TEST_CASE("a metrics port outside 0-65535 is refused when the configuration is read, not when binding") {
  auto c = daemon::ParseConfig("metrics:\n  listen: 127.0.0.1:99999\n", "m.yaml", nullptr);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == "m.yaml:2:11: metrics.listen: the port '99999' is not a number from 0 to 65535");
  CHECK_FALSE(daemon::ParseConfig("metrics:\n  listen: 127.0.0.1:http\n", "m.yaml", nullptr).ok());
  CHECK_FALSE(daemon::ParseConfig("metrics:\n  listen: 9464\n", "m.yaml", nullptr).ok());
  CHECK(daemon::ParseConfig("metrics:\n  listen: \"[::1]:0\"\n", "m.yaml", nullptr).ok());
}

TEST_CASE("a librdkafka property cepheus sets itself is refused in kafka.consumer and kafka.producer, with why") {
  auto c = daemon::ParseConfig("kafka:\n  consumer:\n    isolation.level: read_uncommitted\n", "k.yaml", nullptr);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == "k.yaml:3:5: kafka.consumer: 'isolation.level' is set by cepheus (read_committed: "
                                "exactly-once reads only committed records); remove it");
  auto p = daemon::ParseConfig("kafka:\n  producer:\n    transactional.id: x\n", "k.yaml", nullptr);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().message().find("'transactional.id' is set by cepheus (from kafka.transactional_id)") !=
        std::string::npos);
  CHECK(daemon::ParseConfig("kafka:\n  producer:\n    linger.ms: \"20\"\n", "k.yaml", nullptr).ok());
}

TEST_CASE("a configuration path that is an endless device is refused at 1 MiB, not read until memory runs out") {
  auto c = daemon::LoadConfig("/dev/zero");
  REQUIRE(!c.ok());
  CHECK(c.status().code() == Status::Code::kLimitExceeded);
  CHECK(c.status().message() == "/dev/zero is larger than 1048576 bytes, the most cepheus reads of such a file");
}

TEST_CASE("the group consumer is a static member named after the transactional id unless told otherwise") {
  auto c = daemon::ParseConfig("kafka: {transactional_id: fraud-3}\n", "t.yaml");
  REQUIRE(c.ok());
  CHECK(daemon::GroupConsumerProperties(c.value()).at("group.instance.id") == "fraud-3");
  CHECK(c.value().kafka.consumer.count("group.instance.id") == 0);  // the file's section is left as given

  c = daemon::ParseConfig("kafka: {transactional_id: fraud-3, consumer: {group.instance.id: rack-a-3}}\n", "t.yaml");
  REQUIRE(c.ok());
  CHECK(daemon::GroupConsumerProperties(c.value()).at("group.instance.id") == "rack-a-3");

  c = daemon::ParseConfig("kafka: {transactional_id: fraud-3, static_membership: false}\n", "t.yaml");
  REQUIRE(c.ok());
  CHECK(daemon::GroupConsumerProperties(c.value()).count("group.instance.id") == 0);

  c = daemon::ParseConfig("kafka: {static_membership: yes please}\n", "t.yaml");
  REQUIRE(!c.ok());
  CHECK(c.status().message().find("kafka.static_membership") != std::string::npos);
  CHECK(c.status().message().find("must be true or false") != std::string::npos);
}

// `cepheus demo`: the real daemon, with no set-up.
//
// librdkafka's mock cluster plays the Kafka cluster; a generator thread
// produces synthetic events (with fraud planted, a few out of order and one in
// a thousand malformed) at a steady rate in wall-clock time; the main thread
// runs `cepheus run`'s Daemon on the rules, with its state in a temporary
// directory and a 2-second idle timeout, and prints each alert as it is
// published. Everything the daemon does (transactions, dead letters, the
// changelog, LMDB, metrics) happens here too, on the mock.
//
// The tables the rules in rules/tables read come from two topics the demo
// fills before the daemon starts: `profiles` (every generated user's home
// country, as the generator has it, and when the account was created: a few
// of the busiest accounts are a few hours old) and `blocked_cards` (a few
// moderately active users' cards). While it runs, every 5 s one busy user
// "moves" to another country (and the one before moves back home), and every
// 20 s one more card is blocked, so the lookups read versions as of each
// event's time.
//
// Re-keying (kafka.rekey) is on: the rules keyed on card_id run on the
// topic cepheus-demo-rekey-card_id (the demo creates it: the mock cluster has
// no Admin API). Two rings of three users each pay with one shared card, so
// many_accounts_one_card fires across input partitions.
#include "cli/demo.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <charconv>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cepheus/io/kafka.h"
#include "cepheus/daemon/daemon.h"
#include "cepheus/daemon/rekey_plan.h"
#include "cepheus/daemon/rules_loader.h"
#include "cepheus/daemon/signals.h"
#include "cepheus/gen/generator.h"

namespace cepheus::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

std::string_view KeyOf(std::string_view json, std::string_view field) {
  std::string needle = fmt::format("\"{}\":\"", field);
  size_t at = json.find(needle);
  if (at == std::string_view::npos) return {};
  at += needle.size();
  size_t end = json.find('"', at);
  return end == std::string_view::npos ? std::string_view() : json.substr(at, end - at);
}

// The daemon's configuration for the demo: the mock cluster, a 2-second
// out-of-orderness and idle timeout, state in a temporary directory.
daemon::Config DemoConfig(const DemoOptions& o, const std::string& brokers, const std::filesystem::path& state_dir) {
  daemon::Config config = daemon::DefaultConfig();
  config.rules_paths = o.rules;
  config.kafka.brokers = brokers;
  config.kafka.group_id = "cepheus-demo";
  config.kafka.transactional_id = "cepheus-demo";
  config.kafka.input_topics = {"events"};
  config.kafka.late_topic = "events.late";
  config.out_of_order = 2000;
  config.idle_timeout = 2000;  // a quiet partition follows the clock after 2 s
  config.metrics.listen = o.metrics;
  config.state.directory = state_dir.string();
  config.state.map_size = 64ULL << 20;
  config.tables["profiles"] = {"profiles", 10000000};
  config.tables["blocked_cards"] = {"blocked_cards", 10000000};
  return config;
}

constexpr int64_t kUsers = 2000;

Millis NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Profile(int64_t user, std::string_view country, Millis created_at, Millis updated_at) {
  return fmt::format(R"({{"user_id":"u{}","country":"{}","created_at":{},"updated_at":{}}})", user, country,
                     created_at, updated_at);
}

std::string BlockedCard(int64_t user, Millis at) {
  return fmt::format(R"({{"card_id":"c{}","blocked_at":{}}})", user, at);
}

// A user whose account is a few hours old: one in 17, u3 (among the busiest)
// the first.
bool NewAccount(int64_t user) { return user % 17 == 3; }

Millis CreatedAt(int64_t user, Millis now) {
  return NewAccount(user) ? now - 3600000 * (1 + user % 20) : now - 400LL * 86400000;
}

// Every user's profile, and the first cards blocked, as of an hour ago.
Status ProduceTables(io::KafkaProducer* producer, Millis now, int* blocked) {
  for (int64_t u = 1; u <= kUsers; ++u) {
    std::string key = fmt::format("u{}", u);
    if (Status st = producer->Produce("profiles", key, Profile(u, gen::HomeCountryOf(u), CreatedAt(u, now), now - 3600000));
        !st.ok()) {
      return st;
    }
  }
  for (int64_t u : {101, 157}) {
    if (Status st = producer->Produce("blocked_cards", fmt::format("c{}", u), BlockedCard(u, now - 3600000));
        !st.ok()) {
      return st;
    }
    ++*blocked;
  }
  return producer->Flush(10000);
}

// Table updates while the demo runs (see the file comment). Stops with g_stop.
void UpdateTables(io::KafkaProducer* producer) {
  int64_t moved = 0;
  for (int tick = 1; !g_stop; ++tick) {
    for (int i = 0; i < 50 && !g_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_stop) break;
    Millis now = NowMs();
    if (moved != 0) {
      (void)producer->Produce("profiles", fmt::format("u{}", moved),
                              Profile(moved, gen::HomeCountryOf(moved), CreatedAt(moved, now), now));
    }
    moved = 2 + tick % 40;
    std::string_view home = gen::HomeCountryOf(moved);
    std::string_view away = home;
    for (size_t i = static_cast<size_t>(tick); away == home; ++i) away = gen::CountryAt(i);
    (void)producer->Produce("profiles", fmt::format("u{}", moved), Profile(moved, away, CreatedAt(moved, now), now));
    if (tick % 4 == 0) {
      int64_t card = 200 + 37 * (tick / 4) % (kUsers - 200);
      (void)producer->Produce("blocked_cards", fmt::format("c{}", card), BlockedCard(card, now));
    }
  }
}

// An order of the planted gift-card spike (see Generate).
std::string GiftCardOrder(const std::string& user, uint64_t n, Millis now) {
  return fmt::format(
      R"({{"id":"spike-{}","type":"order","ts":{},"user_id":"{}","card_id":"c-{}","country":"FR","order_id":"spike-{}",)"
      R"("amount":{},"category":"gift_cards"}})",
      n, now, user, user, n, 150 + n % 7 * 25);
}

// A ring member's payment: its card becomes the ring's shared card.
std::string ShareCard(std::string_view line) {
  static const std::pair<const char*, const char*> kRings[] = {
      {"u41", "c-ring-1"}, {"u43", "c-ring-1"}, {"u47", "c-ring-1"},
      {"u57", "c-ring-2"}, {"u59", "c-ring-2"}, {"u61", "c-ring-2"}};
  std::string out(line);
  if (KeyOf(line, "type") != "payment") return out;
  std::string_view user = KeyOf(line, "user_id");
  for (const auto& [member, card] : kRings) {
    if (user != member) continue;
    std::string was = fmt::format("\"card_id\":\"{}\"", KeyOf(line, "card_id"));
    size_t at = out.find(was);
    if (at != std::string::npos) out.replace(at, was.size(), fmt::format("\"card_id\":\"{}\"", card));
  }
  return out;
}

// The events topic, the daemon's outputs, the table topics and the
// re-keying topics of the rules' plan.
Status CreateTopics(io::MockCluster& cluster, const daemon::Config& config, int partitions,
                    const nfa::CompiledRuleSet& rules) {
  for (const auto& s : daemon::MakePlan(rules, config.kafka.partition_key, config.kafka.group_id).stages) {
    if (Status st = cluster.CreateTopic(s.topic, partitions); !st.ok()) return st;
  }
  for (auto [topic, parts] : {std::pair<std::string, int>{"events", partitions}, {config.kafka.alerts_topic, 1},
                              {config.kafka.dead_letter_topic, 1}, {config.kafka.late_topic, 1},
                              {config.kafka.aggregates_topic, 1},
                              {config.kafka.group_id + "-changelog", partitions}, {"profiles", 2},
                              {"blocked_cards", 1}}) {
    if (Status st = cluster.CreateTopic(topic, parts); !st.ok()) return st;
  }
  return Status::Ok();
}

// The generator: event time is the wall clock; one record in a thousand is
// broken on purpose to show the dead-letter path. Stops with g_stop.
void Generate(const DemoOptions& o, io::KafkaProducer* producer, std::atomic<uint64_t>* produced) {
  gen::GenOptions g;
  g.events = o.seconds > 0 ? static_cast<int64_t>(o.seconds) * o.rate * 2 : INT64_MAX / 4;
  g.users = kUsers;
  g.seed = o.seed;
  g.fraud_rate = 0.03;  // dense, so a short demo shows every kind of alert
  g.out_of_order = 2000;
  g.start = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  g.mean_gap = std::max<Millis>(1, 1000 / std::max(1, o.rate));
  g.malformed_rate = 0.001;
  g.stop = &g_stop;
  auto start = std::chrono::steady_clock::now();
  uint64_t spiked = 0;
  gen::GenerateEvents(g, [&](std::string_view line) {
    uint64_t n = produced->fetch_add(1) + 1;
    std::this_thread::sleep_until(start + std::chrono::microseconds(n * 1000000 / std::max(1, o.rate)));
    (void)producer->Produce("events", KeyOf(line, "user_id"), ShareCard(line));
    // The planted spike: seconds 8 to 14 of every minute of the demo, one
    // more gift-card order for every third event, from many users.
    Millis now = NowMs();
    auto second = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count() % 60;
    if (second >= 8 && second < 14 && n % 3 == 0) {
      ++spiked;
      std::string user = fmt::format("u{}", 1000 + spiked % 500);
      (void)producer->Produce("events", user, GiftCardOrder(user, spiked, now));
      produced->fetch_add(1);
    }
  });
}

void PrintBanner(const DemoOptions& o, const daemon::Config& config, size_t rules, int blocked, int port) {
  std::fprintf(stderr,
               "cepheus demo: in-process Kafka (librdkafka mock cluster) at %s\n"
               "  topics: events (%d partitions), %s, %s, %s, %s, profiles, blocked_cards\n"
               "  rules: %zu from %s; state in %s\n"
               "  tables: profiles (%lld customers, some moving now and then), blocked_cards (%d cards, more coming)\n"
               "  metrics: http://127.0.0.1:%d/metrics (and /healthz)\n"
               "  %d events/s with fraud planted; alerts follow as JSON lines. Ctrl-C stops%s.\n",
               config.kafka.brokers.c_str(), o.partitions, config.kafka.alerts_topic.c_str(),
               config.kafka.dead_letter_topic.c_str(), config.kafka.late_topic.c_str(),
               (config.kafka.group_id + "-changelog").c_str(), rules, fmt::format("{}", fmt::join(o.rules, ", ")).c_str(),
               config.state.directory.c_str(), static_cast<long long>(kUsers), blocked, port, o.rate,
               o.seconds > 0 ? fmt::format(" (or {} s)", o.seconds).c_str() : "");
}

}  // namespace

int RunDemo(const DemoOptions& o) {
  auto rules = daemon::LoadAndCompile(o.rules, std::cerr);
  if (!rules) return 1;
  daemon::InstallSignalHandlers(&g_stop, &g_reload);  // SIGHUP reloads the rules, as in `cepheus run`
  daemon::RouteKafkaLogs();
  g_stop = false;

  auto cluster = io::MockCluster::Create(3);
  if (!cluster.ok()) {
    std::cerr << "cepheus: error: " << cluster.status().message() << "\n";
    return 1;
  }
  if (int stale = RemoveStaleDemoDirs(std::filesystem::temp_directory_path().string()); stale > 0) {
    std::fprintf(stderr, "cepheus demo: removed %d state directories of demos no longer running\n", stale);
  }
  auto state_dir = std::filesystem::temp_directory_path() / fmt::format("cepheus-demo-{}", ::getpid());
  daemon::Config config = DemoConfig(o, cluster.value()->bootstraps(), state_dir);
  if (Status st = CreateTopics(*cluster.value(), config, o.partitions, *rules); !st.ok()) {
    std::cerr << "cepheus: error: " << st.message() << "\n";
    return 1;
  }
  auto producer = io::KafkaProducer::Create(config.kafka.brokers, {});
  if (!producer.ok()) {
    std::cerr << "cepheus: error: " << producer.status().message() << "\n";
    return 1;
  }
  int blocked = 0;
  if (Status st = ProduceTables(producer.value().get(), NowMs(), &blocked); !st.ok()) {
    std::cerr << "cepheus: error: cannot fill the demo's tables: " << st.message() << "\n";
    return 1;
  }

  daemon::Daemon daemon(config, rules);
  daemon.set_on_alert([&](const engine::Alert& a) {
    if (!o.quiet) {
      std::fwrite(a.json.data(), 1, a.json.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
  });
  daemon.set_on_record([&](const engine::AggregateRecord& r) {  // window records, as JSON lines too
    if (!o.quiet) {
      std::fwrite(r.json.data(), 1, r.json.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
  });
  if (Status st = daemon.Start(); !st.ok()) {
    std::cerr << "cepheus: error: " << st.message() << (st.message().find("metrics") != std::string::npos
                                                            ? " (choose another address with --metrics)\n"
                                                            : "\n");
    std::filesystem::remove_all(state_dir);
    return 1;
  }
  PrintBanner(o, config, rules->programs.size(), blocked, daemon.metrics_port());

  std::atomic<uint64_t> produced{0};
  std::thread generator([&] { Generate(o, producer.value().get(), &produced); });
  std::thread tables([&] { UpdateTables(producer.value().get()); });
  std::thread timer([&] {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o.seconds);
    while (!g_stop && (o.seconds == 0 || std::chrono::steady_clock::now() < until)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    g_stop = true;
  });
  int code = daemon.Run(g_stop, &g_reload);
  g_stop = true;
  timer.join();
  generator.join();
  tables.join();
  (void)producer.value()->Flush(5000);
  std::fprintf(stderr, "cepheus demo: %llu events produced, %llu read, %llu alerts, %llu malformed\n",
               static_cast<unsigned long long>(produced.load()),
               static_cast<unsigned long long>(daemon.records_handled()),
               static_cast<unsigned long long>(daemon.alerts_published()),
               static_cast<unsigned long long>(daemon.malformed()));
  std::filesystem::remove_all(state_dir);
  return code;
}

int RemoveStaleDemoDirs(const std::string& parent) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    constexpr std::string_view kPrefix = "cepheus-demo-";
    if (name.rfind(kPrefix, 0) != 0 || !entry.is_directory(ec)) continue;
    long pid = 0;
    auto digits = std::string_view(name).substr(kPrefix.size());
    auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (err != std::errc() || end != digits.data() + digits.size() || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::filesystem::remove_all(entry.path(), ec);
    if (!ec) ++removed;
  }
  return removed;
}

Command AddDemo(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* sub = app.add_subcommand("demo", "Run the whole pipeline on an in-process Kafka cluster with generated events");
  sub->add_option("--seconds", o->seconds, "Stop after this many seconds (0: until Ctrl-C)")
      ->check(CLI::Range(0, 86400));
  sub->add_option("--rules", o->rules, "Rule files or directories (default: rules rules/tables rules/demo)");
  sub->add_option("--rate", o->rate, "Events per second")->check(CLI::Range(1, 1000000));
  sub->add_option("--partitions", o->partitions, "Partitions of the events topic")->check(CLI::Range(1, 64));
  sub->add_option("--seed", o->seed, "Seed of the event generator");
  sub->add_option("--metrics", o->metrics, "Metrics address (port 0 picks a free one)");
  sub->add_flag("--quiet", o->quiet, "Do not print the alerts");
  return {sub, [o] { return RunDemo(*o); }};
}

}  // namespace cepheus::cli

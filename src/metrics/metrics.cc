// Metrics: one registry, one exposer, probes that turn engine statistics into
// Prometheus series.
//
// The engine keeps plain counters (it knows nothing of Prometheus); the probe
// remembers what it last published per partition and adds the difference, so
// engines can be created and dropped as partitions come and go. prometheus-cpp
// throws when the exposer cannot bind; that exception is caught here, once.
#include "cepheus/metrics/metrics.h"

#include "cepheus/engine/tables.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>

#include <fmt/format.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "cepheus/engine/engine.h"
#include "cepheus/nfa/program.h"

namespace cepheus::metrics {

namespace {

constexpr int kExposerThreads = 8;
constexpr int kRequestTimeoutMs = 2000;

// Why `listen` ("host:port", "[v6]:port") cannot be bound, in the system's
// words ("Address already in use"), or "" when it can.
std::string BindProblem(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return "";
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return gai_strerror(rc);
  }
  std::string why;
  int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  if (fd < 0) {
    why = std::strerror(errno);
  } else {
    if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) why = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return why;
}

}  // namespace

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Registry> health = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;
  const nfa::CompiledRuleSet* rules = nullptr;

  prometheus::Counter* evaluated = nullptr;
  prometheus::Counter* late = nullptr;
  prometheus::Counter* malformed = nullptr;
  prometheus::Counter* records = nullptr;
  prometheus::Family<prometheus::Counter>* alerts_family = nullptr;
  prometheus::Family<prometheus::Counter>* suppressed_family = nullptr;
  prometheus::Family<prometheus::Counter>* evicted_family = nullptr;
  prometheus::Family<prometheus::Gauge>* runs_family = nullptr;
  std::vector<prometheus::Counter*> alerts;      // by rule
  std::vector<prometheus::Counter*> suppressed;  // by rule
  std::vector<prometheus::Counter*> evicted;     // by rule
  std::vector<prometheus::Gauge*> runs;          // by rule
  prometheus::Gauge* keys = nullptr;
  prometheus::Gauge* keys_cold = nullptr;           // cepheus_keys_cold: in LMDB only (state.max_resident_keys)
  prometheus::Counter* keys_read_back = nullptr;    // cepheus_keys_read_back_total
  prometheus::Histogram* event_to_alert = nullptr;
  prometheus::Family<prometheus::Gauge>* watermark_lag = nullptr;
  prometheus::Family<prometheus::Gauge>* consumer_lag = nullptr;
  prometheus::Histogram* state_commit = nullptr;
  prometheus::Histogram* state_restore = nullptr;
  prometheus::Gauge* state_bytes = nullptr;
  prometheus::Counter* aborts = nullptr;
  prometheus::Gauge* map_used_ratio = nullptr;
  prometheus::Counter* reloads_ok = nullptr;
  prometheus::Counter* reloads_error = nullptr;
  prometheus::Gauge* last_reload_ok = nullptr;
  prometheus::Gauge* rules_loaded = nullptr;
  prometheus::Counter* dropped_changed = nullptr;
  prometheus::Counter* dropped_removed = nullptr;
  prometheus::Counter* keys_refused = nullptr;   // cepheus_limit_hits_total{limit="keys_per_partition"}
  prometheus::Counter* buffer_forced = nullptr;  // cepheus_limit_hits_total{limit="reorder_buffer"}
  prometheus::Gauge* keys_used = nullptr;        // cepheus_limit_used_ratio{limit="keys_per_partition"}
  prometheus::Gauge* buffer_used = nullptr;      // cepheus_limit_used_ratio{limit="reorder_buffer"}
  prometheus::Gauge* quarantined = nullptr;
  // Counters and aggregates (sections 6.2, 6.3), by declaration name.
  prometheus::Family<prometheus::Counter>* aggregate_records = nullptr;
  prometheus::Family<prometheus::Counter>* aggregate_windows = nullptr;
  prometheus::Family<prometheus::Counter>* aggregate_late = nullptr;
  prometheus::Family<prometheus::Gauge>* aggregate_groups = nullptr;
  prometheus::Family<prometheus::Gauge>* counter_keys = nullptr;
  void RegisterAggregates(prometheus::Registry& reg);
  // The counters' and aggregates' series move by what `now` gained over
  // `before` (`counting` 0: only the gauges go back, for a forgotten partition).
  void UpdateDeclarations(const engine::EngineStats& now, const engine::EngineStats& before, int counting) {
    if (rules == nullptr) return;
    for (size_t a = 0; a < rules->aggregates.size(); ++a) {
      prometheus::Labels l{{"aggregate", rules->aggregates[a].name}};
      engine::AggregateStats n = a < now.aggregates.size() ? now.aggregates[a] : engine::AggregateStats{};
      engine::AggregateStats b = a < before.aggregates.size() ? before.aggregates[a] : engine::AggregateStats{};
      if (counting) {
        aggregate_windows->Add(l).Increment(static_cast<double>(n.windows_closed - b.windows_closed));
        aggregate_late->Add(l).Increment(static_cast<double>(n.late - b.late));
        aggregate_records->Add(l);
      }
      aggregate_groups->Add(l).Increment(static_cast<double>(n.groups - b.groups));
    }
    for (size_t c = 0; c < rules->counters.size(); ++c) {
      int64_t n = c < now.counter_keys.size() ? now.counter_keys[c] : 0;
      int64_t b = c < before.counter_keys.size() ? before.counter_keys[c] : 0;
      counter_keys->Add({{"counter", rules->counters[c].name}}).Increment(static_cast<double>(n - b));
    }
  }
  prometheus::Family<prometheus::Counter>* rekey_forwarded = nullptr;
  prometheus::Family<prometheus::Counter>* rekey_missing = nullptr;
  prometheus::Family<prometheus::Counter>* rekey_read = nullptr;
  prometheus::Family<prometheus::Counter>* table_records = nullptr;
  prometheus::Family<prometheus::Counter>* table_refused = nullptr;
  prometheus::Family<prometheus::Counter>* table_late = nullptr;
  prometheus::Family<prometheus::Gauge>* table_versions = nullptr;
  prometheus::Family<prometheus::Gauge>* table_keys = nullptr;
  prometheus::Family<prometheus::Gauge>* table_bytes = nullptr;
  prometheus::Family<prometheus::Gauge>* table_lag = nullptr;
  prometheus::Family<prometheus::Gauge>* table_bootstrap = nullptr;
  std::map<std::string, engine::TableStats> table_last;  // by table: the stats as of the last SetTable
  // The ratios are the fullest partition's: recomputed from these.
  void UpdateLimitRatios();
  void RegisterTables(prometheus::Registry& reg);
  void RegisterRekey(prometheus::Registry& reg);

  // Points the per-rule series at `set`'s rules; series of rules no longer
  // in it are removed, those of rules still in it keep their values.
  void BindRules(const nfa::CompiledRuleSet& set);
  void RegisterPipeline(const nfa::CompiledRuleSet& rules);
  void RegisterState(const std::string& version);

  struct Last {
    engine::EngineStats stats;
    int64_t keys = 0;
    int64_t cold = 0;
    double keys_ratio = 0, buffer_ratio = 0;  // of the engine's limits
  };
  std::map<std::string, Last> last;
};

namespace {

// Compares in time independent of where the texts differ.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

}  // namespace

// Events, alerts, runs and keys by rule, latencies and lags.
void Metrics::Impl::RegisterPipeline(const nfa::CompiledRuleSet& rules) {
  auto& reg = *registry;
  auto& events = BuildCounter().Name("cepheus_events_total").Help("Events read, by outcome.").Register(reg);
  evaluated = &events.Add({{"outcome", "evaluated"}});
  late = &events.Add({{"outcome", "late"}});
  malformed = &events.Add({{"outcome", "malformed"}});
  records = &BuildCounter()
                   .Name("cepheus_records_read_total")
                   .Help("Records read from the input topics (evaluated, late, malformed or still buffered).")
                   .Register(reg)
                   .Add({});
  auto& alerts = BuildCounter().Name("cepheus_alerts_total").Help("Alerts published, by rule.").Register(reg);
  auto& suppressed = BuildCounter()
                         .Name("cepheus_alerts_suppressed_total")
                         .Help("Matches not published because of the rule's cooldown.")
                         .Register(reg);
  auto& runs = BuildGauge().Name("cepheus_runs_active").Help("Live partial matches, by rule.").Register(reg);
  auto& evicted = BuildCounter()
                      .Name("cepheus_runs_evicted_total")
                      .Help("Partial matches dropped because a key reached the rule's limit.")
                      .Register(reg);
  alerts_family = &alerts;
  suppressed_family = &suppressed;
  runs_family = &runs;
  evicted_family = &evicted;
  rules_loaded = &BuildGauge().Name("cepheus_rules_loaded").Help("Rules running.").Register(reg).Add({});
  BindRules(rules);
  keys = &BuildGauge().Name("cepheus_keys_active").Help("Keys holding state.").Register(reg).Add({});
  keys_cold = &BuildGauge()
                   .Name("cepheus_keys_cold")
                   .Help("Keys holding state in LMDB only, beyond state.max_resident_keys a partition.")
                   .Register(reg)
                   .Add({});
  keys_read_back = &BuildCounter()
                        .Name("cepheus_keys_read_back_total")
                        .Help("Keys whose state was read back from LMDB into memory.")
                        .Register(reg)
                        .Add({});
  event_to_alert = &BuildHistogram()
                          .Name("cepheus_event_to_alert_seconds")
                          .Help("From a message's Kafka time to its alert being committed (published).")
                          .Register(reg)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02, 0.035,
                                                                           0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                                                                           1, 2, 5, 10});
  watermark_lag = &BuildGauge()
                         .Name("cepheus_watermark_lag_seconds")
                         .Help("Wall clock minus the partition's watermark.")
                         .Register(reg);
  consumer_lag = &BuildGauge()
                        .Name("cepheus_consumer_lag")
                        .Help("Records between the partition's end and the next one to read.")
                        .Register(reg);
}

// The state (commits, restores, size), transactions, reloads, build info.
void Metrics::Impl::RegisterState(const std::string& version) {
  auto& reg = *registry;
  state_commit = &BuildHistogram()
                        .Name("cepheus_state_commit_seconds")
                        .Help("Time the loop spends committing one batch: waiting for the previous batch's LMDB write, "
                              "then the Kafka transaction (the LMDB write runs in the background).")
                        .Register(reg)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                         0.1, 0.25, 0.5, 1, 2.5});
  state_restore = &BuildHistogram()
                         .Name("cepheus_state_restore_seconds")
                         .Help("Time to bring up the state of newly assigned partitions (changelog catch-up, then LMDB load).")
                         .Register(reg)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                                          30, 60, 120});
  state_bytes = &BuildGauge().Name("cepheus_state_bytes").Help("Bytes of the LMDB map in use.").Register(reg).Add({});
  aborts = &BuildCounter()
                  .Name("cepheus_kafka_transaction_aborts_total")
                  .Help("Kafka transactions aborted (their batch is redone).")
                  .Register(reg)
                  .Add({});
  auto& reloads = BuildCounter()
                      .Name("cepheus_rule_reloads_total")
                      .Help("Rule set reloads, by outcome.")
                      .Register(reg);
  reloads_ok = &reloads.Add({{"outcome", "success"}});
  reloads_error = &reloads.Add({{"outcome", "error"}});
  last_reload_ok = &BuildGauge()
                          .Name("cepheus_rules_last_reload_successful")
                          .Help("1 if the last rule reload succeeded (or none was tried), 0 if it was refused.")
                          .Register(reg)
                          .Add({});
  last_reload_ok->Set(1);
  auto& dropped = BuildCounter()
                      .Name("cepheus_rule_state_dropped_total")
                      .Help("Partial matches dropped because their rule changed or was removed (reload or restart).")
                      .Register(reg);
  dropped_changed = &dropped.Add({{"reason", "changed"}});
  dropped_removed = &dropped.Add({{"reason", "removed"}});
  map_used_ratio = &BuildGauge()
                          .Name("cepheus_lmdb_map_used_ratio")
                          .Help("Bytes of the LMDB state in use over state.max_map_size.")
                          .Register(reg)
                          .Add({});
  auto& hits = BuildCounter()
                   .Name("cepheus_limit_hits_total")
                   .Help("Events that met a configured limit: keys_per_partition (state.max_keys: an event of a key "
                         "without state started nothing), reorder_buffer (events.max_buffered: an event evaluated "
                         "before the watermark reached it).")
                   .Register(reg);
  keys_refused = &hits.Add({{"limit", "keys_per_partition"}});
  buffer_forced = &hits.Add({{"limit", "reorder_buffer"}});
  auto& used = BuildGauge()
                   .Name("cepheus_limit_used_ratio")
                   .Help("The fullest partition's use of a configured limit: keys holding state over state.max_keys "
                         "(keys_per_partition), events in the reorder buffer over events.max_buffered "
                         "(reorder_buffer).")
                   .Register(reg);
  keys_used = &used.Add({{"limit", "keys_per_partition"}});
  buffer_used = &used.Add({{"limit", "reorder_buffer"}});
  quarantined = &BuildGauge()
                     .Name("cepheus_state_quarantined_files")
                     .Help("Damaged state files set aside in the state directory (corrupt-*/), kept for a "
                           "post-mortem; the state was rebuilt from the changelog.")
                     .Register(reg)
                     .Add({});
  RegisterTables(reg);
  RegisterRekey(reg);
  RegisterAggregates(reg);
  BuildGauge().Name("cepheus_build_info").Help("Build information.").Register(reg).Add({{"version", version}}).Set(1);
  BuildGauge().Name("cepheus_up").Help("1 while the process serves.").Register(*health).Add({}).Set(1);
}

Result<std::unique_ptr<Metrics>> Metrics::Start(const std::string& listen, const std::string& version,
                                                const nfa::CompiledRuleSet& rules, const std::string& username,
                                                const std::string& password) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->impl_ = std::make_unique<Impl>();
  Impl& i = *m->impl_;
  i.RegisterPipeline(rules);
  i.RegisterState(version);
  if (listen.empty()) return m;  // counted, not served
  try {
    // civetweb gives each connection a worker thread until its request is
    // complete: with prometheus-cpp's default of 2 threads and civetweb's
    // 30 s request timeout, two idle TCP connections held /metrics and
    // /healthz for ~58 s. More workers, and a slow request cut after 2 s, keep
    // a scrape answered well inside Prometheus' 10 s timeout.
    i.exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", listen, "num_threads", std::to_string(kExposerThreads), "request_timeout_ms",
        std::to_string(kRequestTimeoutMs), "keep_alive_timeout_ms", std::to_string(kRequestTimeoutMs)});
  } catch (const std::exception& e) {
    // civetweb says only "null context ... Possible problem binding to
    // port": bind the address here to learn why.
    std::string why = BindProblem(listen);
    return Status::IoError(fmt::format("cannot serve metrics on {}: {}", listen, why.empty() ? e.what() : why));
  }
  if (!username.empty()) {
    i.exposer->RegisterAuth(
        [username, password](const std::string& user, const std::string& pass) {
          // Both compared whatever the first gives (no early exit to time).
          const bool user_ok = SameSecret(user, username);
          const bool pass_ok = SameSecret(pass, password);
          return user_ok && pass_ok;
        },
        "cepheus", "/metrics");
  }
  i.exposer->RegisterCollectable(i.registry, "/metrics");
  i.exposer->RegisterCollectable(i.health, "/healthz");
  return m;
}

void Metrics::Impl::BindRules(const nfa::CompiledRuleSet& set) {
  std::set<std::string> names;
  for (const auto& p : set.programs) names.insert(p->name);
  // Remove the series of rules that are gone (or whose severity changed).
  for (size_t r = 0; r < alerts.size() && rules != nullptr && r < rules->programs.size(); ++r) {
    const auto& old = *rules->programs[r];
    bool same = false;
    for (const auto& p : set.programs) {
      same = same || (p->name == old.name && p->rule->severity == old.rule->severity);
    }
    if (!same) alerts_family->Remove(alerts[r]);
    if (names.count(old.name) == 0) {
      suppressed_family->Remove(suppressed[r]);
      runs_family->Remove(runs[r]);
      evicted_family->Remove(evicted[r]);
    }
  }
  alerts.clear();
  suppressed.clear();
  runs.clear();
  evicted.clear();
  for (const auto& p : set.programs) {
    std::string severity = dsl::SeverityName(p->rule->severity);
    alerts.push_back(&alerts_family->Add({{"rule", p->name}, {"severity", severity}}));
    suppressed.push_back(&suppressed_family->Add({{"rule", p->name}}));
    runs.push_back(&runs_family->Add({{"rule", p->name}}));
    evicted.push_back(&evicted_family->Add({{"rule", p->name}}));
  }
  rules = &set;
  rules_loaded->Set(static_cast<double>(set.programs.size()));
}

void Metrics::SetRules(const nfa::CompiledRuleSet& rules) {
  Impl& i = *impl_;
  if (i.rules != nullptr) {  // the gauges of the running declarations restart from zero too
    for (const auto& a : i.rules->aggregates) i.aggregate_groups->Add({{"aggregate", a.name}}).Set(0);
    for (const auto& c : i.rules->counters) i.counter_keys->Add({{"counter", c.name}}).Set(0);
  }
  i.BindRules(rules);
  // Every engine is replaced along with its rules: gauges restart from zero
  // and the next UpdateEngine of each partition publishes it whole.
  for (auto* g : i.runs) g->Set(0);
  i.keys->Set(0);
  i.last.clear();
}

void Metrics::ForgetPartition(const std::string& partition) {
  Impl& i = *impl_;
  auto it = i.last.find(partition);
  if (it == i.last.end()) return;
  const Impl::Last& last = it->second;
  for (size_t r = 0; r < last.stats.rules.size() && r < i.runs.size(); ++r) {
    i.runs[r]->Decrement(static_cast<double>(last.stats.rules[r].runs));
  }
  i.keys->Decrement(static_cast<double>(last.keys));
  i.keys_cold->Decrement(static_cast<double>(last.cold));
  i.UpdateDeclarations(engine::EngineStats{}, last.stats, 0);
  i.last.erase(it);
  i.UpdateLimitRatios();
  i.watermark_lag->Remove(&i.watermark_lag->Add({{"partition", partition}}));
  i.consumer_lag->Remove(&i.consumer_lag->Add({{"partition", partition}}));
}

// The counters' and aggregates' series (sections 6.2, 6.3), by name.
void Metrics::Impl::RegisterAggregates(prometheus::Registry& reg) {
  aggregate_records = &BuildCounter()
                           .Name("cepheus_aggregate_records_total")
                           .Help("Window records published to the aggregates topic, by aggregate.")
                           .Register(reg);
  aggregate_windows = &BuildCounter()
                           .Name("cepheus_aggregate_windows_closed_total")
                           .Help("Windows closed (the watermark reached their end), by aggregate.")
                           .Register(reg);
  aggregate_late = &BuildCounter()
                        .Name("cepheus_aggregate_late_events_total")
                        .Help("Late events an aggregate would have counted (sent to the late output), by aggregate.")
                        .Register(reg);
  aggregate_groups = &BuildGauge()
                          .Name("cepheus_aggregate_groups")
                          .Help("Groups an aggregate holds (open windows or results kept for previous_*).")
                          .Register(reg);
  counter_keys = &BuildGauge().Name("cepheus_sliding_window_keys").Help("Keys holding the buckets of a counter (section 6.2), by counter.").Register(reg);
}

void Metrics::CountAggregateRecord(const std::string& aggregate) {
  impl_->aggregate_records->Add({{"aggregate", aggregate}}).Increment();
}

// The re-keying series (section 6.4), by key field.
void Metrics::Impl::RegisterRekey(prometheus::Registry& reg) {
  rekey_forwarded = &BuildCounter()
                         .Name("cepheus_rekey_forwarded_total")
                         .Help("Events forwarded to a re-keying topic, by the key field it re-keys by.")
                         .Register(reg);
  rekey_read = &BuildCounter()
                    .Name("cepheus_rekey_records_read_total")
                    .Help("Records (events and watermark marks) read from a re-keying topic, by its key field.")
                    .Register(reg);
  rekey_missing = &BuildCounter()
                       .Name("cepheus_rekey_missing_key_total")
                       .Help("Events of a type a re-keyed rule reads that lack its key field (not forwarded).")
                       .Register(reg);
}

// The tables' series (section 6.1), by table name.
void Metrics::Impl::RegisterTables(prometheus::Registry& reg) {
  table_records = &BuildCounter()
                       .Name("cepheus_table_records_total")
                       .Help("Records and tombstones of a table's topic applied to the table.")
                       .Register(reg);
  table_refused = &BuildCounter()
                       .Name("cepheus_table_records_refused_total")
                       .Help("Records of a table's topic refused: malformed (sent to the dead-letter topic), or "
                             "past the table's max_versions.")
                       .Register(reg);
  table_late = &BuildCounter()
                    .Name("cepheus_table_updates_late_total")
                    .Help("Table versions timed at or before a lookup the table had already served: an event they "
                          "should have applied to was evaluated without them.")
                    .Register(reg);
  table_versions = &BuildGauge().Name("cepheus_table_versions").Help("Versions a table keeps.").Register(reg);
  table_keys = &BuildGauge().Name("cepheus_table_keys").Help("Keys a table holds.").Register(reg);
  table_bytes = &BuildGauge().Name("cepheus_table_bytes").Help("Bytes of a table's records in memory (approximate).").Register(reg);
  table_lag = &BuildGauge()
                   .Name("cepheus_table_lag")
                   .Help("Records of a table's topic not yet applied, over its partitions.")
                   .Register(reg);
  table_bootstrap = &BuildGauge()
                         .Name("cepheus_table_bootstrap_seconds")
                         .Help("How long reading a table's topic to its end took at start (or at the reload that "
                               "brought it).")
                         .Register(reg);
}

void Metrics::Impl::UpdateLimitRatios() {
  double k = 0, b = 0;
  for (const auto& [partition, l] : last) {
    k = std::max(k, l.keys_ratio);
    b = std::max(b, l.buffer_ratio);
  }
  keys_used->Set(k);
  buffer_used->Set(b);
}

void Metrics::SetQuarantinedFiles(int n) { impl_->quarantined->Set(n); }

void Metrics::SetTable(const std::string& table, const engine::TableStats& s, int64_t lag, double bootstrap_seconds) {
  Impl& i = *impl_;
  engine::TableStats& last = i.table_last[table];
  auto delta = [](uint64_t now, uint64_t before) { return static_cast<double>(now >= before ? now - before : now); };
  const std::map<std::string, std::string> labels = {{"table", table}};
  i.table_records->Add(labels).Increment(delta(s.records, last.records));
  i.table_refused->Add({{"table", table}, {"reason", "malformed"}}).Increment(delta(s.malformed, last.malformed));
  i.table_refused->Add({{"table", table}, {"reason", "limit"}}).Increment(delta(s.refused, last.refused));
  i.table_late->Add(labels).Increment(delta(s.late, last.late));
  i.table_versions->Add(labels).Set(static_cast<double>(s.versions));
  i.table_keys->Add(labels).Set(static_cast<double>(s.keys));
  i.table_bytes->Add(labels).Set(static_cast<double>(s.bytes));
  i.table_lag->Add(labels).Set(static_cast<double>(lag));
  i.table_bootstrap->Add(labels).Set(bootstrap_seconds);
  last = s;
}

void Metrics::CountReload(bool ok) {
  (ok ? impl_->reloads_ok : impl_->reloads_error)->Increment();
  impl_->last_reload_ok->Set(ok ? 1 : 0);
}

void Metrics::CountRuleStateDropped(uint64_t changed, uint64_t removed) {
  impl_->dropped_changed->Increment(static_cast<double>(changed));
  impl_->dropped_removed->Increment(static_cast<double>(removed));
}

Metrics::~Metrics() = default;

int Metrics::port() const {
  if (!impl_->exposer) return 0;
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Metrics::UpdateEngine(const std::string& partition, const engine::Engine& eng, Millis wall_now_ms) {
  Impl& i = *impl_;
  Impl::Last& last = i.last[partition];
  const engine::EngineStats& s = eng.stats();
  i.evaluated->Increment(static_cast<double>(s.evaluated - last.stats.evaluated));
  i.late->Increment(static_cast<double>(s.late - last.stats.late));
  last.stats.rules.resize(s.rules.size());
  for (size_t r = 0; r < s.rules.size() && r < i.alerts.size(); ++r) {
    i.alerts[r]->Increment(static_cast<double>(s.rules[r].alerts - last.stats.rules[r].alerts));
    i.suppressed[r]->Increment(static_cast<double>(s.rules[r].suppressed - last.stats.rules[r].suppressed));
    i.evicted[r]->Increment(static_cast<double>(s.rules[r].evicted - last.stats.rules[r].evicted));
    i.runs[r]->Increment(static_cast<double>(s.rules[r].runs - last.stats.rules[r].runs));
  }
  i.UpdateDeclarations(s, last.stats, 1);
  int64_t keys = eng.active_keys();
  i.keys->Increment(static_cast<double>(keys - last.keys));
  const auto cold = static_cast<int64_t>(eng.cold_keys());
  i.keys_cold->Increment(static_cast<double>(cold - last.cold));
  last.cold = cold;
  i.keys_read_back->Increment(static_cast<double>(s.keys_warmed - last.stats.keys_warmed));
  i.keys_refused->Increment(static_cast<double>(s.keys_refused - last.stats.keys_refused));
  i.buffer_forced->Increment(static_cast<double>(s.buffer_forced - last.stats.buffer_forced));
  const engine::EngineOptions& o = eng.options();
  last.keys_ratio = o.max_keys > 0 ? static_cast<double>(keys) / static_cast<double>(o.max_keys) : 0;
  last.buffer_ratio =
      o.max_buffered > 0 ? static_cast<double>(eng.buffered()) / static_cast<double>(o.max_buffered) : 0;
  i.UpdateLimitRatios();
  last.keys = keys;
  last.stats = s;
  if (eng.watermark() > kMinTime) {
    i.watermark_lag->Add({{"partition", partition}})
        .Set(static_cast<double>(wall_now_ms - eng.watermark()) / 1000.0);
  }
}

void Metrics::CountMalformed(uint64_t n) { impl_->malformed->Increment(static_cast<double>(n)); }

void Metrics::ObserveStateCommit(double seconds) { impl_->state_commit->Observe(seconds); }
void Metrics::ObserveStateRestore(double seconds) { impl_->state_restore->Observe(seconds); }
void Metrics::SetStateBytes(uint64_t bytes, uint64_t max_bytes) {
  impl_->state_bytes->Set(static_cast<double>(bytes));
  if (max_bytes > 0) impl_->map_used_ratio->Set(static_cast<double>(bytes) / static_cast<double>(max_bytes));
}
void Metrics::CountTransactionAbort() { impl_->aborts->Increment(); }
void Metrics::SetConsumerLag(const std::string& partition, int64_t lag) {
  impl_->consumer_lag->Add({{"partition", partition}}).Set(static_cast<double>(lag));
}

void Metrics::CountRekeyRead(const std::string& field, uint64_t records) {
  impl_->rekey_read->Add({{"field", field}}).Increment(static_cast<double>(records));
}

void Metrics::CountRekeyed(const std::string& field, uint64_t forwarded, uint64_t missing_key) {
  // Called every tick for every stage: the series exist from the start.
  impl_->rekey_forwarded->Add({{"field", field}}).Increment(static_cast<double>(forwarded));
  impl_->rekey_missing->Add({{"field", field}}).Increment(static_cast<double>(missing_key));
}

void Metrics::CountRecord() { impl_->records->Increment(); }

void Metrics::ObserveEventToAlert(double seconds) { impl_->event_to_alert->Observe(seconds); }

}  // namespace cepheus::metrics

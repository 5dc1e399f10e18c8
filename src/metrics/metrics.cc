// Metrics: one registry, one exposer, probes that turn engine statistics into
// Prometheus series.
//
// The engine keeps plain counters (it knows nothing of Prometheus); the probe
// remembers what it last published per partition and adds the difference, so
// engines can be created and dropped as partitions come and go. prometheus-cpp
// throws when the exposer cannot bind; that exception is caught here, once.
#include "cepheus/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <fmt/format.h>

namespace cepheus::metrics {

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
  std::vector<prometheus::Counter*> alerts;      // by rule
  std::vector<prometheus::Counter*> suppressed;  // by rule
  std::vector<prometheus::Counter*> evicted;     // by rule
  std::vector<prometheus::Gauge*> runs;          // by rule
  prometheus::Gauge* keys = nullptr;
  prometheus::Histogram* event_to_alert = nullptr;
  prometheus::Family<prometheus::Gauge>* watermark_lag = nullptr;
  prometheus::Family<prometheus::Gauge>* consumer_lag = nullptr;
  prometheus::Histogram* state_commit = nullptr;
  prometheus::Gauge* state_bytes = nullptr;
  prometheus::Counter* aborts = nullptr;

  struct Last {
    engine::EngineStats stats;
    int64_t keys = 0;
  };
  std::map<int32_t, Last> last;
};

Result<std::unique_ptr<Metrics>> Metrics::Start(const std::string& listen, const std::string& version,
                                                const nfa::CompiledRuleSet& rules) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->impl_ = std::make_unique<Impl>();
  Impl& i = *m->impl_;
  i.rules = &rules;
  auto& reg = *i.registry;
  auto& events = BuildCounter().Name("cepheus_events_total").Help("Events read, by outcome.").Register(reg);
  i.evaluated = &events.Add({{"outcome", "evaluated"}});
  i.late = &events.Add({{"outcome", "late"}});
  i.malformed = &events.Add({{"outcome", "malformed"}});
  i.records = &BuildCounter()
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
  for (const auto& p : rules.programs) {
    std::string severity = dsl::SeverityName(p->rule->severity);
    i.alerts.push_back(&alerts.Add({{"rule", p->name}, {"severity", severity}}));
    i.suppressed.push_back(&suppressed.Add({{"rule", p->name}}));
    i.runs.push_back(&runs.Add({{"rule", p->name}}));
    i.evicted.push_back(&evicted.Add({{"rule", p->name}}));
  }
  i.keys = &BuildGauge().Name("cepheus_keys_active").Help("Keys holding state.").Register(reg).Add({});
  i.event_to_alert = &BuildHistogram()
                          .Name("cepheus_event_to_alert_seconds")
                          .Help("From a message's Kafka time to its alert being committed (published).")
                          .Register(reg)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02, 0.035,
                                                                           0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                                                                           1, 2, 5, 10});
  i.watermark_lag = &BuildGauge()
                         .Name("cepheus_watermark_lag_seconds")
                         .Help("Wall clock minus the partition's watermark.")
                         .Register(reg);
  i.consumer_lag = &BuildGauge()
                        .Name("cepheus_consumer_lag")
                        .Help("Records between the partition's end and the next one to read.")
                        .Register(reg);
  i.state_commit = &BuildHistogram()
                        .Name("cepheus_state_commit_seconds")
                        .Help("Time to commit one batch: Kafka transaction, then LMDB.")
                        .Register(reg)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                         0.1, 0.25, 0.5, 1, 2.5});
  i.state_bytes = &BuildGauge().Name("cepheus_state_bytes").Help("Bytes of the LMDB map in use.").Register(reg).Add({});
  i.aborts = &BuildCounter()
                  .Name("cepheus_kafka_transaction_aborts_total")
                  .Help("Kafka transactions aborted (their batch is redone).")
                  .Register(reg)
                  .Add({});
  auto& reloads = BuildCounter()
                      .Name("cepheus_rule_reloads_total")
                      .Help("Rule set reloads, by outcome.")
                      .Register(reg);
  reloads.Add({{"outcome", "success"}});
  reloads.Add({{"outcome", "error"}});
  BuildGauge().Name("cepheus_build_info").Help("Build information.").Register(reg).Add({{"version", version}}).Set(1);
  BuildGauge().Name("cepheus_up").Help("1 while the process serves.").Register(*i.health).Add({}).Set(1);
  try {
    i.exposer = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return Status::IoError(fmt::format("cannot serve metrics on {}: {}", listen, e.what()));
  }
  i.exposer->RegisterCollectable(i.registry, "/metrics");
  i.exposer->RegisterCollectable(i.health, "/healthz");
  return m;
}

Metrics::~Metrics() = default;

int Metrics::port() const {
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Metrics::UpdateEngine(int32_t partition, const engine::Engine& eng, Millis wall_now_ms) {
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
  int64_t keys = eng.active_keys();
  i.keys->Increment(static_cast<double>(keys - last.keys));
  last.keys = keys;
  last.stats = s;
  if (eng.watermark() > kMinTime) {
    i.watermark_lag->Add({{"partition", std::to_string(partition)}})
        .Set(static_cast<double>(wall_now_ms - eng.watermark()) / 1000.0);
  }
}

void Metrics::CountMalformed(uint64_t n) { impl_->malformed->Increment(static_cast<double>(n)); }

void Metrics::ObserveStateCommit(double seconds) { impl_->state_commit->Observe(seconds); }
void Metrics::SetStateBytes(uint64_t bytes) { impl_->state_bytes->Set(static_cast<double>(bytes)); }
void Metrics::CountTransactionAbort() { impl_->aborts->Increment(); }
void Metrics::SetConsumerLag(int32_t partition, int64_t lag) {
  impl_->consumer_lag->Add({{"partition", std::to_string(partition)}}).Set(static_cast<double>(lag));
}

void Metrics::CountRecord() { impl_->records->Increment(); }

void Metrics::ObserveEventToAlert(double seconds) { impl_->event_to_alert->Observe(seconds); }

}  // namespace cepheus::metrics

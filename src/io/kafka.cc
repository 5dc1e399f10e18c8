// Kafka clients on librdkafka's C++ API, following its examples: one Conf
// per client with the pass-through properties applied first and cepheus's own
// settings after, a rebalance callback that handles the cooperative protocol
// (incremental assign / unassign), a consume call that switches on the error
// code, and delivery reports counted by a callback.
#include "cepheus/io/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

namespace cepheus::io {
namespace {

std::atomic<LogHandler> g_log{nullptr};

void IoLog(int priority, const std::string& line) {
  if (LogHandler h = g_log.load()) {
    h(priority, line);
  } else {
    std::fprintf(stderr, "cepheus: %s\n", line.c_str());
  }
}

// librdkafka's log and error events, to the log handler.
class LogEvents : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& e) override {
    if (e.type() == RdKafka::Event::EVENT_LOG) {
      IoLog(static_cast<int>(e.severity()), fmt::format("kafka: {}: {}", e.fac(), e.str()));
    } else if (e.type() == RdKafka::Event::EVENT_ERROR) {
      IoLog(e.fatal() ? 2 : 3, fmt::format("kafka: {}: {}", RdKafka::err2str(e.err()), e.str()));
    }
  }
};
LogEvents g_log_events;

// Every client's Conf routes its logs to the handler, when there is one.
void RouteLogs(RdKafka::Conf* conf) {
  if (g_log.load() == nullptr) return;
  std::string err;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&g_log_events), err);
}

Status ApplyAll(RdKafka::Conf* conf, const Properties& props) {
  std::string err;
  for (const auto& [k, v] : props) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) return Status::InvalidArgument(fmt::format("{}: {}", k, err));
  }
  return Status::Ok();
}

// What a transactional producer adds to the user's properties: a shorter
// retry backoff unless the user set one (a transaction's AddOffsetsToTxn and
// TxnOffsetCommit that reach the coordinator while it still writes the
// previous transaction's markers get CONCURRENT_TRANSACTIONS, and librdkafka
// 2.0.2 retries those after retry.backoff.ms, 100 ms by default: with a commit
// every 100 ms, one commit in ten or so then stalls the loop for 100 ms),
// and the transactional settings, which win.
Properties TransactionalExtras(const std::string& transactional_id, const Properties& extra) {
  Properties props = extra;
  props.emplace("retry.backoff.ms", "10");
  props["transactional.id"] = transactional_id;
  props["enable.idempotence"] = "true";
  props["acks"] = "all";
  return props;
}

class DeliveryCounter : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() != RdKafka::ERR_NO_ERROR) {
      ++failures;
      IoLog(3, fmt::format("delivery to {} failed: {}", m.topic_name(), m.errstr()));
    }
  }
  std::atomic<uint64_t> failures{0};
};

class Rebalance : public RdKafka::RebalanceCb {
 public:
  RebalanceListener* listener = nullptr;
  bool assigned_once = false;  // an assignment was served (see KafkaConsumer::Close)

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) assigned_once = true;
    if (listener != nullptr) {
      std::vector<TopicOffset> tps;
      for (auto* tp : partitions) tps.push_back({tp->topic(), tp->partition(), -1});
      if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
        if (consumer->committed(partitions, 10000) == RdKafka::ERR_NO_ERROR) {
          for (size_t i = 0; i < partitions.size(); ++i) {
            tps[i].offset = partitions[i]->offset() >= 0 ? partitions[i]->offset() : -1;
          }
        }
        std::vector<int64_t> start = listener->OnAssigned(tps);
        for (size_t i = 0; i < partitions.size() && i < start.size(); ++i) {
          partitions[i]->set_offset(start[i] >= 0 ? start[i] : tps[i].offset >= 0 ? tps[i].offset
                                                                                      : RdKafka::Topic::OFFSET_INVALID);
        }
      } else {
        listener->OnRevoked(tps, consumer->assignment_lost());
      }
    }
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
          IoLog(3, "incremental assign failed: " + e->str());
          delete e;
        }
      } else {
        consumer->assign(partitions);
      }
    } else {
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
          IoLog(3, "incremental unassign failed: " + e->str());
          delete e;
        }
      } else {
        consumer->unassign();
      }
    }
  }
};

}  // namespace

// ---- MockCluster ---------------------------------------------------------------

Result<std::unique_ptr<MockCluster>> MockCluster::Create(int brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) return Status::IoError(fmt::format("cannot create the mock cluster's handle: {}", err));
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (mc == nullptr) {
    rd_kafka_destroy(rk);
    return Status::IoError("cannot create librdkafka's mock cluster");
  }
  std::unique_ptr<MockCluster> out(new MockCluster());
  out->handle_ = rk;
  out->cluster_ = mc;
  out->bootstraps_ = rd_kafka_mock_cluster_bootstraps(mc);
  return out;
}

MockCluster::~MockCluster() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);  // before its handle
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

void MockCluster::PushRequestErrors(int16_t api_key, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, codes.size(), codes.data());
}

void MockCluster::SetBrokerDown(int32_t broker, bool down) {
  if (down) {
    rd_kafka_mock_broker_set_down(cluster_, broker);
  } else {
    rd_kafka_mock_broker_set_up(cluster_, broker);
  }
}

void MockCluster::SetBrokerRtt(int32_t broker, int rtt_ms) { rd_kafka_mock_broker_set_rtt(cluster_, broker, rtt_ms); }

void MockCluster::SetPartitionLeader(const std::string& topic, int32_t partition, int32_t broker) {
  rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker);
}

void MockCluster::SetCoordinator(const std::string& type, const std::string& key, int32_t broker) {
  rd_kafka_mock_coordinator_set(cluster_, type.c_str(), key.c_str(), broker);
}

Status MockCluster::CreateTopic(const std::string& name, int partitions) {
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
  if (err) return Status::IoError(fmt::format("cannot create topic {}: {}", name, rd_kafka_err2str(err)));
  return Status::Ok();
}

void SetLogHandler(LogHandler handler) { g_log = handler; }

// ---- KafkaProducer ---------------------------------------------------------------

struct KafkaProducer::Impl {
  DeliveryCounter delivery;
  std::unique_ptr<RdKafka::Producer> producer;
  // Topic handles for ProduceTo, so a message does not look its topic up by
  // name (declared after the producer: destroyed before it).
  std::vector<std::pair<std::string, std::unique_ptr<RdKafka::Topic>>> topics;

  RdKafka::Topic* TopicHandle(const std::string& name, std::string* err) {
    for (auto& [n, t] : topics) {
      if (n == name) return t.get();
    }
    RdKafka::Topic* t = RdKafka::Topic::create(producer.get(), name, nullptr, *err);
    if (t != nullptr) topics.emplace_back(name, t);
    return t;
  }
};

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(const std::string& brokers, const Properties& extra) {
  std::unique_ptr<KafkaProducer> out(new KafkaProducer());
  out->impl_ = std::make_unique<Impl>();
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RouteLogs(conf.get());
  std::string err;
  if (Status st = ApplyAll(conf.get(), ProducerProperties(brokers, extra)); !st.ok()) return st;
  conf->set("dr_cb", &out->impl_->delivery, err);
  out->impl_->producer.reset(RdKafka::Producer::create(conf.get(), err));
  if (!out->impl_->producer) return Status::IoError(fmt::format("cannot create the producer: {}", err));
  return out;
}

Status KafkaProducer::LoadMetadata(const std::vector<std::string>& topics, int timeout_ms) {
  for (const auto& name : topics) {
    std::string err;
    RdKafka::Topic* t = impl_->TopicHandle(name, &err);
    if (t == nullptr) return Status::IoError(fmt::format("topic {}: {}", name, err));
    RdKafka::Metadata* md = nullptr;
    RdKafka::ErrorCode e = impl_->producer->metadata(false, t, &md, timeout_ms);
    std::unique_ptr<RdKafka::Metadata> owned(md);
    if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("topic {}: {}", name, RdKafka::err2str(e)));
    for (const auto* tm : *md->topics()) {
      if (tm->err() != RdKafka::ERR_NO_ERROR) {
        return Status::NotFound(fmt::format("topic {}: {}", name, RdKafka::err2str(tm->err())));
      }
    }
  }
  return Status::Ok();
}

// All topics' metadata, not the topic's own: a request naming a topic the
// brokers do not know may create it (auto.create.topics.enable) with the
// brokers' default partition count.
Result<int32_t> KafkaProducer::PartitionCount(const std::string& topic, int timeout_ms) {
  RdKafka::Metadata* md = nullptr;
  RdKafka::ErrorCode e = impl_->producer->metadata(true, nullptr, &md, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> owned(md);
  if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("topic {}: {}", topic, RdKafka::err2str(e)));
  for (const auto* tm : *md->topics()) {
    if (tm->topic() != topic) continue;
    if (tm->err() != RdKafka::ERR_NO_ERROR) {
      return Status::NotFound(fmt::format("topic {}: {}", topic, RdKafka::err2str(tm->err())));
    }
    return static_cast<int32_t>(tm->partitions()->size());
  }
  return Status::NotFound(fmt::format("topic {}: not in the brokers' metadata", topic));
}

Status KafkaProducer::CreateTopic(const std::string& topic, int32_t partitions, int timeout_ms) {
  rd_kafka_t* rk = impl_->producer->c_ptr();
  char errstr[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, errstr, sizeof errstr);
  if (nt == nullptr) return Status::InvalidArgument(fmt::format("topic {}: {}", topic, errstr));
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof errstr);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
  Status st;
  if (ev == nullptr) {
    st = Status::IoError(fmt::format("creating topic {}: no answer within {} ms", topic, timeout_ms));
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    st = Status::IoError(fmt::format("creating topic {}: {}", topic, rd_kafka_event_error_string(ev)));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        st = Status::IoError(fmt::format("creating topic {}: {}", topic, rd_kafka_err2str(e)));
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return st;
}

KafkaProducer::~KafkaProducer() {
  if (impl_ && impl_->producer) impl_->producer->flush(5000);
}

Status KafkaProducer::Produce(const std::string& topic, std::string_view key, std::string_view value,
                              const Headers& headers) {
  RdKafka::Headers* h = nullptr;
  if (!headers.empty()) {
    h = RdKafka::Headers::create();
    for (const auto& [k, v] : headers) h->add(k, v.data(), v.size());
  }
  for (int attempt = 0;; ++attempt) {
    RdKafka::ErrorCode err = impl_->producer->produce(
        topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
        value.size(), key.data(), key.size(), 0, h, nullptr);
    if (err == RdKafka::ERR_NO_ERROR) return Status::Ok();  // headers now owned by librdkafka
    if (err == RdKafka::ERR__QUEUE_FULL && attempt < 100) {
      impl_->producer->poll(10);
      continue;
    }
    delete h;
    return Status::IoError(fmt::format("produce to {} failed: {}", topic, RdKafka::err2str(err)));
  }
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::CreateTransactional(const std::string& brokers,
                                                                          const std::string& transactional_id,
                                                                          const Properties& extra) {
  return Create(brokers, TransactionalExtras(transactional_id, extra));
}

namespace {

bool IsFencedCode(int code) {
  return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

// `producer` answers, for a fatal error, which error made it fatal: the
// error's own code is then often just __FATAL.
TxnResult Classify(RdKafka::Error* e, RdKafka::Producer* producer) {
  if (e == nullptr) return {};
  TxnResult r;
  r.message = e->str();
  r.outcome = e->is_fatal()              ? TxnOutcome::kFatal
              : e->txn_requires_abort()  ? TxnOutcome::kAbort
              : e->is_retriable()        ? TxnOutcome::kRetry
                                         : TxnOutcome::kAbort;
  r.fenced = IsFencedCode(e->code());
  if (e->is_fatal()) {
    std::string why;
    r.fenced = r.fenced || IsFencedCode(producer->fatal_error(why));
  }
  delete e;
  return r;
}

}  // namespace

TxnResult KafkaProducer::InitTransactions(int timeout_ms) {
  return Classify(impl_->producer->init_transactions(timeout_ms), impl_->producer.get());
}

TxnResult KafkaProducer::BeginTransaction() {
  return Classify(impl_->producer->begin_transaction(), impl_->producer.get());
}

TxnResult KafkaProducer::SendOffsets(const std::vector<TopicOffset>& offsets, Consumer* group_consumer,
                                     int timeout_ms) {
  // The offsets are the group's: only a consumer of this library has one.
  auto* consumer = dynamic_cast<KafkaConsumer*>(group_consumer);
  if (consumer == nullptr) return TxnResult{TxnOutcome::kFatal, "send_offsets: not a Kafka group consumer", false};
  std::vector<RdKafka::TopicPartition*> tps;
  for (const auto& o : offsets) tps.push_back(RdKafka::TopicPartition::create(o.topic, o.partition, o.offset));
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> meta(
      static_cast<RdKafka::ConsumerGroupMetadata*>(consumer->group_metadata_handle()));
  TxnResult r =
      Classify(impl_->producer->send_offsets_to_transaction(tps, meta.get(), timeout_ms), impl_->producer.get());
  RdKafka::TopicPartition::destroy(tps);
  return r;
}

TxnResult KafkaProducer::CommitTransaction(int timeout_ms) {
  return Classify(impl_->producer->commit_transaction(timeout_ms), impl_->producer.get());
}

TxnResult KafkaProducer::AbortTransaction(int timeout_ms) {
  return Classify(impl_->producer->abort_transaction(timeout_ms), impl_->producer.get());
}

Status KafkaProducer::ProduceTo(const std::string& topic, int32_t partition, std::string_view key,
                                std::optional<std::string_view> value) {
  std::string why;
  RdKafka::Topic* handle = impl_->TopicHandle(topic, &why);
  if (handle == nullptr) return Status::IoError(fmt::format("produce to {}/{} failed: {}", topic, partition, why));
  for (int attempt = 0;; ++attempt) {
    RdKafka::ErrorCode err = impl_->producer->produce(
        handle, partition, RdKafka::Producer::RK_MSG_COPY, value ? const_cast<char*>(value->data()) : nullptr,
        value ? value->size() : 0, key.data(), key.size(), nullptr);
    if (err == RdKafka::ERR_NO_ERROR) return Status::Ok();
    if (err == RdKafka::ERR__QUEUE_FULL && attempt < 100) {
      impl_->producer->poll(10);
      continue;
    }
    return Status::IoError(fmt::format("produce to {}/{} failed: {}", topic, partition, RdKafka::err2str(err)));
  }
}

Result<CompactedLog> ReadCompacted(
    const std::string& brokers, const std::string& topic, const std::vector<int32_t>& partitions,
    const Properties& extra, int timeout_ms) {
  std::map<int32_t, std::map<std::string, std::string>> out;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RouteLogs(conf.get());
  if (Status st = ApplyAll(conf.get(), extra); !st.ok()) return st;
  Properties own = {{"bootstrap.servers", brokers},       {"group.id", "cepheus-restore"},
                    {"enable.auto.commit", "false"},      {"enable.partition.eof", "true"},
                    {"isolation.level", "read_committed"}, {"auto.offset.reset", "earliest"}};
  if (Status st = ApplyAll(conf.get(), own); !st.ok()) return st;
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) return Status::IoError(fmt::format("cannot create the restore consumer: {}", err));
  std::vector<RdKafka::TopicPartition*> tps;
  for (int32_t p : partitions) {
    out[p];  // present even when empty
    int64_t low = 0, high = 0;
    RdKafka::ErrorCode e = c->query_watermark_offsets(topic, p, &low, &high, 10000);
    if (e != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(tps);
      c->close();
      return Status::IoError(fmt::format("{}/{}: {}", topic, p, RdKafka::err2str(e)));
    }
    if (high > low) tps.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  size_t pending = tps.size();
  if (pending > 0) c->assign(tps);
  RdKafka::TopicPartition::destroy(tps);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pending > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      c->close();
      return Status::IoError(fmt::format("restoring from {} timed out", topic));
    }
    std::unique_ptr<RdKafka::Message> m(c->consume(200));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      --pending;
      continue;
    }
    if (m->err() == RdKafka::ERR__TIMED_OUT) continue;
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      std::string why = m->errstr();
      c->close();
      return Status::IoError(fmt::format("restoring from {}: {}", topic, why));
    }
    auto& kv = out[m->partition()];
    std::string key = m->key() ? *m->key() : std::string();
    if (m->payload() == nullptr) {
      kv.erase(key);
    } else {
      kv[key] = std::string(static_cast<const char*>(m->payload()), m->len());
    }
  }
  c->close();
  return out;
}

namespace {

// TopicReader on librdkafka: one consumer in assign mode (no group join; the
// group id only names it), read_committed.
class KafkaTopicReader : public TopicReader {
 public:
  KafkaTopicReader(std::string topic, std::unique_ptr<RdKafka::KafkaConsumer> c)
      : topic_(std::move(topic)), c_(std::move(c)) {}
  ~KafkaTopicReader() override {
    if (assigned_) c_->unassign();
    c_->close();
  }

  Result<std::map<int32_t, int64_t>> EndOffsets(int timeout_ms) override {
    RdKafka::Metadata* md = nullptr;
    std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(c_.get(), topic_, nullptr, err_));
    RdKafka::ErrorCode e = c_->metadata(false, t.get(), &md, timeout_ms);
    std::unique_ptr<RdKafka::Metadata> owned(md);
    if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("{}: {}", topic_, RdKafka::err2str(e)));
    std::map<int32_t, int64_t> out;
    for (const auto* tm : *md->topics()) {
      if (tm->topic() != topic_) continue;
      if (tm->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) {
        return Status::FailedPrecondition(fmt::format("topic {} does not exist", topic_));
      }
      if (tm->err() != RdKafka::ERR_NO_ERROR) {
        return Status::IoError(fmt::format("{}: {}", topic_, RdKafka::err2str(tm->err())));
      }
      for (const auto* pm : *tm->partitions()) {
        int64_t low = 0, high = 0;
        e = c_->query_watermark_offsets(topic_, pm->id(), &low, &high, timeout_ms);
        if (e != RdKafka::ERR_NO_ERROR) {
          return Status::IoError(fmt::format("{}/{}: {}", topic_, pm->id(), RdKafka::err2str(e)));
        }
        out[pm->id()] = high;
      }
    }
    if (out.empty()) return Status::FailedPrecondition(fmt::format("topic {} does not exist", topic_));
    return out;
  }

  Status Assign(const std::map<int32_t, int64_t>& from) override {
    std::vector<RdKafka::TopicPartition*> tps;
    for (const auto& [p, offset] : from) tps.push_back(RdKafka::TopicPartition::create(topic_, p, offset));
    RdKafka::ErrorCode e = c_->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("{}: assign: {}", topic_, RdKafka::err2str(e)));
    assigned_ = true;
    return Status::Ok();
  }

  Result<bool> Poll(int timeout_ms, TopicRecord* out) override {
    std::unique_ptr<RdKafka::Message> m(c_->consume(timeout_ms));
    switch (m->err()) {
      case RdKafka::ERR_NO_ERROR: break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF: return false;
      default: return Status::IoError(fmt::format("{}: {}", topic_, m->errstr()));
    }
    out->partition = m->partition();
    out->offset = m->offset();
    out->timestamp = m->timestamp().timestamp;
    if (m->key() != nullptr) out->key = *m->key();
    else out->key.reset();
    if (m->payload() != nullptr) out->value = std::string(static_cast<const char*>(m->payload()), m->len());
    else out->value.reset();
    return true;
  }

  int64_t Position(int32_t partition) override {
    std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(topic_, partition)};
    int64_t at = -1;
    if (c_->position(tps) == RdKafka::ERR_NO_ERROR && tps[0]->err() == RdKafka::ERR_NO_ERROR) at = tps[0]->offset();
    RdKafka::TopicPartition::destroy(tps);
    return at;
  }

  int64_t CachedEnd(int32_t partition) override {
    int64_t low = -1, high = -1;
    if (c_->get_watermark_offsets(topic_, partition, &low, &high) != RdKafka::ERR_NO_ERROR) return -1;
    return high;
  }

 private:
  std::string topic_;
  std::unique_ptr<RdKafka::KafkaConsumer> c_;
  std::string err_;
  bool assigned_ = false;
};

}  // namespace

Result<std::unique_ptr<TopicReader>> KafkaClients::Reader(const std::string& topic, const Properties& extra) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RouteLogs(conf.get());
  if (Status st = ApplyAll(conf.get(), extra); !st.ok()) return st;
  Properties own = {{"bootstrap.servers", brokers_},       {"group.id", "cepheus-table-" + topic},
                    {"enable.auto.commit", "false"},       {"enable.auto.offset.store", "false"},
                    {"isolation.level", "read_committed"}, {"auto.offset.reset", "earliest"}};
  if (Status st = ApplyAll(conf.get(), own); !st.ok()) return st;
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) return Status::IoError(fmt::format("cannot create the reader of table topic {}: {}", topic, err));
  return std::unique_ptr<TopicReader>(new KafkaTopicReader(topic, std::move(c)));
}

int KafkaProducer::Poll(int timeout_ms) { return impl_->producer->poll(timeout_ms); }

Status KafkaProducer::Flush(int timeout_ms) {
  RdKafka::ErrorCode err = impl_->producer->flush(timeout_ms);
  if (err != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("flush: {}", RdKafka::err2str(err)));
  return Status::Ok();
}

uint64_t KafkaProducer::delivery_failures() const { return impl_->delivery.failures.load(); }

// ---- KafkaConsumer ---------------------------------------------------------------

struct KafkaConsumer::Impl {
  Rebalance rebalance;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  bool closed = false;
};

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(const std::string& brokers, const std::string& group,
                                                             const std::vector<std::string>& topics,
                                                             const Properties& extra, RebalanceListener* listener) {
  std::unique_ptr<KafkaConsumer> out(new KafkaConsumer());
  out->impl_ = std::make_unique<Impl>();
  out->impl_->rebalance.listener = listener;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  RouteLogs(conf.get());
  std::string err;
  if (Status st = ApplyAll(conf.get(), ConsumerProperties(brokers, group, extra)); !st.ok()) return st;
  conf->set("rebalance_cb", &out->impl_->rebalance, err);
  out->impl_->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!out->impl_->consumer) return Status::IoError(fmt::format("cannot create the consumer: {}", err));
  RdKafka::ErrorCode e = out->impl_->consumer->subscribe(topics);
  if (e != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("subscribe: {}", RdKafka::err2str(e)));
  return out;
}

KafkaConsumer::~KafkaConsumer() { Close(); }

Status KafkaConsumer::Seek(const TopicOffset& to, int timeout_ms) {
  std::unique_ptr<RdKafka::TopicPartition> tp(RdKafka::TopicPartition::create(to.topic, to.partition, to.offset));
  RdKafka::ErrorCode err = impl_->consumer->seek(*tp, timeout_ms);
  if (err != RdKafka::ERR_NO_ERROR) return Status::IoError(fmt::format("seek: {}", RdKafka::err2str(err)));
  return Status::Ok();
}

int64_t KafkaConsumer::HighWatermark(const std::string& topic, int32_t partition) {
  int64_t low = -1, high = -1;
  if (impl_->consumer->get_watermark_offsets(topic, partition, &low, &high) != RdKafka::ERR_NO_ERROR) return -1;
  return high;
}

void* KafkaConsumer::group_metadata_handle() { return impl_->consumer->groupMetadata(); }

// librdkafka 2.0.2's cooperative-sticky assignor aborts when its consumer is
// closed or destroyed before its first assignment (librdkafka #4312, fixed in
// 2.3.0: the assignor's state is NULL until then and its destructor asserts
// it is not): a SIGTERM while the daemon joined its group killed it. Before
// the first assignment there is nothing to commit and nothing to revoke, so
// the handle is then neither closed nor destroyed but let go: the process is
// about to exit (its threads go with it), and the broker sees the member go as
// after a crash. Under static membership (the default) the next start with
// the same group.instance.id takes its place at once.
void KafkaConsumer::Close() {
  if (impl_ && impl_->consumer && !impl_->closed) {
    impl_->closed = true;
    if (impl_->rebalance.assigned_once) {
      impl_->consumer->close();
    } else {
      IoLog(6, "stopping before the first assignment: the consumer is let go without closing (librdkafka #4312)");
      (void)impl_->consumer.release();  // deliberately never destroyed, see above
    }
  }
}

Result<bool> KafkaConsumer::Poll(int timeout_ms, engine::RawRecord* out) {
  // librdkafka's C call: the C++ consume() allocates a Message wrapper per
  // record. The payload goes into the record's buffer (its room is kept from
  // record to record), the topic name is copied only when it differs from
  // the last record's.
  rd_kafka_message_t* c = rd_kafka_consumer_poll(impl_->consumer->c_ptr(), timeout_ms);
  if (c == nullptr) return false;
  std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> hold(c, rd_kafka_message_destroy);
  switch (c->err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: {
      size_t len = c->payload ? c->len : 0;
      if (out->payload.capacity() < len + engine::kPayloadPadding) out->payload.reserve(len + engine::kPayloadPadding);
      out->payload.assign(static_cast<const char*>(c->payload), len);
      const char* topic = rd_kafka_topic_name(c->rkt);
      if (out->pos.topic != topic) out->pos.topic.assign(topic);
      out->pos.partition = c->partition;
      out->pos.offset = c->offset;
      rd_kafka_timestamp_type_t type;
      int64_t ts = rd_kafka_message_timestamp(c, &type);
      out->source_time = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? 0 : ts;
      out->key.assign(c->key ? static_cast<const char*>(c->key) : "", c->key ? c->key_len : 0);
      return true;
    }
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
      return false;
    default:
      if (c->err == RD_KAFKA_RESP_ERR__FATAL) {
        return Status::IoError(fmt::format("consumer: {}", rd_kafka_message_errstr(c)));
      }
      IoLog(4, std::string("consumer: ") + rd_kafka_message_errstr(c));
      return false;
  }
}

Result<std::optional<engine::RawRecord>> KafkaConsumer::Poll(int timeout_ms) {
  engine::RawRecord r;
  auto got = Poll(timeout_ms, &r);
  if (!got.ok()) return got.status();
  if (!got.value()) return std::optional<engine::RawRecord>();
  return std::optional<engine::RawRecord>(std::move(r));
}

Result<std::unique_ptr<TxnProducer>> KafkaClients::Producer(const std::string& transactional_id,
                                                            const Properties& extra) {
  auto p = KafkaProducer::CreateTransactional(brokers_, transactional_id, extra);
  if (!p.ok()) return p.status();
  return std::unique_ptr<TxnProducer>(std::move(p).value());
}

Result<std::unique_ptr<Consumer>> KafkaClients::GroupConsumer(const std::string& group,
                                                              const std::vector<std::string>& topics,
                                                              const Properties& extra, RebalanceListener* listener) {
  auto c = KafkaConsumer::Create(brokers_, group, topics, extra, listener);
  if (!c.ok()) return c.status();
  return std::unique_ptr<Consumer>(std::move(c).value());
}

Result<CompactedLog> KafkaClients::ReadCompacted(const std::string& topic, const std::vector<int32_t>& partitions,
                                                 const Properties& extra, int timeout_ms) {
  return io::ReadCompacted(brokers_, topic, partitions, extra, timeout_ms);
}

Properties ProducerProperties(const std::string& brokers, const Properties& extra) {
  Properties props = extra;
  props.emplace("linger.ms", "5");  // the user's wins: a latency knob
  props["bootstrap.servers"] = brokers;
  props["enable.idempotence"] = "true";
  return props;
}

Properties TransactionalProducerProperties(const std::string& brokers, const std::string& transactional_id,
                                           const Properties& extra) {
  return ProducerProperties(brokers, TransactionalExtras(transactional_id, extra));
}

Properties ConsumerProperties(const std::string& brokers, const std::string& group, const Properties& extra) {
  Properties props = extra;
  for (const auto& [k, v] : Properties{{"bootstrap.servers", brokers},
                                       {"group.id", group},
                                       {"partition.assignment.strategy", "cooperative-sticky"},
                                       {"enable.auto.commit", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"isolation.level", "read_committed"}}) {
    props[k] = v;
  }
  return props;
}

}  // namespace cepheus::io

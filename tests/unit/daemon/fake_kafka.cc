// FakeKafka: one mutex over every log. A producer buffers its transaction's
// records and offsets and applies them at commit; a consumer reads, partition
// by partition in turn, the committed records past its positions, and first
// delivers the assignment moves queued for it (outside the lock: the
// listener commits through the producer).
#include "fake_kafka.h"

#include <chrono>
#include <functional>

namespace cepheus::testing {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

// ---- producer ----------------------------------------------------------------

class FakeKafka::FakeProducer : public io::TxnProducer {
 public:
  FakeProducer(FakeKafka* k, std::string id, uint64_t epoch) : k_(k), id_(std::move(id)), epoch_(epoch) {}

  io::TxnResult InitTransactions(int) override { return Fenced(); }
  io::TxnResult BeginTransaction() override { return Fenced(); }
  io::TxnResult SendOffsets(const std::vector<io::TopicOffset>& offsets, io::Consumer*, int) override {
    std::lock_guard lock(k_->mu_);
    if (auto r = FencedLocked(); !r.ok()) return r;
    if (auto f = k_->TakeFault(Call::kSendOffsets)) return {*f, "injected send_offsets failure", false};
    for (const auto& o : offsets) offsets_[{o.topic, o.partition}] = o.offset;
    return {};
  }
  io::TxnResult CommitTransaction(int) override {
    std::lock_guard lock(k_->mu_);
    if (auto r = FencedLocked(); !r.ok()) return r;
    if (auto f = k_->TakeFault(Call::kCommit)) return {*f, "injected commit failure", false};
    for (auto& [tp, rec] : pending_) k_->topics_[tp.first][static_cast<size_t>(tp.second)].push_back(std::move(rec));
    for (const auto& [tp, off] : offsets_) k_->group_offsets_[tp] = off;
    pending_.clear();
    offsets_.clear();
    ++k_->commits_;
    k_->appended_.notify_all();
    return {};
  }
  io::TxnResult AbortTransaction(int) override {
    std::lock_guard lock(k_->mu_);
    pending_.clear();
    offsets_.clear();
    ++k_->aborts_;
    return FencedLocked();
  }
  Status Produce(const std::string& topic, std::string_view key, std::string_view value,
                 const io::Headers& headers) override {
    std::lock_guard lock(k_->mu_);
    auto it = k_->topics_.find(topic);
    if (it == k_->topics_.end()) return Status::IoError("produce: unknown topic " + topic);
    auto n = static_cast<int32_t>(it->second.size());
    int32_t partition = key.empty() ? 0 : static_cast<int32_t>(std::hash<std::string_view>()(key) % n);
    return Queue(topic, partition, {std::string(key), std::string(value), headers});
  }
  Status ProduceTo(const std::string& topic, int32_t partition, std::string_view key,
                   std::optional<std::string_view> value) override {
    std::lock_guard lock(k_->mu_);
    Record r{std::string(key), std::nullopt, {}};
    if (value) r.value = std::string(*value);
    return Queue(topic, partition, std::move(r));
  }
  Status LoadMetadata(const std::vector<std::string>& topics, int) override {
    std::lock_guard lock(k_->mu_);
    for (const auto& t : topics) {
      if (!k_->topics_.count(t)) return Status::NotFound("unknown topic " + t);
    }
    return Status::Ok();
  }
  Result<int32_t> PartitionCount(const std::string& topic, int) override {
    std::lock_guard lock(k_->mu_);
    auto it = k_->topics_.find(topic);
    if (it == k_->topics_.end()) return Status::NotFound("unknown topic " + topic);
    return static_cast<int32_t>(it->second.size());
  }
  Status CreateTopic(const std::string& topic, int32_t partitions, int) override {
    std::lock_guard lock(k_->mu_);
    if (!k_->topics_.count(topic)) k_->topics_[topic].resize(static_cast<size_t>(partitions));
    return Status::Ok();
  }
  int Poll(int) override { return 0; }
  Status Flush(int) override { return Status::Ok(); }

 private:
  // mu_ held.
  Status Queue(const std::string& topic, int32_t partition, Record r) {
    if (k_->TakeFault(Call::kProduce)) return Status::IoError("injected produce failure");
    auto it = k_->topics_.find(topic);
    if (it == k_->topics_.end() || partition < 0 || partition >= static_cast<int32_t>(it->second.size())) {
      return Status::IoError("produce: no partition " + topic + "/" + std::to_string(partition));
    }
    pending_.emplace_back(std::make_pair(topic, partition), std::move(r));
    return Status::Ok();
  }
  io::TxnResult Fenced() {
    std::lock_guard lock(k_->mu_);
    return FencedLocked();
  }
  io::TxnResult FencedLocked() const {
    if (k_->epochs_[id_] == epoch_) return {};
    return {io::TxnOutcome::kFatal, "producer fenced by a newer instance", true};
  }

  FakeKafka* k_;
  std::string id_;
  uint64_t epoch_;
  std::vector<std::pair<std::pair<std::string, int32_t>, Record>> pending_;
  std::map<std::pair<std::string, int32_t>, int64_t> offsets_;
};

// ---- consumer ----------------------------------------------------------------

class FakeKafka::FakeConsumer : public io::Consumer {
 public:
  FakeConsumer(FakeKafka* k, size_t member, io::RebalanceListener* listener)
      : k_(k), member_(member), listener_(listener) {}
  ~FakeConsumer() override { Close(); }

  Result<bool> Poll(int timeout_ms, engine::RawRecord* out) override {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      DeliverMoves();
      std::unique_lock lock(k_->mu_);
      Member& m = k_->members_[member_];
      if (!m.moves.empty()) continue;
      if (Next(m, out)) return true;
      if (k_->appended_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
    }
  }
  Status Seek(const io::TopicOffset& to, int) override {
    std::lock_guard lock(k_->mu_);
    Member& m = k_->members_[member_];
    if (!m.owned.count({to.topic, to.partition})) return Status::FailedPrecondition("seek: not assigned");
    m.position[{to.topic, to.partition}] = to.offset == io::kOffsetBeginning ? 0 : to.offset;
    return Status::Ok();
  }
  int64_t HighWatermark(const std::string& topic, int32_t partition) override {
    std::lock_guard lock(k_->mu_);
    return static_cast<int64_t>(k_->topics_[topic][static_cast<size_t>(partition)].size());
  }
  void Close() override {
    std::vector<io::TopicOffset> held;
    {
      std::lock_guard lock(k_->mu_);
      Member& m = k_->members_[member_];
      if (m.closed) return;
      m.closed = true;
      for (const auto& [t, p] : m.owned) held.push_back({t, p, -1});
      m.owned.clear();
    }
    if (!held.empty() && listener_) listener_->OnRevoked(held, false);
  }

 private:
  // Delivers the queued assignment moves, one at a time, without the lock.
  void DeliverMoves() {
    for (;;) {
      Move move;
      {
        std::lock_guard lock(k_->mu_);
        Member& m = k_->members_[member_];
        if (m.moves.empty() || m.closed) return;
        move = std::move(m.moves.front());
        m.moves.pop_front();
        if (move.assign) {
          for (auto& tp : move.partitions) {
            auto it = k_->group_offsets_.find({tp.topic, tp.partition});
            tp.offset = it == k_->group_offsets_.end() ? -1 : it->second;
          }
        }
      }
      if (!move.assign) {
        if (listener_) listener_->OnRevoked(move.partitions, move.lost);
        std::lock_guard lock(k_->mu_);
        for (const auto& tp : move.partitions) k_->members_[member_].owned.erase({tp.topic, tp.partition});
        continue;
      }
      std::vector<int64_t> from(move.partitions.size(), -1);
      if (listener_) from = listener_->OnAssigned(move.partitions);
      std::lock_guard lock(k_->mu_);
      Member& m = k_->members_[member_];
      for (size_t i = 0; i < move.partitions.size(); ++i) {
        const auto& tp = move.partitions[i];
        int64_t at = from[i] >= 0 ? from[i] : tp.offset >= 0 ? tp.offset : 0;
        m.owned.insert({tp.topic, tp.partition});
        if (from[i] == io::kOffsetBeginning) at = 0;
        m.position[{tp.topic, tp.partition}] = at;
      }
    }
  }
  // mu_ held. The next record of an owned partition, in turn from the
  // partition after the last one read.
  bool Next(Member& m, engine::RawRecord* out) {
    if (m.owned.empty()) return false;
    auto start = m.owned.upper_bound(last_);
    for (size_t i = 0; i < m.owned.size(); ++i) {
      if (start == m.owned.end()) start = m.owned.begin();
      const auto& tp = *start++;
      const auto& log = k_->topics_[tp.first][static_cast<size_t>(tp.second)];
      int64_t& pos = m.position[tp];
      if (pos >= static_cast<int64_t>(log.size())) continue;
      const Record& r = log[static_cast<size_t>(pos)];
      const std::string& v = r.value ? *r.value : std::string();
      out->payload.reserve(v.size() + engine::kPayloadPadding);
      out->payload.assign(v);
      out->pos.topic = tp.first;
      out->pos.partition = tp.second;
      out->pos.offset = pos++;
      out->source_time = 0;
      out->key = r.key;
      last_ = tp;
      return true;
    }
    return false;
  }

  FakeKafka* k_;
  size_t member_;
  io::RebalanceListener* listener_;
  std::pair<std::string, int32_t> last_;
};

// ---- the cluster ---------------------------------------------------------------

void FakeKafka::CreateTopic(const std::string& name, int partitions) {
  std::lock_guard lock(mu_);
  topics_[name].resize(static_cast<size_t>(partitions));
}

int64_t FakeKafka::Append(const std::string& topic, int32_t partition, const std::string& value) {
  std::lock_guard lock(mu_);
  auto& log = topics_.at(topic).at(static_cast<size_t>(partition));
  log.push_back({"", value, {}});
  appended_.notify_all();
  return static_cast<int64_t>(log.size()) - 1;
}

std::vector<FakeKafka::Record> FakeKafka::Committed(const std::string& topic) const {
  std::lock_guard lock(mu_);
  std::vector<Record> out;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return out;
  for (const auto& log : it->second) out.insert(out.end(), log.begin(), log.end());
  return out;
}

std::vector<std::string> FakeKafka::CommittedValues(const std::string& topic) const {
  std::vector<std::string> out;
  for (const auto& r : Committed(topic)) out.push_back(r.value.value_or(""));
  return out;
}

int64_t CommittedRead(const FakeKafka& kafka, const std::string& changelog, const std::string& topic,
                      int32_t partition) {
  const std::string key = "p/" + topic + "/" + std::to_string(partition) + "/read";
  int64_t read = -1;
  for (const auto& r : kafka.Committed(changelog)) {
    if (r.key == key && r.value) read = std::stoll(*r.value);
  }
  return read;
}

int64_t FakeKafka::EndOffset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition < 0 || static_cast<size_t>(partition) >= it->second.size()) return 0;
  return static_cast<int64_t>(it->second[static_cast<size_t>(partition)].size());
}

int64_t FakeKafka::GroupOffset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  auto it = group_offsets_.find({topic, partition});
  return it == group_offsets_.end() ? -1 : it->second;
}

void FakeKafka::FailNext(Call call, io::TxnOutcome outcome, int times) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < times; ++i) faults_[call].push_back(outcome);
}

std::optional<io::TxnOutcome> FakeKafka::TakeFault(Call call) {
  auto& q = faults_[call];
  if (q.empty()) return std::nullopt;
  io::TxnOutcome o = q.front();
  q.pop_front();
  return o;
}

void FakeKafka::Assign(size_t consumer, const std::string& topic, const std::vector<int32_t>& partitions) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < members_.size(); ++i) {
    if (i == consumer) continue;
    Move revoke{false, false, {}};
    for (int32_t p : partitions) {
      if (members_[i].owned.count({topic, p})) revoke.partitions.push_back({topic, p, -1});
    }
    if (!revoke.partitions.empty()) members_[i].moves.push_back(std::move(revoke));
  }
  Move assign{true, false, {}};
  for (int32_t p : partitions) assign.partitions.push_back({topic, p, -1});
  members_.at(consumer).moves.push_back(std::move(assign));
  appended_.notify_all();
}

void FakeKafka::Revoke(size_t consumer, const std::string& topic, const std::vector<int32_t>& partitions, bool lost) {
  std::lock_guard lock(mu_);
  Move revoke{false, lost, {}};
  for (int32_t p : partitions) revoke.partitions.push_back({topic, p, -1});
  members_.at(consumer).moves.push_back(std::move(revoke));
  appended_.notify_all();
}

size_t FakeKafka::consumers() const {
  std::lock_guard lock(mu_);
  return members_.size();
}

int FakeKafka::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

int FakeKafka::aborts() const {
  std::lock_guard lock(mu_);
  return aborts_;
}

Result<std::unique_ptr<io::TxnProducer>> FakeKafka::Producer(const std::string& transactional_id,
                                                             const io::Properties&) {
  std::lock_guard lock(mu_);
  uint64_t epoch = ++epochs_[transactional_id];  // fences the older producer of this id
  return std::unique_ptr<io::TxnProducer>(std::make_unique<FakeProducer>(this, transactional_id, epoch));
}

Result<std::unique_ptr<io::Consumer>> FakeKafka::GroupConsumer(const std::string&,
                                                               const std::vector<std::string>& topics,
                                                               const io::Properties&,
                                                               io::RebalanceListener* listener) {
  std::lock_guard lock(mu_);
  size_t id = members_.size();
  members_.emplace_back();
  if (id == 0) {
    Move all{true, false, {}};
    for (const auto& t : topics) {
      auto it = topics_.find(t);
      if (it == topics_.end()) return Status::NotFound("unknown topic " + t);
      for (size_t p = 0; p < it->second.size(); ++p) all.partitions.push_back({t, static_cast<int32_t>(p), -1});
    }
    members_[id].moves.push_back(std::move(all));
  }
  return std::unique_ptr<io::Consumer>(std::make_unique<FakeConsumer>(this, id, listener));
}

Result<io::CompactedLog> FakeKafka::ReadCompacted(const std::string& topic, const std::vector<int32_t>& partitions,
                                                  const io::Properties&, int) {
  std::lock_guard lock(mu_);
  io::CompactedLog out;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Status::NotFound("unknown topic " + topic);
  for (int32_t p : partitions) {
    auto& kv = out[p];
    for (const auto& r : it->second.at(static_cast<size_t>(p))) {
      if (r.value) kv[r.key] = *r.value;
      else kv.erase(r.key);
    }
  }
  return out;
}

// ---- reader of a whole topic ------------------------------------------------

class FakeKafka::FakeReader : public io::TopicReader {
 public:
  FakeReader(FakeKafka* k, std::string topic) : k_(k), topic_(std::move(topic)) {}

  Result<std::map<int32_t, int64_t>> EndOffsets(int) override {
    std::lock_guard lock(k_->mu_);
    auto it = k_->topics_.find(topic_);
    if (it == k_->topics_.end()) return Status::FailedPrecondition("unknown topic " + topic_);
    std::map<int32_t, int64_t> out;
    for (size_t p = 0; p < it->second.size(); ++p) out[static_cast<int32_t>(p)] = Size(it->second[p]);
    return out;
  }
  Status Assign(const std::map<int32_t, int64_t>& from) override {
    for (const auto& [p, o] : from) position_[p] = o < 0 ? 0 : o;
    return Status::Ok();
  }
  Result<bool> Poll(int timeout_ms, io::TopicRecord* out) override {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::unique_lock lock(k_->mu_);
    for (;;) {
      auto it = k_->topics_.find(topic_);
      if (it != k_->topics_.end() && !k_->held_.count(topic_)) {
        for (auto& [p, at] : position_) {
          const auto& log = it->second.at(static_cast<size_t>(p));
          if (at >= Size(log)) continue;
          const Record& r = log[static_cast<size_t>(at)];
          *out = io::TopicRecord{p, at, 0, r.key, r.value};
          ++at;
          return true;
        }
      }
      if (k_->appended_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
    }
  }
  int64_t CachedEnd(int32_t partition) override {
    std::lock_guard lock(k_->mu_);
    auto it = k_->topics_.find(topic_);
    return it == k_->topics_.end() ? -1 : Size(it->second.at(static_cast<size_t>(partition)));
  }
  int64_t Position(int32_t partition) override {
    auto it = position_.find(partition);
    return it == position_.end() ? -1 : it->second;
  }

 private:
  static int64_t Size(const std::vector<Record>& log) { return static_cast<int64_t>(log.size()); }

  FakeKafka* k_;
  std::string topic_;
  std::map<int32_t, int64_t> position_;
};

Result<std::unique_ptr<io::TopicReader>> FakeKafka::Reader(const std::string& topic, const io::Properties&) {
  std::lock_guard lock(mu_);
  ++readers_;
  return std::unique_ptr<io::TopicReader>(std::make_unique<FakeReader>(this, topic));
}

int FakeKafka::readers() const {
  std::lock_guard lock(mu_);
  return readers_;
}

void FakeKafka::HoldReads(const std::string& topic, bool held) {
  std::lock_guard lock(mu_);
  if (held) held_.insert(topic);
  else held_.erase(topic);
  appended_.notify_all();
}

}  // namespace cepheus::testing

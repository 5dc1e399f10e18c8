// The engine's seams: where events come from, where alerts go, where state is
// kept. The daemon plugs Kafka and LMDB in here; tests and `replay` use the
// in-memory versions below.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/nfa/value.h"

namespace cepheus::engine {

// One record as read from a source, before decoding.
// Readable bytes a record source keeps after a payload's end (its buffer's
// capacity), so the JSON parser reads it in place (simdjson's padding).
inline constexpr size_t kPayloadPadding = 64;

struct RawRecord {
  std::string payload;  // capacity >= size + kPayloadPadding when the source keeps it
  nfa::Position pos;
  Millis source_time = 0;  // Kafka message time (0 when unknown)
  std::string key;         // the Kafka message key ("" when none, and in replay)
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // The next record, nullopt at the end of a finite source, or an error.
  virtual Result<std::optional<RawRecord>> Next() = 0;
};

struct Alert {
  std::string rule;
  std::string key;
  std::string alert_id;
  std::string json;  // the whole alert, one JSON object
  bool absence = false;
  Millis detected_at = 0;
};

// A closed window's result (section 6.3): one JSON record.
struct AggregateRecord {
  std::string aggregate;
  std::string group;
  Millis window_start = 0;
  Millis window_end = 0;
  std::string json;
};

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  virtual void Publish(const Alert& alert) = 0;
  // A window's result, published once when the watermark passes its end.
  virtual void PublishAggregate(const AggregateRecord& record) {}
  // An event that arrived after the watermark passed it (section 4.1).
  virtual void Late(const nfa::Event& event) {}
};

// Ordered bytes-to-bytes store (LMDB in the daemon).
class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view key) = 0;
  // Calls fn for every key starting with prefix, in key order.
  virtual Status Scan(std::string_view prefix,
                      const std::function<void(std::string_view, std::string_view)>& fn) const = 0;
  // The value of `key`, nullopt when there is none. A Scan of the key as
  // its prefix, keeping the exact match.
  virtual Result<std::optional<std::string>> Get(std::string_view key) const {
    std::optional<std::string> found;
    Status st = Scan(key, [&](std::string_view k, std::string_view v) {
      if (k == key) found.emplace(v);
    });
    if (!st.ok()) return st;
    return found;
  }
};

// ---- in-memory versions ------------------------------------------------------

class VectorSource : public EventSource {
 public:
  explicit VectorSource(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  Result<std::optional<RawRecord>> Next() override {
    if (next_ >= lines_.size()) return std::optional<RawRecord>();
    RawRecord r;
    r.payload = lines_[next_];
    r.pos.offset = static_cast<int64_t>(++next_);
    return std::optional<RawRecord>(std::move(r));
  }

 private:
  std::vector<std::string> lines_;
  size_t next_ = 0;
};

class CollectingSink : public AlertSink {
 public:
  void Publish(const Alert& alert) override { alerts.push_back(alert); }
  void Late(const nfa::Event& event) override {
    late.emplace_back(event.id);
    late_events.emplace_back(event.raw);
  }
  void PublishAggregate(const AggregateRecord& record) override { records.push_back(record); }
  void Clear() {
    alerts.clear();
    late.clear();
    late_events.clear();
    records.clear();
  }
  std::vector<Alert> alerts;
  std::vector<std::string> late;         // ids of late events
  std::vector<std::string> late_events;  // the late events as received
  std::vector<AggregateRecord> records;  // closed windows' records (section 6.3)
};

class MemoryStateStore : public StateStore {
 public:
  Status Put(std::string_view key, std::string_view value) override {
    data_[std::string(key)] = std::string(value);
    return Status::Ok();
  }
  Status Delete(std::string_view key) override {
    data_.erase(std::string(key));
    return Status::Ok();
  }
  Status Scan(std::string_view prefix,
              const std::function<void(std::string_view, std::string_view)>& fn) const override {
    for (auto it = data_.lower_bound(std::string(prefix));
         it != data_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      fn(it->first, it->second);
    }
    return Status::Ok();
  }
  size_t size() const { return data_.size(); }

 private:
  std::map<std::string, std::string> data_;
};

}  // namespace cepheus::engine

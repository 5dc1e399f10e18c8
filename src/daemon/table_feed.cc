// TableFeed: table topics into engine::Tables.
//
// One io::TopicReader per table, assigned every partition of its topic from
// the beginning (the topic is compacted: its whole history is the table).
// Bootstrap reads until each partition's position reaches the end offset
// measured when it started, so a daemon is READY only with its tables as of
// that moment; later records are applied by Poll between input records.
// With a store (the daemon's <state>/tables LMDB environment), each table and
// the offsets it reached are kept there: Begin starts from them, Persist
// (every tick) writes what changed and the offsets in one commit.
// A rule reload builds a second feed (Begin with the running one as `keep`):
// it reads only the tables the running feed does not hold, while the running
// one goes on serving the running rules; once it is caught up, Adopt moves
// the others' data, readers and offsets into it. Offsets are
// one record per table, "o/NAME/FINGERPRINT": "PARTITION:NEXT_OFFSET" pairs
// separated by commas, in text.
#include "cepheus/daemon/table_feed.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <simdjson.h>

#include "cepheus/daemon/log.h"

namespace cepheus::daemon {

struct TableFeed::Feed {
  int32_t index;
  std::string name;
  std::string topic;
  std::unique_ptr<io::TopicReader> reader;
  std::map<int32_t, int64_t> next;  // the next offset to read, by partition
  std::map<int32_t, int64_t> end;   // the end offsets last measured
  double bootstrap_seconds = 0;
  bool loading = false;             // Begin to the end offsets it measured
  bool adopt = false;               // left to the running feed, for Adopt
  uint64_t stored = 0;              // versions loaded from the store
  uint64_t applied = 0;             // records read while loading
  std::chrono::steady_clock::time_point started;
  io::TopicRecord record;           // reused
};

TableFeed::TableFeed(const Config& config, std::shared_ptr<const nfa::CompiledRuleSet> rules, io::Clients* clients,
                     state::LmdbStore* store)
    : config_(config), rules_(std::move(rules)), clients_(clients), store_(store) {}

std::string TableFeed::OffsetsKey(const Feed& f) const {
  std::string prefix = tables_->Prefix(f.index);  // "t/NAME/FP/"
  return "o" + prefix.substr(1, prefix.size() - 2);
}

Status TableFeed::LoadStored(Feed& f) {
  if (store_ == nullptr) return Status::Ok();
  if (Status st = tables_->Load(f.index, *store_); !st.ok()) return st;
  Status bad;
  const std::string key = OffsetsKey(f);
  Status st = store_->Scan(key, [&](std::string_view k, std::string_view v) {
    if (k != key) return;
    std::string text(v);
    for (size_t at = 0; at < text.size();) {
      size_t comma = text.find(',', at);
      std::string pair = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      int32_t p = 0;
      long long o = 0;
      if (std::sscanf(pair.c_str(), "%d:%lld", &p, &o) != 2) {
        bad = Status::Corruption(fmt::format("table '{}': its stored offsets are damaged", f.name));
        return;
      }
      f.next[p] = o;
      at = comma == std::string::npos ? text.size() : comma + 1;
    }
  });
  return st.ok() ? bad : st;
}

Status TableFeed::Persist() {
  if (store_ == nullptr || !tables_ || !unsaved_) return Status::Ok();
  for (auto& f : feeds_) {
    if (f->adopt) continue;
    if (Status st = tables_->SaveChanges(f->index, store_); !st.ok()) return st;
    std::string value;
    for (const auto& [p, o] : f->next) value += fmt::format("{}{}:{}", value.empty() ? "" : ",", p, o);
    if (Status st = store_->Put(OffsetsKey(*f), value); !st.ok()) return st;
  }
  if (Status st = store_->Commit(); !st.ok()) return st;
  unsaved_ = false;
  return Status::Ok();
}

TableFeed::~TableFeed() = default;

bool TableFeed::Needed(const nfa::CompiledRuleSet& rules) {
  for (const auto& t : rules.tables) {
    if (t.read) return true;
  }
  return false;
}

void TableFeed::Apply(Feed& f, const io::TopicRecord& r) {
  f.next[r.partition] = r.offset + 1;
  unsaved_ = true;
  Status st;
  if (!r.value) {
    st = r.key ? tables_->Delete(f.index, *r.key, r.timestamp)
               : Status::InvalidArgument("a tombstone without a key deletes nothing");
  } else {
    simdjson::padded_string padded(*r.value);
    st = tables_->Apply(f.index, std::string_view(padded.data(), padded.size()));
  }
  if (!st.ok()) refused_.push_back({f.name, r, st});
}

Status TableFeed::Begin(const TableFeed* keep) {
  tables_ = std::make_unique<engine::Tables>(rules_, engine::TablesOptions{});
  feeds_.clear();
  for (const auto& t : rules_->tables) {
    if (!t.read) continue;
    auto source = config_.tables.find(t.name);
    if (source == config_.tables.end()) {
      return Status::FailedPrecondition(fmt::format("table '{}' has no source in the configuration", t.name));
    }
    auto feed = std::make_unique<Feed>();
    feed->index = rules_->FindTable(t.name);
    tables_->set_max_versions(feed->index, source->second.max_versions);
    feed->name = t.name;
    feed->topic = source->second.topic;
    if (keep != nullptr) {
      for (const auto& k : keep->feeds_) {
        feed->adopt |= k->name == feed->name && k->topic == feed->topic &&
                       keep->tables_->Prefix(k->index) == tables_->Prefix(feed->index);
      }
    }
    if (!feed->adopt) {
      auto reader = clients_->Reader(feed->topic, config_.kafka.consumer);
      if (!reader.ok()) return reader.status();
      feed->reader = std::move(reader).value();
    }
    feeds_.push_back(std::move(feed));
  }
  for (auto& f : feeds_) {
    if (f->adopt) continue;
    f->started = std::chrono::steady_clock::now();
    auto end = f->reader->EndOffsets(10000);
    if (!end.ok()) {
      // A topic that does not exist is the operator's to fix (exit 78).
      std::string why = fmt::format("table '{}': {}", f->name, end.status().message());
      return end.status().code() == Status::Code::kFailedPrecondition ? Status::FailedPrecondition(why)
                                                                        : Status::IoError(why);
    }
    f->end = end.value();
    if (Status st = LoadStored(*f); !st.ok()) return st;
    f->stored = tables_->stats(f->index).versions;
    std::map<int32_t, int64_t> from;
    for (const auto& [p, e] : f->end) {
      auto it = f->next.find(p);
      if (it == f->next.end()) f->next[p] = 0;
      from[p] = it == f->next.end() ? io::kOffsetBeginning : it->second;
    }
    if (Status st = f->reader->Assign(from); !st.ok()) return st;
    f->loading = true;
    unsaved_ = true;  // the first Persist writes the offsets, read or not
  }
  return Status::Ok();
}

// A transactional producer's commit markers take offsets no record carries,
// so the reader's position counts too.
int64_t TableFeed::Behind(Feed& f) const {
  int64_t n = 0;
  for (const auto& [p, e] : f.end) n += std::max<int64_t>(0, e - std::max(f.next[p], f.reader->Position(p)));
  return n;
}

Result<bool> TableFeed::Load(size_t max, int timeout_ms, const std::function<void(const std::string&)>& status) {
  size_t n = 0;
  bool done = true;
  for (auto& f : feeds_) {
    if (!f->loading) continue;
    while (n < max && Behind(*f) > 0) {
      auto got = f->reader->Poll(n == 0 ? timeout_ms : 0, &f->record);
      if (!got.ok()) return Status::IoError(fmt::format("table '{}': {}", f->name, got.status().message()));
      status("");  // alive (the watchdog), however long the brokers take
      if (!got.value()) break;
      Apply(*f, f->record);
      ++n;
      if (++f->applied % 100000 == 0) {
        status(fmt::format("loading table {} from {}: {} records, {} to go", f->name, f->topic, f->applied,
                           Behind(*f)));
      }
    }
    if (Behind(*f) > 0) {
      done = false;
      continue;
    }
    f->loading = false;
    f->bootstrap_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - f->started).count();
    const engine::TableStats& s = tables_->stats(f->index);
    Log(LogLevel::kInfo,
        fmt::format("table {}: {} versions kept from the last run, {} records read from {} in {:.3f} s ({} keys, {} "
                    "versions, {} refused)",
                    f->name, f->stored, f->applied, f->topic, f->bootstrap_seconds, s.keys, s.versions,
                    s.malformed + s.refused));
  }
  return done;
}

Status TableFeed::Bootstrap(const std::function<void(const std::string&)>& status) {
  if (Status st = Begin(nullptr); !st.ok()) return st;
  for (;;) {
    auto done = Load(10000, 200, status);
    if (!done.ok()) return done.status();
    if (done.value()) return Status::Ok();
  }
}

Status TableFeed::Adopt(TableFeed& old) {
  for (auto& f : feeds_) {
    if (!f->adopt) continue;
    for (auto& o : old.feeds_) {
      if (o->name != f->name || !o->reader) continue;
      if (Status st = tables_->Adopt(f->index, *old.tables_, o->index); !st.ok()) return st;
      f->reader = std::move(o->reader);
      f->next = std::move(o->next);
      f->end = std::move(o->end);
      f->bootstrap_seconds = o->bootstrap_seconds;
      f->adopt = false;
    }
    if (f->adopt) return Status::FailedPrecondition(fmt::format("table '{}' was not in the running feed", f->name));
  }
  unsaved_ |= old.unsaved_;
  for (auto& r : old.refused_) refused_.push_back(std::move(r));
  old.refused_.clear();
  return Status::Ok();
}

std::vector<std::string> TableFeed::loading() const {
  std::vector<std::string> out;
  for (const auto& f : feeds_) {
    if (f->loading) out.push_back(f->name);
  }
  return out;
}

Status TableFeed::Poll(size_t max) {
  size_t n = 0;
  for (auto& f : feeds_) {
    if (f->loading || !f->reader) continue;
    while (n < max) {
      auto got = f->reader->Poll(0, &f->record);
      if (!got.ok()) return Status::IoError(fmt::format("table '{}': {}", f->name, got.status().message()));
      if (!got.value()) break;
      Apply(*f, f->record);
      ++n;
    }
  }
  return Status::Ok();
}

std::vector<TableFeed::Refused> TableFeed::TakeRefused() { return std::exchange(refused_, {}); }

std::vector<TableFeed::Progress> TableFeed::progress() const {
  std::vector<Progress> out;
  for (const auto& f : feeds_) {
    Progress p{f->name, f->topic, 0, f->bootstrap_seconds};
    if (!f->reader) continue;
    for (const auto& [part, measured] : f->end) {
      int64_t e = std::max(measured, f->reader->CachedEnd(part));
      auto it = f->next.find(part);
      p.lag += std::max<int64_t>(0, e - (it == f->next.end() ? 0 : it->second));
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace cepheus::daemon

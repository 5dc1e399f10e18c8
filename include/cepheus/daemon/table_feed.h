// The daemon's tables (section 6.1): each table the rules read, fed from its
// Kafka topic. Every daemon reads every partition of each topic, from the
// start, into one engine::Tables that every partition's engine reads.
//
//   TableFeed feed(config, rules, clients);
//   feed.Bootstrap(progress);     // to each partition's end offset, before READY
//   engine->set_tables(feed.tables());
//   feed.Poll(1000);              // in the loop: updates as they arrive
//
// A record is applied with Tables::Apply; a tombstone (message key, no value)
// deletes the key from the message's time. Records the table refuses
// (malformed, or past max_versions) are kept for the caller to send to the
// dead-letter topic (TakeRefused).
//
// With a store, the tables live there too: Bootstrap loads what the store
// holds and reads each partition from the offset stored with it, and Persist
// writes the keys changed since and the offsets reached, in one commit. A
// restart then resumes where the last Persist left off; a record read again
// after a crash is applied again, to the same result.
//
// Thread-safety: none; the daemon's loop thread drives it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/daemon/config.h"
#include "cepheus/engine/tables.h"
#include "cepheus/io/clients.h"
#include "cepheus/state/lmdb_store.h"

namespace cepheus::daemon {

class TableFeed {
 public:
  struct Refused {
    std::string table;
    io::TopicRecord record;
    Status why;  // InvalidArgument (malformed) or LimitExceeded (past max_versions)
  };
  struct Progress {
    std::string table;
    std::string topic;
    int64_t lag = 0;              // records between each partition's position and its end, summed
    double bootstrap_seconds = 0;
  };

  // `store` (may be null: nothing is kept) must outlive the feed.
  TableFeed(const Config& config, std::shared_ptr<const nfa::CompiledRuleSet> rules, io::Clients* clients,
            state::LmdbStore* store);
  ~TableFeed();

  // True when some rule of `rules` reads a table.
  static bool Needed(const nfa::CompiledRuleSet& rules);
  // Reads every table topic from its start (or where the store left off) to
  // the end offsets it has now; `status` is called at every poll, with what
  // is being read now and then and "" otherwise (the caller pings its
  // watchdog). Begin, then Load until it returns true.
  Status Bootstrap(const std::function<void(const std::string&)>& status);
  // Starts loading the tables: each is loaded from the store and read from
  // the offsets stored with it, up to the end offsets its topic has now.
  // Tables `keep` (a running feed, or null) holds under the same declaration
  // and topic are not read: Adopt takes them from it, whole, when this feed
  // is caught up (a rule reload adds a table without re-reading the others).
  Status Begin(const TableFeed* keep);
  // Reads at most `max` records of the tables still loading, waiting up to
  // `timeout_ms` for one; true once every table reached its end offsets.
  Result<bool> Load(size_t max, int timeout_ms, const std::function<void(const std::string&)>& status);
  // Takes from `old` the tables Begin left to it (records, versions, reader
  // and offsets); `old` must not be used after.
  Status Adopt(TableFeed& old);
  // Applies the records that have arrived, at most `max`, without waiting.
  Status Poll(size_t max);
  // Writes the changes since the last Persist, and the offsets reached, to
  // the store, in one commit (nothing without a store, or when no record
  // came since). The caller persists only once the refused records taken
  // before are in the dead-letter topic: a crash before then reads them
  // again.
  Status Persist();
  // The names of the tables still loading (Begin to Load's true).
  std::vector<std::string> loading() const;
  engine::Tables* tables() { return tables_.get(); }
  std::vector<Refused> TakeRefused();
  std::vector<Progress> progress() const;

 private:
  struct Feed;
  void Apply(Feed& f, const io::TopicRecord& r);
  // Records before the end offsets measured at Begin, not yet read.
  int64_t Behind(Feed& f) const;
  // Loads the table and its offsets from the store into `f`.
  Status LoadStored(Feed& f);
  std::string OffsetsKey(const Feed& f) const;

  const Config& config_;
  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  io::Clients* clients_;
  state::LmdbStore* store_;
  std::unique_ptr<engine::Tables> tables_;
  std::vector<std::unique_ptr<Feed>> feeds_;
  std::vector<Refused> refused_;
  bool unsaved_ = false;  // records applied since the last Persist
};

}  // namespace cepheus::daemon

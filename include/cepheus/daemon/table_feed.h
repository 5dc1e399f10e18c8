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
  // watchdog).
  Status Bootstrap(const std::function<void(const std::string&)>& status);
  // Applies the records that have arrived, at most `max`, without waiting.
  Status Poll(size_t max);
  // Writes the changes since the last Persist, and the offsets reached, to
  // the store, in one commit (nothing without a store, or when no record
  // came since).
  Status Persist();
  engine::Tables* tables() { return tables_.get(); }
  std::vector<Refused> TakeRefused();
  std::vector<Progress> progress() const;

 private:
  struct Feed;
  void Apply(Feed& f, const io::TopicRecord& r);
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

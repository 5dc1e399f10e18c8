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

namespace cepheus::daemon {

class TableFeed {
 public:
  struct Refused {
    std::string table;
    io::TopicRecord record;
    std::string why;
  };
  struct Progress {
    std::string table;
    std::string topic;
    int64_t lag = 0;              // records between each partition's position and its end, summed
    double bootstrap_seconds = 0;
  };

  TableFeed(const Config& config, std::shared_ptr<const nfa::CompiledRuleSet> rules, io::Clients* clients);
  ~TableFeed();

  // True when some rule reads a table.
  bool needed() const;
  // Reads every table topic from its start to the end offsets it has now;
  // `status` is told what is being read, now and then.
  Status Bootstrap(const std::function<void(const std::string&)>& status);
  // Applies the records that have arrived, at most `max`, without waiting.
  Status Poll(size_t max);
  engine::Tables* tables() { return tables_.get(); }
  std::vector<Refused> TakeRefused();
  std::vector<Progress> progress() const;

 private:
  struct Feed;
  Status Apply(Feed& f, const io::TopicRecord& r);

  const Config& config_;
  std::shared_ptr<const nfa::CompiledRuleSet> rules_;
  io::Clients* clients_;
  std::unique_ptr<engine::Tables> tables_;
  std::vector<std::unique_ptr<Feed>> feeds_;
  std::vector<Refused> refused_;
};

}  // namespace cepheus::daemon

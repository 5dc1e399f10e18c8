// Reference data for lookups (section 6.1 of the rule-language spec): every
// table of a rule set, each a map from key to the versions of its record.
//
//   engine::Tables tables(rules, {});
//   tables.Apply(tables.Index("profiles"), R"({"user_id":"u1","country":"FR"})");
//   engine.set_tables(&tables);
//
// A lookup reads the version that holds at the evaluation's time: the one with
// the greatest time not after it. Versions of one key are kept in time order
// in a small vector behind a hash map, so a lookup costs one hash probe and a
// binary search over that key's versions, whatever other keys hold. Versions
// older than `history` behind the watermark are folded into one (Fold).
// Memory is bounded per table (TablesOptions::max_versions): past it, a new
// version is refused and counted.
//
// Thread-safety: none; the owner applies updates and the engines read, from
// one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/seams.h"
#include "cepheus/nfa/program.h"

namespace cepheus::engine {

struct TablesOptions {
  // Most versions one table keeps, over all its keys; 0: no limit.
  uint64_t max_versions = 0;
};

struct TableStats {
  uint64_t records = 0;   // records and tombstones applied (refused ones not included)
  uint64_t malformed = 0; // records refused as malformed
  uint64_t refused = 0;   // versions refused at max_versions
  uint64_t late = 0;      // versions timed at or before a lookup already made of the table
  uint64_t keys = 0;      // keys with at least one version
  uint64_t versions = 0;  // versions kept
  uint64_t bytes = 0;     // bytes of the decoded records kept (approximate)
};

class Tables : public nfa::TableReader {
 public:
  Tables(std::shared_ptr<const nfa::CompiledRuleSet> rules, TablesOptions options);
  ~Tables() override;
  Tables(const Tables&) = delete;
  Tables& operator=(const Tables&) = delete;

  // The index of the table named `name`, or -1.
  int32_t Index(std::string_view name) const;
  size_t size() const;

  // Applies one record of table `table` (a JSON object, in source order):
  // its key and time fields as the table declares them; `"deleted": true`
  // deletes the key from the record's time on. A record without the time
  // field holds from the beginning of time. InvalidArgument (with the reason,
  // for the dead-letter output) when it is not an object, has no usable key,
  // or a time that is not one; LimitExceeded when refused at max_versions.
  Status Apply(int32_t table, std::string_view json);
  // A deletion of `key` from `time` on (a Kafka tombstone).
  Status Delete(int32_t table, std::string_view key, Millis time);

  const nfa::Event* Find(int32_t table, std::string_view key, Millis at) const override;

  // Folds the versions of every key older than `history` behind `watermark`
  // into one: the newest of them, holding from the oldest one's time. A
  // lookup as of a time within `history` of the watermark reads the same.
  void Fold(Millis watermark);

  const TableStats& stats(int32_t table) const;

  // Persistence (the daemon keeps its tables in LMDB). Each key is one
  // record under Prefix(table): the key's text and its versions (time, and
  // the record's JSON, or a deletion). SaveChanges writes the keys changed
  // since the last save or load (a key gone is deleted). Load replaces one
  // table's contents with what SaveChanges wrote under its prefix.
  Status SaveChanges(int32_t table, StateStore* store);
  Status Load(int32_t table, const StateStore& store);
  // "t/NAME/FINGERPRINT/": the store prefix of a table, where FINGERPRINT
  // (16 hex digits) digests its key and time fields, so records written under
  // another declaration of the table are never read as this one's.
  std::string Prefix(int32_t table) const;
  // Moves table `from_table` of `from` (another rule set's, with the same
  // declaration of the table: Prefix equal) into table `table`, whole:
  // versions, keys to save, counts. Records are decoded again when this rule
  // set reads other fields of the table. `from`'s table is left empty.
  Status Adopt(int32_t table, Tables& from, int32_t from_table);
  // Overrides TablesOptions::max_versions for one table.
  void set_max_versions(int32_t table, uint64_t max_versions);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cepheus::engine

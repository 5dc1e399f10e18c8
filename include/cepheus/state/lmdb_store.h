// The engine's StateStore on LMDB: partial matches and timers on disk.
//
// Writes are staged and applied by Commit() in one LMDB write transaction, so
// a batch (the state after some input, and the input offsets it reflects) is
// on disk entirely or not at all. Staging is a log: each Put/Delete appends
// its bytes to one arena and an entry to a vector (no allocation per write
// once the buffers have grown); the log is sorted by key (stable, so the last
// write of a key wins) when it is applied or scanned. When the map is full, the transaction is
// aborted, the map is doubled (no transaction is open then) and the batch is
// redone. Scan sees committed data with the staged changes on top.
//
// One process per state directory: Open takes an exclusive lock on
// DIR/cepheus.lock and refuses a directory another process holds. Stale
// reader slots left by killed processes are cleared at open
// (mdb_reader_check). Not thread-safe: one thread drives a store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/seams.h"

struct MDB_env;

namespace cepheus::state {

struct LmdbOptions {
  std::string directory;
  uint64_t map_size = 1ULL << 30;  // initial; doubled when full
  uint64_t max_map_size = 1ULL << 40;
};

class LmdbStore : public engine::StateStore {
 public:
  // Creates the directory if needed, and reads every key once to check the
  // tree. Fails with a message that names the directory: FailedPrecondition
  // when another process holds it, Corruption when the files are damaged
  // (bad meta pages, a truncated data.mdb, a broken tree), IoError otherwise.
  static Result<std::unique_ptr<LmdbStore>> Open(const LmdbOptions& options);
  ~LmdbStore() override;

  Status Put(std::string_view key, std::string_view value) override;
  Status Delete(std::string_view key) override;
  Status Scan(std::string_view prefix,
              const std::function<void(std::string_view, std::string_view)>& fn) const override;

  // Applies the staged writes atomically and durably (fsync on commit).
  Status Commit();
  // Drops the staged writes.
  void Rollback();

  uint64_t map_size() const { return map_size_; }
  // Bytes of the map in use (pages in use times the page size).
  uint64_t used_bytes() const;
  // The number of keys with a staged write.
  size_t staged() const;
  int map_resizes() const { return resizes_; }

 private:
  LmdbStore() = default;
  Status Grow();
  // One staged write: the key (and value) live in arena_.
  struct Op {
    size_t key_off;
    size_t val_off;
    uint32_t key_len;
    uint32_t val_len;
    bool del;
  };
  std::string_view KeyOf(const Op& op) const { return {arena_.data() + op.key_off, op.key_len}; }
  std::string_view ValueOf(const Op& op) const { return {arena_.data() + op.val_off, op.val_len}; }
  void Stage(std::string_view key, std::string_view value, bool del);
  // Sorts the log by key and keeps the last write of each key.
  void Normalize() const;

  LmdbOptions options_;
  MDB_env* env_ = nullptr;
  unsigned int dbi_ = 0;
  int lock_fd_ = -1;
  uint64_t map_size_ = 0;
  int resizes_ = 0;
  // The staged writes (mutable: a const Scan sorts them first).
  mutable std::vector<Op> ops_;
  mutable size_t sorted_ = 0;  // ops_[0, sorted_) is sorted with one write per key
  std::string arena_;
};

}  // namespace cepheus::state

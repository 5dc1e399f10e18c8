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
// CommitInBackground hands the staged batch to a writer thread and returns;
// writes staged meanwhile form the next batch. Every call that reads or
// commits first waits for that batch, so the store looks the same from its
// thread as with Commit; WaitForBackgroundCommit tells how it ended (a
// failure stays reported: the store is then broken).
//
// One process per state directory: Open takes an exclusive lock on
// DIR/cepheus.lock and refuses a directory another process holds. Stale
// reader slots left by killed processes are cleared at open
// (mdb_reader_check). Not thread-safe: one thread drives a store (its
// writer thread is its own).
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
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
  // tree and each record's checksum (a file from before checksums gets them
  // here). Fails with a message that names the directory: FailedPrecondition
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
  // Starts applying the staged writes on the writer thread, and returns.
  void CommitInBackground();
  // Waits for the background commit, if one is running; returns the first
  // failure of any background commit so far.
  Status WaitForBackgroundCommit() const;
  // Drops the staged writes (after the background commit has ended).
  void Rollback();

  uint64_t map_size() const { return map_size_; }
  // Bytes of the map in use (pages in use times the page size), as of the
  // last commit that ended.
  uint64_t used_bytes() const { return used_bytes_; }
  // The number of keys with a staged write.
  size_t staged() const;
  int map_resizes() const { return resizes_; }

 private:
  LmdbStore() = default;
  // One staged write: the key (and value) live in the batch's arena.
  struct Op {
    size_t key_off;
    size_t val_off;
    uint32_t key_len;
    uint32_t val_len;
    bool del;
  };
  // A log of staged writes. Normalize sorts it by key and keeps the last
  // write of each key.
  struct Batch {
    std::vector<Op> ops;
    size_t sorted = 0;  // ops[0, sorted) is sorted with one write per key
    std::string arena;
    std::string_view KeyOf(const Op& op) const { return {arena.data() + op.key_off, op.key_len}; }
    std::string_view ValueOf(const Op& op) const { return {arena.data() + op.val_off, op.val_len}; }
    void Normalize();
    void Clear();
  };
  // Gives a file without the checksum marker (new, or from before
  // checksums) a checksum on every record, and the marker.
  Status EnsureChecksummed();
  // Stages a write; a value is stored with its checksum after it.
  void Stage(std::string_view key, std::string_view value, bool del);
  // Scan; `raw`: committed values as stored, their checksums neither checked
  // nor cut (a file written before checksums).
  Status ScanRecords(std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn,
                     bool raw) const;
  Status Grow();
  // Applies `batch` in one write transaction (growing the map when full).
  Status Apply(Batch& batch);
  void UpdateUsedBytes();

  LmdbOptions options_;
  MDB_env* env_ = nullptr;
  unsigned int dbi_ = 0;
  int lock_fd_ = -1;
  std::atomic<uint64_t> map_size_{0};
  std::atomic<uint64_t> used_bytes_{0};
  std::atomic<int> resizes_{0};
  // The staged writes (mutable: a const Scan sorts them first).
  mutable Batch staged_;
  // The batch the writer thread applies, while `background_` is valid.
  Batch applying_;
  mutable std::future<Status> background_;
  mutable Status background_status_;
};

}  // namespace cepheus::state

// LMDB behind the StateStore seam.
//
// Staging: Put/Delete append to a log (the bytes in one arena, an entry per
// write in a vector: no allocation per write once they have grown). Commit
// sorts the log by key, keeping the last write of each key, opens one write
// transaction, applies every staged change in key order through one cursor
// (consecutive keys mostly land on the page the cursor is on, so LMDB skips
// the descent from the root) and commits it. LMDB's copy-on-write B+tree
// makes the commit atomic: after a crash the file holds either the previous
// batch or this one. MDB_MAP_FULL (on a put or on the commit) aborts the
// transaction; the map is then doubled with mdb_env_set_mapsize, which LMDB
// allows only with no transaction open in the process, and the whole batch is
// redone from the log, which is why the log is kept until the commit
// succeeds. Any other failure is returned (the batch stays staged); a write
// that failed because the file system is full is reported as ENOSPC even when
// LMDB saw only a short write (which it reports as EIO).
//
// Scan merges a read transaction's cursor over the prefix with the staged
// changes (sorted first), so the engine can Save (delete all, put all) before
// Commit. Its callback must not write to the store.
//
// Background commits: the staged log is swapped with an empty one (buffers
// are reused, so no copy) and applied by std::async on a thread of its own;
// the caller stages the next batch meanwhile. Only one batch is in flight:
// every call that touches the environment (Commit, Scan, Rollback, the next
// background commit) waits for it first, so the writer never runs beside
// another transaction of this process, and mdb_env_set_mapsize (which needs
// none open) stays safe. The daemon starts one after each Kafka commit and
// waits for it before the next, so the fsync of batch N overlaps the
// processing of batch N+1, and Kafka is never more than one batch ahead.
#include "cepheus/state/lmdb_store.h"

#include <lmdb.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>

#include <fmt/format.h>

namespace cepheus::state {
namespace {

Status LmdbError(const std::string& dir, const char* what, int rc) {
  std::string msg = fmt::format("state directory {}: {}: {}", dir, what, mdb_strerror(rc));
  switch (rc) {
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_VERSION_MISMATCH:
      return Status::Corruption(msg);
    default:
      return Status::IoError(msg);
  }
}

// A commit that could not write its pages. LMDB reports a short write as EIO
// (mdb_page_flush), and a file system that fills up in the middle of a write
// gives exactly that: so when the state directory's file system is (nearly)
// out of space, the failure is named for what it is, with the bytes left,
// rather than as an I/O error that sends the operator to check the disk.
Status CommitError(const std::string& dir, int rc, size_t batch_bytes) {
  struct statvfs fs {};
  if ((rc == EIO || rc == ENOSPC) && ::statvfs(dir.c_str(), &fs) == 0) {
    uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (rc == ENOSPC || free_bytes < 2 * batch_bytes + (1u << 20)) {
      return Status::IoError(fmt::format("state directory {}: commit failed: {} ({} bytes free on its file system{})",
                                         dir, std::strerror(ENOSPC), free_bytes,
                                         rc == EIO ? "; LMDB saw a short write and reported an I/O error" : ""));
    }
  }
  return LmdbError(dir, "commit failed", rc);
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

Result<std::unique_ptr<LmdbStore>> LmdbStore::Open(const LmdbOptions& options) {
  std::unique_ptr<LmdbStore> s(new LmdbStore());
  s->options_ = options;
  const std::string& dir = options.directory;
  std::error_code ec;
  // A path that is a file, or a directory cepheus may not write, is the
  // operator's to fix (FailedPrecondition: the daemon exits 78, not 1).
  std::filesystem::create_directories(dir, ec);
  if (!ec && !std::filesystem::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) {
    return Status::FailedPrecondition(fmt::format("state directory {}: cannot create it: {}", dir, ec.message()));
  }
  std::string lock = dir + "/cepheus.lock";
  s->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (s->lock_fd_ < 0) {
    int err = errno;
    std::string msg = fmt::format("state directory {}: {}", dir, std::strerror(err));
    if (err == EACCES || err == EROFS || err == EPERM) return Status::FailedPrecondition(msg + " (not writable)");
    return Status::IoError(msg);
  }
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::FailedPrecondition(fmt::format("state directory {} is in use by another cepheus process", dir));
  }
  int rc = mdb_env_create(&s->env_);
  if (rc) return LmdbError(dir, "mdb_env_create", rc);
  s->map_size_ = options.map_size;
  // A map size of 0 keeps the size an existing file was written with.
  MDB_envinfo info{};
  if ((rc = mdb_env_set_mapsize(s->env_, s->map_size_)) ||
      (rc = mdb_env_open(s->env_, dir.c_str(), MDB_NOTLS, 0640))) {
    return LmdbError(dir, "cannot open the LMDB environment", rc);
  }
  mdb_env_info(s->env_, &info);
  s->map_size_ = info.me_mapsize;  // a larger existing map wins
  // A data file shorter than the pages its meta page counts was truncated:
  // reading those pages through the map would fault (SIGBUS), so refuse it.
  MDB_stat env_stat{};
  mdb_env_stat(s->env_, &env_stat);
  std::error_code size_ec;
  uint64_t file_size = std::filesystem::file_size(dir + "/data.mdb", size_ec);
  uint64_t needed = static_cast<uint64_t>(info.me_last_pgno + 1) * env_stat.ms_psize;
  if (!size_ec && file_size < needed) {
    return Status::Corruption(fmt::format("state directory {}: data.mdb is truncated ({} bytes, its pages need {})",
                                          dir, file_size, needed));
  }
  int dead = 0;
  mdb_reader_check(s->env_, &dead);  // clear reader slots of killed processes
  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(s->env_, nullptr, 0, &txn))) return LmdbError(dir, "mdb_txn_begin", rc);
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &s->dbi_))) {
    mdb_txn_abort(txn);
    return LmdbError(dir, "mdb_dbi_open", rc);
  }
  if ((rc = mdb_txn_commit(txn))) return LmdbError(dir, "mdb_txn_commit", rc);
  // Walk every key once: a damaged tree shows here (MDB_CORRUPTED,
  // MDB_PAGE_NOTFOUND) rather than in the middle of a restore.
  if (Status st = s->Scan("", [](std::string_view, std::string_view) {}); !st.ok()) return st;
  s->UpdateUsedBytes();
  return s;
}

LmdbStore::~LmdbStore() {
  (void)WaitForBackgroundCommit();
  if (env_ != nullptr) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status LmdbStore::Put(std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > 511) return Status::InvalidArgument("state keys are 1 to 511 bytes");
  if (value.size() > UINT32_MAX) return Status::InvalidArgument("state values are under 4 GiB");
  Stage(key, value, false);
  return Status::Ok();
}

Status LmdbStore::Delete(std::string_view key) {
  if (key.size() > UINT32_MAX) return Status::InvalidArgument("state keys are 1 to 511 bytes");
  Stage(key, {}, true);
  return Status::Ok();
}

void LmdbStore::Stage(std::string_view key, std::string_view value, bool del) {
  Batch& b = staged_;
  Op op{b.arena.size(), b.arena.size() + key.size(), static_cast<uint32_t>(key.size()),
        static_cast<uint32_t>(value.size()), del};
  b.arena.append(key);
  b.arena.append(value);
  b.ops.push_back(op);
}

void LmdbStore::Batch::Normalize() {
  if (sorted == ops.size()) return;
  // Stable: of two writes of one key, the later stays after the earlier.
  std::stable_sort(ops.begin(), ops.end(), [this](const Op& a, const Op& b) { return KeyOf(a) < KeyOf(b); });
  size_t w = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (w > 0 && KeyOf(ops[w - 1]) == KeyOf(ops[i])) {
      ops[w - 1] = ops[i];  // the last write wins
    } else {
      ops[w++] = ops[i];
    }
  }
  ops.resize(w);
  sorted = w;
}

void LmdbStore::Batch::Clear() {
  ops.clear();
  arena.clear();
  sorted = 0;
}

void LmdbStore::Rollback() {
  (void)WaitForBackgroundCommit();
  staged_.Clear();
}

size_t LmdbStore::staged() const {
  staged_.Normalize();
  return staged_.ops.size();
}

Status LmdbStore::Grow() {
  uint64_t next = map_size_ * 2;
  if (next > options_.max_map_size) {
    return Status::LimitExceeded(fmt::format("state directory {}: the map would pass its limit of {} bytes",
                                             options_.directory, options_.max_map_size));
  }
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc) return LmdbError(options_.directory, "cannot grow the map", rc);
  map_size_ = next;
  ++resizes_;
  return Status::Ok();
}

void LmdbStore::UpdateUsedBytes() {
  MDB_envinfo info{};
  MDB_stat st{};
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &st);
  used_bytes_ = static_cast<uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
}

Status LmdbStore::Apply(Batch& batch) {
  if (batch.ops.empty()) return Status::Ok();
  batch.Normalize();
  for (;;) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc) return LmdbError(options_.directory, "mdb_txn_begin", rc);
    MDB_cursor* cur = nullptr;
    rc = mdb_cursor_open(txn, dbi_, &cur);
    for (size_t i = 0; rc == 0 && i < batch.ops.size(); ++i) {
      const Op& op = batch.ops[i];
      MDB_val key = Val(batch.KeyOf(op));
      if (!op.del) {
        MDB_val val = Val(batch.ValueOf(op));
        rc = mdb_cursor_put(cur, &key, &val, 0);
      } else {
        MDB_val found{};
        rc = mdb_cursor_get(cur, &key, &found, MDB_SET);
        if (rc == 0) rc = mdb_cursor_del(cur, 0);
        if (rc == MDB_NOTFOUND) rc = 0;
      }
    }
    if (cur != nullptr) mdb_cursor_close(cur);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc == 0) {
      batch.Clear();  // applied: the log starts again (its buffers are kept)
      UpdateUsedBytes();
      return Status::Ok();
    }
    if (rc != MDB_MAP_FULL) return CommitError(options_.directory, rc, batch.arena.size());
    if (Status st = Grow(); !st.ok()) return st;  // then redo the whole batch
  }
}

Status LmdbStore::Commit() {
  if (Status st = WaitForBackgroundCommit(); !st.ok()) return st;
  return Apply(staged_);
}

void LmdbStore::CommitInBackground() {
  if (!WaitForBackgroundCommit().ok()) return;  // broken: nothing more is written
  if (staged_.ops.empty()) return;
  std::swap(staged_, applying_);  // the next batch reuses the buffers of the last
  background_ = std::async(std::launch::async, [this] {
    Status st = Apply(applying_);
    applying_.Clear();  // a failed batch is not retried: the store is broken
    return st;
  });
}

Status LmdbStore::WaitForBackgroundCommit() const {
  if (background_.valid()) {
    Status st = background_.get();
    if (background_status_.ok()) background_status_ = st;
  }
  return background_status_;
}

Status LmdbStore::Scan(std::string_view prefix,
                       const std::function<void(std::string_view, std::string_view)>& fn) const {
  if (Status st = WaitForBackgroundCommit(); !st.ok()) return st;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc) return LmdbError(options_.directory, "mdb_txn_begin", rc);
  MDB_cursor* cur = nullptr;
  if ((rc = mdb_cursor_open(txn, dbi_, &cur))) {
    mdb_txn_abort(txn);
    return LmdbError(options_.directory, "mdb_cursor_open", rc);
  }
  MDB_val k = Val(prefix), v{};
  rc = mdb_cursor_get(cur, &k, &v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
  const Batch& b = staged_;
  staged_.Normalize();
  auto staged = std::lower_bound(b.ops.begin(), b.ops.end(), prefix,
                                 [&b](const Op& op, std::string_view p) { return b.KeyOf(op) < p; });
  auto in_prefix = [&](std::string_view key) { return key.substr(0, prefix.size()) == prefix; };
  // Merge the committed keys with the staged changes, in key order.
  for (;;) {
    bool have_db = rc == 0 && in_prefix(View(k));
    bool have_staged = staged != b.ops.end() && in_prefix(b.KeyOf(*staged));
    if (!have_db && !have_staged) break;
    if (have_staged && (!have_db || b.KeyOf(*staged) <= View(k))) {
      bool same = have_db && b.KeyOf(*staged) == View(k);
      if (!staged->del) fn(b.KeyOf(*staged), b.ValueOf(*staged));
      ++staged;
      if (same) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      continue;
    }
    fn(View(k), View(v));
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError(options_.directory, "scan failed", rc);
  return Status::Ok();
}

}  // namespace cepheus::state

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
// Checksums: every value is stored with 8 bytes after it, XXH3-64 of the
// value seeded with XXH3-64 of its key, and Scan checks them, so a record
// whose bytes were damaged inside an otherwise sound page (which no page
// check can see) is refused as Corruption rather than loaded as other data.
// The file says it is written so by a marker record (kFormatKey, hidden from
// Scan); a file without it, from before checksums, is rewritten with them at
// open, in one transaction.
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
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>

#include <fmt/format.h>
#include <xxhash.h>

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

constexpr std::string_view kFormatKey = "\xff" "cepheus/format";
constexpr std::string_view kFormatValue = "checksummed 1";
constexpr size_t kSumBytes = 8;

uint64_t RecordSum(std::string_view key, std::string_view value) {
  return XXH3_64bits_withSeed(value.data(), value.size(), XXH3_64bits(key.data(), key.size()));
}

// A key as an operator can read it in a message: printable bytes as they
// are, the others escaped, and a long key cut.
std::string Printable(std::string_view key) {
  std::string out;
  for (unsigned char c : key.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  if (key.size() > 80) out += "...";
  return out;
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// Reads every record of `dbi` (keys and values touched, so overflow pages
// are read too), checking that the keys come in strictly ascending order and
// that there are as many as the tree counts: a scribbled branch page can
// send a cursor to the wrong leaves without an error. An LMDB error code, or 0.
// A value of an overflow node (LMDB puts a large value on pages of its own,
// right after a 16-byte page header): the header must name that page, say
// overflow, and count the pages the value needs, or freeing it (when the
// value is replaced) would free garbage. True for any other value.
bool OverflowHeaderOk(const MDB_val& v, const char* map, size_t psize) {
  constexpr size_t kHeader = 16;  // pgno (8), pad (2), flags (2), pages (4)
  const size_t off = static_cast<size_t>(static_cast<const char*>(v.mv_data) - map);
  if (off % psize != kHeader) return true;  // a leaf node's value: never right after a header
  uint64_t pgno = 0;
  uint16_t flags = 0;
  uint32_t pages = 0;
  const char* head = static_cast<const char*>(v.mv_data) - kHeader;
  std::memcpy(&pgno, head, 8);
  std::memcpy(&flags, head + 10, 2);
  std::memcpy(&pages, head + 12, 4);
  return pgno == off / psize && (flags & 0x04) != 0 && pages == (kHeader + v.mv_size + psize - 1) / psize;
}

// Where data.mdb of `dir` is mapped in this process (LMDB reports its map
// address only under MDB_FIXEDMAP), from /proc/self/maps; null if not found.
const char* MapBase(const std::string& dir) {
  std::error_code ec;
  const std::string file = std::filesystem::canonical(dir + "/data.mdb", ec).string();
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (ec || maps == nullptr) {
    if (maps != nullptr) std::fclose(maps);
    return nullptr;
  }
  char line[4096];
  const char* base = nullptr;
  while (base == nullptr && std::fgets(line, sizeof line, maps) != nullptr) {
    std::string_view l(line);
    while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.remove_suffix(1);
    if (l.size() >= file.size() && l.substr(l.size() - file.size()) == file && l.find(" 00000000 ") != l.npos) {
      base = reinterpret_cast<const char*>(std::strtoull(line, nullptr, 16));
    }
  }
  std::fclose(maps);
  return base;
}

int WalkAll(const char* map, MDB_txn* txn, MDB_dbi dbi) {
  MDB_stat st{};
  int rc = mdb_stat(txn, dbi, &st);
  if (rc) return rc;
  MDB_cursor* c = nullptr;
  if ((rc = mdb_cursor_open(txn, dbi, &c))) return rc;
  MDB_val k, v;
  std::string prev;
  size_t count = 0;
  unsigned char sum = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    std::string_view key = View(k);
    if (key.empty() || (count > 0 && key <= std::string_view(prev))) {
      rc = MDB_CORRUPTED;
      break;
    }
    if (map != nullptr && !OverflowHeaderOk(v, map, st.ms_psize)) {
      rc = MDB_CORRUPTED;
      break;
    }
    prev.assign(key);
    ++count;
    sum ^= static_cast<unsigned char>(key.back());
    if (v.mv_size > 0) sum ^= static_cast<const unsigned char*>(v.mv_data)[v.mv_size - 1];
  }
  mdb_cursor_close(c);
  [[maybe_unused]] volatile unsigned char sink = sum;  // the reads are kept
  if (rc != MDB_NOTFOUND) return rc;
  return count == st.ms_entries ? 0 : MDB_CORRUPTED;
}

// Writes every record of `dbi` back in place, in write transactions of
// 20 000 records that are aborted (nothing reaches the file, and the dirty
// pages of one transaction stay few): every leaf page and the branch pages
// above it go through mdb_cursor_put, where a scribbled page faults.
int RewriteAll(MDB_env* env, MDB_dbi dbi) {
  std::string last, value;
  for (bool more = true; more;) {
    MDB_txn* txn = nullptr;
    MDB_cursor* c = nullptr;
    int rc = mdb_txn_begin(env, nullptr, 0, &txn);
    if (rc) return rc;
    if ((rc = mdb_cursor_open(txn, dbi, &c))) {
      mdb_txn_abort(txn);
      return rc;
    }
    MDB_val k{last.size(), last.data()}, v;
    int got = last.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    for (int n = 0; got == 0 && n < 20000; ++n) {
      last.assign(static_cast<const char*>(k.mv_data), k.mv_size);
      value.assign(static_cast<const char*>(v.mv_data), v.mv_size);
      // Copies of the key and the value: LMDB copies them onto the page the
      // originals point into (overlapping memcpy, which ASan reports).
      MDB_val key{last.size(), last.data()}, same{value.size(), value.data()};
      if ((rc = mdb_cursor_put(c, &key, &same, MDB_CURRENT))) break;
      got = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    more = rc == 0 && got == 0;
    if (rc == 0 && got != 0 && got != MDB_NOTFOUND) rc = got;
    mdb_txn_abort(txn);  // closes the cursor
    if (rc) return rc;
  }
  return 0;
}

// LMDB's freelist (FREE_DBI): each record is a list of free page numbers,
// its count first, then the pages in descending order. A damaged record
// reads without error but makes the writer that takes pages from it fail
// (MDB_BAD_VALSIZE) or fault: checked here, against the last page in use.
int CheckFreelist(MDB_txn* txn, size_t last_pgno) {
  MDB_cursor* c = nullptr;
  int rc = mdb_cursor_open(txn, 0, &c);
  if (rc) return rc;
  MDB_val k, v;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    const size_t n = v.mv_size / sizeof(size_t);
    size_t ids[2];
    if (v.mv_size % sizeof(size_t) != 0 || n == 0) return MDB_CORRUPTED;
    std::memcpy(ids, v.mv_data, sizeof(size_t));
    if (ids[0] != n - 1) return MDB_CORRUPTED;
    size_t prev = last_pgno + 1;
    for (size_t i = 1; i < n; ++i) {
      std::memcpy(&ids[1], static_cast<const char*>(v.mv_data) + i * sizeof(size_t), sizeof(size_t));
      if (ids[1] < 2 || ids[1] >= prev) return MDB_CORRUPTED;  // pages 0 and 1 are the meta pages
      prev = ids[1];
    }
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

// The probe, in a child process: open the environment, walk every record of
// the store and of LMDB's freelist, write every record back in place
// (RewriteAll), then write and delete a batch of probe
// keys (page allocation from the freelist, splits, the freelist saved back)
// and commit that, which leaves the data as it was. Exit 0 when all of it
// worked, 2 on an LMDB error; a damaged page may instead kill the child.
[[noreturn]] void ProbeChild(const std::string& dir, uint64_t map_size) {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);  // die, report nothing
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi = 0;
  int rc = mdb_env_create(&env);
  if (!rc) rc = mdb_env_set_mapsize(env, map_size);
  if (!rc) rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0640);
  // The freelist (FREE_DBI, 0) can only be read in a read-only transaction.
  if (!rc) rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  if (!rc) rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
  if (!rc) rc = WalkAll(MapBase(dir), txn, dbi);
  MDB_envinfo info{};
  if (!rc) rc = mdb_env_info(env, &info);
  if (!rc) rc = CheckFreelist(txn, info.me_last_pgno);
  if (txn != nullptr) mdb_txn_abort(txn);
  txn = nullptr;
  if (!rc) rc = RewriteAll(env, dbi);
  if (!rc) rc = mdb_txn_begin(env, nullptr, 0, &txn);
  char key[32];
  std::string value(600, 'p');
  for (int i = 0; !rc && i < 256; ++i) {
    MDB_val k{static_cast<size_t>(std::snprintf(key, sizeof key, "\xff" "cepheus-probe/%04d", i)), key};
    MDB_val v{value.size(), value.data()};
    rc = mdb_put(txn, dbi, &k, &v, 0);
  }
  for (int i = 0; !rc && i < 256; ++i) {
    MDB_val k{static_cast<size_t>(std::snprintf(key, sizeof key, "\xff" "cepheus-probe/%04d", i)), key};
    rc = mdb_del(txn, dbi, &k, nullptr);
  }
  if (!rc) {
    rc = mdb_txn_commit(txn);
  } else if (txn != nullptr) {
    mdb_txn_abort(txn);
  }
  ::_exit(rc == 0 || rc == MDB_MAP_FULL ? 0 : 2);
}

// Runs ProbeChild and judges the file by how the child ended. A child still
// running after `timeout_s` (a very large file) is stopped and the file
// passes: only a probe that failed or died condemns it.
Status Probe(const std::string& dir, uint64_t map_size, int timeout_s) {
  pid_t pid = ::fork();
  if (pid < 0) return Status::Ok();  // cannot probe: the open-time walk still runs
  if (pid == 0) ProbeChild(dir, map_size);
  int status = 0;
  for (int waited_ms = 0;; waited_ms += 10) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return Status::Ok();
    if (waited_ms >= timeout_s * 1000) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return Status::Ok();
    }
    ::usleep(10000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status::Corruption(fmt::format(
      "state directory {}: data.mdb is damaged: a check of its pages {}", dir,
      WIFSIGNALED(status) ? fmt::format("died with signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)))
                          : std::string("met an LMDB error")));
}

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
  // A scribbled page can pass every check here and then crash the process
  // in mdb_cursor_put at the first write, at every start: so a file with
  // data is first read whole and written to by a child process, whose death
  // condemns the file (the daemon then sets it aside and rebuilds the state
  // from the changelog) instead of the daemon's.
  if (info.me_last_pgno > 1) {
    if (Status st = Probe(dir, s->map_size_, 120); !st.ok()) return st;
  }
  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(s->env_, nullptr, 0, &txn))) return LmdbError(dir, "mdb_txn_begin", rc);
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &s->dbi_))) {
    mdb_txn_abort(txn);
    return LmdbError(dir, "mdb_dbi_open", rc);
  }
  if ((rc = mdb_txn_commit(txn))) return LmdbError(dir, "mdb_txn_commit", rc);
  if (Status st = s->EnsureChecksummed(); !st.ok()) return st;
  // Walk every key once: a damaged tree shows here (MDB_CORRUPTED,
  // MDB_PAGE_NOTFOUND), and a damaged record by its checksum, rather than in
  // the middle of a restore.
  if (Status st = s->Scan("", [](std::string_view, std::string_view) {}); !st.ok()) return st;
  s->UpdateUsedBytes();
  return s;
}

LmdbStore::~LmdbStore() {
  (void)WaitForBackgroundCommit();
  if (env_ != nullptr) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status LmdbStore::EnsureChecksummed() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc) return LmdbError(options_.directory, "mdb_txn_begin", rc);
  MDB_val fk = Val(kFormatKey), fv{};
  rc = mdb_get(txn, dbi_, &fk, &fv);
  mdb_txn_abort(txn);
  if (rc == 0) return Status::Ok();
  if (rc != MDB_NOTFOUND) return LmdbError(options_.directory, "mdb_get", rc);
  // New, or written before checksums: every record is written again with
  // its checksum, and the marker, in one transaction.
  std::vector<std::pair<std::string, std::string>> records;
  Status st = ScanRecords("", [&](std::string_view k, std::string_view v) { records.emplace_back(k, v); }, true);
  if (!st.ok()) return st;
  for (const auto& [k, v] : records) Stage(k, v, false);
  Stage(kFormatKey, kFormatValue, false);
  return Commit();
}

Status LmdbStore::Put(std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > 511) return Status::InvalidArgument("state keys are 1 to 511 bytes");
  if (static_cast<unsigned char>(key[0]) == 0xff) return Status::InvalidArgument("state keys starting with byte 0xff are reserved");
  if (value.size() > UINT32_MAX - kSumBytes) return Status::InvalidArgument("state values are under 4 GiB");
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
        static_cast<uint32_t>(del ? 0 : value.size() + kSumBytes), del};
  b.arena.append(key);
  if (!del) {
    b.arena.append(value);
    uint64_t sum = RecordSum(key, value);
    char bytes[kSumBytes];
    for (size_t i = 0; i < kSumBytes; ++i) bytes[i] = static_cast<char>(sum >> (8 * i));  // little-endian
    b.arena.append(bytes, kSumBytes);
  }
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
  return ScanRecords(prefix, fn, false);
}

Status LmdbStore::ScanRecords(std::string_view prefix,
                              const std::function<void(std::string_view, std::string_view)>& fn, bool raw) const {
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
  Status damaged;
  // Merge the committed keys with the staged changes, in key order.
  for (;;) {
    bool have_db = rc == 0 && in_prefix(View(k));
    bool have_staged = staged != b.ops.end() && in_prefix(b.KeyOf(*staged));
    if (!have_db && !have_staged) break;
    if (have_staged && (!have_db || b.KeyOf(*staged) <= View(k))) {
      bool same = have_db && b.KeyOf(*staged) == View(k);
      std::string_view key = b.KeyOf(*staged), value = b.ValueOf(*staged);
      if (!staged->del && key != kFormatKey) fn(key, value.substr(0, value.size() - kSumBytes));
      ++staged;
      if (same) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      continue;
    }
    std::string_view key = View(k), value = View(v);
    if (raw) {
      fn(key, value);
    } else if (key != kFormatKey) {
      uint64_t stored = 0;
      if (value.size() >= kSumBytes) {
        for (size_t i = 0; i < kSumBytes; ++i) {
          stored |= static_cast<uint64_t>(static_cast<unsigned char>(value[value.size() - kSumBytes + i])) << (8 * i);
        }
      }
      value = value.substr(0, value.size() - std::min(value.size(), kSumBytes));
      if (v.mv_size < kSumBytes || stored != RecordSum(key, value)) {
        damaged = Status::Corruption(
            fmt::format("state directory {}: data.mdb is damaged: the record under key '{}' fails its checksum",
                        options_.directory, Printable(key)));
        break;
      }
      fn(key, value);
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  if (!damaged.ok()) return damaged;
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError(options_.directory, "scan failed", rc);
  return Status::Ok();
}

}  // namespace cepheus::state

// The LMDB store on real files in a temporary directory: atomic batches,
// reopening, map growth from a tiny map, background commits, one process per
// directory, and the engine's own state through it.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "cepheus/engine/engine.h"
#include "cepheus/engine/state_codec.h"
#include "cepheus/state/lmdb_store.h"

#include <lmdb.h>
#include "test_util.h"

using namespace cepheus;

namespace {

struct TempDir {
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("cepheus-lmdb-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

std::unique_ptr<state::LmdbStore> Open(const TempDir& d, uint64_t map = 1ULL << 20) {
  auto s = state::LmdbStore::Open({d.path.string(), map, 1ULL << 32});
  INFO((s.ok() ? "" : s.status().message()));
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::vector<std::pair<std::string, std::string>> All(const engine::StateStore& s, std::string_view prefix = "") {
  std::vector<std::pair<std::string, std::string>> out;
  REQUIRE(s.Scan(prefix, [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); }).ok());
  return out;
}

}  // namespace

TEST_CASE("a committed batch survives closing and reopening the store") {
  TempDir dir;
  {
    auto s = Open(dir);
    REQUIRE(s->Put("a/1", "one").ok());
    REQUIRE(s->Put("a/2", "two").ok());
    REQUIRE(s->Put("b/1", "other").ok());
    REQUIRE(s->Commit().ok());
    REQUIRE(s->Put("a/3", "never committed").ok());
  }
  auto s = Open(dir);
  using P = std::pair<std::string, std::string>;
  CHECK(All(*s, "a/") == std::vector<P>{{"a/1", "one"}, {"a/2", "two"}});
  CHECK(All(*s).size() == 3);
}

TEST_CASE("scan shows staged puts and deletes on top of committed data") {
  TempDir dir;
  auto s = Open(dir);
  REQUIRE(s->Put("k/1", "a").ok());
  REQUIRE(s->Put("k/2", "b").ok());
  REQUIRE(s->Commit().ok());
  REQUIRE(s->Delete("k/1").ok());
  REQUIRE(s->Put("k/2", "B").ok());
  REQUIRE(s->Put("k/0", "new").ok());
  using P = std::pair<std::string, std::string>;
  CHECK(All(*s, "k/") == std::vector<P>{{"k/0", "new"}, {"k/2", "B"}});
  s->Rollback();
  CHECK(All(*s, "k/") == std::vector<P>{{"k/1", "a"}, {"k/2", "b"}});
}

TEST_CASE("the last staged write of a key wins, in scans and after the commit") {
  TempDir dir;
  auto s = Open(dir);
  REQUIRE(s->Put("k/1", "old").ok());
  REQUIRE(s->Put("k/3", "kept").ok());
  REQUIRE(s->Commit().ok());
  REQUIRE(s->Put("k/2", "first").ok());
  REQUIRE(s->Delete("k/1").ok());
  REQUIRE(s->Put("k/1", "again").ok());
  REQUIRE(s->Put("k/2", "second").ok());
  REQUIRE(s->Delete("k/2").ok());
  REQUIRE(s->Delete("k/never").ok());
  REQUIRE(s->Put("k/0", "x").ok());
  using P = std::pair<std::string, std::string>;
  std::vector<P> want{{"k/0", "x"}, {"k/1", "again"}, {"k/3", "kept"}};
  CHECK(All(*s, "k/") == want);
  REQUIRE(s->Put("k/4", "after a scan").ok());
  REQUIRE(s->Put("k/0", "y").ok());
  want = {{"k/0", "y"}, {"k/1", "again"}, {"k/3", "kept"}, {"k/4", "after a scan"}};
  CHECK(All(*s, "k/") == want);
  CHECK(s->staged() == 5);
  REQUIRE(s->Commit().ok());
  CHECK(s->staged() == 0);
  CHECK(All(*s, "k/") == want);
  REQUIRE(s->Delete("k/3").ok());
  REQUIRE(s->Commit().ok());
  want = {{"k/0", "y"}, {"k/1", "again"}, {"k/4", "after a scan"}};
  CHECK(All(*s, "k/") == want);
}

TEST_CASE("a full map is grown and the batch redone, from a 1 MiB start") {
  TempDir dir;
  auto s = Open(dir, 1ULL << 20);
  std::string value(1000, 'x');
  for (int i = 0; i < 20000; ++i) REQUIRE(s->Put("key/" + std::to_string(i), value).ok());
  REQUIRE(s->Commit().ok());
  CHECK(s->map_resizes() >= 4);
  CHECK(s->map_size() >= (16ULL << 20));
  CHECK(All(*s, "key/").size() == 20000);
  CHECK(s->used_bytes() > 20000ULL * 1000);
}

TEST_CASE("a background commit is seen by the next scan and survives reopening, while the next batch is staged") {
  TempDir dir;
  using P = std::pair<std::string, std::string>;
  {
    auto s = Open(dir);
    REQUIRE(s->Put("a/1", "one").ok());
    REQUIRE(s->Put("a/2", "two").ok());
    s->CommitInBackground();
    CHECK(s->staged() == 0);  // the next batch starts empty
    REQUIRE(s->Put("a/2", "two again").ok());
    REQUIRE(s->Delete("a/1").ok());
    CHECK(All(*s, "a/") == std::vector<P>{{"a/2", "two again"}});
    REQUIRE(s->WaitForBackgroundCommit().ok());
    CHECK(s->staged() == 2);
  }
  auto s = Open(dir);  // the second batch was never committed
  CHECK(All(*s, "a/") == std::vector<P>{{"a/1", "one"}, {"a/2", "two"}});
}

TEST_CASE("a background commit grows a full map like a foreground one") {
  TempDir dir;
  auto s = Open(dir, 1ULL << 20);
  std::string value(1000, 'x');
  for (int i = 0; i < 20000; ++i) REQUIRE(s->Put("key/" + std::to_string(i), value).ok());
  s->CommitInBackground();
  REQUIRE(s->WaitForBackgroundCommit().ok());
  CHECK(s->map_resizes() >= 4);
  CHECK(All(*s, "key/").size() == 20000);
  CHECK(s->used_bytes() > 20000ULL * 1000);
}

TEST_CASE("a failed background commit is reported by the wait, by reads and by commits after it") {
  TempDir dir;
  auto opened = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 20});  // cannot grow
  REQUIRE(opened.ok());
  auto s = std::move(opened).value();
  REQUIRE(s->Put("small", "fits").ok());
  REQUIRE(s->Commit().ok());
  std::string value(1000, 'x');
  for (int i = 0; i < 5000; ++i) REQUIRE(s->Put("key/" + std::to_string(i), value).ok());
  s->CommitInBackground();
  Status st = s->WaitForBackgroundCommit();
  CHECK(st.code() == Status::Code::kLimitExceeded);
  CHECK(st.message().find("the map would pass its limit") != std::string::npos);
  CHECK(s->WaitForBackgroundCommit().code() == Status::Code::kLimitExceeded);  // it stays reported
  CHECK(s->Scan("", [](std::string_view, std::string_view) {}).code() == Status::Code::kLimitExceeded);
  REQUIRE(s->Put("later", "batch").ok());
  CHECK(s->Commit().code() == Status::Code::kLimitExceeded);
  s.reset();
  auto again = Open(dir);  // nothing of the failed batch, nor after it
  CHECK(All(*again) == std::vector<std::pair<std::string, std::string>>{{"small", "fits"}});
}

TEST_CASE("a second store on the same directory is refused") {
  TempDir dir;
  auto first = Open(dir);
  auto second = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 32});
  CHECK_FALSE(second.ok());
  CHECK(second.status().code() == Status::Code::kFailedPrecondition);
  CHECK(second.status().message().find("in use by another cepheus process") != std::string::npos);
}

namespace {

// A store with enough keys to span many pages, closed.
void Fill(const TempDir& dir) {
  auto s = Open(dir);
  for (int i = 0; i < 2000; ++i) REQUIRE(s->Put("key" + std::to_string(i), std::string(200, 'v')).ok());
  REQUIRE(s->Commit().ok());
}

}  // namespace

TEST_CASE("a truncated data file is reported as corruption, not read past its end") {
  TempDir dir;
  Fill(dir);
  std::filesystem::resize_file(dir.path / "data.mdb", 4 * 4096);
  auto s = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 32});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Status::Code::kCorruption);
  CHECK(s.status().message().find("truncated") != std::string::npos);
}

TEST_CASE("overwritten meta pages are reported as corruption") {
  TempDir dir;
  Fill(dir);
  {
    std::FILE* f = std::fopen((dir.path / "data.mdb").c_str(), "r+b");
    REQUIRE(f != nullptr);
    std::string junk(8192, '\x5a');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto s = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 32});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Status::Code::kCorruption);
}

namespace {

// Replaces every occurrence of `from` in the file by `to` (same length), as a
// disk that damaged bytes inside a record would; returns how many.
int ReplaceInFile(const std::filesystem::path& file, std::string_view from, std::string_view to) {
  REQUIRE(from.size() == to.size());
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  int n = 0;
  for (size_t at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at + 1), ++n) {
    bytes.replace(at, to.size(), to);
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return n;
}

}  // namespace

TEST_CASE("a byte changed inside one record, its page otherwise sound, is refused at open by the record's checksum") {
  TempDir dir;
  {
    auto s = Open(dir);
    for (int i = 0; i < 500; ++i) REQUIRE(s->Put(fmt::format("key{}", i), fmt::format("value of record {} ...", i)).ok());
    REQUIRE(s->Commit().ok());
  }
  // One digit of the record's value: still a well-formed value, only wrong.
  REQUIRE(ReplaceInFile(dir.path / "data.mdb", "value of record 321 ", "value of record 329 ") >= 1);
  auto s = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 32});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Status::Code::kCorruption);
  CHECK(s.status().message().find("the record under key 'key321' fails its checksum") != std::string::npos);
}

TEST_CASE("a state file written before checksums opens with every record as it was, and is checked from then on") {
  TempDir dir;
  std::filesystem::create_directories(dir.path);
  {
    // The layout of earlier versions: the values alone, no marker record.
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_mapsize(env, 1ULL << 20) == 0);
    REQUIRE(mdb_env_open(env, dir.path.c_str(), MDB_NOTLS, 0640) == 0);
    MDB_txn* txn = nullptr;
    MDB_dbi dbi = 0;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);
    for (int i = 0; i < 100; ++i) {
      std::string k = fmt::format("old/{:03}", i), v = fmt::format("old value {}", i);
      MDB_val mk{k.size(), k.data()}, mv{v.size(), v.data()};
      REQUIRE(mdb_put(txn, dbi, &mk, &mv, 0) == 0);
    }
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  {
    auto s = Open(dir);
    auto all = All(*s);
    REQUIRE(all.size() == 100);
    CHECK(all[7] == std::pair<std::string, std::string>{"old/007", "old value 7"});
  }
  {
    auto s = Open(dir);  // opened again: the records were rewritten with checksums, not mangled
    CHECK(All(*s).size() == 100);
    CHECK(All(*s)[42].second == "old value 42");
  }
  REQUIRE(ReplaceInFile(dir.path / "data.mdb", "old value 42", "old value 43") >= 1);
  auto s = state::LmdbStore::Open({dir.path.string(), 1ULL << 20, 1ULL << 32});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("'old/042' fails its checksum") != std::string::npos);
}

TEST_CASE("keys starting with byte 0xff are the store's own and refused") {
  TempDir dir;
  auto s = Open(dir);
  CHECK(s->Put("\xff" "cepheus/format", "x").code() == Status::Code::kInvalidArgument);
  CHECK(All(*s).empty());  // the store's format record is not shown
}

TEST_CASE("the engine's state round-trips through LMDB files") {
  auto rules = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  TempDir dir;
  engine::CollectingSink sink;
  engine::EventDecoder dec(rules, {});
  {
    engine::Engine a(rules, {}, &sink);
    a.Push(dec.Decode(R"({"id":"e1","type":"order","ts":1,"user_id":"u"})", {}).value());
    a.Push(dec.Decode(R"({"id":"e2","type":"order","ts":2,"user_id":"u"})", {}).value());
    auto s = Open(dir);
    REQUIRE(a.Save(s.get()).ok());
    REQUIRE(s->Commit().ok());
  }
  auto s = Open(dir);
  engine::Engine b(rules, {}, &sink);
  REQUIRE(b.Load(*s, &dec).ok());
  CHECK(b.active_runs() == 2);
  b.Push(dec.Decode(R"({"id":"e3","type":"order","ts":3,"user_id":"u"})", {}).value());
  CHECK(testing::Reduce(sink.alerts) == std::vector<std::string>{"r|u|match|o=e1,e2,e3"});
}

TEST_CASE("a state directory path that is a file is the operator's to fix: FailedPrecondition, not an I/O error") {
  TempDir d;
  std::filesystem::create_directories(d.path);
  auto file = d.path / "not-a-directory";
  { std::ofstream(file) << "x"; }
  auto s = state::LmdbStore::Open({file.string(), 1ULL << 20, 1ULL << 32});
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Status::Code::kFailedPrecondition);
  CHECK(s.status().message().find("cannot create it") != std::string::npos);
}

TEST_CASE("a 10 KB key's partial matches are saved to LMDB and loaded back (LMDB takes keys up to 511 bytes)") {
  auto compiled = testing::CompileRules("rule r key user_id match o: order{3} within 1m");
  engine::EventDecoder dec(compiled, {});
  const std::string user(10 * 1024, 'k');
  const std::string event = R"({"type":"order","ts":1,"user_id":")" + user + R"("})";
  TempDir dir;
  {
    auto s = Open(dir);
    engine::Engine a(compiled, {}, nullptr);
    a.Push(dec.Decode(event, {}).value());
    REQUIRE(a.active_runs() == 1);
    Status saved = a.SaveChanges(s.get());
    INFO(saved.message());
    REQUIRE(saved.ok());
    REQUIRE(s->Commit().ok());
  }
  auto s = Open(dir);
  for (const auto& [k, v] : All(*s, "engine/h/")) {
    CHECK(k.size() == 9 + 16);  // "engine/h/" and the digest
    CHECK(engine::SplitStoredKey(v).value().key == user);
  }
  engine::CollectingSink sink;
  engine::Engine b(compiled, {}, &sink);
  REQUIRE(b.Load(*s, &dec, nullptr).ok());
  CHECK(b.active_runs() == 1);
  // The run goes on from where it was: two more orders complete it.
  b.Push(dec.Decode(R"({"type":"order","ts":2,"user_id":")" + user + R"("})", {}).value());
  b.Push(dec.Decode(R"({"type":"order","ts":3,"user_id":")" + user + R"("})", {}).value());
  b.Finish();
  REQUIRE(sink.alerts.size() == 1);
  CHECK(sink.alerts[0].key == user);
}

TEST_CASE("a data page overwritten with garbage is refused as corruption at open or read and written safely after") {
  // The pristine file: enough keys for branch pages, leaf pages, overflow
  // pages and, after a second batch deleted half, freelist pages.
  TempDir pristine;
  {
    auto s = Open(pristine, 64ULL << 20);
    for (int i = 0; i < 3000; ++i) REQUIRE(s->Put(fmt::format("k/{:06}", i), std::string(i % 7 == 0 ? 5000 : 40, 'v')).ok());
    REQUIRE(s->Commit().ok());
    for (int i = 0; i < 3000; i += 2) REQUIRE(s->Delete(fmt::format("k/{:06}", i)).ok());
    REQUIRE(s->Commit().ok());
  }
  const auto file = pristine.path / "data.mdb";
  const uint64_t pages = std::filesystem::file_size(file) / 4096;
  REQUIRE(pages > 20);
  std::mt19937 rng(7);
  int refused = 0, opened = 0;
  // Pages 0 and 1 are the meta pages. The first pages hold every kind (branch,
  // leaf, overflow, freelist); after them, one page in 31 (each probe forks).
  for (uint64_t page = 2; page < pages; page += page < 26 ? 1 : 31) {
    CAPTURE(page);
    TempDir dir;
    std::filesystem::create_directories(dir.path);
    std::filesystem::copy_file(file, dir.path / "data.mdb");
    {
      std::fstream f(dir.path / "data.mdb", std::ios::in | std::ios::out | std::ios::binary);
      std::string junk(4096, '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      f.seekp(static_cast<std::streamoff>(page * 4096));
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    auto s = state::LmdbStore::Open({dir.path.string(), 64ULL << 20, 1ULL << 32});
    if (!s.ok()) {
      CHECK(s.status().code() == Status::Code::kCorruption);
      ++refused;
      continue;
    }
    ++opened;  // the page was not one the store reaches (a free page): it must work on
    for (int i = 0; i < 3000; i += 3) REQUIRE(s.value()->Put(fmt::format("k/{:06}", i), "w").ok());
    Status committed = s.value()->Commit();
    INFO(committed.message());
    REQUIRE(committed.ok());
    REQUIRE(s.value()->Scan("k/", [](std::string_view, std::string_view) {}).ok());
  }
  MESSAGE(refused << " damaged files refused, " << opened << " opened and written");
  CHECK(refused > 0);
}

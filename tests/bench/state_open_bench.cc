// What opening a state file costs as it grows: LmdbStore::Open forks a probe
// that reads and rewrites every record, then walks every record once more
// checking its checksum. Prints, for a file of N records, the time of a
// plain read of every record (the baseline: what any restore pays anyway)
// and the time of Open, and their ratio.
//
//   build/tests/state_open_bench [records] [value bytes]   (defaults 1000000, 400)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <unistd.h>

#include "cepheus/state/lmdb_store.h"

using namespace cepheus;

namespace {

double Seconds(std::chrono::steady_clock::time_point from) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
}

}  // namespace

int main(int argc, char** argv) {
  const long records = argc > 1 ? std::atol(argv[1]) : 1000000;
  const long value_bytes = argc > 2 ? std::atol(argv[2]) : 400;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("cepheus-open-bench-{}", ::getpid());
  state::LmdbOptions options{dir.string(), 1ULL << 30, 1ULL << 36};
  {
    auto s = state::LmdbStore::Open(options);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.status().message().c_str()), 1;
    std::string value(static_cast<size_t>(value_bytes), 'v');
    for (long i = 0; i < records; ++i) {
      (void)s.value()->Put(fmt::format("p/events/{}/engine/h/{:016x}", i % 8, i * 2654435761u), value);
      if (i % 100000 == 99999 && !s.value()->Commit().ok()) return 1;
    }
    if (!s.value()->Commit().ok()) return 1;
  }
  const double file_mb = static_cast<double>(std::filesystem::file_size(dir / "data.mdb")) / 1e6;
  // Baseline: a store opened, then every record read once (as a restore of
  // every partition does), minus the open.
  auto t0 = std::chrono::steady_clock::now();
  auto s = state::LmdbStore::Open(options);
  const double open_s = Seconds(t0);
  if (!s.ok()) return std::fprintf(stderr, "%s\n", s.status().message().c_str()), 1;
  t0 = std::chrono::steady_clock::now();
  long n = 0;
  (void)s.value()->Scan("", [&](std::string_view, std::string_view v) { n += static_cast<long>(v.size() > 0); });
  const double read_s = Seconds(t0);
  s.value().reset();  // closed
  std::printf("records %ld, value bytes %ld, data.mdb %.0f MB\n", n, value_bytes, file_mb);
  std::printf("read of every record (baseline): %.3f s\n", read_s);
  std::printf("LmdbStore::Open (probe + checksum walk): %.3f s, %.1fx the baseline\n", open_s, open_s / read_s);
  std::filesystem::remove_all(dir);
  return 0;
}

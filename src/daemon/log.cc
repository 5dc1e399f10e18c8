// Log lines for a terminal or for journald.
//
// journald is detected the way sd-daemon(3) says: JOURNAL_STREAM holds
// "device:inode" of the stream journald connected, and it is ours only if
// stderr still is that stream (a child whose stderr was redirected inherits
// the variable but not the stream).
#include "cepheus/daemon/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "cepheus/io/kafka.h"

namespace cepheus::daemon {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_journal{-1};  // -1: not decided yet

bool StderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "info";
}

}  // namespace

void SetLogLevel(std::string_view level) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarning, LogLevel::kInfo, LogLevel::kDebug}) {
    if (level == LevelName(l)) g_level = static_cast<int>(l);
  }
}

bool LogToJournal() {
  int j = g_journal.load();
  if (j < 0) {
    j = StderrIsJournal() ? 1 : 0;
    g_journal = j;
  }
  return j == 1;
}

void SetLogToJournal(bool journal) { g_journal = journal ? 1 : 0; }

std::string FormatLogLine(LogLevel level, std::string_view message, bool journal, long long epoch_ms) {
  if (journal) return fmt::format("<{}>{}", static_cast<int>(level), message);
  std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {}: {}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, epoch_ms % 1000, LevelName(level), message);
}

void Log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) > g_level.load()) return;
  long long now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::string line = FormatLogLine(level, message, LogToJournal(), now);
  line.push_back('\n');
  // One write per line, so lines of several threads do not interleave.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void RouteKafkaLogs() {
  io::SetLogHandler([](int priority, std::string_view line) {
    LogLevel level = priority <= 3 ? LogLevel::kError
                     : priority == 4 ? LogLevel::kWarning
                     : priority <= 6 ? LogLevel::kInfo
                                     : LogLevel::kDebug;
    Log(level, line);
  });
}

}  // namespace cepheus::daemon

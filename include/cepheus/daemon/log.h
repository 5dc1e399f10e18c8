// The daemon's log: one line per event of note, on stderr.
//
// Under journald (stderr is the stream JOURNAL_STREAM names) a line is
// `<N>message`, N the syslog priority, with no timestamp: journald adds its
// own and files the priority (sd-daemon(3)). Anywhere else a line is
// `2026-11-26T01:02:03.456Z warning: message`. Lines below the configured
// level are dropped. Event payloads are never logged at info or above.
// Thread-safe: one write(2) per line.
#pragma once

#include <string>
#include <string_view>

namespace cepheus::daemon {

enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };  // syslog priorities

// "error", "warning", "info" or "debug"; anything else leaves the level as is.
void SetLogLevel(std::string_view level);
// Decided once from the environment at the first log line; tests may force it.
bool LogToJournal();
void SetLogToJournal(bool journal);

void Log(LogLevel level, std::string_view message);
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }
inline void LogWarning(std::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }

// Sends librdkafka's log lines (and the Kafka module's) through Log.
void RouteKafkaLogs();

// The line `Log` would write, without the newline (for tests).
std::string FormatLogLine(LogLevel level, std::string_view message, bool journal, long long epoch_ms);

}  // namespace cepheus::daemon

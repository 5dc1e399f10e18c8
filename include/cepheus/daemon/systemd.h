// The daemon's side of systemd's service protocol (sd_notify(3)).
//
// Start-up sends one STATUS= line per step and READY=1 once the first
// partitions are assigned and their state restored; a reload is bracketed by
// RELOADING=1 and READY=1; a stop starts with STOPPING=1. When the unit sets
// WatchdogSec, the processing loop calls MaybePingWatchdog on every turn and
// a WATCHDOG=1 goes out every third of the interval (so never more than half
// apart), so a wedged loop stops the pings
// and systemd restarts the service. Without NOTIFY_SOCKET (not under
// systemd) every call does nothing. Not thread-safe: the loop's thread only.
#pragma once

#include <chrono>
#include <string_view>

namespace cepheus::daemon {

class Notifier {
 public:
  // Reads NOTIFY_SOCKET and WATCHDOG_USEC (through libsystemd).
  Notifier();

  void Status(std::string_view text);
  void Ready(std::string_view status);
  void Reloading(std::string_view status);
  void Stopping(std::string_view status);
  // Sends WATCHDOG=1 if a third of the watchdog interval has passed since the last.
  void MaybePingWatchdog();

  // 0 when systemd set no watchdog.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

 private:
  void Send(std::string_view message);

  std::chrono::microseconds watchdog_{0};
  std::chrono::steady_clock::time_point next_ping_{};
};

}  // namespace cepheus::daemon

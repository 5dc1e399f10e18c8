// sd_notify(3) messages, sent with libsystemd (which finds the socket in
// NOTIFY_SOCKET and does nothing without it).
//
// sd_watchdog_enabled(3) advises a ping every half interval; the loop looks
// at the clock once per turn (a turn can take a poll and a commit), so the
// pings go every third of the interval and the gap between two stays under
// half of it. They come only from the processing loop: a loop that stops turning
// (a wedged poll, a deadlock) stops the pings, which is the point.
#include "cepheus/daemon/systemd.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <string>

#include <fmt/format.h>

namespace cepheus::daemon {
namespace {

// RELOADING=1 carries the monotonic time (systemd 253 wants it; 252 ignores it).
uint64_t MonotonicUsec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace

Notifier::Notifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void Notifier::Send(std::string_view message) {
  std::string m(message);
  (void)sd_notify(0, m.c_str());
}

void Notifier::Status(std::string_view text) { Send(fmt::format("STATUS={}", text)); }

void Notifier::Ready(std::string_view status) { Send(fmt::format("READY=1\nSTATUS={}", status)); }

void Notifier::Reloading(std::string_view status) {
  Send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}", MonotonicUsec(), status));
}

void Notifier::Stopping(std::string_view status) { Send(fmt::format("STOPPING=1\nSTATUS={}", status)); }

void Notifier::MaybePingWatchdog() {
  if (watchdog_.count() == 0) return;
  auto now = std::chrono::steady_clock::now();
  if (now < next_ping_) return;
  next_ping_ = now + watchdog_ / 3;
  Send("WATCHDOG=1");
}

}  // namespace cepheus::daemon

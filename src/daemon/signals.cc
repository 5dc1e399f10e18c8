// Signal handlers that only set flags (async-signal-safe); the daemon's loop
// reads them. SA_RESTART keeps blocking calls from failing with EINTR.
#include "cepheus/daemon/signals.h"

#include <csignal>

namespace cepheus::daemon {

void InstallSignalHandlers(std::atomic<bool>* stop, std::atomic<bool>* reload) {
  static std::atomic<bool>* s_stop = nullptr;
  static std::atomic<bool>* s_reload = nullptr;
  s_stop = stop;
  s_reload = reload;
  struct sigaction sa{};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = [](int) { *s_stop = true; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  if (reload != nullptr) {
    sa.sa_handler = [](int) { *s_reload = true; };
    sigaction(SIGHUP, &sa, nullptr);
  }
}

}  // namespace cepheus::daemon

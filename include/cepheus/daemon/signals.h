// The daemon's signals: SIGTERM and SIGINT stop it, SIGHUP reloads its rules.
#pragma once

#include <atomic>

namespace cepheus::daemon {

// SIGTERM and SIGINT set `stop`; SIGHUP sets `reload` (when not null). The
// flags must live as long as the process.
void InstallSignalHandlers(std::atomic<bool>* stop, std::atomic<bool>* reload);

}  // namespace cepheus::daemon

// `cepheus run --config FILE`: load the configuration and the rules, then hand
// over to the Daemon until SIGTERM or SIGINT. SIGHUP reloads the rules.
#include <atomic>
#include <csignal>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/rules_loader.h"

namespace cepheus::daemon {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

constexpr int kExitConfig = 78;  // EX_CONFIG

}  // namespace

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

int RunDaemon(const RunOptions& o) {
  auto config = LoadConfig(o.config);
  if (!config.ok()) {
    LogError(config.status().message());
    return kExitConfig;
  }
  Failpoint failpoint;
  if (!o.crash_at.empty()) {
    auto f = ParseFailpoint(o.crash_at);
    if (!f.ok()) {
      LogError(f.status().message());
      return kExitConfig;
    }
    failpoint = f.value();
  }
  if (o.print_config) {
    std::cout << DumpConfig(config.value());
    return 0;
  }
  SetLogLevel(config.value().log.level);
  RouteKafkaLogs();
  std::ostringstream diagnostics;
  auto rules = LoadAndCompile({config.value().rules_path}, diagnostics);
  if (!rules) {
    std::istringstream lines(diagnostics.str());
    for (std::string line; std::getline(lines, line);) LogError(line);
    LogError(fmt::format("the rules in {} do not check; not starting", config.value().rules_path));
    return kExitConfig;
  }
  InstallSignalHandlers(&g_stop, &g_reload);
  Daemon daemon(std::move(config).value(), rules);
  daemon.set_failpoint(failpoint);
  return daemon.Run(g_stop, &g_reload);
}

}  // namespace cepheus::daemon

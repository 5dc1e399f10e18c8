// `cepheus run --config FILE`: load the configuration and the rules, then hand
// over to the Daemon until SIGTERM or SIGINT.
#include <atomic>
#include <csignal>
#include <iostream>

#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/rules_loader.h"

namespace cepheus::daemon {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

constexpr int kExitConfig = 78;  // EX_CONFIG

}  // namespace

int RunDaemon(const RunOptions& o) {
  auto config = LoadConfig(o.config);
  if (!config.ok()) {
    std::cerr << "cepheus: error: " << config.status().message() << "\n";
    return kExitConfig;
  }
  if (o.print_config) {
    std::cout << DumpConfig(config.value());
    return 0;
  }
  auto rules = LoadAndCompile({config.value().rules_path}, std::cerr);
  if (!rules) return kExitConfig;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  Daemon daemon(std::move(config).value(), rules);
  return daemon.Run(g_stop);
}

}  // namespace cepheus::daemon

// `cepheus run --config FILE`: the daemon.
#pragma once

#include <string>

#include "cli/command.h"

namespace cepheus::cli {

struct RunOptions {
  std::string config = "/etc/cepheus/cepheus.yaml";
  bool print_config = false;
  // Tests only (hidden from --help): "before-kafka-commit:N" or
  // "after-kafka-commit:N" kills the process at its Nth commit, there.
  std::string crash_at;
};
int RunDaemon(const RunOptions& o);
Command AddRun(CLI::App& app);

}  // namespace cepheus::cli

// `cepheus demo`: the whole pipeline on an in-process Kafka cluster.
#pragma once

#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct DemoOptions {
  std::vector<std::string> rules = {"rules", "rules/tables", "rules/demo"};  // files or directories
  int seconds = 0;  // 0: until Ctrl-C
  int rate = 500;   // events per second
  int partitions = 4;
  unsigned long long seed = 7;
  std::string metrics = "127.0.0.1:9464";
  bool quiet = false;  // no alerts on stdout
};
int RunDemo(const DemoOptions& o);
// Removes the state directories (`cepheus-demo-<pid>` under `parent`) of
// demos that are no longer running: a demo killed with SIGKILL cannot clean
// up after itself, so the next one does. Returns how many it removed.
int RemoveStaleDemoDirs(const std::string& parent);
Command AddDemo(CLI::App& app);

}  // namespace cepheus::cli

// `cepheus check RULES [--dump] [--config FILE]`.
#pragma once

#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct CheckOptions {
  std::vector<std::string> paths;
  bool dump = false;   // print the checked rules in canonical form
  std::string config;  // cepheus.yaml: also warn about rules keyed on another field than the partition key
};
int RunCheck(const CheckOptions& o);
Command AddCheck(CLI::App& app);

}  // namespace cepheus::cli

// `cepheus explain RULES [--rule NAME] [--format text|dot]`.
#pragma once

#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct ExplainOptions {
  std::vector<std::string> paths;
  std::string rule;  // "" for all
  std::string format = "text";
  std::string config;  // cepheus.yaml: say where each rule runs (section 6.4)
};
int RunExplain(const ExplainOptions& o);
Command AddExplain(CLI::App& app);

}  // namespace cepheus::cli

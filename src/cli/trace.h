// `cepheus trace --rules R --events FILE --key K [--rule NAME]`: why a rule
// fired or did not, for one key.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct TraceOptions {
  std::vector<std::string> rules;
  std::string events;
  std::string key;
  std::string rule;                 // "" for every rule
  std::string format = "text";      // text or json (JSON lines)
  std::string out_of_order = "0ms";
  std::vector<std::string> tables;  // NAME=FILE, for rules that read tables
};
int RunTrace(const TraceOptions& o, std::ostream& out, std::ostream& err);
Command AddTrace(CLI::App& app);

}  // namespace cepheus::cli

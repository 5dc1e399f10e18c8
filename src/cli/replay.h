// `cepheus replay --rules R --events FILE`: JSON lines in, alerts out.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct ReplayOptions {
  std::vector<std::string> rules;
  std::string events = "-";
  std::string out_of_order;  // duration text, "" for the config's or 0
  std::string config;
  std::string late_out;      // file for late events, "" for none
  std::string aggregates_out;  // file for aggregate records (section 6.3), "" for none
  bool quiet = false;        // no summary
  size_t max_event_bytes = 1 << 20;  // longer lines are malformed
  std::vector<std::string> tables;   // NAME=FILE, one per table the rules read
};
int RunReplay(const ReplayOptions& o);
Command AddReplay(CLI::App& app);

}  // namespace cepheus::cli

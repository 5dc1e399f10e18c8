// `cepheus backtest --rules R --events FILE [--labels FILE] [--baseline RULES]`:
// what a rule set would alert on a stretch of history, and how well.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cli/command.h"

namespace cepheus::cli {

struct BacktestOptions {
  std::vector<std::string> rules;
  std::string events;
  std::string labels;                 // JSON lines {key, from, to, label}; "" for none
  std::vector<std::string> baseline;  // another rule set to compare with; empty for none
  std::string out_of_order = "0ms";
  std::string format = "text";        // text or json
  std::string report;                 // SVG chart of alerts per hour per rule; "" for none
  size_t examples = 3;                // gained and lost alerts shown per rule
  std::vector<std::string> tables;    // NAME=FILE, for rules that read tables
};
// 0, 1 on bad input (rules, events, labels), 2 on a usage error.
int RunBacktest(const BacktestOptions& o, std::ostream& out, std::ostream& err);
Command AddBacktest(CLI::App& app);

}  // namespace cepheus::cli

// Helpers shared by the unit tests: compile rule text, run events, reduce
// alerts to what the examples compare (rule, key, reason, ids per name).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <simdjson.h>

#include "cepheus/dsl/parser.h"
#include "cepheus/engine/engine.h"
#include "cepheus/nfa/program.h"
#include "cepheus/engine/replay.h"

namespace cepheus::testing {

// Rule files (name, text) parsed and checked as one set, with the
// diagnostics as the commands print them.
struct ParsedSet {
  bool ok;
  dsl::RuleSet set;
  std::string diagnostics;
};
ParsedSet ParseFiles(std::vector<std::pair<std::string, std::string>> files);

// Compiles rule text; REQUIREs that it checks.
std::shared_ptr<const nfa::CompiledRuleSet> CompileRules(const std::string& text);

// "rule|key|reason|o=e1,e2;p=e3" per alert, in publication order.
std::string Reduce(const engine::Alert& a);
std::vector<std::string> Reduce(const std::vector<engine::Alert>& alerts);

// Runs JSON lines through a fresh engine and returns the reduced alerts.
std::vector<std::string> Run(const std::string& rules, const std::vector<std::string>& events,
                             Millis out_of_order = 0, engine::CollectingSink* sink_out = nullptr);

// A TCP connection to 127.0.0.1:port (REQUIREs it); the caller closes it.
int ConnectLoopback(int port);
// GET http://127.0.0.1:port/metrics: the whole response (status line,
// headers, body). `authorization`: an Authorization header value, or "".
std::string Scrape(int port, const std::string& authorization = "");
// The value of one series in a scrape (`name{labels}` exactly as exposed), or
// -1 when the series is not there.
double Sample(const std::string& scrape, const std::string& series);

}  // namespace cepheus::testing

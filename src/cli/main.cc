// cepheus: the command line. Each subcommand lives in its own file of
// src/cli and declares its own options (command.h); main parses the arguments
// with CLI11 and runs the subcommand given. Nothing else lives here.
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/backtest.h"
#include "cli/check.h"
#include "cli/demo.h"
#include "cli/explain.h"
#include "cli/gen.h"
#include "cli/replay.h"
#include "cli/run.h"
#include "cli/schema.h"
#include "cli/test.h"
#include "cli/trace.h"
#include "cli/version.h"

int main(int argc, char** argv) {
  using namespace cepheus::cli;
  CLI::App app{"cepheus: complex-event processing for fraud detection"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  const std::vector<Command> commands = {AddCheck(app),   AddExplain(app), AddReplay(app), AddTest(app),
                                         AddGen(app),     AddDemo(app),    AddRun(app),    AddSchema(app), AddBacktest(app), AddTrace(app),
                                         AddVersion(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  for (const auto& c : commands) {
    if (*c.sub) return c.run();
  }
  return 2;
}

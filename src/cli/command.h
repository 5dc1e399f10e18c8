// One subcommand of `cepheus`. Each src/cli/<name>.cc declares its options on
// the application (CLI11) and returns how to run it once the arguments are
// parsed; main.cc runs the one that was given. A command's Run* function,
// declared in its own header, is what tests call.
//
// Exit codes: 0 success, 1 failure of the input (bad rules, failing tests,
// unreadable data), 2 usage errors; `run` also uses 78 (EX_CONFIG).
#pragma once

#include <functional>

namespace CLI {
class App;
}  // namespace CLI

namespace cepheus::cli {

struct Command {
  CLI::App* sub = nullptr;     // the parsed subcommand (true when given)
  std::function<int()> run;    // its exit code
};

}  // namespace cepheus::cli

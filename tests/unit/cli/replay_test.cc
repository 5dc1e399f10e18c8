// `cepheus replay` as a command: its input errors are one-line messages and an
// exit code, never an exception.
#include <string>

#include <doctest/doctest.h>

#include "cli/replay.h"

namespace cepheus::cli {
namespace {

ReplayOptions Options(std::string events) {
  ReplayOptions o;
  o.rules = {std::string(CEPHEUS_SOURCE_DIR) + "/rules"};
  o.events = std::move(events);
  o.quiet = true;
  return o;
}

TEST_CASE("replay given a directory as its events says so and exits 2 instead of aborting") {
  CHECK(RunReplay(Options(std::string(CEPHEUS_SOURCE_DIR) + "/rules")) == 2);
}

TEST_CASE("replay given a missing events file exits 2") {
  CHECK(RunReplay(Options("/nonexistent/events.jsonl")) == 2);
}

}  // namespace
}  // namespace cepheus::cli

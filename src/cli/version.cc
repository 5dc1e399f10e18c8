// `cepheus version`: the version, and the versions of the libraries linked in
// (what a bug report needs).
#include "cli/version.h"

#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/version.hpp>
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include "cepheus/version.h"

namespace cepheus::cli {

int RunVersion() {
  std::cout << fmt::format("cepheus {}\n", CEPHEUS_VERSION);
  std::cout << fmt::format("  boost {}.{}.{} (Spirit X3)\n", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                           BOOST_VERSION % 100);
  std::cout << fmt::format("  simdjson {}.{}.{} ({} implementation)\n", int(simdjson::SIMDJSON_VERSION_MAJOR), int(simdjson::SIMDJSON_VERSION_MINOR), int(simdjson::SIMDJSON_VERSION_REVISION),
                           simdjson::get_active_implementation()->name());
  std::cout << fmt::format("  fmt {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  std::cout << fmt::format("  librdkafka {}\n", rd_kafka_version_str());
  return 0;
}

Command AddVersion(CLI::App& app) {
  auto* sub = app.add_subcommand("version", "Print the version and the linked libraries");
  return {sub, [] { return RunVersion(); }};
}

}  // namespace cepheus::cli

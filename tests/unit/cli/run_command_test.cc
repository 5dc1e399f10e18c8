// `cepheus run --print-config` shows what the daemon will really use: the
// kafka properties as librdkafka gets them (the file's, then cepheus's own),
// with secrets masked.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "cli/run.h"

namespace cepheus::cli {
namespace {

TEST_CASE("print-config shows the effective kafka properties, the user's tuning kept and secrets masked") {
  auto path = std::filesystem::temp_directory_path() / ("cepheus-print-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "kafka:\n  brokers: b1:9092\n  group_id: fraud\n  transactional_id: fraud-1\n"
                         "  producer:\n    linger.ms: \"20\"\n    sasl.password: hunter2\n";
  RunOptions o;
  o.config = path.string();
  o.print_config = true;
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  int code = RunDaemon(o);
  std::cout.rdbuf(old);
  std::filesystem::remove(path);
  CHECK(code == 0);
  const std::string out = captured.str();
  for (const char* line : {"    isolation.level: \"read_committed\"", "    group.id: \"fraud\"",
                           "    enable.auto.commit: \"false\"", "    transactional.id: \"fraud-1\"",
                           "    acks: \"all\"", "    linger.ms: \"20\"", "    bootstrap.servers: \"b1:9092\"",
                           "    sasl.password: <redacted>"}) {
    INFO(line);
    CHECK(out.find(line) != std::string::npos);
  }
  CHECK(out.find("hunter2") == std::string::npos);
}

}  // namespace
}  // namespace cepheus::cli

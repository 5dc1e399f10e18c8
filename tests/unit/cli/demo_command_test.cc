// A demo killed with SIGKILL leaves its state directory behind; the next
// demo removes the directories of demos that no longer run, and only those.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "cli/demo.h"

namespace cepheus::cli {
namespace {

TEST_CASE("the state directories of demos no longer running are removed, those of running ones kept") {
  auto parent = std::filesystem::temp_directory_path() / ("cepheus-demo-parent-" + std::to_string(::getpid()));
  std::filesystem::create_directories(parent);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);  // a pid that no longer runs
  auto dead = parent / ("cepheus-demo-" + std::to_string(child));
  auto alive = parent / ("cepheus-demo-" + std::to_string(::getppid()));
  auto other = parent / "cepheus-demo-notapid";
  for (const auto& d : {dead, alive, other}) std::filesystem::create_directories(d / "state");
  CHECK(RemoveStaleDemoDirs(parent.string()) == 1);
  CHECK_FALSE(std::filesystem::exists(dead));
  CHECK(std::filesystem::exists(alive));
  CHECK(std::filesystem::exists(other));
  std::filesystem::remove_all(parent);
}

}  // namespace
}  // namespace cepheus::cli

#include "harness.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cepheus/dsl/parser.h"
#include "cepheus/state/lmdb_store.h"

namespace cepheus::testing {

daemon::Config TestConfig(const std::string& brokers, const std::string& name) {
  auto config = daemon::DefaultConfig();
  config.rules_paths = {std::string(CEPHEUS_SOURCE_DIR) + "/rules"};
  config.kafka.brokers = brokers;
  config.kafka.group_id = name;
  config.kafka.input_topics = {"events"};
  config.kafka.alerts_topic = "alerts";
  config.kafka.dead_letter_topic = "dead";
  config.kafka.transactional_id = name + "-" + std::to_string(::getpid());
  config.metrics.listen = "127.0.0.1:0";
  config.idle_timeout = 3600000;
  // The mock cluster has no Admin API to create re-keying topics: the daemon
  // tests run every rule on the input partitions unless they turn it on.
  config.kafka.rekey = false;
  config.max_future_skew = 100LL * 365 * 86400000;
  return config;
}

std::shared_ptr<const nfa::CompiledRuleSet> ShippedRules() {
  DiagnosticSink diags;
  auto set = dsl::LoadRuleSet({std::string(CEPHEUS_SOURCE_DIR) + "/rules"}, &diags);
  REQUIRE(set.has_value());
  return nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(*set))).value();
}

bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

bool EventuallyQuiet(const std::function<uint64_t()>& count, uint64_t at_least, std::chrono::milliseconds limit,
                     std::chrono::milliseconds quiet) {
  uint64_t seen = count();
  auto quiet_since = std::chrono::steady_clock::now();
  return Eventually(
      [&] {
        uint64_t n = count();
        if (n != seen) {
          seen = n;
          quiet_since = std::chrono::steady_clock::now();
        }
        return n >= at_least && std::chrono::steady_clock::now() - quiet_since > quiet;
      },
      limit);
}

DaemonThread::DaemonThread(daemon::Daemon& d, std::atomic<bool>* reload)
    : thread_([this, &d, reload] {
        exit_code_ = d.Run(stop_, reload);
        finished_ = true;
      }) {}

int DaemonThread::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return exit_code_;
}

int64_t CommittedRecords(const daemon::Config& config) {
  auto store = state::LmdbStore::Open({config.state.directory, config.state.map_size, config.state.max_map_size});
  REQUIRE(store.ok());
  int64_t committed = 0;
  REQUIRE(store.value()
              ->Scan("p/",
                     [&](std::string_view k, std::string_view v) {
                       if (k.size() > 7 && k.substr(k.size() - 7) == "/offset") committed += std::stoll(std::string(v));
                     })
              .ok());
  return committed;
}

CapturedStderr::CapturedStderr()
    : path_((std::filesystem::temp_directory_path() / ("cepheus-stderr-" + std::to_string(::getpid()))).string()) {
  ::fflush(stderr);
  saved_fd_ = ::dup(STDERR_FILENO);
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
}

CapturedStderr::~CapturedStderr() {
  ::fflush(stderr);
  ::dup2(saved_fd_, STDERR_FILENO);
  ::close(saved_fd_);
  std::filesystem::remove(path_);
}

std::string CapturedStderr::text() const {
  std::ifstream in(path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string UserOf(const std::string& json) {
  auto at = json.find("\"user_id\":\"");
  if (at == std::string::npos) return "";
  at += 11;
  return json.substr(at, json.find('"', at) - at);
}

}  // namespace cepheus::testing

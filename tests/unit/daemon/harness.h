// What the daemon tests share: a configuration for librdkafka's mock cluster,
// the shipped rules, waiting for a condition, a daemon running on its own
// thread, and what its LMDB state committed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cepheus/daemon/daemon.h"

namespace cepheus::testing {

// A daemon configuration for the mock cluster at `brokers`: group and
// transactional id from `name`, no wall-clock watermark (the output depends on
// the input only), metrics on a free port.
daemon::Config TestConfig(const std::string& brokers, const std::string& name);
std::shared_ptr<const nfa::CompiledRuleSet> ShippedRules();

// Polls `done` every 10 ms until it is true (true) or `limit` passes (false).
[[nodiscard]] bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(30));
// Until `count()` is at least `at_least` and has not moved for `quiet` (a
// re-read after an abort is over); false after `limit`.
[[nodiscard]] bool EventuallyQuiet(const std::function<uint64_t()>& count, uint64_t at_least,
                     std::chrono::milliseconds limit = std::chrono::seconds(90),
                     std::chrono::milliseconds quiet = std::chrono::milliseconds(1500));

// Runs `d` on a thread from construction; Stop() (or the destructor, after a
// failed REQUIRE) stops it and joins. `reload`, when given, is the daemon's
// SIGHUP flag.
class DaemonThread {
 public:
  explicit DaemonThread(daemon::Daemon& d, std::atomic<bool>* reload = nullptr);
  ~DaemonThread() { Stop(); }
  // The daemon's exit code.
  int Stop();
  bool finished() const { return finished_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  int exit_code_ = -1;
  std::thread thread_;
};

// Records the state under `config.state.directory` reflects: the sum of its
// partitions' committed offsets. The daemon must be gone (LMDB is locked).
int64_t CommittedRecords(const daemon::Config& config);

// Everything written to stderr (fd 2, where the daemon logs) while it lives
// goes to a file instead; text() reads it back. Restores stderr when
// destroyed.
class CapturedStderr {
 public:
  CapturedStderr();
  ~CapturedStderr();
  std::string text() const;

 private:
  int saved_fd_ = -1;
  std::string path_;
};

// The message key the test producers use: the event's user_id.
std::string UserOf(const std::string& json);

}  // namespace cepheus::testing

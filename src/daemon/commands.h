// The subcommands of `cepheus`, one function each; main.cc wires them to CLI11.
//
// Each returns the process exit code: 0 success, 1 failure of the input
// (bad rules, failing tests), 2 usage errors.
#pragma once

#include <string>
#include <vector>

#include "cepheus/common/time.h"

namespace cepheus::daemon {

// With `config` (a cepheus.yaml), also warns about rules keyed on another field
// than the input topics' declared partition key.
int RunCheck(const std::vector<std::string>& paths, bool dump, const std::string& config = "");

struct ExplainOptions {
  std::vector<std::string> paths;
  std::string rule;  // "" for all
  std::string format = "text";
};
int RunExplain(const ExplainOptions& o);

struct ReplayOptions {
  std::vector<std::string> rules;
  std::string events = "-";
  std::string out_of_order;  // duration text, "" for the config's or 0
  std::string config;
  std::string late_out;      // file for late events, "" for none
  bool quiet = false;        // no summary
};
int RunReplay(const ReplayOptions& o);

int RunTests(const std::vector<std::string>& paths, bool verbose);

struct GenCommandOptions {
  long long users = 1000;
  long long events = 10000;
  unsigned long long seed = 1;
  double fraud_rate = 0.01;
  double zipf = 1.1;  // user N has weight N^-zipf
  std::string out_of_order = "0ms";
  double malformed = 0;
  int rate = 0;  // with --kafka: events per second, 0 for as fast as possible
  std::string kafka;  // brokers: produce to `topic` instead of printing
  std::string topic = "events";
  std::string key_field = "user_id";
};
int RunGen(const GenCommandOptions& o);

struct DemoOptions {
  std::string rules = "rules";
  int seconds = 0;  // 0: until Ctrl-C
  int rate = 500;   // events per second
  int partitions = 4;
  unsigned long long seed = 7;
  std::string metrics = "127.0.0.1:9464";
  bool quiet = false;  // no alerts on stdout
};
int RunDemo(const DemoOptions& o);

struct RunOptions {
  std::string config = "/etc/cepheus/cepheus.yaml";
  bool print_config = false;
  // Tests only (hidden from --help): "before-kafka-commit:N" or
  // "after-kafka-commit:N" kills the process at its Nth commit, there.
  std::string crash_at;
};
int RunDaemon(const RunOptions& o);

int RunVersion();

}  // namespace cepheus::daemon

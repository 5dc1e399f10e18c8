// `cepheus gen`: synthetic events as JSON lines, or produced to Kafka.
#pragma once

#include <string>

#include "cli/command.h"

namespace cepheus::cli {

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
  std::string labels;  // file for the labels of the planted incidents, "" for none
};
int RunGen(const GenCommandOptions& o);
Command AddGen(CLI::App& app);

}  // namespace cepheus::cli

// cepheus: the command line. Parses arguments with CLI11 and hands each
// subcommand to its Run* function (commands.h). Nothing else lives here.
#include <CLI/CLI.hpp>

#include "daemon/commands.h"

int main(int argc, char** argv) {
  using namespace cepheus::daemon;
  CLI::App app{"cepheus: complex-event processing for fraud detection"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");

  std::vector<std::string> check_paths;
  bool dump = false;
  auto* check = app.add_subcommand("check", "Parse, check and compile rule files or directories");
  check->add_option("RULES", check_paths, "Rule files or directories")->required();
  check->add_flag("--dump", dump, "Print the checked rules in canonical form");
  std::string check_config;
  check->add_option("--config", check_config,
                    "cepheus.yaml: also warn about rules keyed on another field than the partition key");

  ExplainOptions ex;
  auto* explain = app.add_subcommand("explain", "Print each rule's compiled automaton");
  explain->add_option("RULES", ex.paths, "Rule files or directories")->required();
  explain->add_option("--rule", ex.rule, "Only this rule");
  explain->add_option("--format", ex.format, "text or dot (Graphviz)")
      ->check(CLI::IsMember({"text", "dot"}));

  ReplayOptions rp;
  auto* replay = app.add_subcommand("replay", "Run the rules over a JSON-lines file of events");
  replay->add_option("--rules", rp.rules, "Rule files or directories")->required();
  replay->add_option("--events", rp.events, "JSON-lines file, or - for standard input");
  replay->add_option("--out-of-order", rp.out_of_order, "Allowed out-of-orderness, e.g. 5s");
  replay->add_option("--config", rp.config, "cepheus.yaml (its events section is used)");
  replay->add_option("--late", rp.late_out, "Write late events to this file");
  replay->add_flag("--quiet", rp.quiet, "No summary on standard error");

  std::vector<std::string> test_paths;
  bool verbose = false;
  auto* test = app.add_subcommand("test", "Run rule test files (YAML)");
  test->add_option("CASES", test_paths, "Test files or directories (*.test.yaml)")->required();
  test->add_flag("-v,--verbose", verbose, "Print every alert of failing cases");

  GenCommandOptions g;
  auto* gen = app.add_subcommand("gen", "Generate synthetic e-commerce events as JSON lines");
  gen->add_option("--users", g.users, "Number of users")->check(CLI::Range(1LL, 100000000LL));
  gen->add_option("--events", g.events, "Number of events")->check(CLI::Range(0LL, 10000000000LL));
  gen->add_option("--seed", g.seed, "Random seed");
  gen->add_option("--zipf", g.zipf, "Skew of users: user N has weight N^-S (1.0 with 100000 users gives the busiest ~8%)")
      ->check(CLI::Range(0.0, 4.0));
  gen->add_option("--fraud-rate", g.fraud_rate, "Probability that an event starts a fraud incident")
      ->check(CLI::Range(0.0, 1.0));
  gen->add_option("--out-of-order", g.out_of_order, "Emit some events up to this late, e.g. 5s");
  gen->add_option("--malformed", g.malformed, "Also emit this fraction of malformed records (for tests)")
      ->check(CLI::Range(0.0, 1.0));
  gen->add_option("--rate", g.rate, "With --kafka: events per second (0: as fast as possible)")
      ->check(CLI::Range(0, 10000000));
  gen->add_option("--kafka", g.kafka, "Produce to Kafka at these brokers instead of printing");
  gen->add_option("--topic", g.topic, "Topic to produce to (with --kafka)");
  gen->add_option("--key", g.key_field, "Event field used as the message key (with --kafka)");

  DemoOptions demo_opts;
  auto* demo = app.add_subcommand(
      "demo", "Run the whole pipeline on an in-process Kafka cluster with generated events");
  demo->add_option("--seconds", demo_opts.seconds, "Stop after this many seconds (0: until Ctrl-C)")
      ->check(CLI::Range(0, 86400));
  demo->add_option("--rules", demo_opts.rules, "Rule file or directory");
  demo->add_option("--rate", demo_opts.rate, "Events per second")->check(CLI::Range(1, 1000000));
  demo->add_option("--partitions", demo_opts.partitions, "Partitions of the events topic")
      ->check(CLI::Range(1, 64));
  demo->add_option("--seed", demo_opts.seed, "Seed of the event generator");
  demo->add_option("--metrics", demo_opts.metrics, "Metrics address (port 0 picks a free one)");
  demo->add_flag("--quiet", demo_opts.quiet, "Do not print the alerts");

  RunOptions run_opts;
  auto* run = app.add_subcommand("run", "The daemon: Kafka in, alerts out, state in LMDB");
  run->add_option("--config", run_opts.config, "Configuration file (YAML)");
  run->add_flag("--print-config", run_opts.print_config, "Print the effective configuration and exit");
  run->add_option("--crash-at", run_opts.crash_at, "Tests only: kill the process at a commit (POINT:N)")
      ->group("");  // hidden: reliability test A3

  auto* version = app.add_subcommand("version", "Print the version and the linked libraries");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*check) return RunCheck(check_paths, dump, check_config);
  if (*explain) return RunExplain(ex);
  if (*replay) return RunReplay(rp);
  if (*test) return RunTests(test_paths, verbose);
  if (*gen) return RunGen(g);
  if (*demo) return RunDemo(demo_opts);
  if (*run) return RunDaemon(run_opts);
  if (*version) return RunVersion();
  return 2;
}

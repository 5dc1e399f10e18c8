#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

namespace cepheus::testing {

std::shared_ptr<const nfa::CompiledRuleSet> CompileRules(const std::string& text) {
  DiagnosticSink diags;
  dsl::RuleSet set;
  bool ok = dsl::ParseSource(std::make_shared<const SourceFile>("test.rules", text), &set, &diags);
  INFO(diags.FormatAll());
  REQUIRE(ok);
  auto compiled = nfa::Compile(std::make_shared<const dsl::RuleSet>(std::move(set)));
  REQUIRE(compiled.ok());
  return compiled.value();
}

std::string Reduce(const engine::Alert& a) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(a.json);
  std::string out = fmt::format("{}|{}|{}|", std::string_view(doc["rule"]), std::string_view(doc["key"]),
                                std::string_view(doc["reason"]));
  std::map<std::string, std::vector<std::string>> names;
  for (auto field : doc["events"].get_object()) {
    auto& ids = names[std::string(field.key)];
    for (auto e : field.value.get_array()) ids.emplace_back(std::string_view(e["id"]));
  }
  bool first = true;
  for (const auto& [name, ids] : names) {
    out += fmt::format("{}{}={}", first ? "" : ";", name, fmt::join(ids, ","));
    first = false;
  }
  return out;
}

std::vector<std::string> Reduce(const std::vector<engine::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(Reduce(a));
  return out;
}

std::vector<std::string> Run(const std::string& rules, const std::vector<std::string>& events,
                             Millis out_of_order, engine::CollectingSink* sink_out) {
  auto compiled = CompileRules(rules);
  std::string text;
  for (const auto& e : events) text += e + "\n";
  simdjson::padded_string input(text);
  engine::CollectingSink local;
  engine::CollectingSink* sink = sink_out ? sink_out : &local;
  engine::EngineOptions options;
  options.out_of_order = out_of_order;
  engine::ReplayText(std::string_view(input.data(), input.size()), compiled, options, {}, sink,
                     [](uint64_t line, const std::string& why) { FAIL("malformed line " << line << ": " << why); });
  return Reduce(sink->alerts);
}

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

std::string Scrape(int port, const std::string& authorization) {
  int fd = ConnectLoopback(port);
  std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  if (!authorization.empty()) req += "Authorization: " + authorization + "\r\n";
  req += "\r\n";
  REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

double Sample(const std::string& scrape, const std::string& series) {
  size_t at = scrape.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(scrape.substr(at + series.size() + 2));
}

ParsedSet ParseFiles(std::vector<std::pair<std::string, std::string>> files) {
  ParsedSet p;
  DiagnosticSink diags;
  std::vector<std::shared_ptr<const SourceFile>> sources;
  for (auto& [name, text] : files) sources.push_back(std::make_shared<const SourceFile>(name, text));
  p.ok = dsl::ParseSources(std::move(sources), &p.set, &diags);
  p.diagnostics = diags.FormatAll();
  return p;
}

}  // namespace cepheus::testing

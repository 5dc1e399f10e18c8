// Table sources for `replay` and `test`: parsing `--table NAME=FILE`, checking
// the sources against the tables the rules read, and loading JSON lines into
// engine::Tables (streamed with LineReader, so a file's size does not matter
// beyond what the table keeps).
#include "cli/tables.h"

#include <set>

#include <fmt/format.h>

#include "cepheus/common/file.h"
#include "cepheus/engine/seams.h"

namespace cepheus::cli {

Result<std::vector<TableSource>> ParseTableSources(const std::vector<std::string>& specs) {
  std::vector<TableSource> out;
  for (const auto& s : specs) {
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) {
      return Status::InvalidArgument(fmt::format("--table '{}' is not NAME=FILE (e.g. profiles=profiles.jsonl)", s));
    }
    out.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }
  return out;
}

Status CheckTableSources(const nfa::CompiledRuleSet& rules, const std::vector<std::string>& names,
                         const std::string& how_to_give) {
  std::set<std::string> given;
  for (const auto& n : names) {
    if (rules.FindTable(n) < 0) {
      std::string declared;
      for (const auto& t : rules.tables) declared += (declared.empty() ? "" : ", ") + t.name;
      return Status::InvalidArgument(fmt::format("no table '{}' is declared in the rules ({})", n,
                                                 declared.empty() ? "none is" : "declared: " + declared));
    }
    if (!given.insert(n).second) return Status::InvalidArgument(fmt::format("table '{}' is given twice", n));
  }
  for (const auto& t : rules.tables) {
    if (t.read && !given.count(t.name)) {
      return Status::InvalidArgument(fmt::format("table '{}' is read by the rules but has no source: {}", t.name,
                                                 fmt::format(fmt::runtime(how_to_give), t.name)));
    }
  }
  return Status::Ok();
}

Status LoadTableFiles(const std::vector<TableSource>& sources, engine::Tables* tables, size_t max_line_bytes,
                      std::ostream& err, uint64_t* malformed) {
  for (const auto& src : sources) {
    int32_t t = tables->Index(src.name);
    auto reader = LineReader::Open(src.path, max_line_bytes, engine::kPayloadPadding);
    if (!reader.ok()) return reader.status();
    for (;;) {
      auto next = reader.value()->Next();
      if (!next.ok()) return next.status();
      if (!next.value()) break;
      const LineReader::Line& line = *next.value();
      if (line.text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      Status st = line.too_long ? Status::InvalidArgument(fmt::format("record is larger than {} bytes", max_line_bytes))
                                : tables->Apply(t, line.text);
      if (!st.ok()) {
        ++*malformed;
        err << fmt::format("{}:{}: table record skipped: {}\n", src.path, line.number, st.message());
      }
    }
  }
  return Status::Ok();
}

Status LoadTableOptions(const std::vector<std::string>& specs, const nfa::CompiledRuleSet& rules,
                        engine::Tables* tables, std::ostream& err) {
  auto sources = ParseTableSources(specs);
  if (!sources.ok()) return sources.status();
  std::vector<std::string> names;
  for (const auto& s : sources.value()) names.push_back(s.name);
  if (Status st = CheckTableSources(rules, names, "give --table {}=FILE (JSON lines)"); !st.ok()) return st;
  uint64_t malformed = 0;
  return LoadTableFiles(sources.value(), tables, 1 << 20, err, &malformed);
}

}  // namespace cepheus::cli

// Table sources for the offline commands (section 6.1): `--table NAME=FILE`
// (JSON lines) for `replay`, records given inline for `test`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cepheus/common/status.h"
#include "cepheus/engine/tables.h"
#include "cepheus/nfa/program.h"

namespace cepheus::cli {

struct TableSource {
  std::string name;
  std::string path;
};

// "NAME=FILE" options; InvalidArgument naming a malformed one.
Result<std::vector<TableSource>> ParseTableSources(const std::vector<std::string>& specs);

// Checks the sources against the rule set: each names a declared table, at
// most once, and every table a rule reads has one. The first problem, in
// words ("table 'profiles' is read by the rules but has no source: give
// --table profiles=FILE").
Status CheckTableSources(const nfa::CompiledRuleSet& rules, const std::vector<std::string>& names,
                         const std::string& how_to_give);

// Loads each file into `tables`, line by line in file order. A line that is
// not a usable record is reported on `err` as FILE:LINE: reason, counted in
// *malformed, and skipped; a record refused at the table's limit likewise.
// An unreadable file is an error.
Status LoadTableFiles(const std::vector<TableSource>& sources, engine::Tables* tables, size_t max_line_bytes,
                      std::ostream& err, uint64_t* malformed);

// `--table NAME=FILE` options parsed, checked against the rules and loaded
// into `tables` (problems with records reported on `err`).
Status LoadTableOptions(const std::vector<std::string>& specs, const nfa::CompiledRuleSet& rules,
                        engine::Tables* tables, std::ostream& err);

}  // namespace cepheus::cli

// `cepheus schema --events FILE`: event declarations inferred from a sample.
#pragma once

#include <ostream>
#include <string>

#include "cli/command.h"

namespace cepheus::cli {

struct SchemaOptions {
  std::string events;            // JSON lines, "-" for standard input
  std::string type_field = "type";
  std::string time_field = "ts";
  std::string id_field = "id";
  size_t max_event_bytes = 1 << 20;
};
// Writes the declarations to `out`, problems with lines to `err`; 0, or 1
// when the file cannot be read or holds no event.
int RunSchema(const SchemaOptions& o, std::ostream& out, std::ostream& err);
Command AddSchema(CLI::App& app);

}  // namespace cepheus::cli

// Appending JSON text: escaped strings and numbers.
//
// simdjson parses; this writes the few shapes cepheus emits (alerts, dead
// letters, generated events). Output is compact, UTF-8 passes through, control
// characters are escaped as \uXXXX.
#pragma once

#include <string>
#include <string_view>

namespace cepheus {

void AppendJsonString(std::string* out, std::string_view s);
// Integers (below 1e15) print without a fraction; every other number in
// the shortest text that reads back to exactly the same double; non-finite
// numbers as null.
void AppendJsonNumber(std::string* out, double v);
std::string FormatNumber(double v);

}  // namespace cepheus

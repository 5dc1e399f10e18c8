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
// Integers print without a fraction; other values in their shortest form.
void AppendJsonNumber(std::string* out, double v);
std::string FormatNumber(double v);
// The shortest text that reads back to exactly `v` (integers without a
// fraction): for values a program reads, such as aggregate records.
void AppendExactJsonNumber(std::string* out, double v);

}  // namespace cepheus

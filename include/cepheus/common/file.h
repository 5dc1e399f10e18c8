// Reading whole files, with errors as values.
#pragma once

#include <cstddef>
#include <string>

#include "cepheus/common/status.h"

namespace cepheus {

// Appends all of `path` ("-": standard input) to *out: files, pipes and FIFOs.
// A directory, a missing file or a read error is an IoError naming the path
// and the reason, never an exception.
// With a regular file, `spare` bytes of capacity are left after the content
// (simdjson's padding, say), so the caller can append them without a copy.
Status ReadWholeFile(const std::string& path, std::string* out, size_t spare = 0);

}  // namespace cepheus

// `cepheus version`: the version and the linked libraries.
#pragma once

#include "cli/command.h"

namespace cepheus::cli {

int RunVersion();
Command AddVersion(CLI::App& app);

}  // namespace cepheus::cli

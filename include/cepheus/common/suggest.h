// "Did you mean ...?" for misspelt names in diagnostics.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cepheus {

// The candidate closest to `word` by edit distance (insertions, deletions,
// substitutions and swaps of two neighbours count one), if it is within a
// third of the word's length (at least 1, at most 3); ties go to the first.
std::optional<std::string> Closest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace cepheus

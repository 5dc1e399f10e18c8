// Closest: the optimal string alignment distance (Damerau-Levenshtein
// without repeated edits of one substring), one row pair at a time; names
// are short, so the quadratic table is a few hundred cells.
#include "cepheus/common/suggest.h"

#include <algorithm>

namespace cepheus {
namespace {

size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], before[j - 2] + 1);
    }
    before = prev;
    prev = cur;
  }
  return prev[b.size()];
}

}  // namespace

std::optional<std::string> Closest(std::string_view word, const std::vector<std::string>& candidates) {
  size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    size_t d = Distance(word, c);
    if (d < best_distance && c != word) best = c, best_distance = d;
  }
  return best;
}

}  // namespace cepheus

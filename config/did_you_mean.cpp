#include "config/did_you_mean.hpp"

#include <algorithm>
#include <limits>

#include "util/text.hpp"

namespace corral {
namespace {

// How a name compares: case, dashes in front and '_' against '-' do not matter.
std::string normalized(std::string_view word) {
  while (!word.empty() && word.front() == '-') word.remove_prefix(1);
  std::string out = lower(word);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

// Edits (insert, delete, substitute, swap two neighbours) between a and b: the optimal string
// alignment distance, which counts a transposition ("wokrers") as one typo.
std::size_t editDistance(std::string_view a, std::string_view b) {
  const std::size_t width = b.size() + 1;
  std::vector<std::size_t> d((a.size() + 1) * width);
  const auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * width + j]; };
  for (std::size_t i = 0; i <= a.size(); ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= b.size(); ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(a.size(), b.size());
}

// Typos a word of this length may hold and still be recognised: one in short names, where two
// would match half the table, up to three in long ones.
std::size_t allowedEdits(std::size_t length) {
  return std::clamp<std::size_t>(length / 4, 1, 3);
}

}  // namespace

std::optional<std::string> closestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  const std::string wanted = normalized(word);
  if (wanted.empty() || wanted.size() > 100) return std::nullopt;
  std::optional<std::string> best;
  std::size_t best_score = std::numeric_limits<std::size_t>::max();
  for (const std::string& candidate : candidates) {
    const std::string name = normalized(candidate);
    if (name.empty()) continue;
    std::size_t score = editDistance(wanted, name);
    if (score > allowedEdits(wanted.size())) {
      // "keep-alive" for "timeout-keep-alive": a part of the name, long enough to mean it.
      const bool contained =
          std::min(wanted.size(), name.size()) >= 5 &&
          (name.find(wanted) != std::string::npos || wanted.find(name) != std::string::npos);
      if (!contained) continue;
      score = allowedEdits(wanted.size()) + 1;
    }
    if (score < best_score) {
      best_score = score;
      best = candidate;
    }
  }
  return best;
}

std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  const auto match = closestMatch(word, candidates);
  return match ? "; did you mean " + *match + "?" : "";
}

}  // namespace corral

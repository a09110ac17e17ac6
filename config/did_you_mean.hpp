#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// The candidate closest to `word`, if one is close enough to be a likely typo of it: a letter
/// or two off (fewer for short words), two letters swapped, '_' for '-', another case, or one
/// containing the other ("keepalive" and "--keep-alive"). Leading dashes are ignored, so flags
/// compare by their names.
std::optional<std::string> closestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates);

/// "; did you mean X?" for the closest candidate, or "" when none is close.
std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace corral

#pragma once

#include <string>
#include <string_view>

namespace corral {

/// Refuses, as a ConfigError naming PATH:LINE and saying what to write instead, the characters
/// on which toml++ 3.3.0 (Debian bookworm's) has undefined behaviour: its test for non-ASCII
/// whitespace reaches __builtin_unreachable() for U+00A1-U+0499, U+2C5E-U+2FFF, U+3001-U+3057
/// and U+FB26-U+FEFE, and it runs that test wherever it looks for the end of a token, which its
/// value parser can do inside what is a string (fuzz_config_file found both). In a basic string
/// such a character can be written as an escape (\u00e9), which toml++ decodes safely.
void rejectWhatTomlMishandles(std::string_view text, const std::string& path);

}  // namespace corral

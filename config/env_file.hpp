#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace corral {

/// One assignment of an --env-file.
struct EnvAssignment {
  std::string name;
  std::optional<std::string> value;  ///< nullopt for a bare `NAME` line, which sets nothing
};

/// A statement of an env file that cannot be read; what() names its line.
struct EnvFileError : std::runtime_error {
  EnvFileError(int line, const std::string& what);
  int line;
};

/// Reads the dotenv format as python-dotenv does (uvicorn's --env-file loads it with that):
/// `NAME=value` statements, an optional `export ` before them, `#` comments on their own line
/// or after a value, values in single quotes (`\\` and `\'` escaped) or double quotes (also
/// `\n`, `\t`, `\"` and the other C escapes), which may span lines, and unquoted values up to
/// the line's end or a ` #` comment, trimmed. Where python-dotenv warns about a statement it
/// cannot parse and skips it, this throws EnvFileError: a mistake in the file should not go
/// unnoticed.
std::vector<EnvAssignment> parseEnvFile(std::string_view text);

/// The assignments as `NAME=value` entries, with `${NAME}` and `${NAME:-default}` in values
/// expanded as python-dotenv does for load_dotenv(): from the process environment first, then
/// from the file's earlier assignments.
std::vector<std::string> expandEnvFile(const std::vector<EnvAssignment>& assignments,
                                       const EnvLookup& environment);

/// The file at `path` read, parsed and expanded; throws ConfigError (one line, naming `path`
/// and the line) if it cannot be.
std::vector<std::string> loadEnvFile(const std::string& path, const EnvLookup& environment);

}  // namespace corral
